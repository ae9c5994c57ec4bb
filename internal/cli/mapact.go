package cli

// Operator actions on map tasks: 'tasuki cancel RUN --task T [--item N]',
// 'tasuki retry RUN --task T --item N' and 'tasuki mark RUN TASK STATE
// --item N'. They act on a map while it runs, in the process that executes
// its run, so they need a server: a run that 'tasuki run' executes in the
// foreground has no one to ask. The flags are added to the commands that
// act on runs, whose behaviour without them does not change.

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
)

// mapActionHelp ends the help of cancel and retry.
var mapActionHelp = map[api.MapActionKind]string{
	api.MapCancel: `

With --task T, cancels the map task T of the run instead of the whole run:
its running items are stopped, nothing more starts, and the map ends
cancelled. With --item N too, cancels only item N of it: a running item is
stopped (with the other items of its batch), one not started yet is
cancelled at once; either way it counts as failed against the map's
tolerate. TASK.N names an item too (--task render.17).`,
	api.MapRetry: `

With --task T --item N, runs one failed, timed out or cancelled item of the
running map task T again, with a fresh retry budget; the rest of the run
goes on. Once the map has ended, retry the run itself: its failed items run
again and its succeeded items are kept. TASK.N names an item too
(--task render.17).`,
}

// itemActionsNeedServer says why actions on a map's items need a server.
const itemActionsNeedServer = "%s: actions on a map and its items need the server that executes the run (they act on the map while it runs there): pass --server URL or set %s"

// withMapFlags adds --task and --item to cancel or retry: with them the
// command acts on a map task of the run, or one of its items; without
// them it does what it did.
func (a *app) withMapFlags(cmd *cobra.Command, kind api.MapActionKind) *cobra.Command {
	var task string
	var item int
	cmd.Flags().StringVar(&task, "task", "", "act on this map task of the run (or TASK.N, one of its items) instead of the run")
	cmd.Flags().IntVar(&item, "item", 0, "with --task: act on this item of the map (its position, from 0)")
	_ = cmd.RegisterFlagCompletionFunc("task", func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return a.completeTasks(cmd, args)
	})
	cmd.Long += mapActionHelp[kind]
	switch kind {
	case api.MapCancel:
		cmd.Example = "  tasuki cancel 42\n  tasuki cancel 42 --task render             # the map task render only\n  tasuki cancel 42 --task render --item 17   # one item of it"
	case api.MapRetry:
		cmd.Example = "  tasuki retry 42\n  tasuki retry 42 --task render --item 17   # one item of a running map"
	}
	plain := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		taskSet, itemSet := cmd.Flags().Changed("task"), cmd.Flags().Changed("item")
		if !taskSet && !itemSet {
			return plain(cmd, args)
		}
		if !taskSet {
			return usageErr("--item needs --task, the map task the item belongs to")
		}
		given, err := itemFlag(itemSet, item)
		if err != nil {
			return err
		}
		name, n, err := itemTask(task, given)
		if err != nil {
			return err
		}
		if name == "" {
			return usageErr("--task: expected a map task's id")
		}
		act := api.MapAction{Kind: kind, Item: n}
		if kind == api.MapRetry && n == api.WholeMap {
			return usageErr("%s --task needs --item N: one failed item of a running map runs again (once a map has ended, '%s %s' runs its failed items again)",
				cmd.CommandPath(), cmd.CommandPath(), args[0])
		}
		return a.actOnMap(cmd, args[0], name, act)
	}
	return cmd
}

// withItemFlag adds --item to mark: with it (or a TASK of the form
// TASK.N) the command marks one item of a running map task.
func (a *app) withItemFlag(cmd *cobra.Command) *cobra.Command {
	var item int
	cmd.Flags().IntVar(&item, "item", 0, "mark this item of the map task TASK (its position, from 0) instead of the task")
	cmd.Long += `

With --item N, marks item N of the running map task TASK instead (TASK.N
names it too): an item that is not running ends succeeded or skipped, and
the map goes on. This needs the server that executes the run.`
	cmd.Example += "\n  tasuki mark 42 render skipped --item 17"
	plain := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		_, _, named := api.ParseItemLogName(args[1])
		if !cmd.Flags().Changed("item") && !named {
			return plain(cmd, args)
		}
		given, err := itemFlag(cmd.Flags().Changed("item"), item)
		if err != nil {
			return err
		}
		name, n, err := itemTask(args[1], given)
		if err != nil {
			return err
		}
		state := engine.TaskState(args[2])
		if state != engine.TaskSucceeded && state != engine.TaskSkipped {
			return usageErr("state %q: expected succeeded or skipped", args[2])
		}
		return a.actOnMap(cmd, args[0], name, api.MapAction{Kind: api.MapMark, Item: n, State: state})
	}
	return cmd
}

// itemFlag is the item --item gives, or -1 when it is not given.
func itemFlag(set bool, item int) (int, error) {
	switch {
	case !set:
		return -1, nil
	case item < 0:
		return 0, usageErr("--item %d: expected an item's position (0 or more)", item)
	}
	return item, nil
}

// actOnMap asks the server to act on a map task of the run runArg, and
// says what it did and how the map stands.
func (a *app) actOnMap(cmd *cobra.Command, runArg, task string, act api.MapAction) error {
	if err := a.checkOutput(); err != nil {
		return err
	}
	id, err := parseRunID(runArg)
	if err != nil {
		return err
	}
	if err := act.Check(); err != nil {
		return apiUsageErr(err)
	}
	c, err := a.remote(cmd)
	if err != nil {
		return err
	}
	if c == nil {
		return usageErr(itemActionsNeedServer, cmd.CommandPath(), serverEnv)
	}
	if cmd.Flags().Lookup("parallel") != nil {
		if err := refuseLocalFlags(cmd); err != nil {
			return err
		}
	}
	run, err := c.ActOnMap(cmd.Context(), id, task, act, actorName())
	if e, ok := errors.AsType[*api.Error](err); ok && e.Status == 409 && strings.Contains(e.Message, "retry the run") {
		// The server names its route; say the command.
		return &exitError{code: exitUsage, err: fmt.Errorf("%s (with the command line: tasuki retry %d)", e.Message, id)}
	}
	if err != nil {
		return remoteErr(c, err)
	}
	if a.output == "json" {
		return writeJSON(a.io.Out, run)
	}
	what := fmt.Sprintf("item %d of map task %s (run %d)", act.Item, task, id)
	if act.Item == api.WholeMap {
		what = fmt.Sprintf("map task %s of run %d", task, id)
	}
	switch {
	case act.Kind == api.MapCancel && act.Item == api.WholeMap:
		what += ": cancelled (once its running items have stopped)"
	case act.Kind == api.MapCancel:
		what += ": cancelled (if it runs, once it has stopped)"
	case act.Kind == api.MapRetry:
		what += ": runs again"
	case act.Kind == api.MapMark:
		what += ": marked " + string(act.State)
	}
	fmt.Fprintln(a.io.Out, what)
	line := fmt.Sprintf("run %d of %s: %s", run.ID, run.Pipeline, run.State)
	for _, t := range run.Tasks {
		if t.ID == task && t.Map != nil {
			counts := *t.Map
			counts.Slowest = nil // the status's business, not the action's
			line += "; " + mapCounts(&counts)
		}
	}
	fmt.Fprintln(a.io.Out, line)
	return nil
}

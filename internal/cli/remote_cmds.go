package cli

// The commands that only make sense with a server: pipelines, trigger,
// operator actions, pause/unpause and backfills.

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/runner"
)

// waitPoll is how often `trigger --wait` asks the server how the run goes.
const waitPoll = 500 * time.Millisecond

// serverCmds are the commands that talk only to a server.
func (a *app) serverCmds() []*cobra.Command {
	return []*cobra.Command{
		a.pipelinesCmd(), a.triggerCmd(),
		a.withMapFlags(a.runActionCmd("cancel", "Cancel a run (or a map task of it, or one item)", `Cancel a run on the server: tasks not started will not start, running ones
are stopped. The run ends as cancelled.`, (*api.Client).Cancel, nil), api.MapCancel),
		a.withMapFlags(a.runActionCmd("retry", "Retry a failed run's failed tasks and what follows them (or one item of a map)", `Retry a failed run in place: its unsuccessful tasks (failed, timed out,
cancelled, not run because a need failed) and everything after them run
again; tasks that succeeded are kept.`, (*api.Client).RetryFailed, a.localRetry), api.MapRetry),
		a.runActionCmd("rerun", "Start a new run like an old one", `Start a new run of the same pipeline version, with the same parameters and
interval as the given run. With a server it prints the new run's id; without
one the new run executes here, and its id is on the first line on stderr.`, (*api.Client).Rerun, a.localRerun),
		a.withItemFlag(a.markCmd()),
		a.pauseCmd(true), a.pauseCmd(false),
		a.backfillCmd(),
	}
}

func (a *app) pipelinesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pipelines",
		Short: "List the server's pipelines with their schedules and last runs",
		Long: `List the server's pipelines with their schedules and last runs, then the
pipeline files that do not load, each with its problems as file:line:col:
message. A pipeline whose file broke after it loaded keeps running its last
good version; its status says so and shows the file's first problem.

With -o json, prints the API's answer: {"items": [...], "problems": [...]}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			list, err := c.Pipelines(cmd.Context())
			if err != nil {
				return remoteErr(c, err)
			}
			if a.output == "json" {
				if list.Items == nil {
					list.Items = []api.Pipeline{}
				}
				if list.Problems == nil {
					list.Problems = []api.FileProblem{}
				}
				return writeJSON(a.io.Out, list)
			}
			t := newTable(a.io.Out, "NAME", "SCHEDULE", "NEXT RUN", "LAST RUN", "TASKS", "STATUS")
			for _, p := range list.Items {
				sched, next, last := "-", "-", "-"
				if p.Schedule != "" {
					sched = p.Schedule
					if p.Timezone != "" {
						sched += " " + p.Timezone
					}
				}
				if len(p.Datasets) > 0 {
					on := "on " + strings.Join(p.Datasets, " + ")
					if p.DatasetsAny {
						on = "on any of " + strings.Join(p.Datasets, ", ")
					}
					if sched == "-" {
						sched = on
					} else {
						sched += ", " + on
					}
				}
				if p.NextRun != nil {
					next = p.NextRun.In(zoneOf(p.Timezone)).Format("2006-01-02 15:04 MST")
				}
				if len(p.LastRuns) > 0 {
					r := p.LastRuns[0]
					last = fmt.Sprintf("%d %s", r.ID, r.State)
				}
				var status []string
				if p.Paused {
					status = append(status, "paused")
				}
				if p.Removed {
					status = append(status, "removed")
				}
				if p.Error != "" {
					status = append(status, "last good version in use; file has errors: "+firstProblem(strings.Split(p.Error, "\n")))
				}
				if len(status) == 0 {
					status = append(status, "ok")
				}
				t.row(p.Name, sched, next, last, strconv.Itoa(p.Tasks), strings.Join(status, ", "))
			}
			t.flush()
			printProblems(a.io.Out, list.Problems)
			return nil
		},
	}
	a.addOutputFlag(cmd)
	return cmd
}

// firstProblem shows the first of a file's problems on one line, and how
// many follow.
func firstProblem(errs []string) string {
	if len(errs) == 0 {
		return ""
	}
	s := truncate(errs[0], 120)
	if len(errs) > 1 {
		s += fmt.Sprintf(" (+%d more)", len(errs)-1)
	}
	return s
}

// printProblems lists the pipeline files that do not load, below the
// pipelines, with every problem on its own line.
func printProblems(w io.Writer, problems []api.FileProblem) {
	if len(problems) == 0 {
		return
	}
	fmt.Fprintf(w, "\nPipeline files that do not load (%d):\n", len(problems))
	for _, fp := range problems {
		what := fp.File
		if fp.Pipeline != "" {
			what += fmt.Sprintf(" (pipeline %s, not loaded)", fp.Pipeline)
		}
		fmt.Fprintf(w, "  %s\n", what)
		for _, e := range fp.Errors {
			fmt.Fprintf(w, "    %s\n", e)
		}
	}
}

func (a *app) triggerCmd() *cobra.Command {
	var (
		params []string
		wait   bool
	)
	cmd := &cobra.Command{
		Use:   "trigger PIPELINE",
		Short: "Start a run of a pipeline on the server now",
		Long: `Start a run of a pipeline on the server now, with parameter values checked
against the pipeline's declared types. Prints the new run's id (with -o json,
the run).

With --wait, follow the run until it ends, printing its progress on stderr;
the exit status is then 0 only if it succeeded (1 if it failed, 130 if it was
cancelled). Ctrl-C stops waiting, not the run.`,
		Example: `  tasuki trigger nightly-elt -p date=2026-11-21
  RUN=$(tasuki trigger hello) && tasuki logs -f "$RUN" greet
  tasuki trigger market-data --wait`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completePipelines,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			given, err := parseParams(params)
			if err != nil {
				return err
			}
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			run, err := c.Trigger(cmd.Context(), args[0], given, actorName())
			if err != nil {
				return remoteErr(c, err)
			}
			if !wait {
				if a.output == "json" {
					return writeJSON(a.io.Out, run)
				}
				fmt.Fprintln(a.io.Out, run.ID)
				return nil
			}
			if a.output != "json" {
				fmt.Fprintln(a.io.Out, run.ID)
			}
			fmt.Fprintf(a.io.Err, "run %d of %s: %s\n", run.ID, run.Pipeline, run.State)
			return a.waitRun(cmd.Context(), c, run.ID)
		},
	}
	cmd.Flags().StringArrayVarP(&params, "param", "p", nil, "parameter value as name=value (repeatable)")
	cmd.Flags().BoolVarP(&wait, "wait", "w", false, "follow the run until it ends; exit 0 only if it succeeded")
	a.addOutputFlag(cmd)
	return cmd
}

// waitRun prints a run's timeline on stderr until the run ends, then the
// run (a table, or JSON on stdout with -o json), and turns its end state
// into the exit status.
func (a *app) waitRun(ctx context.Context, c *api.Client, id int64) error {
	var after int64
	drain := func() error {
		for {
			page, err := c.Events(ctx, id, after, 1000)
			if err != nil {
				return err
			}
			for _, e := range page.Items {
				if line := describeEvent(e); line != "" {
					fmt.Fprintf(a.io.Err, "%s %s\n", stamp(e.Time), line)
				}
				after = e.Seq
			}
			if page.Next == "" || len(page.Items) == 0 {
				return nil
			}
		}
	}
	tick := time.NewTicker(waitPoll)
	defer tick.Stop()
	for {
		err := drain()
		var run api.Run
		if err == nil {
			run, err = c.Run(ctx, id)
		}
		if err == nil && run.State.Terminal() {
			err = drain() // what happened between the two calls
		}
		if ctx.Err() != nil {
			return &exitError{code: exitCancelled, err: fmt.Errorf("stopped waiting; run %d goes on (see: tasuki status %d)", id, id)}
		}
		if err != nil {
			return remoteErr(c, err)
		}
		if run.State.Terminal() {
			if a.output == "json" {
				if err := writeJSON(a.io.Out, run); err != nil {
					return err
				}
			} else {
				printRun(a.io.Err, run, view{loc: time.Local, width: terminalWidth(a.io.Err), under: remoteUnder(ctx, c, run)})
			}
			switch run.State {
			case engine.RunSucceeded:
				return nil
			case engine.RunCancelled:
				return &exitError{code: exitCancelled}
			default:
				return &exitError{code: exitFailed}
			}
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// describeEvent is a line about a timeline event, "" for the ones not
// worth a line.
func describeEvent(e api.Event) string {
	task := e.Task
	if e.Attempt > 1 {
		task = fmt.Sprintf("%s (attempt %d)", e.Task, e.Attempt)
	}
	by := ""
	if e.Actor != "" {
		by = " by " + e.Actor
	}
	withMsg := func(s string) string {
		if e.Message != "" {
			return s + ": " + truncate(e.Message, 100)
		}
		return s
	}
	switch e.Kind {
	case engine.EvRunStarted:
		return "run started"
	case engine.EvTaskStarted:
		return "▶ " + task + " started"
	case engine.EvTaskSucceeded:
		return "✓ " + task + " succeeded"
	case engine.EvTaskFailed:
		s := "✗ " + task + " failed"
		if e.ExitCode != nil {
			s += fmt.Sprintf(" (exit %d)", *e.ExitCode)
		}
		return withMsg(s)
	case engine.EvTaskTimedOut:
		return withMsg("⏱ " + task + " timed out")
	case engine.EvTaskLost:
		return withMsg("? " + task + " lost")
	case engine.RecRetryScheduled:
		return withMsg("↻ " + e.Task + " will retry")
	case engine.RecTaskUpstreamFailed:
		return withMsg("⊘ " + e.Task + " not run")
	case engine.EvTaskCancelled:
		return "■ " + task + " cancelled"
	case engine.EvCancel:
		return "■ cancel requested" + by
	case engine.EvRetryFailed:
		return "↻ retry of failed tasks" + by
	case engine.EvMarkSucceeded, engine.EvMarkSkipped:
		return fmt.Sprintf("%s marked %s%s", e.Task, strings.TrimPrefix(string(e.Kind), "mark_"), by)
	case runner.RecItemFailed:
		return withMsg("✗ " + e.Task) // the message names the item
	case runner.RecItemRetry:
		return withMsg("↻ " + e.Task)
	case engine.RecRunFinished:
		return withMsg("run finished")
	case engine.EvRetryDue, engine.RecTaskReady, engine.EvTaskPreempted:
		return ""
	}
	parts := []string{string(e.Kind)}
	if e.Task != "" {
		parts = append(parts, task)
	}
	return withMsg(strings.Join(parts, " ") + by)
}

// runAction is an operator action on a run, as the client offers it.
type runAction func(c *api.Client, ctx context.Context, runID int64, actor string) (api.Run, error)

func (a *app) runActionCmd(name, short, long string, act runAction, local localAction) *cobra.Command {
	var ef execFlags
	where := "\n\nNeeds a server (--server URL or $" + serverEnv + "); the action is recorded in\nthe run's timeline as done by $USER@hostname."
	if local != nil {
		where = "\n\n" + localActionHelp
	}
	cmd := &cobra.Command{
		Use:               name + " RUN_ID",
		Short:             short,
		Long:              long + where,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeRuns,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			id, err := parseRunID(args[0])
			if err != nil {
				return err
			}
			c, err := a.remote(cmd)
			if err != nil {
				return err
			}
			if c == nil && local != nil {
				return local(cmd, id, &ef)
			}
			if c == nil {
				return usageErr("%s needs a server: pass --server URL or set %s (start one with 'tasuki server')", cmd.CommandPath(), serverEnv)
			}
			if local != nil {
				if err := refuseLocalFlags(cmd); err != nil {
					return err
				}
			}
			run, err := act(c, cmd.Context(), id, actorName())
			if err != nil {
				return remoteErr(c, err)
			}
			if a.output == "json" {
				return writeJSON(a.io.Out, run)
			}
			if run.ID != id { // rerun: a new run
				fmt.Fprintln(a.io.Out, run.ID)
				fmt.Fprintf(a.io.Err, "run %d of %s: %s (a rerun of run %d)\n", run.ID, run.Pipeline, run.State, id)
				return nil
			}
			state := string(run.State)
			if run.Cancelling && !run.State.Terminal() {
				state += ", cancelling"
			}
			fmt.Fprintf(a.io.Out, "run %d of %s: %s\n", run.ID, run.Pipeline, state)
			return nil
		},
	}
	a.addOutputFlag(cmd)
	if local != nil {
		ef.register(cmd)
	}
	return cmd
}

func (a *app) markCmd() *cobra.Command {
	states := []string{string(engine.TaskSucceeded), string(engine.TaskSkipped)}
	cmd := &cobra.Command{
		Use:   "mark RUN_ID TASK succeeded|skipped",
		Short: "Mark a task that is not running as succeeded or skipped",
		Long: `Mark a task that is not running as succeeded or skipped, so the tasks that
need it can start: for example after fixing its output by hand. Needs a
server; the action is recorded in the run's timeline.`,
		Example: "  tasuki mark 42 load-rates succeeded",
		Args:    cobra.ExactArgs(3),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, s string) ([]cobra.Completion, cobra.ShellCompDirective) {
			switch len(args) {
			case 0:
				return a.completeRuns(cmd, args, s)
			case 1:
				return a.completeTasks(cmd, args)
			case 2:
				return states, cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			id, err := parseRunID(args[0])
			if err != nil {
				return err
			}
			state := engine.TaskState(args[2])
			if state != engine.TaskSucceeded && state != engine.TaskSkipped {
				return usageErr("state %q: expected succeeded or skipped", args[2])
			}
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			run, err := c.MarkTask(cmd.Context(), id, args[1], state, actorName())
			if err != nil {
				return remoteErr(c, err)
			}
			if a.output == "json" {
				return writeJSON(a.io.Out, run)
			}
			fmt.Fprintf(a.io.Out, "task %s of run %d marked %s; run %s\n", args[1], id, state, run.State)
			return nil
		},
	}
	a.addOutputFlag(cmd)
	return cmd
}

// completeTasks completes a task id of the run in args[0].
func (a *app) completeTasks(cmd *cobra.Command, args []string) ([]cobra.Completion, cobra.ShellCompDirective) {
	c, err := a.remote(cmd)
	if err != nil || c == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	id, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completeTimeout)
	defer cancel()
	run, err := c.Run(ctx, id)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]cobra.Completion, 0, len(run.Tasks))
	for _, t := range run.Tasks {
		out = append(out, cobra.CompletionWithDesc(t.ID, string(t.State)))
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func (a *app) pauseCmd(pause bool) *cobra.Command {
	name, short := "unpause", "Start a paused pipeline's scheduled runs again"
	long := `Start a paused pipeline's scheduled runs again. The intervals that ended
while it was paused are treated by its schedule's catchup policy: all of them
run (catchup: all), only the latest (catchup: latest, the default), or none
(catchup: none). Needs a server; the action is recorded as done by
$USER@hostname.`
	if pause {
		name, short = "pause", "Stop starting scheduled runs of a pipeline"
		long = `Stop starting scheduled runs of a pipeline. Runs already started go on,
and manual triggers and backfills still work. 'tasuki unpause' starts the
schedule again. Needs a server; the action is recorded as done by
$USER@hostname.`
	}
	cmd := &cobra.Command{
		Use:               name + " PIPELINE",
		Short:             short,
		Long:              long,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completePipelines,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			p, err := c.SetPaused(cmd.Context(), args[0], pause, actorName())
			if err != nil {
				return remoteErr(c, err)
			}
			if a.output == "json" {
				return writeJSON(a.io.Out, p)
			}
			if p.Paused {
				fmt.Fprintf(a.io.Out, "pipeline %s paused\n", p.Name)
			} else {
				fmt.Fprintf(a.io.Out, "pipeline %s unpaused\n", p.Name)
			}
			return nil
		},
	}
	a.addOutputFlag(cmd)
	return cmd
}

// backfillFlags are the flags of creating a backfill.
type backfillFlags struct {
	from, to string
	parallel int
	params   []string
	deadline string
}

func (f *backfillFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.from, "from", "", "start of the range (included): 2026-01-01, 2026-01-01T09:00 or RFC 3339")
	cmd.Flags().StringVar(&f.to, "to", "", "end of the range, in the same forms: a date alone takes in that whole day; a time is the exact end")
	cmd.Flags().IntVar(&f.parallel, "parallel", 1, "runs of the backfill active at once")
	cmd.Flags().StringArrayVarP(&f.params, "param", "p", nil, "parameter value for every run as name=value (repeatable)")
	cmd.Flags().StringVar(&f.deadline, "deadline", "", "a deadline for every run of the backfill, in the same forms as --to (a date alone: the end of that day); without it they have none")
}

const backfillLong = `A backfill creates one run of a pipeline per schedule interval that lies
wholly in a past range, started in order with at most --parallel active at
once. It is an object of its own that can be listed, watched and cancelled.

Times without an offset (2026-01-01, 2026-01-01T09:00) are read in the
pipeline's time zone (UTC if it has none); add one to be exact
(2026-01-01T00:00:00+09:00). A date alone names a whole day: --from starts
at its beginning and --to takes in all of it, so --from 2026-11-01 --to
2026-11-08 runs every interval from November 1 to 8, both included. For a
pipeline that runs at 02:30 for the day before, that is 7 runs, which load
November 1 to 7. Needs a server.

Backfill runs have no deadline (the pipeline's would have passed long ago)
unless --deadline gives one for all of them; the server then says when they
are at risk of missing it, as for scheduled runs.

  tasuki backfill PIPELINE --from T --to T   create one (same as 'create')
  tasuki backfill list [--pipeline P]         list backfills, newest first
  tasuki backfill show ID                     show one, with its runs by state
  tasuki backfill cancel ID                   cancel its runs not yet finished

The runs of a backfill are listed by 'tasuki runs' too.`

func (a *app) backfillCmd() *cobra.Command {
	var f backfillFlags
	cmd := &cobra.Command{
		Use:   "backfill PIPELINE --from T --to T [--parallel N] [-p name=value]",
		Short: "Run a pipeline over a past range, one run per interval (and list, show, cancel backfills)",
		Long:  backfillLong,
		Example: `  tasuki backfill nightly-elt --from 2026-01-01 --to 2026-02-01 --parallel 4
  tasuki backfill list
  tasuki backfill cancel 3`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: a.completePipelines,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErr("tasuki backfill needs a PIPELINE, or one of create, list, show, cancel (see tasuki backfill --help)")
			}
			return a.createBackfill(cmd, args[0], &f)
		},
	}
	f.register(cmd)
	a.addOutputFlag(cmd)
	cmd.AddCommand(a.backfillCreateCmd(), a.backfillListCmd(), a.backfillShowCmd(), a.backfillCancelCmd())
	return cmd
}

func (a *app) backfillCreateCmd() *cobra.Command {
	var f backfillFlags
	cmd := &cobra.Command{
		Use:               "create PIPELINE --from T --to T [--parallel N] [-p name=value]",
		Short:             "Create a backfill (the same as 'tasuki backfill PIPELINE ...')",
		Long:              backfillLong,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completePipelines,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.createBackfill(cmd, args[0], &f)
		},
	}
	f.register(cmd)
	a.addOutputFlag(cmd)
	return cmd
}

// createBackfill creates a backfill and prints it.
func (a *app) createBackfill(cmd *cobra.Command, pipeline string, f *backfillFlags) error {
	if err := a.checkOutput(); err != nil {
		return err
	}
	if f.from == "" || f.to == "" {
		return usageErr("a backfill needs --from and --to")
	}
	if f.parallel < 1 {
		return usageErr("--parallel %d: expected at least 1", f.parallel)
	}
	given, err := parseParams(f.params)
	if err != nil {
		return err
	}
	c, err := a.needServer(cmd)
	if err != nil {
		return err
	}
	p, err := c.Pipeline(cmd.Context(), pipeline)
	if err != nil {
		return remoteErr(c, err)
	}
	loc := time.UTC
	if p.Timezone != "" {
		if l, err := time.LoadLocation(p.Timezone); err == nil {
			loc = l
		}
	}
	from, err := parseWhen("--from", f.from, loc)
	if err != nil {
		return err
	}
	to, err := parseWhen("--to", f.to, loc)
	if err != nil {
		return err
	}
	if isDate(f.to) {
		to = to.AddDate(0, 0, 1) // a day named as the end is included
	}
	if !to.After(from) {
		return usageErr("--to %s must be after --from %s", to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	req := api.BackfillRequest{Pipeline: pipeline, From: from, To: to, Parallel: f.parallel, Params: given}
	if f.deadline != "" {
		d, err := parseWhen("--deadline", f.deadline, loc)
		if err != nil {
			return err
		}
		if isDate(f.deadline) {
			d = d.AddDate(0, 0, 1)
		}
		req.Deadline = &d
	}
	b, err := c.CreateBackfill(cmd.Context(), req, actorName())
	if err != nil {
		return remoteErr(c, err)
	}
	if a.output == "json" {
		return writeJSON(a.io.Out, b)
	}
	fmt.Fprintf(a.io.Out, "backfill %d of %s: %s from %s to %s, %d at once\n", b.ID, b.Pipeline, countRuns(b.Runs),
		b.From.In(loc).Format(time.RFC3339), b.To.In(loc).Format(time.RFC3339), b.Parallel)
	fmt.Fprintf(a.io.Err, "watch it with: tasuki backfill show %d (its runs: tasuki runs --backfill %d)\n", b.ID, b.ID)
	return nil
}

// whenLayouts are the forms --from and --to accept without an offset.
var whenLayouts = []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"}

// isDate reports whether s is a date alone (2026-11-08), which as --to
// names a whole day to include.
func isDate(s string) bool {
	_, err := time.Parse("2006-01-02", s)
	return err == nil
}

// parseWhen reads a time given on the command line: RFC 3339, or a date
// or date and time read in loc.
func parseWhen(flag, s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range whenLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usageErr("%s %q: expected a date like 2026-01-31, a time like 2026-01-31T09:00, or RFC 3339 like 2026-01-31T09:00:00+09:00", flag, s)
}

func (a *app) backfillListCmd() *cobra.Command {
	var (
		pipeline, cursor string
		limit            int
	)
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List backfills, newest first",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			page, err := c.Backfills(cmd.Context(), pipeline, cursor, limit)
			if err != nil {
				return remoteErr(c, err)
			}
			if a.output == "json" {
				if page.Items == nil {
					page.Items = []api.Backfill{}
				}
				if err := writeJSON(a.io.Out, page.Items); err != nil {
					return err
				}
			} else {
				t := newTable(a.io.Out, "ID", "PIPELINE", "FROM", "TO", "STATE", "RUNS", "PARALLEL", "BY")
				for _, b := range page.Items {
					t.row(strconv.FormatInt(b.ID, 10), b.Pipeline, b.From.Format(time.RFC3339), b.To.Format(time.RFC3339),
						b.State, fmt.Sprintf("%s of %d", countsDone(b), b.Runs), strconv.Itoa(b.Parallel), b.Actor)
				}
				t.flush()
			}
			if page.Next != "" {
				fmt.Fprintf(a.io.Err, "more: tasuki backfill list --cursor %s\n", page.Next)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pipeline, "pipeline", "", "only backfills of this pipeline")
	cmd.Flags().StringVar(&cursor, "cursor", "", "continue a listing where the previous page ended")
	cmd.Flags().IntVar(&limit, "limit", 20, "most backfills to list")
	a.addOutputFlag(cmd)
	return cmd
}

// countsDone says how many runs of a backfill have finished.
func countsDone(b api.Backfill) string {
	done := 0
	for s, n := range b.Counts {
		if s.Terminal() {
			done += n
		}
	}
	return strconv.Itoa(done) + " done"
}

func (a *app) backfillShowCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show BACKFILL_ID",
		Short: "Show a backfill and its runs by state",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.backfillAction(cmd, args[0], (*api.Client).Backfill)
		},
	}
	a.addOutputFlag(cmd)
	return cmd
}

func (a *app) backfillCancelCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cancel BACKFILL_ID",
		Short: "Cancel a backfill: its runs not yet finished are cancelled",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.backfillAction(cmd, args[0], func(c *api.Client, ctx context.Context, id int64) (api.Backfill, error) {
				return c.CancelBackfill(ctx, id, actorName())
			})
		},
	}
	a.addOutputFlag(cmd)
	return cmd
}

// backfillAction gets or acts on one backfill and prints it.
func (a *app) backfillAction(cmd *cobra.Command, arg string, act func(c *api.Client, ctx context.Context, id int64) (api.Backfill, error)) error {
	if err := a.checkOutput(); err != nil {
		return err
	}
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || id <= 0 {
		return usageErr("backfill id %q: expected a positive number", arg)
	}
	c, err := a.needServer(cmd)
	if err != nil {
		return err
	}
	b, err := act(c, cmd.Context(), id)
	if err != nil {
		return remoteErr(c, err)
	}
	if a.output == "json" {
		return writeJSON(a.io.Out, b)
	}
	printBackfill(a.io.Out, b)
	return nil
}

// printBackfill prints one backfill.
func printBackfill(w io.Writer, b api.Backfill) {
	fmt.Fprintf(w, "backfill %d of %s: %s\n", b.ID, b.Pipeline, b.State)
	fmt.Fprintf(w, "range: %s to %s, %s, %d at once\n", b.From.Format(time.RFC3339), b.To.Format(time.RFC3339), countRuns(b.Runs), b.Parallel)
	created := "created " + b.CreatedAt.Local().Format(time.RFC3339)
	if b.Actor != "" {
		created += " by " + b.Actor
	}
	if b.FinishedAt != nil {
		created += ", finished " + b.FinishedAt.Local().Format(time.RFC3339)
	}
	fmt.Fprintln(w, created)
	states := make([]string, 0, len(b.Counts))
	for s, n := range b.Counts {
		states = append(states, fmt.Sprintf("%s %d", s, n))
	}
	sort.Strings(states)
	if len(states) > 0 {
		fmt.Fprintf(w, "runs: %s\n", strings.Join(states, ", "))
	}
	fmt.Fprintf(w, "its runs: tasuki runs --backfill %d\n", b.ID)
}

// countRuns says how many runs: "1 run", "7 runs".
func countRuns(n int) string {
	if n == 1 {
		return "1 run"
	}
	return fmt.Sprintf("%d runs", n)
}

package cli

// Talking to a tasuki server: the --server flag, the client, and the
// server variants of the commands that otherwise read the local data
// directory (runs, status, logs).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// serverEnv names the server when --server is not given, so a shell can
// point every command at one server once.
const serverEnv = "TASUKI_SERVER"

// completeTimeout bounds the server calls shell completion makes: a slow
// or absent server must not hang the user's shell.
const completeTimeout = 3 * time.Second

// addServerFlag registers the persistent --server flag on the root command.
// Its value is read back through cmd.Flag("server"), so app needs no field
// for it.
func (a *app) addServerFlag(root *cobra.Command) {
	root.PersistentFlags().String("server", "",
		"URL of a tasuki server to talk to, for example http://127.0.0.1:8080 (default $"+serverEnv+")")
	addCAFlag(root)
}

// serverURL is the server a command should talk to: --server, else
// $TASUKI_SERVER, else "" (none: work on the local data directory).
func serverURL(cmd *cobra.Command) string {
	if f := cmd.Flag("server"); f != nil && f.Value.String() != "" {
		return f.Value.String()
	}
	return os.Getenv(serverEnv)
}

// remote returns a client of the server given by --server or
// $TASUKI_SERVER, or nil (and no error) when none is given, in which case
// the command works on the local data directory.
func (a *app) remote(cmd *cobra.Command) (*api.Client, error) {
	u := serverURL(cmd)
	if u == "" {
		return nil, nil
	}
	hc, err := a.httpClient(cmd)
	if err != nil {
		return nil, err
	}
	c, err := api.NewClient(u, hc)
	if err != nil {
		return nil, usageErr("--server: %v", err)
	}
	token, err := a.apiToken(cmd, u)
	if err != nil {
		return nil, err
	}
	return c.WithToken(token), nil
}

// needServer is remote for commands that only make sense with a server.
func (a *app) needServer(cmd *cobra.Command) (*api.Client, error) {
	c, err := a.remote(cmd)
	if err == nil && c == nil {
		err = usageErr("%s needs a server: pass --server URL or set %s (start one with 'tasuki server')", cmd.CommandPath(), serverEnv)
	}
	return c, err
}

// actorName says who is acting, for the timeline of operator actions:
// $USER@hostname.
func actorName() string {
	name := os.Getenv("USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
	}
	if name == "" {
		name = "unknown"
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return name + "@" + host
}

// remoteErr turns an error from the server into the command's error: what
// the caller got wrong (a 4xx) is a usage error with the server's message;
// anything else is a failure that says which server it came from.
func remoteErr(c *api.Client, err error) error {
	if err == nil {
		return nil
	}
	return remoteErrAt(c.BaseURL(), err)
}

// remoteErrAt is remoteErr for the server, or servers, named by where.
func remoteErrAt(where string, err error) error {
	if err == nil {
		return nil
	}
	var e *api.Error
	if errors.As(err, &e) {
		if e.Status >= 400 && e.Status < 500 {
			return &exitError{code: exitUsage, err: errors.New(e.Message)}
		}
		return &exitError{code: exitFailed, err: fmt.Errorf("server %s: %s", where, e.Message)}
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code: exitFailed, err: fmt.Errorf("talk to the server at %s: %w", where, err)}
}

// remoteRunE is how a command runs against a server.
type remoteRunE func(cmd *cobra.Command, args []string, c *api.Client) error

// withServer makes a command that reads the local data directory (runs,
// status, logs) talk to the server instead when one is given. setup
// registers the flags only the server variant has (they are refused
// without a server) and returns how to run against the server. The local
// command's own flags are read back by name.
func (a *app) withServer(cmd *cobra.Command, setup func(cmd *cobra.Command) remoteRunE) *cobra.Command {
	before := map[string]bool{}
	cmd.Flags().VisitAll(func(f *pflag.Flag) { before[f.Name] = true })
	run := setup(cmd)
	var serverOnly []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if !before[f.Name] {
			serverOnly = append(serverOnly, f.Name)
		}
	})
	local := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := a.remote(cmd)
		if err != nil {
			return err
		}
		if c == nil {
			for _, name := range serverOnly {
				if cmd.Flags().Changed(name) {
					return usageErr("--%s works with a server: pass --server URL or set %s", name, serverEnv)
				}
			}
			return local(cmd, args)
		}
		return run(cmd, args, c)
	}
	if cmd.ValidArgsFunction == nil && strings.Contains(cmd.Use, " RUN") {
		takesTask := strings.Contains(cmd.Use, " TASK")
		cmd.ValidArgsFunction = func(cmd *cobra.Command, args []string, s string) ([]cobra.Completion, cobra.ShellCompDirective) {
			switch {
			case len(args) == 0:
				return a.completeRuns(cmd, args, s)
			case len(args) == 1 && takesTask:
				return a.completeTasks(cmd, args)
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
	}
	cmd.Long = strings.TrimRight(cmd.Long, "\n")
	if cmd.Long == "" {
		cmd.Long = cmd.Short + "."
	}
	cmd.Long += "\n\nWith --server URL (or $" + serverEnv + ") it asks that server instead of the\nlocal data directory."
	return cmd
}

// flagString reads a flag of a command by name.
func flagString(cmd *cobra.Command, name string) (string, error) {
	f := cmd.Flag(name)
	if f == nil {
		return "", fmt.Errorf("internal: command %s has no --%s flag", cmd.Name(), name)
	}
	return f.Value.String(), nil
}

// flagInt reads an integer flag of a command by name.
func flagInt(cmd *cobra.Command, name string) (int64, error) {
	s, err := flagString(cmd, name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("internal: --%s=%q is not a number", name, s)
	}
	return n, nil
}

// remoteRuns is `tasuki runs` against a server. It adds --cursor; --before
// (an id bound for the local store) has no meaning there.
func (a *app) remoteRuns(cmd *cobra.Command) remoteRunE {
	var cursor string
	cmd.Flags().StringVar(&cursor, "cursor", "", "continue a listing where the previous page ended (printed after it; needs --server)")
	return func(cmd *cobra.Command, _ []string, c *api.Client) error {
		if err := a.checkOutput(); err != nil {
			return err
		}
		if cmd.Flags().Changed("before") {
			return usageErr("--before pages the local data directory; with a server, use --cursor")
		}
		pipeline, err := flagString(cmd, "pipeline")
		if err != nil {
			return err
		}
		limit, err := flagInt(cmd, "limit")
		if err != nil {
			return err
		}
		backfill, err := flagInt(cmd, "backfill")
		if err != nil {
			return err
		}
		given, err := cmd.Flags().GetStringSlice("state")
		if err != nil {
			return err
		}
		states, err := parseStates(given)
		if err != nil {
			return err
		}
		f := api.RunFilter{Pipeline: pipeline, States: states, BackfillID: backfill, Cursor: cursor, Limit: int(limit)}
		page, err := c.Runs(cmd.Context(), f)
		if err != nil {
			return remoteErr(c, err)
		}
		if a.output == "json" {
			if page.Items == nil {
				page.Items = []api.Run{}
			}
			if err := writeJSON(a.io.Out, page.Items); err != nil {
				return err
			}
		} else {
			printRuns(a.io.Out, page.Items)
		}
		if page.Next != "" {
			fmt.Fprintf(a.io.Err, "more: tasuki runs --cursor %s\n", page.Next)
		}
		return nil
	}
}

// remoteStatus is `tasuki status RUN` against a server.
func (a *app) remoteStatus(*cobra.Command) remoteRunE {
	return func(cmd *cobra.Command, args []string, c *api.Client) error {
		if err := a.checkOutput(); err != nil {
			return err
		}
		id, err := parseRunID(args[0])
		if err != nil {
			return err
		}
		run, err := c.Run(cmd.Context(), id)
		if err != nil {
			return remoteErr(c, err)
		}
		if a.output == "json" {
			return writeJSON(a.io.Out, run)
		}
		v := view{loc: time.Local, width: terminalWidth(a.io.Out), under: remoteUnder(cmd.Context(), c, run)}
		if p, err := c.Pipeline(cmd.Context(), run.Pipeline); err == nil {
			v.loc = zoneOf(p.Timezone)
		}
		printRun(a.io.Out, run, v)
		return nil
	}
}

// remoteLogs is `tasuki logs RUN TASK` against a server.
func (a *app) remoteLogs(*cobra.Command) remoteRunE {
	return func(cmd *cobra.Command, args []string, c *api.Client) error {
		id, err := parseRunID(args[0])
		if err != nil {
			return err
		}
		attempt, err := flagInt(cmd, "attempt")
		if err != nil {
			return err
		}
		if attempt < 0 {
			return usageErr("--attempt %d: expected a positive number", attempt)
		}
		follow, err := flagString(cmd, "follow")
		if err != nil {
			return err
		}
		itemFlag, err := flagInt(cmd, "item")
		if err != nil {
			return err
		}
		task, item, err := itemTask(args[1], int(itemFlag))
		if err != nil {
			return err
		}
		if item >= 0 {
			return a.remoteItemLog(cmd, c, id, task, item, int(attempt), follow == "true")
		}
		if t, err := c.Task(cmd.Context(), id, task); err == nil && t.Map != nil {
			return mapLogHint(id, task) // a map has no log of its own: its items have
		}
		if follow == "true" {
			src := &remoteFollow{c: c, runID: id, id: args[1], errOut: a.io.Err}
			name := fmt.Sprintf("task %q of run %d", args[1], id)
			err := followTask(cmd.Context(), src, a.io.Out, a.io.Err, name, int(attempt))
			if err != nil && cmd.Context().Err() != nil {
				return nil // Ctrl-C ends following; that is not an error
			}
			return remoteErr(c, err)
		}
		_, err = c.ReadLog(cmd.Context(), id, args[1], int(attempt), 0, a.io.Out)
		return remoteErr(c, err)
	}
}

// printRuns prints a table of runs.
func printRuns(w io.Writer, runs []api.Run) {
	t := newTable(w, "ID", "PIPELINE", "STATE", "TRIGGER", "CREATED", "DURATION", "TASKS")
	for _, r := range runs {
		state := string(r.State)
		if r.Cancelling && !r.State.Terminal() {
			state += " (cancelling)"
		}
		t.row(strconv.FormatInt(r.ID, 10), r.Pipeline, state, r.Trigger,
			r.CreatedAt.Local().Format(timeLayout), spanDuration(r.StartedAt, r.FinishedAt),
			fmt.Sprintf("%d/%d", r.TaskCount-r.Remaining, r.TaskCount))
	}
	t.flush()
}

// printRun prints one run and its tasks.
func printRun(w io.Writer, run api.Run, v view) {
	fmt.Fprintf(w, "run %d of %s: %s (trigger %s, created %s)\n", run.ID, run.Pipeline, run.State, run.Trigger,
		v.at(run.CreatedAt))
	if len(run.Params) > 2 {
		fmt.Fprintf(w, "params: %s\n", run.Params)
	}
	if run.IntervalStart != nil && run.IntervalEnd != nil {
		fmt.Fprintf(w, "interval: %s to %s\n", v.at(*run.IntervalStart), v.at(*run.IntervalEnd))
	}
	if run.BackfillID != 0 {
		fmt.Fprintf(w, "backfill: %d\n", run.BackfillID)
	}
	printDeadline(w, run, v)
	if run.Cancelling && !run.State.Terminal() {
		fmt.Fprintln(w, "cancelling: running tasks are being stopped")
	}
	if len(run.Tasks) > 0 {
		lines := make([]taskLine, len(run.Tasks))
		for i, task := range run.Tasks {
			exit := "-"
			if task.ExitCode != nil {
				exit = strconv.Itoa(*task.ExitCode)
			}
			msg := task.Message
			if task.Waiting != "" {
				msg = "waiting: " + task.Waiting
			}
			lines[i] = taskLine{task.ID, string(task.State), strconv.Itoa(task.Attempt), spanDuration(task.StartedAt, task.FinishedAt), exit, msg}
		}
		v.printTasks(w, lines)
	}
	fmt.Fprintf(w, "run %d of %s %s in %s\n", run.ID, run.Pipeline, run.State, spanDuration(run.StartedAt, run.FinishedAt))
}

// spanDuration is how long something that started ran, up to now if it
// has not finished; "-" if it has not started.
func spanDuration(start, end *time.Time) string {
	if start == nil {
		return "-"
	}
	e := time.Now()
	if end != nil {
		e = *end
	}
	return fmtDuration(e.Sub(*start))
}

// completeRuns completes a run id from the server's latest runs.
func (a *app) completeRuns(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := a.remote(cmd)
	if err != nil || c == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completeTimeout)
	defer cancel()
	page, err := c.Runs(ctx, api.RunFilter{Limit: 50})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]cobra.Completion, 0, len(page.Items))
	for _, r := range page.Items {
		out = append(out, cobra.CompletionWithDesc(strconv.FormatInt(r.ID, 10), r.Pipeline+" "+string(r.State)))
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
}

// completePipelines completes a pipeline name from the server.
func (a *app) completePipelines(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := a.remote(cmd)
	if err != nil || c == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completeTimeout)
	defer cancel()
	list, err := c.Pipelines(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]cobra.Completion, 0, len(list.Items))
	for _, p := range list.Items {
		out = append(out, cobra.CompletionWithDesc(p.Name, p.Description))
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// listRemote is the body of a command that lists what the server keeps
// (tokens, users, secrets): fetch the list, then print it as JSON (an empty
// list as [], never null) with -o json, else as the table that table writes.
func listRemote[T any](a *app, cmd *cobra.Command, fetch func(*api.Client, context.Context) ([]T, error), table func([]T)) error {
	if err := a.checkOutput(); err != nil {
		return err
	}
	c, err := a.needServer(cmd)
	if err != nil {
		return err
	}
	list, err := fetch(c, cmd.Context())
	if err != nil {
		return remoteErr(c, err)
	}
	if a.output == "json" {
		if list == nil {
			list = []T{}
		}
		return writeJSON(a.io.Out, list)
	}
	table(list)
	return nil
}

package cli

// Operator actions without a server: 'tasuki retry' and 'tasuki rerun' act
// on the local data directory through the runner, the way the server does
// on its store, and then execute the run here in the foreground, as
// 'tasuki resume' does. Someone who only ever uses 'tasuki run' can do what
// a server user can.

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/runner"
)

// localAction is how an operator action runs on the local data directory.
type localAction func(cmd *cobra.Command, id int64, ef *execFlags) error

// localActionHelp ends the help of the actions that work without a server.
const localActionHelp = `Without a server, it acts on the local data directory (--home) and executes
the run here, in the foreground, as 'tasuki resume' does: progress, then a
summary; the exit status is 0 only if the run succeeded. With --server URL
(or $` + serverEnv + `) the server does it, and the flags of local execution
(--parallel, --pool, --grace, --progress, --quiet) do not apply. Either way
the action is recorded in the run's timeline as done by $USER@hostname.`

// triggerRerun is the trigger of a run started by rerun, as the server
// records it.
const triggerRerun = "rerun"

// refuseLocalFlags refuses the flags of local execution with a server,
// which executes runs with its own settings.
func refuseLocalFlags(cmd *cobra.Command) error {
	for _, name := range []string{"parallel", "quiet", "grace", "pool", "progress", "no-cache"} {
		if cmd.Flags().Changed(name) {
			return usageErr("--%s applies to a run executed here; with a server, the server executes it (drop --%s, or the server)", name, name)
		}
	}
	return nil
}

// localRetry reopens a local run's unsuccessful tasks and executes it.
func (a *app) localRetry(cmd *cobra.Command, id int64, ef *execFlags) error {
	ctx := cmd.Context()
	l, err := a.openForRuns(ctx)
	if err != nil {
		return err
	}
	defer l.Close()
	before, err := l.store.Run(ctx, id)
	if err != nil {
		return runLookupErr(id, err)
	}
	r, err := a.newRunner(l, ef)
	if err != nil {
		return err
	}
	run, _, err := r.Act(ctx, id, engine.Event{Kind: engine.EvRetryFailed, Task: -1, Actor: actorName()})
	switch {
	case errors.Is(err, engine.ErrRejected) && !before.State.Terminal():
		return usageErr("run %d of %s has not ended (%s), so there is nothing to retry yet; if the tasuki that ran it died, 'tasuki resume %d' continues it: %v", id, before.Pipeline, before.State, id, err)
	case errors.Is(err, engine.ErrRejected):
		return usageErr("run %d of %s is %s, so there is nothing to retry: %v", id, before.Pipeline, before.State, err)
	case errors.Is(err, runner.ErrBusy):
		return &exitError{code: exitFailed, err: fmt.Errorf("run %d is being executed by another tasuki process on this data directory ('tasuki run', 'resume' or a server); act there, or wait for it to end", id)}
	case err != nil:
		return fmt.Errorf("retry run %d: %w", id, err)
	}
	fmt.Fprintf(a.io.Err, "retrying run %d of %s: its unsuccessful tasks and what follows them run again (resume with: tasuki resume %d)\n", id, run.Pipeline, id)
	return a.execute(ctx, l, r, id, ef)
}

// localRerun creates a new run like an old one (same pipeline version,
// parameters and interval) and executes it.
func (a *app) localRerun(cmd *cobra.Command, id int64, ef *execFlags) error {
	ctx := cmd.Context()
	l, err := a.openForRuns(ctx)
	if err != nil {
		return err
	}
	defer l.Close()
	old, err := l.store.Run(ctx, id)
	if err != nil {
		return runLookupErr(id, err)
	}
	r, err := a.newRunner(l, ef)
	if err != nil {
		return err
	}
	p, err := r.Pipeline(ctx, old.VersionID)
	if err != nil {
		return fmt.Errorf("pipeline version of run %d: %w", id, err)
	}
	params, err := runner.ParamText(p, old.Params)
	if err != nil {
		return fmt.Errorf("parameters of run %d: %w", id, err)
	}
	nr, err := r.NewRun(ctx, p, params, triggerRerun)
	if err != nil {
		var pe *runner.ParamError
		if errors.As(err, &pe) {
			return &exitError{code: exitUsage, err: fmt.Errorf("rerun of run %d: %w", id, err)}
		}
		return fmt.Errorf("rerun of run %d: %w", id, err)
	}
	nr.Run.IntervalStart, nr.Run.IntervalEnd = old.IntervalStart, old.IntervalEnd
	nr.Actor = actorName()
	run, err := l.store.CreateRun(ctx, nr)
	if err != nil {
		return fmt.Errorf("rerun of run %d: %w", id, err)
	}
	fmt.Fprintf(a.io.Err, "run %d of %s: a rerun of run %d, %d tasks (resume with: tasuki resume %d)\n", run.ID, run.Pipeline, id, run.TaskCount, run.ID)
	return a.execute(ctx, l, r, run.ID, ef)
}

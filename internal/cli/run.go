package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/kinds"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/secret"
	"github.com/tasuki-dev/tasuki/internal/server"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
)

// execFlags are the flags shared by run and resume.
type execFlags struct {
	parallel int
	quiet    bool
	progress string
	grace    time.Duration
	pools    []string
	noCache  bool
}

func (f *execFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVarP(&f.parallel, "parallel", "j", 4, "most task attempts running at once")
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "print only the summary")
	cmd.Flags().DurationVar(&f.grace, "grace", 10*time.Second, "time a task gets between SIGTERM and SIGKILL when it is cancelled or times out")
	cmd.Flags().StringArrayVar(&f.pools, "pool", nil, "limit a pool of task slots as name=slots (repeatable); pools not given are bounded only by --parallel")
	cmd.Flags().StringVar(&f.progress, "progress", "auto", "progress display: auto, tasks (a line per event) or compact (a progress line)")
	cmd.Flags().BoolVar(&f.noCache, "no-cache", false, "run every task, even those with cache: (their results are still stored for later runs)")
}

func (a *app) runCmd() *cobra.Command {
	var (
		ef     execFlags
		params []string
	)
	cmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Run a pipeline on this machine until it ends",
		Long: `Run a pipeline file on this machine, on the embedded store of the data
directory, in the foreground. Progress is printed as tasks start, finish and
retry; a summary table follows. The exit status is 0 only if the run
succeeded (1 if it failed, 130 if it was interrupted).

If tasuki is killed, 'tasuki resume RUN_ID' continues the run: tasks that
succeeded are not run again, and attempts that were running are recorded as
lost and run again; a lost attempt is not charged to the task's retry budget
(after 10 losses of one task, further ones are). Ctrl-C cancels the run
cleanly: every task's process group gets SIGTERM, then SIGKILL after --grace.

When a run failed, 'tasuki retry RUN_ID' runs its failed tasks and what
follows them again, and 'tasuki rerun RUN_ID' starts a new run like it.`,
		Example: `  tasuki run examples/nightly-elt.yaml --param date=2026-11-21
  tasuki run pipeline.yaml -j 16 --progress compact`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			given, err := parseParams(params)
			if err != nil {
				return err
			}
			p, err := spec.ParseFile(args[0])
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			l, err := a.openForRuns(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			r, err := a.newRunner(l, &ef)
			if err != nil {
				return err
			}
			run, err := r.Create(cmd.Context(), p, given, "manual")
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			fmt.Fprintf(a.io.Err, "run %d of %s: %d tasks (resume with: tasuki resume %d)\n", run.ID, run.Pipeline, run.TaskCount, run.ID)
			return a.execute(cmd.Context(), l, r, run.ID, &ef)
		},
	}
	ef.register(cmd)
	cmd.Flags().StringArrayVarP(&params, "param", "p", nil, "parameter value as name=value (repeatable)")
	return cmd
}

func (a *app) resumeCmd() *cobra.Command {
	var ef execFlags
	cmd := &cobra.Command{
		Use:   "resume RUN_ID",
		Short: "Continue a run that was interrupted",
		Long: `Continue a run whose tasuki process was killed or crashed. Tasks that
succeeded are kept; attempts that were running are recorded as lost, what
they left behind is killed, and they run again without being charged to the
task's retry budget (after 10 losses of one task, further ones are); the
rest runs as before. The run uses the exact pipeline version it started
with, even if the file changed since.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseRunID(args[0])
			if err != nil {
				return err
			}
			l, err := a.openForRuns(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			run, err := l.store.Run(cmd.Context(), id)
			if err != nil {
				return runLookupErr(id, err)
			}
			if run.State.Terminal() {
				return &exitError{code: exitUsage, err: fmt.Errorf("run %d already %s; nothing to resume", id, run.State)}
			}
			fmt.Fprintf(a.io.Err, "resuming run %d of %s (%d of %d tasks not finished)\n", run.ID, run.Pipeline, run.Remaining, run.TaskCount)
			r, err := a.newRunner(l, &ef)
			if err != nil {
				return err
			}
			return a.execute(cmd.Context(), l, r, id, &ef)
		},
	}
	ef.register(cmd)
	return cmd
}

// openForRuns opens the data directory to execute runs in this process.
// Any number of such processes share it, but a server owns its data
// directory alone: beside one, this refuses and says to go through it.
func (a *app) openForRuns(ctx context.Context) (*local, error) {
	l, err := a.openHome(ctx, sqlite.Local)
	var inUse *sqlite.InUseError
	if errors.As(err, &inUse) && inUse.Server {
		return nil, &exitError{code: exitFailed, err: fmt.Errorf("%w.\n"+
			"A server executes every run of its data directory: run pipelines through it "+
			"(put the file in its pipelines directory, then: %s=http://ADDR tasuki trigger NAME), "+
			"or use another data directory here (--home DIR)", err, serverEnv)}
	}
	return l, err
}

func (a *app) newRunner(l *local, ef *execFlags) (*runner.Runner, error) {
	pools, err := server.ParsePools(ef.pools)
	if err != nil {
		return nil, usageErr("--pool: %v", err)
	}
	d := runner.NewDispatcher(ef.parallel, pools)
	d.OpenPools = true
	// Secrets as a server finds them: this process's TASUKI_SECRET_<NAME>
	// variables, $TASUKI_SECRETS_DIR, then the data directory's store.
	secrets := &secret.Resolver{
		Environ: os.Environ(),
		Dir:     os.Getenv("TASUKI_SECRETS_DIR"),
		Store:   &secret.Store{DB: l.store, Keys: secret.NewKeys(l.home, os.Getenv)},
	}
	return &runner.Runner{Store: l.store, Logs: l.logs, Home: l.home, Dispatcher: d, Grace: ef.grace, Secrets: secrets, Kinds: kinds.WithStore(l.store, nil), NoCache: ef.noCache}, nil
}

// execute drives the run, printing progress, then the summary.
func (a *app) execute(ctx context.Context, l *local, r *runner.Runner, id int64, ef *execFlags) error {
	pr := newProgress(a.io.Err, ef)
	r.Observe = pr.observe
	run, err := r.Execute(ctx, id)
	pr.stop()
	if err != nil {
		if errors.Is(err, runner.ErrBusy) {
			return &exitError{code: exitFailed, err: err}
		}
		return fmt.Errorf("%w (the run can be resumed: tasuki resume %d)", err, id)
	}
	tasks, err := l.store.Tasks(context.WithoutCancel(ctx), id)
	if err != nil {
		return err
	}
	// The runner has the run's pipeline parsed already: the summary reads
	// it from there rather than parse the stored version again.
	p, perr := r.Pipeline(context.WithoutCancel(ctx), run.VersionID)
	if perr != nil {
		p = nil
	}
	redactRun(p, &run)
	if a.output == "json" {
		if err := writeJSON(a.io.Out, runView(run, tasks)); err != nil {
			return err
		}
	} else {
		printSummary(a.io.Out, run, tasks, a.layoutOf(context.WithoutCancel(ctx), l, run, p))
	}
	a.sweepArtifacts(ctx, l, r)
	switch run.State {
	case engine.RunSucceeded:
		return nil
	case engine.RunCancelled:
		return &exitError{code: exitCancelled}
	default:
		return &exitError{code: exitFailed}
	}
}

// sweepArtifacts deletes the files of the data directory's artifact store
// that no run and no cache entry of it names, once they are
// server.ArtifactSweepAge old. A server sweeps after it prunes history;
// without one, each run sweeps when it ends (files of runs still going,
// here or in another process, are newer than that or named). A run that
// was interrupted leaves it to the next one, and a sweep that fails is a
// warning: the run's outcome stands.
func (a *app) sweepArtifacts(ctx context.Context, l *local, r *runner.Runner) {
	if ctx.Err() != nil {
		return
	}
	if _, err := artifact.Sweep(ctx, r.ArtifactStore(), l.store.ArtifactDigests, time.Now().Add(-server.ArtifactSweepAge)); err != nil && ctx.Err() == nil {
		fmt.Fprintf(a.io.Err, "tasuki: warning: %v (the files stay until a later run sweeps them)\n", err)
	}
}

func parseParams(kvs []string) (map[string]string, error) {
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErr("--param %q: expected name=value", kv)
		}
		if _, dup := out[k]; dup {
			return nil, usageErr("--param %q given twice", k)
		}
		if err := spec.CheckText(fmt.Sprintf("--param %q", k), v); err != nil {
			return nil, usageErr("%v", err)
		}
		out[k] = v
	}
	return out, nil
}

func parseRunID(s string) (int64, error) {
	id, err := strconv.ParseInt(strings.TrimPrefix(s, "#"), 10, 64)
	if err != nil || id <= 0 {
		return 0, usageErr("run id %q: expected a positive number", s)
	}
	return id, nil
}

func runLookupErr(id int64, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return &exitError{code: exitUsage, err: fmt.Errorf("no run %d in this data directory", id)}
	}
	return err
}

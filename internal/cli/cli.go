// Package cli is tasuki's command line: the commands, their flags, and how
// they print. cmd/tasuki only calls Main.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
)

// IO holds the streams a command reads and writes.
type IO struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// exitError carries a specific exit status out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

// Exit statuses.
const (
	exitOK        = 0
	exitFailed    = 1 // the run failed, or a command failed
	exitUsage     = 2 // bad arguments or invalid pipeline files
	exitCancelled = 130
)

// app is the state shared by the commands of one invocation.
type app struct {
	io      IO
	version string
	home    string
	output  string
	cpuprof string
}

// Main runs the command line and returns the process exit status.
func Main(args []string, stdio IO, version string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{io: stdio, version: version}
	root := a.root()
	root.SetArgs(args)
	root.SetIn(stdio.In)
	root.SetOut(stdio.Out)
	root.SetErr(stdio.Err)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stdio.Err, "tasuki:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stdio.Err, "tasuki:", err)
	return exitFailed
}

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "tasuki",
		Short: "Run pipelines on time, before their deadlines, and see where everything stands",
		Long: `tasuki runs pipelines written as YAML files: tasks with dependencies, retries,
timeouts and parameters. 'tasuki run FILE' runs one on this machine with an
embedded store in the data directory (--home, $TASUKI_HOME, or ./.tasuki).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.home, "home", "", "data directory (default $TASUKI_HOME, else ./.tasuki)")
	root.PersistentFlags().StringVar(&a.cpuprof, "cpuprofile", "", "write a CPU profile of this command to the file (for performance work)")
	_ = root.PersistentFlags().MarkHidden("cpuprofile")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if a.cpuprof == "" {
			return nil
		}
		f, err := os.Create(a.cpuprof)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("cpu profile: %w", err)
		}
		cobra.OnFinalize(func() { pprof.StopCPUProfile(); f.Close() })
		return nil
	}
	a.addServerFlag(root)
	root.AddCommand(
		a.runCmd(), a.resumeCmd(), a.validateCmd(), a.schemaCmd(),
		a.withServer(a.runsCmd(), a.remoteRuns), a.withServer(a.statusCmd(), a.remoteStatus),
		a.withServer(a.logsCmd(), a.remoteLogs), a.versionCmd(), a.serveCmd(),
	)
	root.AddCommand(a.serverCmds()...)
	root.AddCommand(a.workerCmd(), a.tokenCmd())
	root.CompletionOptions.HiddenDefaultCmd = false
	return root
}

// homeDir resolves the data directory: --home, else $TASUKI_HOME, else ./.tasuki.
func (a *app) homeDir() string {
	switch {
	case a.home != "":
		return a.home
	case os.Getenv("TASUKI_HOME") != "":
		return os.Getenv("TASUKI_HOME")
	default:
		return ".tasuki"
	}
}

// local is the embedded store and logs of the data directory.
type local struct {
	home  string
	store *sqlite.DB
	logs  *logs.Files
}

// openLocal opens (creating if needed) the data directory, to read it or
// change a run.
func (a *app) openLocal(ctx context.Context) (*local, error) {
	return a.openHome(ctx, sqlite.Inspect)
}

// openHome opens (creating if needed, private to the user) the data
// directory for a use of its store (see sqlite.Use).
func (a *app) openHome(ctx context.Context, use sqlite.Use) (*local, error) {
	home := a.homeDir()
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	st, err := sqlite.OpenFor(ctx, filepath.Join(home, "tasuki.db"), use)
	if err != nil {
		return nil, err
	}
	lf := logs.NewFiles(filepath.Join(home, "logs"))
	lf.Ended = runner.AttemptEnded(st)
	return &local{home: home, store: st, logs: lf}, nil
}

func (l *local) Close() error { return l.store.Close() }

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of tasuki",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(a.io.Out, "tasuki", a.versionString())
			return nil
		},
	}
}

func (a *app) versionString() string {
	if a.version != "" {
		return a.version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		if v != "" {
			return v
		}
	}
	return "(devel)"
}

func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

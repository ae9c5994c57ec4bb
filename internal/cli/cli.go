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
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/shell"
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
	// started is set once a command's own code starts, after cobra parsed
	// its flags and checked its arguments: an error before that is a usage
	// error.
	started bool
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
	if !a.started {
		// cobra refused the command line (an unknown command or flag, a
		// bad flag value, the wrong number of arguments): scripts tell
		// "you called it wrong" (2) from "it failed" (1) by the status.
		fmt.Fprintf(stdio.Err, "Run '%s --help' for usage.\n", commandPath(root, args))
		return exitUsage
	}
	return exitFailed
}

// commandPath is the path of the command args name ("tasuki runs"), for
// pointing at its help after a usage error.
func commandPath(root *cobra.Command, args []string) string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return root.Name()
	}
	return cmd.CommandPath()
}

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "tasuki",
		Short: "Run pipelines on time, before their deadlines, and see where everything stands",
		Long: `tasuki runs pipelines written as YAML files: tasks with dependencies, retries,
timeouts and parameters. 'tasuki run FILE' runs one on this machine with an
embedded store in the data directory (--home, $TASUKI_HOME, or ./.tasuki).`,
		Version:       a.versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("tasuki {{.Version}}\n")
	root.PersistentFlags().StringVar(&a.home, "home", "", "data directory (default $TASUKI_HOME, else ./.tasuki)")
	root.PersistentFlags().StringVar(&a.cpuprof, "cpuprofile", "", "write a CPU profile of this command to the file (for performance work)")
	_ = root.PersistentFlags().MarkHidden("cpuprofile")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		a.started = true
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
	a.addTokenFlag(root)
	root.AddCommand(
		a.runCmd(), a.resumeCmd(), a.validateCmd(), a.schemaCmd(),
		a.withServer(a.runsCmd(), a.remoteRuns), a.withServer(a.statusCmd(), a.remoteStatus),
		a.withServer(a.logsCmd(), a.remoteLogs), a.withServer(a.itemsCmd(), a.remoteItems),
		a.withServer(a.timelineCmd(), a.remoteTimeline), a.versionCmd(), a.serveCmd(),
	)
	root.AddCommand(a.serverCmds()...)
	root.AddCommand(a.workerCmd(), a.workersCmd(), a.tokenCmd(), a.auditCmd(), a.secretCmd(), a.userCmd())
	root.AddCommand(a.datasetsCmd(), a.datasetCmd(), a.lineageCmd(), a.sloCmd(), a.cacheCmd())
	root.AddCommand(a.withServer(a.alertsCmd(), a.remoteAlerts))
	root.AddCommand(a.hostsCmd(), a.agentCmd())
	root.AddCommand(a.backupCmd(), a.watchdogCmd())
	root.CompletionOptions.HiddenDefaultCmd = false
	for _, c := range root.Commands() {
		if !c.Runnable() && c.HasSubCommands() {
			groupCommand(c)
		}
	}
	return root
}

// groupCommand makes a command that only groups others (tasuki token)
// print its help when called alone and refuse words it does not know as a
// usage error: cobra would print the help and exit 0 for both.
func groupCommand(c *cobra.Command) {
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		return usageErr("unknown command %q for %q; see '%s --help'", args[0], cmd.CommandPath(), cmd.CommandPath())
	}
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
			// How attempts are contained here: what an operator checks when
			// a task's leftovers outlive it (docs/architecture.md, shell).
			fmt.Fprintln(a.io.Out, "attempt containment:", shell.CurrentContainment())
			return nil
		},
	}
}

// The commit and the date of a release build, set at link time (see
// docs/operations.md, "Release builds"):
//
//	go build -ldflags "-X main.version=v1.2.0
//	  -X github.com/tasuki-dev/tasuki/internal/cli.buildCommit=$(git rev-parse HEAD)
//	  -X github.com/tasuki-dev/tasuki/internal/cli.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
//
// They exist for builds without the repository's history (an archive, a
// container build that leaves .git out), where Go records no VCS settings;
// empty, the build information Go records speaks alone.
var buildCommit, buildDate string

// versionString is what --version and 'tasuki version' print: the version
// given at link time, else the module version, with the commit it was built
// from and a date (the build's, given at link time, else the commit's), so
// that a bug report names the exact source.
func (a *app) versionString() string {
	bi, _ := debug.ReadBuildInfo()
	if buildCommit == "" && buildDate == "" {
		return describeBuild(a.version, bi)
	}
	// The link-time values stand in for the VCS settings Go records: a
	// copy of the build information with them in place.
	info := debug.BuildInfo{}
	if bi != nil {
		info = *bi
	}
	var settings []debug.BuildSetting
	for _, s := range info.Settings {
		switch {
		case s.Key == "vcs.time" && buildDate != "":
		case (s.Key == "vcs.revision" || s.Key == "vcs.modified") && buildCommit != "":
			// The modified flag belongs to the revision Go saw; keep it
			// only if that is the commit given.
			if s.Key == "vcs.modified" && revision(info.Settings) == buildCommit {
				settings = append(settings, s)
			}
		default:
			settings = append(settings, s)
		}
	}
	if buildCommit != "" {
		settings = append(settings, debug.BuildSetting{Key: "vcs.revision", Value: buildCommit})
	}
	if buildDate != "" {
		settings = append(settings, debug.BuildSetting{Key: "vcs.time", Value: buildDate})
	}
	info.Settings = settings
	return describeBuild(a.version, &info)
}

// revision is the vcs.revision of build settings, "" without one.
func revision(settings []debug.BuildSetting) string {
	for _, s := range settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return ""
}

// describeBuild renders a version and build information as
// "v1.2.0 (commit 0123456789ab, 2026-12-07T03:15:00Z, modified, go1.26.0)":
// the commit (vcs.revision), the date (vcs.time) and whether the tree had
// changes (vcs.modified), unless the version is one Go derived from the
// commit, which names the commit and its time already.
func describeBuild(version string, bi *debug.BuildInfo) string {
	var details []string
	if bi != nil {
		if version == "" {
			version = bi.Main.Version
		}
		var rev, modified, when string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			case "vcs.time":
				when = s.Value
			}
		}
		// A version Go derived from the commit (v0.0.0-20261207031500-
		// 0123456789ab+dirty) names it already.
		if short := rev[:min(len(rev), 12)]; rev == "" || !strings.Contains(version, short) {
			if rev != "" {
				details = append(details, "commit "+short)
			}
			if when != "" {
				details = append(details, when)
			}
			if rev != "" && modified == "true" {
				details = append(details, "modified")
			}
		}
		if bi.GoVersion != "" {
			details = append(details, bi.GoVersion)
		}
	}
	if version == "" {
		version = "(devel)"
	}
	if len(details) == 0 {
		return version
	}
	return version + " (" + strings.Join(details, ", ") + ")"
}

func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// watchdogCmd is the companion process a server runs beside itself
// (shell.Watchdog): it ends the server's attempts when the server stops
// answering. Hidden: only a server starts it, with a pipe on descriptor 3.
func (a *app) watchdogCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "watchdog",
		Short:  "End a frozen server's running tasks (started by tasuki server, not by hand)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return shell.ServeWatchdog(a.io.Err)
		},
	}
}

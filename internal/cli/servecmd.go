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

	"github.com/tasuki-dev/tasuki/internal/server"
	"github.com/tasuki-dev/tasuki/internal/shell"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
	"github.com/tasuki-dev/tasuki/internal/tracing"
)

func (a *app) serveCmd() *cobra.Command {
	var (
		configFile string
		flags      struct {
			addr, db, pipelines, timezone, retention, drainGrace string
			secretsDir                                           string
			workers, parallel                                    int
			pools, labels                                        []string
		}
		network networkFlags
		logs    logFlags
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the tasuki server: schedules, executors and the API",
		Long: `Run tasuki as a service: load the pipeline files of a directory (and reload
them when they change), start runs on their schedules, exactly once per
interval, catching up after downtime as each pipeline says, execute them with
a pool of in-process executors, and serve the JSON API under /api/v1.

Configuration comes from a YAML file (--config), then TASUKI_* environment
variables, then flags; each overrides the one before. Without --pipelines,
./pipelines is used, or ./examples when there is no ./pipelines.

The API listens on 127.0.0.1 by default. To serve other machines, give it a
certificate (--tls-cert, --tls-key; read again when the files change):
listening beyond loopback without TLS is refused unless --insecure-network.
Requests naming a host other than localhost, an IP address or one of
--allowed-hosts are refused (DNS rebinding), and so are browser requests from
another site that would change something (see docs/security.md).

SIGTERM or Ctrl-C drains: no new attempts start, running ones get the drain
grace period, and what is left resumes at the next start.`,
		Example: `  tasuki server --pipelines examples
  tasuki server --config /etc/tasuki/server.yaml --pool warehouse=4`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := server.DefaultConfig()
			if configFile != "" {
				if err := server.LoadConfigFile(&cfg, configFile); err != nil {
					return &exitError{code: exitUsage, err: err}
				}
			}
			if err := server.ApplyEnv(&cfg, os.LookupEnv); err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			f := cmd.Flags()
			if a.home != "" {
				cfg.Home = a.home
			}
			if f.Changed("addr") {
				cfg.Addr = flags.addr
			}
			if f.Changed("db") {
				cfg.DB = flags.db
			}
			if f.Changed("pipelines") {
				cfg.Pipelines = flags.pipelines
			} else if _, set := os.LookupEnv("TASUKI_PIPELINES"); !set && configFile == "" {
				if _, err := os.Stat(cfg.Pipelines); err != nil {
					if _, err := os.Stat("examples"); err == nil {
						cfg.Pipelines = "examples"
					}
				}
			}
			if f.Changed("workers") {
				cfg.Workers = flags.workers
			}
			if f.Changed("parallel") {
				cfg.Parallel = flags.parallel
			}
			if f.Changed("labels") {
				cfg.Labels = flags.labels
			}
			if f.Changed("timezone") {
				cfg.Timezone = flags.timezone
			}
			if f.Changed("secrets-dir") {
				cfg.SecretsDir = flags.secretsDir
			}
			for name, d := range map[string]struct {
				val string
				dst *server.Duration
			}{"retention": {flags.retention, &cfg.Retention}, "drain-grace": {flags.drainGrace, &cfg.DrainGrace}} {
				if f.Changed(name) {
					v, err := server.ParseDuration(d.val)
					if err != nil {
						return usageErr("--%s: %v", name, err)
					}
					*d.dst = server.Duration(v)
				}
			}
			if f.Changed("pool") {
				pools, err := server.ParsePools(flags.pools)
				if err != nil {
					return usageErr("--pool: %v", err)
				}
				cfg.Pools = pools
			}
			network.apply(cmd, &cfg)
			logger, level, err := logs.logger(a.io.Err)
			if err != nil {
				return err
			}
			watchLevel(cmd.Context(), level, logger)
			opts := server.Options{Logger: logger, Watchdog: watchdogCommand()}
			// Traces, when the OTEL_* variables ask for them.
			tp, traced, err := tracing.FromEnv(cmd.Context(), "tasuki-server", os.Getenv)
			if err != nil {
				return usageErr("%v", err)
			}
			if traced {
				protocol, endpoint := tracing.Describe(os.Getenv)
				logger.Info("traces on: exporting over OTLP", "protocol", protocol, "endpoint", endpoint)
				tracing.LogErrors(logger)
				opts.TracerProvider = tp
				defer func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					_ = tp.Shutdown(ctx) // flushes the spans still buffered
				}()
			}
			if spec := os.Getenv("TASUKI_TEST_CLOCK"); spec != "" {
				now, err := acceleratedClock(spec)
				if err != nil {
					return usageErr("TASUKI_TEST_CLOCK: %v", err)
				}
				opts.Now = now
			}
			srv, err := server.New(cmd.Context(), cfg, opts)
			var inUse *sqlite.InUseError
			switch {
			case errors.As(err, &inUse) && inUse.Server:
				return &exitError{code: exitFailed, err: fmt.Errorf("%w.\nAn embedded store has one server: stop that one, or give this one another data directory (--home)", err)}
			case errors.As(err, &inUse):
				return &exitError{code: exitFailed, err: fmt.Errorf("%w.\nA server owns its data directory alone: wait for those runs to end, or give the server another data directory (--home)", err)}
			case err != nil:
				return &exitError{code: exitUsage, err: err}
			}
			if err := srv.Listen(); err != nil {
				return err
			}
			fmt.Fprintf(a.io.Err, "tasuki server listening on %s (pipelines: %s, data: %s)\n", srv.URL(), cfg.Pipelines, cfg.Home)
			fmt.Fprintf(a.io.Err, "web UI: %s/ (people log in as users: tasuki user add NAME --role admin)\n", srv.URL())
			return srv.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "server configuration file (YAML)")
	f.StringVar(&flags.addr, "addr", "", "listen address (default 127.0.0.1:8080)")
	f.StringVar(&flags.db, "db", "", "PostgreSQL URL of the store (default: the embedded SQLite file in --home)")
	f.StringVar(&flags.pipelines, "pipelines", "", "directory of pipeline files (default ./pipelines, else ./examples)")
	f.IntVar(&flags.workers, "workers", 4, "task attempts this server's in-process executor runs at once (0: only remote workers)")
	f.IntVar(&flags.parallel, "parallel", 64, "most attempts in flight across all workers")
	f.StringSliceVar(&flags.labels, "labels", nil, "labels of the in-process executor (tasks with labels run only where all are)")
	f.StringArrayVar(&flags.pools, "pool", nil, "a pool of task slots as name=slots (repeatable)")
	f.StringVar(&flags.timezone, "timezone", "", "IANA time zone of schedules that name none (default UTC)")
	f.StringVar(&flags.retention, "retention", "", "keep finished runs this long, e.g. 90d (default 90d; 0 keeps all)")
	f.StringVar(&flags.secretsDir, "secrets-dir", "", "directory of secrets, one file per secret (e.g. /run/secrets); they override the secret store")
	network.register(cmd)
	logs.register(cmd)
	f.StringVar(&flags.drainGrace, "drain-grace", "", "on shutdown, how long running attempts get before they are handed back (default 30s)")
	return cmd
}

// acceleratedClock reads "START*SPEED" (an RFC 3339 time and a factor) and
// returns a clock that starts at START now and runs SPEED times faster. It
// exists for tests that drive a real server process through a daylight
// saving day in seconds.
func acceleratedClock(spec string) (func() time.Time, error) {
	startText, speedText, _ := strings.Cut(spec, "*")
	start, err := time.Parse(time.RFC3339Nano, startText)
	if err != nil {
		return nil, fmt.Errorf("start %q: expected RFC 3339", startText)
	}
	speed := 1.0
	if speedText != "" {
		if speed, err = strconv.ParseFloat(speedText, 64); err != nil || speed <= 0 {
			return nil, fmt.Errorf("speed %q: expected a positive number", speedText)
		}
	}
	origin := time.Now()
	return func() time.Time {
		return start.Add(time.Duration(float64(time.Since(origin)) * speed))
	}, nil
}

// watchdogCommand runs the watchdog of a server's in-process executor: this
// program again (/proc/self/exe: the file it was started from, even if it
// was replaced since), as 'tasuki watchdog'. A test binary is the tasuki
// command only when its TestMain sees TASUKI_TEST_AS_CLI=1, and would run
// its tests (and perhaps this server again) otherwise, so its watchdog is
// told; the tasuki binary ignores the variable.
func watchdogCommand() *shell.WatchdogConfig {
	return &shell.WatchdogConfig{
		Path: "/proc/self/exe",
		Args: []string{"tasuki", "watchdog"},
		Env:  append(os.Environ(), "TASUKI_TEST_AS_CLI=1"),
	}
}

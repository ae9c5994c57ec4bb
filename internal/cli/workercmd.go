package cli

// `tasuki worker`: run tasks leased from a server.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/agent"
	tlogs "github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/metrics"
	"github.com/tasuki-dev/tasuki/internal/shell"
	"github.com/tasuki-dev/tasuki/internal/worker"
)

// tokenEnv holds the worker token when neither --token nor --token-file is
// given; the environment keeps it out of `ps` listings.
const tokenEnv = "TASUKI_TOKEN"

// errSecondSignal is why a worker stops at once.
var errSecondSignal = errors.New("a second signal asked to stop at once")

func (a *app) workerCmd() *cobra.Command {
	var (
		token, tokenFile, name, dir, cacheDir, metricsAddr string
		servers, labels                                    []string
		slots                                              int
		grace, killGrace, cacheKeep, inventoryEvery        time.Duration
		logs                                               logFlags
		logBuffer                                          string
	)
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run tasks leased from a tasuki server, on this machine",
		Long: `Run task attempts that a tasuki server hands out, on this machine: as many
at once as --slots, only of tasks whose labels this worker has (--labels).
The worker long-polls the server, streams each attempt's log back, keeps
its leases alive with heartbeats and reports how each attempt ended. If the
server is unreachable the attempts keep running and the calls are retried;
each attempt holds up to --log-buffer of its log meanwhile (past it, the
first and last parts, with a line saying what was dropped between them)
and sends it when the server is back.

Several servers of one cluster may be given (--server repeated, or URLs
separated by commas, in $TASUKI_SERVER too): the worker talks to one at a
time, and when it does not answer (down, unreachable, too slow, or a 502,
503 or 504) each call goes on to the next; the worker stays with the server
that answered, and says so in its log when it moves. Any server serves
workers (followers forward the worker protocol to the leader), so a worker
keeps its attempts when the server it talked to dies.

The worker authenticates with a worker token: --token, --token-file, or
$TASUKI_TOKEN (preferred: a command line is visible to every user of the
machine). Create one on the server's host with 'tasuki token create NAME'.
Over TLS with a private CA, pass the CA's certificate with --ca (or
$TASUKI_CA); a server that requires client certificates of workers
(client_ca) needs --cert and --key too.

The output files of tasks' needs are downloaded into an artifact cache,
and those of its attempts' outputs kept there before they are uploaded:
--artifact-cache (default: tasuki/artifacts in the user's cache
directory). A file no attempt has used for --cache-keep leaves it.

The worker reports its host's facts to the server (the host inventory:
operating system, packages, services, listening sockets; see 'tasuki hosts'),
at start and every --inventory-every (0 sends none). A report that fails is
tried again later and never stops the worker.

SIGTERM or Ctrl-C drains (a spot preemption notice): no new leases; running
attempts get --grace to finish by themselves (no signal reaches them
meanwhile), then every process of each is killed at once and, once none
runs, the attempt is handed back as preempted, which does not count against
its retries. --kill-grace is the time between SIGTERM and SIGKILL for
timeouts and cancels. A second signal
stops at once. A worker that vanishes without draining (kill -9, a cut
network) loses its leases after the server's lease timeout; the server then
runs those attempts again elsewhere.`,
		Example: `  TASUKI_TOKEN=... tasuki worker --server https://tasuki.internal:8080 --labels gpu,spot --slots 4
  tasuki worker --server http://10.0.0.5:8080 --token-file /run/secrets/tasuki --grace 20s
  tasuki worker --server https://tasuki-a.internal:8443,https://tasuki-b.internal:8443 --labels gpu`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			clients, err := a.serverList(cmd, servers)
			if err != nil {
				return err
			}
			secret, err := workerToken(cmd, token, tokenFile)
			if err != nil {
				return err
			}
			if slots < 1 {
				return usageErr("--slots %d: expected at least 1", slots)
			}
			if grace < 0 || killGrace < 0 {
				return usageErr("--grace and --kill-grace: expected durations of 0s or more")
			}
			// 0s means at once; the Worker's zero value means its default.
			if grace == 0 {
				grace = time.Nanosecond
			}
			if killGrace == 0 {
				killGrace = time.Nanosecond
			}
			for _, l := range labels {
				if strings.TrimSpace(l) == "" || strings.ContainsAny(l, " \t") {
					return usageErr("--labels %q: expected names separated by commas, without spaces", strings.Join(labels, ","))
				}
			}
			if dir != "" {
				if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
					return usageErr("--dir %s: not a directory", dir)
				}
			}
			if cacheKeep <= 0 {
				return usageErr("--cache-keep %s: expected a duration of more than 0s, like 24h or 30m", cacheKeep)
			}
			if inventoryEvery != 0 && inventoryEvery < time.Minute {
				return usageErr("--inventory-every %s: expected 1m or more, or 0 to send no reports", inventoryEvery)
			}
			bufSize, err := tlogs.ParseSize(logBuffer)
			if err != nil || bufSize < 64<<10 {
				return usageErr("--log-buffer %s: expected a size of 64KiB or more, like 16MiB", logBuffer)
			}
			if cacheDir != "" {
				// Created with its parents when missing, like the
				// default; something else in the way is a mistake.
				if fi, err := os.Stat(cacheDir); err == nil && !fi.IsDir() {
					return usageErr("--artifact-cache %s: not a directory", cacheDir)
				}
			}
			logger, level, err := logs.logger(a.io.Err)
			if err != nil {
				return err
			}
			watchLevel(cmd.Context(), level, logger)
			c, where, err := connect(clients, secret, logger)
			if err != nil {
				return err
			}
			w := &worker.Worker{
				Client: c, Name: name, Labels: labels, Slots: slots, Dir: dir,
				Grace: grace, KillGrace: killGrace,
				ArtifactCache: cacheDir, CacheKeep: cacheKeep,
				Logger: logger, InventoryEvery: inventoryEvery, LogBuffer: int(bufSize),
			}
			if metricsAddr != "" {
				stop, err := serveWorkerMetrics(metricsAddr, w, logger)
				if err != nil {
					return err
				}
				defer stop()
			}
			sigs := make(chan os.Signal, 2)
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sigs)
			err = runWorker(cmd.Context(), w, sigs, a.io.Err)
			switch {
			case err == nil:
				return nil
			case errors.Is(err, errSecondSignal):
				return &exitError{code: exitCancelled, err: errors.New("worker stopped at once; its running attempts were ended and handed back")}
			}
			return remoteErrAt(where, err)
		},
	}
	f := cmd.Flags()
	addServerListFlag(cmd, &servers, "worker")
	f.StringVar(&token, "token", "", "worker token (default $"+tokenEnv+")")
	f.StringVar(&tokenFile, "token-file", "", "read the worker token from this file")
	f.StringSliceVar(&labels, "labels", nil, "labels of this worker, comma-separated (tasks that name labels run only where all of them are)")
	f.IntVar(&slots, "slots", 1, "attempts to run at once")
	f.DurationVar(&grace, "grace", worker.DefaultGrace, "on SIGTERM, how long running attempts get to finish before they are handed back")
	f.DurationVar(&killGrace, "kill-grace", shell.DefaultGrace, "time between SIGTERM and SIGKILL when an attempt's process group is ended")
	f.StringVar(&dir, "dir", "", "directory that relative task working directories are resolved against (default: the current directory)")
	f.StringVar(&name, "name", "", "name of this worker in the server's records (default host:pid)")
	f.StringVar(&cacheDir, "artifact-cache", "", "directory of the artifact cache: the files of needs downloaded, and of outputs kept (default: tasuki/artifacts in the user's cache directory)")
	f.DurationVar(&cacheKeep, "cache-keep", worker.DefaultCacheKeep, "how long a file of the artifact cache that no attempt used since is kept")
	f.StringVar(&logBuffer, "log-buffer", "16MiB", "the most of each attempt's log held while the server does not take it (past it, the first and last parts are kept)")
	f.DurationVar(&inventoryEvery, "inventory-every", agent.DefaultEvery, "how often to report this host's facts to the server (0: never)")
	logs.register(cmd)
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics, without authentication: bind it where only your Prometheus reaches (e.g. 127.0.0.1:9464)")
	addClientCertFlags(cmd)
	return cmd
}

// workerToken reads the worker token from --token, --token-file or
// $TASUKI_TOKEN, in that order.
func workerToken(cmd *cobra.Command, token, file string) (string, error) {
	switch {
	case cmd.Flags().Changed("token") && file != "":
		return "", usageErr("--token and --token-file: give one")
	case cmd.Flags().Changed("token"):
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", usageErr("--token-file: %v", err)
		}
		token = string(b)
	default:
		token = os.Getenv(tokenEnv)
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", usageErr("a worker token is required: --token, --token-file or $%s (create one on the server's host with 'tasuki token create NAME')", tokenEnv)
	}
	return token, nil
}

// runWorker runs w until it has drained. The first signal on sigs, or ctx
// being done (which is how the root command reports the first SIGINT or
// SIGTERM), starts the drain; a second signal stops the worker at once
// (Run then returns errSecondSignal in its chain).
func runWorker(ctx context.Context, w *worker.Worker, sigs <-chan os.Signal, stderr io.Writer) error {
	runCtx, kill := context.WithCancelCause(context.WithoutCancel(ctx))
	defer kill(nil)
	drain := make(chan struct{})
	done := make(chan struct{})
	var watching sync.WaitGroup
	// Deferred in this order, so the watcher has ended (and written what it
	// writes) before runWorker returns: its caller may read stderr then.
	defer watching.Wait()
	defer close(done)
	watching.Add(1)
	go func() {
		defer watching.Done()
		ctxDone, n, draining := ctx.Done(), 0, false
		for {
			select {
			case <-sigs:
				n++
			case <-ctxDone:
				ctxDone = nil
			case <-done:
				return
			}
			if !draining {
				draining = true
				close(drain)
				fmt.Fprintln(stderr, "tasuki worker: draining; send the signal again to stop at once")
			}
			if n >= 2 {
				kill(errSecondSignal)
				return
			}
		}
	}()
	return w.Run(runCtx, drain)
}

// serveWorkerMetrics serves the worker's metrics on addr until stop is
// called; the listener is opened now, so a taken port fails the command.
func serveWorkerMetrics(addr string, w *worker.Worker, log *slog.Logger) (stop func(), err error) {
	m := metrics.NewWorker()
	w.Metrics = m
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usageErr("--metrics-addr %s: %v", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return func() { srv.Close() }, nil
}

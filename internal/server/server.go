package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/inventory"
	"github.com/tasuki-dev/tasuki/internal/kinds"
	"github.com/tasuki-dev/tasuki/internal/lease"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/metrics"
	"github.com/tasuki-dev/tasuki/internal/notify"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/secret"
	"github.com/tasuki-dev/tasuki/internal/shell"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/sqltask"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/postgres"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
	"github.com/tasuki-dev/tasuki/internal/tracing"
)

// Server is one tasuki server process.
type Server struct {
	// live wakes the web UI's live views of the runs this server executes.
	live *liveHub
	// sqlWaits keeps the connections of SQL waits between their checks;
	// Run closes it.
	sqlWaits *sqltask.Pool
	// alerts takes the events people are told about (deadlines, failures,
	// recoveries, objectives); notify.Discard until notifications are set
	// up.
	alerts notify.Publisher
	// notes is the outbox alerts writes to and the deliverer that sends
	// what it holds while this server leads (notify.go).
	notes *notifier
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	loc   *time.Location
	store store.Store
	// logs is where attempt logs are written and read: files, the write
	// buffer of Cluster where the store is shared (see newLogs).
	logs   logs.Store
	files  *logs.Files
	runner *runner.Runner
	broker *lease.Broker
	// metrics is what /api/v1/metrics serves (metrics.go); counted is
	// what it counted of the tasks of each executing run.
	metrics   *metrics.Server
	countedMu sync.Mutex
	counted   map[int64]map[engine.TaskState]int
	// tp and tracer are nil when tracing is off (tracing.go).
	tp     trace.TracerProvider
	tracer trace.Tracer
	reg    *Registry
	http   *http.Server
	// watchdog is Options.Watchdog.
	watchdog *shell.WatchdogConfig
	// elector is nil on the embedded store, where one server is all there
	// is and always leads.
	elector *elector
	ln      net.Listener
	net     *transport // TLS, and what api.Guard allows
	secrets *secret.Store

	wake     chan struct{} // asks the scheduler loop for a pass now
	ready    atomic.Bool
	stopping atomic.Bool // draining: start no more executions

	mu        sync.Mutex
	executing map[int64]execInfo // runs with an Execute goroutine here
	failed    map[int64]backoff  // runs whose Execute failed, and when to try again
	backfills map[int64]bool     // backfills still running
	wg        sync.WaitGroup     // Execute goroutines
	deadlines deadlineWatch      // the leader's deadline watcher (deadlines.go)
	slos      sloTracker         // the leader's judgement of freshness objectives
	repair    repairs            // failed runs watched for their missing data
	inventory *inventory.Service // the host inventory the API serves (inventory.go)
}

// backoff spaces out attempts to execute a run that failed to start.
type backoff struct {
	delay   time.Duration
	retryAt time.Time
}

type execInfo struct {
	pipeline string
	backfill int64
	trace    trace.SpanContext // the run's root span, when tracing is on
}

// Options are what tests and embedders may inject.
type Options struct {
	// Now is the clock (default time.Now). Schedules fire by this clock.
	Now func() time.Time
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Notice is where a new server prints its first admin token, once
	// (default os.Stderr); see ensureAdminToken.
	Notice io.Writer
	// TracerProvider records runs, attempts, store transactions and API
	// requests as OpenTelemetry spans (see internal/tracing); nil: tracing
	// is off and costs nothing. The caller shuts it down.
	TracerProvider trace.TracerProvider
	// Watchdog runs the watchdog of the in-process executor's attempts
	// (shell.Watchdog), which ends them when this server stops answering
	// for watchdog_timeout: Path, Args and Env name the program ('tasuki
	// watchdog'); the server sets the rest. Nil: no watchdog (an embedder,
	// a test that runs the server in its own process).
	Watchdog *shell.WatchdogConfig
}

// New opens the data directory and prepares a server; Run starts it.
func New(ctx context.Context, cfg Config, opts Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		return nil, fmt.Errorf("timezone %q: %w", cfg.Timezone, err)
	}
	if err := os.MkdirAll(cfg.Home, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if fi, err := os.Stat(cfg.Pipelines); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("pipelines directory %q: not a directory (create it, or pass --pipelines DIR)", cfg.Pipelines)
	}
	tr, err := newTransport(cfg, opts.Logger)
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	sqlWaits := sqltask.NewPool()
	s := &Server{alerts: notify.Discard{}, sqlWaits: sqlWaits, live: newLiveHub(),
		cfg: cfg, log: opts.Logger, now: opts.Now, loc: loc, store: st, net: tr, watchdog: opts.Watchdog,
		files:     logs.NewFiles(filepath.Join(cfg.Home, "logs")),
		wake:      make(chan struct{}, 1),
		executing: map[int64]execInfo{},
		failed:    map[int64]backoff{},
		backfills: map[int64]bool{},
	}
	s.files.Limit = int64(cfg.LogLimit)
	s.logs = s.newLogs()
	s.runner = &runner.Runner{
		Store: st, Logs: s.logs, Home: cfg.Home,
		Dispatcher: runner.NewDispatcher(cfg.Parallel, cfg.Pools),
		DrainGrace: cfg.DrainGrace.D(), Timezone: loc, Now: opts.Now,
		Logger: opts.Logger, Observe: s.observe,
		DatasetsUpdated: s.datasetsUpdated,
		Kinds:           kinds.WithStore(st, sqlWaits),
		CacheTTL:        cfg.runnerCacheTTL(),
	}
	s.setupSecrets()
	if err := s.setupNotify(); err != nil {
		st.Close()
		return nil, err
	}
	// Every attempt goes through the broker: remote workers lease them over
	// HTTP, and the in-process executor is just another worker.
	s.broker = lease.New(s.logs, opts.Logger)
	s.broker.LeaseTimeout = cfg.LeaseTimeout.D()
	s.broker.HeartbeatEvery = cfg.LeaseTimeout.D() / 3
	s.runner.Executor = s.broker.Run
	// A remote worker cannot read the run's scratch directory: the
	// results of a map a task needs reach it as a file in the artifact
	// store.
	s.runner.ShareMapNeeds = true
	// Workers that kept running through a restart of this server may
	// heartbeat before its runs are recovered (see Adopt below).
	s.broker.AdoptFrom(s.broker.Now())
	if s.runner.Artifacts, err = openArtifactStore(cfg.Home, cfg.ArtifactStore, os.Getenv); err != nil {
		st.Close()
		return nil, err
	}
	s.broker.ArtifactMaxFile = cfg.artifactMaxFile()
	s.setupArtifacts()
	s.setupMetrics()
	s.setupTracing(opts.TracerProvider)
	s.runner.Store = timedStore{Store: s.runner.Store, m: s.metrics, tracer: s.tracer, runTrace: s.runTrace}
	s.broker.OnLease = func(a *runner.Attempt, worker string) error {
		if a.Items > 0 {
			return nil // a map item has no attempt row; its item row names the worker when it ends
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		att := store.Attempt{RunID: a.RunID, Index: a.Index, Attempt: a.Number, Worker: worker}
		return s.runner.Store.Apply(ctx, store.Change{RunID: a.RunID, Attempts: []store.Attempt{att}})
	}
	// An attempt a remote worker held when the previous server stopped may
	// still run there: it is adopted (the worker keeps it, and its report
	// is taken) unless the worker is not heard of within a lease timeout
	// (lease/adopt.go). The in-process executor's attempts died with their
	// server.
	s.runner.Adopt = func(worker string) runner.TaskFunc {
		if !lease.Adoptable(worker) {
			return nil
		}
		return s.broker.Adopt(worker)
	}
	// The items of a map a remote worker was handed are recorded (one row
	// per bundle, as they are handed out), and adopted the same way.
	s.broker.OnLeaseItems = func(handed []lease.HandedItems) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return s.runner.Store.PutMapLeases(ctx, mapLeases(handed))
	}
	s.runner.AdoptItems = func(worker, bundle string) runner.TaskFunc {
		if !lease.Adoptable(worker) {
			return nil
		}
		return s.broker.AdoptItems(worker, bundle)
	}
	s.runner.LostHold = func(worker string) time.Duration {
		switch {
		case worker == s.runner.Worker && cfg.DB == "":
			return 0 // this server's own executor, and the only server: its processes are gone
		case worker == "":
			// Not known (a map item no record names): it may still run on
			// a remote worker, whose heartbeats are kept through the
			// adoption window (a lease timeout from when this server began
			// leading); it hears that its lease is unknown at its next
			// heartbeat, up to a third of a lease timeout later, and if
			// that one fails it goes on two thirds of a lease timeout
			// more. Its next attempt waits for all of that.
			return cfg.LeaseTimeout.D() * 2
		}
		// Another server's executor (servers on one machine share the
		// name "local:HOST"), which may only be frozen or cut off from
		// the store: its watchdog or the end of its authority
		// (PreemptLocal) ends its attempts before this hold is over.
		return cfg.LeaseTimeout.D() * 4 / 3
	}
	// A leader cut off from the store hands nothing out once a successor
	// may have taken over (leader.go, authoritative).
	s.broker.Authority = func() bool {
		return s.elector == nil || s.elector.authoritative(time.Now())
	}
	s.files.Ended = runner.AttemptEnded(st)
	if c, ok := s.logs.(*logs.Cluster); ok {
		c.Ended = s.files.Ended
	}
	if err := s.setupInventory(ctx); err != nil {
		st.Close()
		return nil, err
	}
	// Inventory tasks search this server's inventory, in this process only
	// (attempt.ServerOnly): the broker keeps them from remote workers.
	if s.runner.Kinds, err = s.runner.Kinds.With(inventory.Task{Service: s.inventory}); err != nil {
		st.Close()
		return nil, err
	}
	s.broker.ServerOnly = s.runner.Kinds.ServerOnly
	s.reg = NewRegistry(cfg.Pipelines, opts.Logger, s.checkPipeline)
	if opts.Notice == nil {
		opts.Notice = os.Stderr
	}
	if err := s.ensureAdminToken(ctx, opts.Notice); err != nil {
		st.Close()
		return nil, err
	}
	return s, nil
}

// newLogs is the log store: on PostgreSQL, which several servers share,
// logs go to the database (logs.Cluster, with the local files as their
// write buffer), so every server reads every log whichever server wrote
// it, and a leader's disk can be lost; on SQLite, where one server is the
// whole cluster, its files (logs.Files), which cost no transaction on the
// single writer every run shares.
func (s *Server) newLogs() logs.Store {
	if s.cfg.DB == "" {
		return s.files
	}
	return logs.NewCluster(s.files, s.store, s.log)
}

// closeLogs writes what the log store holds back (the item logs a Cluster
// queues) while the store is still open.
func (s *Server) closeLogs() {
	c, ok := s.logs.(*logs.Cluster)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		s.log.Error("write the last item logs to the database", "err", err)
	}
}

// openStore opens the embedded SQLite store of the data directory, or the
// PostgreSQL database cfg.DB names.
func openStore(ctx context.Context, cfg Config) (store.Store, error) {
	if cfg.DB == "" {
		return sqlite.OpenFor(ctx, filepath.Join(cfg.Home, "tasuki.db"), sqlite.Server)
	}
	db, err := postgres.Open(ctx, cfg.DB)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", redactURL(cfg.DB), err)
	}
	return db, nil
}

// checkPipeline adds the checks that depend on this server: pools must be
// configured, and a scheduled pipeline cannot require a parameter without a
// default (nobody is there to give it). Each problem points at the value in
// the file.
func (s *Server) checkPipeline(p *spec.Pipeline, report func(at any, msg string)) {
	for i := range p.Tasks {
		t := &p.Tasks[i]
		if t.Pool != "" {
			if _, ok := s.cfg.Pools[t.Pool]; !ok {
				report(&t.Pool, fmt.Sprintf("task %q: pool %q is not configured on this server (configure it under pools: in the server configuration)", t.ID, t.Pool))
			}
		}
	}
	if p.Schedule != nil {
		for i := range p.Params {
			prm := &p.Params[i]
			if prm.Required && prm.Default == nil {
				report(prm, fmt.Sprintf("param %q is required without a default, so scheduled runs could never start; give it a default", prm.Name))
			}
		}
	}
}

// Addr returns the address the API listens on (after Listen).
func (s *Server) Addr() string {
	if s.ln == nil {
		return s.cfg.Addr
	}
	return s.ln.Addr().String()
}

// Listen binds the API address, so callers know the port before Run.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	if ln, err = s.net.wrap(ln); err != nil {
		return err
	}
	s.ln = ln
	return nil
}

// Run serves until ctx is cancelled, then drains: no new attempts start,
// running ones get the drain grace period, and what is left is handed back
// to resume at the next start. Run closes the store before returning.
func (s *Server) Run(ctx context.Context) error {
	defer s.store.Close()
	defer s.closeLogs() // before the store: item logs may wait in a queue
	defer s.sqlWaits.Close()
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	if s.cfg.DB != "" {
		addr := s.cfg.Advertise
		if addr == "" {
			addr = s.URL()
		}
		s.elector = newElector(addr, s.cfg.LeaderTTL.D(), s.cfg.LeaseTimeout.D())
		if need := s.cfg.adoptionLeaseTimeout(); s.cfg.LeaseTimeout.D() < need {
			s.log.Warn("lease_timeout is too short for workers to keep their attempts across a failover: they end them before a new leader can answer; give it at least four times leader_ttl plus a few seconds",
				"lease_timeout", s.cfg.LeaseTimeout.D(), "leader_ttl", s.cfg.LeaderTTL.D(), "at_least", need)
		}
		tr, err := s.net.forwardTransport()
		if err != nil {
			return err
		}
		s.elector.transport = tr
		s.runner.Store = timedStore{Store: fencedStore{Store: s.store, e: s.elector}, m: s.metrics, tracer: s.tracer, runTrace: s.runTrace}
		if c, ok := s.logs.(*logs.Cluster); ok {
			c.Fenced = s.elector.fenceLogs(s.store)
		}
	}
	// Start-up finishes even if a signal arrives meanwhile: what it starts
	// is then drained like everything else.
	startCtx := context.WithoutCancel(ctx)
	if err := s.seed(startCtx); err != nil {
		return err
	}
	if err := s.reload(startCtx); err != nil {
		return err
	}
	// Stopped after the in-process executor (the defers run in reverse).
	defer s.startWatchdog()()
	brokerCtx, stopBroker := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBroker()
	go s.broker.Start(brokerCtx)
	localDone := make(chan struct{})
	var local sync.WaitGroup
	local.Go(func() { s.broker.RunLocal(brokerCtx, s.cfg.Workers, s.cfg.Labels, s.runner.RunProcess) })
	// Server-only attempts (inventory tasks) have slots of their own, so
	// they run with workers: 0 too, and never wait behind long tasks.
	local.Go(func() { s.broker.RunServerOnly(brokerCtx, ServerOnlySlots, s.runner.RunProcess) })
	go func() { local.Wait(); close(localDone) }()
	defer func() { stopBroker(); <-localDone }()

	people := newUsers(s, s.cfg.SessionTTL.D())
	handler := api.NewHandler(&service{s: s}, s.logs, api.WithLogger(s.log), api.WithAlerts(alertsAPI{s}), api.WithWorkers(s.broker, &tokens{s: s}), api.WithSecrets(secretsAPI{s}), api.WithAuditLog(auditLog{s}),
		api.WithUsers(people), api.WithDatasets(datasetsAPI{s}), api.WithSLOs(sloAPI{s}),
		api.WithTimelines(s.store, s.now), api.WithCache(cacheAPI(s.store)), api.WithWorkerArtifacts(s.broker),
		api.WithMetrics(s.metrics.Handler(), s.metrics.HTTPDone), api.WithInventory(s.inventory), api.WithWorkerList(workerList{s}))
	defer s.watchAdvisories(brokerCtx)()
	handler, err := s.site(handler, people) // the web UI beside the API
	if err != nil {
		return err
	}
	handler, err = s.withOIDC(handler, people) // /auth/oidc/ beside both
	if err != nil {
		return err
	}
	if s.elector != nil {
		handler = s.forward(handler)
	}
	handler = api.Guard(s.traceHTTP(handler), s.net.guardOptions())
	s.http = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	httpErr := make(chan error, 1)
	go func() { httpErr <- s.http.Serve(s.ln) }()
	s.ready.Store(true)
	storeName := "sqlite:" + filepath.Join(s.cfg.Home, "tasuki.db")
	if s.cfg.DB != "" {
		storeName = redactURL(s.cfg.DB)
	}
	s.log.Info("tasuki server started", "addr", s.Addr(), "pipelines", s.cfg.Pipelines, "home", s.cfg.Home, "store", storeName, "workers", s.cfg.Workers)
	logContainment(s.log)

	renewCtx, stopRenewing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRenewing()
	loopErr := s.lead(ctx, startCtx, renewCtx)

	s.ready.Store(false)
	s.stopping.Store(true)
	s.log.Info("draining: no new attempts start; running ones get the grace period", "grace", s.cfg.DrainGrace.D())
	s.runner.Drain()
	s.wg.Wait()
	s.stopDelivering()
	stopRenewing()
	if !errors.Is(loopErr, errLostLeadership) && s.elector != nil {
		s.resign()
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.http.Shutdown(shutdownCtx); err != nil {
		s.http.Close()
	}
	if err := <-httpErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	s.log.Info("tasuki server stopped")
	return loopErr
}

// lead waits until this server leads (at once on the embedded store), then
// resumes the runs that were executing and runs the scheduler until ctx
// ends or leadership is lost.
func (s *Server) lead(ctx, startCtx, renewCtx context.Context) error {
	var lost <-chan error
	if s.elector != nil {
		leader, err := s.waitForLeadership(ctx)
		if err != nil || !leader {
			return err
		}
		// From now on the worker protocol comes here: heartbeats for the
		// leases of attempts found running are kept for their adoption by
		// recoverRuns, not refused.
		s.broker.AdoptFrom(s.broker.Now())
		if err := s.syncAll(startCtx); err != nil {
			return err
		}
		// The lease is renewed until the drain after this function is over
		// (renewCtx), so no other server takes over attempts still running
		// here; losing it ends them at once (Hurry).
		ch := make(chan error, 1)
		go func() {
			err := s.keepLeading(renewCtx)
			if err != nil {
				s.runner.Drain()
				s.runner.Hurry()
			}
			ch <- err
		}()
		lost = ch
		leadCtx, stop := context.WithCancel(ctx)
		defer stop()
		if w, ok := s.store.(waker); ok {
			// Followers that create runs wake this server at once.
			listening := make(chan struct{})
			go func() {
				defer close(listening)
				if err := w.Listen(leadCtx, s.poke); err != nil {
					s.log.Warn("listen for other servers' work; relying on the tick", "err", err)
				}
			}()
			defer func() { stop(); <-listening }()
		}
	}
	if err := s.recoverRepairs(startCtx); err != nil {
		s.log.Error("find the failed runs a repair watches", "err", err)
	}
	if err := s.recoverRuns(startCtx); err != nil {
		return err
	}
	// Notifications are sent by the leader until the drain is over.
	s.startDelivering(renewCtx)
	if ctx.Err() != nil {
		return nil
	}
	defer s.startDeadlines(ctx)()
	defer s.startCacheEviction(ctx)()
	defer s.startInventoryPrune(ctx)()
	return s.loop(ctx, lost)
}

// leading reports whether this server runs the scheduler and executes runs:
// not while it is suspended for want of the store (keepLeading).
func (s *Server) leading() bool {
	return s.elector == nil || (s.elector.leading() && !s.elector.isSuspended())
}

// loop is the scheduler: it reloads pipelines, starts due intervals, admits
// queued runs and prunes history, each tick and whenever poked.
func (s *Server) loop(ctx context.Context, lost <-chan error) error {
	tick := time.NewTicker(s.cfg.TickInterval.D())
	defer tick.Stop()
	reload := time.NewTicker(s.cfg.ReloadInterval.D())
	defer reload.Stop()
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	s.pass(ctx)
	s.prune(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-lost:
			if err != nil {
				s.log.Error("stopping", "err", err)
			}
			return err
		case <-reload.C:
			if err := s.reload(ctx); err != nil {
				s.log.Error("reload pipelines", "err", err)
			}
		case <-tick.C:
		case <-s.wake:
		case <-prune.C:
			if s.leading() {
				s.prune(ctx)
			}
		}
		if s.leading() {
			s.pass(ctx)
		}
	}
}

// seed fills the registry with the versions in force when the server last
// stopped, so the first reload compares the directory with them.
func (s *Server) seed(ctx context.Context) error {
	states, err := s.store.PipelineStates(ctx)
	if err != nil {
		return fmt.Errorf("load pipeline states: %w", err)
	}
	for _, st := range states {
		if st.VersionID == 0 {
			continue
		}
		p, err := s.runner.Pipeline(ctx, st.VersionID)
		var parseErr spec.ErrorList
		if errors.As(err, &parseErr) {
			s.log.Warn("stored pipeline version no longer parses; waiting for its file", "pipeline", st.Name, "err", err)
			continue
		}
		if err != nil {
			return fmt.Errorf("load version of pipeline %s: %w", st.Name, err)
		}
		s.reg.Seed(p, st.File, st.Removed)
	}
	return nil
}

// poke asks the loop for a pass soon (after a trigger, an unpause, a run end).
func (s *Server) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pass does one round of scheduling and admission.
func (s *Server) pass(ctx context.Context) {
	if err := s.schedule(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("schedule", "err", err)
	}
	if err := s.admit(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("start queued runs", "err", err)
	}
	s.settleBackfills(ctx)
	s.judgeObjectivesDue(ctx)
	s.repairPass(ctx)
}

// observe is told of every committed batch of every run; a finished run frees
// room for queued ones.
func (s *Server) observe(p runner.Progress) {
	s.observeMetrics(p)
	s.live.progress(p)
	s.traceWaits(p)
	s.traceRunEnded(p)
	s.deadlineProgress(p)
	s.runEnded(p)
	if p.Run.State.Terminal() {
		if p.Run.State == engine.RunFailed {
			s.repair.runFailed(p.Run.ID)
		}
		s.poke()
	}
}

// recoverRuns resumes the runs that were executing when the server stopped
// and loads the backfills still running.
func (s *Server) recoverRuns(ctx context.Context) error {
	for cursor := int64(0); ; {
		runs, err := s.store.ListRuns(ctx, store.RunFilter{States: []engine.RunState{engine.RunRunning}, Ascending: true, AfterID: cursor, Limit: store.MaxRunsLimit})
		if err != nil {
			return fmt.Errorf("list runs to resume: %w", err)
		}
		for _, r := range runs {
			s.execute(r)
			cursor = r.ID
		}
		if len(runs) < store.MaxRunsLimit {
			break
		}
	}
	for before := int64(0); ; {
		bs, err := s.store.ListBackfills(ctx, "", before, store.MaxBackfillsLimit)
		if err != nil {
			return fmt.Errorf("list backfills: %w", err)
		}
		for _, b := range bs {
			if b.State == store.BackfillRunning {
				s.mu.Lock()
				s.backfills[b.ID] = true
				s.mu.Unlock()
			}
			before = b.ID
		}
		if len(bs) < store.MaxBackfillsLimit {
			return nil
		}
	}
}

// execute runs a run in its own goroutine, once, and reports whether it
// started one. A run whose Execute failed waits a growing delay before it is
// tried again, so a run that cannot start does not spin the scheduler.
func (s *Server) execute(r store.Run) bool {
	if s.stopping.Load() {
		return false
	}
	s.mu.Lock()
	if _, busy := s.executing[r.ID]; busy {
		s.mu.Unlock()
		return false
	}
	if f, ok := s.failed[r.ID]; ok && s.now().Before(f.retryAt) {
		s.mu.Unlock()
		return false
	}
	info := execInfo{pipeline: r.Pipeline, backfill: r.BackfillID}
	if s.tracer != nil {
		info.trace = tracing.Sample(s.tracer, tracing.RunSpanContext(r.ID, r.CreatedAt))
	}
	s.executing[r.ID] = info
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		_, err := s.runner.Execute(context.Background(), r.ID)
		s.mu.Lock()
		delete(s.executing, r.ID)
		if err != nil {
			f := s.failed[r.ID]
			f.delay = min(max(2*f.delay, time.Second), time.Minute)
			f.retryAt = s.now().Add(f.delay)
			s.failed[r.ID] = f
		} else {
			delete(s.failed, r.ID)
		}
		s.mu.Unlock()
		if err != nil {
			s.log.Error("execute run; trying again later", "run", r.ID, "pipeline", r.Pipeline, "err", err)
			return
		}
		s.poke()
	}()
	return true
}

// prune deletes finished runs older than the retention, in small batches so
// the store's writer is never held for long, and their logs.
func (s *Server) prune(ctx context.Context) {
	defer s.sweepArtifacts(ctx) // what the pruned runs named may go now
	if s.cfg.Retention <= 0 {
		return
	}
	before := s.now().Add(-s.cfg.Retention.D())
	total := 0
	for ctx.Err() == nil {
		ids, err := s.store.PruneRuns(ctx, before, 100)
		if err != nil {
			s.log.Error("prune history", "err", err)
			return
		}
		for _, id := range ids {
			os.RemoveAll(filepath.Join(s.cfg.Home, "logs", fmt.Sprint(id)))
		}
		total += len(ids)
		if len(ids) < 100 {
			break
		}
	}
	if total > 0 {
		s.log.Info("pruned finished runs", "runs", total, "older_than", before)
	}
}

// logContainment says how this process keeps every process of an attempt
// with it (shell.CurrentContainment): the first thing to check when a task's
// leftovers outlive it. Choosing it happens here, at start, rather than when
// the first attempt starts.
func logContainment(log *slog.Logger) {
	c := shell.CurrentContainment()
	log.Info("attempt containment", "mechanism", string(c.Mechanism), "path", c.Path, "reason", c.Reason)
	if c.Swept > 0 || c.SweepErr != nil {
		log.Info("removed the cgroups of attempts of tasuki processes that are gone", "count", c.Swept, "err", c.SweepErr)
	}
}

// mapLeases are the records of hand-outs of map items.
func mapLeases(handed []lease.HandedItems) []store.MapLease {
	out := make([]store.MapLease, 0, len(handed))
	for _, h := range handed {
		first := h.Attempts[0]
		ml := store.MapLease{RunID: first.RunID, Index: first.Index, ID: h.ID, Worker: h.Worker, StartedAt: h.At,
			Units: make([]store.LeasedUnit, 0, len(h.Attempts))}
		for _, a := range h.Attempts {
			items, attempts := a.Unit()
			ml.Units = append(ml.Units, store.LeasedUnit{Items: items, Attempts: attempts})
		}
		out = append(out, ml)
	}
	return out
}

// startWatchdog starts the watchdog of the in-process executor's attempts
// (shell.Watchdog), if this server has an executor and a watchdog program,
// and returns what stops it. A frozen server (SIGSTOP, a paused VM, stuck in
// the kernel) keeps no attempt running past watchdog_timeout: on a shared
// store another server takes over after leader_ttl, finds those attempts
// lost, and runs them again lease_timeout later, which must not be beside
// the old ones. Without the watchdog, the server runs all the same.
func (s *Server) startWatchdog() (stop func()) {
	if s.cfg.Workers == 0 || s.watchdog == nil {
		return func() {}
	}
	cfg := *s.watchdog
	cfg.Timeout, cfg.Logger = s.cfg.watchdogTimeout(), s.log
	wd, err := shell.StartWatchdog(cfg)
	if err != nil {
		s.log.Error("no attempt watchdog: if this server freezes, its running tasks run on", "err", err)
		return func() {}
	}
	s.log.Info("attempt watchdog started: the tasks of this server end if it stops answering", "pid", wd.PID(), "timeout", cfg.Timeout)
	return func() {
		if err := wd.Close(); err != nil {
			s.log.Warn("stop the attempt watchdog", "err", err)
		}
	}
}

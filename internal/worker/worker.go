package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/httptask"
	"github.com/tasuki-dev/tasuki/internal/kinds"
	"github.com/tasuki-dev/tasuki/internal/shell"
)

// DefaultGrace is how long running attempts get to finish after a drain
// begins when Worker.Grace is zero. Spot providers give between 30 seconds
// and 2 minutes of notice; the grace plus KillGrace must fit in it.
const DefaultGrace = 30 * time.Second

// Timing of the protocol on the worker's side.
const (
	// flushEvery is the longest a log line waits in the worker before it is
	// sent, so `tasuki logs -f` on the server stays close to live.
	flushEvery = 200 * time.Millisecond
	// flushSize sends buffered log bytes at once, before the next tick.
	flushSize = 1 << 20
	// callTimeout bounds one heartbeat, log or completion request, so that a
	// connection that died silently (a cut network) is noticed and retried.
	callTimeout = 30 * time.Second
	// reportAfterStop is how long, after ctx of Run is done and the
	// processes have been ended, the worker keeps trying to report.
	reportAfterStop = 5 * time.Second
	// defaultHeartbeat is used when a lease names no heartbeat interval.
	defaultHeartbeat = 5 * time.Second
)

// Worker runs attempts leased from a server. Set the fields, then call Run;
// a Worker runs one Run at a time.
type Worker struct {
	// Client is the server: an *api.Client made with WithToken, an
	// *api.Failover over several servers of a cluster, or any other
	// implementation of the protocol.
	Client api.Workers
	// Name identifies this worker process to the server, in leases and in
	// the attempts it records. Default: hostname:pid.
	Name string
	// Labels are what this worker offers; the server hands it only tasks
	// whose labels it all has (gpu, spot, a region...).
	Labels []string
	// Slots is how many attempts run at once. Default 1.
	Slots int
	// Dir is the directory relative task working directories are resolved
	// against, and the working directory of tasks that name none. Default:
	// the current directory.
	Dir string
	// Grace is how long running attempts get to finish by themselves once a
	// drain begins (no signal reaches them meanwhile); then they are killed
	// at once and handed back as preempted. Default DefaultGrace.
	Grace time.Duration
	// KillGrace is how long an attempt stopped for a timeout or a cancel
	// has between SIGTERM and SIGKILL; a hand-back kills at once. Default
	// shell.DefaultGrace.
	KillGrace time.Duration
	// Logger receives what the worker does; default slog.Default().
	Logger *slog.Logger
	// Kinds are the kinds of work the worker runs (default
	// kinds.Builtin()); an attempt of another kind fails.
	Kinds *attempt.Registry
	// Artifacts moves the output files of tasks between the worker and
	// the server (default: Client, when it implements
	// api.ArtifactTransfer, as *api.Client and *api.Failover do).
	Artifacts api.ArtifactTransfer
	// ArtifactCache is the directory of the worker's artifact cache: the
	// files its attempts' needs kept, downloaded once, and those its
	// attempts' outputs match (default: tasuki/artifacts in the user's
	// cache directory).
	ArtifactCache string
	// CacheKeep is how long a file of the artifact cache that no attempt
	// used since is kept (default DefaultCacheKeep).
	CacheKeep time.Duration

	// LogBuffer bounds the log bytes one attempt holds while the server
	// does not take them (it is unreachable, or slower than the task):
	// past it, the first and last parts are kept and a line in the log
	// says how much was dropped between them (logs.Buffer). Default
	// logs.DefaultBuffer (16 MiB).
	LogBuffer int

	// Metrics receives what the worker counts (metrics.Worker implements
	// it); nil counts nothing.
	Metrics Metrics
	// InventoryEvery is how often the worker reports its host's facts to
	// the server, the first time at start (see inventory.go); 0 reports
	// none.
	InventoryEvery time.Duration
	// inventoryRoot is where those facts are read ("/" when empty; tests
	// give a fixture).
	inventoryRoot string

	// retryMin and retryMax bound the wait between retries of a failed
	// call (tests shorten them); zero means 250ms and 10s.
	retryMin, retryMax time.Duration
}

// Metrics is what a worker tells its metrics (package metrics, on
// --metrics-addr): its slots, the attempts it holds, each attempt's end,
// and each call to the server.
type Metrics interface {
	Slots(n int)
	Running(n int)
	AttemptEnded(outcome string, ran time.Duration)
	Call(call string, err error)
}

// noMetrics counts nothing.
type noMetrics struct{}

func (noMetrics) Slots(int)                          {}
func (noMetrics) Running(int)                        {}
func (noMetrics) AttemptEnded(string, time.Duration) {}
func (noMetrics) Call(string, error)                 {}

// session is the state of one Run.
type session struct {
	w         *Worker
	log       *slog.Logger
	name      string
	dir       string
	slots     int
	grace     time.Duration
	killGrace time.Duration
	kinds     *attempt.Registry
	retryMin  time.Duration
	retryMax  time.Duration
	logBuffer int
	// cache is the artifact cache, transfer the artifact routes of the
	// server (nil: it has none), cacheKeep how long an unused file stays.
	cache     *artifact.Dir
	transfer  api.ArtifactTransfer
	cacheKeep time.Duration
	// report is the context of the calls that report attempts (logs,
	// completions, heartbeats). It outlives Run's ctx, so attempts ended by
	// a hard stop are still handed back, but only for reportAfterStop.
	report context.Context

	mu       sync.Mutex
	running  map[string]*leased // leases held: running, or ended and not yet reported
	draining bool
	wg       sync.WaitGroup

	slotFreed chan struct{} // a lease was let go (capacity 1)
	// settling counts the attempts reported in a batch that have not let
	// their slots go yet; the last of them wakes the lease loop.
	settling atomic.Int64
	idle     chan *leased  // to a runner goroutine waiting for its next attempt (unbuffered)
	ended    chan struct{} // closed when Run ends: idle runners return

	// lastContact is when the server last answered a lease request, or
	// when the last heartbeat it answered was sent; guarded by mu. A worker
	// cut off from the server for two thirds of the lease timeout ends its
	// attempts itself, before the server gives them to another worker (a
	// lease lives a lease timeout from the heartbeat's arrival), so an
	// attempt never runs twice at once. Until then its attempts run on: a
	// server that takes over meanwhile adopts them (see giveUpAfter).
	lastContact time.Time
	added       chan struct{} // a lease was taken (capacity 1)
	lastSweep   time.Time     // of the artifact cache; guarded by mu

	rep *reporter // sends the reports of ended attempts, in batches when many end together
	m   Metrics

	httpClient *http.Client // of the http kind when the worker chose the kinds; nil otherwise

	// noBundles is set once the server refused the bundle field of a lease
	// request (it predates bundles): the worker asks for leases alone.
	noBundles bool
}

// leased is one lease being run.
type leased struct {
	lease api.Lease
	// bundle is the id of the bundle the lease came in ("" for a lease
	// alone): the heartbeats name the bundle, not its items.
	bundle string

	// proc is the context of the process; stop ends it, its cause saying
	// why (attempt.ErrCancelled, attempt.ErrLost, attempt.ErrPreempted).
	proc context.Context
	stop context.CancelCauseFunc
	// report is the context of the attempt's reporting calls; drop cancels
	// it when the lease is lost (nothing more may be sent).
	report context.Context
	drop   context.CancelFunc

	mu   sync.Mutex
	lost bool
	// settle: the lease was reported in a batch and is counted in
	// session.settling until it lets its slot go (let).
	settle, let bool
}

// markSettle counts the lease among those of a batch about to let go; it
// reports false when it has let go already.
func (a *leased) markSettle() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.let {
		return false
	}
	a.settle = true
	return true
}

// letGo records that the lease let its slot go, and says whether it was
// counted in session.settling.
func (a *leased) letGo() (settle bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.let = true
	return a.settle
}

// markLost ends the attempt for good: the server no longer holds its
// lease, so its process is ended and nothing more is sent about it.
func (a *leased) markLost() {
	a.mu.Lock()
	a.lost = true
	a.mu.Unlock()
	a.stop(attempt.ErrLost)
	a.drop()
}

func (a *leased) isLost() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lost
}

// heartbeatEvery is the lease's heartbeat interval.
func (a *leased) heartbeatEvery() time.Duration {
	switch {
	case a.lease.HeartbeatEvery > 0:
		return time.Duration(a.lease.HeartbeatEvery)
	case a.lease.LeaseTimeout > 0:
		return time.Duration(a.lease.LeaseTimeout) / 3
	}
	return defaultHeartbeat
}

// Run leases and runs attempts until ctx is done or drain is closed, and
// returns when every attempt it took has been reported (or given up on).
//
// Closing drain is the graceful stop (SIGTERM, a spot preemption notice):
// no more leases, running attempts get Grace to finish, then are ended and
// reported as preempted; Run then returns nil. Cancelling ctx is the hard
// stop (a second signal): running attempts are ended at once and reported
// as preempted if the server can be reached within a few seconds; Run then
// returns ctx's cause. A server refusing the worker (a bad or revoked
// token: any 4xx answer to a lease request) ends Run the same way, with
// that error.
func (w *Worker) Run(ctx context.Context, drain <-chan struct{}) error {
	s, err := w.newSession()
	if err != nil {
		return err
	}
	report, stopReport := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReport()
	s.report = report
	s.log.Info("worker started", "worker", s.name, "slots", s.slots, "labels", w.Labels, "dir", s.dir)
	defer w.startInventory(ctx, s.log)()

	leaseCtx, stopLeasing := context.WithCancel(ctx)
	defer stopLeasing()
	finished := make(chan struct{}) // every attempt is reported
	var bg sync.WaitGroup
	bg.Go(func() { s.supervise(ctx, drain, finished, stopLeasing, stopReport) })
	bg.Go(func() { s.rep.run(report, finished) })
	hbCtx, stopHeartbeats := context.WithCancel(report)
	bg.Go(func() { s.heartbeats(hbCtx) })

	err = s.leaseLoop(leaseCtx)
	if err != nil {
		s.log.Error("the server refused the worker; stopping", "err", err)
		stopLeasing()
		s.stopAll(attempt.ErrPreempted)
	}
	s.wg.Wait()
	close(s.ended)
	if s.httpClient != nil {
		s.httpClient.CloseIdleConnections()
	}
	close(finished)
	stopHeartbeats()
	bg.Wait()
	switch {
	case err != nil:
		return err
	case ctx.Err() != nil:
		return fmt.Errorf("worker stopped at once: %w", context.Cause(ctx))
	}
	s.log.Info("worker drained", "worker", s.name)
	return nil
}

// newSession checks the configuration and fills in defaults.
func (w *Worker) newSession() (*session, error) {
	if w.Client == nil {
		return nil, errors.New("worker: no Client to lease attempts from")
	}
	s := &session{
		w: w, log: w.Logger, name: w.Name, dir: w.Dir, slots: w.Slots, grace: w.Grace, killGrace: w.KillGrace, kinds: w.Kinds,
		retryMin: w.retryMin, retryMax: w.retryMax, logBuffer: w.LogBuffer,
		running: map[string]*leased{}, slotFreed: make(chan struct{}, 1), added: make(chan struct{}, 1),
		idle: make(chan *leased), ended: make(chan struct{}),
	}
	s.rep = newReporter(s)
	if s.m = w.Metrics; s.m == nil {
		s.m = noMetrics{}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.kinds == nil {
		// One HTTP client for every attempt of the session: the items of a
		// map of requests reuse connections (a new one per item was a third
		// of a worker's CPU). Run closes its idle connections at the end.
		s.httpClient = httptask.NewClient()
		s.kinds = kinds.BuiltinWith(s.httpClient)
	}
	if s.name == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "worker"
		}
		s.name = host + ":" + strconv.Itoa(os.Getpid())
	}
	if s.slots <= 0 {
		s.slots = 1
	}
	s.m.Slots(s.slots)
	if s.slots > api.MaxLeaseFree {
		return nil, fmt.Errorf("worker: %d slots is more than the protocol's %d", s.slots, api.MaxLeaseFree)
	}
	if s.dir == "" {
		d, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("worker: working directory: %w", err)
		}
		s.dir = d
	}
	if s.grace <= 0 {
		s.grace = DefaultGrace
	}
	if s.killGrace <= 0 {
		s.killGrace = shell.DefaultGrace
	}
	if s.retryMin <= 0 {
		s.retryMin = 250 * time.Millisecond
	}
	s.transfer = w.Artifacts
	if t, ok := w.Client.(api.ArtifactTransfer); ok && s.transfer == nil {
		s.transfer = t
	}
	s.cache = &artifact.Dir{Root: w.ArtifactCache}
	if s.cache.Root == "" {
		s.cache.Root = defaultCacheDir()
	}
	if s.cacheKeep = w.CacheKeep; s.cacheKeep <= 0 {
		s.cacheKeep = DefaultCacheKeep
	}
	if s.retryMax <= 0 {
		s.retryMax = 10 * time.Second
	}
	return s, nil
}

// supervise turns the drain signal and ctx into the stop sequence: stop
// leasing; after the grace period (or at once when ctx is done) end the
// running attempts as preempted; once ctx is done, give the reports a last
// few seconds. It returns when finished is closed.
func (s *session) supervise(ctx context.Context, drain <-chan struct{}, finished <-chan struct{}, stopLeasing, stopReport context.CancelFunc) {
	select {
	case <-drain:
	case <-ctx.Done():
	case <-finished:
		return
	}
	stopLeasing()
	s.mu.Lock()
	s.draining = true
	n := len(s.running)
	s.mu.Unlock()
	if ctx.Err() == nil {
		s.log.Info("draining: no new leases; running attempts have the grace period to finish", "running", n, "grace", s.grace)
		t := time.NewTimer(s.grace)
		defer t.Stop()
		select {
		case <-t.C:
			if n := s.count(); n > 0 {
				s.log.Warn("grace period over: ending the running attempts and handing them back", "running", n)
			}
		case <-ctx.Done():
		case <-finished:
			return
		}
	}
	s.stopAll(attempt.ErrPreempted)
	select {
	case <-ctx.Done():
	case <-finished:
		return
	}
	s.log.Warn("stopping at once: ending the running attempts and handing them back", "running", s.count())
	s.stopAll(attempt.ErrPreempted)
	// The processes need up to KillGrace to end; then the reports get a few
	// seconds more.
	t := time.NewTimer(s.killGrace + reportAfterStop)
	defer t.Stop()
	select {
	case <-t.C:
		s.log.Warn("giving up reporting; the server will find the remaining leases lost", "running", s.count())
		stopReport()
	case <-finished:
	}
}

// leaseLoop asks for attempts while there are free slots, until ctx is
// done (nil) or the server refuses the worker (the error).
func (s *session) leaseLoop(ctx context.Context) error {
	wait := s.retryMin
	for {
		free := s.free()
		if free <= 0 {
			select {
			case <-s.slotFreed:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		asked := time.Now()
		req := api.LeaseRequest{Worker: s.name, Labels: s.w.Labels, Free: free, WaitSeconds: api.MaxLeaseWait}
		if !s.noBundles {
			req.Bundle = min(s.slots, api.MaxBundle)
		}
		cctx, cancel := context.WithTimeout(ctx, api.MaxLeaseWait*time.Second+callTimeout)
		resp, err := s.w.Client.Lease(cctx, req)
		cancel()
		if ctx.Err() == nil {
			s.m.Call("lease", err)
		}
		if req.Bundle > 0 && refusesBundles(err) {
			s.log.Info("the server hands out no bundles (it predates them): leasing map items one by one", "err", err)
			s.noBundles = true
			continue
		}
		if err == nil {
			// Counted from when it was asked, as a heartbeat is: a long
			// poll answered half a minute later proves nothing about the
			// server's authority then (a leader cut off from the store
			// may answer it past the moment a successor could take over).
			s.contactAt(asked)
			n := 0
			for _, l := range resp.Leases {
				// More than asked for is the server's mistake; hand the
				// extra ones back at once rather than overload the machine.
				s.start(l, "", n >= free)
				n++
			}
			for k := range resp.Bundles {
				bd := &resp.Bundles[k]
				s.log.Debug("bundle leased", "bundle", bd.ID, "run", bd.RunID, "pipeline", bd.Pipeline, "task", bd.Task, "items", len(bd.Items))
				for i := range bd.Items {
					s.start(bd.Lease(i), bd.ID, n >= free)
					n++
				}
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if permanent(err) {
				return fmt.Errorf("lease attempts: %w", err)
			}
			s.log.Warn("lease attempts: retrying", "err", err, "in", wait)
			if !sleep(ctx, wait) {
				return nil
			}
			wait = min(2*wait, s.retryMax)
			continue
		}
		wait = s.retryMin
		if len(resp.Leases)+len(resp.Bundles) == 0 && time.Since(asked) < s.retryMin {
			// A server that answers at once instead of holding the request
			// must not make the worker spin.
			if !sleep(ctx, s.retryMin) {
				return nil
			}
		}
	}
}

// refusesBundles reports whether err is a server's refusal of the bundle
// field of a lease request: a server older than bundles refuses fields it
// does not know.
func refusesBundles(err error) bool {
	e, ok := errors.AsType[*api.Error](err)
	return ok && e.Status == http.StatusBadRequest && strings.Contains(e.Message, `"bundle"`)
}

// free is the number of free slots.
func (s *session) free() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.slots - len(s.running)
}

// bundled is the number of leases held that came in bundles.
func (s *session) bundled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, a := range s.running {
		if a.bundle != "" {
			n++
		}
	}
	return n
}

// count is the number of leases held.
func (s *session) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.running)
}

// start runs a lease (of bundle, when not "") in its own goroutine;
// preempt hands it back at once.
func (s *session) start(l api.Lease, bundle string, preempt bool) {
	a := &leased{lease: l, bundle: bundle}
	a.proc, a.stop = context.WithCancelCause(context.Background())
	a.report, a.drop = context.WithCancel(s.report)
	s.mu.Lock()
	if _, dup := s.running[l.ID]; dup {
		s.mu.Unlock()
		s.log.Warn("the server handed out a lease this worker already holds; ignoring it", "lease", l.ID)
		a.stop(nil)
		a.drop()
		return
	}
	s.running[l.ID] = a
	s.m.Running(len(s.running))
	if s.draining || preempt {
		a.stop(attempt.ErrPreempted)
	}
	s.wg.Add(1)
	s.mu.Unlock()
	signal(s.added)
	select {
	case s.idle <- a: // a goroutine that ran an attempt before takes it
	default:
		go s.runner(a)
	}
}

// runner runs a, then the attempts handed to it while it is idle, until
// the session ends. Goroutines are reused because a new one's stack grows
// as its first attempt runs (copying stacks was a tenth of a worker's CPU
// on a map's short items); there are never more than the slots.
func (s *session) runner(a *leased) {
	for {
		s.runOne(a)
		select {
		case a = <-s.idle:
		case <-s.ended:
			return
		}
	}
}

// runOne runs a lease to its end and lets it go.
func (s *session) runOne(a *leased) {
	defer s.wg.Done()
	defer s.release(a)
	s.runAttempt(a)
}

// release lets a lease go once it is reported (or given up on).
func (s *session) release(a *leased) {
	a.stop(nil)
	a.drop()
	s.mu.Lock()
	delete(s.running, a.lease.ID)
	s.m.Running(len(s.running))
	s.mu.Unlock()
	if a.letGo() {
		s.settled()
		return
	}
	signal(s.slotFreed)
}

// settled is told that an attempt of a batch let its slot go; the last of
// the batch wakes the lease loop, once for them all.
func (s *session) settled() {
	if s.settling.Add(-1) <= 0 {
		signal(s.slotFreed)
	}
}

// stopAll ends every running attempt with cause.
func (s *session) stopAll(cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.running {
		a.stop(cause)
	}
}

// held returns the attempt of a lease this worker holds, or nil.
func (s *session) held(id string) *leased {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running[id]
}

// named returns the attempts a heartbeat's answer names by id: the lease
// of that id, or, when bundle is set, every held item of the bundle of
// that id (a bundle's id is its first item's lease id: which one the
// server means is said by the list the id came in).
func (s *session) named(id string, bundle bool) []*leased {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !bundle {
		if a := s.running[id]; a != nil {
			return []*leased{a}
		}
		return nil
	}
	var out []*leased
	for _, a := range s.running {
		if a.bundle == id {
			out = append(out, a)
		}
	}
	return out
}

// giveUpAfter is the fraction of the lease timeout a worker keeps its
// attempts running without an answer to its heartbeats. The server loses a
// lease a lease timeout after the last heartbeat it heard (sent no earlier
// than lastContact); the last third is for the attempt's processes to end
// before the server may hand it to another worker. Meanwhile, a server
// that takes over from a leader that died (a failover, or a restart)
// adopts the attempts whose workers it hears from within a lease timeout:
// the worker only has to reach it before giving up, so a failover shorter
// than about a third of the lease timeout (a heartbeat interval lost to
// the phase, two thirds at best) costs no attempt.
const giveUpAfter = 2.0 / 3

// heartbeats keeps the held leases alive and applies what the server
// answers, until ctx is done. A failed heartbeat is only logged, and the
// next is tried sooner: it may get through (to a server that took over)
// before the lease timeout, and if none does the attempts are ended before
// the server can give them to another worker.
func (s *session) heartbeats(ctx context.Context) {
	failing := false
	for {
		// The shortest interval any held lease asks for; the longest lease
		// timeout bounds how long one heartbeat may take.
		s.mu.Lock()
		var every, timeout time.Duration
		for _, a := range s.running {
			if e := a.heartbeatEvery(); every == 0 || e < every {
				every = e
			}
			timeout = max(timeout, time.Duration(a.lease.LeaseTimeout))
		}
		s.mu.Unlock()
		if every == 0 {
			select {
			case <-s.added:
				continue
			case <-ctx.Done():
				return
			}
		}
		wait := every
		if failing {
			wait = max(every/4, 50*time.Millisecond)
			// The attempts end at the limit, not at the next try after it:
			// the server's authority is computed to the limit.
			if left := time.Duration(float64(timeout)*giveUpAfter) - s.sinceContact(); left < wait {
				wait = max(left, 10*time.Millisecond)
			}
		}
		if !sleep(ctx, wait) {
			return
		}
		ids, bundles := s.heldIDs()
		if len(ids)+len(bundles) == 0 {
			continue
		}
		// A heartbeat that hangs must not hide a cut-off server: each call
		// gets half the interval, and no more than is left before giving
		// up, so the silence check below runs in time.
		limit := time.Duration(float64(timeout) * giveUpAfter)
		callFor := min(every/2, limit-s.sinceContact())
		sent := time.Now()
		cctx, cancel := context.WithTimeout(ctx, max(callFor, 100*time.Millisecond))
		resp, err := s.w.Client.Heartbeat(cctx, api.HeartbeatRequest{Worker: s.name, Leases: ids, Bundles: bundles})
		cancel()
		s.m.Call("heartbeat", err)
		failing = err != nil
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			if silent := s.sinceContact(); silent >= limit {
				s.log.Error("no answer from the server for two thirds of the lease timeout; ending the attempts before they are given to another worker",
					"leases", len(ids), "bundles", len(bundles), "silent", silent.Round(time.Millisecond), "err", err)
				for _, id := range ids {
					for _, a := range s.named(id, false) {
						a.markLost()
					}
				}
				for _, id := range bundles {
					for _, a := range s.named(id, true) {
						a.markLost()
					}
				}
				continue
			}
			s.log.Warn("heartbeat failed; attempts keep running", "leases", len(ids), "bundles", len(bundles), "err", err)
			continue
		}
		s.contactAt(sent)
		for _, id := range resp.Preempt {
			for _, a := range s.named(id, false) {
				s.log.Info("the server hands the attempt back (it is shutting down); ending it", "lease", a.lease.ID)
				a.stop(attempt.ErrPreempted)
			}
		}
		for _, id := range resp.Cancel {
			// A lease handed back is listed to cancel as well, for workers
			// that predate preempt: it is already being ended.
			if slices.Contains(resp.Preempt, id) {
				continue
			}
			for _, a := range s.named(id, false) {
				s.log.Info("the server cancelled the attempt; ending it", "lease", a.lease.ID)
				a.stop(attempt.ErrCancelled)
			}
		}
		for _, id := range resp.Unknown {
			// An id sent as a bundle's is the bundle's; else a lease's.
			for _, a := range s.named(id, slices.Contains(bundles, id)) {
				s.log.Warn("the server no longer holds the lease; ending the attempt without reporting it", "lease", a.lease.ID, "bundle", a.bundle)
				a.markLost()
			}
		}
	}
}

// heldIDs lists the held leases that came alone and the bundles of
// those that came in one, each sorted.
func (s *session) heldIDs() (ids, bundles []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids = make([]string, 0, len(s.running))
	for id, a := range s.running {
		switch {
		case a.bundle == "":
			ids = append(ids, id)
		case !slices.Contains(bundles, a.bundle):
			bundles = append(bundles, a.bundle)
		}
	}
	slices.Sort(ids)
	slices.Sort(bundles)
	return ids, bundles
}

// retry calls f until it succeeds, fails permanently, or ctx is done,
// waiting longer after each failure. It returns the last error.
func (s *session) retry(ctx context.Context, what string, lease string, f func(ctx context.Context) error) error {
	return s.retryWithin(ctx, what, lease, callTimeout, f)
}

// retryWithin is retry with each call bounded by timeout (a transfer of
// a large file takes longer than a call).
func (s *session) retryWithin(ctx context.Context, what string, lease string, timeout time.Duration, f func(ctx context.Context) error) error {
	wait := s.retryMin
	for {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := f(cctx)
		cancel()
		if err == nil || permanentTransfer(err) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w (last error: %v)", what, context.Cause(ctx), err)
		}
		s.log.Warn(what+": retrying", "lease", lease, "err", err, "in", wait)
		if !sleep(ctx, wait) {
			return fmt.Errorf("%s: %w (last error: %v)", what, context.Cause(ctx), err)
		}
		wait = min(2*wait, s.retryMax)
	}
}

// permanent reports whether err is an answer that retrying cannot change:
// a 4xx other than a timeout or a rate limit (a bad token, a lost lease, a
// request the server does not understand).
func permanent(err error) bool {
	e, ok := errors.AsType[*api.Error](err)
	return ok && e.Status >= 400 && e.Status < 500 &&
		e.Status != http.StatusRequestTimeout && e.Status != http.StatusTooManyRequests
}

// isLeaseLost reports whether err says the server no longer holds a lease.
func isLeaseLost(err error) bool {
	e, ok := errors.AsType[*api.Error](err)
	return ok && (e.Code == api.CodeLeaseLost || e.Status == http.StatusConflict)
}

// sleep waits for d or ctx; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// signal notifies a channel of capacity 1 without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// contact records an answer from the server.
func (s *session) contact() {
	s.contactAt(time.Now())
}

// contactAt records an answer from the server to a request sent at t.
func (s *session) contactAt(t time.Time) {
	s.mu.Lock()
	if t.After(s.lastContact) {
		s.lastContact = t
	}
	s.mu.Unlock()
}

// sinceContact is how long the server has not answered.
func (s *session) sinceContact() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Since(s.lastContact)
}

package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/tracing"
)

// Broker matches offers (attempts waiting for an executor) with workers.
type Broker struct {
	// HeartbeatEvery is how often workers must send heartbeats.
	HeartbeatEvery time.Duration
	// LeaseTimeout is how long a lease lives without a heartbeat.
	LeaseTimeout time.Duration
	// Logs receives the log bytes remote workers send.
	Logs   logs.Store
	Now    func() time.Time
	Logger *slog.Logger
	// OnLease, when set, is told which remote worker took an attempt, so the
	// attempt's row names it while it runs (a server taking over after a
	// crash then knows the attempt may still be running there).
	OnLease func(a *runner.Attempt, worker string) error
	// OnLeaseItems, when set, is told which remote workers take which
	// attempts of map items (a bundle's together), so a server taking over
	// adopts them (adopt.go): before the worker has them, in one call per
	// lease request, when a late record could mislead; otherwise just
	// after, in batches (Start). An error of the first kind gives them
	// back. OnLease is not told of them.
	OnLeaseItems func(handed []HandedItems) error
	// Artifacts is where the output files remote workers upload are kept;
	// a success reporting outputs it does not have fails (nil: it has
	// none). See artifacts.go.
	Artifacts artifact.Store
	// ArtifactMaxFile bounds one file a worker uploads (default
	// DefaultArtifactMaxFile).
	ArtifactMaxFile int64

	// Tracer, when set, records each attempt as a span from its offer to
	// its end, with its hand-off to an executor as an event, as a child of
	// its run's root span (RunTrace), and gives the attempt's process that
	// span as TRACEPARENT, so a task's own spans join the run's trace.
	// Nil (tracing off) costs nothing.
	Tracer   trace.Tracer
	RunTrace func(run int64) (trace.SpanContext, bool)

	// ServerOnly, when set, says which kinds of attempt read the server's
	// own state (attempt.Registry.ServerOnly): those are never leased to a
	// remote worker, nor taken by RunLocal's slots, but by RunServerOnly's.
	ServerOnly func(kind string) bool

	// Authority, when set, says whether this broker's server may hand
	// attempts out now (internal/server: a leader cut off from the store
	// past the moment a successor could run them may not). Attempts wait
	// in line meanwhile; Wake tells the broker it may again.
	Authority func() bool

	// Observe, when set, is told of each attempt taken by an executor and
	// of each that ends (for metrics). It is called without the broker's
	// lock and must not block.
	Observe func(Observation)

	mu      sync.Mutex
	seen    map[string]time.Time // remote workers, by name: when last heard of (lease requests, heartbeats)
	offers  []*offer             // waiting, by priority then arrival
	seq     uint64
	leases  map[string]*leaseState
	bundles map[string]*bundleState // by id, while an item of theirs is held (bundle.go)
	changed chan struct{}           // closed when offers are added

	// adoptUntil ends the adoption window (adopt.go); early holds the
	// heartbeats heard within it for leases not yet adopted.
	adoptUntil time.Time
	early      map[string]earlyBeat
	// late are hand-outs of map items recordLoop records (adopt.go),
	// woken by lateWake.
	late        []HandedItems
	lateDropped bool
	lateWake    chan struct{}
	// mapsRecorded are the maps (run, task index) a hand-out of whose
	// items has been recorded before its answer: a map's first hand-out to
	// a remote worker always is (adopt.go).
	mapsRecorded map[mapRef]bool

	fleet fleet // what Workers lists beyond seen (workers.go)
}

// offer is an attempt waiting for, or held by, a worker.
type offer struct {
	a        *runner.Attempt
	priority int
	labels   []string
	server   bool // server-only (Broker.ServerOnly): only RunServerOnly takes it
	seq      uint64
	result   chan runner.AttemptResult // buffered 1
	handed   bool                      // handed out before, to a remote worker (recordItems)
	lease    *leaseState               // nil while waiting
	ctx      context.Context           // cancelled, with its cause, when the run no longer wants the attempt
	span     trace.Span                // nil without a Tracer
	offered  time.Time                 // when it was put in line (again, after a hand-back)
	taken    time.Time                 // when an executor last took it
}

// Observation is what Broker.Observe is told of an attempt.
type Observation struct {
	// Ended is false when an executor took the attempt (Waited is how long
	// it was in line), true when it ended (Ran is how long it was held,
	// zero if never taken).
	Ended    bool
	Pipeline string
	Labels   []string
	Outcome  attempt.Outcome
	Waited   time.Duration
	Ran      time.Duration
	// Event is set for what happened to a remote lease: "expired" (the
	// worker went silent) or "refused" (a report for a lease not held).
	Event string
	// Remote is whether a remote worker took it (not the server's own
	// executor).
	Remote bool
}

func (b *Broker) observe(o Observation) {
	if b.Observe != nil {
		b.Observe(o)
	}
}

// leaseState is an offer taken by a worker.
type leaseState struct {
	id       string
	o        *offer
	worker   string
	owner    string       // the token the lease was handed to ("" for the in-process executor)
	deadline time.Time    // zero for the in-process executor, which cannot vanish alone
	bundle   *bundleState // the bundle it was handed out in; nil for a lease alone
	stop     error        // why the run asked to end the attempt (attempt.ErrCancelled, attempt.ErrPreempted); nil while it runs
	// adopted: taken over from a previous leader (adopt.go); heard: its
	// worker has named it since, which bound owner to the worker's token.
	adopted, heard bool
	// stopLocal ends an in-process executor's attempt (PreemptLocal); nil
	// for a remote worker's lease.
	stopLocal context.CancelCauseFunc
	// logMu orders a lease's log appends and its close: a worker may retry
	// an append while the first is still being written, and an expiry or a
	// report may come in between.
	logMu   sync.Mutex
	sink    io.WriteCloser
	logSize int64 // bytes of the worker's taken: the offset its next part starts at
	closed  bool
	// An adopted lease's log is resumed (resumeLog) where the previous
	// leader left it: resumed is set once that was done or tried; gapOK
	// until a part was taken after it (only that first part may start
	// past logSize); logLost when the log could not be resumed, and the
	// worker's parts are taken but not kept.
	resumed, gapOK, logLost bool
}

// New returns a broker; Start runs its lease janitor.
func New(lf logs.Store, logger *slog.Logger) *Broker {
	return &Broker{
		HeartbeatEvery: 5 * time.Second,
		LeaseTimeout:   20 * time.Second,
		Logs:           lf,
		Now:            time.Now,
		Logger:         logger,
		leases:         map[string]*leaseState{},
		changed:        make(chan struct{}),
		lateWake:       make(chan struct{}, 1),
	}
}

var _ api.Workers = (*Broker)(nil)

// Start expires leases whose workers stopped sending heartbeats, and
// records hand-outs of map items (OnLeaseItems) left for later, until ctx
// ends.
func (b *Broker) Start(ctx context.Context) {
	t := time.NewTicker(max(b.HeartbeatEvery/2, 10*time.Millisecond))
	defer t.Stop()
	if b.OnLeaseItems != nil {
		done := make(chan struct{})
		go func() {
			defer close(done)
			b.recordLoop(ctx)
		}()
		defer func() { <-done }()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.expire()
		}
	}
}

// expire ends the leases whose deadline passed: their attempts are lost.
func (b *Broker) expire() {
	now := b.Now()
	b.mu.Lock()
	if b.early != nil && now.After(b.adoptUntil) {
		b.early = nil // the window is over: nothing more is adopted
	}
	var lost []*leaseState
	for _, l := range b.leases {
		if !l.deadline.IsZero() && now.After(l.deadline) {
			b.drop(l)
			lost = append(lost, l)
		}
	}
	b.mu.Unlock()
	for _, l := range lost {
		if l.o.span != nil {
			l.o.span.AddEvent("lease expired", trace.WithAttributes(attribute.String("tasuki.worker", l.worker)))
		}
		b.observe(Observation{Event: "expired", Pipeline: l.o.a.Pipeline})
		msg := "worker " + l.worker + " stopped sending heartbeats; the attempt is lost"
		if l.adopted && !l.heard {
			msg = "worker " + l.worker + " was not heard of within the lease timeout after this server took the attempt over; the attempt is lost"
		}
		if !b.mayHandOut() {
			// A leader cut off from the store (or woken up after a freeze)
			// refuses its workers' heartbeats: they went to its successor.
			b.Logger.Info("lease ended here: this server no longer knows whether it leads, and the worker's heartbeats go to whichever server does", attemptAttrs(l, "worker", l.worker, "adopted", l.adopted)...)
		} else {
			b.Logger.Warn("lease lost: no heartbeat from its worker", attemptAttrs(l, "worker", l.worker, "adopted", l.adopted)...)
		}
		b.endLog(context.Background(), l, nil)
		l.o.result <- runner.AttemptResult{Outcome: attempt.Lost, Message: msg, Worker: l.worker}
	}
}

// endLogTimeout bounds the store's answer when a lease's log is resumed
// to be ended.
const endLogTimeout = 10 * time.Second

// Run is a runner.TaskFunc: it offers the attempt to workers and waits for
// its end. Cancelling ctx (the run is cancelled, or the server drains) ends
// an offer no worker took at once, and asks the worker holding a lease to
// end the attempt, for the reason context.Cause(ctx) gives.
func (b *Broker) Run(ctx context.Context, a *runner.Attempt) runner.AttemptResult {
	// Described now, once: the lease and the in-process executor use it.
	if _, err := a.Spec(); err != nil {
		return attempt.Failedf("%v", err)
	}
	o := &offer{a: a, priority: a.Priority, labels: a.Labels, result: make(chan runner.AttemptResult, 1), ctx: ctx, offered: b.Now()}
	if b.ServerOnly != nil {
		s, _ := a.Spec()
		o.server = b.ServerOnly(s.Kind)
	}
	if b.Tracer != nil {
		b.startSpan(o)
	}
	res := b.wait(ctx, o)
	if o.span != nil {
		o.span.SetAttributes(attribute.String("tasuki.outcome", string(res.Outcome)))
		if res.Outcome != attempt.Succeeded {
			o.span.SetStatus(codes.Error, res.Message)
		}
		o.span.End()
	}
	ran := time.Duration(0)
	b.mu.Lock()
	if !o.taken.IsZero() {
		ran = b.Now().Sub(o.taken)
	}
	b.mu.Unlock()
	b.observe(Observation{Ended: true, Pipeline: a.Pipeline, Labels: a.Labels, Outcome: res.Outcome, Ran: ran})
	return res
}

// startSpan starts the span of o's attempt and gives the attempt its
// TRACEPARENT.
func (b *Broker) startSpan(o *offer) {
	a := o.a
	ctx := context.Background()
	if b.RunTrace != nil {
		if parent, ok := b.RunTrace(a.RunID); ok {
			ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
		}
	}
	task := a.TaskID
	if a.Items > 0 {
		task = a.Log.TaskID // TASK.ITEM
	}
	attrs := []attribute.KeyValue{
		attribute.String("tasuki.pipeline", a.Pipeline), attribute.Int64("tasuki.run", a.RunID),
		attribute.String("tasuki.task", a.TaskID), attribute.Int("tasuki.attempt", a.Number),
	}
	s, _ := a.Spec() // described without error (Run checked)
	if a.Items > 0 {
		attrs = append(attrs, attribute.Int("tasuki.item", a.Item), attribute.Int("tasuki.items", a.Items))
	}
	if start := s.Env["TASUKI_INTERVAL_START"]; start != "" {
		attrs = append(attrs, attribute.String("tasuki.interval_start", start), attribute.String("tasuki.interval_end", s.Env["TASUKI_INTERVAL_END"]))
	}
	_, o.span = b.Tracer.Start(ctx, "attempt "+task, trace.WithTimestamp(o.offered), trace.WithAttributes(attrs...))
	env := maps.Clone(s.Env)
	if env == nil {
		env = map[string]string{}
	}
	env["TRACEPARENT"] = tracing.Traceparent(o.span.SpanContext())
	s.Env = env
}

// wait puts o in line and waits for its result.
func (b *Broker) wait(ctx context.Context, o *offer) runner.AttemptResult {
	b.mu.Lock()
	b.seq++
	o.seq = b.seq
	i, _ := slices.BinarySearchFunc(b.offers, o, compareOffers)
	b.offers = slices.Insert(b.offers, i, o)
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()

	select {
	case res := <-o.result:
		return res
	case <-ctx.Done():
	}
	cause := context.Cause(ctx)
	b.mu.Lock()
	if o.lease == nil {
		b.remove(o)
		b.mu.Unlock()
		if errors.Is(cause, attempt.ErrPreempted) {
			return runner.AttemptResult{Outcome: attempt.Preempted, Message: "handed back before a worker took it"}
		}
		return runner.AttemptResult{Outcome: attempt.Cancelled, Message: "cancelled before a worker took it"}
	}
	if !errors.Is(cause, attempt.ErrPreempted) {
		cause = attempt.ErrCancelled
	}
	o.lease.stop = cause
	b.mu.Unlock()
	return <-o.result // the worker reports, or the lease expires
}

func compareOffers(x, y *offer) int {
	if x.priority != y.priority {
		return y.priority - x.priority
	}
	switch {
	case x.seq < y.seq:
		return -1
	case x.seq > y.seq:
		return 1
	}
	return 0
}

// remove takes a waiting offer out of line; b.mu is held.
func (b *Broker) remove(o *offer) {
	if i, ok := slices.BinarySearchFunc(b.offers, o, compareOffers); ok {
		b.offers = slices.Delete(b.offers, i, i+1)
	}
}

// take gives up to n waiting offers whose labels the worker has, as leases
// to owner (the token; "" for the in-process executor); b.mu is held. With
// bundle > 1, the items of a map that wait together go in bundles of up to
// that many (bundle.go), each bundle's leases one after the other in the
// answer. Server-only offers go to the server's own executor's server slots
// only (server true), which take nothing else and ignore labels: they
// choose among workers, and these run on none.
func (b *Broker) take(worker, owner string, labels []string, n int, expires bool, bundle int, server bool) []*leaseState {
	var out []*leaseState
	now := b.Now()
	lease := func(o *offer) *leaseState {
		// A map item's lease is named by its log key's task ("task.ITEM"), so
		// the items of one map do not share a name.
		task := o.a.TaskID
		if o.a.Items > 0 {
			task = o.a.Log.TaskID
		}
		l := &leaseState{id: api.LeaseID(o.a.RunID, task, o.a.Number), o: o, worker: worker, owner: owner}
		if expires {
			l.deadline = now.Add(b.LeaseTimeout)
		}
		o.lease = l
		o.taken = now
		if o.span != nil {
			o.span.AddEvent("leased", trace.WithTimestamp(o.taken), trace.WithAttributes(attribute.String("tasuki.worker", worker)))
			o.span.SetAttributes(attribute.String("tasuki.worker", worker))
		}
		b.leases[l.id] = l
		return l
	}
	for i := 0; i < len(b.offers) && len(out) < n; {
		o := b.offers[i]
		if o.server != server || (!server && !hasAll(labels, o.labels)) {
			i++
			continue
		}
		b.offers = slices.Delete(b.offers, i, i+1)
		l := lease(o)
		out = append(out, l)
		if bundle > 1 && o.a.Items > 0 && len(out) < n {
			out = append(out, b.gather(l, i, min(bundle, n-len(out)+1), lease)...)
		}
	}
	return out
}

// observeTaken tells Observe of leases just taken; b.mu is not held.
func (b *Broker) observeTaken(got []*leaseState) {
	if b.Observe == nil {
		return
	}
	for _, l := range got {
		b.observe(Observation{Pipeline: l.o.a.Pipeline, Labels: l.o.labels, Waited: l.o.taken.Sub(l.o.offered), Remote: !l.deadline.IsZero()})
	}
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// Lease implements api.Workers: it hands up to req.Free attempts to a
// remote worker, waiting up to req.WaitSeconds (at most 30) for some.
func (b *Broker) Lease(ctx context.Context, req api.LeaseRequest) (api.LeaseResponse, error) {
	if req.Worker == "" || req.Free < 1 {
		return api.LeaseResponse{}, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "a lease request names its worker and asks for at least one attempt (free >= 1)")
	}
	if req.Worker == localWorker || strings.HasPrefix(req.Worker, localWorker+":") {
		return api.LeaseResponse{}, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "worker name %q is reserved for the server's own executor", req.Worker)
	}
	owner := api.TokenName(ctx)
	wait := time.Duration(min(max(req.WaitSeconds, 0), 30)) * time.Second
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		if !b.mayHandOut() {
			return api.LeaseResponse{}, api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "this server no longer knows whether it leads (it cannot reach the store); try another server or again later")
		}
		b.mu.Lock()
		got := b.take(req.Worker, owner, req.Labels, req.Free, true, min(req.Bundle, api.MaxBundle), false)
		b.heard(req.Worker)
		b.heardLease(req)
		changed := b.changed
		b.mu.Unlock()
		if len(got) > 0 {
			if err := b.recordItems(req.Worker, got); err != nil {
				return api.LeaseResponse{}, err
			}
			resp := api.LeaseResponse{Leases: make([]api.Lease, 0, len(got))}
			var inBundle []*leaseState // the leases of the bundle being described
			endBundle := func() {
				if len(inBundle) > 0 {
					resp.Bundles = append(resp.Bundles, b.describeBundle(inBundle[0].bundle, inBundle))
					inBundle = inBundle[:0]
				}
			}
			for _, l := range got {
				// The worker must be known to hold it before it may run it:
				// a server taking over relies on that to hold the task.
				if b.OnLease != nil {
					if err := b.OnLease(l.o.a, l.worker); err != nil {
						b.Logger.Warn("could not record the worker of an attempt; offering it again", "lease", l.id, "err", err)
						b.giveBack(l)
						continue
					}
				}
				if ctx.Err() != nil {
					// The worker hung up (a drain, a cut connection): put the
					// attempt back rather than lose it at the lease timeout.
					b.giveBack(l)
					continue
				}
				if len(inBundle) > 0 && inBundle[0].bundle != l.bundle {
					endBundle()
				}
				if l.bundle != nil {
					inBundle = append(inBundle, l)
				} else {
					resp.Leases = append(resp.Leases, b.describe(l))
				}
				b.observeTaken([]*leaseState{l}) // handed out for good
				if level := attemptLevel(l.o.a); b.Logger.Enabled(ctx, level) {
					b.Logger.Log(ctx, level, "attempt leased", attemptAttrs(l, "worker", l.worker)...)
				}
			}
			endBundle()
			if len(resp.Leases)+len(resp.Bundles) > 0 || ctx.Err() != nil {
				return resp, nil
			}
			continue
		}
		select {
		case <-changed:
		case <-timer.C:
			return api.LeaseResponse{Leases: []api.Lease{}}, nil
		case <-ctx.Done():
			return api.LeaseResponse{Leases: []api.Lease{}}, nil
		}
	}
}

// giveBack puts a lease's offer back in line, unleased.
func (b *Broker) giveBack(l *leaseState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.leases[l.id] != l {
		return
	}
	b.drop(l)
	l.o.lease = nil
	l.o.taken = time.Time{}
	if l.stop != nil || l.o.ctx.Err() != nil {
		// The run stopped wanting the attempt while it was being handed
		// out: Run waits for a result, not for a worker; nobody runs it.
		res := runner.AttemptResult{Outcome: attempt.Cancelled, Message: "cancelled before a worker took it"}
		if errors.Is(l.stop, attempt.ErrPreempted) || errors.Is(context.Cause(l.o.ctx), attempt.ErrPreempted) {
			res = runner.AttemptResult{Outcome: attempt.Preempted, Message: "handed back before a worker took it"}
		}
		l.o.result <- res
		return
	}
	l.o.offered = b.Now()
	if l.o.span != nil {
		l.o.span.AddEvent("handed back", trace.WithAttributes(attribute.String("tasuki.worker", l.worker)))
	}
	i, _ := slices.BinarySearchFunc(b.offers, l.o, compareOffers)
	b.offers = slices.Insert(b.offers, i, l.o)
	close(b.changed)
	b.changed = make(chan struct{})
}

// localWorker is the name of the in-process executor's leases; remote
// workers may not use it.
const localWorker = "local"

// held returns the lease with id if the caller (token and worker) holds it.
func (b *Broker) held(ctx context.Context, id, worker string) (*leaseState, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.leases[id]
	if !ok || l.deadline.IsZero() || (worker != "" && l.worker != worker) || !l.bindAdopted(api.TokenName(ctx)) {
		return nil, false
	}
	return l, true
}

// describe is what a worker needs to run a lease: the attempt's Spec, the
// same the in-process executor runs.
func (b *Broker) describe(l *leaseState) api.Lease {
	a := l.o.a
	s, _ := a.Spec() // built without error before it was offered (Run)
	return api.Lease{
		ID: l.id, RunID: a.RunID, Pipeline: a.Pipeline, Task: a.TaskID, Attempt: a.Number, Spec: *s,
		HeartbeatEvery: api.Duration(b.HeartbeatEvery), LeaseTimeout: api.Duration(b.LeaseTimeout),
		InlineLog: api.MaxInlineLog,
	}
}

// Heartbeat implements api.Workers.
func (b *Broker) Heartbeat(ctx context.Context, req api.HeartbeatRequest) (api.HeartbeatResponse, error) {
	now := b.Now()
	var resp api.HeartbeatResponse
	b.mu.Lock()
	defer b.mu.Unlock()
	if req.Worker != "" && len(req.Worker) <= maxWorkerName {
		b.heard(req.Worker)
	}
	owner := api.TokenName(ctx)
	keep := func(l *leaseState) {
		l.deadline = now.Add(b.LeaseTimeout)
		if errors.Is(l.stop, attempt.ErrPreempted) {
			resp.Preempt = append(resp.Preempt, l.id)
		}
		if l.stop != nil {
			// A hand-back is listed under cancel too, so a worker that
			// predates preempt still ends it (and the runner records its
			// "cancelled" as preempted).
			resp.Cancel = append(resp.Cancel, l.id)
		}
	}
	for _, id := range req.Leases {
		l, ok := b.leases[id]
		if !ok && b.rememberEarly(id, req.Worker, owner, now) {
			continue // may be adopted once its run is recovered (adopt.go)
		}
		if !ok || l.worker != req.Worker || l.deadline.IsZero() || !l.bindAdopted(owner) {
			resp.Unknown = append(resp.Unknown, id)
			continue
		}
		keep(l)
	}
	for _, id := range req.Bundles {
		bs, ok := b.bundles[id]
		if !ok && b.rememberEarly(id, req.Worker, owner, now) {
			continue // its items may be adopted once their run is recovered (adopt.go)
		}
		if !ok || bs.worker != req.Worker || !bs.bind(owner) {
			resp.Unknown = append(resp.Unknown, id)
			continue
		}
		for _, l := range bs.leases {
			if b.leases[l.id] == l && l.bindAdopted(owner) {
				keep(l)
			}
		}
	}
	return resp, nil
}

func leaseLost(id string) error {
	return api.Errorf(http.StatusConflict, api.CodeLeaseLost, "lease %s is not held: it expired or was given to another worker", id)
}

// AppendLog implements api.Workers.
func (b *Broker) AppendLog(ctx context.Context, id string, offset int64, data []byte) error {
	l, ok := b.held(ctx, id, "")
	if !ok {
		b.mu.Lock()
		pending := b.pendingAdoptionLocked(id)
		b.mu.Unlock()
		if pending {
			return notAdoptedYet(id)
		}
		return leaseLost(id)
	}
	l.logMu.Lock()
	defer l.logMu.Unlock()
	if l.closed {
		return leaseLost(id)
	}
	if err := b.resumeLog(ctx, l); err != nil {
		return err
	}
	if l.logLost {
		l.logSize = max(l.logSize, offset+int64(len(data)))
		return nil
	}
	if offset > l.logSize {
		if !l.gapOK {
			return api.Errorf(http.StatusBadRequest, api.CodeInvalid, "log of lease %s: offset %d is past the %d bytes received", id, offset, l.logSize)
		}
		// The previous leader acknowledged bytes its store does not have
		// (it kept them in the tail of a log past its bound, on its own
		// disk): the worker never sends them again. The log says so and
		// goes on.
		gap := offset - l.logSize
		b.Logger.Warn("part of the log of an adopted attempt was lost with the previous leader", attemptAttrs(l, "worker", l.worker, "offset", l.logSize, "bytes", gap)...)
		if _, err := l.sink.Write(logs.NoteLine(data, fmt.Sprintf("tasuki: %d bytes of log the previous leader took were lost with it", gap))); err != nil {
			return err
		}
		l.logSize = offset
	}
	l.gapOK = false
	skip := l.logSize - offset // bytes the server already has (a retried request)
	if skip >= int64(len(data)) {
		return syncLog(ctx, l.sink) // a retry after a failed sync syncs again
	}
	if l.sink == nil {
		sink, err := b.Logs.Sink(ctx, l.o.a.Log)
		if err != nil {
			return err
		}
		l.sink = sink
	}
	n, err := l.sink.Write(data[skip:])
	l.logSize += int64(n)
	if err != nil {
		return err
	}
	return syncLog(ctx, l.sink)
}

// resumeLog resumes an adopted lease's log where the store has it (the
// previous leader synced every part it acknowledged: see syncLog), once;
// l.logMu is held. Parts the worker sends then go on from there like any
// lease's. A log the store has complete (its previous leader ended it
// before it stopped) takes the worker's parts without keeping them, so
// the attempt goes on; a store that cannot answer now is a 503, which the
// worker tries again.
func (b *Broker) resumeLog(ctx context.Context, l *leaseState) error {
	if !l.adopted || l.resumed {
		return nil
	}
	sink, offset, err := b.Logs.Resume(ctx, l.o.a.Log)
	switch {
	case errors.Is(err, logs.ErrComplete) || errors.Is(err, fs.ErrExist):
		l.resumed, l.logLost = true, true
		b.Logger.Warn("the log of an adopted attempt cannot go on: what its worker sends is not kept", attemptAttrs(l, "worker", l.worker, "err", err)...)
		return nil
	case err != nil:
		return api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "resume the log of lease %s: %v", l.id, err)
	}
	l.resumed, l.gapOK = true, true
	l.sink, l.logSize = sink, offset
	b.Logger.Info("the log of an adopted attempt goes on", attemptAttrs(l, "worker", l.worker, "offset", offset)...)
	return nil
}

// syncLog makes what a worker sent durable where every server reads it
// (logs.Syncer: in the database several servers share) before the worker
// is told it was taken, so a worker whose server dies resends the rest to
// the next one rather than lose it.
func syncLog(ctx context.Context, sink io.WriteCloser) error {
	if s, ok := sink.(logs.Syncer); ok {
		if err := s.Sync(ctx); err != nil {
			return api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "%v", err)
		}
	}
	return nil
}

// Complete implements api.Workers.
func (b *Broker) Complete(ctx context.Context, id string, req api.CompleteRequest) error {
	return b.CompleteMany(ctx, []api.LeaseReport{{Lease: id, CompleteRequest: req}})[0]
}

var _ api.BatchWorkers = (*Broker)(nil)

// CompleteMany implements api.BatchWorkers: the reports of a batch are
// taken one by one, but the whole logs they carry are kept in one write
// (logs.Files.WriteWhole packs a map's item logs, logs.Cluster writes them in one statement), before any of their
// attempts is handed back to the runner, so a log is in place once the
// store says its attempt ended.
func (b *Broker) CompleteMany(ctx context.Context, reports []api.LeaseReport) []error {
	errs := make([]error, len(reports))
	type taken struct {
		l   *leaseState
		res runner.AttemptResult
	}
	var done []taken
	var wholes []logs.Whole
	for i, rep := range reports {
		l, res, err := b.claim(ctx, rep.Lease, rep.CompleteRequest)
		if err != nil {
			errs[i] = err
			continue
		}
		if !b.endLog(ctx, l, rep.Log) {
			wholes = append(wholes, logs.Whole{Key: l.o.a.Log, Data: rep.Log})
		}
		done = append(done, taken{l, res})
	}
	if len(wholes) > 0 {
		if err := b.Logs.WriteWhole(context.WithoutCancel(ctx), wholes); err != nil {
			// The outcomes matter more than the logs: they are still taken.
			b.Logger.Error("could not keep the logs a worker sent with its reports", "logs", len(wholes), "err", err)
		}
	}
	for _, t := range done {
		t.l.o.result <- t.res
		level := attemptLevel(t.l.o.a)
		if t.res.Outcome != attempt.Succeeded {
			level = slog.LevelWarn // a failure shows at the default level
		}
		if b.Logger.Enabled(ctx, level) { // the attributes cost more than the line's check
			b.Logger.Log(ctx, level, "attempt reported", attemptAttrs(t.l, "worker", t.l.worker, "outcome", t.res.Outcome, "message", t.res.Message)...)
		}
	}
	return errs
}

// attemptAttrs are the attributes of a line about a lease's attempt: every
// line about a run names the run, the pipeline, the task and the attempt
// (and the item of a map), then more.
func attemptAttrs(l *leaseState, more ...any) []any {
	a := l.o.a
	attrs := []any{"lease", l.id, "run", a.RunID, "pipeline", a.Pipeline, "task", a.TaskID, "attempt", a.Number}
	if a.Items > 0 {
		attrs = append(attrs, "item", a.Item)
	}
	return append(attrs, more...)
}

// attemptLevel is the level of the lines about one attempt: info, but
// debug for the items of a map, which come by the thousand a second (a
// line each was a tenth of the server's CPU per item, and a million-item
// map would write four million lines); the map's own events and its
// failed items say what matters about them.
func attemptLevel(a *runner.Attempt) slog.Level {
	if a.Items > 0 {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// claim checks a report and takes its lease out of the held ones, closing
// its log (a later append is refused); the attempt's result is then the
// caller's to deliver.
func (b *Broker) claim(ctx context.Context, id string, req api.CompleteRequest) (*leaseState, runner.AttemptResult, error) {
	var none runner.AttemptResult
	if !req.Outcome.Reportable() {
		return nil, none, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "outcome %q: expected succeeded, failed, timed_out, cancelled or preempted", req.Outcome)
	}
	for k, r := range req.Results {
		if len(r) > 0 && !json.Valid(r) {
			return nil, none, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "results[%d]: not valid JSON", k)
		}
	}
	if len(req.Result) > 0 && !json.Valid(req.Result) {
		return nil, none, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "result: not valid JSON")
	}
	if len(req.Log) > api.MaxInlineLog {
		return nil, none, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "log: %d bytes is more than the %d a report may carry", len(req.Log), api.MaxInlineLog)
	}
	for name, meta := range req.Datasets {
		var obj map[string]json.RawMessage
		if len(meta) > attempt.MaxDatasetMetadata || json.Unmarshal(meta, &obj) != nil || obj == nil {
			return nil, none, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "datasets: %q: expected a JSON object of at most %d bytes", name, attempt.MaxDatasetMetadata)
		}
	}
	res := runner.AttemptResult{Outcome: req.Outcome, ExitCode: req.ExitCode, Message: req.Message, Result: req.Result, Datasets: req.Datasets, Results: req.Results}
	if req.Outcome == attempt.Succeeded {
		fail, err := b.checkOutputs(ctx, req.Outputs)
		if err != nil {
			return nil, none, err
		}
		res.Outputs = req.Outputs
		if fail != "" {
			res = runner.AttemptResult{Outcome: attempt.Failed, ExitCode: req.ExitCode, Message: fail}
		}
	}
	b.mu.Lock()
	l, held := b.leases[id]
	pending := !held && b.pendingAdoptionLocked(id)
	if held && (l.deadline.IsZero() || !l.bindAdopted(api.TokenName(ctx))) {
		held = false // the in-process executor's, or another token's
	}
	if held {
		b.drop(l)
	}
	b.mu.Unlock()
	if pending {
		return nil, none, notAdoptedYet(id)
	}
	if !held {
		b.observe(Observation{Event: "refused"})
		return nil, none, leaseLost(id)
	}
	res.Worker = l.worker
	return l, res, nil
}

// endLog ends the lease's log once (later appends are refused), with
// data, the last of it, appended when part of the log came through
// AppendLog before. It reports false when data is a whole log for the
// caller to keep: none of the log came before, and data holds some. An
// adopted lease's log is resumed first if no part came since the
// takeover, so that it ends here too (its final chunk, in a Cluster); a
// whole log in the report then goes on from what the store has of it.
func (b *Broker) endLog(ctx context.Context, l *leaseState, data []byte) bool {
	l.logMu.Lock()
	defer l.logMu.Unlock()
	if l.closed {
		return true
	}
	l.closed = true
	// A report's answer does not wait for it, and a store that hangs
	// must not hold the lease's log (and the janitor) for ever.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endLogTimeout)
	defer cancel()
	if err := b.resumeLog(rctx, l); err != nil {
		b.Logger.Warn("the log of an adopted attempt could not be ended", attemptAttrs(l, "worker", l.worker, "err", err)...)
		return len(data) == 0 // a whole log in the report is the caller's to try
	}
	if l.sink == nil {
		return len(data) == 0 || l.logLost
	}
	if l.adopted {
		// A whole log starts at 0: the store may have its start.
		data = data[min(l.logSize, int64(len(data))):]
	}
	if len(data) > 0 {
		n, _ := l.sink.Write(data)
		l.logSize += int64(n)
	}
	l.sink.Close()
	return true
}

// RunLocal is the server's in-process executor: slots goroutines that take
// offers like a remote worker would and run them with run (the runner's
// process executor), until ctx ends. A local lease never expires: it ends
// with the attempt. Server-only offers are RunServerOnly's.
func (b *Broker) RunLocal(ctx context.Context, slots int, labels []string, run runner.TaskFunc) {
	b.runsLocal(slots, labels)
	b.runLocal(ctx, slots, labels, false, run)
}

// RunServerOnly is the server's executor of server-only attempts
// (ServerOnly): slots goroutines that take those and nothing else, so they
// run with no remote worker and with RunLocal's slots at 0 (workers: 0),
// and never wait behind long tasks in RunLocal's slots.
func (b *Broker) RunServerOnly(ctx context.Context, slots int, run runner.TaskFunc) {
	b.runLocal(ctx, slots, nil, true, run)
}

func (b *Broker) runLocal(ctx context.Context, slots int, labels []string, server bool, run runner.TaskFunc) {
	var wg sync.WaitGroup
	for range slots {
		wg.Go(func() {
			for {
				b.mu.Lock()
				var got []*leaseState
				if b.mayHandOut() {
					got = b.take(localWorker, "", labels, 1, false, 0, server)
				}
				var actx context.Context
				var stop context.CancelCauseFunc
				if len(got) > 0 {
					// Set with the take, under one lock: PreemptLocal
					// misses no attempt taken.
					actx, stop = context.WithCancelCause(got[0].o.ctx)
					got[0].stopLocal = stop
				}
				changed := b.changed
				b.mu.Unlock()
				if len(got) == 0 {
					select {
					case <-changed:
						continue
					case <-ctx.Done():
						return
					}
				}
				l := got[0]
				b.observeTaken(got)
				if b.Logger.Enabled(ctx, slog.LevelDebug) {
					b.Logger.Debug("attempt started", attemptAttrs(l, "worker", localWorker)...)
				}
				res := run(actx, l.o.a)
				stop(nil)
				level := slog.LevelDebug
				if res.Outcome != attempt.Succeeded {
					level = slog.LevelWarn // a failure shows at the default level
				}
				if b.Logger.Enabled(ctx, level) {
					b.Logger.Log(ctx, level, "attempt ended", attemptAttrs(l, "worker", localWorker, "outcome", res.Outcome, "message", res.Message)...)
				}
				b.mu.Lock()
				held := b.leases[l.id] == l
				if held {
					b.drop(l)
				}
				b.mu.Unlock()
				if held {
					l.o.result <- res
				}
			}
		})
	}
	wg.Wait()
}

// mayHandOut reports whether attempts may be handed out now (Authority).
func (b *Broker) mayHandOut() bool {
	return b.Authority == nil || b.Authority()
}

// Wake makes the executors waiting for attempts look again: Authority may
// say yes again.
func (b *Broker) Wake() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.changed)
	b.changed = make(chan struct{})
}

// PreemptLocal ends the attempts the in-process executor runs, handing
// them back (attempt.ErrPreempted: their processes are killed at once),
// and reports how many it ended. A leader that can no longer know it leads
// calls it before another server may run those attempts again (the
// server's authority, internal/server/leader.go): unlike a remote worker,
// the in-process executor has no lease timeout of its own to end them.
func (b *Broker) PreemptLocal() int {
	b.mu.Lock()
	var stops []context.CancelCauseFunc
	for _, l := range b.leases {
		if l.stopLocal != nil {
			stops = append(stops, l.stopLocal)
		}
	}
	b.mu.Unlock()
	for _, stop := range stops {
		stop(attempt.ErrPreempted)
	}
	return len(stops)
}

// Waiting says whether an attempt waits for a worker, for the API.
func (b *Broker) Waiting(run int64, task string, attempt int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, leased := b.leases[api.LeaseID(run, task, attempt)]
	if leased {
		return false
	}
	for _, o := range b.offers {
		if o.a.RunID == run && o.a.TaskID == task && o.a.Number == attempt {
			return true
		}
	}
	return false
}

// maxWorkerName bounds the worker names the broker remembers.
const maxWorkerName = 256

// heard records that a remote worker called; b.mu is held. Names not heard
// of for a lease timeout are forgotten (here and in Stats), so the map
// holds the live fleet.
func (b *Broker) heard(worker string) {
	now := b.Now()
	if b.seen == nil {
		b.seen = map[string]time.Time{}
	}
	if len(b.seen) >= 1024 {
		for name, at := range b.seen {
			if now.Sub(at) > b.LeaseTimeout {
				delete(b.seen, name)
			}
		}
	}
	b.seen[worker] = now
}

// Stats is the broker's state at one moment, for the server's gauges.
type Stats struct {
	// Waiting counts attempts in line for an executor, by their labels
	// joined with commas ("" for none).
	Waiting map[string]int
	// Running counts attempts held by an executor (remote or local).
	Running int
	// Workers counts the remote workers heard from within a lease
	// timeout, and OldestHeartbeat is the longest silence of a worker
	// holding a lease.
	Workers         int
	OldestHeartbeat time.Duration
}

// Stats returns the broker's state now.
func (b *Broker) Stats() Stats {
	now := b.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	st := Stats{Waiting: map[string]int{}, Running: len(b.leases)}
	for _, o := range b.offers {
		st.Waiting[strings.Join(o.labels, ",")]++
	}
	for name, at := range b.seen {
		if now.Sub(at) > b.LeaseTimeout {
			delete(b.seen, name)
			continue
		}
		st.Workers++
	}
	for _, l := range b.leases {
		if l.deadline.IsZero() {
			continue
		}
		st.OldestHeartbeat = max(st.OldestHeartbeat, now.Sub(l.deadline.Add(-b.LeaseTimeout)))
	}
	return st
}

package worker

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// Reports of ended attempts go to the server through one reporter per
// session. When attempts end one at a time, each report is sent alone, as
// it always was. When many end together (the items of a map: hundreds of
// attempts a second), the reports that arrive while one request is in
// flight go together in the next (POST /worker/complete): one round trip
// for a batch instead of one per attempt, with no delay added to any
// report. A server older than the batch route answers 404, and the
// reporter then sends every report alone.

// batchCompleter is the client's batch route (api.Client has it).
type batchCompleter interface {
	CompleteBatch(ctx context.Context, reports []api.LeaseReport) ([]api.ReportRefusal, error)
}

type reporter struct {
	s       *session
	mu      sync.Mutex
	queue   []*pendingReport
	wake    chan struct{} // capacity 1
	singles atomic.Bool   // the server has no batch route
	queued  func()        // tests: called after a report is queued
}

type pendingReport struct {
	a    *leased
	req  api.CompleteRequest
	size int // bytes of req in JSON
	done chan error
}

func newReporter(s *session) *reporter {
	return &reporter{s: s, wake: make(chan struct{}, 1)}
}

// complete reports an attempt's end and returns how the server took it,
// as Client.Complete would.
func (rp *reporter) complete(a *leased, req api.CompleteRequest, size int) error {
	if _, ok := rp.s.w.Client.(batchCompleter); !ok || rp.singles.Load() {
		return rp.single(a, req)
	}
	p := &pendingReport{a: a, req: req, size: size, done: make(chan error, 1)}
	rp.mu.Lock()
	rp.queue = append(rp.queue, p)
	rp.mu.Unlock()
	if rp.queued != nil {
		rp.queued()
	}
	signal(rp.wake)
	select {
	case err := <-p.done:
		return err
	case <-a.report.Done():
		return context.Cause(a.report)
	}
}

// single sends one report alone, retrying what can be retried.
func (rp *reporter) single(a *leased, req api.CompleteRequest) error {
	l := a.lease
	return rp.s.retry(a.report, "report attempt", l.ID, func(ctx context.Context) error {
		err := rp.s.w.Client.Complete(ctx, l.ID, req)
		rp.s.m.Call("report", err)
		return err
	})
}

// run sends the queued reports until stop is closed (every attempt of the
// session has been reported).
func (rp *reporter) run(ctx context.Context, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-rp.wake:
		}
		rp.linger(stop)
		for {
			batch := rp.take()
			if len(batch) == 0 {
				break
			}
			rp.send(ctx, batch)
		}
	}
}

// lingerFor bounds how long the first report of a bundle's items waits
// for the others (linger).
const lingerFor = time.Millisecond

// linger waits, at most lingerFor, while attempts that came in bundles
// still run: the items of a bundle start together and, when they are
// short, end within microseconds of each other, so their reports go in
// one request (and their slots come back together, for one lease request)
// rather than the first alone and the rest in a second. Attempts that came
// alone are reported at once, as before bundles.
func (rp *reporter) linger(stop <-chan struct{}) {
	var t *time.Timer
	for {
		rp.mu.Lock()
		queued := len(rp.queue)
		rp.mu.Unlock()
		if queued == 0 || queued >= rp.s.bundled() {
			return
		}
		if t == nil {
			t = time.NewTimer(lingerFor)
			defer t.Stop()
		}
		select {
		case <-rp.wake:
		case <-t.C:
			return
		case <-stop:
			return
		}
	}
}

// take removes the next batch from the queue: as many reports as one
// request may carry.
func (rp *reporter) take() []*pendingReport {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	n, bytes := 0, 0
	for n < len(rp.queue) && n < api.MaxCompleteBatch {
		size := rp.queue[n].size + 256 // the lease id and the JSON around it
		if n > 0 && bytes+size > api.MaxCompleteBatchBytes-64<<10 {
			break
		}
		bytes += size
		n++
	}
	batch := rp.queue[:n:n]
	rp.queue = rp.queue[n:]
	return batch
}

// send delivers a batch: alone when it holds one report, together
// otherwise, and tells each report's attempt how it was taken.
func (rp *reporter) send(ctx context.Context, batch []*pendingReport) {
	if len(batch) == 1 || rp.singles.Load() {
		var wg sync.WaitGroup
		for _, p := range batch {
			wg.Go(func() { p.done <- rp.single(p.a, p.req) })
		}
		wg.Wait()
		return
	}
	reports := make([]api.LeaseReport, len(batch))
	for i, p := range batch {
		reports[i] = api.LeaseReport{Lease: p.a.lease.ID, CompleteRequest: p.req}
	}
	var refused []api.ReportRefusal
	bc := rp.s.w.Client.(batchCompleter)
	err := rp.s.retry(ctx, "report attempts", "", func(ctx context.Context) error {
		var err error
		refused, err = bc.CompleteBatch(ctx, reports)
		rp.s.m.Call("report", err)
		return err
	})
	if e, ok := errors.AsType[*api.Error](err); ok && (e.Status == http.StatusNotFound || e.Status == http.StatusMethodNotAllowed) {
		rp.s.log.Info("the server takes reports one at a time (no batch route): sending them so")
		rp.singles.Store(true)
		rp.send(ctx, batch)
		return
	}
	why := map[string]api.ReportRefusal{}
	for _, r := range refused {
		why[r.Lease] = r
	}
	// The batch's attempts free their slots together: the lease loop wakes
	// once for them all (release), and asks for as many attempts, rather
	// than for one at the first.
	rp.s.settling.Add(int64(len(batch)))
	for _, p := range batch {
		if !p.a.markSettle() {
			rp.s.settled() // already let go (its reporting ended): nothing to wait for
		}
	}
	for _, p := range batch {
		switch r, ok := why[p.a.lease.ID]; {
		case err != nil:
			p.done <- err
		case ok:
			status := http.StatusBadRequest
			if r.Code == api.CodeLeaseLost {
				status = http.StatusConflict
			}
			p.done <- &api.Error{Status: status, Code: r.Code, Message: r.Message}
		default:
			p.done <- nil
		}
	}
}

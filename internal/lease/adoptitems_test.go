package lease

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/runner"
)

// adoptItems runs b.AdoptItems(worker, bundle) for a in the background,
// returns once the lease is held, and gives where its result arrives.
func adoptItems(ctx context.Context, b *Broker, worker, bundle string, a *runner.Attempt) <-chan runner.AttemptResult {
	ch := make(chan runner.AttemptResult, 1)
	go func() { ch <- b.AdoptItems(worker, bundle)(ctx, a) }()
	id := api.LeaseID(a.RunID, a.Log.TaskID, a.Number)
	for {
		b.mu.Lock()
		_, ok := b.leases[id]
		b.mu.Unlock()
		if ok {
			return ch
		}
		runtime.Gosched()
	}
}

// foundItem is an attempt of item i of map task m, as recovery finds it.
func foundItem(run int64, i, n int) *runner.Attempt {
	return &runner.Attempt{RunID: run, Pipeline: "p", TaskID: "m", Number: n, Item: i, Items: 1,
		Log: logs.Key{RunID: run, TaskID: runner.ItemLogID("m", i), Attempt: n}}
}

// TestLeaseRecordsItemsPerBundle: the attempts of map items a worker takes
// are told to OnLeaseItems, a bundle's together under the bundle's id, a
// lease alone under its own; a task's attempt is not. A map's first
// hand-out is told before the answer; later first attempts after it, in a
// batch (recordLoop); a later attempt of an item, before the worker has
// it, with the rest of its lease request's.
func TestLeaseRecordsItemsPerBundle(t *testing.T) {
	b, _, _ := newBroker(t)
	var calls [][]HandedItems
	b.OnLeaseItems = func(handed []HandedItems) error {
		calls = append(calls, handed)
		return nil
	}
	var results []<-chan runner.AttemptResult
	for i := range 4 {
		results = append(results, submit(context.Background(), b, item(1, "m", i, 1)))
	}
	results = append(results, submit(context.Background(), b, offered(1, "plain", 0)))
	defer func() {
		for _, id := range []string{"1.m.0.1", "1.m.1.1", "1.m.2.1", "1.m.3.1", "1.plain.1", "1.m.4.1", "1.m.5.1", "1.m.7.2", "1.m.8.1"} {
			if err := b.Complete(context.Background(), id, api.CompleteRequest{Outcome: api.OutcomeSucceeded}); err != nil {
				t.Errorf("report %s: %v", id, err)
			}
		}
		for _, r := range results {
			<-r
		}
	}()
	resp := leaseResp(t, b, api.LeaseRequest{Worker: "w", Free: 5, Bundle: 3})
	if len(resp.Bundles) != 1 || len(resp.Leases) != 2 {
		t.Fatalf("got %+v: want a bundle of 3, an item alone and the task", resp)
	}
	if len(calls) != 1 {
		t.Fatalf("the map's first hand-out: OnLeaseItems told %d times before the answer, want once for the request", len(calls))
	}
	b.recordLate()
	if len(calls) != 1 {
		t.Fatalf("OnLeaseItems told %d times, want once for the request", len(calls))
	}
	h := calls[0]
	if len(h) != 2 || h[0].ID != resp.Bundles[0].ID || h[0].Worker != "w" || len(h[0].Attempts) != 3 || h[1].ID != "1.m.3.1" || len(h[1].Attempts) != 1 {
		t.Fatalf("handed %+v", h)
	}
	for k, a := range h[0].Attempts {
		if items, attempts := a.Unit(); len(items) != 1 || items[0] != k || attempts[0] != 1 {
			t.Errorf("attempt %d of the bundle runs %v at %v", k, items, attempts)
		}
	}

	// More first attempts of the same map: told after the answer.
	calls = nil
	results = append(results, submit(context.Background(), b, item(1, "m", 4, 1)), submit(context.Background(), b, item(1, "m", 5, 1)))
	resp = leaseResp(t, b, api.LeaseRequest{Worker: "w", Free: 2, Bundle: 2})
	if len(resp.Bundles) != 1 || len(calls) != 0 {
		t.Fatalf("first attempts of a recorded map: answer %+v, told before it %+v", resp, calls)
	}
	b.recordLate()
	if len(calls) != 1 || len(calls[0]) != 1 || len(calls[0][0].Attempts) != 2 {
		t.Fatalf("first attempts of a recorded map, told late: %+v", calls)
	}

	// An item's second attempt in a bundle with a first: the bundle is
	// recorded before the answer.
	calls = nil
	results = append(results, submit(context.Background(), b, item(1, "m", 7, 2)), submit(context.Background(), b, item(1, "m", 8, 1)))
	resp = leaseResp(t, b, api.LeaseRequest{Worker: "w", Free: 2, Bundle: 2})
	if len(resp.Bundles) != 1 || len(calls) != 1 || len(calls[0]) != 1 || len(calls[0][0].Attempts) != 2 {
		t.Fatalf("a later attempt's bundle: answer %+v, told %+v", resp, calls)
	}
	b.recordLate()
	if len(calls) != 1 {
		t.Fatalf("told again later: %+v", calls)
	}
}

// TestLeaseItemsNotRecordedGivenBack: when a hand-out that must be
// recorded first cannot be, the worker is told to ask again and nothing is
// handed out: the attempts wait in line, and go to the next worker that
// asks once it can be (a map's first hand-out is recorded first, and so
// is a first attempt handed out before: an earlier record of it may name
// another worker).
func TestLeaseItemsNotRecordedGivenBack(t *testing.T) {
	b, _, _ := newBroker(t)
	fail := true
	var told []HandedItems
	b.OnLeaseItems = func(h []HandedItems) error {
		if fail {
			return errors.New("the database is restarting")
		}
		told = append(told, h...)
		return nil
	}
	res := submit(context.Background(), b, item(1, "m", 0, 2))
	first := submit(context.Background(), b, item(1, "m", 1, 1))
	_, err := b.Lease(context.Background(), api.LeaseRequest{Worker: "w", Free: 2})
	var e *api.Error
	if !errors.As(err, &e) || e.Status != 503 {
		t.Fatalf("lease while the hand-out cannot be recorded: %v, want 503", err)
	}
	if !b.Waiting(1, "m", 2) || !b.Waiting(1, "m", 1) {
		t.Fatal("the items are not back in line")
	}
	fail = false
	b.recordLate() // nothing was left for later: the refused hand-out was all to be recorded first
	resp := leaseResp(t, b, api.LeaseRequest{Worker: "w2", Free: 2})
	if len(resp.Leases) != 2 || resp.Leases[0].ID != "1.m.0.2" || resp.Leases[1].ID != "1.m.1.1" {
		t.Fatalf("lease once it can be recorded: %+v", resp)
	}
	if len(told) != 2 || told[0].Worker != "w2" || told[1].Worker != "w2" || told[1].ID != "1.m.1.1" {
		t.Fatalf("recorded %+v: want both hand-outs to w2, before the answer, and none to w", told)
	}
	for _, id := range []string{"1.m.0.2", "1.m.1.1"} {
		if err := b.Complete(context.Background(), id, api.CompleteRequest{Outcome: api.OutcomeSucceeded}); err != nil {
			t.Fatal(err)
		}
	}
	for _, ch := range []<-chan runner.AttemptResult{res, first} {
		if r := <-ch; r.Outcome != attempt.Succeeded || r.Worker != "w2" {
			t.Fatalf("result %+v", r)
		}
	}
}

// TestAdoptedBundleKeptByItsWorker: the adopted items of one bundle are a
// bundle again: a heartbeat for it heard before the adoption binds it to
// its token, heartbeats naming it keep every item held (past the first
// lease timeout), another token's are refused, and each item's report is
// taken under its own lease; an item alone is kept by its lease's id.
func TestAdoptedBundleKeptByItsWorker(t *testing.T) {
	b, clk, _ := newBroker(t)
	b.AdoptFrom(clk.Now())
	w1 := api.WithTokenName(context.Background(), "tok1")
	w2 := api.WithTokenName(context.Background(), "tok2")
	const bundle = "4.m.0.1"
	// Heard of before the run is recovered: remembered.
	if hb, _ := b.Heartbeat(w1, api.HeartbeatRequest{Worker: "w1", Bundles: []string{bundle}}); len(hb.Unknown) != 0 {
		t.Fatalf("bundle heartbeat before adoption: %+v", hb)
	}
	// Item 0 (the bundle's first, whose id is the bundle's) was reported
	// before the takeover: items 1 and 2 are adopted; item 5 came alone.
	r1 := adoptItems(context.Background(), b, "w1", bundle, foundItem(4, 1, 1))
	r2 := adoptItems(context.Background(), b, "w1", bundle, foundItem(4, 2, 1))
	r5 := adoptItems(context.Background(), b, "w1", "4.m.5.1", foundItem(4, 5, 1))

	if hb, _ := b.Heartbeat(w2, api.HeartbeatRequest{Worker: "w1", Bundles: []string{bundle}}); len(hb.Unknown) != 1 {
		t.Fatalf("another token's heartbeat for the bundle: %+v", hb)
	}
	for range 2 {
		clk.Add(b.LeaseTimeout * 3 / 4)
		hb, _ := b.Heartbeat(w1, api.HeartbeatRequest{Worker: "w1", Bundles: []string{bundle}, Leases: []string{"4.m.5.1"}})
		if len(hb.Unknown) != 0 {
			t.Fatalf("its worker's heartbeat: %+v", hb)
		}
		b.expire()
	}
	if err := b.Complete(w2, "4.m.1.1", api.CompleteRequest{Outcome: api.OutcomeSucceeded}); err == nil {
		t.Fatal("another token completed an adopted item")
	}
	for _, id := range []string{"4.m.1.1", "4.m.2.1", "4.m.5.1"} {
		if err := b.Complete(w1, id, api.CompleteRequest{Outcome: api.OutcomeSucceeded}); err != nil {
			t.Fatalf("report of %s: %v", id, err)
		}
	}
	for _, r := range []<-chan runner.AttemptResult{r1, r2, r5} {
		if res := <-r; res.Outcome != attempt.Succeeded || res.Worker != "w1" {
			t.Fatalf("adopted item: %+v", res)
		}
	}
	// Every item reported: the bundle is no longer held.
	if hb, _ := b.Heartbeat(w1, api.HeartbeatRequest{Worker: "w1", Bundles: []string{bundle}}); len(hb.Unknown) != 1 {
		t.Fatalf("heartbeat for a bundle whose items all ended: %+v", hb)
	}
}

// TestAdoptedBundleBoundByFirstHeartbeat: without a heartbeat before the
// adoption, the first token to name the bundle has it; cancelling an
// adopted item asks the worker to end it, through the bundle's heartbeat.
func TestAdoptedBundleBoundByFirstHeartbeat(t *testing.T) {
	b, clk, _ := newBroker(t)
	b.AdoptFrom(clk.Now())
	w1 := api.WithTokenName(context.Background(), "tok1")
	w2 := api.WithTokenName(context.Background(), "tok2")
	ctx, cancel := context.WithCancelCause(context.Background())
	res := adoptItems(ctx, b, "w1", "2.m.0.1", foundItem(2, 3, 2))
	if hb, _ := b.Heartbeat(w1, api.HeartbeatRequest{Worker: "w1", Bundles: []string{"2.m.0.1"}}); len(hb.Unknown) != 0 {
		t.Fatalf("first heartbeat: %+v", hb)
	}
	if hb, _ := b.Heartbeat(w2, api.HeartbeatRequest{Worker: "w1", Bundles: []string{"2.m.0.1"}}); len(hb.Unknown) != 1 {
		t.Fatalf("another token after the first: %+v", hb)
	}
	cancel(attempt.ErrCancelled)
	for {
		hb, _ := b.Heartbeat(w1, api.HeartbeatRequest{Worker: "w1", Bundles: []string{"2.m.0.1"}})
		if len(hb.Cancel) == 1 && hb.Cancel[0] == "2.m.3.2" {
			break
		}
		runtime.Gosched()
	}
	if err := b.Complete(w1, "2.m.3.2", api.CompleteRequest{Outcome: api.OutcomeCancelled}); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.Outcome != attempt.Cancelled {
		t.Fatalf("cancelled adopted item: %+v", r)
	}
}

// TestAdoptedItemsNotHeardOfAreLost: adopted items whose worker is not
// heard of within a lease timeout are lost, and only then (so an item
// never runs twice at once); their bundle goes with them.
func TestAdoptedItemsNotHeardOfAreLost(t *testing.T) {
	b, clk, _ := newBroker(t)
	b.AdoptFrom(clk.Now())
	r1 := adoptItems(context.Background(), b, "gone", "7.m.0.1", foundItem(7, 0, 1))
	r2 := adoptItems(context.Background(), b, "gone", "7.m.0.1", foundItem(7, 1, 1))
	clk.Add(b.LeaseTimeout - 1)
	b.expire()
	select {
	case r := <-r1:
		t.Fatalf("lost before the lease timeout: %+v", r)
	default:
	}
	clk.Add(2)
	b.expire()
	for _, ch := range []<-chan runner.AttemptResult{r1, r2} {
		if r := <-ch; r.Outcome != attempt.Lost || !strings.Contains(r.Message, "not heard of") {
			t.Fatalf("result %+v, want lost, not heard of", r)
		}
	}
	b.mu.Lock()
	n := len(b.bundles)
	b.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d bundles held after their items were lost", n)
	}
}

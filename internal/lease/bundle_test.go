package lease

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

// item is the attempt of item i of map task id of run, described as the
// runner describes a map item: the task's variables and the item's own.
func item(run int64, id string, i, number int) *runner.Attempt {
	t := &spec.Task{ID: id, Noop: &spec.Noop{}}
	env := map[string]string{"TASUKI_TASK_ID": id, "TASUKI_ATTEMPT": strconv.Itoa(number),
		"TASUKI_ITEM": strconv.Itoa(i * 10), "TASUKI_ITEM_INDEX": strconv.Itoa(i), "SHARED": "x"}
	s, err := attempt.Builtin().Describe(t, env, map[string]json.RawMessage{"up": json.RawMessage(`{"n":1}`)})
	if err != nil {
		panic(err)
	}
	s.Item = json.RawMessage(strconv.Itoa(i * 10))
	a := &runner.Attempt{RunID: run, Pipeline: "p", TaskID: id, Number: number, Item: i, Items: 1,
		Log: logs.Key{RunID: run, TaskID: runner.ItemLogID(id, i), Attempt: number}}
	return a.WithSpec(s)
}

func leaseResp(t *testing.T, b *Broker, req api.LeaseRequest) api.LeaseResponse {
	t.Helper()
	resp, err := b.Lease(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestBundleCarriesEachItemsLease: the items of one map waiting together
// come as one bundle, at most the worker's free slots and its bundle size;
// each item's Lease, rebuilt from the bundle, is the Lease it would have
// come as alone; items are reported one by one under their own leases.
func TestBundleCarriesEachItemsLease(t *testing.T) {
	b, _, _ := newBroker(t)
	var results []<-chan runner.AttemptResult
	var attempts []*runner.Attempt
	for i := range 5 {
		a := item(1, "m", i, 1)
		attempts = append(attempts, a)
		results = append(results, submit(context.Background(), b, a))
	}
	other := submit(context.Background(), b, offered(1, "plain", 0))

	// A worker that does not ask for bundles gets leases, as before.
	old := leaseResp(t, b, api.LeaseRequest{Worker: "old", Free: 1})
	if len(old.Leases) != 1 || len(old.Bundles) != 0 || old.Leases[0].ID != "1.m.0.1" {
		t.Fatalf("a worker without bundles got %+v", old)
	}

	resp := leaseResp(t, b, api.LeaseRequest{Worker: "w", Free: 4, Bundle: 3})
	if len(resp.Bundles) != 1 || len(resp.Leases) != 1 || resp.Leases[0].ID != "1.m.4.1" {
		t.Fatalf("got %+v: want a bundle of 3 items and the fourth alone (free 4, bundles of 3)", resp)
	}
	bd := resp.Bundles[0]
	if bd.ID != "1.m.1.1" || len(bd.Items) != 3 || bd.Spec.Item != nil {
		t.Fatalf("bundle %+v", bd)
	}
	for k := range bd.Items {
		got := bd.Lease(k)
		want := b.describe(&leaseState{id: got.ID, o: &offer{a: attempts[k+1]}})
		if !reflect.DeepEqual(got, want) {
			t.Errorf("item %d of the bundle:\n got %+v\nwant %+v", k, got, want)
		}
	}
	if n := len(bd.Items[1].Env); n != 2 {
		t.Errorf("item 2 sends %d variables of its own (%v), want its item's 2", n, bd.Items[1].Env)
	}
	// Each item is reported alone: the others keep running.
	if err := b.Complete(context.Background(), "1.m.2.1", api.CompleteRequest{Outcome: api.OutcomeSucceeded}); err != nil {
		t.Fatal(err)
	}
	if r := <-results[2]; r.Outcome != attempt.Succeeded || r.Worker != "w" {
		t.Fatalf("item 2: %+v", r)
	}
	b.Complete(context.Background(), "1.m.0.1", api.CompleteRequest{Outcome: api.OutcomeSucceeded})
	b.Complete(context.Background(), "1.m.1.1", api.CompleteRequest{Outcome: api.OutcomeFailed})
	b.Complete(context.Background(), "1.m.3.1", api.CompleteRequest{Outcome: api.OutcomeSucceeded})
	b.Complete(context.Background(), "1.m.4.1", api.CompleteRequest{Outcome: api.OutcomeSucceeded})
	if r := <-results[1]; r.Outcome != attempt.Failed {
		t.Fatalf("item 1: %+v", r)
	}
	<-results[0]
	<-results[3]
	<-results[4]
	if resp := leaseResp(t, b, api.LeaseRequest{Worker: "w", Free: 4, Bundle: 3}); len(resp.Leases) != 1 || resp.Leases[0].Task != "plain" {
		t.Fatalf("the plain task: %+v", resp)
	}
	b.Complete(context.Background(), "1.plain.1", api.CompleteRequest{Outcome: api.OutcomeSucceeded})
	<-other
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.bundles) != 0 || len(b.leases) != 0 {
		t.Errorf("left %d bundles, %d leases", len(b.bundles), len(b.leases))
	}
}

// TestBundleLostAsOne: one heartbeat keeps every item of a bundle alive;
// when they stop, every item not reported is lost (and the runner retries
// each as its policy says), and the worker's late reports are refused.
func TestBundleLostAsOne(t *testing.T) {
	b, clk, _ := newBroker(t)
	var results []<-chan runner.AttemptResult
	for i := range 4 {
		results = append(results, submit(context.Background(), b, item(7, "m", i, 2)))
	}
	resp := leaseResp(t, b, api.LeaseRequest{Worker: "w", Free: 8, Bundle: 8})
	if len(resp.Bundles) != 1 || len(resp.Bundles[0].Items) != 4 {
		t.Fatalf("got %+v", resp)
	}
	id := resp.Bundles[0].ID
	if err := b.Complete(context.Background(), "7.m.0.2", api.CompleteRequest{Outcome: api.OutcomeSucceeded}); err != nil {
		t.Fatal(err)
	}
	<-results[0]
	clk.Add(b.LeaseTimeout / 2)
	hb, _ := b.Heartbeat(context.Background(), api.HeartbeatRequest{Worker: "w", Bundles: []string{id, "7.x.0.1"}})
	if !reflect.DeepEqual(hb.Unknown, []string{"7.x.0.1"}) {
		t.Fatalf("heartbeat %+v", hb)
	}
	// Another worker's heartbeat does not keep it.
	if hb, _ := b.Heartbeat(context.Background(), api.HeartbeatRequest{Worker: "other", Bundles: []string{id}}); len(hb.Unknown) != 1 {
		t.Fatalf("another worker's heartbeat of the bundle: %+v", hb)
	}
	clk.Add(b.LeaseTimeout / 2) // renewed: still alive
	b.expire()
	for i, r := range results[1:] {
		select {
		case res := <-r:
			t.Fatalf("item %d of a renewed bundle ended: %+v", i+1, res)
		default:
		}
	}
	clk.Add(b.LeaseTimeout + 1)
	b.expire()
	for i, r := range results[1:] {
		if res := <-r; res.Outcome != attempt.Lost || res.Worker != "w" {
			t.Errorf("item %d: %+v, want lost", i+1, res)
		}
	}
	var e *api.Error
	if err := b.Complete(context.Background(), "7.m.1.2", api.CompleteRequest{Outcome: api.OutcomeSucceeded}); !errors.As(err, &e) || e.Code != api.CodeLeaseLost {
		t.Fatalf("a late report of a lost item: %v", err)
	}
	if hb, _ := b.Heartbeat(context.Background(), api.HeartbeatRequest{Worker: "w", Bundles: []string{id}}); !reflect.DeepEqual(hb.Unknown, []string{id}) {
		t.Fatalf("heartbeat of a lost bundle: %+v", hb)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.bundles) != 0 {
		t.Errorf("a lost bundle is kept: %v", b.bundles)
	}
}

// TestBundleCancelNamesItems: a cancelled item of a bundle is named by its
// own lease in the bundle's heartbeat answer.
func TestBundleCancelNamesItems(t *testing.T) {
	b, _, _ := newBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	first := submit(ctx, b, item(1, "m", 0, 1))
	second := submit(context.Background(), b, item(1, "m", 1, 1))
	resp := leaseResp(t, b, api.LeaseRequest{Worker: "w", Free: 2, Bundle: 2})
	if len(resp.Bundles) != 1 {
		t.Fatalf("got %+v", resp)
	}
	cancel()
	for {
		hb, _ := b.Heartbeat(context.Background(), api.HeartbeatRequest{Worker: "w", Bundles: []string{resp.Bundles[0].ID}})
		if len(hb.Cancel) > 0 {
			if !reflect.DeepEqual(hb.Cancel, []string{"1.m.0.1"}) || len(hb.Unknown) != 0 {
				t.Fatalf("heartbeat %+v: want item 0 cancelled alone", hb)
			}
			break
		}
	}
	b.Complete(context.Background(), "1.m.0.1", api.CompleteRequest{Outcome: api.OutcomeCancelled})
	b.Complete(context.Background(), "1.m.1.1", api.CompleteRequest{Outcome: api.OutcomeSucceeded})
	if r := <-first; r.Outcome != attempt.Cancelled {
		t.Fatalf("first: %+v", r)
	}
	if r := <-second; r.Outcome != attempt.Succeeded {
		t.Fatalf("second: %+v", r)
	}
}

// TestBundleOnlyAlike: items join a bundle only when everything but the
// item and its variables' values is alike: other maps, other runs and
// items with other needs' results go apart.
func TestBundleOnlyAlike(t *testing.T) {
	b, _, _ := newBroker(t)
	odd := item(1, "m", 2, 1)
	s, _ := odd.Spec()
	s.Needs = map[string]json.RawMessage{"up": json.RawMessage(`{"n":2}`)}
	var results []<-chan runner.AttemptResult
	for _, a := range []*runner.Attempt{item(1, "m", 0, 1), item(2, "m", 1, 1), odd, item(1, "m", 3, 1)} {
		results = append(results, submit(context.Background(), b, a))
	}
	resp := leaseResp(t, b, api.LeaseRequest{Worker: "w", Free: 10, Bundle: 10})
	var ids []string
	for _, l := range resp.Leases {
		ids = append(ids, l.ID)
	}
	if len(resp.Bundles) != 1 || len(resp.Bundles[0].Items) != 2 || resp.Bundles[0].Items[1].Lease != "1.m.3.1" ||
		!reflect.DeepEqual(ids, []string{"2.m.1.1", "1.m.2.1"}) {
		t.Fatalf("bundles %+v, leases %v", resp.Bundles, ids)
	}
	for _, id := range []string{"1.m.0.1", "2.m.1.1", "1.m.2.1", "1.m.3.1"} {
		b.Complete(context.Background(), id, api.CompleteRequest{Outcome: api.OutcomeSucceeded})
	}
	for _, r := range results {
		<-r
	}
}

// TestBundlesComparesEverySpecField: bundles (which decides what may share
// a description) must know every field of attempt.Spec; a field added
// there must be added to it, or here as the item's own.
func TestBundlesComparesEverySpecField(t *testing.T) {
	own := map[string]bool{"Env": true, "Item": true, "Items": true} // the item's, compared apart
	base := attempt.Spec{Kind: "k", Body: json.RawMessage(`{}`), Env: map[string]string{"A": "1"}}
	typ := reflect.TypeFor[attempt.Spec]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if own[f.Name] {
			continue
		}
		other := base
		v := reflect.ValueOf(&other).Elem().Field(i)
		switch v.Kind() {
		case reflect.String:
			v.SetString("other")
		case reflect.Int64:
			v.SetInt(7)
		case reflect.Slice:
			v.Set(reflect.MakeSlice(v.Type(), 1, 1))
			if e := v.Index(0); e.Kind() == reflect.String {
				e.SetString("x")
			} else if e.Kind() == reflect.Uint8 {
				e.SetUint('1')
			}
		case reflect.Map:
			m := reflect.MakeMap(v.Type())
			m.SetMapIndex(reflect.ValueOf("k").Convert(v.Type().Key()), reflect.Zero(v.Type().Elem()))
			v.Set(m)
		default:
			t.Fatalf("attempt.Spec.%s: a %s; teach this test (and bundles) about it", f.Name, v.Kind())
		}
		if bundles(&base, &other) {
			t.Errorf("attempt.Spec.%s differs but bundles says the two attempts can share a description", f.Name)
		}
	}
	// Values of the same variables may differ; other variables may not.
	other := base
	other.Env = map[string]string{"A": "2"}
	if !bundles(&base, &other) {
		t.Error("items whose variables differ in value only do not bundle")
	}
	other.Env = map[string]string{"B": "1"}
	if bundles(&base, &other) {
		t.Error("items with other variables bundle")
	}
}

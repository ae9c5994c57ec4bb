package runner

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// adoptedUnit is what Runner.AdoptItems was asked to take over.
type adoptedUnit struct {
	worker, bundle  string
	item, number    int
	items, attempts []int
}

// TestRecoveryAdoptsMapItemsOfRemoteWorkers: the executor stops with four
// items of a map in flight; the store says remote workers were handed
// three of them (two in one bundle, one alone), and item 0 too, which
// ended since. At recovery the three are adopted as they are (same
// attempt, not run again, not held) and their ends recorded as any
// other's; item 0 stays ended; the fourth, which no record names, is lost
// and runs again. The map's records go with its end.
func TestRecoveryAdoptsMapItemsOfRemoteWorkers(t *testing.T) {
	e := newEnv(t)
	fs := &failingStore{Store: e.st}
	e.r.Store = fs
	started := make(chan int, 8)
	trigger := make(chan struct{})
	e.r.Executor = func(ctx context.Context, a *Attempt) AttemptResult {
		switch a.Item {
		case 2, 3, 4:
			started <- a.Item
			<-ctx.Done()
			return AttemptResult{Outcome: attempt.Cancelled}
		case 5:
			started <- a.Item
			<-trigger // the store fails first: this end is never written, and the run stops
		}
		return AttemptResult{Outcome: attempt.Succeeded}
	}
	run, err := e.r.Create(t.Context(), e.pipeline("name: m\ntasks:\n  - id: each\n    run: \"true\"\n    map: {range: {stop: 6}, concurrency: 6}\n"), nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := e.r.Execute(t.Context(), run.ID)
		done <- err
	}()
	for range 4 {
		<-started
	}
	// What the broker would have recorded as it handed the items out.
	now := time.Now()
	if err := e.st.PutMapLeases(t.Context(), []store.MapLease{
		{RunID: run.ID, Index: 0, ID: "b-old", Worker: "spot-7", StartedAt: now.Add(-time.Minute), Units: []store.LeasedUnit{{Items: []int{0}, Attempts: []int{1}}}},
		{RunID: run.ID, Index: 0, ID: "b-23", Worker: "spot-7", StartedAt: now, Units: []store.LeasedUnit{{Items: []int{2}, Attempts: []int{1}}, {Items: []int{3}, Attempts: []int{1}}}},
		{RunID: run.ID, Index: 0, ID: "l-4", Worker: "spot-8", StartedAt: now, Units: []store.LeasedUnit{{Items: []int{4}, Attempts: []int{1}}}},
	}); err != nil {
		t.Fatal(err)
	}
	// Items 0 and 1 ended, and that is written.
	deadline := time.Now().Add(10 * time.Second)
	for len(e.mapItems(run.ID, 0)) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("items 0 and 1 never written: %+v", e.mapItems(run.ID, 0))
		}
		time.Sleep(10 * time.Millisecond)
	}
	fs.fail.Store(true)
	close(trigger)
	if err := <-done; err == nil {
		t.Fatal("the run went on through a failing store")
	}
	fs.fail.Store(false)

	var mu sync.Mutex
	var adopted []adoptedUnit
	ran := map[int]int{} // item → attempt run by the new executor
	r2 := &Runner{Store: e.st, Logs: e.logs, Home: e.home, Parallel: 4,
		Executor: func(ctx context.Context, a *Attempt) AttemptResult {
			mu.Lock()
			ran[a.Item] = a.Number
			mu.Unlock()
			return AttemptResult{Outcome: attempt.Succeeded}
		},
		AdoptItems: func(worker, bundle string) TaskFunc {
			return func(ctx context.Context, a *Attempt) AttemptResult {
				items, attempts := a.Unit()
				mu.Lock()
				adopted = append(adopted, adoptedUnit{worker, bundle, a.Item, a.Number, items, attempts})
				mu.Unlock()
				return AttemptResult{Outcome: attempt.Succeeded, Worker: worker}
			}
		}}
	end, err := r2.Execute(t.Context(), run.ID)
	if err != nil || end.State != engine.RunSucceeded {
		t.Fatalf("resume: %s, %v", end.State, err)
	}
	slices.SortFunc(adopted, func(a, b adoptedUnit) int { return a.item - b.item })
	want := []adoptedUnit{
		{"spot-7", "b-23", 2, 1, []int{2}, []int{1}},
		{"spot-7", "b-23", 3, 1, []int{3}, []int{1}},
		{"spot-8", "l-4", 4, 1, []int{4}, []int{1}},
	}
	if len(adopted) != len(want) {
		t.Fatalf("adopted %+v, want %+v", adopted, want)
	}
	for k := range want {
		a, w := adopted[k], want[k]
		if a.worker != w.worker || a.bundle != w.bundle || a.item != w.item || a.number != w.number ||
			!slices.Equal(a.items, w.items) || !slices.Equal(a.attempts, w.attempts) {
			t.Errorf("adopted %+v, want %+v", a, w)
		}
	}
	if len(ran) != 1 || ran[5] != 2 {
		t.Errorf("the new executor ran %v: want item 5 alone, as attempt 2 (its first was lost)", ran)
	}
	rows := e.mapItems(run.ID, 0)
	if len(rows) != 6 {
		t.Fatalf("%d item rows, want 6", len(rows))
	}
	for _, r := range rows {
		wantWorker := map[int]string{2: "spot-7", 3: "spot-7", 4: "spot-8"}[r.Item]
		if r.State != engine.TaskSucceeded || (wantWorker != "" && (r.Worker != wantWorker || r.Attempt != 1)) {
			t.Errorf("item %d: %s, attempt %d on %q", r.Item, r.State, r.Attempt, r.Worker)
		}
	}
	if ls, err := e.st.MapLeases(t.Context(), run.ID, 0); err != nil || len(ls) != 0 {
		t.Errorf("records of the map after its end: %+v, %v", ls, err)
	}
	if u := r2.Dispatcher.Pools()[0]; u.Used != 0 {
		t.Errorf("after the run the dispatcher holds %+v", u)
	}
}

// TestReadLeasedTakesTheLatest: an item handed out more than once belongs
// to its latest hand-out (by attempt, then by time); a hand-out some of
// whose items were handed out again since is not adopted at all; nor is
// one to a worker AdoptItems refuses.
func TestReadLeasedTakesTheLatest(t *testing.T) {
	e := newEnv(t)
	run, err := e.r.Create(t.Context(), e.pipeline("name: m\ntasks:\n  - id: each\n    run: \"true\"\n    map: {range: {stop: 10}, batch: 2}\n"), nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	vals := make([]json.RawMessage, 10)
	for i := range vals {
		vals[i] = json.RawMessage(strconv.Itoa(i))
	}
	if err := e.st.Apply(t.Context(), store.Change{RunID: run.ID, Maps: []store.MapChange{{Index: 0, Values: vals, Info: &store.MapInfo{Items: 10}}}}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	unit := func(items []int, attempts ...int) store.LeasedUnit {
		return store.LeasedUnit{Items: items, Attempts: attempts}
	}
	if err := e.st.PutMapLeases(t.Context(), []store.MapLease{
		// Items 0 and 1 as a batch at attempt 1, then item 1 alone at 2:
		// the batch is superseded in part, item 1's second wins.
		{RunID: run.ID, ID: "a", Worker: "w1", StartedAt: t0, Units: []store.LeasedUnit{unit([]int{0, 1}, 1, 1)}},
		{RunID: run.ID, ID: "b", Worker: "w2", StartedAt: t0, Units: []store.LeasedUnit{unit([]int{1}, 2)}},
		// Item 4 handed out twice at the same attempt (given back, then
		// handed out again): the later wins.
		{RunID: run.ID, ID: "c", Worker: "w1", StartedAt: t0.Add(time.Second), Units: []store.LeasedUnit{unit([]int{4, 5}, 1, 1)}},
		{RunID: run.ID, ID: "d", Worker: "w3", StartedAt: t0, Units: []store.LeasedUnit{unit([]int{4, 5}, 1, 1)}},
		// A worker not adopted.
		{RunID: run.ID, ID: "e", Worker: "local:me", StartedAt: t0, Units: []store.LeasedUnit{unit([]int{8, 9}, 3, 3)}},
	}); err != nil {
		t.Fatal(err)
	}
	e.r.AdoptItems = func(worker, bundle string) TaskFunc {
		if worker == "local:me" {
			return nil
		}
		return func(context.Context, *Attempt) AttemptResult { return AttemptResult{} }
	}
	e.r.defaults()
	c, err := e.r.load(t.Context(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.readLeased(0)
	if err != nil {
		t.Fatal(err)
	}
	summary := map[int]string{}
	for i, lu := range got {
		summary[i] = lu.bundle + "/" + lu.worker + "/" + strconv.Itoa(lu.attemptOf(i))
	}
	want := map[int]string{1: "b/w2/2", 4: "c/w1/1", 5: "c/w1/1"}
	if !maps.Equal(summary, want) {
		t.Errorf("adoptable hand-outs by item: %v, want %v", summary, want)
	}
}

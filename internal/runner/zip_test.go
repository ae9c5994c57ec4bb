package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// zipItemOf reads the item an attempt of a zipped map got.
func zipItemOf(t *testing.T, a *Attempt) string {
	t.Helper()
	s, err := a.Spec()
	if err != nil {
		t.Error(err)
		return ""
	}
	return string(s.Item)
}

// itemSucceeded reports whether the store has item i of map task
// index of the run as succeeded: what a zipped item may start after.
func (e *env) itemSucceeded(runID int64, index, item int) bool {
	rows, err := e.st.MapItems(context.Background(), store.MapItemFilter{RunID: runID, Index: index, From: item, Limit: 1})
	return err == nil && len(rows) == 1 && rows[0].Item == item && rows[0].State == engine.TaskSucceeded
}

// TestZipItemRunsBesideUpstream: item i of a zipped map runs as soon as
// item i of the map it reads succeeded (its success written first), with
// that item's result as its item, while another item of the upstream is
// still running; a task that needs the zipped map gets every result in
// item order.
func TestZipItemRunsBesideUpstream(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	zipped := make(chan int, 10)
	var mu sync.Mutex
	items := map[int]string{}
	e.r.Executor = func(ctx context.Context, a *Attempt) AttemptResult {
		switch a.TaskID {
		case "a":
			if a.Item == 1 {
				select {
				case <-release:
				case <-ctx.Done():
					return AttemptResult{Outcome: attempt.Cancelled}
				}
			}
			return AttemptResult{Outcome: attempt.Succeeded, Result: json.RawMessage(fmt.Sprintf(`{"n": %d}`, 10*a.Item))}
		case "b":
			if !e.itemSucceeded(a.RunID, 0, a.Item) {
				t.Errorf("item %d of b started before the success of item %d of a was written", a.Item, a.Item)
			}
			mu.Lock()
			items[a.Item] = zipItemOf(t, a)
			mu.Unlock()
			zipped <- a.Item
			return AttemptResult{Outcome: attempt.Succeeded, Result: json.RawMessage(fmt.Sprint(a.Item + 100))}
		}
		return e.r.RunProcess(ctx, a)
	}
	run, done := e.startRun(t.Context(), `
name: z
tasks:
  - id: a
    run: "true"
    map: {range: {stop: 3}}
  - id: b
    run: "true"
    map: {from: a, zip: true}
  - id: after
    needs: [b]
    run: cp "$TASUKI_NEED_B" "$TASUKI_HOME/b.jsonl"
`)
	got := map[int]bool{<-zipped: true, <-zipped: true}
	if !got[0] || !got[2] {
		t.Fatalf("zipped items %v ran first, want 0 and 2 (item 1 of a is still running)", got)
	}
	if st := e.tasks(run.ID)["a"].State; st != engine.TaskRunning {
		t.Fatalf("a is %s while its item 1 runs", st)
	}
	close(release)
	end := <-done
	if end.State != engine.RunSucceeded {
		t.Fatalf("run %s: %+v", end.State, e.tasks(run.ID))
	}
	for i := range 3 {
		if want := fmt.Sprintf(`{"n":%d}`, 10*i); items[i] != want {
			t.Errorf("item %d of b got %s, want %s", i, items[i], want)
		}
	}
	if got := e.tasks(run.ID)["b"].Message; got != "3 items: 3 succeeded" {
		t.Errorf("b: %q", got)
	}
	seen, err := os.ReadFile(filepath.Join(e.home, "b.jsonl"))
	if err != nil || string(seen) != "100\n101\n102\n" {
		t.Errorf("results of b: %q (%v)", seen, err)
	}
}

// TestZipUpstreamItemFails: an item whose upstream item failed is skipped
// and counts toward the zipped map's tolerate; within it, the map
// succeeds; past it, the map fails naming the item.
func TestZipUpstreamItemFails(t *testing.T) {
	for _, tc := range []struct {
		name, tolerate string
		want           engine.TaskState
		message        string
	}{
		{"tolerated", "tolerate: {count: 1}", engine.TaskSucceeded, "4 items: 3 succeeded, 1 skipped"},
		{"not tolerated", "concurrency: 1", engine.TaskFailed, "item 2: not run: item 2 of a failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			var mu sync.Mutex
			ran := map[int]bool{}
			e.r.Executor = func(ctx context.Context, a *Attempt) AttemptResult {
				if a.TaskID == "a" {
					if a.Item == 2 {
						return AttemptResult{Outcome: attempt.Failed, Message: "exit status 1"}
					}
					return AttemptResult{Outcome: attempt.Succeeded, Result: json.RawMessage(`"x"`)}
				}
				mu.Lock()
				ran[a.Item] = true
				mu.Unlock()
				return AttemptResult{Outcome: attempt.Succeeded}
			}
			run, tasks := e.run(t.Context(), fmt.Sprintf(`
name: z
tasks:
  - id: a
    run: "true"
    map: {range: {stop: 4}, tolerate: {count: 1}}
  - id: b
    run: "true"
    map: {from: a, zip: true, %s}
`, tc.tolerate), nil)
			if tasks["a"].State != engine.TaskSucceeded {
				t.Fatalf("a: %s %q", tasks["a"].State, tasks["a"].Message)
			}
			if b := tasks["b"]; b.State != tc.want || !strings.Contains(b.Message, tc.message) {
				t.Fatalf("b: %s %q, want %s with %q", b.State, b.Message, tc.want, tc.message)
			}
			if ran[2] {
				t.Error("item 2 of b ran; its upstream item failed")
			}
			for _, row := range e.mapItems(run.ID, 1) {
				if row.Item == 2 && (row.State != engine.TaskSkipped || row.Message != "not run: item 2 of a failed") {
					t.Errorf("item 2 of b: %s %q", row.State, row.Message)
				}
			}
		})
	}
}

// TestZipChain: three maps zipped one after the other run side by side:
// the last one's first item runs while the first map still runs, and each
// item sees the result of the item before it.
func TestZipChain(t *testing.T) {
	e := newEnv(t)
	lastFirst := make(chan struct{})
	var once sync.Once
	e.r.Executor = func(ctx context.Context, a *Attempt) AttemptResult {
		var n int
		if a.TaskID == "c" {
			if _, err := fmt.Sscan(zipItemOf(t, a), &n); err != nil {
				t.Errorf("c item %d: %v", a.Item, err)
			}
		}
		switch a.TaskID {
		case "a":
			if a.Item == 3 {
				// The first map's last item waits for the third map's
				// first item.
				select {
				case <-lastFirst:
				case <-ctx.Done():
					return AttemptResult{Outcome: attempt.Cancelled}
				case <-time.After(30 * time.Second):
					t.Error("item 0 of c did not run while a was running")
				}
			}
			return AttemptResult{Outcome: attempt.Succeeded, Result: json.RawMessage(fmt.Sprint(a.Item))}
		case "b":
			// A batch: its items come together, one result each.
			s, err := a.Spec()
			if err != nil || len(s.Items) != a.Items {
				t.Errorf("batch of b from item %d: %d items, want %d (%v)", a.Item, len(s.Items), a.Items, err)
				return AttemptResult{Outcome: attempt.Failed}
			}
			var res []json.RawMessage
			for _, it := range s.Items {
				if _, err := fmt.Sscan(string(it), &n); err != nil {
					t.Errorf("b item %s: %v", it, err)
				}
				res = append(res, json.RawMessage(fmt.Sprint(2*n)))
			}
			return AttemptResult{Outcome: attempt.Succeeded, Results: res}
		case "c":
			if a.Item == 0 {
				once.Do(func() { close(lastFirst) })
			}
			return AttemptResult{Outcome: attempt.Succeeded, Result: json.RawMessage(fmt.Sprint(n + 1))}
		}
		return AttemptResult{Outcome: attempt.Succeeded}
	}
	run, tasks := e.run(t.Context(), `
name: z
tasks:
  - id: a
    run: "true"
    map: {range: {stop: 4}}
  - id: b
    run: "true"
    map: {from: a, zip: true, batch: 2}
  - id: c
    run: "true"
    map: {from: b, zip: true}
`, nil)
	if run.State != engine.RunSucceeded {
		t.Fatalf("run %s: %+v", run.State, tasks)
	}
	rows := e.mapItems(run.ID, 2)
	var got []string
	for _, r := range rows {
		got = append(got, string(r.Result))
	}
	if fmt.Sprint(got) != "[1 3 5 7]" {
		t.Errorf("results of c: %v, want [1 3 5 7]", got)
	}
}

// TestZipUpstreamFails: when the map a zipped map reads fails as a whole,
// the zipped map starts nothing more and fails once its running items
// ended; what needs it does not run.
func TestZipUpstreamFails(t *testing.T) {
	e := newEnv(t)
	e.r.Executor = func(ctx context.Context, a *Attempt) AttemptResult {
		if a.TaskID == "a" && a.Item == 1 {
			return AttemptResult{Outcome: attempt.Failed, Message: "exit status 3"}
		}
		return AttemptResult{Outcome: attempt.Succeeded, Result: json.RawMessage(`1`)}
	}
	_, tasks := e.run(t.Context(), `
name: z
tasks:
  - id: a
    run: "true"
    map: {range: {stop: 50}, concurrency: 1}
  - id: b
    run: "true"
    map: {from: a, zip: true, tolerate: {percent: 100}}
  - id: after
    needs: [b]
    run: "true"
`, nil)
	if a := tasks["a"]; a.State != engine.TaskFailed {
		t.Fatalf("a: %s %q", a.State, a.Message)
	}
	if b := tasks["b"]; b.State != engine.TaskFailed || !strings.HasPrefix(b.Message, "map a ended failed: 50 items: ") {
		t.Errorf("b: %s %q", b.State, b.Message)
	}
	if s := tasks["after"].State; s != engine.TaskUpstreamFailed {
		t.Errorf("after: %s", s)
	}
}

// TestZipResumeAfterCrash: the executor stops (its store fails, as a
// crash would leave it) while both maps run; the next executor carries
// them on. No item of the zipped map ever starts before the success of
// its upstream item is written, and none whose success was written runs
// again.
func TestZipResumeAfterCrash(t *testing.T) {
	e := newEnv(t)
	fs := &failingStore{Store: e.st}
	e.r.Store = fs
	var mu sync.Mutex
	ran := map[int]int{}
	var crashed []int // items of b whose success was written before the crash
	exec := func(ctx context.Context, a *Attempt) AttemptResult {
		if a.TaskID == "a" {
			if a.Item == 30 && a.Number == 1 {
				// Once some of b's successes are written (the group
				// commit's clock: nothing to wait on but the store), the
				// commit that writes this item's end fails: the run stops
				// with what else runs in flight.
				for !e.itemSucceeded(a.RunID, 1, 5) {
					select {
					case <-ctx.Done():
						return AttemptResult{Outcome: attempt.Cancelled}
					case <-time.After(5 * time.Millisecond):
					}
				}
				fs.fail.Store(true)
			}
			return AttemptResult{Outcome: attempt.Succeeded, Result: json.RawMessage(fmt.Sprint(a.Item))}
		}
		if !e.itemSucceeded(a.RunID, 0, a.Item) {
			t.Errorf("item %d of b started before the success of item %d of a was written", a.Item, a.Item)
		}
		mu.Lock()
		ran[a.Item]++
		mu.Unlock()
		if zipItemOf(t, a) != fmt.Sprint(a.Item) {
			t.Errorf("item %d of b got %s", a.Item, zipItemOf(t, a))
		}
		return AttemptResult{Outcome: attempt.Succeeded}
	}
	e.r.Executor = exec
	run, err := e.r.Create(t.Context(), e.pipeline(`
name: z
tasks:
  - id: a
    run: "true"
    map: {range: {stop: 60}, concurrency: 3}
  - id: b
    run: "true"
    map: {from: a, zip: true, concurrency: 2}
`), nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.Execute(t.Context(), run.ID); err == nil {
		t.Fatal("the run went on through a failing store")
	}
	fs.fail.Store(false)
	for _, row := range e.mapItems(run.ID, 1) {
		if row.State == engine.TaskSucceeded {
			crashed = append(crashed, row.Item)
		}
	}
	if len(crashed) == 0 {
		t.Fatal("no item of b succeeded before the crash")
	}
	before := map[int]int{}
	mu.Lock()
	for i, n := range ran {
		before[i] = n
	}
	mu.Unlock()
	r2 := &Runner{Store: e.st, Logs: e.logs, Home: e.home, Parallel: 4, Executor: exec}
	end, err := r2.Execute(t.Context(), run.ID)
	if err != nil || end.State != engine.RunSucceeded {
		t.Fatalf("resume: %s, %v: %+v", end.State, err, e.tasks(run.ID))
	}
	for _, i := range crashed {
		if ran[i] != before[i] {
			t.Errorf("item %d of b, whose success was written before the crash, ran again", i)
		}
	}
	for i := range 60 {
		if ran[i] < 1 || ran[i] > 2 {
			t.Errorf("item %d of b ran %d times", i, ran[i])
		}
	}
	for _, row := range e.mapItems(run.ID, 1) {
		if row.State != engine.TaskSucceeded {
			t.Errorf("item %d of b is %s", row.Item, row.State)
		}
	}
	if mi := e.mapInfo(run.ID, 1); mi.Counts[engine.TaskSucceeded] != 60 {
		t.Errorf("counts of b: %v", mi.Counts)
	}
}

// TestZipRetriedUpstreamItem: an item skipped because its upstream item
// failed runs after all when an operator retries that item and it
// succeeds while the zipped map runs; it gets the new result.
func TestZipRetriedUpstreamItem(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	failed := make(chan struct{})
	var once sync.Once
	e.r.Observe = func(p Progress) {
		for _, rec := range p.Records {
			if rec.Kind == RecItemFailed && rec.Task == 0 {
				once.Do(func() { close(failed) })
			}
		}
	}
	var mu sync.Mutex
	items := map[int]string{}
	e.r.Executor = func(ctx context.Context, a *Attempt) AttemptResult {
		if a.TaskID == "a" {
			switch {
			case a.Item == 1 && a.Number == 1:
				return AttemptResult{Outcome: attempt.Failed, Message: "exit status 1"}
			case a.Item == 2:
				select {
				case <-release:
				case <-ctx.Done():
					return AttemptResult{Outcome: attempt.Cancelled}
				}
			}
			return AttemptResult{Outcome: attempt.Succeeded, Result: json.RawMessage(fmt.Sprintf(`"%d.%d"`, a.Item, a.Number))}
		}
		mu.Lock()
		items[a.Item] = zipItemOf(t, a)
		mu.Unlock()
		return AttemptResult{Outcome: attempt.Succeeded}
	}
	run, done := e.startRun(t.Context(), `
name: z
tasks:
  - id: a
    run: "true"
    map: {range: {stop: 3}, tolerate: {count: 1}}
  - id: b
    run: "true"
    map: {from: a, zip: true, tolerate: {count: 1}}
`)
	<-failed
	if _, err := e.r.ActMap(t.Context(), run.ID, MapAction{Kind: MapRetry, Task: 0, Item: 1, Actor: "op"}); err != nil {
		t.Fatal(err)
	}
	close(release)
	end := <-done
	tasks := e.tasks(run.ID)
	if end.State != engine.RunSucceeded || tasks["b"].Message != "3 items: 3 succeeded" {
		t.Fatalf("run %s; b: %s %q", end.State, tasks["b"].State, tasks["b"].Message)
	}
	if items[1] != `"1.2"` {
		t.Errorf("item 1 of b got %q, want the result of the retried item 1.2", items[1])
	}
}

// TestZipUpstreamNeverExpands: a map zipped with a map whose items cannot
// be read does not start: it ends upstream_failed with it.
func TestZipUpstreamNeverExpands(t *testing.T) {
	e := newEnv(t)
	_, tasks := e.run(t.Context(), `
name: z
tasks:
  - id: a
    run: "true"
    map: {file: missing.txt}
  - id: b
    run: "true"
    map: {from: a, zip: true}
`, nil)
	if a, b := tasks["a"], tasks["b"]; a.State != engine.TaskFailed || b.State != engine.TaskUpstreamFailed || b.Attempt != 0 {
		t.Fatalf("a: %s %q; b: %s %q (attempt %d)", a.State, a.Message, b.State, b.Message, b.Attempt)
	}
}

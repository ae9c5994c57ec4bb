package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// mapItems returns every item row of map task index of a run.
func (e *env) mapItems(runID int64, index int) []store.MapItem {
	e.t.Helper()
	var out []store.MapItem
	for from := 0; ; {
		rows, err := e.st.MapItems(context.Background(), store.MapItemFilter{RunID: runID, Index: index, From: from, Limit: store.MaxMapItemsLimit})
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, rows...)
		if len(rows) < store.MaxMapItemsLimit {
			return out
		}
		from = rows[len(rows)-1].Item + 1
	}
}

func (e *env) mapInfo(runID int64, index int) store.MapInfo {
	e.t.Helper()
	infos, err := e.st.MapInfos(context.Background(), runID)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mi := range infos {
		if mi.Index == index {
			return mi
		}
	}
	e.t.Fatalf("run %d has no map %d (maps: %+v)", runID, index, infos)
	return store.MapInfo{}
}

// startRun creates a run of src and executes it in the background (with
// ctx); the run as it ended comes on the channel.
func (e *env) startRun(ctx context.Context, src string) (store.Run, <-chan store.Run) {
	e.t.Helper()
	run, err := e.r.Create(e.t.Context(), e.pipeline(src), nil, "manual")
	if err != nil {
		e.t.Fatal(err)
	}
	done := make(chan store.Run, 1)
	go func() {
		r, _ := e.r.Execute(ctx, run.ID)
		done <- r
	}()
	return run, done
}

// blockingItems is an executor whose items say they started and then
// wait to be stopped.
func blockingItems(started chan<- int) TaskFunc {
	return func(ctx context.Context, a *Attempt) AttemptResult {
		started <- a.Item
		<-ctx.Done()
		return AttemptResult{Outcome: attempt.Cancelled, Message: "cancelled"}
	}
}

// TestMapShellItems runs a map of shell items end to end: each item gets
// TASUKI_ITEM (and the keys of a flat object), its index, its own result;
// the task that needs the map reads every item's result as JSON lines, in
// item order.
func TestMapShellItems(t *testing.T) {
	e := newEnv(t)
	run, tasks := e.run(t.Context(), `
name: m
tasks:
  - id: each
    run: |
      printf '{"index":%s,"user":"%s"}' "$TASUKI_ITEM_INDEX" "$TASUKI_ITEM_USER" > "$TASUKI_RESULT"
      echo "$TASUKI_ITEM" >> "$TASUKI_HOME/items"
      echo "item $TASUKI_ITEM_INDEX"
    map:
      items: [plain, 7, {user: ana, region: eu}]
      concurrency: 1
  - id: after
    needs: [each]
    run: cp "$TASUKI_NEED_EACH" "$TASUKI_HOME/seen.jsonl"
`, nil)
	if run.State != engine.RunSucceeded {
		t.Fatalf("run %s: %+v", run.State, tasks)
	}
	if got := tasks["each"].Message; got != "3 items: 3 succeeded" {
		t.Errorf("map message = %q", got)
	}
	var sum struct{ Items, Succeeded, Failed int }
	if err := json.Unmarshal(tasks["each"].Result, &sum); err != nil || sum.Items != 3 || sum.Succeeded != 3 {
		t.Errorf("map result = %s (%v)", tasks["each"].Result, err)
	}
	seen, err := os.ReadFile(filepath.Join(e.home, "seen.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"index":0,"user":""}` + "\n" + `{"index":1,"user":""}` + "\n" + `{"index":2,"user":"ana"}` + "\n"
	if string(seen) != want {
		t.Errorf("results file:\n%s\nwant:\n%s", seen, want)
	}
	items, _ := os.ReadFile(filepath.Join(e.home, "items"))
	if want := "plain\n7\n{\"region\":\"eu\",\"user\":\"ana\"}\n"; string(items) != want {
		t.Errorf("TASUKI_ITEM:\n%s\nwant:\n%s", items, want)
	}
	mi := e.mapInfo(run.ID, 0)
	if mi.Items != 3 || mi.Next != 3 || mi.Counts[engine.TaskSucceeded] != 3 || len(mi.Slowest) != 3 {
		t.Errorf("map info = %+v", mi)
	}
	rows := e.mapItems(run.ID, 0)
	if len(rows) != 3 || rows[2].State != engine.TaskSucceeded || rows[2].Attempt != 1 {
		t.Errorf("item rows = %+v", rows)
	}
	// Each item has its own log.
	if _, err := os.Stat(filepath.Join(e.home, "logs", strconv.FormatInt(run.ID, 10), "each.2.1.log")); err != nil {
		t.Errorf("log of item 2: %v", err)
	}
}

// funcExecutor runs attempts in-process with fn, counting those in flight.
type funcExecutor struct {
	fn       func(ctx context.Context, a *Attempt) AttemptResult
	inFlight atomic.Int64
	most     atomic.Int64
	mu       sync.Mutex
	ran      map[int]int // by item: times run
}

func (x *funcExecutor) run(ctx context.Context, a *Attempt) AttemptResult {
	n := x.inFlight.Add(1)
	defer x.inFlight.Add(-1)
	for {
		m := x.most.Load()
		if n <= m || x.most.CompareAndSwap(m, n) {
			break
		}
	}
	x.mu.Lock()
	if x.ran == nil {
		x.ran = map[int]int{}
	}
	if a.Items > 0 {
		for k := range a.Items {
			x.ran[a.Item+k]++
		}
	}
	x.mu.Unlock()
	if x.fn != nil {
		return x.fn(ctx, a)
	}
	return AttemptResult{Outcome: attempt.Succeeded}
}

func TestMapConcurrencyCap(t *testing.T) {
	e := newEnv(t)
	e.r.Parallel = 16
	x := &funcExecutor{}
	e.r.Executor = x.run
	run, tasks := e.run(t.Context(), `
name: m
tasks:
  - id: each
    run: "true"
    map: {range: {start: 10, stop: 2010, step: 2}, concurrency: 3}
`, nil)
	if run.State != engine.RunSucceeded {
		t.Fatalf("run %s: %+v", run.State, tasks)
	}
	if m := x.most.Load(); m > 3 {
		t.Errorf("%d items ran at once, more than the cap of 3", m)
	}
	if len(x.ran) != 1000 {
		t.Errorf("%d items ran, want 1000", len(x.ran))
	}
	for i, n := range x.ran {
		if n != 1 {
			t.Errorf("item %d ran %d times", i, n)
		}
	}
}

// TestMapRetriesAndTolerance: items are retried one by one; a map
// tolerates what it is told to, and fails past it with the items named.
func TestMapRetriesAndTolerance(t *testing.T) {
	for _, tc := range []struct {
		name     string
		tolerate string
		want     engine.RunState
		message  string
	}{
		{"tolerated", "tolerate: {count: 2}", engine.RunSucceeded, "20 items: 18 succeeded, 2 failed"},
		{"percent", "tolerate: {percent: 10}", engine.RunSucceeded, "20 items: 18 succeeded, 2 failed"},
		{"not tolerated", "tolerate: {count: 1}", engine.RunFailed, ", more than the 1 tolerated; item 3: exit status 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			var mu sync.Mutex
			tries := map[int]int{}
			e.r.Executor = func(ctx context.Context, a *Attempt) AttemptResult {
				mu.Lock()
				tries[a.Item]++
				n := tries[a.Item]
				mu.Unlock()
				switch {
				case a.Item == 3 || a.Item == 11: // always fail
					return AttemptResult{Outcome: attempt.Failed, ExitCode: ptr(1), Message: "exit status 1"}
				case a.Item == 5 && n == 1: // fails once
					return AttemptResult{Outcome: attempt.Failed, ExitCode: ptr(1), Message: "exit status 1"}
				}
				return AttemptResult{Outcome: attempt.Succeeded}
			}
			run, tasks := e.run(t.Context(), fmt.Sprintf(`
name: m
tasks:
  - id: each
    run: "true"
    retry: {attempts: 2, backoff: 1ms, jitter: 0}
    map: {range: {stop: 20}, concurrency: 1, %s}
`, tc.tolerate), nil)
			if run.State != tc.want {
				t.Fatalf("run %s, want %s: %+v", run.State, tc.want, tasks["each"])
			}
			if !strings.Contains(tasks["each"].Message, tc.message) {
				t.Errorf("message %q does not contain %q", tasks["each"].Message, tc.message)
			}
			if tries[5] != 2 || tries[3] != 2 {
				t.Errorf("tries = %v: item 5 and 3 should have run twice", tries)
			}
			rows := e.mapItems(run.ID, 0)
			byItem := map[int]store.MapItem{}
			for _, r := range rows {
				byItem[r.Item] = r
			}
			if r := byItem[3]; r.State != engine.TaskFailed || r.Attempt != 2 || r.Spent != 2 || r.Message != "exit status 1" {
				t.Errorf("item 3 = %+v", r)
			}
			if r := byItem[5]; r.State != engine.TaskSucceeded || r.Attempt != 2 {
				t.Errorf("item 5 = %+v", r)
			}
			events, err := e.st.Events(t.Context(), run.ID, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			var failed, retried int
			for _, ev := range events {
				switch ev.Kind {
				case RecItemFailed:
					failed++
				case RecItemRetry:
					retried++
				}
			}
			if retried != 3 || failed < 1 {
				t.Errorf("timeline has %d item retries (want 3) and %d item failures", retried, failed)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestMapBatch runs items in batches: a process per batch reads its items
// on standard input and writes one result line per item.
func TestMapBatch(t *testing.T) {
	e := newEnv(t)
	run, tasks := e.run(t.Context(), `
name: m
tasks:
  - id: each
    run: |
      echo batch >> "$TASUKI_HOME/batches"
      while read -r item; do echo "{\"twice\": $((item * 2))}"; done > "$TASUKI_RESULT"
    map: {range: {stop: 25}, batch: 10}
  - id: sum
    needs: [each]
    run: cp "$TASUKI_NEED_EACH" "$TASUKI_HOME/results"
`, nil)
	if run.State != engine.RunSucceeded {
		t.Fatalf("run %s: %+v", run.State, tasks)
	}
	batches, _ := os.ReadFile(filepath.Join(e.home, "batches"))
	if n := strings.Count(string(batches), "batch"); n != 3 {
		t.Errorf("%d processes for 25 items in batches of 10, want 3", n)
	}
	results, _ := os.ReadFile(filepath.Join(e.home, "results"))
	lines := strings.Split(strings.TrimSpace(string(results)), "\n")
	if len(lines) != 25 || lines[24] != `{"twice":48}` {
		t.Errorf("results: %d lines, last %q", len(lines), lines[len(lines)-1])
	}
}

// TestMapSources expands a map from a file, a glob and an upstream task's
// result (a JSON array, a JSON-lines file it names, another map).
func TestMapSources(t *testing.T) {
	e := newEnv(t)
	dir := filepath.Join(e.home, "in")
	for _, p := range []string{"a/x.csv", "a/b/y.csv", "z.txt", "c.csv"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), nil, 0o644)
	}
	os.WriteFile(filepath.Join(e.home, "items.txt"), []byte("alpha\n\n42\n{\"k\": 1}\n\"quoted\"\n"), 0o644)
	run, tasks := e.run(t.Context(), `
name: m
params:
  - name: list
    default: items.txt
tasks:
  - id: lines
    run: echo "$TASUKI_ITEM" >> "$TASUKI_HOME/lines.out"
    map: {file: "${TASUKI_PARAM_LIST}", concurrency: 1}
  - id: files
    run: echo "$TASUKI_ITEM" >> "$TASUKI_HOME/files.out"
    map: {glob: "in/**/*.csv", concurrency: 1}
  - id: list
    run: echo '["u1", "u2"]' > "$TASUKI_RESULT"
  - id: from-array
    run: printf '"%s"' "$TASUKI_ITEM" > "$TASUKI_RESULT"
    map: {from: list}
  - id: write
    run: printf 'a\nb\nc\n' > out.jsonl && echo '"out.jsonl"' > "$TASUKI_RESULT"
  - id: from-file
    run: "true"
    map: {from: write}
  - id: from-map
    run: echo "$TASUKI_ITEM" >> "$TASUKI_HOME/from-map.out"
    map: {from: from-array, concurrency: 1}
`, nil)
	if run.State != engine.RunSucceeded {
		for id, tr := range tasks {
			t.Logf("%s: %s %s", id, tr.State, tr.Message)
		}
		t.Fatalf("run %s", run.State)
	}
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(e.home, name))
		return string(b)
	}
	if got := read("lines.out"); got != "alpha\n42\n{\"k\":1}\nquoted\n" {
		t.Errorf("file items:\n%s", got)
	}
	if got := read("files.out"); got != "in/a/b/y.csv\nin/a/x.csv\nin/c.csv\n" {
		t.Errorf("glob items:\n%s", got)
	}
	if got := tasks["from-file"].Message; got != "3 items: 3 succeeded" {
		t.Errorf("from a JSON-lines file: %s", got)
	}
	if got := read("from-map.out"); got != "u1\nu2\n" {
		t.Errorf("from a map's results:\n%s", got)
	}
}

// TestMapExpansionFailure: a source that cannot be read fails the map
// with the reason; nothing of it runs.
func TestMapExpansionFailure(t *testing.T) {
	e := newEnv(t)
	x := &funcExecutor{}
	e.r.Executor = x.run
	run, tasks := e.run(t.Context(), `
name: m
tasks:
  - id: each
    run: "true"
    map: {file: nowhere.txt}
`, nil)
	if run.State != engine.RunFailed || !strings.Contains(tasks["each"].Message, "map.file: open") {
		t.Fatalf("run %s, task %+v", run.State, tasks["each"])
	}
	if len(x.ran) != 0 {
		t.Errorf("items ran: %v", x.ran)
	}
}

// TestMapResumeAfterDrain: a drain hands the running items back; the next
// Execute carries the map on, and every item runs to success exactly once.
func TestMapResumeAfterDrain(t *testing.T) {
	e := newEnv(t)
	src := `
name: m
tasks:
  - id: each
    run: "true"
    map: {range: {stop: 200}, concurrency: 4}
`
	run, err := e.r.Create(t.Context(), e.pipeline(src), nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	succeeded := map[int]int{}
	block := make(chan struct{})
	reached := make(chan struct{})
	var once sync.Once
	e.r.Executor = func(ctx context.Context, a *Attempt) AttemptResult {
		if a.Item >= 100 {
			once.Do(func() { close(reached) })
			select {
			case <-block:
			case <-ctx.Done():
				return AttemptResult{Outcome: attempt.Cancelled}
			}
		}
		mu.Lock()
		succeeded[a.Item]++
		mu.Unlock()
		return AttemptResult{Outcome: attempt.Succeeded}
	}
	e.r.DrainGrace = 1 // hand back at once
	done := make(chan error, 1)
	go func() {
		_, err := e.r.Execute(context.Background(), run.ID)
		done <- err
	}()
	<-reached
	e.r.Drain()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mid := e.tasks(run.ID)["each"]
	if mid.State != engine.TaskRunning {
		t.Fatalf("after the drain the map is %s", mid.State)
	}
	// A new executor takes it up.
	r2 := &Runner{Store: e.st, Logs: e.logs, Home: e.home, Parallel: 4, Executor: func(ctx context.Context, a *Attempt) AttemptResult {
		mu.Lock()
		succeeded[a.Item]++
		mu.Unlock()
		return AttemptResult{Outcome: attempt.Succeeded}
	}}
	end, err := r2.Execute(t.Context(), run.ID)
	if err != nil || end.State != engine.RunSucceeded {
		t.Fatalf("resume: %s, %v", end.State, err)
	}
	close(block)
	if len(succeeded) != 200 {
		t.Errorf("%d items succeeded, want 200", len(succeeded))
	}
	for i, n := range succeeded {
		if n != 1 {
			t.Errorf("item %d succeeded %d times", i, n)
		}
	}
	if mi := e.mapInfo(run.ID, 0); mi.Counts[engine.TaskSucceeded] != 200 {
		t.Errorf("counts = %v", mi.Counts)
	}
}

// TestMapCancel: cancelling the run stops the running items and ends the
// map cancelled; no item starts afterwards.
func TestMapCancel(t *testing.T) {
	e := newEnv(t)
	started := make(chan int, 100)
	e.r.Executor = blockingItems(started)
	ctx, cancel := context.WithCancel(t.Context())
	run, done := e.startRun(ctx, `
name: m
tasks:
  - id: each
    run: "true"
    map: {range: {stop: 100}, concurrency: 2}
`)
	<-started
	<-started
	cancel()
	end := <-done
	if end.State != engine.RunCancelled {
		t.Fatalf("run %s", end.State)
	}
	if n := len(started); n != 0 {
		t.Errorf("%d items started after the cancel", n)
	}
	each := e.tasks(run.ID)["each"]
	if each.State != engine.TaskCancelled || !strings.HasPrefix(each.Message, "map cancelled: 100 items: 0 succeeded, 2 cancelled, 98 not run") {
		t.Errorf("map = %s %q", each.State, each.Message)
	}
}

// TestMapRetryFailedItems: retrying a failed run runs the map's failed
// items again, and only them.
func TestMapRetryFailedItems(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	ran := map[int]int{}
	fail := true
	e.r.Executor = func(ctx context.Context, a *Attempt) AttemptResult {
		mu.Lock()
		defer mu.Unlock()
		ran[a.Item]++
		if fail && a.Items > 0 && a.Item%10 == 0 {
			return AttemptResult{Outcome: attempt.Failed, Message: "boom"}
		}
		return AttemptResult{Outcome: attempt.Succeeded, Result: json.RawMessage(strconv.Itoa(a.Item))}
	}
	run, tasks := e.run(t.Context(), `
name: m
tasks:
  - id: each
    run: "true"
    map: {range: {stop: 50}, tolerate: {count: 100}}
  - id: after
    needs: [each]
    run: "true"
`, nil)
	if run.State != engine.RunSucceeded || tasks["each"].Message != "50 items: 45 succeeded, 5 failed" {
		t.Fatalf("first run: %s %q", run.State, tasks["each"].Message)
	}
	// Tolerated failures still let the run succeed; fail the map instead
	// to retry it.
	e2 := newEnv(t)
	e2.r.Executor = e.r.Executor
	clear(ran)
	run, tasks = e2.run(t.Context(), `
name: m
tasks:
  - id: each
    run: "true"
    map: {range: {stop: 50}, tolerate: {count: 4}}
`, nil)
	if run.State != engine.RunFailed {
		t.Fatalf("run %s: %q", run.State, tasks["each"].Message)
	}
	firstRan := len(ran)
	fail = false
	clear(ran)
	if _, reopened, err := e2.r.Act(t.Context(), run.ID, engine.Event{Kind: engine.EvRetryFailed, Task: -1}); err != nil || !reopened {
		t.Fatalf("retry failed: reopened %t, %v", reopened, err)
	}
	end, err := e2.r.Execute(t.Context(), run.ID)
	if err != nil || end.State != engine.RunSucceeded {
		t.Fatalf("after retry: %s %v: %+v", end.State, err, e2.tasks(run.ID)["each"])
	}
	items := slices.Sorted(func(yield func(int) bool) {
		for i := range ran {
			if !yield(i) {
				return
			}
		}
	})
	if firstRan == 50 {
		t.Logf("the first run ran every item (no early stop)")
	}
	for _, i := range items {
		if i%10 != 0 && i >= firstRan {
			continue // never started the first time (the map stopped early)
		}
		if i%10 != 0 {
			t.Errorf("item %d, which succeeded, ran again", i)
		}
	}
	rows := e2.mapItems(run.ID, 0)
	for _, r := range rows {
		if r.State != engine.TaskSucceeded {
			t.Errorf("item %d is %s after the retry", r.Item, r.State)
		}
	}
	if len(rows) != 50 {
		t.Errorf("%d item rows, want 50", len(rows))
	}
}

// TestMapCacheIncremental: a cached map runs again only the items whose
// inputs changed; the others reuse their stored results (and say so), and
// what needs the map sees every item's result.
func TestMapCacheIncremental(t *testing.T) {
	e := newEnv(t)
	dir := filepath.Join(e.home, "users")
	os.MkdirAll(dir, 0o755)
	for i := range 100 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("u%d.json", i)), []byte(fmt.Sprintf(`{"n": %d}`, i)), 0o644)
	}
	os.WriteFile(filepath.Join(e.home, "shared.txt"), []byte("v1"), 0o644)
	src := `
name: agents
tasks:
  - id: prepare
    run: printf '"%s"' "$(cat shared.txt)" > "$TASUKI_RESULT"
    inputs: [shared.txt]
    cache: {}
  - id: agent
    needs: [prepare]
    run: |
      echo ran >> "$TASUKI_HOME/ran.$TASUKI_RUN_ID"
      jq -c '{n: .n, shared: $s}' --arg s "$(cat "$TASUKI_NEED_PREPARE")" "users/$TASUKI_ITEM.json" > "$TASUKI_RESULT"
    inputs: ["users/${TASUKI_ITEM}.json"]
    map: {range: {stop: 100}, concurrency: 8}
    cache: {version: "1"}
  - id: collect
    needs: [agent]
    run: cp "$TASUKI_NEED_AGENT" "$TASUKI_HOME/collected.$TASUKI_RUN_ID"
`
	// The items are u0..u99 by index: write the range's item as a name.
	src = strings.Replace(src, `"users/$TASUKI_ITEM.json"`, `"users/u$TASUKI_ITEM.json"`, 1)
	src = strings.Replace(src, `"users/${TASUKI_ITEM}.json"`, `"users/u${TASUKI_ITEM}.json"`, 1)
	first, tasks := e.run(t.Context(), src, nil)
	if first.State != engine.RunSucceeded {
		t.Fatalf("first run %s: %+v", first.State, tasks)
	}
	ranCount := func(id int64) int {
		b, _ := os.ReadFile(filepath.Join(e.home, fmt.Sprintf("ran.%d", id)))
		return strings.Count(string(b), "ran")
	}
	if n := ranCount(first.ID); n != 100 {
		t.Fatalf("first run ran %d items, want 100", n)
	}
	// One user's input changes.
	os.WriteFile(filepath.Join(dir, "u42.json"), []byte(`{"n": 4200}`), 0o644)
	second, tasks := e.run(t.Context(), src, nil)
	if second.State != engine.RunSucceeded {
		t.Fatalf("second run %s: %+v", second.State, tasks)
	}
	if n := ranCount(second.ID); n != 1 {
		t.Errorf("second run ran %d items, want 1", n)
	}
	if msg := tasks["agent"].Message; msg != "100 items: 100 succeeded (99 from the cache)" {
		t.Errorf("map message = %q", msg)
	}
	if msg := tasks["prepare"].Message; !strings.HasPrefix(msg, fmt.Sprintf("cached: the result of run %d", first.ID)) {
		t.Errorf("prepare message = %q", msg)
	}
	if mi := e.mapInfo(second.ID, 1); mi.Counts[StateCached] != 99 {
		t.Errorf("counts = %v", mi.Counts)
	}
	collected, _ := os.ReadFile(filepath.Join(e.home, fmt.Sprintf("collected.%d", second.ID)))
	lines := strings.Split(strings.TrimSpace(string(collected)), "\n")
	if len(lines) != 100 || lines[42] != `{"n":4200,"shared":"\"v1\""}` || lines[7] != `{"n":7,"shared":"\"v1\""}` {
		t.Errorf("collected %d lines; 7: %s; 42: %s", len(lines), lines[7], lines[42])
	}
	// The shared input changes: everything downstream of it runs again.
	os.WriteFile(filepath.Join(e.home, "shared.txt"), []byte("v2"), 0o644)
	third, _ := e.run(t.Context(), src, nil)
	if n := ranCount(third.ID); n != 100 {
		t.Errorf("after the shared input changed, %d items ran, want 100", n)
	}
	// --no-cache runs everything, and refreshes the entries: the next
	// run reuses its results.
	e.r.NoCache = true
	fourth, _ := e.run(t.Context(), src, nil)
	if n := ranCount(fourth.ID); n != 100 {
		t.Errorf("with NoCache, %d items ran, want 100", n)
	}
	e.r.NoCache = false
	_, tasks = e.run(t.Context(), src, nil)
	if msg := tasks["prepare"].Message; !strings.HasPrefix(msg, fmt.Sprintf("cached: the result of run %d", fourth.ID)) {
		t.Errorf("after a --no-cache run, prepare = %q, want the result of run %d", msg, fourth.ID)
	}
}

func TestItemEnv(t *testing.T) {
	for _, tc := range []struct {
		item string
		want map[string]string
	}{
		{`"plain"`, map[string]string{"TASUKI_ITEM": "plain", "TASUKI_ITEM_INDEX": "3"}},
		{`null`, map[string]string{"TASUKI_ITEM": "null", "TASUKI_ITEM_INDEX": "3"}},
		{`""`, map[string]string{"TASUKI_ITEM": "", "TASUKI_ITEM_INDEX": "3"}},
		{`{"index":99,"a-b":1,"a_b":2,"id":"x","n":null}`, map[string]string{
			"TASUKI_ITEM": `{"index":99,"a-b":1,"a_b":2,"id":"x","n":null}`, "TASUKI_ITEM_INDEX": "3",
			"TASUKI_ITEM_A_B": "1", "TASUKI_ITEM_ID": "x", "TASUKI_ITEM_N": "null"}},
		{`{"nested":{"a":1}}`, map[string]string{"TASUKI_ITEM": `{"nested":{"a":1}}`, "TASUKI_ITEM_INDEX": "3"}},
	} {
		got := map[string]string{}
		itemEnv(got, 3, json.RawMessage(tc.item))
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("itemEnv(%s) = %v, want %v", tc.item, got, tc.want)
		}
	}
}

// TestMapItemOutputs: ${TASUKI_ITEM} in outputs names each item's files,
// kept with each item's success.
func TestMapItemOutputs(t *testing.T) {
	e := newEnv(t)
	run, tasks := e.run(t.Context(), `
name: m
tasks:
  - id: tiles
    run: mkdir -p tiles && echo "tile $TASUKI_ITEM" > "tiles/tile-$TASUKI_ITEM.txt"
    outputs: ["tiles/tile-${TASUKI_ITEM}.txt"]
    map: {items: [a, b]}
`, nil)
	if run.State != engine.RunSucceeded {
		t.Fatalf("run %s: %+v", run.State, tasks)
	}
	for i, name := range []string{"a", "b"} {
		refs, err := e.st.ArtifactsOf(t.Context(), run.ID, 0, i)
		if err != nil || len(refs) != 1 || refs[0].Path != "tiles/tile-"+name+".txt" {
			t.Errorf("item %d's outputs: %+v, %v", i, refs, err)
		}
	}
}

// TestMapActions: while a map runs, an operator cancels a running item,
// marks a failed one skipped, retries another, and finally cancels the
// whole map; each is in the timeline with its actor.
func TestMapActions(t *testing.T) {
	e := newEnv(t)
	started := make(chan int, 100)
	release := make(chan struct{})
	var mu sync.Mutex
	fails := map[int]bool{1: true, 2: true}
	e.r.Executor = func(ctx context.Context, a *Attempt) AttemptResult {
		mu.Lock()
		fail := fails[a.Item]
		mu.Unlock()
		if fail {
			return AttemptResult{Outcome: attempt.Failed, Message: "boom"}
		}
		if a.Item == 0 || a.Item >= 5 {
			started <- a.Item
			select {
			case <-ctx.Done():
				return AttemptResult{Outcome: attempt.Cancelled, Message: "cancelled"}
			case <-release:
			}
		}
		return AttemptResult{Outcome: attempt.Succeeded}
	}
	run, err := e.r.Create(t.Context(), e.pipeline(`
name: m
tasks:
  - id: each
    run: "true"
    map: {range: {stop: 8}, concurrency: 2, tolerate: {count: 5}}
`), nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan store.Run, 1)
	go func() {
		r, _ := e.r.Execute(context.Background(), run.ID)
		done <- r
	}()
	act := func(a MapAction) error {
		a.Actor = "ops"
		_, err := e.r.ActMap(t.Context(), run.ID, a)
		return err
	}
	// Items 1 and 2 fail, 3 and 4 succeed; 0 and 5 hold the two slots.
	if got := map[int]bool{<-started: true, <-started: true}; !got[0] || !got[5] {
		t.Fatalf("blocking items %v, want 0 and 5", got)
	}
	if err := act(MapAction{Kind: MapCancel, Task: 0, Item: 0}); err != nil {
		t.Fatal(err)
	}
	if got := <-started; got != 6 { // the next blocking item takes its place
		t.Fatalf("after item 0 was cancelled, item %d started, want 6", got)
	}
	var ae *MapActionError
	if err := act(MapAction{Kind: MapMark, Task: 0, Item: 5, State: engine.TaskSucceeded}); !errors.As(err, &ae) {
		t.Errorf("marking a running item: %v", err)
	}
	if err := act(MapAction{Kind: MapMark, Task: 0, Item: 1, State: engine.TaskSkipped}); err != nil {
		t.Errorf("marking a failed item skipped: %v", err)
	}
	mu.Lock()
	fails[2] = false
	mu.Unlock()
	if err := act(MapAction{Kind: MapRetry, Task: 0, Item: 2}); err != nil {
		t.Errorf("retrying a failed item: %v", err)
	}
	if err := act(MapAction{Kind: MapRetry, Task: 0, Item: 3}); !errors.As(err, &ae) {
		t.Errorf("retrying an item that did not fail: %v", err)
	}
	close(release)
	end := <-done
	if end.State != engine.RunSucceeded {
		t.Errorf("run %s", end.State)
	}
	each := e.tasks(run.ID)["each"]
	if each.State != engine.TaskSucceeded || each.Message != "8 items: 6 succeeded, 1 skipped, 1 cancelled" {
		t.Errorf("map %s: %q", each.State, each.Message)
	}
	byItem := map[int]store.MapItem{}
	for _, r := range e.mapItems(run.ID, 0) {
		byItem[r.Item] = r
	}
	if r := byItem[0]; r.State != engine.TaskCancelled {
		t.Errorf("item 0 = %+v", r)
	}
	if r := byItem[1]; r.State != engine.TaskSkipped || r.Message != "marked skipped by ops" {
		t.Errorf("item 1 = %+v", r)
	}
	if r := byItem[2]; r.State != engine.TaskSucceeded || r.Attempt != 2 {
		t.Errorf("item 2 = %+v", r)
	}
	events, _ := e.st.Events(t.Context(), run.ID, 0, 0)
	var actions int
	for _, ev := range events {
		if (ev.Kind == RecItemAction || ev.Kind == RecMapCancelled) && ev.Actor == "ops" {
			actions++
		}
	}
	if actions != 3 {
		t.Errorf("%d operator actions in the timeline, want 3", actions)
	}
	if _, err := e.r.ActMap(t.Context(), run.ID, MapAction{Kind: MapCancel, Task: 0, Item: -1}); !errors.Is(err, ErrMapNotRunning) {
		t.Errorf("action on a finished run: %v", err)
	}
}

// TestMapCancelOne: cancelling one map stops its items and ends it
// cancelled, with the operator in the timeline.
func TestMapCancelOne(t *testing.T) {
	e := newEnv(t)
	started := make(chan int, 100)
	e.r.Executor = blockingItems(started)
	run, done := e.startRun(context.Background(), `
name: m
tasks:
  - id: each
    run: "true"
    map: {range: {stop: 50}, concurrency: 3}
`)
	<-started
	if _, err := e.r.ActMap(t.Context(), run.ID, MapAction{Kind: MapCancel, Task: 0, Item: -1, Actor: "ops"}); err != nil {
		t.Fatal(err)
	}
	end := <-done
	each := e.tasks(run.ID)["each"]
	if end.State.Terminal() == false || each.State != engine.TaskCancelled {
		t.Fatalf("run %s, map %s %q", end.State, each.State, each.Message)
	}
	events, _ := e.st.Events(t.Context(), run.ID, 0, 0)
	found := false
	for _, ev := range events {
		found = found || ev.Kind == RecMapCancelled && ev.Actor == "ops"
	}
	if !found {
		t.Error("no map_cancelled record by ops in the timeline")
	}
}

// TestMapItemAttemptEnded: the log of a running item is followed until
// the item's attempt ends.
func TestMapItemAttemptEnded(t *testing.T) {
	e := newEnv(t)
	started := make(chan struct{})
	release := make(chan struct{})
	e.r.Executor = func(ctx context.Context, a *Attempt) AttemptResult {
		if a.Item == 1 {
			close(started)
			<-release
		}
		return AttemptResult{Outcome: attempt.Succeeded}
	}
	run, err := e.r.Create(t.Context(), e.pipeline("name: m\ntasks:\n  - id: each\n    run: \"true\"\n    map: {items: [a, b, c]}\n"), nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { e.r.Execute(context.Background(), run.ID); close(done) }()
	<-started
	ended := AttemptEnded(e.st)
	if ended(t.Context(), logs.Key{RunID: run.ID, TaskID: "each.1", Attempt: 1}) {
		t.Error("a running item's attempt is reported ended")
	}
	close(release)
	<-done
	if !ended(t.Context(), logs.Key{RunID: run.ID, TaskID: "each.1", Attempt: 1}) {
		t.Error("a finished item's attempt is not reported ended")
	}
}

// TestMapBatchLogAndWorker: the items of a batch name the log of their
// process; items run here name this executor.
func TestMapBatchLogAndWorker(t *testing.T) {
	e := newEnv(t)
	e.r.Worker = "local:test"
	run, tasks := e.run(t.Context(), "name: m\ntasks:\n  - id: each\n    run: cat > /dev/null\n    map: {range: {stop: 5}, batch: 3}\n", nil)
	if run.State != engine.RunSucceeded {
		t.Fatalf("run %s: %+v", run.State, tasks)
	}
	want := map[int]string{0: "each.0", 1: "each.0", 2: "each.0", 3: "each.3", 4: "each.3"}
	for _, r := range e.mapItems(run.ID, 0) {
		if r.Log != want[r.Item] || r.Worker != "local:test" {
			t.Errorf("item %d: log %q worker %q, want log %q", r.Item, r.Log, r.Worker, want[r.Item])
		}
	}
}

// failingStore fails Apply once fail is set.
type failingStore struct {
	store.Store
	fail atomic.Bool
}

func (s *failingStore) Apply(ctx context.Context, changes ...store.Change) error {
	if s.fail.Load() {
		return fmt.Errorf("injected: the disk is gone")
	}
	return s.Store.Apply(ctx, changes...)
}

// TestMapResumeAfterLostItems: the executor stops (a store failure here)
// while items are in flight; the next executor runs them again as new
// attempts, each with a log of its own, and every item ends succeeded.
func TestMapResumeAfterLostItems(t *testing.T) {
	e := newEnv(t)
	fs := &failingStore{Store: e.st}
	e.r.Store = fs
	var mu sync.Mutex
	succeeded := map[int]int{}
	e.r.Executor = func(ctx context.Context, a *Attempt) AttemptResult {
		if a.Item == 20 && a.Number == 1 {
			fs.fail.Store(true) // the next commit fails: the run stops with this item in flight
			<-ctx.Done()
			return AttemptResult{Outcome: attempt.Cancelled}
		}
		mu.Lock()
		succeeded[a.Item]++
		mu.Unlock()
		return AttemptResult{Outcome: attempt.Succeeded}
	}
	run, err := e.r.Create(t.Context(), e.pipeline("name: m\ntasks:\n  - id: each\n    run: \"true\"\n    map: {range: {stop: 50}, concurrency: 4}\n"), nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.Execute(t.Context(), run.ID); err == nil {
		t.Fatal("the run went on through a failing store")
	}
	fs.fail.Store(false)
	r2 := &Runner{Store: e.st, Logs: e.logs, Home: e.home, Parallel: 4, Executor: e.r.Executor}
	end, err := r2.Execute(t.Context(), run.ID)
	if err != nil || end.State != engine.RunSucceeded {
		t.Fatalf("resume: %s, %v", end.State, err)
	}
	// Items whose ends were not written yet when the store failed run
	// again (at least once, not exactly once); none is lost.
	for i := range 50 {
		if succeeded[i] < 1 || succeeded[i] > 2 {
			t.Errorf("item %d succeeded %d times", i, succeeded[i])
		}
	}
	rows := e.mapItems(run.ID, 0)
	if len(rows) != 50 {
		t.Errorf("%d item rows, want 50", len(rows))
	}
	for _, r := range rows {
		if r.State != engine.TaskSucceeded {
			t.Errorf("item %d is %s", r.Item, r.State)
		}
		if r.Item == 20 && r.Attempt < 2 {
			t.Errorf("item 20, lost in flight, ended as attempt %d: want a new attempt", r.Attempt)
		}
	}
}

// TestMapLostItemsHeldAcrossRecoveries: items lost in flight are held
// (LostHold) before they run again; a second recovery within the hold
// (the new leader fails in turn) keeps them held as they are, rather than
// count them lost again: they did not run meanwhile. Recorded as pending,
// a held item was lost anew at each recovery, and after ten leader changes
// within holds it failed, "lost 11 times: the item stops every executor it
// runs on", without having run (the chaos soak's run of fan-5).
func TestMapLostItemsHeldAcrossRecoveries(t *testing.T) {
	e := newEnv(t)
	fs := &failingStore{Store: e.st}
	e.r.Store = fs
	e.r.Executor = func(ctx context.Context, a *Attempt) AttemptResult {
		if a.Item == 20 {
			fs.fail.Store(true) // the next commit fails: the run stops with this item in flight
			<-ctx.Done()
			return AttemptResult{Outcome: attempt.Cancelled}
		}
		return AttemptResult{Outcome: attempt.Succeeded}
	}
	run, err := e.r.Create(t.Context(), e.pipeline("name: m\ntasks:\n  - id: each\n    run: \"true\"\n    map: {range: {stop: 50}, concurrency: 4}\n"), nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.Execute(t.Context(), run.ID); err == nil {
		t.Fatal("the run went on through a failing store")
	}
	fs.fail.Store(false)
	now := time.Now()
	for recovery := 1; recovery <= 3; recovery++ {
		r := &Runner{Store: e.st, Logs: e.logs, Home: e.home, Now: func() time.Time { return now.Add(time.Duration(recovery) * time.Minute) },
			LostHold: func(string) time.Duration { return time.Hour }}
		r.defaults()
		c, err := r.load(t.Context(), run.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.recover(); err != nil {
			t.Fatal(err)
		}
		if err := c.commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		for _, row := range e.mapItems(run.ID, 0) {
			if row.Item != 20 {
				continue
			}
			// Attempt 1 was in flight, and lost; the next will be 2.
			if row.Attempt != 1 || row.State != engine.TaskRetryWait || row.ReadyAt.Sub(now.Add(time.Minute+time.Hour)).Abs() > time.Millisecond {
				t.Fatalf("after recovery %d, item 20: %s, attempt %d, ready at %s; want held from the first recovery, attempt 1 lost once",
					recovery, row.State, row.Attempt, row.ReadyAt)
			}
		}
	}
}

// TestMapPoolNotConfigured: a map whose pool the executor does not have
// fails its items and ends, rather than wait for ever.
func TestMapPoolNotConfigured(t *testing.T) {
	e := newEnv(t)
	e.r.Dispatcher = NewDispatcher(4, nil)
	run, tasks := e.run(t.Context(), "name: m\ntasks:\n  - id: each\n    run: \"true\"\n    pool: nope\n    map: {range: {stop: 5}}\n", nil)
	if run.State != engine.RunFailed || !strings.Contains(tasks["each"].Message, `pool "nope" is not configured`) {
		t.Fatalf("run %s, map %q", run.State, tasks["each"].Message)
	}
}

// countingStore is an artifact store that counts its puts.
type countingStore struct {
	artifact.Store
	puts atomic.Int64
}

func (c *countingStore) Put(ctx context.Context, r io.Reader, want string) (artifact.Info, error) {
	c.puts.Add(1)
	return c.Store.Put(ctx, r, want)
}

// TestMapNeedShared: with ShareMapNeeds (a server, for its remote
// workers), every attempt of a run task that needs a map (a task, and
// each item of a map) is named the same file of the map's results in the
// artifact store, kept once per run, and counted in use while the run
// goes on; without it, no attempt is, and nothing is kept.
func TestMapNeedShared(t *testing.T) {
	const src = `
name: shared
tasks:
  - id: src
    run: "true"
    map: {range: {stop: 4}}
  - id: each
    needs: [src]
    run: "true"
    map: {range: {stop: 5}}
  - id: after
    needs: [src]
    run: "true"
`
	for _, share := range []bool{true, false} {
		t.Run(fmt.Sprint("share=", share), func(t *testing.T) {
			e := newEnv(t)
			st := &countingStore{Store: &artifact.Dir{Root: filepath.Join(e.home, "artifacts")}}
			e.r.Artifacts, e.r.ShareMapNeeds = st, share
			var mu sync.Mutex
			named := map[string][]artifact.Need{} // by log task id (each.N)
			inUse := map[string]bool{}
			e.r.Executor = func(ctx context.Context, a *Attempt) AttemptResult {
				if a.TaskID == "src" {
					if a.Item == 2 {
						return AttemptResult{Outcome: attempt.Succeeded} // no result: null
					}
					return AttemptResult{Outcome: attempt.Succeeded, Result: json.RawMessage(fmt.Sprintf("{\n \"n\": %d}", a.Item*10))}
				}
				s, err := a.Spec()
				if err != nil {
					return attempt.Failedf("%v", err)
				}
				digests, _ := e.r.SharedNeedDigests(ctx, "", 10)
				mu.Lock()
				defer mu.Unlock()
				named[a.Log.TaskID] = s.NeedFiles
				for _, d := range digests {
					inUse[d] = true
				}
				return AttemptResult{Outcome: attempt.Succeeded}
			}
			run, tasks := e.run(t.Context(), src, nil)
			if run.State != engine.RunSucceeded {
				t.Fatalf("run %s: %+v", run.State, tasks)
			}
			if len(named) != 6 {
				t.Fatalf("attempts of each and after: %v", named)
			}
			if !share {
				for id, files := range named {
					if files != nil {
						t.Errorf("%s was named %v without ShareMapNeeds", id, files)
					}
				}
				if n := st.puts.Load(); n != 0 {
					t.Errorf("%d puts without ShareMapNeeds", n)
				}
				return
			}
			want := named["after"]
			if len(want) != 1 || want[0].Need != "src" || want[0].Path != "results.jsonl" {
				t.Fatalf("after was named %+v; want the results of src", want)
			}
			for id, files := range named {
				if !slices.Equal(files, want) {
					t.Errorf("%s was named %+v, after %+v", id, files, want)
				}
			}
			if n := st.puts.Load(); n != 1 {
				t.Errorf("%d puts; want the file kept once", n)
			}
			if !inUse[want[0].Digest] {
				t.Errorf("the file was not in use while the run went on (%v)", inUse)
			}
			if left, _ := e.r.SharedNeedDigests(t.Context(), "", 10); len(left) != 0 {
				t.Errorf("in use after the run ended: %v", left)
			}
			rc, err := st.Open(t.Context(), want[0].Digest)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if lines := "{\"n\":0}\n{\"n\":10}\nnull\n{\"n\":30}\n"; string(got) != lines || want[0].Size != int64(len(lines)) {
				t.Errorf("the file holds (%d bytes named):\n%s\nwant:\n%s", want[0].Size, got, lines)
			}
		})
	}
}

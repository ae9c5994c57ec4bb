package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
)

// countingMaps counts the map reads made through a store.
type countingMaps struct {
	store.Store
	infos, values, items atomic.Int64
}

func (c *countingMaps) MapInfos(ctx context.Context, runID int64) ([]store.MapInfo, error) {
	c.infos.Add(1)
	return c.Store.MapInfos(ctx, runID)
}

func (c *countingMaps) MapValues(ctx context.Context, runID int64, index, from, n int) ([]json.RawMessage, error) {
	c.values.Add(1)
	return c.Store.MapValues(ctx, runID, index, from, n)
}

func (c *countingMaps) MapItems(ctx context.Context, f store.MapItemFilter) ([]store.MapItem, error) {
	c.items.Add(1)
	return c.Store.MapItems(ctx, f)
}

// reads returns the counts so far, and starts them again.
func (c *countingMaps) reads() [3]int64 {
	return [3]int64{c.infos.Swap(0), c.values.Swap(0), c.items.Swap(0)}
}

// TestRunDetailOfAMillionItems: the detail of a run whose map has a
// million items carries the map's counts from one MapInfos read and reads
// no item row or value; a task's detail likewise; a page of its failed
// items reads the page. The map is written to the real store as its
// coordinator would, without running a million processes. On SQLite and
// on PostgreSQL.
func TestRunDetailOfAMillionItems(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			dsn := ""
			if db == "postgres" {
				dsn = pgtest.DSN(t)
			}
			testRunDetailOfAMillionItems(t, dsn)
		})
	}
}

func testRunDetailOfAMillionItems(t *testing.T, dsn string) {
	dir := pipelineDir(t, map[string]string{
		"huge.yaml": `name: huge
tasks:
  - id: each
    run: echo "$TASUKI_ITEM"
    map: {range: {stop: 1000000}}
  - id: after
    needs: [each]
    run: "true"
`,
		"plain.yaml": `name: plain
tasks:
  - id: one
    run: "true"
`,
	})
	ts := newTestServerDB(t, t.TempDir(), dir, dsn, time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC))
	ctx := context.Background()
	svc := &service{s: ts.Server}
	run, err := svc.Trigger(ctx, "huge", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	const n = 1_000_000
	values := make([]json.RawMessage, n)
	for i := range values {
		values[i] = json.RawMessage(strconv.Itoa(i))
	}
	three := 3
	var failed []store.MapItem
	for _, i := range []int{17, 4242, 500_000, 999_999} {
		failed = append(failed, store.MapItem{Item: i, State: engine.TaskFailed, Attempt: 1, StartedAt: ts.now(), FinishedAt: ts.now(),
			ExitCode: &three, Message: "no data for " + strconv.Itoa(i)})
	}
	info := &store.MapInfo{Items: n, Next: n,
		Counts:  map[engine.TaskState]int{engine.TaskSucceeded: n - 10, engine.TaskFailed: 4, engine.TaskRunning: 6},
		Slowest: []store.SlowItem{{Item: 17, Attempt: 1, Duration: 3200 * time.Millisecond}}}
	if err := ts.store.Apply(ctx, store.Change{RunID: run.ID, Maps: []store.MapChange{{Index: 0, Values: values, Info: info, Items: failed}}}); err != nil {
		t.Fatal(err)
	}

	counting := &countingMaps{Store: ts.store}
	ts.store = counting
	start := time.Now()
	got, err := svc.Run(ctx, run.ID)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("GET /runs/%d of a map of %d items: %s", run.ID, n, took)
	if r := counting.reads(); r != [3]int64{1, 0, 0} {
		t.Errorf("the run's detail made %d MapInfos, %d MapValues and %d MapItems reads; want one MapInfos", r[0], r[1], r[2])
	}
	m := got.Tasks[0].Map
	want := map[string]int{"succeeded": n - 10, "failed": 4, "running": 6}
	if m == nil || m.Items != n || m.Started != n || len(m.Counts) != 3 || m.Counts["failed"] != 4 || m.Counts["succeeded"] != want["succeeded"] ||
		len(m.Slowest) != 1 || m.Slowest[0] != (api.SlowItem{Item: 17, Attempt: 1, Duration: api.Duration(3200 * time.Millisecond)}) {
		t.Fatalf("map %+v, want %v", m, want)
	}
	if got.Tasks[1].Map != nil {
		t.Errorf("task after has a map: %+v", got.Tasks[1].Map)
	}

	task, err := svc.Task(ctx, run.ID, "each")
	if err != nil || task.Map == nil || task.Map.Items != n {
		t.Fatalf("task each: %+v, %v", task, err)
	}
	if r := counting.reads(); r != [3]int64{1, 0, 0} {
		t.Errorf("the task's detail made reads %v; want one MapInfos", r)
	}
	if task, err := svc.Task(ctx, run.ID, "after"); err != nil || task.Map != nil {
		t.Errorf("task after: %+v, %v", task, err)
	}
	if r := counting.reads(); r != [3]int64{} {
		t.Errorf("the detail of a task that is not a map read maps: %v", r)
	}

	page, err := svc.Items(ctx, run.ID, "each", api.ItemQuery{States: []engine.TaskState{engine.TaskFailed}, Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 3 || page.Items[2].Item != 500_000 || string(page.Items[2].Value) != "500000" || page.Next != "500000" {
		t.Fatalf("failed items: %+v", page)
	}
	if r := counting.reads(); r[2] != 1 || r[1] != 3 {
		t.Errorf("a page of 3 failed items far apart made reads %v; want one MapItems and a MapValues per item", r)
	}
	page, err = svc.Items(ctx, run.ID, "each", api.ItemQuery{From: 999_998})
	if err != nil || len(page.Items) != 2 || page.Items[1].State != engine.TaskFailed || page.Items[0].State != engine.TaskRunning || page.Next != "" {
		t.Fatalf("the last items: %+v, %v", page, err)
	}

	key, err := svc.LogKey(ctx, run.ID, "each.4242", 0)
	if err != nil || key != (logs.Key{RunID: run.ID, TaskID: runner.ItemLogID("each", 4242), Attempt: 1}) {
		t.Errorf("the log of item 4242: %+v, %v", key, err)
	}
	for _, c := range []struct {
		task, want string
	}{
		{"each.1000000", "has 1000000 items (0 to 999999): no item 1000000"},
		{"each.17", ""},
		{"after.1", fmt.Sprintf(`task "after" of run %d is not a map task`, run.ID)},
		{"nope.1", fmt.Sprintf(`run %d has no task "nope"`, run.ID)},
	} {
		_, err := svc.LogKey(ctx, run.ID, c.task, 0)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("LogKey(%s) = %v, want %q", c.task, err, c.want)
		}
	}

	// A run whose pipeline has no map reads no map; a map not started has
	// no items yet.
	plain, err := svc.Trigger(ctx, "plain", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	counting.reads()
	if _, err := svc.Run(ctx, plain.ID); err != nil {
		t.Fatal(err)
	}
	if r := counting.reads(); r != [3]int64{} {
		t.Errorf("the detail of a run without maps read maps: %v", r)
	}
	again, err := svc.Trigger(ctx, "huge", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		run        int64
		task, want string
	}{
		{again.ID, "each", fmt.Sprintf(`map task "each" of run %d has no items yet: it is pending`, again.ID)},
		{run.ID, "after", fmt.Sprintf(`task "after" of run %d is not a map task`, run.ID)},
		{plain.ID, "one", fmt.Sprintf(`task "one" of run %d is not a map task`, plain.ID)},
		{run.ID, "nope", fmt.Sprintf(`run %d has no task "nope"`, run.ID)},
		{9999, "each", "no run 9999"},
	} {
		_, err := svc.Items(ctx, c.run, c.task, api.ItemQuery{})
		if e, ok := err.(*api.Error); !ok || e.Status != 404 || !strings.Contains(e.Message, c.want) {
			t.Errorf("Items(%d, %s) = %v, want a 404 saying %q", c.run, c.task, err, c.want)
		}
	}
	if _, err := svc.Items(ctx, run.ID, "each", api.ItemQuery{States: []engine.TaskState{engine.TaskRunning}}); err == nil ||
		!strings.Contains(err.Error(), "expected one of") {
		t.Errorf("a state without rows: %v", err)
	}
	if got, err := svc.Run(ctx, again.ID); err != nil || got.Tasks[0].Map != nil {
		t.Errorf("a map not started shows %+v, %v", got.Tasks[0].Map, err)
	}
}

// TestItemLogName: the API names an item's log as the runner does.
func TestItemLogName(t *testing.T) {
	for _, c := range []struct {
		task string
		item int
	}{{"each", 0}, {"load-users", 17}, {"x", 9_999_999}} {
		if a, r := api.ItemLogName(c.task, c.item), runner.ItemLogID(c.task, c.item); a != r {
			t.Errorf("api.ItemLogName = %q, runner.ItemLogID = %q", a, r)
		}
	}
}

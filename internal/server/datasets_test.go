package server

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// settle runs scheduler passes until no run is queued or running.
func (ts *testServer) settle(ctx context.Context) {
	ts.t.Helper()
	for range 200 {
		ts.pass(ctx)
		ts.wg.Wait()
		n, err := ts.store.CountRuns(ctx, "", []engine.RunState{engine.RunQueued, engine.RunRunning})
		if err != nil {
			ts.t.Fatal(err)
		}
		if n == 0 {
			ts.pass(ctx) // start what the last runs' updates are due to start
			ts.wg.Wait()
			if n, _ = ts.store.CountRuns(ctx, "", []engine.RunState{engine.RunQueued, engine.RunRunning}); n == 0 {
				return
			}
		}
	}
	ts.t.Fatal("runs did not settle")
}

func (ts *testServer) runsOf(ctx context.Context, pipeline string) []store.Run {
	ts.t.Helper()
	runs, err := ts.store.ListRuns(ctx, store.RunFilter{Pipeline: pipeline, Ascending: true, Limit: 100})
	if err != nil {
		ts.t.Fatal(err)
	}
	return runs
}

// TestDatasetScheduledRuns: a producing task's success records an update
// with the metadata it wrote; a pipeline scheduled on that dataset starts
// once per set of updates (not again on the next pass, and not for updates
// from before it was loaded); with two datasets it waits for both, with any
// for either.
func TestDatasetScheduledRuns(t *testing.T) {
	ctx := context.Background()
	dir := pipelineDir(t, map[string]string{
		"extract.yaml": `name: extract
tasks:
  - id: orders
    produces: [raw.orders]
    run: |
      echo '{"rows": 42}' > "$TASUKI_DATASET_RAW_ORDERS"
`,
		"mart.yaml": `name: mart
schedule: {datasets: [raw.orders, raw.users]}
tasks: [{id: build, consumes: [raw.orders, raw.users], run: "true"}]
`,
		"alert.yaml": `name: alert
schedule: {datasets: [raw.orders, raw.users], any: true}
tasks: [{id: notify, run: "true"}]
`,
	})
	home := t.TempDir()
	ts := newTestServer(t, home, dir, time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC))
	if _, err := ts.store.RecordDatasetUpdate(ctx, store.DatasetUpdate{Dataset: "raw.users", Actor: "before"}); err != nil {
		t.Fatal(err)
	}
	ts.settle(ctx)
	if n := len(ts.runsOf(ctx, "alert")); n != 1 {
		// The update above came after the cursor was set at load: alert
		// (any) runs for it once; mart waits for raw.orders too.
		t.Fatalf("alert has %d runs after one raw.users update, want 1", n)
	}
	if n := len(ts.runsOf(ctx, "mart")); n != 0 {
		t.Fatalf("mart ran with only raw.users updated: %d runs", n)
	}

	if _, err := ts.runner.Create(ctx, mustPipeline(t, ts, "extract"), nil, store.TriggerManual); err != nil {
		t.Fatal(err)
	}
	ts.settle(ctx)
	latest, err := ts.store.LatestDatasetUpdates(ctx, []string{"raw.orders"})
	if err != nil {
		t.Fatal(err)
	}
	u := latest["raw.orders"]
	var meta map[string]int
	if err := json.Unmarshal(u.Metadata, &meta); err != nil || meta["rows"] != 42 || u.Pipeline != "extract" || u.TaskID != "orders" || u.RunID == 0 {
		t.Fatalf("update %+v (metadata %s, %v)", u, u.Metadata, err)
	}
	mart := ts.runsOf(ctx, "mart")
	if len(mart) != 1 || mart[0].Trigger != store.TriggerDataset || mart[0].State != engine.RunSucceeded {
		t.Fatalf("mart runs %+v: want one dataset-started run", mart)
	}
	if n := len(ts.runsOf(ctx, "alert")); n != 2 {
		t.Fatalf("alert has %d runs, want 2 (one per update)", n)
	}
	// Nothing new: more passes start nothing.
	ts.settle(ctx)
	if n := len(ts.runsOf(ctx, "mart")); n != 1 {
		t.Fatalf("mart ran again without new updates: %d runs", n)
	}
	// raw.orders alone again: mart still needs raw.users since its last run.
	if _, err := ts.store.RecordDatasetUpdate(ctx, store.DatasetUpdate{Dataset: "raw.orders", Actor: "vendor"}); err != nil {
		t.Fatal(err)
	}
	ts.settle(ctx)
	if n := len(ts.runsOf(ctx, "mart")); n != 1 {
		t.Fatalf("mart ran with only raw.orders new: %d runs", n)
	}
	if _, err := ts.store.RecordDatasetUpdate(ctx, store.DatasetUpdate{Dataset: "raw.users", Actor: "vendor"}); err != nil {
		t.Fatal(err)
	}
	ts.settle(ctx)
	if n := len(ts.runsOf(ctx, "mart")); n != 2 {
		t.Fatalf("mart has %d runs after both datasets were updated again, want 2", n)
	}
	// A pipeline scheduled on a dataset later starts nothing for the
	// updates that came before it.
	write(t, dir+"/late.yaml", "name: late\nschedule: {datasets: [raw.users]}\ntasks: [{id: a, run: \"true\"}]\n")
	if err := ts.reload(ctx); err != nil {
		t.Fatal(err)
	}
	ts.settle(ctx)
	if n := len(ts.runsOf(ctx, "late")); n != 0 {
		t.Fatalf("late ran for updates from before it was loaded: %d runs", n)
	}
}

// TestCronAndDatasets: at the cron time the interval's run waits for its
// data; it starts once the data is there, for that interval.
func TestCronAndDatasets(t *testing.T) {
	ctx := context.Background()
	tokyo := mustLoad(t, "Asia/Tokyo")
	dir := pipelineDir(t, map[string]string{"daily.yaml": `name: daily
schedule: {cron: "0 9 * * *", timezone: Asia/Tokyo, datasets: [rates]}
tasks: [{id: a, run: "true"}]
`})
	ts := newTestServer(t, t.TempDir(), dir, time.Date(2026, 12, 7, 8, 0, 0, 0, tokyo))
	ts.at(time.Date(2026, 12, 7, 9, 0, 1, 0, tokyo))
	if n := len(ts.runsOf(ctx, "daily")); n != 0 {
		t.Fatalf("daily started without its data: %d runs", n)
	}
	if _, err := ts.store.RecordDatasetUpdate(ctx, store.DatasetUpdate{Dataset: "rates", Actor: "relay"}); err != nil {
		t.Fatal(err)
	}
	ts.at(time.Date(2026, 12, 7, 9, 5, 0, 0, tokyo))
	runs := ts.runsOf(ctx, "daily")
	if len(runs) != 1 || !runs[0].IntervalEnd.Equal(time.Date(2026, 12, 7, 9, 0, 0, 0, tokyo)) {
		t.Fatalf("runs %+v: want the 09:00 interval once the data arrived", runs)
	}
	ts.at(time.Date(2026, 12, 7, 9, 6, 0, 0, tokyo))
	if n := len(ts.runsOf(ctx, "daily")); n != 1 {
		t.Fatalf("daily has %d runs, want 1", n)
	}
}

func mustPipeline(t *testing.T, ts *testServer, name string) *spec.Pipeline {
	t.Helper()
	l, ok := ts.reg.Get(name)
	if !ok || l.Pipeline == nil {
		t.Fatalf("pipeline %s is not loaded", name)
	}
	return l.Pipeline
}

// TestPipelineWaitSameInterval: a task waiting for another pipeline's run
// of the same interval goes on once that run succeeded, and reads which
// run it was.
func TestPipelineWaitSameInterval(t *testing.T) {
	ctx := context.Background()
	tokyo := mustLoad(t, "Asia/Tokyo")
	dir := pipelineDir(t, map[string]string{
		"upstream.yaml": `name: upstream
schedule: {cron: "0 9 * * *", timezone: Asia/Tokyo}
tasks: [{id: load, run: "true"}]
`,
		"downstream.yaml": `name: downstream
schedule: {cron: "0 9 * * *", timezone: Asia/Tokyo}
tasks:
  - id: upstream-done
    wait: {pipeline: upstream, task: load, poke: 20ms, timeout: 1m}
  - id: use
    needs: [upstream-done]
    run: "true"
`})
	ts := newTestServer(t, t.TempDir(), dir, time.Date(2026, 12, 7, 8, 0, 0, 0, tokyo))
	ts.clock.Set(time.Date(2026, 12, 7, 9, 0, 1, 0, tokyo))
	ts.settle(ctx)
	up, down := ts.runsOf(ctx, "upstream"), ts.runsOf(ctx, "downstream")
	if len(up) != 1 || len(down) != 1 || down[0].State != engine.RunSucceeded {
		t.Fatalf("upstream %+v, downstream %+v", up, down)
	}
	tasks, err := ts.store.Tasks(ctx, down[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	var res struct{ Run int64 }
	if err := json.Unmarshal(tasks[0].Result, &res); err != nil || res.Run != up[0].ID {
		t.Fatalf("wait result %s: want upstream run %d (%v)", tasks[0].Result, up[0].ID, err)
	}
}

// TestCronAndDatasetsCursorRace: when another server moves the dataset
// cursor between this one's read and its CreateRun, the interval stays due
// (decided again at the next pass) rather than being stepped past as if it
// already had a run.
func TestCronAndDatasetsCursorRace(t *testing.T) {
	ctx := context.Background()
	tokyo := mustLoad(t, "Asia/Tokyo")
	dir := pipelineDir(t, map[string]string{"daily.yaml": `name: daily
schedule: {cron: "0 9 * * *", timezone: Asia/Tokyo, datasets: [rates]}
tasks: [{id: a, run: "true"}]
`})
	ts := newTestServer(t, t.TempDir(), dir, time.Date(2026, 12, 7, 8, 0, 0, 0, tokyo))
	u, err := ts.store.RecordDatasetUpdate(ctx, store.DatasetUpdate{Dataset: "rates", Actor: "relay"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 9, 0, 1, 0, tokyo)
	ts.clock.Set(now)
	stale, err := ts.store.PipelineState(ctx, "daily")
	if err != nil {
		t.Fatal(err)
	}
	// Another server consumes the update first (its run is not made
	// here: only its cursor moves).
	if err := ts.store.SetDatasetCursor(ctx, "daily", stale.DatasetCursor, map[string]int64{"rates": u.ID}); err != nil {
		t.Fatal(err)
	}
	if err := ts.scheduleOne(ctx, stale, now); err != nil {
		t.Fatal(err)
	}
	after, err := ts.store.PipelineState(ctx, "daily")
	if err != nil {
		t.Fatal(err)
	}
	if !after.NextFire.Equal(stale.NextFire) || !after.LastIntervalEnd.Equal(stale.LastIntervalEnd) {
		t.Fatalf("the interval was stepped past after a cursor conflict: next fire %s → %s, last end %s → %s",
			stale.NextFire, after.NextFire, stale.LastIntervalEnd, after.LastIntervalEnd)
	}
}

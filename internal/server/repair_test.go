package server

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/notify"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// recordingPublisher keeps the events the server publishes.
type recordingPublisher struct {
	mu     sync.Mutex
	events []notify.Event
}

func (r *recordingPublisher) Publish(_ context.Context, ev notify.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	return nil
}

func (r *recordingPublisher) kinds() []notify.Kind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []notify.Kind
	for _, ev := range r.events {
		out = append(out, ev.Kind)
	}
	return out
}

func (ts *testServer) eventKinds(ctx context.Context, runID int64) []engine.EventKind {
	ts.t.Helper()
	evs, err := ts.store.Events(ctx, runID, 0, store.MaxEventsLimit)
	if err != nil {
		ts.t.Fatal(err)
	}
	var out []engine.EventKind
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

// failedRelay runs a relay pipeline whose wait times out (extra adds tasks)
// until the run has failed and the repair watches it; data is where the
// file the wait wants goes.
func failedRelay(t *testing.T, extra string) (ts *testServer, data string, run store.Run, rec *recordingPublisher) {
	t.Helper()
	ctx := context.Background()
	data = t.TempDir()
	dir := pipelineDir(t, map[string]string{"relay.yaml": `name: relay
repair: {on_data: true, poke: 1s}
tasks:
  - id: arrive
    wait: {file: ` + data + `/rates.csv, poke: 20ms, timeout: 150ms}
  - id: merge
    needs: [arrive]
    run: cat ` + data + `/rates.csv
` + extra})
	ts = newTestServer(t, t.TempDir(), dir, time.Date(2026, 12, 7, 19, 0, 0, 0, time.UTC))
	ts.clock.Follow() // the wait's timeout passes in real time
	rec = &recordingPublisher{}
	ts.alerts = rec
	run, err := ts.runner.Create(ctx, mustPipeline(t, ts, "relay"), nil, store.TriggerManual)
	if err != nil {
		t.Fatal(err)
	}
	ts.settle(ctx)
	if r, _ := ts.store.Run(ctx, run.ID); r.State != engine.RunFailed {
		t.Fatalf("run is %s, want failed (the wait timed out)", r.State)
	}
	if kinds := ts.eventKinds(ctx, run.ID); !slices.Contains(kinds, RecRepairWatching) {
		t.Fatalf("no repair_watching record: %v", kinds)
	}
	return ts, data, run, rec
}

// TestRepairOnData: a run that failed because a wait timed out is watched;
// when the file lands, the failed part (the wait and what follows it) runs
// again in the same run, what had succeeded does not, the timeline says
// why, and "repaired" is published.
func TestRepairOnData(t *testing.T) {
	ctx := context.Background()
	ts, data, run, rec := failedRelay(t, "  - id: side\n    run: echo side\n")
	// Checks before the data lands change nothing.
	ts.clock.Set(ts.clock.Now().Add(time.Second))
	ts.settle(ctx)
	if r, _ := ts.store.Run(ctx, run.ID); r.State != engine.RunFailed {
		t.Fatalf("run is %s before the data arrived", r.State)
	}
	if err := os.WriteFile(filepath.Join(data, "rates.csv"), []byte("USDJPY,150.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts.clock.Set(ts.clock.Now().Add(time.Second))
	ts.settle(ctx)
	r, _ := ts.store.Run(ctx, run.ID)
	if r.State != engine.RunSucceeded {
		t.Fatalf("run is %s after the data arrived, want succeeded", r.State)
	}
	tasks := ts.tasksByID(ctx, run.ID)
	if tasks["side"].Attempt != 1 || tasks["arrive"].Attempt != 2 || tasks["merge"].Attempt != 1 {
		t.Fatalf("attempts: side %d arrive %d merge %d; want 1, 2, 1 (nothing that succeeded runs again)", tasks["side"].Attempt, tasks["arrive"].Attempt, tasks["merge"].Attempt)
	}
	kinds := ts.eventKinds(ctx, run.ID)
	if !slices.Contains(kinds, RecRepairStarted) || !slices.Contains(kinds, engine.EvRetryFailed) {
		t.Fatalf("timeline lacks the repair: %v", kinds)
	}
	if !slices.Contains(rec.kinds(), notify.Repaired) {
		t.Fatalf("published %v, want repaired", rec.kinds())
	}
}

// TestRepairDataMissingExitCode: a task that exits with a data-missing code
// is tried again every repair.poke until it succeeds; a task that failed
// for another reason is left to a person.
func TestRepairDataMissingExitCode(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	marker := filepath.Join(data, "ready")
	dir := pipelineDir(t, map[string]string{"pull.yaml": `name: pull
repair: {on_data: true, poke: 5s}
tasks:
  - id: pull
    retry: {attempts: 1, data_missing_exit_codes: [75]}
    run: test -e ` + marker + ` || exit 75
`, "never.yaml": `name: never
repair: {on_data: true, poke: 5s, until: 8s}
tasks:
  - id: pull
    retry: {attempts: 1, data_missing_exit_codes: [75]}
    run: exit 75
`, "broken.yaml": `name: broken
repair: {on_data: true}
tasks:
  - id: x
    retry: {attempts: 1, data_missing_exit_codes: [75]}
    run: exit 3
`})
	ts := newTestServer(t, t.TempDir(), dir, time.Date(2026, 12, 7, 19, 0, 0, 0, time.UTC))
	ts.clock.Follow()
	pull, _ := ts.runner.Create(ctx, mustPipeline(t, ts, "pull"), nil, store.TriggerManual)
	broken, _ := ts.runner.Create(ctx, mustPipeline(t, ts, "broken"), nil, store.TriggerManual)
	never, _ := ts.runner.Create(ctx, mustPipeline(t, ts, "never"), nil, store.TriggerManual)
	ts.settle(ctx)
	if kinds := ts.eventKinds(ctx, broken.ID); slices.Contains(kinds, RecRepairWatching) {
		t.Fatalf("a run that failed for another reason is watched: %v", kinds)
	}
	ts.clock.Set(ts.clock.Now().Add(6 * time.Second))
	ts.settle(ctx) // tried again: still no data, fails again, watched again
	if r, _ := ts.store.Run(ctx, pull.ID); r.State != engine.RunFailed || ts.tasksByID(ctx, pull.ID)["pull"].Attempt != 2 {
		t.Fatalf("after one repair try: run %s, attempts %d", r.State, ts.tasksByID(ctx, pull.ID)["pull"].Attempt)
	}
	os.WriteFile(marker, nil, 0o600)
	ts.clock.Set(ts.clock.Now().Add(6 * time.Second))
	ts.settle(ctx)
	if r, _ := ts.store.Run(ctx, pull.ID); r.State != engine.RunSucceeded {
		t.Fatalf("run is %s once the data is there", r.State)
	}
	// The data never comes for "never": tried again within repair.until
	// of its first failure, then given up, however often a try fails.
	for range 3 {
		ts.clock.Set(ts.clock.Now().Add(6 * time.Second))
		ts.settle(ctx)
	}
	if kinds := ts.eventKinds(ctx, never.ID); !slices.Contains(kinds, RecRepairGaveUp) {
		t.Fatalf("never: no repair_gave_up after its until: %v", kinds)
	}
	if n := ts.tasksByID(ctx, never.ID)["pull"].Attempt; n > 3 {
		t.Fatalf("never: %d attempts; the repair did not stop at its until", n)
	}
	if kinds := ts.eventKinds(ctx, pull.ID); !slices.Contains(kinds, RecRepairStarted) {
		t.Fatalf("timeline %v", kinds)
	}
}

func (ts *testServer) tasksByID(ctx context.Context, runID int64) map[string]store.TaskRow {
	ts.t.Helper()
	rows, err := ts.store.Tasks(ctx, runID)
	if err != nil {
		ts.t.Fatal(err)
	}
	out := map[string]store.TaskRow{}
	for _, r := range rows {
		out[r.TaskID] = r
	}
	return out
}

// TestRepairAfterOperatorRetry: an operator who puts the data in place and
// retries the run by hand before the repair's next check leaves the repair
// nothing to do. The check that then finds the data must not write
// repair_started into a run that already succeeded (the timeline would say
// a repair ran that never did), nor publish "repaired".
func TestRepairAfterOperatorRetry(t *testing.T) {
	ctx := context.Background()
	ts, data, run, rec := failedRelay(t, "")
	if err := os.WriteFile(filepath.Join(data, "rates.csv"), []byte("USDJPY,150.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (&service{s: ts.Server}).RetryFailed(ctx, run.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	ts.settle(ctx)
	if r, _ := ts.store.Run(ctx, run.ID); r.State != engine.RunSucceeded {
		t.Fatalf("run is %s after the operator's retry, want succeeded", r.State)
	}
	// The repair's next check is due: it finds the data, and the run that
	// no longer failed.
	ts.clock.Set(ts.clock.Now().Add(2 * time.Second))
	ts.settle(ctx)
	if kinds := ts.eventKinds(ctx, run.ID); slices.Contains(kinds, RecRepairStarted) {
		t.Fatalf("repair_started written into a run an operator already retried: %v", kinds)
	}
	if slices.Contains(rec.kinds(), notify.Repaired) {
		t.Fatalf("published %v; nothing was repaired", rec.kinds())
	}
	ts.repair.mu.Lock()
	defer ts.repair.mu.Unlock()
	if len(ts.repair.watches) != 0 || len(ts.repair.until) != 0 {
		t.Fatalf("the repair still holds the run: watches %v, until %v", ts.repair.watches, ts.repair.until)
	}
}

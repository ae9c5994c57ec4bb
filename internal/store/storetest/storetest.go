package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Run runs the suite. open must return a new, empty store for each call and
// close it when the test ends (t.Cleanup); subtests run in parallel.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"PipelineVersions", testPipelineVersions},
		{"CreateRun", testCreateRun},
		{"CreateRunSizes", testCreateRunSizes},
		{"CreateRunRejects", testCreateRunRejects},
		{"ScheduledIntervalOnce", testScheduledIntervalOnce},
		{"ApplyRoundTripsTasks", testApplyTasks},
		{"ApplyRoundTripsRun", testApplyRun},
		{"ApplyRecordsAndEvents", testApplyRecords},
		{"ApplyAttempts", testApplyAttempts},
		{"ApplyIsAtomic", testApplyAtomic},
		{"ApplyEmpty", testApplyEmpty},
		{"ListRuns", testListRuns},
		{"ListRunsLimits", testListRunsLimits},
		{"EventsPaging", testEventsPaging},
		{"NotFound", testNotFound},
		{"ConcurrentApply", testConcurrentApply},
		{"ApplyBatchSameRows", testApplyBatchSameRows},
		{"ConcurrentApplyOverlapping", testConcurrentApplyOverlapping},
		{"PipelineStates", testPipelineStates},
		{"PipelineStateVersions", testPipelineStateVersions},
		{"ScheduledRunAdvances", testScheduledRunAdvances},
		{"ScheduledRunRejects", testScheduledRunRejects},
		{"AdvanceSchedule", testAdvanceSchedule},
		{"ConcurrentScheduledRuns", testConcurrentScheduledRuns},
		{"Backfill", testBackfill},
		{"BackfillManyRuns", testBackfillManyRuns},
		{"BackfillIsAtomic", testBackfillAtomic},
		{"ListBackfills", testListBackfills},
		{"ListRunsFilters", testListRunsFilters},
		{"CountRuns", testCountRuns},
		{"PruneRuns", testPruneRuns},
		{"PruneRunsLimits", testPruneRunsLimits},
		{"ServerNotFound", testServerNotFound},
		{"Leadership", testLeadership},
		{"ConcurrentLeadership", testConcurrentLeadership},
		{"ApplyFenced", testApplyFenced},
		{"ApplyFencedTakeover", testApplyFencedTakeover},
		{"Tokens", testTokens},
		{"ConcurrentTokens", testConcurrentTokens},
		{"APITokens", testAPITokens},
		{"Audit", testAudit},
		{"Secrets", testSecrets},
		{"ConcurrentSecrets", testConcurrentSecrets},
		{"Users", testUsers},
		{"FreeText", testFreeText},
		{"BackfillActor", testBackfillActor},
		{"RefusedText", testRefusedText},
		{"DatasetUpdates", testDatasetUpdates},
		{"DatasetUpdatesLimits", testDatasetUpdatesLimits},
		{"DatasetUpdateRejects", testDatasetUpdateRejects},
		{"LatestDatasetUpdates", testLatestDatasetUpdates},
		{"ApplyDatasetUpdates", testApplyDatasetUpdates},
		{"DatasetUpdatesVisibleInOrder", testDatasetUpdatesVisibleInOrder},
		{"DatasetCursor", testDatasetCursor},
		{"DatasetRuns", testDatasetRuns},
		{"ConcurrentDatasetRuns", testConcurrentDatasetRuns},
		{"ListRunsInterval", testListRunsInterval},
		// history.go
		{"ListPipelineVersions", testListPipelineVersions},
		{"RunDays", testRunDays},
		{"ListRunsCreated", testListRunsCreated},
		// slo.go
		{"SLOObjectives", testSLOObjectives},
		{"SLOWindows", testSLOWindows},
		{"SLOBreaches", testSLOBreaches},
		// notify.go
		{"OutboxPublish", testOutboxPublish},
		{"Incidents", testIncidents},
		{"ClaimDeliveries", testClaimDeliveries},
		{"ConcurrentClaims", testConcurrentClaims},
		{"ConcurrentIncidents", testConcurrentIncidents},
		{"PruneTakesDeliveries", testPruneTakesDeliveries},
		{"RunDeadlines", testRunDeadlines},
		{"TaskDurations", testTaskDurations},
		{"ConcurrentDurations", testConcurrentDurations},
		// maps.go
		{"MapExpand", testMapExpand},
		{"MapInfo", testMapInfo},
		{"MapItems", testMapItems},
		{"MapItemsPaging", testMapItemsPaging},
		{"MapReexpand", testMapReexpand},
		{"MapRejects", testMapRejects},
		{"MapBatch", testMapBatch},
		{"ConcurrentMapItems", testConcurrentMapItems},
		{"PruneTakesMaps", testPruneTakesMaps},
		// mapleases.go
		{"MapLeases", testMapLeases},
		// cache.go
		{"CacheRoundTrip", testCacheRoundTrip},
		{"CacheExpiry", testCacheExpiry},
		{"TouchCache", testTouchCache},
		{"ListCache", testListCache},
		{"DeleteAndPurgeCache", testDeleteAndPurgeCache},
		{"EvictCache", testEvictCache},
		{"CacheRejects", testCacheRejects},
		{"ConcurrentPutCache", testConcurrentPutCache},
		// artifacts.go
		{"Artifacts", testArtifacts},
		{"ArtifactsRejects", testArtifactsRejects},
		{"ArtifactDigests", testArtifactDigests},
		// inventory.go
		{"InventoryReports", testInventoryReports},
		{"InventoryIdentity", testInventoryIdentity},
		{"InventoryRejects", testInventoryRejects},
		{"SearchHosts", testSearchHosts},
		{"PruneInventory", testPruneInventory},
		{"ConcurrentHostReports", testConcurrentHostReports},
		// logs.go
		{"LogChunks", testLogChunks},
		{"LogChunksPaging", testLogChunksPaging},
		{"LogChunksRejects", testLogChunksRejects},
		{"LogChunksFenced", testLogChunksFenced},
		{"ConcurrentLogChunks", testConcurrentLogChunks},
		{"PruneTakesLogs", testPruneTakesLogs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

// Reference times with nanoseconds: stores keep microseconds.
var (
	t0  = time.Date(2026, 3, 14, 9, 26, 53, 589793238, time.UTC)
	jst = time.FixedZone("JST", 9*3600)
)

// us is t as a store returns it: truncated to the microsecond, in UTC.
func us(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Truncate(time.Microsecond).UTC()
}

func ptr(i int) *int { return &i }

func check(t *testing.T, what string, got, want any) {
	t.Helper()
	if d := diff(got, want); len(d) > 0 {
		t.Errorf("%s differs:", what)
		for _, line := range d {
			t.Errorf("  %s", line)
		}
	}
}

func mustCreate(t *testing.T, s store.Store, nr store.NewRun) store.Run {
	t.Helper()
	r, err := s.CreateRun(t.Context(), nr)
	if err != nil {
		t.Fatalf("CreateRun: %v", err)
	}
	return r
}

func mustApply(t *testing.T, s store.Store, changes ...store.Change) {
	t.Helper()
	if err := s.Apply(t.Context(), changes...); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// newRun is a run of pipeline p with n pending tasks t0..t(n-1).
func newRun(p string, n int) store.NewRun {
	nr := store.NewRun{Run: store.Run{
		Pipeline:  p,
		Trigger:   "manual",
		CreatedAt: t0,
		Run:       engine.Run{State: engine.RunQueued, Remaining: n},
	}}
	for i := range n {
		nr.Tasks = append(nr.Tasks, store.TaskRow{Index: i, TaskID: fmt.Sprintf("t%d", i),
			Task: engine.Task{State: engine.TaskPending}})
	}
	return nr
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func testPipelineVersions(t *testing.T, s store.Store) {
	ctx := t.Context()
	src := []byte("name: rates\ntasks: []\n")
	v1, err := s.PutPipelineVersion(ctx, store.PipelineVersion{Pipeline: "rates", File: "rates.yaml", Source: src, CreatedAt: t0.In(jst)})
	if err != nil {
		t.Fatalf("PutPipelineVersion: %v", err)
	}
	if v1.ID == 0 {
		t.Fatal("PutPipelineVersion returned ID 0")
	}
	want := store.PipelineVersion{ID: v1.ID, Pipeline: "rates", Hash: sha(src), File: "rates.yaml", Source: src, CreatedAt: us(t0)}
	check(t, "stored version", v1, want)
	got, err := s.PipelineVersion(ctx, v1.ID)
	if err != nil {
		t.Fatalf("PipelineVersion: %v", err)
	}
	check(t, "read version", got, want)

	// The same bytes again, even from another file, are the same version.
	again, err := s.PutPipelineVersion(ctx, store.PipelineVersion{Pipeline: "rates", File: "moved/rates.yaml", Source: src, Hash: sha(src)})
	if err != nil {
		t.Fatalf("PutPipelineVersion again: %v", err)
	}
	check(t, "deduplicated version", again, want)

	// Different bytes are a new version.
	src2 := []byte("name: rates\ntasks: [{id: a}]\n")
	v2, err := s.PutPipelineVersion(ctx, store.PipelineVersion{Pipeline: "rates", File: "rates.yaml", Source: src2})
	if err != nil {
		t.Fatalf("PutPipelineVersion v2: %v", err)
	}
	if v2.ID == v1.ID || v2.Hash != sha(src2) || v2.CreatedAt.IsZero() {
		t.Errorf("second version = %+v, want a new ID, hash %s and a creation time", v2, sha(src2))
	}

	// A hash that does not match the source is refused.
	if _, err := s.PutPipelineVersion(ctx, store.PipelineVersion{Pipeline: "rates", Source: []byte("x"), Hash: sha([]byte("y"))}); err == nil {
		t.Error("PutPipelineVersion with a wrong hash succeeded")
	}
}

func testCreateRun(t *testing.T, s store.Store) {
	ctx := t.Context()
	v, err := s.PutPipelineVersion(ctx, store.PipelineVersion{Pipeline: "etl", File: "etl.yaml", Source: []byte("name: etl")})
	if err != nil {
		t.Fatal(err)
	}
	nr := store.NewRun{
		Actor: "alice",
		Run: store.Run{
			Pipeline:      "etl",
			VersionID:     v.ID,
			Trigger:       "backfill",
			Params:        json.RawMessage(`{"date": "2026-03-14", "n": 3}`),
			IntervalStart: t0.Add(-24 * time.Hour).In(jst),
			IntervalEnd:   t0,
			CreatedAt:     t0.Add(time.Second),
			TaskCount:     0, // set by the store
			Run:           engine.Run{State: engine.RunQueued, Remaining: 3},
		},
		Tasks: []store.TaskRow{
			{Index: 0, TaskID: "extract", Task: engine.Task{State: engine.TaskReady}},
			{Index: 1, TaskID: "transform", Task: engine.Task{State: engine.TaskPending, PendingNeeds: 1}},
			{Index: 2, TaskID: "load", Task: engine.Task{PendingNeeds: 2}}, // empty state: pending
		},
	}
	r := mustCreate(t, s, nr)
	if r.ID == 0 {
		t.Fatal("CreateRun returned ID 0")
	}
	want := nr.Run
	want.ID = r.ID
	want.TaskCount = 3
	want.IntervalStart = us(want.IntervalStart)
	want.IntervalEnd = us(want.IntervalEnd)
	want.CreatedAt = us(want.CreatedAt)
	check(t, "created run", r, want)
	got, err := s.Run(ctx, r.ID)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	check(t, "read run", got, want)

	tasks, err := s.Tasks(ctx, r.ID)
	if err != nil {
		t.Fatalf("Tasks: %v", err)
	}
	wantTasks := slices.Clone(nr.Tasks)
	for i := range wantTasks {
		wantTasks[i].RunID = r.ID
	}
	wantTasks[2].State = engine.TaskPending
	check(t, "tasks", tasks, wantTasks)

	evs, err := s.Events(ctx, r.ID, 0, 0)
	if err != nil {
		t.Fatalf("Events: %v", err)
	}
	if len(evs) != 1 {
		t.Fatalf("got %d events after CreateRun, want 1 (run_created): %+v", len(evs), evs)
	}
	check(t, "run_created event", evs[0], store.Event{Seq: evs[0].Seq, RunID: r.ID,
		Record: engine.Record{Time: us(nr.Run.CreatedAt), Kind: store.RecRunCreated, Task: -1, Actor: "alice"}})

	// Defaults: creation time, queued state; a run without tasks is fine.
	before := time.Now().Add(-time.Second)
	empty := mustCreate(t, s, store.NewRun{Run: store.Run{Pipeline: "etl", Trigger: "manual"}})
	if empty.State != engine.RunQueued || empty.TaskCount != 0 || empty.CreatedAt.Before(before) || empty.ID <= r.ID {
		t.Errorf("run with defaults = %+v, want queued, 0 tasks, created now, ID > %d", empty, r.ID)
	}
	got, err = s.Run(ctx, empty.ID)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "run with defaults", got, empty)
	if tasks, err := s.Tasks(ctx, empty.ID); err != nil || len(tasks) != 0 {
		t.Errorf("Tasks of a run without tasks = %v, %v; want none, nil", tasks, err)
	}
	if atts, err := s.Attempts(ctx, empty.ID, -1); err != nil || len(atts) != 0 {
		t.Errorf("Attempts of a new run = %v, %v; want none, nil", atts, err)
	}
}

// testCreateRunSizes covers sizes around the batch sizes drivers are likely
// to use, with fresh tasks and with tasks that carry every field (a rerun
// that copies finished tasks from an earlier run).
func testCreateRunSizes(t *testing.T, s store.Store) {
	for _, n := range []int{1, 2, 255, 256, 257, 511, 1000, 3001} {
		for _, full := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d tasks full=%v", n, full), func(t *testing.T) {
				nr := newRun("sizes", n)
				for i := range nr.Tasks {
					task := &nr.Tasks[i].Task
					task.PendingNeeds = i % 3
					if i%3 == 0 {
						task.State = engine.TaskReady
					}
					if full && i%2 == 1 {
						*task = engine.Task{State: engine.TaskSucceeded, Attempt: i%4 + 1, Spent: i % 4, PendingNeeds: 0,
							ReadyAt: t0.Add(time.Duration(i) * time.Microsecond), StartedAt: t0.Add(time.Duration(i) * time.Millisecond),
							FinishedAt: t0.Add(time.Duration(i) * time.Second), ExitCode: ptr(i % 2), Message: fmt.Sprintf("copied %d", i),
							Result: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}
					}
				}
				r := mustCreate(t, s, nr)
				if r.TaskCount != n {
					t.Errorf("TaskCount = %d, want %d", r.TaskCount, n)
				}
				got, err := s.Tasks(t.Context(), r.ID)
				if err != nil {
					t.Fatal(err)
				}
				want := slices.Clone(nr.Tasks)
				for i := range want {
					w := &want[i]
					w.RunID = r.ID
					w.ReadyAt, w.StartedAt, w.FinishedAt = us(w.ReadyAt), us(w.StartedAt), us(w.FinishedAt)
				}
				check(t, "tasks", got, want)
			})
		}
	}
}

func testCreateRunRejects(t *testing.T, s store.Store) {
	tests := []struct {
		name     string
		nr       store.NewRun
		notFound bool
	}{
		{"index gap", store.NewRun{Run: store.Run{Pipeline: "p", Trigger: "manual"},
			Tasks: []store.TaskRow{{Index: 0, TaskID: "a"}, {Index: 2, TaskID: "b"}}}, false},
		{"index order", store.NewRun{Run: store.Run{Pipeline: "p", Trigger: "manual"},
			Tasks: []store.TaskRow{{Index: 1, TaskID: "a"}, {Index: 0, TaskID: "b"}}}, false},
		{"bad params JSON", store.NewRun{Run: store.Run{Pipeline: "p", Trigger: "manual", Params: json.RawMessage(`{"a":`)}}, false},
		{"bad result JSON", store.NewRun{Run: store.Run{Pipeline: "p", Trigger: "manual"},
			Tasks: []store.TaskRow{{Index: 0, TaskID: "a", Task: engine.Task{Result: json.RawMessage(`nope`)}}}}, false},
		{"unknown version", store.NewRun{Run: store.Run{Pipeline: "p", Trigger: "manual", VersionID: 424242}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.CreateRun(t.Context(), tt.nr)
			if err == nil {
				t.Fatal("CreateRun succeeded")
			}
			if got := errors.Is(err, store.ErrNotFound); got != tt.notFound {
				t.Errorf("errors.Is(%v, ErrNotFound) = %v, want %v", err, got, tt.notFound)
			}
		})
	}
	// Nothing of the refused runs is visible.
	if runs, err := s.ListRuns(t.Context(), store.RunFilter{}); err != nil || len(runs) != 0 {
		t.Errorf("after refused CreateRuns, ListRuns = %d runs, %v; want none", len(runs), err)
	}
}

func testScheduledIntervalOnce(t *testing.T, s store.Store) {
	ctx := t.Context()
	sched := func(p, trigger string, start time.Time) store.NewRun {
		nr := newRun(p, 1)
		nr.Run.Trigger = trigger
		nr.Run.IntervalStart = start
		nr.Run.IntervalEnd = start.Add(time.Hour)
		return nr
	}
	mustCreate(t, s, sched("rates", "schedule", t0))
	_, err := s.CreateRun(ctx, sched("rates", "schedule", t0))
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("second scheduled run for the same interval: err = %v, want ErrConflict", err)
	}
	// Other intervals, other pipelines and other triggers are fine.
	mustCreate(t, s, sched("rates", "schedule", t0.Add(time.Hour)))
	mustCreate(t, s, sched("other", "schedule", t0))
	mustCreate(t, s, sched("rates", "backfill", t0))
	mustCreate(t, s, sched("rates", "manual", t0))
	runs, err := s.ListRuns(ctx, store.RunFilter{Pipeline: "rates"})
	if err != nil || len(runs) != 4 {
		t.Errorf("ListRuns(rates) = %d runs, %v; want 4", len(runs), err)
	}
}

func testApplyTasks(t *testing.T, s store.Store) {
	ctx := t.Context()
	tests := []struct {
		name string
		task engine.Task
	}{
		{"zero", engine.Task{State: engine.TaskPending}},
		{"ready", engine.Task{State: engine.TaskReady, PendingNeeds: 0}},
		{"running", engine.Task{State: engine.TaskRunning, Attempt: 1, Spent: 0, StartedAt: t0.In(jst)}},
		{"retry wait", engine.Task{State: engine.TaskRetryWait, Attempt: 2, Spent: 2, ReadyAt: t0.Add(90 * time.Second),
			StartedAt: t0, FinishedAt: t0.Add(time.Nanosecond * 1500), ExitCode: ptr(3), Message: "exit status 3"}},
		{"succeeded exit 0 with result", engine.Task{State: engine.TaskSucceeded, Attempt: 3, Spent: 2,
			StartedAt: t0, FinishedAt: t0.Add(time.Hour), ExitCode: ptr(0),
			Result: json.RawMessage(`{"rows": 1234, "path": "s3://b/k", "ok": true, "list": [1, 2.5, null]}`)}},
		{"negative exit code", engine.Task{State: engine.TaskTimedOut, Attempt: 1, Spent: 1, ExitCode: ptr(-9),
			Message: "killed after 10m: 時間切れ"}},
		{"result scalar", engine.Task{State: engine.TaskSucceeded, Result: json.RawMessage(`"done"`)}},
		{"pending needs", engine.Task{State: engine.TaskPending, PendingNeeds: 1_000_000}},
		{"far future", engine.Task{State: engine.TaskRetryWait, ReadyAt: time.Date(2999, 12, 31, 23, 59, 59, 999999999, time.UTC)}},
		{"before epoch", engine.Task{State: engine.TaskSkipped, StartedAt: time.Date(1969, 7, 20, 20, 17, 40, 123456789, time.UTC)}},
	}
	nr := newRun("p", len(tests))
	r := mustCreate(t, s, nr)
	var tr engine.Transition
	want := make([]store.TaskRow, len(tests))
	for i, tt := range tests {
		tr.Tasks = append(tr.Tasks, engine.TaskChange{Index: i, Task: tt.task})
		w := tt.task
		w.ReadyAt, w.StartedAt, w.FinishedAt = us(w.ReadyAt), us(w.StartedAt), us(w.FinishedAt)
		want[i] = store.TaskRow{RunID: r.ID, Index: i, TaskID: nr.Tasks[i].TaskID, Task: w}
	}
	mustApply(t, s, store.Change{RunID: r.ID, Transition: tr})
	got, err := s.Tasks(ctx, r.ID)
	if err != nil {
		t.Fatalf("Tasks: %v", err)
	}
	if len(got) != len(tests) {
		t.Fatalf("got %d tasks, want %d", len(got), len(tests))
	}
	for i, tt := range tests {
		check(t, tt.name, got[i], want[i])
	}

	// And back: a later change clears what an earlier one set.
	mustApply(t, s, store.Change{RunID: r.ID, Transition: engine.Transition{Tasks: []engine.TaskChange{
		{Index: 4, Task: engine.Task{State: engine.TaskReady, Attempt: 3, Spent: 2}},
	}}})
	got, err = s.Tasks(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "cleared task", got[4], store.TaskRow{RunID: r.ID, Index: 4, TaskID: "t4",
		Task: engine.Task{State: engine.TaskReady, Attempt: 3, Spent: 2}})
	check(t, "untouched task", got[3], want[3])
}

func testApplyRun(t *testing.T, s store.Store) {
	ctx := t.Context()
	tests := []struct {
		name string
		run  engine.Run
	}{
		{"running", engine.Run{State: engine.RunRunning, Remaining: 3, StartedAt: t0.In(jst)}},
		{"cancelling", engine.Run{State: engine.RunRunning, Remaining: 2, Unsuccessful: 1, Cancelling: true, StartedAt: t0}},
		{"finished", engine.Run{State: engine.RunCancelled, Remaining: 0, Unsuccessful: 3, Cancelling: true,
			StartedAt: t0, FinishedAt: t0.Add(1234567891 * time.Nanosecond)}},
		{"reset", engine.Run{State: engine.RunQueued, Remaining: 3}},
	}
	nr := newRun("p", 3)
	nr.Run.Params = json.RawMessage(`{"k":"v"}`)
	r := mustCreate(t, s, nr)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := tt.run
			mustApply(t, s, store.Change{RunID: r.ID, Transition: engine.Transition{Run: &run}})
			got, err := s.Run(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := r
			want.Run = tt.run
			want.StartedAt, want.FinishedAt = us(want.StartedAt), us(want.FinishedAt)
			check(t, "run", got, want)
		})
	}
	// A change without Run leaves the run row alone.
	before, err := s.Run(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, store.Change{RunID: r.ID, Transition: engine.Transition{
		Tasks: []engine.TaskChange{{Index: 0, Task: engine.Task{State: engine.TaskReady}}}}})
	after, err := s.Run(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "run after a task-only change", after, before)
}

func testApplyRecords(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := mustCreate(t, s, newRun("p", 2))
	other := mustCreate(t, s, newRun("p", 2))
	recs := []engine.Record{
		{Time: t0.In(jst), Kind: engine.EvRunStarted, Task: -1},
		{Time: t0.Add(time.Microsecond), Kind: engine.RecTaskReady, Task: 0},
		{Time: t0.Add(2 * time.Second), Kind: engine.EvTaskStarted, Task: 0, Attempt: 1, Actor: "worker-1"},
		{Time: t0.Add(3 * time.Second), Kind: engine.EvTaskFailed, Task: 0, Attempt: 1, ExitCode: ptr(2), Message: "exit status 2"},
		{Time: t0.Add(3 * time.Second), Kind: engine.RecRetryScheduled, Task: 0, Attempt: 1,
			Data: json.RawMessage(`{"ready_at": "2026-03-14T09:27:00Z", "backoff_s": 5}`)},
		{Time: t0.Add(4 * time.Second), Kind: engine.EvTaskSucceeded, Task: 1, Attempt: 1, ExitCode: ptr(0)},
		{Time: t0.Add(5 * time.Second), Kind: engine.EvCancel, Task: -1, Actor: "bob", Message: "wrong params"},
	}
	// Split over two changes of one batch, interleaved with another run's.
	mustApply(t, s,
		store.Change{RunID: r.ID, Transition: engine.Transition{Records: recs[:3]}},
		store.Change{RunID: other.ID, Transition: engine.Transition{Records: []engine.Record{{Time: t0, Kind: engine.EvRunStarted, Task: -1}}}},
		store.Change{RunID: r.ID, Transition: engine.Transition{Records: recs[3:5]}},
	)
	mustApply(t, s, store.Change{RunID: r.ID, Transition: engine.Transition{Records: recs[5:]}})

	evs, err := s.Events(ctx, r.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(recs)+1 {
		t.Fatalf("got %d events, want %d", len(evs), len(recs)+1)
	}
	if evs[0].Kind != store.RecRunCreated {
		t.Errorf("first event is %s, want %s", evs[0].Kind, store.RecRunCreated)
	}
	taskIDs := map[int]string{-1: "", 0: "t0", 1: "t1"}
	for i, rec := range recs {
		got := evs[i+1]
		if got.Seq <= evs[i].Seq {
			t.Errorf("event %d has seq %d after %d", i+1, got.Seq, evs[i].Seq)
		}
		rec.Time = us(rec.Time)
		check(t, fmt.Sprintf("event %d (%s)", i+1, rec.Kind), got,
			store.Event{Seq: got.Seq, RunID: r.ID, TaskID: taskIDs[rec.Task], Record: rec})
	}
	oevs, err := s.Events(ctx, other.ID, 0, 0)
	if err != nil || len(oevs) != 2 {
		t.Errorf("other run's events = %d, %v; want 2 (its own only)", len(oevs), err)
	}
}

func testApplyAttempts(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := mustCreate(t, s, newRun("p", 3))
	a := []store.Attempt{
		{RunID: r.ID, Index: 1, Attempt: 1, Worker: "w1", StartedAt: t0.In(jst)},
		{Index: 0, Attempt: 1, Worker: "w2", StartedAt: t0, FinishedAt: t0.Add(time.Second), Outcome: store.OutcomeFailed,
			ExitCode: ptr(1), Message: "boom", Log: "logs/1/0/1"}, // RunID filled from the change
		{Index: 0, Attempt: 2, Worker: "w2", StartedAt: t0.Add(2 * time.Second)},
	}
	mustApply(t, s, store.Change{RunID: r.ID, Attempts: a})
	// Attempt (1, 1) ends: the same key updates the row.
	done := store.Attempt{RunID: r.ID, Index: 1, Attempt: 1, Worker: "w1", StartedAt: t0, FinishedAt: t0.Add(time.Minute),
		Outcome: store.OutcomeSucceeded, ExitCode: ptr(0), Log: "logs/1/1/1"}
	mustApply(t, s, store.Change{RunID: r.ID, Attempts: []store.Attempt{done}})
	// Attempt (0, 2) is lost: the update names only what it knows; the
	// worker, start time and log stay.
	lost := store.Attempt{Index: 0, Attempt: 2, FinishedAt: t0.Add(time.Hour), Outcome: store.OutcomeLost, Message: "worker vanished"}
	mustApply(t, s, store.Change{RunID: r.ID, Attempts: []store.Attempt{lost}})
	merged := a[2]
	merged.FinishedAt, merged.Outcome, merged.Message = lost.FinishedAt, lost.Outcome, lost.Message

	norm := func(a store.Attempt) store.Attempt {
		a.RunID = r.ID
		a.StartedAt, a.FinishedAt = us(a.StartedAt), us(a.FinishedAt)
		return a
	}
	all, err := s.Attempts(ctx, r.ID, -1)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "all attempts", all, []store.Attempt{norm(a[1]), norm(merged), norm(done)})
	one, err := s.Attempts(ctx, r.ID, 1)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "attempts of task 1", one, []store.Attempt{norm(done)})
	none, err := s.Attempts(ctx, r.ID, 2)
	if err != nil || len(none) != 0 {
		t.Errorf("attempts of task 2 = %v, %v; want none", none, err)
	}
	// Outcomes round-trip.
	for i, o := range []store.Outcome{store.OutcomeTimedOut, store.OutcomeLost, store.OutcomePreempted, store.OutcomeCancelled} {
		mustApply(t, s, store.Change{RunID: r.ID, Attempts: []store.Attempt{{Index: 2, Attempt: i + 1, Outcome: o}}})
	}
	got, err := s.Attempts(ctx, r.ID, 2)
	if err != nil || len(got) != 4 || got[0].Outcome != store.OutcomeTimedOut || got[3].Outcome != store.OutcomeCancelled {
		t.Errorf("attempts with outcomes = %+v, %v", got, err)
	}
}

// snapshot is everything a store holds about one run.
type snapshot struct {
	Run      store.Run
	Tasks    []store.TaskRow
	Attempts []store.Attempt
	Events   []store.Event
}

func take(t *testing.T, s store.Store, id int64) snapshot {
	t.Helper()
	ctx := t.Context()
	var sn snapshot
	var err error
	if sn.Run, err = s.Run(ctx, id); err != nil {
		t.Fatal(err)
	}
	if sn.Tasks, err = s.Tasks(ctx, id); err != nil {
		t.Fatal(err)
	}
	if sn.Attempts, err = s.Attempts(ctx, id, -1); err != nil {
		t.Fatal(err)
	}
	if sn.Events, err = s.Events(ctx, id, 0, 0); err != nil {
		t.Fatal(err)
	}
	return sn
}

func testApplyAtomic(t *testing.T, s store.Store) {
	a := mustCreate(t, s, newRun("p", 3))
	b := mustCreate(t, s, newRun("p", 3))
	// good touches every table of run a and b.
	good := func(id int64) store.Change {
		return store.Change{RunID: id,
			Transition: engine.Transition{
				Run:     &engine.Run{State: engine.RunRunning, Remaining: 3, StartedAt: t0},
				Tasks:   []engine.TaskChange{{Index: 0, Task: engine.Task{State: engine.TaskRunning, Attempt: 1, StartedAt: t0}}},
				Records: []engine.Record{{Time: t0, Kind: engine.EvTaskStarted, Task: 0, Attempt: 1}},
			},
			Attempts: []store.Attempt{{Index: 0, Attempt: 1, Worker: "w", StartedAt: t0}},
		}
	}
	const missing = 987654321
	tests := []struct {
		name     string
		bad      store.Change
		notFound bool
	}{
		{"run update of a missing run", store.Change{RunID: missing, Transition: engine.Transition{Run: &engine.Run{State: engine.RunRunning}}}, true},
		{"task of a missing run", store.Change{RunID: missing, Transition: engine.Transition{Tasks: []engine.TaskChange{{Index: 0}}}}, true},
		{"missing task index", store.Change{RunID: a.ID, Transition: engine.Transition{Tasks: []engine.TaskChange{{Index: 3, Task: engine.Task{State: engine.TaskReady}}}}}, true},
		{"record of a missing run", store.Change{RunID: missing, Transition: engine.Transition{Records: []engine.Record{{Time: t0, Kind: engine.EvCancel, Task: -1}}}}, true},
		{"attempt of a missing task", store.Change{RunID: b.ID, Attempts: []store.Attempt{{Index: 7, Attempt: 1}}}, true},
		{"attempt of a missing run", store.Change{RunID: missing, Attempts: []store.Attempt{{Index: 0, Attempt: 1}}}, true},
		{"invalid result JSON", store.Change{RunID: b.ID, Transition: engine.Transition{Tasks: []engine.TaskChange{{Index: 1, Task: engine.Task{Result: json.RawMessage(`{`)}}}}}, false},
		{"invalid record data", store.Change{RunID: b.ID, Transition: engine.Transition{Records: []engine.Record{{Time: t0, Kind: "x", Task: -1, Data: json.RawMessage(`[1,`)}}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := []snapshot{take(t, s, a.ID), take(t, s, b.ID)}
			err := s.Apply(t.Context(), good(a.ID), good(b.ID), tt.bad)
			if err == nil {
				t.Fatal("Apply succeeded")
			}
			if got := errors.Is(err, store.ErrNotFound); got != tt.notFound {
				t.Errorf("errors.Is(%v, ErrNotFound) = %v, want %v", err, got, tt.notFound)
			}
			check(t, "run a after failed batch", take(t, s, a.ID), before[0])
			check(t, "run b after failed batch", take(t, s, b.ID), before[1])
			// The bad change placed first fails just the same.
			if err := s.Apply(t.Context(), tt.bad, good(a.ID)); err == nil {
				t.Fatal("Apply with the bad change first succeeded")
			}
			check(t, "run a after failed batch (bad first)", take(t, s, a.ID), before[0])
		})
	}
	// The good changes alone land.
	mustApply(t, s, good(a.ID), good(b.ID))
	sn := take(t, s, a.ID)
	if sn.Run.State != engine.RunRunning || sn.Tasks[0].State != engine.TaskRunning || len(sn.Attempts) != 1 || len(sn.Events) != 2 {
		t.Errorf("after the good batch: %+v", sn)
	}
}

func testApplyEmpty(t *testing.T, s store.Store) {
	if err := s.Apply(t.Context()); err != nil {
		t.Errorf("Apply() = %v", err)
	}
	r := mustCreate(t, s, newRun("p", 1))
	if err := s.Apply(t.Context(), store.Change{RunID: r.ID}); err != nil {
		t.Errorf("Apply of an empty change = %v", err)
	}
}

func testListRuns(t *testing.T, s store.Store) {
	ctx := t.Context()
	states := []engine.RunState{engine.RunQueued, engine.RunRunning, engine.RunSucceeded, engine.RunFailed, engine.RunSucceeded}
	var runs []store.Run // in creation order
	for i := range 23 {
		nr := newRun([]string{"a", "b"}[i%2], 1)
		nr.Run.State = states[i%len(states)]
		nr.Run.CreatedAt = t0.Add(time.Duration(i) * time.Minute)
		runs = append(runs, mustCreate(t, s, nr))
	}
	for i := 1; i < len(runs); i++ {
		if runs[i].ID <= runs[i-1].ID {
			t.Fatalf("run IDs not increasing: %d after %d", runs[i].ID, runs[i-1].ID)
		}
	}
	// expect lists the IDs a filter must return, newest first.
	expect := func(f store.RunFilter) []int64 {
		var ids []int64
		for i := len(runs) - 1; i >= 0; i-- {
			r := runs[i]
			if (f.Pipeline == "" || r.Pipeline == f.Pipeline) &&
				(len(f.States) == 0 || slices.Contains(f.States, r.State)) &&
				(f.BeforeID == 0 || r.ID < f.BeforeID) {
				ids = append(ids, r.ID)
			}
		}
		if f.Limit > 0 && len(ids) > f.Limit {
			ids = ids[:f.Limit]
		}
		return ids
	}
	ids := func(rs []store.Run) []int64 {
		var out []int64
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	mid := runs[12].ID
	tests := []struct {
		name string
		f    store.RunFilter
	}{
		{"all", store.RunFilter{}},
		{"pipeline", store.RunFilter{Pipeline: "a"}},
		{"unknown pipeline", store.RunFilter{Pipeline: "zzz"}},
		{"one state", store.RunFilter{States: []engine.RunState{engine.RunSucceeded}}},
		{"two states", store.RunFilter{States: []engine.RunState{engine.RunFailed, engine.RunQueued}}},
		{"repeated state", store.RunFilter{States: []engine.RunState{engine.RunFailed, engine.RunFailed}}},
		{"pipeline and states", store.RunFilter{Pipeline: "b", States: []engine.RunState{engine.RunRunning, engine.RunSucceeded}}},
		{"pipeline and one state", store.RunFilter{Pipeline: "b", States: []engine.RunState{engine.RunSucceeded}}},
		{"cursor", store.RunFilter{BeforeID: mid}},
		{"cursor pipeline states", store.RunFilter{BeforeID: mid, Pipeline: "a", States: []engine.RunState{engine.RunQueued, engine.RunSucceeded}}},
		{"limit", store.RunFilter{Limit: 4}},
		{"limit states", store.RunFilter{Limit: 3, States: []engine.RunState{engine.RunQueued, engine.RunSucceeded, engine.RunRunning}}},
		{"state nobody is in", store.RunFilter{States: []engine.RunState{engine.RunCancelled}}},
		{"cursor before everything", store.RunFilter{BeforeID: runs[0].ID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ListRuns(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			check(t, "IDs", ids(got), expect(tt.f))
		})
	}
	// Full rows come back, not just IDs.
	got, err := s.ListRuns(ctx, store.RunFilter{Limit: 1})
	if err != nil || len(got) != 1 {
		t.Fatalf("ListRuns(limit 1) = %v, %v", got, err)
	}
	check(t, "listed run", got[0], runs[len(runs)-1])

	// Walking pages with the cursor visits every run exactly once, in order.
	for _, f := range []store.RunFilter{{}, {Pipeline: "a"}, {States: []engine.RunState{engine.RunSucceeded, engine.RunQueued}}} {
		want := expect(f)
		var walked []int64
		page := f
		page.Limit = 4
		for range 100 {
			rs, err := s.ListRuns(ctx, page)
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) == 0 {
				break
			}
			walked = append(walked, ids(rs)...)
			page.BeforeID = rs[len(rs)-1].ID
		}
		check(t, fmt.Sprintf("pages of %+v", f), walked, want)
	}
}

func testListRunsLimits(t *testing.T, s store.Store) {
	ctx := t.Context()
	n := store.MaxRunsLimit + 1
	for range n {
		mustCreate(t, s, store.NewRun{Run: store.Run{Pipeline: "p", Trigger: "manual", CreatedAt: t0}})
	}
	tests := []struct {
		limit, want int
	}{
		{0, store.DefaultRunsLimit},
		{-1, store.DefaultRunsLimit},
		{7, 7},
		{store.MaxRunsLimit, store.MaxRunsLimit},
		{store.MaxRunsLimit + 500, store.MaxRunsLimit},
	}
	for _, tt := range tests {
		got, err := s.ListRuns(ctx, store.RunFilter{Limit: tt.limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tt.want {
			t.Errorf("ListRuns(Limit %d) returned %d runs, want %d", tt.limit, len(got), tt.want)
		}
	}
}

func testEventsPaging(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := mustCreate(t, s, newRun("p", 1))
	other := mustCreate(t, s, newRun("p", 1))
	for i := range 10 {
		rec := engine.Record{Time: t0.Add(time.Duration(i) * time.Second), Kind: engine.RecTaskReady, Task: 0, Message: fmt.Sprint(i)}
		mustApply(t, s,
			store.Change{RunID: r.ID, Transition: engine.Transition{Records: []engine.Record{rec}}},
			store.Change{RunID: other.ID, Transition: engine.Transition{Records: []engine.Record{rec}}})
	}
	all, err := s.Events(ctx, r.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 11 {
		t.Fatalf("got %d events, want 11", len(all))
	}
	for i, e := range all {
		if e.RunID != r.ID {
			t.Errorf("event %d belongs to run %d", i, e.RunID)
		}
		if i > 0 && (e.Seq <= all[i-1].Seq || e.Message != fmt.Sprint(i-1)) {
			t.Errorf("event %d = seq %d message %q after seq %d", i, e.Seq, e.Message, all[i-1].Seq)
		}
	}
	var walked []store.Event
	after := int64(0)
	for range 20 {
		page, err := s.Events(ctx, r.ID, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 3 {
			t.Fatalf("page of %d events, limit 3", len(page))
		}
		if len(page) == 0 {
			break
		}
		walked = append(walked, page...)
		after = page[len(page)-1].Seq
	}
	check(t, "paged events", walked, all)
	if tail, err := s.Events(ctx, r.ID, all[len(all)-1].Seq, 0); err != nil || len(tail) != 0 {
		t.Errorf("Events after the last = %v, %v; want none, nil", tail, err)
	}
	if mid, err := s.Events(ctx, r.ID, all[4].Seq, 2); err != nil || len(mid) != 2 || mid[0].Seq != all[5].Seq {
		t.Errorf("Events after seq %d (limit 2) = %+v, %v", all[4].Seq, mid, err)
	}
}

func testNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	const missing = 123456789
	tests := []struct {
		name string
		call func() error
	}{
		{"PipelineVersion", func() error { _, err := s.PipelineVersion(ctx, missing); return err }},
		{"Run", func() error { _, err := s.Run(ctx, missing); return err }},
		{"Tasks", func() error { _, err := s.Tasks(ctx, missing); return err }},
		{"Attempts", func() error { _, err := s.Attempts(ctx, missing, -1); return err }},
		{"Attempts of a task", func() error { _, err := s.Attempts(ctx, missing, 0); return err }},
		{"Events", func() error { _, err := s.Events(ctx, missing, 0, 10); return err }},
		{"Apply", func() error {
			return s.Apply(ctx, store.Change{RunID: missing, Transition: engine.Transition{Run: &engine.Run{State: engine.RunRunning}}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("err = %v, want ErrNotFound", err)
			}
		})
	}
}

func testConcurrentApply(t *testing.T, s store.Store) {
	const writers, steps = 8, 25
	ctx := t.Context()
	ids := make([]int64, writers)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			r, err := s.CreateRun(ctx, newRun(fmt.Sprintf("p%d", w), steps))
			if err != nil {
				errs <- err
				return
			}
			ids[w] = r.ID
			for i := range steps {
				exit := i
				err := s.Apply(ctx, store.Change{RunID: r.ID,
					Transition: engine.Transition{
						Run:     &engine.Run{State: engine.RunRunning, Remaining: steps - i - 1, StartedAt: t0},
						Tasks:   []engine.TaskChange{{Index: i, Task: engine.Task{State: engine.TaskSucceeded, Attempt: 1, Spent: 1, ExitCode: &exit}}},
						Records: []engine.Record{{Time: t0, Kind: engine.EvTaskSucceeded, Task: i, Attempt: 1}},
					},
					Attempts: []store.Attempt{{Index: i, Attempt: 1, Worker: fmt.Sprint(w), Outcome: store.OutcomeSucceeded}},
				})
				if err != nil {
					errs <- fmt.Errorf("writer %d step %d: %w", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for w, id := range ids {
		sn := take(t, s, id)
		if sn.Run.Remaining != 0 || len(sn.Events) != steps+1 || len(sn.Attempts) != steps {
			t.Errorf("writer %d: remaining %d, %d events, %d attempts; want 0, %d, %d",
				w, sn.Run.Remaining, len(sn.Events), len(sn.Attempts), steps+1, steps)
		}
		for i, task := range sn.Tasks {
			if task.State != engine.TaskSucceeded || task.ExitCode == nil || *task.ExitCode != i {
				t.Errorf("writer %d task %d = %+v", w, i, task.Task)
			}
		}
	}
}

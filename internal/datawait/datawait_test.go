package datawait_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/datawait"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
)

// day is the interval the waiting runs cover.
var (
	day0 = time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	day1 = day0.Add(24 * time.Hour)
	jst  = time.FixedZone("JST", 9*3600)
)

// openStore opens a new SQLite store in the test's directory.
func openStore(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "tasuki.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

// run is a run to create: of a pipeline, over an interval (zero: none), in
// a state, with tasks in states.
type run struct {
	pipeline   string
	start, end time.Time
	state      engine.RunState
	tasks      map[string]engine.TaskState
	created    time.Time
}

func create(t *testing.T, st store.Store, r run) store.Run {
	t.Helper()
	nr := store.NewRun{Run: store.Run{Pipeline: r.pipeline, Trigger: store.TriggerManual, IntervalStart: r.start,
		IntervalEnd: r.end, CreatedAt: r.created, Run: engine.Run{State: r.state}}}
	i := 0
	for id, s := range r.tasks {
		nr.Tasks = append(nr.Tasks, store.TaskRow{Index: i, TaskID: id, Task: engine.Task{State: s}})
		i++
	}
	created, err := st.CreateRun(t.Context(), nr)
	if err != nil {
		t.Fatal(err)
	}
	return created
}

// attemptOf is the Spec of an attempt of run r's wait task with body.
func attemptOf(kind string, body string, r store.Run) *attempt.Spec {
	env := map[string]string{"TASUKI_RUN_ID": strconv.FormatInt(r.ID, 10), "TASUKI_PIPELINE": r.Pipeline}
	if !r.IntervalStart.IsZero() {
		// As the runner renders them: in the schedule's zone, to the second.
		env["TASUKI_INTERVAL_START"] = r.IntervalStart.In(jst).Format(time.RFC3339)
		env["TASUKI_INTERVAL_END"] = r.IntervalEnd.In(jst).Format(time.RFC3339)
	}
	return &attempt.Spec{Kind: kind, Body: json.RawMessage(body), Env: env}
}

func jsonEqual(t *testing.T, got json.RawMessage, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("result %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(g, w)
}

func TestPipelineWait(t *testing.T) {
	ok := engine.RunSucceeded
	tests := []struct {
		name  string
		body  string
		self  run    // the waiting run
		runs  []run  // created before it, in order
		after []run  // created after it
		met   int    // 1-based index into runs+after of the run that meets it; 0: not met
		seen  string // %d is the ID of run index seenRun (1-based)
		ofRun int    // which run's ID Seen names
		want  string // the result, with %d for the meeting run's ID
		fail  string // a substring of Fail
	}{
		{name: "no run", body: `{"pipeline": "etl"}`, self: run{pipeline: "report", start: day0, end: day1},
			seen: "no run of etl for 2026-12-07T00:00:00Z"},
		{name: "running", body: `{"pipeline": "etl"}`, self: run{pipeline: "report", start: day0, end: day1},
			runs: []run{{pipeline: "etl", start: day0, end: day1, state: engine.RunRunning}},
			seen: "run %d of etl is running", ofRun: 1},
		{name: "rerun succeeded", body: `{"pipeline": "etl"}`, self: run{pipeline: "report", start: day0, end: day1},
			runs: []run{{pipeline: "etl", start: day0, end: day1, state: engine.RunFailed},
				{pipeline: "etl", start: day0, end: day1, state: ok}},
			met: 2, seen: "run %d of etl is succeeded", ofRun: 2,
			want: `{"run": %d, "pipeline": "etl", "state": "succeeded", "interval_start": "2026-12-07T00:00:00Z", "interval_end": "2026-12-08T00:00:00Z"}`},
		{name: "older success, newer failure", body: `{"pipeline": "etl"}`, self: run{pipeline: "report", start: day0, end: day1},
			runs: []run{{pipeline: "etl", start: day0, end: day1, state: ok},
				{pipeline: "etl", start: day0, end: day1, state: engine.RunFailed}},
			met: 1, seen: "run %d of etl is succeeded", ofRun: 1,
			want: `{"run": %d, "pipeline": "etl", "state": "succeeded", "interval_start": "2026-12-07T00:00:00Z", "interval_end": "2026-12-08T00:00:00Z"}`},
		{name: "succeeded after the waiting run started", body: `{"pipeline": "etl"}`, self: run{pipeline: "report", start: day0, end: day1},
			after: []run{{pipeline: "etl", start: day0, end: day1, state: ok}},
			met:   1, seen: "run %d of etl is succeeded", ofRun: 1,
			want: `{"run": %d, "pipeline": "etl", "state": "succeeded", "interval_start": "2026-12-07T00:00:00Z", "interval_end": "2026-12-08T00:00:00Z"}`},
		{name: "other interval", body: `{"pipeline": "etl"}`, self: run{pipeline: "report", start: day0, end: day1},
			runs: []run{{pipeline: "etl", start: day1, end: day1.Add(24 * time.Hour), state: ok},
				{pipeline: "etl", start: day0.Add(-24 * time.Hour), end: day0, state: ok}},
			seen: "no run of etl for 2026-12-07T00:00:00Z"},
		{name: "same start, other end", body: `{"pipeline": "etl"}`, self: run{pipeline: "report", start: day0, end: day1},
			runs: []run{{pipeline: "etl", start: day0, end: day0.Add(time.Hour), state: ok}},
			seen: "no run of etl for 2026-12-07T00:00:00Z"},
		{name: "other pipeline", body: `{"pipeline": "etl"}`, self: run{pipeline: "report", start: day0, end: day1},
			runs: []run{{pipeline: "etl2", start: day0, end: day1, state: ok}},
			seen: "no run of etl for 2026-12-07T00:00:00Z"},
		{name: "task failed", body: `{"pipeline": "etl", "task": "load"}`, self: run{pipeline: "report", start: day0, end: day1},
			runs: []run{{pipeline: "etl", start: day0, end: day1, state: engine.RunFailed,
				tasks: map[string]engine.TaskState{"extract": engine.TaskSucceeded, "load": engine.TaskFailed}}},
			seen: "task load of run %d is failed", ofRun: 1},
		{name: "task succeeded in a failed run", body: `{"pipeline": "etl", "task": "extract"}`, self: run{pipeline: "report", start: day0, end: day1},
			runs: []run{{pipeline: "etl", start: day0, end: day1, state: engine.RunFailed,
				tasks: map[string]engine.TaskState{"extract": engine.TaskSucceeded, "load": engine.TaskFailed}}},
			met: 1, seen: "task extract of run %d is succeeded", ofRun: 1,
			want: `{"run": %d, "pipeline": "etl", "state": "failed", "task": "extract", "task_state": "succeeded", "interval_start": "2026-12-07T00:00:00Z", "interval_end": "2026-12-08T00:00:00Z"}`},
		{name: "task skipped in an older run", body: `{"pipeline": "etl", "task": "load"}`, self: run{pipeline: "report", start: day0, end: day1},
			runs: []run{{pipeline: "etl", start: day0, end: day1, state: ok, tasks: map[string]engine.TaskState{"load": engine.TaskSkipped}},
				{pipeline: "etl", start: day0, end: day1, state: engine.RunRunning, tasks: map[string]engine.TaskState{"load": engine.TaskRunning}}},
			met: 1, seen: "task load of run %d is skipped", ofRun: 1,
			want: `{"run": %d, "pipeline": "etl", "state": "succeeded", "task": "load", "task_state": "skipped", "interval_start": "2026-12-07T00:00:00Z", "interval_end": "2026-12-08T00:00:00Z"}`},
		{name: "no such task", body: `{"pipeline": "etl", "task": "lod"}`, self: run{pipeline: "report", start: day0, end: day1},
			runs: []run{{pipeline: "etl", start: day0, end: day1, state: ok, tasks: map[string]engine.TaskState{"load": engine.TaskSucceeded}}},
			seen: "run %d of etl has no task lod", ofRun: 1},
		{name: "no interval: newest succeeded", body: `{"pipeline": "etl"}`, self: run{pipeline: "report"},
			runs: []run{{pipeline: "etl", state: engine.RunFailed}, {pipeline: "etl", start: day0, end: day1, state: ok}},
			met:  2, seen: "run %d of etl is succeeded", ofRun: 2,
			want: `{"run": %d, "pipeline": "etl", "state": "succeeded", "interval_start": "2026-12-07T00:00:00Z", "interval_end": "2026-12-08T00:00:00Z"}`},
		{name: "no interval: only the newest counts", body: `{"pipeline": "etl"}`, self: run{pipeline: "report"},
			runs: []run{{pipeline: "etl", state: ok}, {pipeline: "etl", state: engine.RunQueued}},
			seen: "run %d of etl is queued", ofRun: 2},
		{name: "no interval: no run", body: `{"pipeline": "etl", "task": "load"}`, self: run{pipeline: "report"},
			seen: "no run of etl"},
		{name: "no interval: task", body: `{"pipeline": "etl", "task": "load"}`, self: run{pipeline: "report"},
			runs: []run{{pipeline: "etl", state: engine.RunRunning, tasks: map[string]engine.TaskState{"load": engine.TaskSucceeded, "x": engine.TaskRunning}}},
			met:  1, seen: "task load of run %d is succeeded", ofRun: 1,
			want: `{"run": %d, "pipeline": "etl", "state": "running", "task": "load", "task_state": "succeeded"}`},
		// A pipeline waiting on itself waits for another of its runs.
		{name: "itself, no interval", body: `{"pipeline": "report"}`, self: run{pipeline: "report", state: engine.RunRunning},
			runs: []run{{pipeline: "report", state: ok}},
			met:  1, seen: "run %d of report is succeeded", ofRun: 1,
			want: `{"run": %d, "pipeline": "report", "state": "succeeded"}`},
		{name: "itself, same interval", body: `{"pipeline": "report"}`, self: run{pipeline: "report", start: day0, end: day1, state: engine.RunRunning},
			seen: "no run of report for 2026-12-07T00:00:00Z"},
		{name: "bad body", body: `{"pipeline": 1}`, self: run{pipeline: "report"}, fail: "read the pipeline wait"},
		{name: "no pipeline", body: `{}`, self: run{pipeline: "report"}, fail: "names no pipeline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := openStore(t)
			var ids []int64
			for _, r := range tt.runs {
				ids = append(ids, create(t, st, r).ID)
			}
			self := create(t, st, tt.self)
			for _, r := range tt.after {
				ids = append(ids, create(t, st, r).ID)
			}
			w := datawait.Pipeline{Store: st}
			obs := w.Check(t.Context(), attemptOf(w.Name(), tt.body, self), &attempt.Host{}, nil)
			if tt.fail != "" {
				if !strings.Contains(obs.Fail, tt.fail) || obs.Met {
					t.Errorf("observation %+v, want a failure saying %q", obs, tt.fail)
				}
				return
			}
			seen := tt.seen
			if tt.ofRun > 0 {
				seen = fmt.Sprintf(seen, ids[tt.ofRun-1])
			}
			if obs.Met != (tt.met > 0) || obs.Seen != seen || obs.Fail != "" {
				t.Errorf("observation %+v (result %s), want met %v seeing %q", obs, obs.Result, tt.met > 0, seen)
			}
			if tt.met > 0 && !jsonEqual(t, obs.Result, fmt.Sprintf(tt.want, ids[tt.met-1])) {
				t.Errorf("result %s, want %s", obs.Result, fmt.Sprintf(tt.want, ids[tt.met-1]))
			}
			// The same store, the same observation: nothing in it varies.
			again := w.Check(t.Context(), attemptOf(w.Name(), tt.body, self), &attempt.Host{}, obs.Memo)
			if again.Seen != obs.Seen || again.Met != obs.Met {
				t.Errorf("second check %+v, first %+v", again, obs)
			}
		})
	}
}

func TestBadInterval(t *testing.T) {
	st := openStore(t)
	for _, c := range []attempt.Condition{datawait.Pipeline{Store: st}, datawait.Dataset{Store: st}} {
		s := &attempt.Spec{Kind: c.Name(), Body: json.RawMessage(`{"pipeline": "etl", "dataset": "d"}`),
			Env: map[string]string{"TASUKI_RUN_ID": "1", "TASUKI_INTERVAL_START": "yesterday"}}
		obs := c.Check(t.Context(), s, &attempt.Host{}, nil)
		if obs.Met || !strings.Contains(obs.Fail, `TASUKI_INTERVAL_START is not an RFC 3339 time: "yesterday"`) {
			t.Errorf("%s: %+v", c.Name(), obs)
		}
	}
}

// countingStore counts the reads of runs, to show that the dataset wait
// reads its run once per attempt.
type countingStore struct {
	datawait.DatasetStore
	runs int
}

func (c *countingStore) Run(ctx context.Context, id int64) (store.Run, error) {
	c.runs++
	return c.DatasetStore.Run(ctx, id)
}

func TestDatasetWait(t *testing.T) {
	ctx := t.Context()
	st := openStore(t)
	record := func(d string, at time.Time, meta string) store.DatasetUpdate {
		t.Helper()
		u, err := st.RecordDatasetUpdate(ctx, store.DatasetUpdate{Dataset: d, At: at, Actor: "alice", Metadata: json.RawMessage(meta)})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	w := datawait.Dataset{Store: st}
	daily := create(t, st, run{pipeline: "report", start: day0, end: day1})
	s := attemptOf(w.Name(), `{"dataset": "raw.orders"}`, daily)

	// Updates before the interval, or of another dataset, do not count.
	record("raw.orders", day0.Add(-time.Microsecond), "")
	record("raw.customers", day0.Add(time.Hour), "")
	obs := w.Check(ctx, s, &attempt.Host{}, nil)
	if obs.Met || obs.Seen != "no update of raw.orders since 2026-12-07T00:00:00Z" || obs.Fail != "" {
		t.Errorf("before any update in the interval: %+v", obs)
	}
	// One at the start counts; the newest is the result.
	first := record("raw.orders", day0, `{"rows": 10}`)
	obs = w.Check(ctx, s, &attempt.Host{}, obs.Memo)
	if !obs.Met || obs.Seen != fmt.Sprintf("update %d of raw.orders at 2026-12-07T00:00:00Z", first.ID) {
		t.Errorf("after an update at the start: %+v", obs)
	}
	second := record("raw.orders", day0.Add(90*time.Minute+500*time.Millisecond), `{"rows": 12}`)
	obs = w.Check(ctx, s, &attempt.Host{}, obs.Memo)
	want := fmt.Sprintf(`{"id": %d, "dataset": "raw.orders", "at": "2026-12-07T01:30:00.5Z", "metadata": {"rows": 12}}`, second.ID)
	if !obs.Met || !jsonEqual(t, obs.Result, want) {
		t.Errorf("after a second update: %+v, result %s; want %s", obs, obs.Result, want)
	}

	// A task's update carries its run, pipeline and task.
	producer := create(t, st, run{pipeline: "etl", start: day0, end: day1, state: engine.RunRunning,
		tasks: map[string]engine.TaskState{"load": engine.TaskRunning}})
	err := st.Apply(ctx, store.Change{RunID: producer.ID, DatasetUpdates: []store.DatasetUpdate{
		{Dataset: "mart.sales", At: day0.Add(2 * time.Hour), Pipeline: "etl", TaskID: "load"}}})
	if err != nil {
		t.Fatal(err)
	}
	obs = w.Check(ctx, attemptOf(w.Name(), `{"dataset": "mart.sales"}`, daily), &attempt.Host{}, nil)
	want = fmt.Sprintf(`{"id": %d, "dataset": "mart.sales", "at": "2026-12-07T02:00:00Z", "run": %d, "pipeline": "etl", "task": "load"}`,
		second.ID+1, producer.ID)
	if !obs.Met || !jsonEqual(t, obs.Result, want) {
		t.Errorf("update by a task: %+v, result %s; want %s", obs, obs.Result, want)
	}

	// A run without an interval counts from its creation, reading the run
	// once per attempt.
	created := time.Date(2026, 12, 9, 8, 30, 15, 250000000, time.UTC)
	manual := create(t, st, run{pipeline: "report", created: created})
	cs := &countingStore{DatasetStore: st}
	mw := datawait.Dataset{Store: cs}
	ms := attemptOf(mw.Name(), `{"dataset": "raw.orders"}`, manual)
	obs = mw.Check(ctx, ms, &attempt.Host{}, nil)
	if obs.Met || obs.Seen != "no update of raw.orders since 2026-12-09T08:30:15.25Z" {
		t.Errorf("no update since the run was created: %+v", obs)
	}
	obs = mw.Check(ctx, ms, &attempt.Host{}, obs.Memo)
	if obs.Met || obs.Seen != "no update of raw.orders since 2026-12-09T08:30:15.25Z" {
		t.Errorf("second check: %+v", obs)
	}
	late := record("raw.orders", created.Add(time.Second), `{"late": true}`)
	obs = mw.Check(ctx, ms, &attempt.Host{}, obs.Memo)
	if !obs.Met || !jsonEqual(t, obs.Result, fmt.Sprintf(`{"id": %d, "dataset": "raw.orders", "at": "2026-12-09T08:30:16.25Z", "metadata": {"late": true}}`, late.ID)) {
		t.Errorf("after an update: %+v, result %s", obs, obs.Result)
	}
	if cs.runs != 1 {
		t.Errorf("the run was read %d times in three checks, want once", cs.runs)
	}

	// What cannot hold fails; a stopped check does not.
	for _, tt := range []struct {
		name string
		s    *attempt.Spec
		fail string
	}{
		{"no run", &attempt.Spec{Kind: w.Name(), Body: json.RawMessage(`{"dataset": "d"}`)}, "the attempt has no run (TASUKI_RUN_ID is not set)"},
		{"unknown run", &attempt.Spec{Kind: w.Name(), Body: json.RawMessage(`{"dataset": "d"}`), Env: map[string]string{"TASUKI_RUN_ID": "999"}},
			"run 999 of the attempt does not exist"},
		{"bad run", &attempt.Spec{Kind: w.Name(), Body: json.RawMessage(`{"dataset": "d"}`), Env: map[string]string{"TASUKI_RUN_ID": "x"}},
			`TASUKI_RUN_ID is not a run ID: "x"`},
		{"no dataset", &attempt.Spec{Kind: w.Name(), Body: json.RawMessage(`{}`)}, "names no dataset"},
		{"bad body", &attempt.Spec{Kind: w.Name(), Body: json.RawMessage(`[`)}, "read the dataset wait"},
	} {
		if obs := w.Check(ctx, tt.s, &attempt.Host{}, nil); obs.Met || !strings.Contains(obs.Fail, tt.fail) {
			t.Errorf("%s: %+v, want a failure saying %q", tt.name, obs, tt.fail)
		}
	}
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	if obs := w.Check(stopped, s, &attempt.Host{}, nil); obs.Met || obs.Fail != "" || obs.Seen != "the check was stopped" {
		t.Errorf("stopped check: %+v", obs)
	}
}

// TestRegistry checks the conditions through the seam the executors use:
// the kinds the pipeline format names, the bodies built from a task, and
// the checks.
func TestRegistry(t *testing.T) {
	st := openStore(t)
	reg, err := attempt.Builtin().With(datawait.Pipeline{Store: st}, datawait.Dataset{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	self := create(t, st, run{pipeline: "report", start: day0, end: day1})
	up := create(t, st, run{pipeline: "etl", start: day0, end: day1, state: engine.RunSucceeded})
	if _, err := st.RecordDatasetUpdate(t.Context(), store.DatasetUpdate{Dataset: "raw.orders", At: day0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	env := attemptOf("", "", self).Env
	for _, tt := range []struct {
		wait spec.Wait
		kind string
		body string
	}{
		{wait: spec.Wait{Pipeline: "etl"}, kind: "wait.pipeline", body: `{"pipeline": "etl"}`},
		{wait: spec.Wait{Pipeline: "etl", Task: "load"}, kind: "wait.pipeline", body: `{"pipeline": "etl", "task": "load"}`},
		{wait: spec.Wait{Dataset: "raw.orders"}, kind: "wait.dataset", body: `{"dataset": "raw.orders"}`},
	} {
		task := spec.Task{ID: "w", Wait: &tt.wait}
		s, err := reg.Describe(&task, env, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s.Kind != tt.kind || !jsonEqual(t, s.Body, tt.body) {
			t.Errorf("%+v: kind %q body %s, want %q %s", tt.wait, s.Kind, s.Body, tt.kind, tt.body)
		}
		if !reg.IsCondition(s.Kind) {
			t.Errorf("%s is not a condition of the registry", s.Kind)
		}
		obs := reg.Check(t.Context(), &s, &attempt.Host{}, nil)
		if tt.wait.Task != "" {
			// etl's run has no task load.
			if obs.Met || obs.Seen != fmt.Sprintf("run %d of etl has no task load", up.ID) {
				t.Errorf("%+v: %+v", tt.wait, obs)
			}
			continue
		}
		if !obs.Met {
			t.Errorf("%+v: %+v", tt.wait, obs)
		}
	}
	for _, c := range []attempt.Condition{datawait.Pipeline{}, datawait.Dataset{}} {
		if _, err := c.Body(&spec.Task{ID: "x", Run: spec.Command{Shell: "true"}}); err == nil {
			t.Errorf("%s: Body of a task that does not wait succeeded", c.Name())
		}
		s := &attempt.Spec{Kind: c.Name(), Body: json.RawMessage(`{"pipeline": "etl", "dataset": "d"}`)}
		if obs := c.Check(t.Context(), s, &attempt.Host{}, nil); !strings.Contains(obs.Fail, "no store") {
			t.Errorf("%s without a store: %+v", c.Name(), obs)
		}
	}
}

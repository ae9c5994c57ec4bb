package storetest

import (
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

// Datasets: their updates (recorded alone or with a task's success), the
// pipelines' dataset cursors and the compare-and-set that starts one run per
// set of updates, and the runs of one interval.

func mustRecord(t *testing.T, s store.Store, u store.DatasetUpdate) store.DatasetUpdate {
	t.Helper()
	got, err := s.RecordDatasetUpdate(t.Context(), u)
	if err != nil {
		t.Fatalf("RecordDatasetUpdate(%q): %v", u.Dataset, err)
	}
	return got
}

func mustUpdates(t *testing.T, s store.Store, f store.DatasetUpdateFilter) []store.DatasetUpdate {
	t.Helper()
	us, err := s.DatasetUpdates(t.Context(), f)
	if err != nil {
		t.Fatalf("DatasetUpdates(%+v): %v", f, err)
	}
	return us
}

func mustLatest(t *testing.T, s store.Store, names ...string) map[string]store.DatasetUpdate {
	t.Helper()
	m, err := s.LatestDatasetUpdates(t.Context(), names)
	if err != nil {
		t.Fatalf("LatestDatasetUpdates(%q): %v", names, err)
	}
	return m
}

func updateIDs(us []store.DatasetUpdate) []int64 {
	out := []int64{}
	for _, u := range us {
		out = append(out, u.ID)
	}
	return out
}

// reversed returns a reversed copy of ids.
func reversed(ids []int64) []int64 {
	out := slices.Clone(ids)
	slices.Reverse(out)
	return out
}

func testDatasetUpdates(t *testing.T, s store.Store) {
	ctx := t.Context()
	// Every field round-trips, in another zone and with nanoseconds.
	full := store.DatasetUpdate{Dataset: "raw.orders", At: t0.In(jst), RunID: 42, Pipeline: "etl", TaskID: "load",
		IntervalStart: t0.Add(-time.Hour).In(jst), IntervalEnd: t0, Metadata: json.RawMessage(`{"rows": 1200, "path": "s3://b/k"}`)}
	u1 := mustRecord(t, s, full)
	if u1.ID <= 0 {
		t.Fatalf("ID = %d, want one assigned", u1.ID)
	}
	want := full
	want.ID, want.At, want.IntervalStart, want.IntervalEnd = u1.ID, us(t0), us(t0.Add(-time.Hour)), us(t0)
	check(t, "recorded update", u1, want)
	check(t, "read back", mustUpdates(t, s, store.DatasetUpdateFilter{Dataset: "raw.orders"}), []store.DatasetUpdate{want})

	// An external update: no run, an actor; a zero At is now.
	before := time.Now().Add(-time.Second)
	ext := mustRecord(t, s, store.DatasetUpdate{Dataset: "raw.orders", Actor: "alice"})
	if ext.At.Before(before) || ext.At.After(time.Now().Add(time.Second)) || ext.At.Location() != time.UTC {
		t.Errorf("At of an update recorded without one = %v, want about now in UTC", ext.At)
	}
	if ext.ID <= u1.ID {
		t.Errorf("second ID %d not after first %d", ext.ID, u1.ID)
	}
	check(t, "external update read back", mustUpdates(t, s, store.DatasetUpdateFilter{Dataset: "raw.orders", Limit: 1})[0], ext)

	// A history over two datasets, interleaved; At out of ID order for
	// some (a backdated external update).
	ids := map[string][]int64{"raw.orders": {u1.ID, ext.ID}}
	at := map[int64]time.Time{u1.ID: us(t0), ext.ID: ext.At}
	for i := range 30 {
		d := []string{"raw.orders", "mart.sales"}[i%3%2]
		when := t0.Add(time.Duration(i) * time.Minute)
		if i == 20 {
			when = t0.Add(-48 * time.Hour)
		}
		u := mustRecord(t, s, store.DatasetUpdate{Dataset: d, At: when, RunID: int64(100 + i), Pipeline: "p", TaskID: "t"})
		ids[d] = append(ids[d], u.ID)
		at[u.ID] = u.At
	}
	for _, d := range []string{"raw.orders", "mart.sales"} {
		all := ids[d]
		if !slices.IsSorted(all) {
			t.Fatalf("%s: IDs %v not increasing", d, all)
		}
		tests := []struct {
			name string
			f    store.DatasetUpdateFilter
			want []int64
		}{
			{"newest first", store.DatasetUpdateFilter{}, reversed(all)},
			{"oldest first", store.DatasetUpdateFilter{Ascending: true}, all},
			{"limit", store.DatasetUpdateFilter{Limit: 3}, reversed(all)[:3]},
			{"before", store.DatasetUpdateFilter{BeforeID: all[5], Limit: 2}, []int64{all[4], all[3]}},
			{"after ascending", store.DatasetUpdateFilter{AfterID: all[5], Ascending: true, Limit: 2}, []int64{all[6], all[7]}},
			{"between", store.DatasetUpdateFilter{AfterID: all[2], BeforeID: all[5]}, []int64{all[4], all[3]}},
			{"before the first", store.DatasetUpdateFilter{BeforeID: all[0]}, []int64{}},
			{"after the last", store.DatasetUpdateFilter{AfterID: all[len(all)-1]}, []int64{}},
		}
		// Since selects by At, whatever the ID order, to the microsecond.
		since := t0.Add(10 * time.Minute)
		var wantSince []int64
		for _, id := range all {
			if !at[id].Before(us(since)) {
				wantSince = append(wantSince, id)
			}
		}
		tests = append(tests,
			struct {
				name string
				f    store.DatasetUpdateFilter
				want []int64
			}{"since", store.DatasetUpdateFilter{Since: since.In(jst)}, reversed(wantSince)},
			struct {
				name string
				f    store.DatasetUpdateFilter
				want []int64
			}{"since ascending paged", store.DatasetUpdateFilter{Since: since, Ascending: true, AfterID: wantSince[0], Limit: 2}, wantSince[1:3]},
			struct {
				name string
				f    store.DatasetUpdateFilter
				want []int64
			}{"since the future", store.DatasetUpdateFilter{Since: t0.AddDate(100, 0, 0)}, []int64{}},
		)
		for _, tt := range tests {
			t.Run(d+"/"+tt.name, func(t *testing.T) {
				tt.f.Dataset = d
				got := mustUpdates(t, s, tt.f)
				check(t, "IDs", updateIDs(got), tt.want)
				for _, u := range got {
					if u.Dataset != d {
						t.Errorf("update %d is of %q", u.ID, u.Dataset)
					}
				}
			})
		}
	}
	// Since is inclusive, to the microsecond.
	mustRecord(t, s, store.DatasetUpdate{Dataset: "exact", At: t0})
	for _, tt := range []struct {
		since time.Time
		n     int
	}{{t0, 1}, {us(t0), 1}, {us(t0).Add(time.Microsecond), 0}, {us(t0).Add(-time.Microsecond), 1}} {
		if got := mustUpdates(t, s, store.DatasetUpdateFilter{Dataset: "exact", Since: tt.since}); len(got) != tt.n {
			t.Errorf("since %s: %d updates, want %d", tt.since.Format(time.RFC3339Nano), len(got), tt.n)
		}
	}

	if got := mustUpdates(t, s, store.DatasetUpdateFilter{Dataset: "nothing"}); len(got) != 0 {
		t.Errorf("updates of an unknown dataset: %v", got)
	}
	if _, err := s.DatasetUpdates(ctx, store.DatasetUpdateFilter{}); err == nil {
		t.Error("DatasetUpdates without a dataset succeeded")
	}
}

func testDatasetUpdatesLimits(t *testing.T, s store.Store) {
	const n = store.MaxDatasetUpdatesLimit + 5
	r := mustCreate(t, s, newRun("p", 1))
	// One Apply writes them all, in the order given.
	c := store.Change{RunID: r.ID}
	for i := range n {
		c.DatasetUpdates = append(c.DatasetUpdates, store.DatasetUpdate{Dataset: "big", At: t0.Add(time.Duration(i) * time.Second)})
	}
	mustApply(t, s, c)
	for _, tt := range []struct{ limit, want int }{{0, store.DefaultDatasetUpdatesLimit}, {-1, store.DefaultDatasetUpdatesLimit},
		{7, 7}, {n, store.MaxDatasetUpdatesLimit}} {
		got := mustUpdates(t, s, store.DatasetUpdateFilter{Dataset: "big", Limit: tt.limit, Ascending: true})
		if len(got) != tt.want {
			t.Errorf("limit %d: %d updates, want %d", tt.limit, len(got), tt.want)
			continue
		}
		for i, u := range got {
			if !u.At.Equal(t0.Add(time.Duration(i)*time.Second).Truncate(time.Microsecond)) || u.RunID != r.ID {
				t.Fatalf("limit %d: update %d = %+v, want the %dth given", tt.limit, i, u, i)
			}
		}
	}
}

func testDatasetUpdateRejects(t *testing.T, s store.Store) {
	ctx := t.Context()
	tests := []struct {
		name string
		u    store.DatasetUpdate
	}{
		{"no dataset", store.DatasetUpdate{}},
		{"dataset not text", store.DatasetUpdate{Dataset: "a\xffb"}},
		{"dataset with NUL", store.DatasetUpdate{Dataset: "a\x00b"}},
		{"pipeline not text", store.DatasetUpdate{Dataset: "d", Pipeline: "p\xff"}},
		{"task not text", store.DatasetUpdate{Dataset: "d", TaskID: "t\x00"}},
		{"negative run", store.DatasetUpdate{Dataset: "d", RunID: -1}},
		{"malformed metadata", store.DatasetUpdate{Dataset: "d", Metadata: json.RawMessage(`{"rows": `)}},
		{"metadata array", store.DatasetUpdate{Dataset: "d", Metadata: json.RawMessage(`[1, 2]`)}},
		{"metadata string", store.DatasetUpdate{Dataset: "d", Metadata: json.RawMessage(`"done"`)}},
		{"metadata null", store.DatasetUpdate{Dataset: "d", Metadata: json.RawMessage(`null`)}},
		{"metadata with \\u0000", store.DatasetUpdate{Dataset: "d", Metadata: json.RawMessage(`{"a": "x\u0000"}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if u, err := s.RecordDatasetUpdate(ctx, tt.u); err == nil {
				t.Errorf("RecordDatasetUpdate succeeded: %+v", u)
			}
			if err := store.PrepareDatasetUpdate(&tt.u); err == nil {
				t.Error("PrepareDatasetUpdate accepted it")
			}
		})
	}
	if got := mustLatest(t, s); len(got) != 0 {
		t.Errorf("refused updates were written: %v", got)
	}
	// Free text is kept storable rather than refused; metadata keeps its
	// value (PostgreSQL's jsonb reformats it).
	u := mustRecord(t, s, store.DatasetUpdate{Dataset: "d", Actor: "bob\x00\xff", Metadata: json.RawMessage(" {\"a\": [1, {}]} ")})
	if u.Actor != "bob\uFFFD\uFFFD" {
		t.Errorf("Actor = %q, want NUL and invalid UTF-8 replaced", u.Actor)
	}
	check(t, "read back", mustUpdates(t, s, store.DatasetUpdateFilter{Dataset: "d"}), []store.DatasetUpdate{u})
}

func testLatestDatasetUpdates(t *testing.T, s store.Store) {
	if got := mustLatest(t, s); len(got) != 0 {
		t.Errorf("latest of an empty store: %v", got)
	}
	if got := mustLatest(t, s, "a", "b"); len(got) != 0 {
		t.Errorf("latest of unknown datasets: %v", got)
	}
	latest := map[string]store.DatasetUpdate{}
	names := []string{"a", "b", "c.d", "é", "B"}
	for i := range 40 {
		d := names[i*7%len(names)]
		// The newest of a dataset by ID, not by At.
		latest[d] = mustRecord(t, s, store.DatasetUpdate{Dataset: d, At: t0.Add(-time.Duration(i) * time.Hour), TaskID: fmt.Sprint(i)})
	}
	check(t, "latest of all", mustLatest(t, s), latest)
	check(t, "latest of all (empty list)", mustLatest(t, s, []string{}...), latest)
	check(t, "latest of some", mustLatest(t, s, "é", "a", "a", "nope", "", "b\xff"),
		map[string]store.DatasetUpdate{"a": latest["a"], "é": latest["é"]})
	check(t, "latest of none that exist", mustLatest(t, s, "x", ""), map[string]store.DatasetUpdate{})

	// A new update becomes the latest.
	nu := mustRecord(t, s, store.DatasetUpdate{Dataset: "b", At: t0.Add(-1000 * time.Hour)})
	check(t, "latest after an update", mustLatest(t, s, "b", "B"), map[string]store.DatasetUpdate{"b": nu, "B": latest["B"]})
}

// datasetChange is a task's success with updates of the datasets it
// produced.
func datasetChange(runID int64, task int, datasets ...string) store.Change {
	c := store.Change{RunID: runID, Transition: engine.Transition{
		Tasks:   []engine.TaskChange{{Index: task, Task: engine.Task{State: engine.TaskSucceeded, Attempt: 1, FinishedAt: t0}}},
		Records: []engine.Record{{Time: t0, Kind: engine.EvTaskSucceeded, Task: task, Attempt: 1}},
	}}
	for _, d := range datasets {
		c.DatasetUpdates = append(c.DatasetUpdates, store.DatasetUpdate{Dataset: d, At: t0, Pipeline: "p",
			TaskID: fmt.Sprintf("t%d", task), Metadata: json.RawMessage(`{"task": ` + fmt.Sprint(task) + `}`)})
	}
	return c
}

func testApplyDatasetUpdates(t *testing.T, s store.Store) {
	ctx := t.Context()
	nr := newRun("p", 3)
	nr.Run.IntervalStart, nr.Run.IntervalEnd = t0.Add(-time.Hour), t0
	r := mustCreate(t, s, nr)
	other := mustCreate(t, s, newRun("p", 3))

	// A task's success and its updates land together; RunID 0 becomes the
	// change's.
	c := datasetChange(r.ID, 0, "x", "y")
	c.DatasetUpdates[0].IntervalStart, c.DatasetUpdates[0].IntervalEnd = r.IntervalStart, r.IntervalEnd
	c.DatasetUpdates[1].RunID = r.ID
	mustApply(t, s, c)
	xs := mustUpdates(t, s, store.DatasetUpdateFilter{Dataset: "x"})
	ys := mustUpdates(t, s, store.DatasetUpdateFilter{Dataset: "y"})
	if len(xs) != 1 || len(ys) != 1 {
		t.Fatalf("after Apply: %d updates of x, %d of y; want 1 each", len(xs), len(ys))
	}
	want := store.DatasetUpdate{ID: xs[0].ID, Dataset: "x", At: us(t0), RunID: r.ID, Pipeline: "p", TaskID: "t0",
		IntervalStart: us(r.IntervalStart), IntervalEnd: us(r.IntervalEnd), Metadata: json.RawMessage(`{"task": 0}`)}
	check(t, "update of x", xs[0], want)
	if ys[0].ID <= xs[0].ID || ys[0].RunID != r.ID {
		t.Errorf("update of y = %+v; want an ID after x's %d and run %d", ys[0], xs[0].ID, r.ID)
	}
	if st := take(t, s, r.ID).Tasks[0].State; st != engine.TaskSucceeded {
		t.Errorf("task state %s after Apply, want succeeded", st)
	}

	// A change of nothing but updates needs its run to exist.
	mustApply(t, s, store.Change{RunID: other.ID, DatasetUpdates: []store.DatasetUpdate{{Dataset: "z"}}})
	if got := mustLatest(t, s, "z"); got["z"].RunID != other.ID {
		t.Errorf("update of z = %+v, want run %d", got["z"], other.ID)
	}

	// A batch that fails writes no update, whichever change fails.
	const missing = 987654321
	latest := mustLatest(t, s)
	tests := []struct {
		name     string
		batch    []store.Change
		notFound bool
	}{
		{"missing task after the updates", []store.Change{datasetChange(other.ID, 1, "x"),
			{RunID: other.ID, Transition: engine.Transition{Tasks: []engine.TaskChange{{Index: 9, Task: engine.Task{State: engine.TaskReady}}}}}}, true},
		{"missing task before the updates", []store.Change{
			{RunID: other.ID, Transition: engine.Transition{Tasks: []engine.TaskChange{{Index: 9, Task: engine.Task{State: engine.TaskReady}}}}},
			datasetChange(other.ID, 1, "x")}, true},
		{"updates of a missing run", []store.Change{datasetChange(other.ID, 1, "y"),
			{RunID: missing, DatasetUpdates: []store.DatasetUpdate{{Dataset: "x"}}}}, true},
		{"updates naming another run", []store.Change{{RunID: other.ID, DatasetUpdates: []store.DatasetUpdate{{Dataset: "x", RunID: r.ID}}}}, false},
		{"bad metadata", []store.Change{datasetChange(other.ID, 1, "y"),
			{RunID: other.ID, DatasetUpdates: []store.DatasetUpdate{{Dataset: "x", Metadata: json.RawMessage(`[]`)}}}}, false},
		{"no dataset name", []store.Change{{RunID: other.ID, DatasetUpdates: []store.DatasetUpdate{{}}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := take(t, s, other.ID)
			err := s.Apply(ctx, tt.batch...)
			if err == nil {
				t.Fatal("Apply succeeded")
			}
			if errors.Is(err, store.ErrNotFound) != tt.notFound {
				t.Errorf("err = %v; want ErrNotFound %v", err, tt.notFound)
			}
			check(t, "latest updates after the failed batch", mustLatest(t, s), latest)
			check(t, "run after the failed batch", take(t, s, other.ID), before)
		})
	}

	// ApplyFenced writes them too, and a stale fence writes none.
	a := mustAcquire(t, s, "a", t0)
	if err := s.ApplyFenced(ctx, store.Fence{Holder: "b", Term: a.Term}, datasetChange(other.ID, 2, "x")); !errors.Is(err, store.ErrFenced) {
		t.Errorf("ApplyFenced with a stale fence = %v, want ErrFenced", err)
	}
	check(t, "latest updates after a fenced batch", mustLatest(t, s), latest)
	if err := s.ApplyFenced(ctx, a.Fence(), datasetChange(other.ID, 2, "x")); err != nil {
		t.Fatalf("ApplyFenced: %v", err)
	}
	if got := mustLatest(t, s, "x")["x"]; got.RunID != other.ID || got.TaskID != "t2" {
		t.Errorf("latest update of x after ApplyFenced = %+v", got)
	}
	// The caller's change is left as given.
	c = datasetChange(other.ID, 1, "w")
	mustApply(t, s, c)
	if u := c.DatasetUpdates[0]; u.RunID != 0 || u.ID != 0 {
		t.Errorf("Apply changed the caller's update: %+v", u)
	}
}

// testDatasetUpdatesVisibleInOrder has writers record updates of one dataset
// at once while a reader follows them with an ID cursor, as a scheduler
// does: an ID the reader has passed must never be committed afterwards, or
// the update would never be consumed.
func testDatasetUpdatesVisibleInOrder(t *testing.T, s store.Store) {
	const writers, each = 6, 15
	ctx := t.Context()
	var runs []int64
	for range writers {
		runs = append(runs, mustCreate(t, s, newRun("p", 1)).ID)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				var err error
				if i%2 == 0 {
					_, err = s.RecordDatasetUpdate(ctx, store.DatasetUpdate{Dataset: "d", Actor: fmt.Sprint(w)})
				} else {
					err = s.Apply(ctx, store.Change{RunID: runs[w], DatasetUpdates: []store.DatasetUpdate{{Dataset: "d"}, {Dataset: "other"}}})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var seen []int64
	var cursor int64
	follow := func() {
		page := mustUpdates(t, s, store.DatasetUpdateFilter{Dataset: "d", AfterID: cursor, Ascending: true, Limit: store.MaxDatasetUpdatesLimit})
		for _, u := range page {
			seen = append(seen, u.ID)
			cursor = u.ID
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		follow()
	}
	follow()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all := updateIDs(mustUpdates(t, s, store.DatasetUpdateFilter{Dataset: "d", Ascending: true, Limit: store.MaxDatasetUpdatesLimit}))
	if len(all) != writers*each {
		t.Fatalf("%d updates of d, want %d", len(all), writers*each)
	}
	check(t, "IDs the follower saw", seen, all)
}

func testDatasetCursor(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustPutState(t, s, store.PipelineState{Name: "p", UpdatedAt: t0})
	if c := mustState(t, s, "p").DatasetCursor; c != nil {
		t.Fatalf("cursor of a new pipeline = %v, want nil", c)
	}
	steps := []struct {
		name         string
		expect, next map[string]int64
		conflict     bool
		want         map[string]int64
	}{
		{"from unset", nil, map[string]int64{"a": 3, "b": 1}, false, map[string]int64{"a": 3, "b": 1}},
		{"stale unset", map[string]int64{}, map[string]int64{"a": 9}, true, map[string]int64{"a": 3, "b": 1}},
		{"stale value", map[string]int64{"a": 2, "b": 1}, map[string]int64{"a": 9}, true, map[string]int64{"a": 3, "b": 1}},
		{"missing key", map[string]int64{"a": 3}, map[string]int64{"a": 9}, true, map[string]int64{"a": 3, "b": 1}},
		{"extra key", map[string]int64{"a": 3, "b": 1, "c": 1}, map[string]int64{"a": 9}, true, map[string]int64{"a": 3, "b": 1}},
		// Zero entries are no entries, on both sides.
		{"zero entry", map[string]int64{"b": 1, "a": 3, "c": 0}, map[string]int64{"a": 4, "b": 1, "c": 0}, false, map[string]int64{"a": 4, "b": 1}},
		{"new key", map[string]int64{"a": 4, "b": 1}, map[string]int64{"a": 4, "b": 1, "c": 7}, false, map[string]int64{"a": 4, "b": 1, "c": 7}},
		{"to unset", map[string]int64{"c": 7, "b": 1, "a": 4}, map[string]int64{"a": 0}, false, nil},
		{"from unset again", map[string]int64{"a": 0}, map[string]int64{"x": 1 << 60}, false, map[string]int64{"x": 1 << 60}},
	}
	for _, st := range steps {
		err := s.SetDatasetCursor(ctx, "p", st.expect, st.next)
		if st.conflict != errors.Is(err, store.ErrConflict) || (!st.conflict && err != nil) {
			t.Errorf("%s: SetDatasetCursor = %v, want conflict %v", st.name, err, st.conflict)
		}
		check(t, st.name, mustState(t, s, "p").DatasetCursor, st.want)
	}

	// A reload keeps the cursor, as it keeps the schedule.
	mustPutState(t, s, store.PipelineState{Name: "p", File: "p.yaml", Error: "broken", DatasetCursor: map[string]int64{"y": 1}})
	check(t, "cursor after a reload", mustState(t, s, "p").DatasetCursor, map[string]int64{"x": 1 << 60})
	states, err := s.PipelineStates(ctx)
	if err != nil || len(states) != 1 {
		t.Fatalf("PipelineStates = %v, %v", states, err)
	}
	check(t, "cursor in PipelineStates", states[0].DatasetCursor, map[string]int64{"x": 1 << 60})

	if err := s.SetDatasetCursor(ctx, "nope", nil, map[string]int64{"a": 1}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetDatasetCursor of an unknown pipeline = %v, want ErrNotFound", err)
	}
	for _, bad := range []map[string]int64{{"a": -1}, {"": 1}, {"a\xff": 1}} {
		err := s.SetDatasetCursor(ctx, "p", map[string]int64{"x": 1 << 60}, bad)
		if err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("SetDatasetCursor to %v = %v, want an error that is not a conflict", bad, err)
		}
		if err := s.SetDatasetCursor(ctx, "p", bad, nil); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("SetDatasetCursor expecting %v = %v, want an error that is not a conflict", bad, err)
		}
	}
	// Pausing does not stop SetDatasetCursor (it starts no run).
	if err := s.SetPaused(ctx, "p", true); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDatasetCursor(ctx, "p", map[string]int64{"x": 1 << 60}, nil); err != nil {
		t.Errorf("SetDatasetCursor of a paused pipeline = %v", err)
	}
}

func datasetRun(p string, expect, next map[string]int64) store.NewRun {
	nr := newRun(p, 2)
	nr.Run.Trigger = ""
	nr.Datasets = &store.DatasetAdvance{Expect: expect, Next: next}
	return nr
}

func testDatasetRuns(t *testing.T, s store.Store) {
	ctx := t.Context()
	h := func(n int) time.Time { return t0.Truncate(time.Hour).Add(time.Duration(n) * time.Hour) }
	mustPutState(t, s, store.PipelineState{Name: "p", UpdatedAt: t0})

	// The first run expects an unset cursor; an empty trigger becomes
	// "dataset".
	r1 := mustCreate(t, s, datasetRun("p", nil, map[string]int64{"a": 5}))
	if r1.Trigger != store.TriggerDataset {
		t.Errorf("Trigger = %q, want %q", r1.Trigger, store.TriggerDataset)
	}
	if got, err := s.Run(ctx, r1.ID); err != nil || got.Trigger != store.TriggerDataset {
		t.Errorf("Run = %+v, %v", got, err)
	}
	check(t, "cursor after the first run", mustState(t, s, "p").DatasetCursor, map[string]int64{"a": 5})
	nr := datasetRun("p", map[string]int64{"a": 5}, map[string]int64{"a": 6, "b": 2})
	nr.Run.Trigger = store.TriggerDataset
	mustCreate(t, s, nr)
	cursor := map[string]int64{"a": 6, "b": 2}
	check(t, "cursor after the second run", mustState(t, s, "p").DatasetCursor, cursor)

	before := mustState(t, s, "p")
	nruns := len(allRuns(t, s))
	tests := []struct {
		name               string
		nr                 store.NewRun
		conflict, notFound bool
	}{
		{"stale cursor", datasetRun("p", map[string]int64{"a": 5}, map[string]int64{"a": 7}), true, false},
		{"unset expected", datasetRun("p", nil, map[string]int64{"a": 7}), true, false},
		{"unknown pipeline", datasetRun("nope", nil, map[string]int64{"a": 7}), false, true},
		{"manual trigger", func() store.NewRun {
			nr := datasetRun("p", cursor, map[string]int64{"a": 7})
			nr.Run.Trigger = store.TriggerManual
			return nr
		}(), false, false},
		{"bad cursor", datasetRun("p", cursor, map[string]int64{"a": -7}), false, false},
		{"bad params", func() store.NewRun {
			nr := datasetRun("p", cursor, map[string]int64{"a": 7})
			nr.Run.Params = json.RawMessage(`{`)
			return nr
		}(), false, false},
		// The cursor matches, but the run is refused: the cursor does not
		// move.
		{"unknown version", func() store.NewRun {
			nr := datasetRun("p", cursor, map[string]int64{"a": 7})
			nr.Run.VersionID = 999999
			return nr
		}(), false, true},
		{"unknown backfill", func() store.NewRun {
			nr := datasetRun("p", cursor, map[string]int64{"a": 7})
			nr.Run.BackfillID = 999999
			return nr
		}(), false, true},
		// With a schedule too, both compare-and-sets must hold.
		{"schedule stale, cursor holds", func() store.NewRun {
			nr := datasetRun("p", cursor, map[string]int64{"a": 7})
			nr.Run.IntervalStart, nr.Run.IntervalEnd = h(0), h(1)
			nr.Schedule = &store.ScheduleAdvance{ExpectNextFire: h(5), NextFire: h(2)}
			return nr
		}(), true, false},
		{"schedule holds, cursor stale", func() store.NewRun {
			nr := datasetRun("p", map[string]int64{"a": 6}, map[string]int64{"a": 7})
			nr.Run.IntervalStart, nr.Run.IntervalEnd = h(0), h(1)
			nr.Schedule = &store.ScheduleAdvance{NextFire: h(2)}
			return nr
		}(), true, false},
		{"both hold, dataset trigger", func() store.NewRun {
			nr := datasetRun("p", cursor, map[string]int64{"a": 7})
			nr.Run.Trigger = store.TriggerDataset
			nr.Run.IntervalStart, nr.Run.IntervalEnd = h(0), h(1)
			nr.Schedule = &store.ScheduleAdvance{NextFire: h(2)}
			return nr
		}(), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.CreateRun(ctx, tt.nr)
			if err == nil {
				t.Fatal("CreateRun succeeded")
			}
			if errors.Is(err, store.ErrConflict) != tt.conflict || errors.Is(err, store.ErrNotFound) != tt.notFound {
				t.Errorf("err = %v; want ErrConflict %v, ErrNotFound %v", err, tt.conflict, tt.notFound)
			}
			check(t, "state after the refused run", mustState(t, s, "p"), before)
			if n := len(allRuns(t, s)); n != nruns {
				t.Errorf("%d runs after the refused run, want %d", n, nruns)
			}
		})
	}

	// Both hold: a scheduled run that moves both on.
	nr = datasetRun("p", map[string]int64{"b": 2, "a": 6}, map[string]int64{"a": 7, "b": 2})
	nr.Run.IntervalStart, nr.Run.IntervalEnd = h(0), h(1)
	nr.Schedule = &store.ScheduleAdvance{NextFire: h(2)}
	r := mustCreate(t, s, nr)
	st := mustState(t, s, "p")
	if r.Trigger != store.TriggerSchedule || !st.NextFire.Equal(h(2)) || !st.LastIntervalEnd.Equal(h(1)) {
		t.Errorf("combined run: trigger %q, NextFire %v, LastIntervalEnd %v", r.Trigger, st.NextFire, st.LastIntervalEnd)
	}
	check(t, "cursor after the combined run", st.DatasetCursor, map[string]int64{"a": 7, "b": 2})

	// Paused after the scheduler looked: refused, and goes through once
	// unpaused.
	if err := s.SetPaused(ctx, "p", true); err != nil {
		t.Fatal(err)
	}
	next := datasetRun("p", map[string]int64{"a": 7, "b": 2}, map[string]int64{"a": 8, "b": 2})
	if _, err := s.CreateRun(ctx, next); !errors.Is(err, store.ErrConflict) {
		t.Errorf("dataset-started run of a paused pipeline: %v, want ErrConflict", err)
	}
	check(t, "cursor after the refused run", mustState(t, s, "p").DatasetCursor, map[string]int64{"a": 7, "b": 2})
	if err := s.SetPaused(ctx, "p", false); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, next)
	check(t, "cursor after unpausing", mustState(t, s, "p").DatasetCursor, map[string]int64{"a": 8, "b": 2})

	// Backfill runs consume no updates.
	runs := backfillRuns("p", h(10), 1, 1)
	runs[0].Datasets = &store.DatasetAdvance{Next: map[string]int64{"a": 9}}
	if _, err := s.CreateBackfill(ctx, store.Backfill{Pipeline: "p", From: h(10), To: h(11)}, runs); err == nil {
		t.Error("CreateBackfill with a run that consumes dataset updates succeeded")
	}
	check(t, "cursor after the refused backfill", mustState(t, s, "p").DatasetCursor, map[string]int64{"a": 8, "b": 2})
}

// testConcurrentDatasetRuns starts the run of one set of updates from 8
// writers, as 8 servers would: exactly one run is created.
func testConcurrentDatasetRuns(t *testing.T, s store.Store) {
	const writers = 8
	ctx := t.Context()
	h := func(n int) time.Time { return t0.Truncate(time.Hour).Add(time.Duration(n) * time.Hour) }
	for _, withSchedule := range []bool{false, true} {
		name := fmt.Sprintf("schedule-%v", withSchedule)
		mustPutState(t, s, store.PipelineState{Name: name})
		if err := s.SetDatasetCursor(ctx, name, nil, map[string]int64{"a": 1}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, writers)
		start := make(chan struct{})
		for w := range writers {
			wg.Go(func() {
				nr := datasetRun(name, map[string]int64{"a": 1}, map[string]int64{"a": 2 + int64(w)})
				if withSchedule {
					// Different intervals: only the compare-and-sets can
					// stop the others.
					nr.Run.IntervalStart, nr.Run.IntervalEnd = h(-w), h(-w+1)
					nr.Schedule = &store.ScheduleAdvance{NextFire: h(2)}
				}
				<-start
				_, errs[w] = s.CreateRun(ctx, nr)
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for w, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Errorf("%s: writers %d and %d both created the run", name, winner, w)
				}
				winner = w
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("%s: writer %d: %v, want success or ErrConflict", name, w, err)
			}
		}
		if winner < 0 {
			t.Fatalf("%s: no writer created the run", name)
		}
		runs, err := s.ListRuns(ctx, store.RunFilter{Pipeline: name})
		if err != nil || len(runs) != 1 {
			t.Errorf("%s: %d runs, %v; want 1", name, len(runs), err)
		}
		check(t, name+": cursor", mustState(t, s, name).DatasetCursor, map[string]int64{"a": 2 + int64(winner)})
	}
}

func testListRunsInterval(t *testing.T, s store.Store) {
	ctx := t.Context()
	h := func(n int) time.Time { return t0.Truncate(time.Hour).Add(time.Duration(n) * time.Hour) }
	mustPutState(t, s, store.PipelineState{Name: "p"})
	run := func(p string, start time.Time, trigger string, st engine.RunState) store.Run {
		nr := newRun(p, 1)
		nr.Run.Trigger, nr.Run.State = trigger, st
		nr.Run.IntervalStart, nr.Run.IntervalEnd = start, start.Add(time.Hour)
		return mustCreate(t, s, nr)
	}
	var p0 []int64 // p's runs of h(0), oldest first
	p0 = append(p0, run("p", h(0), store.TriggerSchedule, engine.RunFailed).ID)
	run("p", h(1), store.TriggerSchedule, engine.RunSucceeded)
	run("q", h(0), store.TriggerSchedule, engine.RunSucceeded)
	odd := run("p", h(0).Add(time.Microsecond), store.TriggerManual, engine.RunSucceeded).ID
	mustCreate(t, s, newRun("p", 1)) // no interval
	p0 = append(p0, run("p", h(0), store.TriggerManual, engine.RunSucceeded).ID)
	p0 = append(p0, run("p", h(0), store.TriggerBackfill, engine.RunQueued).ID)

	tests := []struct {
		name string
		f    store.RunFilter
		want []int64
	}{
		{"interval", store.RunFilter{Pipeline: "p", IntervalStart: h(0)}, reversed(p0)},
		{"in another zone", store.RunFilter{Pipeline: "p", IntervalStart: h(0).In(jst)}, reversed(p0)},
		{"with nanoseconds", store.RunFilter{Pipeline: "p", IntervalStart: h(0).Add(1500 * time.Nanosecond)}, []int64{odd}},
		{"ascending", store.RunFilter{Pipeline: "p", IntervalStart: h(0), Ascending: true}, p0},
		{"limit", store.RunFilter{Pipeline: "p", IntervalStart: h(0), Limit: 1}, []int64{p0[2]}},
		{"before", store.RunFilter{Pipeline: "p", IntervalStart: h(0), BeforeID: p0[2]}, []int64{p0[1], p0[0]}},
		{"state", store.RunFilter{Pipeline: "p", IntervalStart: h(0), States: []engine.RunState{engine.RunSucceeded}}, []int64{p0[1]}},
		{"states", store.RunFilter{Pipeline: "p", IntervalStart: h(0), States: []engine.RunState{engine.RunSucceeded, engine.RunFailed}}, []int64{p0[1], p0[0]}},
		{"trigger", store.RunFilter{Pipeline: "p", IntervalStart: h(0), Trigger: store.TriggerSchedule}, []int64{p0[0]}},
		{"other pipeline", store.RunFilter{Pipeline: "q", IntervalStart: h(1)}, []int64{}},
		{"no run", store.RunFilter{Pipeline: "p", IntervalStart: h(7)}, []int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs, err := s.ListRuns(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			got := []int64{}
			for _, r := range runs {
				got = append(got, r.ID)
				if r.Pipeline != tt.f.Pipeline || !r.IntervalStart.Equal(store.NormTime(tt.f.IntervalStart)) {
					t.Errorf("run %d: pipeline %q, interval start %v", r.ID, r.Pipeline, r.IntervalStart)
				}
			}
			check(t, "runs", got, tt.want)
		})
	}
	if _, err := s.ListRuns(ctx, store.RunFilter{IntervalStart: h(0)}); err == nil {
		t.Error("ListRuns by interval start without a pipeline succeeded")
	}
}

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

// The server's part of the suite: the pipeline registry and schedule state,
// exactly-once scheduled runs, backfills, queue reads and pruning.

func mustPutState(t *testing.T, s store.Store, ps store.PipelineState) {
	t.Helper()
	if err := s.PutPipelineState(t.Context(), ps); err != nil {
		t.Fatalf("PutPipelineState(%q): %v", ps.Name, err)
	}
}

func mustState(t *testing.T, s store.Store, name string) store.PipelineState {
	t.Helper()
	ps, err := s.PipelineState(t.Context(), name)
	if err != nil {
		t.Fatalf("PipelineState(%q): %v", name, err)
	}
	return ps
}

func mustVersion(t *testing.T, s store.Store, pipeline, src string) store.PipelineVersion {
	t.Helper()
	v, err := s.PutPipelineVersion(t.Context(), store.PipelineVersion{Pipeline: pipeline, File: pipeline + ".yaml", Source: []byte(src)})
	if err != nil {
		t.Fatalf("PutPipelineVersion: %v", err)
	}
	return v
}

func runIDs(rs []store.Run) []int64 {
	var out []int64
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

// allRuns lists every run of the store, oldest first.
func allRuns(t *testing.T, s store.Store) []store.Run {
	t.Helper()
	var out []store.Run
	f := store.RunFilter{Ascending: true, Limit: store.MaxRunsLimit}
	for {
		page, err := s.ListRuns(t.Context(), f)
		if err != nil {
			t.Fatalf("ListRuns: %v", err)
		}
		out = append(out, page...)
		if len(page) < f.Limit {
			return out
		}
		f.AfterID = page[len(page)-1].ID
	}
}

func testPipelineStates(t *testing.T, s store.Store) {
	ctx := t.Context()
	if got, err := s.PipelineStates(ctx); err != nil || len(got) != 0 {
		t.Fatalf("PipelineStates of an empty store = %v, %v; want none", got, err)
	}
	v := mustVersion(t, s, "rates", "name: rates")
	// The schedule fields given to PutPipelineState are ignored: a new
	// pipeline starts unpaused with nothing scheduled.
	mustPutState(t, s, store.PipelineState{Name: "rates", VersionID: v.ID, File: "p/rates.yaml", UpdatedAt: t0.In(jst),
		Paused: true, NextFire: t0, LastIntervalEnd: t0})
	want := store.PipelineState{Name: "rates", VersionID: v.ID, File: "p/rates.yaml", UpdatedAt: us(t0)}
	check(t, "new state", mustState(t, s, "rates"), want)

	// The schedule fields have their own writers...
	if err := s.SetPaused(ctx, "rates", true); err != nil {
		t.Fatalf("SetPaused: %v", err)
	}
	if err := s.SetNextFire(ctx, "rates", t0.Add(time.Hour).In(jst)); err != nil {
		t.Fatalf("SetNextFire: %v", err)
	}
	if err := s.AdvanceSchedule(ctx, "rates", t0.Add(time.Hour), t0.Add(2*time.Hour), t0.Add(time.Hour)); err != nil {
		t.Fatalf("AdvanceSchedule: %v", err)
	}
	got := mustState(t, s, "rates")
	if got.UpdatedAt.Equal(us(t0)) {
		t.Errorf("UpdatedAt = %v after schedule changes; want it moved", got.UpdatedAt)
	}
	want.Paused, want.NextFire, want.LastIntervalEnd, want.UpdatedAt = true, us(t0.Add(2*time.Hour)), us(t0.Add(time.Hour)), got.UpdatedAt
	check(t, "state after schedule changes", got, want)

	// ...and a reload (the file broke, then was removed) keeps them, and
	// keeps the last good version when given none.
	tests := []struct {
		name string
		put  store.PipelineState
	}{
		{"broken file", store.PipelineState{Name: "rates", File: "p/rates.yaml", Error: "rates.yaml:3:5: unknown key \"tsaks\"", UpdatedAt: t0.Add(time.Minute)}},
		{"moved file", store.PipelineState{Name: "rates", VersionID: v.ID, File: "q/rates.yaml", UpdatedAt: t0.Add(2 * time.Minute)}},
		{"removed file", store.PipelineState{Name: "rates", File: "q/rates.yaml", Removed: true, UpdatedAt: t0.Add(3 * time.Minute)}},
		{"ignored schedule fields", store.PipelineState{Name: "rates", File: "q/rates.yaml", UpdatedAt: t0.Add(4 * time.Minute),
			Paused: false, NextFire: t0, LastIntervalEnd: t0.Add(-time.Hour)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustPutState(t, s, tt.put)
			w := tt.put
			w.VersionID = v.ID
			w.Paused, w.NextFire, w.LastIntervalEnd = true, us(t0.Add(2*time.Hour)), us(t0.Add(time.Hour))
			w.UpdatedAt = us(w.UpdatedAt)
			check(t, "state", mustState(t, s, "rates"), w)
		})
	}

	// Unpause, unschedule; zero UpdatedAt means now.
	if err := s.SetPaused(ctx, "rates", false); err != nil {
		t.Fatal(err)
	}
	if err := s.SetNextFire(ctx, "rates", time.Time{}); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	mustPutState(t, s, store.PipelineState{Name: "elt"})
	mustPutState(t, s, store.PipelineState{Name: "ask"})
	states, err := s.PipelineStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ps := range states {
		names = append(names, ps.Name)
	}
	check(t, "names", names, []string{"ask", "elt", "rates"})
	if ask := states[0]; ask.UpdatedAt.Before(before) || ask.VersionID != 0 || ask.Paused || !ask.NextFire.IsZero() {
		t.Errorf("state put with defaults = %+v", ask)
	}
	rates := states[2]
	if rates.Paused || !rates.NextFire.IsZero() || !rates.LastIntervalEnd.Equal(t0.Add(time.Hour).Truncate(time.Microsecond)) {
		t.Errorf("after unpause and unschedule = %+v; want unpaused, no next fire, LastIntervalEnd kept", rates)
	}
	check(t, "listed state", rates, mustState(t, s, "rates"))
}

func testPipelineStateVersions(t *testing.T, s store.Store) {
	ctx := t.Context()
	mine := mustVersion(t, s, "mine", "name: mine")
	theirs := mustVersion(t, s, "theirs", "name: theirs")
	err := s.PutPipelineState(ctx, store.PipelineState{Name: "mine", VersionID: 424242})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PutPipelineState with an unknown version: %v, want ErrNotFound", err)
	}
	err = s.PutPipelineState(ctx, store.PipelineState{Name: "mine", VersionID: theirs.ID})
	if err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("PutPipelineState with another pipeline's version: %v, want an error other than ErrNotFound", err)
	}
	if err := s.PutPipelineState(ctx, store.PipelineState{}); err == nil {
		t.Error("PutPipelineState without a name succeeded")
	}
	if states, err := s.PipelineStates(ctx); err != nil || len(states) != 0 {
		t.Errorf("after refused puts, PipelineStates = %+v, %v; want none", states, err)
	}
	mustPutState(t, s, store.PipelineState{Name: "mine", VersionID: mine.ID})
	v2 := mustVersion(t, s, "mine", "name: mine # v2")
	mustPutState(t, s, store.PipelineState{Name: "mine", VersionID: v2.ID})
	if got := mustState(t, s, "mine"); got.VersionID != v2.ID {
		t.Errorf("VersionID = %d after putting version %d", got.VersionID, v2.ID)
	}
}

// scheduled is a scheduled run of pipeline p for the hour starting at start.
func scheduled(p string, start time.Time, sched *store.ScheduleAdvance) store.NewRun {
	nr := newRun(p, 2)
	nr.Run.Trigger = store.TriggerSchedule
	nr.Run.IntervalStart = start
	nr.Run.IntervalEnd = start.Add(time.Hour)
	nr.Schedule = sched
	return nr
}

func testScheduledRunAdvances(t *testing.T, s store.Store) {
	ctx := t.Context()
	h := func(n int) time.Time { return t0.Truncate(time.Hour).Add(time.Duration(n) * time.Hour) }
	mustPutState(t, s, store.PipelineState{Name: "rates", UpdatedAt: t0})

	// The zero time expects an unset NextFire: the first tick of a new schedule.
	r1 := mustCreate(t, s, scheduled("rates", h(0), &store.ScheduleAdvance{NextFire: h(2)}))
	st := mustState(t, s, "rates")
	check(t, "schedule after first run (IntervalEnd from the run)", []time.Time{st.NextFire, st.LastIntervalEnd}, []time.Time{h(2), h(1)})
	if got, err := s.Run(ctx, r1.ID); err != nil || got.Trigger != store.TriggerSchedule || !got.IntervalStart.Equal(h(0)) {
		t.Errorf("scheduled run = %+v, %v", got, err)
	}

	// An explicit IntervalEnd; an empty trigger becomes "schedule"; NextFire
	// keeps its microseconds.
	nr := scheduled("rates", h(1), &store.ScheduleAdvance{ExpectNextFire: h(2).In(jst), NextFire: h(3).Add(1500 * time.Nanosecond), IntervalEnd: h(2).Add(time.Minute)})
	nr.Run.Trigger = ""
	r2 := mustCreate(t, s, nr)
	if r2.Trigger != store.TriggerSchedule {
		t.Errorf("Trigger = %q, want %q", r2.Trigger, store.TriggerSchedule)
	}
	st = mustState(t, s, "rates")
	check(t, "schedule after second run", []time.Time{st.NextFire, st.LastIntervalEnd}, []time.Time{us(h(3).Add(1500 * time.Nanosecond)), h(2).Add(time.Minute)})

	// The schedule ends: a zero NextFire.
	mustCreate(t, s, scheduled("rates", h(2), &store.ScheduleAdvance{ExpectNextFire: h(3).Add(time.Microsecond), IntervalEnd: h(3)}))
	st = mustState(t, s, "rates")
	check(t, "schedule after the last run", []time.Time{st.NextFire, st.LastIntervalEnd}, []time.Time{{}, h(3)})
	if runs := allRuns(t, s); len(runs) != 3 {
		t.Errorf("%d runs, want 3", len(runs))
	}
}

func testScheduledRunRejects(t *testing.T, s store.Store) {
	ctx := t.Context()
	h := func(n int) time.Time { return t0.Truncate(time.Hour).Add(time.Duration(n) * time.Hour) }
	mustPutState(t, s, store.PipelineState{Name: "rates", UpdatedAt: t0})
	if err := s.SetNextFire(ctx, "rates", h(1)); err != nil {
		t.Fatal(err)
	}
	first := mustCreate(t, s, scheduled("rates", h(0), &store.ScheduleAdvance{ExpectNextFire: h(1), NextFire: h(2)}))
	before := mustState(t, s, "rates")
	sn := take(t, s, first.ID)

	tests := []struct {
		name     string
		nr       store.NewRun
		conflict bool
		notFound bool
	}{
		// Another server (or an earlier attempt that did commit) fired h(1).
		{"stale expectation", scheduled("rates", h(1), &store.ScheduleAdvance{ExpectNextFire: h(1), NextFire: h(2)}), true, false},
		{"expectation of unset", scheduled("rates", h(1), &store.ScheduleAdvance{NextFire: h(3)}), true, false},
		// The expectation holds but the interval already has its run: the
		// unique index refuses it, and the schedule does not move.
		{"duplicate interval", scheduled("rates", h(0), &store.ScheduleAdvance{ExpectNextFire: h(2), NextFire: h(3)}), true, false},
		{"unknown pipeline", scheduled("nope", h(0), &store.ScheduleAdvance{NextFire: h(3)}), false, true},
		{"manual trigger", func() store.NewRun {
			nr := scheduled("rates", h(5), &store.ScheduleAdvance{ExpectNextFire: h(2), NextFire: h(3)})
			nr.Run.Trigger = store.TriggerManual
			return nr
		}(), false, false},
		{"bad params", func() store.NewRun {
			nr := scheduled("rates", h(5), &store.ScheduleAdvance{ExpectNextFire: h(2), NextFire: h(3)})
			nr.Run.Params = json.RawMessage(`{`)
			return nr
		}(), false, false},
		{"unknown version", func() store.NewRun {
			nr := scheduled("rates", h(5), &store.ScheduleAdvance{ExpectNextFire: h(2), NextFire: h(3)})
			nr.Run.VersionID = 999999
			return nr
		}(), false, true},
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
			check(t, "state after the refused run", mustState(t, s, "rates"), before)
			if runs := allRuns(t, s); len(runs) != 1 {
				t.Errorf("%d runs after the refused run, want 1", len(runs))
			}
			check(t, "first run", take(t, s, first.ID), sn)
		})
	}

	// Paused after the scheduler looked: the tick is refused as a conflict,
	// and goes through once unpaused.
	if err := s.SetPaused(ctx, "rates", true); err != nil {
		t.Fatal(err)
	}
	paused := mustState(t, s, "rates")
	next := scheduled("rates", h(1), &store.ScheduleAdvance{ExpectNextFire: h(2), NextFire: h(3)})
	if _, err := s.CreateRun(ctx, next); !errors.Is(err, store.ErrConflict) {
		t.Errorf("scheduled run of a paused pipeline: %v, want ErrConflict", err)
	}
	check(t, "paused state after the refused run", mustState(t, s, "rates"), paused)
	if err := s.SetPaused(ctx, "rates", false); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, next)
	if st := mustState(t, s, "rates"); !st.NextFire.Equal(h(3)) {
		t.Errorf("NextFire after unpausing and firing = %v, want %v", st.NextFire, h(3))
	}
}

func testAdvanceSchedule(t *testing.T, s store.Store) {
	ctx := t.Context()
	h := func(n int) time.Time { return t0.Truncate(time.Hour).Add(time.Duration(n) * time.Hour) }
	mustPutState(t, s, store.PipelineState{Name: "p", UpdatedAt: t0})
	steps := []struct {
		name                  string
		expect, next, lastEnd time.Time
		conflict              bool
		wantNext, wantLastEnd time.Time
	}{
		{"from unset", time.Time{}, h(1), time.Time{}, false, h(1), time.Time{}},
		{"stale", time.Time{}, h(2), h(0), true, h(1), time.Time{}},
		{"skip intervals", h(1), h(5), h(4), false, h(5), h(4)},
		{"zero lastEnd keeps it", h(5), h(6), time.Time{}, false, h(6), h(4)},
		{"wrong by a microsecond", h(6).Add(time.Microsecond), h(7), h(6), true, h(6), h(4)},
		{"in another zone", h(6).In(jst), h(7), h(6), false, h(7), h(6)},
		{"to unset", h(7), time.Time{}, time.Time{}, false, time.Time{}, h(6)},
	}
	for _, st := range steps {
		err := s.AdvanceSchedule(ctx, "p", st.expect, st.next, st.lastEnd)
		if st.conflict != errors.Is(err, store.ErrConflict) || (!st.conflict && err != nil) {
			t.Errorf("%s: AdvanceSchedule = %v, want conflict %v", st.name, err, st.conflict)
		}
		ps := mustState(t, s, "p")
		check(t, st.name, []time.Time{ps.NextFire, ps.LastIntervalEnd}, []time.Time{st.wantNext, st.wantLastEnd})
	}
	if runs := allRuns(t, s); len(runs) != 0 {
		t.Errorf("AdvanceSchedule created %d runs", len(runs))
	}
}

// testConcurrentScheduledRuns fires one tick from 8 writers, as 8 servers
// would: exactly one run is created, whether the writers agree on the
// interval (the unique index would catch a duplicate anyway) or not (only
// the compare-and-set can).
func testConcurrentScheduledRuns(t *testing.T, s store.Store) {
	const writers = 8
	ctx := t.Context()
	h := func(n int) time.Time { return t0.Truncate(time.Hour).Add(time.Duration(n) * time.Hour) }
	for _, sameInterval := range []bool{true, false} {
		name := fmt.Sprintf("same-interval-%v", sameInterval)
		mustPutState(t, s, store.PipelineState{Name: name})
		if err := s.SetNextFire(ctx, name, h(1)); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, writers)
		start := make(chan struct{})
		for w := range writers {
			wg.Go(func() {
				interval := h(0)
				if !sameInterval {
					interval = h(-w)
				}
				<-start
				_, errs[w] = s.CreateRun(ctx, scheduled(name, interval, &store.ScheduleAdvance{ExpectNextFire: h(1), NextFire: h(2)}))
			})
		}
		close(start)
		wg.Wait()
		ok := 0
		for w, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("%s: writer %d: %v, want success or ErrConflict", name, w, err)
			}
		}
		if ok != 1 {
			t.Errorf("%s: %d writers created the run, want exactly 1", name, ok)
		}
		runs, err := s.ListRuns(ctx, store.RunFilter{Pipeline: name})
		if err != nil || len(runs) != 1 {
			t.Errorf("%s: %d runs, %v; want 1", name, len(runs), err)
		}
		if ps := mustState(t, s, name); !ps.NextFire.Equal(h(2)) {
			t.Errorf("%s: NextFire = %v, want %v", name, ps.NextFire, h(2))
		}
	}
}

// backfillRuns are the runs of a backfill of pipeline p: one per hour from
// from, of tasks tasks each.
func backfillRuns(p string, from time.Time, n, tasks int) []store.NewRun {
	runs := make([]store.NewRun, n)
	for i := range runs {
		nr := newRun(p, tasks)
		nr.Run.Trigger = ""
		nr.Run.IntervalStart = from.Add(time.Duration(i) * time.Hour)
		nr.Run.IntervalEnd = from.Add(time.Duration(i+1) * time.Hour)
		nr.Run.Params = json.RawMessage(fmt.Sprintf(`{"i": %d}`, i))
		runs[i] = nr
	}
	return runs
}

func testBackfill(t *testing.T, s store.Store) {
	ctx := t.Context()
	v := mustVersion(t, s, "elt", "name: elt")
	from := t0.Truncate(time.Hour).Add(-72 * time.Hour)
	runs := backfillRuns("elt", from, 3, 2)
	for i := range runs {
		runs[i].Run.VersionID = v.ID
	}
	runs[0].Run.Pipeline = ""            // becomes the backfill's
	runs[1].Run.Trigger = "backfill"     // as it will be anyway
	runs[2].Actor = "carol"              // kept over the backfill's actor
	runs[2].Run.BackfillID = 123456      // overwritten
	given := slices.Clone(runs[0].Tasks) // the caller's slices are not modified
	b := store.Backfill{Pipeline: "elt", From: from.In(jst), To: from.Add(3 * time.Hour), Parallel: 2, Actor: "alice",
		CreatedAt: t0, Runs: 99, ID: 7}
	got, err := s.CreateBackfill(ctx, b, runs)
	if err != nil {
		t.Fatalf("CreateBackfill: %v", err)
	}
	if got.ID == 0 {
		t.Fatal("CreateBackfill returned ID 0")
	}
	want := store.Backfill{ID: got.ID, Pipeline: "elt", From: us(from), To: us(from.Add(3 * time.Hour)), Parallel: 2,
		State: store.BackfillRunning, Actor: "alice", CreatedAt: us(t0), Runs: 3}
	check(t, "created backfill", got, want)
	read, err := s.Backfill(ctx, got.ID)
	if err != nil {
		t.Fatalf("Backfill: %v", err)
	}
	check(t, "read backfill", read, want)
	check(t, "caller's tasks", runs[0].Tasks, given)

	listed, err := s.ListRuns(ctx, store.RunFilter{BackfillID: got.ID, Ascending: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 3 {
		t.Fatalf("ListRuns(backfill) = %d runs, want 3", len(listed))
	}
	for i, r := range listed {
		w := runs[i].Run
		w.ID, w.Pipeline, w.Trigger, w.BackfillID, w.TaskCount = r.ID, "elt", store.TriggerBackfill, got.ID, 2
		w.IntervalStart, w.IntervalEnd, w.CreatedAt = us(w.IntervalStart), us(w.IntervalEnd), us(w.CreatedAt)
		check(t, fmt.Sprintf("run %d", i), r, w)
		if i > 0 && r.ID <= listed[i-1].ID {
			t.Errorf("run %d has ID %d after %d: runs not created in order", i, r.ID, listed[i-1].ID)
		}
		sn := take(t, s, r.ID)
		if len(sn.Tasks) != 2 || sn.Tasks[1].TaskID != "t1" || sn.Tasks[1].RunID != r.ID {
			t.Errorf("run %d tasks = %+v", i, sn.Tasks)
		}
		actor := map[int]string{0: "alice", 1: "alice", 2: "carol"}[i]
		if len(sn.Events) != 1 || sn.Events[0].Kind != store.RecRunCreated || sn.Events[0].Actor != actor {
			t.Errorf("run %d events = %+v, want one run_created by %s", i, sn.Events, actor)
		}
	}

	counts, err := s.BackfillCounts(ctx, got.ID)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "counts", counts, map[engine.RunState]int{engine.RunQueued: 3})
	mustApply(t, s,
		store.Change{RunID: listed[0].ID, Transition: engine.Transition{Run: &engine.Run{State: engine.RunSucceeded}}},
		store.Change{RunID: listed[1].ID, Transition: engine.Transition{Run: &engine.Run{State: engine.RunRunning, Remaining: 2}}})
	counts, err = s.BackfillCounts(ctx, got.ID)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "counts after progress", counts, map[engine.RunState]int{engine.RunQueued: 1, engine.RunRunning: 1, engine.RunSucceeded: 1})

	// A rerun of one interval joins the backfill later and is counted.
	rerun := backfillRuns("elt", from, 1, 2)[0]
	rerun.Run.Trigger = store.TriggerBackfill
	rerun.Run.BackfillID = got.ID
	rr := mustCreate(t, s, rerun)
	if rr.BackfillID != got.ID {
		t.Errorf("rerun BackfillID = %d, want %d", rr.BackfillID, got.ID)
	}
	if b, err := s.Backfill(ctx, got.ID); err != nil || b.Runs != 4 {
		t.Errorf("after a rerun joined, backfill = %+v, %v; want 4 runs", b, err)
	}

	// States.
	for _, st := range []struct {
		state    string
		finished time.Time
	}{
		{store.BackfillCancelled, t0.Add(time.Hour).In(jst)},
		{store.BackfillRunning, time.Time{}},
		{store.BackfillFailed, t0.Add(2 * time.Hour)},
		{store.BackfillSucceeded, t0.Add(3 * time.Hour)},
	} {
		if err := s.SetBackfillState(ctx, got.ID, st.state, st.finished); err != nil {
			t.Fatalf("SetBackfillState(%s): %v", st.state, err)
		}
		b, err := s.Backfill(ctx, got.ID)
		if err != nil {
			t.Fatal(err)
		}
		if b.State != st.state || !b.FinishedAt.Equal(us(st.finished)) {
			t.Errorf("after SetBackfillState(%s, %v): %+v", st.state, st.finished, b)
		}
	}
	if err := s.SetBackfillState(ctx, got.ID, "exploded", t0); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetBackfillState with an unknown state = %v, want an error", err)
	}

	// A backfill without runs (an empty range) counts nothing.
	empty, err := s.CreateBackfill(ctx, store.Backfill{Pipeline: "elt", From: from, To: from}, nil)
	if err != nil {
		t.Fatalf("CreateBackfill without runs: %v", err)
	}
	if counts, err := s.BackfillCounts(ctx, empty.ID); err != nil || len(counts) != 0 {
		t.Errorf("counts of an empty backfill = %v, %v; want none", counts, err)
	}
	if empty.State != store.BackfillRunning || empty.Runs != 0 || empty.CreatedAt.IsZero() {
		t.Errorf("backfill with defaults = %+v", empty)
	}
}

// testBackfillManyRuns writes enough runs that the task rows of many runs
// share multi-row inserts, mixing fresh tasks with tasks that carry every
// field, and checks every task of every run.
func testBackfillManyRuns(t *testing.T, s store.Store) {
	ctx := t.Context()
	from := t0.Truncate(time.Hour)
	runs := backfillRuns("many", from, 701, 3)
	for i := range runs {
		if i%7 == 0 {
			runs[i].Tasks = append(runs[i].Tasks, store.TaskRow{Index: 3, TaskID: "copied",
				Task: engine.Task{State: engine.TaskSucceeded, Attempt: 2, Spent: 1, StartedAt: t0, FinishedAt: t0.Add(time.Duration(i) * time.Second),
					ExitCode: ptr(0), Message: "copied", Result: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}})
		}
		if i%100 == 0 {
			runs[i].Tasks = nil // a run without tasks
		}
	}
	b, err := s.CreateBackfill(ctx, store.Backfill{Pipeline: "many", From: from, To: from.Add(701 * time.Hour), Parallel: 4}, runs)
	if err != nil {
		t.Fatalf("CreateBackfill: %v", err)
	}
	if b.Runs != len(runs) {
		t.Errorf("Runs = %d, want %d", b.Runs, len(runs))
	}
	listed := allRuns(t, s)
	if len(listed) != len(runs) {
		t.Fatalf("%d runs, want %d", len(listed), len(runs))
	}
	for i, r := range listed {
		if r.TaskCount != len(runs[i].Tasks) || !r.IntervalStart.Equal(runs[i].Run.IntervalStart) || r.BackfillID != b.ID {
			t.Errorf("run %d = %+v", i, r)
		}
		got, err := s.Tasks(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := slices.Clone(runs[i].Tasks)
		for j := range want {
			want[j].RunID = r.ID
			want[j].StartedAt, want[j].FinishedAt = us(want[j].StartedAt), us(want[j].FinishedAt)
		}
		check(t, fmt.Sprintf("tasks of run %d", i), got, want)
	}
	counts, err := s.BackfillCounts(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "counts", counts, map[engine.RunState]int{engine.RunQueued: len(runs)})
}

func testBackfillAtomic(t *testing.T, s store.Store) {
	ctx := t.Context()
	from := t0.Truncate(time.Hour)
	good := store.Backfill{Pipeline: "p", From: from, To: from.Add(10 * time.Hour), Parallel: 1}
	// spoil returns 10 good runs with run 7 changed by f.
	spoil := func(f func(nr *store.NewRun)) []store.NewRun {
		runs := backfillRuns("p", from, 10, 3)
		f(&runs[7])
		return runs
	}
	tests := []struct {
		name     string
		b        store.Backfill
		runs     []store.NewRun
		notFound bool
	}{
		{"bad params", good, spoil(func(nr *store.NewRun) { nr.Run.Params = json.RawMessage(`{"a":`) }), false},
		{"bad task result", good, spoil(func(nr *store.NewRun) { nr.Tasks[1].Result = json.RawMessage(`nope`) }), false},
		{"task index gap", good, spoil(func(nr *store.NewRun) { nr.Tasks[2].Index = 5 }), false},
		{"unknown version", good, spoil(func(nr *store.NewRun) { nr.Run.VersionID = 31337 }), true},
		{"other pipeline", good, spoil(func(nr *store.NewRun) { nr.Run.Pipeline = "q" }), false},
		{"manual trigger", good, spoil(func(nr *store.NewRun) { nr.Run.Trigger = store.TriggerManual }), false},
		{"advances a schedule", good, spoil(func(nr *store.NewRun) { nr.Schedule = &store.ScheduleAdvance{} }), false},
		{"no pipeline", store.Backfill{From: from, To: from.Add(time.Hour)}, nil, false},
		{"negative parallel", store.Backfill{Pipeline: "p", From: from, To: from.Add(time.Hour), Parallel: -1}, nil, false},
		{"range backwards", store.Backfill{Pipeline: "p", From: from, To: from.Add(-time.Hour)}, nil, false},
		{"no range", store.Backfill{Pipeline: "p"}, nil, false},
		{"unknown state", store.Backfill{Pipeline: "p", From: from, To: from, State: "paused"}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.CreateBackfill(ctx, tt.b, tt.runs)
			if err == nil {
				t.Fatal("CreateBackfill succeeded")
			}
			if got := errors.Is(err, store.ErrNotFound); got != tt.notFound {
				t.Errorf("errors.Is(%v, ErrNotFound) = %v, want %v", err, got, tt.notFound)
			}
			if bs, err := s.ListBackfills(ctx, "", 0, 0); err != nil || len(bs) != 0 {
				t.Errorf("after a refused backfill, ListBackfills = %+v, %v; want none", bs, err)
			}
			if runs := allRuns(t, s); len(runs) != 0 {
				t.Errorf("after a refused backfill, %d runs exist", len(runs))
			}
		})
	}
	// The same runs unspoiled are fine.
	if _, err := s.CreateBackfill(ctx, good, backfillRuns("p", from, 10, 3)); err != nil {
		t.Errorf("CreateBackfill of good runs: %v", err)
	}
}

func testListBackfills(t *testing.T, s store.Store) {
	ctx := t.Context()
	from := t0.Truncate(time.Hour)
	var made []store.Backfill
	for i := range 12 {
		p := []string{"a", "b", "c"}[i%3]
		b, err := s.CreateBackfill(ctx, store.Backfill{Pipeline: p, From: from, To: from.Add(time.Hour), Actor: fmt.Sprint(i)},
			backfillRuns(p, from.Add(time.Duration(i)*24*time.Hour), 1, 1))
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, b)
	}
	expect := func(pipeline string, before int64, limit int) []store.Backfill {
		var out []store.Backfill
		for i := len(made) - 1; i >= 0; i-- {
			b := made[i]
			if (pipeline == "" || b.Pipeline == pipeline) && (before == 0 || b.ID < before) {
				out = append(out, b)
			}
		}
		if limit > 0 && len(out) > limit {
			out = out[:limit]
		}
		return out
	}
	tests := []struct {
		name     string
		pipeline string
		before   int64
		limit    int
	}{
		{"all", "", 0, 0},
		{"pipeline", "b", 0, 0},
		{"unknown pipeline", "zzz", 0, 0},
		{"cursor", "", made[6].ID, 0},
		{"cursor and pipeline", "a", made[6].ID, 0},
		{"limit", "", 0, 5},
		{"limit pipeline cursor", "c", made[11].ID, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ListBackfills(ctx, tt.pipeline, tt.before, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			check(t, "backfills", got, expect(tt.pipeline, tt.before, tt.limit))
		})
	}
}

// testListRunsFilters checks the filters the scheduler and the API add to
// testListRuns's: backfill, trigger, ascending order and the AfterID cursor,
// against a model, one page and walking all pages.
func testListRunsFilters(t *testing.T, s store.Store) {
	ctx := t.Context()
	from := t0.Truncate(time.Hour)
	states := []engine.RunState{engine.RunQueued, engine.RunRunning, engine.RunSucceeded, engine.RunQueued, engine.RunFailed}
	var runs []store.Run // in creation (ID) order
	var backfills []int64
	for i := range 30 {
		p := []string{"a", "b"}[i%2]
		if i%10 == 9 {
			// A backfill of 4 runs with mixed states.
			bruns := backfillRuns(p, from.Add(time.Duration(i)*100*time.Hour), 4, 1)
			for j := range bruns {
				bruns[j].Run.State = states[j%len(states)]
			}
			b, err := s.CreateBackfill(ctx, store.Backfill{Pipeline: p, From: from, To: from.Add(4 * time.Hour)}, bruns)
			if err != nil {
				t.Fatal(err)
			}
			backfills = append(backfills, b.ID)
			listed, err := s.ListRuns(ctx, store.RunFilter{BackfillID: b.ID, Ascending: true})
			if err != nil {
				t.Fatal(err)
			}
			runs = append(runs, listed...)
			continue
		}
		nr := newRun(p, 1)
		nr.Run.State = states[i%len(states)]
		if i%3 == 0 {
			nr.Run.Trigger = store.TriggerSchedule
			nr.Run.IntervalStart = from.Add(time.Duration(i) * time.Hour)
		}
		runs = append(runs, mustCreate(t, s, nr))
	}
	expect := func(f store.RunFilter) []int64 {
		var ids []int64
		for _, r := range runs {
			if (f.Pipeline == "" || r.Pipeline == f.Pipeline) &&
				(len(f.States) == 0 || slices.Contains(f.States, r.State)) &&
				(f.BackfillID == 0 || r.BackfillID == f.BackfillID) &&
				(f.Trigger == "" || r.Trigger == f.Trigger) &&
				(f.BeforeID == 0 || r.ID < f.BeforeID) &&
				(f.AfterID == 0 || r.ID > f.AfterID) {
				ids = append(ids, r.ID)
			}
		}
		if !f.Ascending {
			slices.Reverse(ids)
		}
		if f.Limit > 0 && len(ids) > f.Limit {
			ids = ids[:f.Limit]
		}
		return ids
	}
	queued := []engine.RunState{engine.RunQueued}
	active := []engine.RunState{engine.RunQueued, engine.RunRunning}
	mid := runs[len(runs)/2].ID
	filters := []store.RunFilter{
		{Ascending: true},
		{Ascending: true, Limit: 3},
		{Ascending: true, AfterID: mid},
		{AfterID: mid},
		{AfterID: runs[3].ID, BeforeID: runs[20].ID},
		{Ascending: true, AfterID: runs[3].ID, BeforeID: runs[20].ID, Pipeline: "a"},
		{Ascending: true, Pipeline: "a", States: queued},
		{Ascending: true, Pipeline: "b", States: active, Limit: 4},
		{Ascending: true, States: active},
		{BackfillID: backfills[1]},
		{BackfillID: backfills[1], Ascending: true, States: queued},
		{BackfillID: backfills[2], States: active},
		{BackfillID: backfills[0], Pipeline: "a"},
		{BackfillID: backfills[0], Pipeline: runs[9].Pipeline, Trigger: store.TriggerBackfill},
		{BackfillID: 987654},
		{Trigger: store.TriggerSchedule},
		{Trigger: store.TriggerManual, Ascending: true},
		{Trigger: store.TriggerBackfill, States: queued},
		{Trigger: store.TriggerSchedule, Pipeline: "a"},
		{Trigger: store.TriggerSchedule, Pipeline: "b", States: active},
		{Trigger: store.TriggerManual, Pipeline: "b", States: queued, Ascending: true},
		{Trigger: "dataset"},
	}
	for _, f := range filters {
		t.Run(fmt.Sprintf("%+v", f), func(t *testing.T) {
			got, err := s.ListRuns(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			check(t, "IDs", runIDs(got), expect(f))
			if f.Limit != 0 {
				return
			}
			// Walking pages visits every run once, in order.
			page := f
			page.Limit = 2
			var walked []int64
			for range 100 {
				rs, err := s.ListRuns(ctx, page)
				if err != nil {
					t.Fatal(err)
				}
				if len(rs) == 0 {
					break
				}
				walked = append(walked, runIDs(rs)...)
				if f.Ascending {
					page.AfterID = rs[len(rs)-1].ID
				} else {
					page.BeforeID = rs[len(rs)-1].ID
				}
			}
			check(t, "walked IDs", walked, expect(f))
		})
	}
}

func testCountRuns(t *testing.T, s store.Store) {
	ctx := t.Context()
	if n, err := s.CountRuns(ctx, "", nil); err != nil || n != 0 {
		t.Errorf("CountRuns of an empty store = %d, %v", n, err)
	}
	states := []engine.RunState{engine.RunQueued, engine.RunRunning, engine.RunSucceeded, engine.RunRunning, engine.RunCancelled, engine.RunQueued, engine.RunQueued}
	type key struct {
		p string
		s engine.RunState
	}
	have := map[key]int{}
	for i := range 41 {
		nr := newRun([]string{"a", "b", "c"}[i%3], 0)
		nr.Run.State = states[i%len(states)]
		mustCreate(t, s, nr)
		have[key{nr.Run.Pipeline, nr.Run.State}]++
	}
	expect := func(p string, ss []engine.RunState) int {
		n := 0
		for k, c := range have {
			if (p == "" || k.p == p) && (len(ss) == 0 || slices.Contains(ss, k.s)) {
				n += c
			}
		}
		return n
	}
	active := []engine.RunState{engine.RunQueued, engine.RunRunning}
	tests := []struct {
		pipeline string
		states   []engine.RunState
	}{
		{"", nil},
		{"a", nil},
		{"a", active},
		{"b", active},
		{"", active},
		{"c", []engine.RunState{engine.RunCancelled}},
		{"c", []engine.RunState{engine.RunFailed}},
		{"zzz", active},
		{"", []engine.RunState{engine.RunSucceeded, engine.RunSucceeded}},
	}
	for _, tt := range tests {
		n, err := s.CountRuns(ctx, tt.pipeline, tt.states)
		if err != nil {
			t.Fatal(err)
		}
		if want := expect(tt.pipeline, tt.states); n != want {
			t.Errorf("CountRuns(%q, %v) = %d, want %d", tt.pipeline, tt.states, n, want)
		}
	}
}

// history creates a run of pipeline p in state st, created at created, with
// tasks that have attempts and events, and returns it.
func history(t *testing.T, s store.Store, p string, st engine.RunState, created time.Time) store.Run {
	t.Helper()
	nr := newRun(p, 3)
	nr.Run.CreatedAt = created
	r := mustCreate(t, s, nr)
	mustApply(t, s, store.Change{RunID: r.ID,
		Transition: engine.Transition{
			Run:     &engine.Run{State: st, StartedAt: created, FinishedAt: created.Add(time.Minute)},
			Tasks:   []engine.TaskChange{{Index: 0, Task: engine.Task{State: engine.TaskSucceeded, Attempt: 2, Spent: 2}}},
			Records: []engine.Record{{Time: created, Kind: engine.EvTaskStarted, Task: 0, Attempt: 1}, {Time: created, Kind: engine.EvTaskSucceeded, Task: 0, Attempt: 2}},
		},
		Attempts: []store.Attempt{{Index: 0, Attempt: 1, Outcome: store.OutcomeLost}, {Index: 0, Attempt: 2, Outcome: store.OutcomeSucceeded},
			{Index: 1, Attempt: 1}},
	})
	r, err := s.Run(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func testPruneRuns(t *testing.T, s store.Store) {
	ctx := t.Context()
	day := 24 * time.Hour
	cutoff := t0.Add(-90 * day)
	var prunable []int64
	var kept []store.Run
	// Old finished runs, created out of ID order, so "oldest first" means
	// by creation time.
	for i, st := range []engine.RunState{engine.RunSucceeded, engine.RunFailed, engine.RunCancelled, engine.RunSucceeded, engine.RunFailed} {
		r := history(t, s, "p", st, cutoff.Add(-time.Duration(10-i%3)*day-time.Duration(i)*time.Second))
		prunable = append(prunable, r.ID)
	}
	// Old unfinished runs are never pruned, nor are recent finished ones,
	// nor one created exactly at the cutoff.
	for _, st := range []engine.RunState{engine.RunQueued, engine.RunRunning} {
		kept = append(kept, history(t, s, "p", st, cutoff.Add(-365*day)))
	}
	kept = append(kept, history(t, s, "p", engine.RunSucceeded, cutoff))
	kept = append(kept, history(t, s, "q", engine.RunFailed, cutoff.Add(day)))
	// A backfill whose runs all get pruned.
	from := cutoff.Add(-100 * day)
	oldRuns := backfillRuns("p", from, 2, 1)
	for i := range oldRuns {
		oldRuns[i].Run.CreatedAt = from
	}
	b, err := s.CreateBackfill(ctx, store.Backfill{Pipeline: "p", From: from, To: from.Add(2 * time.Hour), CreatedAt: from}, oldRuns)
	if err != nil {
		t.Fatal(err)
	}
	bruns, err := s.ListRuns(ctx, store.RunFilter{BackfillID: b.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range bruns {
		mustApply(t, s, store.Change{RunID: r.ID, Transition: engine.Transition{Run: &engine.Run{State: engine.RunSucceeded}}})
		prunable = append(prunable, r.ID)
	}
	var keptSnaps []snapshot
	for _, r := range kept {
		keptSnaps = append(keptSnaps, take(t, s, r.ID))
	}

	// Want oldest first: by created_at.
	created := map[int64]time.Time{}
	for _, id := range prunable {
		r, err := s.Run(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		created[id] = r.CreatedAt
	}
	wantOrder := slices.Clone(prunable)
	slices.SortStableFunc(wantOrder, func(a, b int64) int {
		if c := created[a].Compare(created[b]); c != 0 {
			return c
		}
		return int(a - b)
	})

	var pruned []int64
	for range 100 {
		ids, err := s.PruneRuns(ctx, cutoff, 2)
		if err != nil {
			t.Fatalf("PruneRuns: %v", err)
		}
		if len(ids) > 2 {
			t.Fatalf("PruneRuns(limit 2) pruned %d runs", len(ids))
		}
		pruned = append(pruned, ids...)
		if len(ids) < 2 {
			break
		}
	}
	check(t, "pruned IDs, oldest first", pruned, wantOrder)
	for _, id := range prunable {
		if _, err := s.Run(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("pruned run %d: Run = %v, want ErrNotFound", id, err)
		}
		if _, err := s.Tasks(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("pruned run %d: Tasks = %v, want ErrNotFound", id, err)
		}
		if _, err := s.Attempts(ctx, id, -1); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("pruned run %d: Attempts = %v, want ErrNotFound", id, err)
		}
		if _, err := s.Events(ctx, id, 0, 0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("pruned run %d: Events = %v, want ErrNotFound", id, err)
		}
	}
	for i, r := range kept {
		check(t, fmt.Sprintf("kept run %d (%s, created %s)", r.ID, r.State, r.CreatedAt), take(t, s, r.ID), keptSnaps[i])
	}
	// The backfill stays, with its count as created; it counts no runs now.
	if got, err := s.Backfill(ctx, b.ID); err != nil || got.Runs != 2 {
		t.Errorf("backfill after its runs were pruned = %+v, %v; want kept with Runs 2", got, err)
	}
	if counts, err := s.BackfillCounts(ctx, b.ID); err != nil || len(counts) != 0 {
		t.Errorf("BackfillCounts after its runs were pruned = %v, %v; want none", counts, err)
	}
	// Nothing left to prune.
	if ids, err := s.PruneRuns(ctx, cutoff, 0); err != nil || len(ids) != 0 {
		t.Errorf("second prune = %v, %v; want nothing", ids, err)
	}
	// New runs get new IDs (pruned ones are not reused: they name log
	// directories and URLs).
	r := mustCreate(t, s, newRun("p", 1))
	if r.ID <= slices.Max(prunable) {
		t.Errorf("new run ID %d reuses a pruned one (max %d)", r.ID, slices.Max(prunable))
	}
}

func testPruneRunsLimits(t *testing.T, s store.Store) {
	ctx := t.Context()
	n := store.DefaultPruneLimit + 5
	for range n {
		nr := newRun("p", 0)
		nr.Run.State = engine.RunSucceeded
		nr.Run.CreatedAt = t0.Add(-time.Hour)
		mustCreate(t, s, nr)
	}
	if ids, err := s.PruneRuns(ctx, time.Time{}, 10); err != nil || len(ids) != 0 {
		t.Errorf("PruneRuns before the zero time = %v, %v; want nothing", ids, err)
	}
	if ids, err := s.PruneRuns(ctx, t0.Add(-2*time.Hour), 10); err != nil || len(ids) != 0 {
		t.Errorf("PruneRuns before every run = %v, %v; want nothing", ids, err)
	}
	ids, err := s.PruneRuns(ctx, t0, 0)
	if err != nil || len(ids) != store.DefaultPruneLimit {
		t.Errorf("PruneRuns(limit 0) pruned %d, %v; want %d", len(ids), err, store.DefaultPruneLimit)
	}
	ids, err = s.PruneRuns(ctx, t0, store.MaxPruneLimit*10)
	if err != nil || len(ids) != 5 {
		t.Errorf("PruneRuns of the rest pruned %d, %v; want 5", len(ids), err)
	}
	if n, err := s.CountRuns(ctx, "", nil); err != nil || n != 0 {
		t.Errorf("%d runs left, %v", n, err)
	}
}

func testServerNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	const missing = 123456789
	tests := []struct {
		name string
		call func() error
	}{
		{"PipelineState", func() error { _, err := s.PipelineState(ctx, "nope"); return err }},
		{"SetPaused", func() error { return s.SetPaused(ctx, "nope", true) }},
		{"SetNextFire", func() error { return s.SetNextFire(ctx, "nope", t0) }},
		{"AdvanceSchedule", func() error { return s.AdvanceSchedule(ctx, "nope", time.Time{}, t0, t0) }},
		{"CreateRun with a Schedule", func() error {
			_, err := s.CreateRun(ctx, scheduled("nope", t0, &store.ScheduleAdvance{NextFire: t0}))
			return err
		}},
		{"CreateRun in a backfill", func() error {
			nr := newRun("p", 1)
			nr.Run.BackfillID = missing
			_, err := s.CreateRun(ctx, nr)
			return err
		}},
		{"Backfill", func() error { _, err := s.Backfill(ctx, missing); return err }},
		{"SetBackfillState", func() error { return s.SetBackfillState(ctx, missing, store.BackfillCancelled, t0) }},
		{"BackfillCounts", func() error { _, err := s.BackfillCounts(ctx, missing); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("err = %v, want ErrNotFound", err)
			}
		})
	}
	// None of them created anything.
	if states, err := s.PipelineStates(ctx); err != nil || len(states) != 0 {
		t.Errorf("PipelineStates = %v, %v; want none", states, err)
	}
	if runs := allRuns(t, s); len(runs) != 0 {
		t.Errorf("%d runs exist", len(runs))
	}
	// Lists of nothing are empty, not errors.
	if bs, err := s.ListBackfills(ctx, "nope", 0, 0); err != nil || len(bs) != 0 {
		t.Errorf("ListBackfills = %v, %v", bs, err)
	}
}

package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// testRunDeadlines: a run's deadline is written by CreateRun (and
// CreateBackfill) and read back by every read of runs; DeadlineRuns lists
// the runs still judged; SetRunDeadline is a compare-and-set that writes
// the state, the prediction and the records together, fenced when asked.
func testRunDeadlines(t *testing.T, s store.Store) {
	ctx := t.Context()
	deadline := t0.Add(2 * time.Hour)
	nr := newRun("p", 3)
	nr.Run.Deadline = deadline
	nr.Run.DeadlineState = store.DeadlineMet // not CreateRun's to write
	nr.Run.CriticalPath = []string{"x"}
	with := mustCreate(t, s, nr)
	without := mustCreate(t, s, newRun("p", 1))
	other := newRun("q", 1)
	other.Run.Deadline = deadline.Add(time.Hour)
	third := mustCreate(t, s, other)
	if !with.Deadline.Equal(us(deadline)) || with.DeadlineState != "" || with.CriticalPath != nil {
		t.Errorf("CreateRun returned deadline %v state %q path %v, want %v, none, none", with.Deadline, with.DeadlineState, with.CriticalPath, us(deadline))
	}
	read, err := s.Run(ctx, with.ID)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "run with a deadline", read, with)
	if read.Deadline.Location() != time.UTC {
		t.Errorf("deadline read back in %v, want UTC", read.Deadline.Location())
	}
	listed, err := s.ListRuns(ctx, store.RunFilter{Pipeline: "p", States: []engine.RunState{engine.RunQueued, engine.RunRunning}})
	if err != nil {
		t.Fatal(err)
	}
	check(t, "listed runs", listed, []store.Run{without, with})

	open := func() []int64 {
		t.Helper()
		rs, err := s.DeadlineRuns(ctx, 0, 0)
		if err != nil {
			t.Fatalf("DeadlineRuns: %v", err)
		}
		return runIDs(rs)
	}
	if got := open(); !slices.Equal(got, []int64{with.ID, third.ID}) {
		t.Errorf("DeadlineRuns = %v, want %v", got, []int64{with.ID, third.ID})
	}
	if rs, err := s.DeadlineRuns(ctx, with.ID, 10); err != nil || !slices.Equal(runIDs(rs), []int64{third.ID}) {
		t.Errorf("DeadlineRuns after %d = %v, %v", with.ID, runIDs(rs), err)
	}

	predicted := t0.Add(90 * time.Minute)
	rec := engine.Record{Time: t0.Add(time.Minute), Kind: store.RecDeadlineOnTrack, Task: -1,
		Message: "predicted finish 11:00", Data: []byte(`{"critical_path": ["t0", "t2"]}`)}
	u := store.DeadlineUpdate{RunID: with.ID, State: store.DeadlineOnTrack, PredictedFinish: predicted,
		CriticalPath: []string{"t0", "t2"}, Records: []engine.Record{rec}}
	if err := s.SetRunDeadline(ctx, nil, u); err != nil {
		t.Fatalf("SetRunDeadline: %v", err)
	}
	read, _ = s.Run(ctx, with.ID)
	if read.DeadlineState != store.DeadlineOnTrack || !read.PredictedFinish.Equal(us(predicted)) ||
		!slices.Equal(read.CriticalPath, []string{"t0", "t2"}) || !read.Deadline.Equal(us(deadline)) {
		t.Errorf("after SetRunDeadline: state %q predicted %v path %v deadline %v", read.DeadlineState, read.PredictedFinish, read.CriticalPath, read.Deadline)
	}
	evs, err := s.Events(ctx, with.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	if last.Kind != store.RecDeadlineOnTrack || last.Message != rec.Message || !last.Time.Equal(us(rec.Time)) || last.Task != -1 || len(last.Data) == 0 {
		t.Errorf("last event %+v, want the deadline record", last)
	}

	// A stale judgement (the state moved since it was read) writes nothing.
	stale := u
	stale.State, stale.Records = store.DeadlineAtRisk, []engine.Record{{Time: t0, Kind: store.RecDeadlineAtRisk, Task: -1}}
	if err := s.SetRunDeadline(ctx, nil, stale); !errors.Is(err, store.ErrConflict) {
		t.Errorf("SetRunDeadline from a stale state: %v, want ErrConflict", err)
	}
	if evs2, _ := s.Events(ctx, with.ID, 0, 0); len(evs2) != len(evs) {
		t.Errorf("a refused update wrote %d records", len(evs2)-len(evs))
	}

	// Same state, a new prediction, no record; then cleared.
	u2 := store.DeadlineUpdate{RunID: with.ID, Expect: store.DeadlineOnTrack, State: store.DeadlineOnTrack, PredictedFinish: predicted.Add(time.Minute)}
	if err := s.SetRunDeadline(ctx, nil, u2); err != nil {
		t.Fatalf("SetRunDeadline without records: %v", err)
	}
	read, _ = s.Run(ctx, with.ID)
	if !read.PredictedFinish.Equal(us(predicted.Add(time.Minute))) || read.CriticalPath != nil {
		t.Errorf("predicted %v path %v, want %v and none", read.PredictedFinish, read.CriticalPath, us(predicted.Add(time.Minute)))
	}

	// Final states leave the watched set.
	met := store.DeadlineUpdate{RunID: with.ID, Expect: store.DeadlineOnTrack, State: store.DeadlineMet,
		Records: []engine.Record{{Time: t0.Add(time.Hour), Kind: store.RecDeadlineMet, Task: -1}}}
	if err := s.SetRunDeadline(ctx, nil, met); err != nil {
		t.Fatalf("SetRunDeadline met: %v", err)
	}
	if got := open(); !slices.Equal(got, []int64{third.ID}) {
		t.Errorf("DeadlineRuns after met = %v, want %v", got, []int64{third.ID})
	}
	read, _ = s.Run(ctx, with.ID)
	if read.DeadlineState != store.DeadlineMet || !read.PredictedFinish.IsZero() {
		t.Errorf("met run: state %q predicted %v", read.DeadlineState, read.PredictedFinish)
	}

	// Refusals.
	for name, bad := range map[string]store.DeadlineUpdate{
		"unknown state":  {RunID: third.ID, State: "late"},
		"empty state":    {RunID: third.ID},
		"unknown expect": {RunID: third.ID, Expect: "late", State: store.DeadlineAtRisk},
		"bad record":     {RunID: third.ID, State: store.DeadlineAtRisk, Records: []engine.Record{{Kind: "x", Task: -1, Data: []byte("{")}}},
		"bad task id":    {RunID: third.ID, State: store.DeadlineAtRisk, CriticalPath: []string{"a\x00b"}},
	} {
		if err := s.SetRunDeadline(ctx, nil, bad); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: SetRunDeadline = %v, want a validation error", name, err)
		}
	}
	if err := s.SetRunDeadline(ctx, nil, store.DeadlineUpdate{RunID: 1 << 40, State: store.DeadlineAtRisk}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetRunDeadline of an unknown run: %v, want ErrNotFound", err)
	}

	// Fenced: only the leader's term writes.
	l := lead(t, s, "a", time.Minute, t0)
	atRisk := store.DeadlineUpdate{RunID: third.ID, State: store.DeadlineAtRisk, PredictedFinish: deadline.Add(2 * time.Hour)}
	if err := s.SetRunDeadline(ctx, &store.Fence{Holder: "b", Term: l.Term}, atRisk); !errors.Is(err, store.ErrFenced) {
		t.Errorf("SetRunDeadline with another holder's fence: %v, want ErrFenced", err)
	}
	if err := s.SetRunDeadline(ctx, &store.Fence{Holder: "a", Term: l.Term}, atRisk); err != nil {
		t.Errorf("SetRunDeadline with the leader's fence: %v", err)
	}
	if read, _ := s.Run(ctx, third.ID); read.DeadlineState != store.DeadlineAtRisk {
		t.Errorf("fenced update: state %q", read.DeadlineState)
	}

	// Backfills keep the deadlines they are given.
	runs := backfillRuns("p", t0.Truncate(time.Hour), 2, 1)
	runs[1].Run.Deadline = deadline
	b, err := s.CreateBackfill(ctx, store.Backfill{Pipeline: "p", From: t0, To: t0.Add(2 * time.Hour), Actor: "alice"}, runs)
	if err != nil {
		t.Fatal(err)
	}
	brs, err := s.ListRuns(ctx, store.RunFilter{BackfillID: b.ID, Ascending: true})
	if err != nil || len(brs) != 2 {
		t.Fatalf("backfill runs %v, %v", brs, err)
	}
	if !brs[0].Deadline.IsZero() || !brs[1].Deadline.Equal(us(deadline)) {
		t.Errorf("backfill deadlines %v and %v, want none and %v", brs[0].Deadline, brs[1].Deadline, us(deadline))
	}
}

// lead makes holder the leader.
func lead(t *testing.T, s store.Store, holder string, ttl time.Duration, now time.Time) store.Leadership {
	t.Helper()
	l, err := s.AcquireLeadership(t.Context(), holder, "", ttl, now)
	if err != nil || l.Holder != holder {
		t.Fatalf("AcquireLeadership(%s): %+v, %v", holder, l, err)
	}
	return l
}

// succeed is the change that starts and ends attempt n of task idx after
// d, as the runner writes them (the start first, the end without it).
func succeed(run int64, idx, n int, start time.Time, d time.Duration, outcome store.Outcome) []store.Change {
	return []store.Change{
		{RunID: run, Attempts: []store.Attempt{{Index: idx, Attempt: n, Worker: "w", StartedAt: start}}},
		{RunID: run, Attempts: []store.Attempt{{Index: idx, Attempt: n, FinishedAt: start.Add(d), Outcome: outcome}}},
	}
}

// testTaskDurations: Apply records the durations of successful attempts,
// once each, per pipeline and task id, keeping the newest
// store.DurationSamples; nothing else counts, and pruning runs keeps them.
func testTaskDurations(t *testing.T, s store.Store) {
	ctx := t.Context()
	durations := func(p string) map[string][]time.Duration {
		t.Helper()
		m, err := s.TaskDurations(ctx, p)
		if err != nil {
			t.Fatalf("TaskDurations(%s): %v", p, err)
		}
		return m
	}
	if m := durations("p"); len(m) != 0 {
		t.Errorf("durations of a new store: %v", m)
	}
	r := mustCreate(t, s, newRun("p", 3))
	sec := time.Second
	// t0 succeeds in 5s; t1 fails, then succeeds in 7.5s; t2 is cancelled.
	mustApply(t, s, succeed(r.ID, 0, 1, t0, 5*sec, store.OutcomeSucceeded)...)
	mustApply(t, s, succeed(r.ID, 1, 1, t0, 3*sec, store.OutcomeFailed)...)
	mustApply(t, s, succeed(r.ID, 1, 2, t0.Add(4*sec), 7500*time.Millisecond, store.OutcomeSucceeded)...)
	mustApply(t, s, succeed(r.ID, 2, 1, t0, 9*sec, store.OutcomeCancelled)...)
	// The same success written again counts once.
	mustApply(t, s, succeed(r.ID, 0, 1, t0, 5*sec, store.OutcomeSucceeded)...)
	check(t, "durations", durations("p"), map[string][]time.Duration{"t0": {5 * sec}, "t1": {7500 * time.Millisecond}})

	// A second pipeline with the same task ids is apart; a start and end in
	// one change count; an attempt that never started does not.
	q := mustCreate(t, s, newRun("q", 2))
	mustApply(t, s, store.Change{RunID: q.ID, Attempts: []store.Attempt{{Index: 0, Attempt: 1, StartedAt: t0, FinishedAt: t0.Add(time.Minute), Outcome: store.OutcomeSucceeded}}})
	mustApply(t, s, store.Change{RunID: q.ID, Attempts: []store.Attempt{{Index: 1, Attempt: 1, FinishedAt: t0, Outcome: store.OutcomeSucceeded}}})
	check(t, "durations of q", durations("q"), map[string][]time.Duration{"t0": {time.Minute}})

	// Many runs: only the newest DurationSamples are kept, newest first,
	// also when one batch holds several successes of the task.
	var want []time.Duration
	for i := range store.DurationSamples + 7 {
		run := mustCreate(t, s, newRun("p", 3))
		d := time.Duration(i+1) * 100 * time.Millisecond
		var changes []store.Change
		changes = append(changes, succeed(run.ID, 0, 1, t0.Add(time.Duration(i)*time.Hour), d, store.OutcomeSucceeded)...)
		if i%5 == 0 {
			// A second run in the same batch.
			extra := mustCreate(t, s, newRun("p", 3))
			changes = append(changes, succeed(extra.ID, 0, 1, t0.Add(time.Duration(i)*time.Hour), d+time.Millisecond, store.OutcomeSucceeded)...)
			want = append(want, d)
			d += time.Millisecond
		}
		want = append(want, d)
		mustApply(t, s, changes...)
	}
	slices.Reverse(want)
	got := durations("p")
	if !slices.Equal(got["t0"], want[:store.DurationSamples]) {
		t.Errorf("durations of t0:\n got  %v\n want %v", got["t0"], want[:store.DurationSamples])
	}
	if !slices.Equal(got["t1"], []time.Duration{7500 * time.Millisecond}) {
		t.Errorf("durations of t1 changed: %v", got["t1"])
	}

	// Pruning the runs keeps what their tasks took.
	if _, err := s.PruneRuns(ctx, t0.Add(time.Hour), 0); err != nil {
		t.Fatal(err)
	}
	finish := func(id int64) store.Change {
		return store.Change{RunID: id, Transition: engine.Transition{Run: &engine.Run{State: engine.RunSucceeded, FinishedAt: t0}}}
	}
	mustApply(t, s, finish(r.ID), finish(q.ID))
	ids, err := s.PruneRuns(ctx, t0.Add(time.Hour), 0)
	if err != nil || len(ids) != 2 {
		t.Fatalf("PruneRuns = %v, %v", ids, err)
	}
	if got := durations("q"); !slices.Equal(got["t0"], []time.Duration{time.Minute}) {
		t.Errorf("durations of q after pruning: %v", got)
	}
}

// testConcurrentDurations: successes of one task written concurrently are
// each recorded, and the task keeps about DurationSamples of them.
func testConcurrentDurations(t *testing.T, s store.Store) {
	const writers, each = 4, 15
	runs := make([]int64, writers*each)
	for i := range runs {
		runs[i] = mustCreate(t, s, newRun("c", 1)).ID
	}
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			for k := range each {
				i := w*each + k
				var err error
				for _, c := range succeed(runs[i], 0, 1, t0, time.Duration(i+1)*time.Millisecond, store.OutcomeSucceeded) {
					if err = s.Apply(t.Context(), c); err != nil {
						break
					}
				}
				if err != nil {
					errs <- fmt.Errorf("run %d: %w", runs[i], err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	m, err := s.TaskDurations(t.Context(), "c")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(m["t0"]); n != store.DurationSamples {
		t.Errorf("%d durations kept, want %d", n, store.DurationSamples)
	}
}

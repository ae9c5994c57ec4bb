package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// A pipeline's file history (PipelineVersions), its runs by day (RunDays)
// and the runs of a creation range (RunFilter.CreatedFrom/CreatedBefore):
// what the web UI's pipeline page reads.

func testListPipelineVersions(t *testing.T, s store.Store) {
	ctx := t.Context()
	var want []store.PipelineVersion
	for i := range 5 {
		src := fmt.Appendf(nil, "name: rates\n# version %d\n", i)
		v, err := s.PutPipelineVersion(ctx, store.PipelineVersion{Pipeline: "rates", File: "rates.yaml", Source: src, CreatedAt: t0.Add(time.Duration(i) * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		v.Source = nil // not listed
		want = append(want, v)
		if _, err := s.PutPipelineVersion(ctx, store.PipelineVersion{Pipeline: "other", File: "other.yaml", Source: fmt.Appendf(nil, "name: other\n# %d\n", i)}); err != nil {
			t.Fatal(err)
		}
	}
	slices.Reverse(want)
	got, err := s.PipelineVersions(ctx, "rates", 0, 0)
	if err != nil {
		t.Fatalf("PipelineVersions: %v", err)
	}
	check(t, "versions, newest first", got, want)

	page, err := s.PipelineVersions(ctx, "rates", want[1].ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "versions before the second, two", page, want[2:4])

	none, err := s.PipelineVersions(ctx, "nothing", 0, 10)
	if err != nil || none == nil || len(none) != 0 {
		t.Errorf("versions of an unknown pipeline = %v, %v; want an empty list", none, err)
	}
}

// runOn creates a run of p created at at, in state st, finished at
// finished (zero: not), with a deadline (zero: none).
func runOn(t *testing.T, s store.Store, p string, at time.Time, st engine.RunState, finished, deadline time.Time) store.Run {
	t.Helper()
	nr := newRun(p, 1)
	nr.Run.CreatedAt = at
	nr.Run.State = st
	nr.Run.FinishedAt = finished
	nr.Run.Deadline = deadline
	if st.Terminal() {
		nr.Run.Remaining = 0
	}
	return mustCreate(t, s, nr)
}

func testRunDays(t *testing.T, s store.Store) {
	ctx := t.Context()
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	// Days in Tokyo: 2026-03-14 00:00 JST is 2026-03-13 15:00 UTC.
	day := func(d int) time.Time { return time.Date(2026, 3, d, 0, 0, 0, 0, tokyo) }
	h := time.Hour
	// 13th (JST): a run at its last microsecond belongs to it.
	runOn(t, s, "p", day(14).Add(-time.Microsecond), engine.RunSucceeded, day(14).Add(h), time.Time{})
	// 14th: met (no deadline), met (by deadline), late (finished after
	// it), late (the watcher said missed), failed, cancelled, running,
	// queued; another pipeline's run is not counted.
	runOn(t, s, "p", day(14), engine.RunSucceeded, day(14).Add(h), time.Time{})
	runOn(t, s, "p", day(14).Add(h), engine.RunSucceeded, day(14).Add(2*h), day(14).Add(3*h))
	runOn(t, s, "p", day(14).Add(2*h), engine.RunSucceeded, day(14).Add(5*h), day(14).Add(3*h))
	missed := runOn(t, s, "p", day(14).Add(3*h), engine.RunSucceeded, day(14).Add(4*h), day(14).Add(5*h))
	if err := s.SetRunDeadline(ctx, nil, store.DeadlineUpdate{RunID: missed.ID, State: store.DeadlineMissed}); err != nil {
		t.Fatalf("SetRunDeadline: %v", err)
	}
	runOn(t, s, "p", day(14).Add(4*h), engine.RunFailed, day(14).Add(5*h), time.Time{})
	runOn(t, s, "p", day(14).Add(5*h), engine.RunCancelled, day(14).Add(5*h), time.Time{})
	runOn(t, s, "p", day(14).Add(6*h), engine.RunRunning, time.Time{}, day(14).Add(h))
	runOn(t, s, "p", day(15).Add(-time.Microsecond), engine.RunQueued, time.Time{}, time.Time{})
	runOn(t, s, "q", day(14).Add(h), engine.RunFailed, day(14).Add(2*h), time.Time{})
	// 16th: one failure; the 15th has none.
	runOn(t, s, "p", day(16).Add(23*h), engine.RunFailed, day(17), time.Time{})
	// 17th: outside the range asked for.
	runOn(t, s, "p", day(17), engine.RunFailed, day(17), time.Time{})

	got, err := s.RunDays(ctx, "p", day(13).Add(5*h), day(16).Add(12*h), tokyo)
	if err != nil {
		t.Fatalf("RunDays: %v", err)
	}
	want := []store.RunDay{
		{Day: day(13), Met: 1},
		{Day: day(14), Met: 2, Late: 2, Failed: 1, Cancelled: 1, Running: 2},
		{Day: day(15)},
		{Day: day(16), Failed: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("RunDays = %+v, want %+v", got, want)
	}
	for i := range want {
		if !got[i].Day.Equal(want[i].Day) || got[i].Day.Location().String() != "Asia/Tokyo" {
			t.Errorf("day %d is %v, want %v in Asia/Tokyo", i, got[i].Day, want[i].Day)
		}
		got[i].Day = want[i].Day
	}
	for i := range want {
		got[i].Day, want[i].Day = time.Time{}, time.Time{} // compared above
	}
	check(t, "run days", got, want)

	// The same instants in UTC days: the 13th's (JST) run at 14:59:59 UTC
	// and the 14th's until 21:00 UTC fall on the 13th (UTC); the 14th's
	// queued run at 14:59:59 UTC the next day does not.
	utc, err := s.RunDays(ctx, "p", day(14), day(14), time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if len(utc) != 1 || utc[0].Day != time.Date(2026, 3, 13, 0, 0, 0, 0, time.UTC) || utc[0].Met != 3 || utc[0].Late != 2 || utc[0].Running != 1 {
		t.Errorf("RunDays in UTC = %+v, want the 13th with 3 met, 2 late, 1 running", utc)
	}

	if _, err := s.RunDays(ctx, "p", day(14), day(13), tokyo); err == nil {
		t.Error("RunDays with the end before the start succeeded")
	}
	if _, err := s.RunDays(ctx, "p", day(1), day(1).AddDate(2, 0, 0), tokyo); err == nil {
		t.Errorf("RunDays over two years succeeded, want an error past %d days", store.MaxRunDays)
	}
	empty, err := s.RunDays(ctx, "nothing", day(14), day(15), tokyo)
	if err != nil || len(empty) != 2 || empty[0].Total()+empty[1].Total() != 0 {
		t.Errorf("RunDays of an unknown pipeline = %+v, %v; want two empty days", empty, err)
	}
}

func testListRunsCreated(t *testing.T, s store.Store) {
	ctx := t.Context()
	h := time.Hour
	var runs []store.Run
	for i := range 6 {
		st := engine.RunSucceeded
		if i%2 == 1 {
			st = engine.RunFailed
		}
		runs = append(runs, runOn(t, s, "p", t0.Add(time.Duration(i)*h), st, t0.Add(time.Duration(i)*h), time.Time{}))
		runOn(t, s, "q", t0.Add(time.Duration(i)*h), st, t0, time.Time{})
	}
	ids := func(rs []store.Run) []int64 {
		var out []int64
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	list := func(f store.RunFilter) []int64 {
		t.Helper()
		rs, err := s.ListRuns(ctx, f)
		if err != nil {
			t.Fatalf("ListRuns(%+v): %v", f, err)
		}
		return ids(rs)
	}
	r := ids(runs)
	for _, c := range []struct {
		name string
		f    store.RunFilter
		want []int64
	}{
		{"range", store.RunFilter{Pipeline: "p", CreatedFrom: t0.Add(h), CreatedBefore: t0.Add(4 * h)}, []int64{r[3], r[2], r[1]}},
		{"from only", store.RunFilter{Pipeline: "p", CreatedFrom: t0.Add(4 * h)}, []int64{r[5], r[4]}},
		{"before only", store.RunFilter{Pipeline: "p", CreatedBefore: t0.Add(h)}, []int64{r[0]}},
		{"range and state", store.RunFilter{Pipeline: "p", CreatedFrom: t0, CreatedBefore: t0.Add(6 * h), States: []engine.RunState{engine.RunFailed}}, []int64{r[5], r[3], r[1]}},
		{"range and states", store.RunFilter{Pipeline: "p", CreatedFrom: t0.Add(h), CreatedBefore: t0.Add(6 * h), States: []engine.RunState{engine.RunFailed, engine.RunSucceeded}}, []int64{r[5], r[4], r[3], r[2], r[1]}},
		{"range paged", store.RunFilter{Pipeline: "p", CreatedFrom: t0, CreatedBefore: t0.Add(6 * h), BeforeID: r[4], Limit: 2}, []int64{r[3], r[2]}},
		{"range ascending", store.RunFilter{Pipeline: "p", CreatedFrom: t0.Add(h), CreatedBefore: t0.Add(3 * h), Ascending: true}, []int64{r[1], r[2]}},
		{"empty range", store.RunFilter{Pipeline: "p", CreatedFrom: t0.Add(10 * h), CreatedBefore: t0.Add(11 * h)}, nil},
	} {
		if got := list(c.f); !slices.Equal(got, c.want) {
			t.Errorf("%s: got runs %v, want %v", c.name, got, c.want)
		}
	}
	if _, err := s.ListRuns(ctx, store.RunFilter{CreatedFrom: t0}); err == nil {
		t.Error("ListRuns by creation time without a pipeline succeeded")
	}
}

package storetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// testSLOObjectives checks DeclareSLO: a new objective holds since now, the
// same definition again changes nothing, a changed one starts afresh.
func testSLOObjectives(t *testing.T, s store.Store) {
	ctx := t.Context()
	if got, err := s.SLOObjectives(ctx); err != nil || len(got) != 0 {
		t.Fatalf("SLOObjectives on an empty store = %v, %v", got, err)
	}
	o := store.SLOObjective{Pipeline: "sales-mart", Objective: store.SLODatasetObjective("warehouse.sales_mart"), Definition: "fresh by 09:00 Asia/Tokyo, weekdays"}
	got, err := s.DeclareSLO(ctx, o, t0.In(jst))
	if err != nil {
		t.Fatalf("DeclareSLO: %v", err)
	}
	want := o
	want.Since = us(t0)
	check(t, "declared objective", got, want)
	if got, err = s.DeclareSLO(ctx, o, t0.Add(time.Hour)); err != nil {
		t.Fatalf("DeclareSLO again: %v", err)
	}
	check(t, "objective declared again", got, want)
	changed := o
	changed.Definition = "fresh by 10:00 Asia/Tokyo, weekdays"
	if got, err = s.DeclareSLO(ctx, changed, t0.Add(2*time.Hour)); err != nil {
		t.Fatalf("DeclareSLO changed: %v", err)
	}
	want = changed
	want.Since = us(t0.Add(2 * time.Hour))
	check(t, "changed objective", got, want)
	if _, err := s.DeclareSLO(ctx, store.SLOObjective{Pipeline: "a-first", Objective: store.SLOPipelineObjective, Definition: "max age 15m0s during 09:00-15:00 UTC, daily"}, t0); err != nil {
		t.Fatalf("DeclareSLO: %v", err)
	}
	list, err := s.SLOObjectives(ctx)
	if err != nil || len(list) != 2 || list[0].Pipeline != "a-first" || list[1].Definition != changed.Definition {
		t.Fatalf("SLOObjectives = %+v, %v", list, err)
	}
	for _, bad := range []store.SLOObjective{
		{Objective: "pipeline", Definition: "x"},
		{Pipeline: "p", Definition: "x"},
		{Pipeline: "p", Objective: "pipeline"},
		{Pipeline: "p\x00", Objective: "pipeline", Definition: "x"},
	} {
		if _, err := s.DeclareSLO(ctx, bad, t0); err == nil {
			t.Errorf("DeclareSLO(%+v) succeeded", bad)
		}
	}
}

// testSLOWindows checks that a window is written once and read back by
// its end.
func testSLOWindows(t *testing.T, s store.Store) {
	ctx := t.Context()
	const p, o = "sales-mart", "pipeline"
	day := 24 * time.Hour
	for i := range 5 {
		w := store.SLOWindow{Pipeline: p, Objective: o, Start: t0.Add(time.Duration(i) * day), End: t0.Add(time.Duration(i+1) * day).In(jst),
			Met: i%2 == 0, Judged: 6 * time.Hour, Compliant: time.Duration(i) * time.Hour}
		if ok, err := s.RecordSLOWindow(ctx, w); err != nil || !ok {
			t.Fatalf("RecordSLOWindow %d = %v, %v", i, ok, err)
		}
	}
	// Once: the second write of a window changes nothing.
	if ok, err := s.RecordSLOWindow(ctx, store.SLOWindow{Pipeline: p, Objective: o, Start: t0, End: t0.Add(day), Met: false}); err != nil || ok {
		t.Fatalf("RecordSLOWindow again = %v, %v; want false, nil", ok, err)
	}
	if _, err := s.RecordSLOWindow(ctx, store.SLOWindow{Pipeline: p, Objective: "dataset:other", Start: t0, End: t0.Add(day)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.SLOWindows(ctx, p, o, t0.Add(2*day))
	if err != nil {
		t.Fatalf("SLOWindows: %v", err)
	}
	want := []store.SLOWindow{
		{Pipeline: p, Objective: o, Start: us(t0.Add(2 * day)), End: us(t0.Add(3 * day)), Met: true, Judged: 6 * time.Hour, Compliant: 2 * time.Hour},
		{Pipeline: p, Objective: o, Start: us(t0.Add(3 * day)), End: us(t0.Add(4 * day)), Met: false, Judged: 6 * time.Hour, Compliant: 3 * time.Hour},
		{Pipeline: p, Objective: o, Start: us(t0.Add(4 * day)), End: us(t0.Add(5 * day)), Met: true, Judged: 6 * time.Hour, Compliant: 4 * time.Hour},
	}
	check(t, "windows", got, want)
	if all, _ := s.SLOWindows(ctx, p, o, time.Time{}); len(all) != 5 || !all[0].Met {
		t.Errorf("all windows = %+v; want 5, the first met as first written", all)
	}
	for _, bad := range []store.SLOWindow{
		{Pipeline: p, Objective: o, Start: t0, End: t0},
		{Pipeline: p, Objective: o, Start: t0, End: t0.Add(time.Hour), Judged: time.Minute, Compliant: time.Hour},
		{Pipeline: p, Objective: o, Start: t0, End: t0.Add(time.Hour), Judged: -time.Minute},
		{Objective: o, Start: t0, End: t0.Add(time.Hour)},
	} {
		if _, err := s.RecordSLOWindow(ctx, bad); err == nil {
			t.Errorf("RecordSLOWindow(%+v) succeeded", bad)
		}
	}
}

// testSLOBreaches checks breaches: stored once per start with the cause
// first seen, ended once, listed newest first by every filter, free text
// made storable, and pruned only once ended.
func testSLOBreaches(t *testing.T, s store.Store) {
	ctx := t.Context()
	const p = "sales-mart"
	o := store.SLODatasetObjective("warehouse.sales_mart")
	b := store.SLOBreach{Pipeline: p, Objective: o, WindowStart: t0.Add(-24 * time.Hour), WindowEnd: t0, Start: t0.In(jst),
		RunID: 12, RunState: "running", TaskID: "wait-london", TaskState: "waiting", Message: "no file matches /data/*.csv",
		Cause: "run 12 is running: task wait-london is waiting: no file matches /data/*.csv"}
	got, isNew, err := s.RecordSLOBreach(ctx, b)
	if err != nil || !isNew || got.ID == 0 {
		t.Fatalf("RecordSLOBreach = %+v, %v, %v", got, isNew, err)
	}
	want := b
	want.ID, want.WindowStart, want.WindowEnd, want.Start = got.ID, us(b.WindowStart), us(b.WindowEnd), us(b.Start)
	check(t, "breach", got, want)
	again := b
	again.Cause, again.RunState = "something else", "failed"
	if got2, isNew, err := s.RecordSLOBreach(ctx, again); err != nil || isNew {
		t.Fatalf("RecordSLOBreach again = %v, %v; want not new", isNew, err)
	} else {
		check(t, "breach recorded again", got2, want)
	}

	if err := s.EndSLOBreach(ctx, got.ID, t0.Add(80*time.Minute)); err != nil {
		t.Fatalf("EndSLOBreach: %v", err)
	}
	if err := s.EndSLOBreach(ctx, got.ID, t0.Add(3*time.Hour)); err != nil {
		t.Fatalf("EndSLOBreach again: %v", err)
	}
	if err := s.EndSLOBreach(ctx, got.ID+1000, t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("EndSLOBreach of an unknown breach = %v, want ErrNotFound", err)
	}

	// More breaches: an open one later, one of another objective, one of
	// another pipeline, with text that needs care.
	long := strings.Repeat("é", store.MaxSLOText)
	for _, nb := range []store.SLOBreach{
		{Pipeline: p, Objective: o, WindowStart: t0, WindowEnd: t0.Add(24 * time.Hour), Start: t0.Add(24 * time.Hour), Cause: "no run started", Message: long},
		{Pipeline: p, Objective: store.SLOPipelineObjective, WindowStart: t0, WindowEnd: t0.Add(2 * time.Hour), Start: t0.Add(2 * time.Hour), End: t0.Add(3 * time.Hour), RunID: 13, RunState: "failed", Cause: "bad \xff text\x00"},
		{Pipeline: "other", Objective: store.SLOPipelineObjective, WindowStart: t0, WindowEnd: t0.Add(time.Hour), Start: t0.Add(time.Hour)},
	} {
		if _, isNew, err := s.RecordSLOBreach(ctx, nb); err != nil || !isNew {
			t.Fatalf("RecordSLOBreach(%s %s) = %v, %v", nb.Pipeline, nb.Objective, isNew, err)
		}
	}
	list := func(f store.SLOBreachFilter) []store.SLOBreach {
		t.Helper()
		got, err := s.SLOBreaches(ctx, f)
		if err != nil {
			t.Fatalf("SLOBreaches(%+v): %v", f, err)
		}
		return got
	}
	starts := func(bs []store.SLOBreach) []time.Duration {
		var out []time.Duration
		for _, b := range bs {
			out = append(out, b.Start.Sub(us(t0)))
		}
		return out
	}
	for _, c := range []struct {
		f    store.SLOBreachFilter
		want []time.Duration
	}{
		{store.SLOBreachFilter{}, []time.Duration{24 * time.Hour, 2 * time.Hour, time.Hour, 0}},
		{store.SLOBreachFilter{Limit: 2}, []time.Duration{24 * time.Hour, 2 * time.Hour}},
		{store.SLOBreachFilter{Pipeline: p}, []time.Duration{24 * time.Hour, 2 * time.Hour, 0}},
		{store.SLOBreachFilter{Pipeline: p, Objective: o}, []time.Duration{24 * time.Hour, 0}},
		{store.SLOBreachFilter{Pipeline: p, Objective: o, Since: t0.Add(time.Minute)}, []time.Duration{24 * time.Hour}},
		{store.SLOBreachFilter{Open: true}, []time.Duration{24 * time.Hour, time.Hour}},
	} {
		if got := starts(list(c.f)); !equalDurations(got, c.want) {
			t.Errorf("SLOBreaches(%+v) starts %v, want %v", c.f, got, c.want)
		}
	}
	all := list(store.SLOBreachFilter{Pipeline: p})
	if all[2].End != us(t0.Add(80*time.Minute)) {
		t.Errorf("ended breach: end %v, want the first end given", all[2].End)
	}
	if m := all[0].Message; len(m) > store.MaxSLOText || !strings.HasSuffix(m, "…") {
		t.Errorf("a long message is kept as %d bytes ending %q", len(m), m[len(m)-8:])
	}
	if c := all[1].Cause; c != "bad \uFFFD text\uFFFD" {
		t.Errorf("cause with bad text = %q", c)
	}
	if _, err := s.SLOBreaches(ctx, store.SLOBreachFilter{Objective: o}); err == nil {
		t.Error("SLOBreaches with an objective and no pipeline succeeded")
	}
	if _, _, err := s.RecordSLOBreach(ctx, store.SLOBreach{Pipeline: p, Objective: o, WindowStart: t0, WindowEnd: t0, Start: t0, End: t0.Add(-time.Second)}); err == nil {
		t.Error("RecordSLOBreach ending before its start succeeded")
	}

	// Pruning: what ended before the time goes, open breaches stay.
	if _, err := s.RecordSLOWindow(ctx, store.SLOWindow{Pipeline: p, Objective: o, Start: t0.Add(-24 * time.Hour), End: t0}); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneSLO(ctx, t0.Add(100*time.Hour))
	if err != nil || n != 3 {
		t.Fatalf("PruneSLO = %d, %v; want 3 (a window, two ended breaches)", n, err)
	}
	if got := starts(list(store.SLOBreachFilter{})); !equalDurations(got, []time.Duration{24 * time.Hour, time.Hour}) {
		t.Errorf("after pruning, breaches start at %v; want the open ones", got)
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/notify"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// eventLog is a notify.Publisher that keeps the slo_breach events it is
// given (runs' own events go elsewhere).
type eventLog struct {
	mu     sync.Mutex
	events []notify.Event
}

func (l *eventLog) Publish(_ context.Context, ev notify.Event) error {
	if ev.Kind != notify.SLOBreach {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, ev)
	return nil
}

func (l *eventLog) take() []notify.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.events
	l.events = nil
	return out
}

// martFiles is a pipeline whose one run either succeeds (producing
// warehouse.mart), fails at build (the file ok is missing), or stays
// waiting for its input (no input-*.csv), as the files in data say.
func martFiles(data string) map[string]string {
	return map[string]string{"mart.yaml": fmt.Sprintf(`name: mart
datasets:
  - name: warehouse.mart
    slo: {fresh_by: "09:00", timezone: Europe/Berlin, days: weekdays}
tasks:
  - id: arrived
    wait: {file: %s/input-*.csv, poke: 50ms}
  - id: build
    needs: [arrived]
    produces: [warehouse.mart]
    run: test -f %s/ok
`, data, data)}
}

// martRun sets the data up so the next run of mart ends in want (a run
// left waiting is running), triggers it at the clock's time and returns it
// once it got there.
func (ts *testServer) martRun(ctx context.Context, data string, want engine.RunState) store.Run {
	ts.t.Helper()
	touch := func(name string, on bool) {
		p := filepath.Join(data, name)
		if on {
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				ts.t.Fatal(err)
			}
		} else if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			ts.t.Fatal(err)
		}
	}
	touch("input-1.csv", want != engine.RunRunning)
	touch("ok", want == engine.RunSucceeded)
	var waiting chan struct{}
	if want == engine.RunRunning {
		// The run stays: wait for its wait to report what it saw.
		waiting = make(chan struct{})
		var once sync.Once
		observe := ts.runner.Observe
		ts.runner.Observe = func(p runner.Progress) {
			observe(p)
			if p.Run.Pipeline == "mart" && p.Task(0).State == engine.TaskWaiting && p.Task(0).Message != "" {
				once.Do(func() { close(waiting) })
			}
		}
		defer func() { ts.runner.Observe = observe }()
	}
	r, err := (&service{s: ts.Server}).Trigger(ctx, "mart", nil, "test")
	if err != nil {
		ts.t.Fatal(err)
	}
	if waiting != nil {
		ts.pass(ctx)
		select {
		case <-waiting:
		case <-time.After(30 * time.Second):
			ts.t.Fatal("the wait never reported what it saw")
		}
	} else {
		ts.settle(ctx)
	}
	run, err := ts.store.Run(ctx, r.ID)
	if err != nil {
		ts.t.Fatal(err)
	}
	if run.State != want {
		ts.t.Fatalf("run %d of mart is %s, want %s", run.ID, run.State, want)
	}
	return run
}

// judgeAt moves the clock and judges the objectives.
func (ts *testServer) judgeAt(ctx context.Context, t time.Time) {
	ts.t.Helper()
	ts.clock.Set(t)
	ts.judgeObjectives(ctx)
}

// objectiveNamed returns one objective as the API shows it.
func (ts *testServer) objectiveNamed(ctx context.Context, name string) api.SLO {
	ts.t.Helper()
	list, err := sloAPI{ts.Server}.ListSLOs(ctx, "")
	if err != nil {
		ts.t.Fatal(err)
	}
	for _, o := range list {
		if o.Name == name {
			return o
		}
	}
	ts.t.Fatalf("no objective %s in %+v", name, list)
	return api.SLO{}
}

func pct(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", *p)
}

// TestObjectiveAcrossAWeek follows a weekdays fresh_by objective in
// Berlin through a week with a weekend and the change to summer time: a
// run that failed and the data that came an hour late, a weekend update
// that counts for Monday, a run stuck on its wait. Each breach is told
// once, with its cause, and kept across a restart.
func TestObjectiveAcrossAWeek(t *testing.T) {
	ctx := context.Background()
	berlin := mustLoad(t, "Europe/Berlin")
	at := func(day, h, m int) time.Time { return time.Date(2026, 3, day, h, m, 0, 0, berlin) }
	data := t.TempDir()
	dir := pipelineDir(t, martFiles(data))
	home := t.TempDir()
	ts := newTestServer(t, home, dir, at(25, 8, 0)) // Wednesday
	events := &eventLog{}
	ts.alerts = events
	ts.judgeAt(ctx, at(25, 8, 0))
	if o := ts.objectiveNamed(ctx, "dataset:warehouse.mart"); o.State != api.SLOPending || !o.Since.Equal(at(25, 8, 0)) ||
		o.Definition != "fresh by 09:00 Europe/Berlin, weekdays" || o.Compliance.Days7 != nil {
		t.Fatalf("before any deadline: %+v", o)
	}

	// Wednesday: on time.
	ts.clock.Set(at(25, 8, 30))
	ts.martRun(ctx, data, engine.RunSucceeded)
	ts.judgeAt(ctx, at(25, 9, 0))
	if o := ts.objectiveNamed(ctx, "dataset:warehouse.mart"); o.State != api.SLOPending || o.LastUpdate == nil || !o.LastUpdate.Equal(at(25, 8, 30)) {
		t.Fatalf("Wednesday 09:00, met: the next window is pending: %+v", o)
	}

	// Thursday: the build fails; the deadline passes; the data comes at
	// 10:00.
	ts.clock.Set(at(26, 8, 0))
	failed := ts.martRun(ctx, data, engine.RunFailed)
	ts.judgeAt(ctx, at(26, 8, 59))
	if ev := events.take(); len(ev) != 0 {
		t.Fatalf("events before the deadline: %+v", ev)
	}
	ts.judgeAt(ctx, at(26, 9, 0))
	ts.judgeAt(ctx, at(26, 9, 30))
	ev := events.take()
	if len(ev) != 1 || ev[0].Kind != notify.SLOBreach || ev[0].Objective != "dataset:warehouse.mart" || ev[0].Pipeline != "mart" ||
		ev[0].RunID != failed.ID || !strings.Contains(ev[0].Reason, "task build failed") {
		t.Fatalf("Thursday's breach told as %+v", ev)
	}
	o := ts.objectiveNamed(ctx, "dataset:warehouse.mart")
	if o.State != api.SLOBreached || len(o.Breaches) != 1 || !o.Breaches[0].Open || o.Breaches[0].Seconds != 1800 {
		t.Fatalf("Thursday 09:30: %+v", o)
	}
	b := o.Breaches[0]
	if b.RunID != failed.ID || b.RunState != "failed" || b.Task != "build" || b.TaskState != "failed" ||
		b.Cause != fmt.Sprintf("run %d failed: task build failed: %s", failed.ID, b.Message) || !b.Start.Equal(at(26, 9, 0)) {
		t.Errorf("Thursday's breach: %+v", b)
	}
	events2 := ts.eventsOf(ctx, failed.ID, store.RecSLOBreached)
	if len(events2) != 1 || !strings.Contains(events2[0].Message, "dataset:warehouse.mart breached at 2026-03-26 09:00 CET") {
		t.Errorf("the failed run's timeline: %+v", events2)
	}
	ts.clock.Set(at(26, 10, 0))
	ts.martRun(ctx, data, engine.RunSucceeded)
	ts.judgeAt(ctx, at(26, 10, 5))
	o = ts.objectiveNamed(ctx, "dataset:warehouse.mart")
	if o.State != api.SLOMet || o.Breaches[0].Open || o.Breaches[0].Seconds != 3600 || o.Breaches[0].End == nil {
		t.Fatalf("Thursday 10:05, fresh again: %+v", o)
	}

	// Friday on time; a Saturday update counts for Monday, across the
	// change to summer time on Sunday.
	ts.clock.Set(at(27, 7, 0))
	ts.martRun(ctx, data, engine.RunSucceeded)
	ts.judgeAt(ctx, at(27, 9, 0))
	ts.clock.Set(at(28, 12, 0))
	ts.martRun(ctx, data, engine.RunSucceeded)
	ts.judgeAt(ctx, at(28, 12, 1))
	ts.judgeAt(ctx, at(30, 9, 0))
	if ev := events.take(); len(ev) != 0 {
		t.Fatalf("events Friday to Monday: %+v", ev)
	}
	o = ts.objectiveNamed(ctx, "dataset:warehouse.mart")
	if got := pct(o.Compliance.Days7); got != "75.0" {
		t.Errorf("compliance after Monday = %s, want 75.0 (Wednesday, Friday, Monday of four)", got)
	}

	// Tuesday: the run is stuck on its wait at the deadline.
	ts.clock.Set(at(31, 8, 0))
	stuck := ts.martRun(ctx, data, engine.RunRunning)
	ts.judgeAt(ctx, at(31, 9, 0))
	ts.judgeAt(ctx, at(31, 9, 20))
	ev = events.take()
	if len(ev) != 1 || ev[0].RunID != stuck.ID || !strings.Contains(ev[0].Reason, "task arrived is waiting") {
		t.Fatalf("Tuesday's breach told as %+v", ev)
	}
	o = ts.objectiveNamed(ctx, "dataset:warehouse.mart")
	if o.State != api.SLOBreached || len(o.Breaches) != 2 || pct(o.Compliance.Days7) != "60.0" || pct(o.Compliance.Days90) != "60.0" {
		t.Fatalf("Tuesday 09:20: %+v", o)
	}
	b = o.Breaches[0]
	if !b.Open || b.RunID != stuck.ID || b.RunState != "running" || b.Task != "arrived" || b.TaskState != "waiting" ||
		!strings.Contains(b.Message, "input-*.csv") || b.Cause != fmt.Sprintf("run %d is running: task arrived is waiting: %s", stuck.ID, b.Message) ||
		!b.Start.Equal(at(31, 9, 0)) || !b.Window.Start.Equal(at(30, 9, 0)) || !b.Window.End.Equal(at(31, 9, 0)) {
		t.Errorf("Tuesday's breach: %+v", b)
	}

	// A restart keeps the breaches and tells none again.
	ts.stop()
	ts2 := newTestServer(t, home, dir, at(31, 9, 30))
	events = &eventLog{}
	ts2.alerts = events
	ts2.judgeAt(ctx, at(31, 9, 30))
	if ev := events.take(); len(ev) != 0 {
		t.Fatalf("events after a restart: %+v", ev)
	}
	o = ts2.objectiveNamed(ctx, "dataset:warehouse.mart")
	if o.State != api.SLOBreached || len(o.Breaches) != 2 || !o.Breaches[0].Open || o.Breaches[0].Seconds != 1800 ||
		o.Breaches[1].Seconds != 3600 || !o.Since.Equal(at(25, 8, 0)) || pct(o.Compliance.Days30) != "60.0" {
		t.Errorf("after a restart: %+v", o)
	}
}

// eventsOf returns the timeline records of one kind of a run.
func (ts *testServer) eventsOf(ctx context.Context, run int64, kind engine.EventKind) []store.Event {
	ts.t.Helper()
	all, err := ts.store.Events(ctx, run, 0, 0)
	if err != nil {
		ts.t.Fatal(err)
	}
	var out []store.Event
	for _, e := range all {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// TestPipelineObjectiveMaxAge judges a pipeline's own objective, a max age
// of an hour over a night in New York that loses an hour to summer time:
// three stale stretches in the 5 hours of the period make one breached
// window, told once, 70% compliant.
func TestPipelineObjectiveMaxAge(t *testing.T) {
	ctx := context.Background()
	_ = mustLoad(t, "America/New_York") // the zone must be there
	dir := pipelineDir(t, map[string]string{"feed.yaml": `name: feed
slo: {max_age: 1h, during: "00:00-06:00 America/New_York", days: [sun]}
tasks: [{id: pull, run: "true"}]
`})
	utc := func(h, m int) time.Time { return time.Date(2026, 3, 8, h, m, 0, 0, time.UTC) }
	ts := newTestServer(t, t.TempDir(), dir, utc(4, 0)) // Saturday 23:00 EST
	events := &eventLog{}
	ts.alerts = events
	ts.judgeAt(ctx, utc(4, 0))
	run := func(at time.Time) {
		ts.clock.Set(at)
		if _, err := (&service{s: ts.Server}).Trigger(ctx, "feed", nil, "test"); err != nil {
			t.Fatal(err)
		}
		ts.settle(ctx)
	}
	ts.judgeAt(ctx, utc(5, 10)) // stale since the period began at 00:00 EST
	o := ts.objectiveNamed(ctx, "pipeline:feed")
	if o.State != api.SLOBreached || len(o.Breaches) != 1 || o.Breaches[0].RunID != 0 || o.Breaches[0].Cause != "no run of feed had started by 2026-03-08 00:00 EST" {
		t.Fatalf("00:10 EST: %+v", o)
	}
	run(utc(5, 30))
	run(utc(6, 30))
	ts.judgeAt(ctx, utc(7, 45)) // 02:45 EST is 03:45 EDT: stale since 02:30 EST
	o = ts.objectiveNamed(ctx, "pipeline:feed")
	if o.State != api.SLOBreached || len(o.Breaches) != 2 || !o.Breaches[0].Open ||
		!strings.HasPrefix(o.Breaches[0].Cause, "no run of feed started after 2026-03-08 01:30 EST; the last, run 2, succeeded at 2026-03-08 01:30 EST") {
		t.Fatalf("03:45 EDT: %+v", o)
	}
	run(utc(8, 0))
	run(utc(9, 30))
	ts.judgeAt(ctx, utc(10, 0)) // 06:00 EDT: the period is over
	o = ts.objectiveNamed(ctx, "pipeline:feed")
	if o.State != api.SLOPending || len(o.Breaches) != 3 || pct(o.Compliance.Days7) != "70.0" {
		t.Fatalf("06:00 EDT: %+v", o)
	}
	for _, b := range o.Breaches {
		if b.Open || b.Seconds != 1800 {
			t.Errorf("breach %+v: want 30 minutes, over", b)
		}
	}
	if ev := events.take(); len(ev) != 1 || ev[0].Objective != "pipeline:feed" {
		t.Errorf("one breached window told as %+v", ev)
	}
	w, err := ts.store.SLOWindows(ctx, "feed", store.SLOPipelineObjective, time.Time{})
	if err != nil || len(w) != 1 || w[0].Met || w[0].Judged != 5*time.Hour || w[0].Compliant != 3*time.Hour+30*time.Minute {
		t.Errorf("windows %+v, %v", w, err)
	}
}

// TestChangedObjectiveStartsAfresh: editing an objective judges it anew
// from the time of the edit; the old breaches are not its own, and are
// over; taking it out ends its open breach.
func TestChangedObjectiveStartsAfresh(t *testing.T) {
	ctx := context.Background()
	tokyo := mustLoad(t, "Asia/Tokyo")
	at := func(day, h int) time.Time { return time.Date(2026, 3, day, h, 0, 0, 0, tokyo) }
	dir := pipelineDir(t, map[string]string{"p.yaml": "name: p\nslo: {fresh_by: \"09:00\", timezone: Asia/Tokyo}\ntasks: [{id: a, run: \"true\"}]\n"})
	ts := newTestServer(t, t.TempDir(), dir, at(2, 8))
	ts.judgeAt(ctx, at(2, 8))
	ts.judgeAt(ctx, at(3, 10))
	if o := ts.objectiveNamed(ctx, "pipeline:p"); len(o.Breaches) != 2 || pct(o.Compliance.Days7) != "0.0" {
		t.Fatalf("before the edit: %+v", o)
	}
	write(t, filepath.Join(dir, "p.yaml"), "name: p\nslo: {fresh_by: \"10:00\", timezone: Asia/Tokyo}\ntasks: [{id: a, run: \"true\"}]\n# edited\n")
	if err := ts.reload(ctx); err != nil {
		t.Fatal(err)
	}
	ts.judgeAt(ctx, at(3, 11))
	o := ts.objectiveNamed(ctx, "pipeline:p")
	if o.Definition != "fresh by 10:00 Asia/Tokyo, daily" || !o.Since.Equal(at(3, 11)) || len(o.Breaches) != 0 || o.Compliance.Days7 != nil || o.State != api.SLOPending {
		t.Errorf("after the edit: %+v", o)
	}
	if open, err := ts.store.SLOBreaches(ctx, store.SLOBreachFilter{Open: true}); err != nil || len(open) != 0 {
		t.Errorf("open breaches after the edit: %+v, %v", open, err)
	}

	// A breach open when its objective goes away ends: nothing judges it.
	ts.judgeAt(ctx, at(4, 11))
	if open, _ := ts.store.SLOBreaches(ctx, store.SLOBreachFilter{Open: true}); len(open) != 1 {
		t.Fatalf("open breaches on day 4: %+v", open)
	}
	write(t, filepath.Join(dir, "p.yaml"), "name: p\ntasks: [{id: a, run: \"true\"}]\n# no objective\n")
	if err := ts.reload(ctx); err != nil {
		t.Fatal(err)
	}
	ts.judgeAt(ctx, at(4, 12))
	if open, _ := ts.store.SLOBreaches(ctx, store.SLOBreachFilter{Open: true}); len(open) != 0 {
		t.Errorf("open breaches once the objective is gone: %+v", open)
	}
	if list, err := (sloAPI{ts.Server}).ListSLOs(ctx, ""); err != nil || len(list) != 0 {
		t.Errorf("objectives once gone: %+v, %v", list, err)
	}
}

// TestObjectiveZones: an objective without a zone reads its times in the
// schedule's zone, else in the server's.
func TestObjectiveZones(t *testing.T) {
	dir := pipelineDir(t, map[string]string{
		"a.yaml": "name: a\nschedule: {cron: \"0 2 * * *\", timezone: America/New_York}\nslo: {fresh_by: \"09:00\"}\ntasks: [{id: t, run: \"true\"}]\n",
		"b.yaml": "name: b\nslo: {max_age: 1h, during: \"09:00-17:00\"}\ntasks: [{id: t, run: \"true\", produces: [d]}]\ndatasets: [{name: d, slo: {fresh_by: \"08:00\", timezone: Europe/Berlin}}]\n",
	})
	ts := newTestServer(t, t.TempDir(), dir, time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)) // the server's zone: Asia/Tokyo
	var got []string
	for _, ob := range ts.objectives() {
		got = append(got, ob.name()+": "+ob.o.String())
	}
	want := []string{
		"pipeline:a: fresh by 09:00 America/New_York, daily",
		"pipeline:b: max age 1h0m0s during 09:00-17:00 Asia/Tokyo, daily",
		"dataset:d: fresh by 08:00 Europe/Berlin, daily",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("objectives:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

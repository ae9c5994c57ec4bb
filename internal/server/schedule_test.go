package server

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
)

// fakeClock is an injected clock the test moves by hand.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	follow bool      // time passes from setAt on, as on a real clock
	setAt  time.Time // real time of the last Set
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.follow {
		return c.now.Add(time.Since(c.setAt))
	}
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now, c.setAt = t, time.Now()
}

// Follow makes the clock run from now on, from the time it shows, so
// timeouts of waits and tasks pass; Set still jumps it.
func (c *fakeClock) Follow() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setAt, c.follow = time.Now(), true
}

type testServer struct {
	*Server
	stopExecutor func()
	t            *testing.T
	clock        *fakeClock
	dir          string
	home         string
}

// newTestServer makes a server over a pipelines directory holding the given
// files, with an injected clock; the test drives its passes by hand.
func newTestServer(t *testing.T, home, dir string, at time.Time) *testServer {
	t.Helper()
	return newTestServerDB(t, home, dir, "", at)
}

// newTestServerDB is newTestServer on the store db names ("" for SQLite).
func newTestServerDB(t *testing.T, home, dir, db string, at time.Time) *testServer {
	t.Helper()
	clk := &fakeClock{now: at}
	cfg := DefaultConfig()
	cfg.Home, cfg.Pipelines, cfg.Timezone, cfg.DB = home, dir, "Asia/Tokyo", db
	cfg.Pools = map[string]int{"warehouse": 2}
	s, err := New(context.Background(), cfg, Options{Now: clk.Now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Notice: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, t: t, clock: clk, dir: dir, home: home}
	// The in-process executor, as Run starts it.
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.broker.RunLocal(ctx, cfg.Workers, nil, s.runner.RunProcess)
	}()
	ts.stopExecutor = func() { stop(); <-done }
	t.Cleanup(ts.stop)
	if err := s.reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ts
}

func (ts *testServer) stop() {
	ts.runner.Drain()
	ts.wg.Wait()
	ts.stopExecutor()
	ts.store.Close()
}

// at moves the clock and runs one scheduler pass.
func (ts *testServer) at(t time.Time) {
	ts.t.Helper()
	ts.clock.Set(t)
	ts.pass(context.Background())
}

// intervals returns the interval ends of the pipeline's scheduled runs,
// oldest first, formatted in loc.
func (ts *testServer) intervals(pipeline string, loc *time.Location) []string {
	ts.t.Helper()
	runs, err := ts.store.ListRuns(context.Background(), store.RunFilter{Pipeline: pipeline, Trigger: store.TriggerSchedule, Ascending: true, Limit: 1000})
	if err != nil {
		ts.t.Fatal(err)
	}
	var out []string
	for _, r := range runs {
		out = append(out, r.IntervalEnd.In(loc).Format("01-02 15:04 MST"))
	}
	return out
}

func pipelineDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		write(t, filepath.Join(dir, name), content)
	}
	return dir
}

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func eq(a, b []string) bool {
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

// TestScheduleAcrossDST drives a daily 02:30 schedule in New York through
// the spring-forward day (02:30 does not exist: one run, at 03:00 EDT) and a
// daily 01:30 schedule through the fall-back day (01:30 happens twice: one
// run, at the first).
func TestScheduleAcrossDST(t *testing.T) {
	ny := mustLoad(t, "America/New_York")
	dir := pipelineDir(t, map[string]string{
		"spring.yaml": "name: spring\nschedule: {cron: '30 2 * * *', timezone: America/New_York, catchup: all}\ntasks: [{id: a, run: 'true'}]\n",
		"fall.yaml":   "name: fall\nschedule: {cron: '30 1 * * *', timezone: America/New_York, catchup: all}\ntasks: [{id: a, run: 'true'}]\n",
	})
	ts := newTestServer(t, t.TempDir(), dir, time.Date(2026, 3, 6, 12, 0, 0, 0, ny))
	steps := []time.Time{
		time.Date(2026, 3, 7, 2, 30, 0, 0, ny),
		time.Date(2026, 3, 7, 12, 0, 0, 0, ny),
		time.Date(2026, 3, 8, 3, 0, 0, 0, ny), // the moment the clocks jump
		time.Date(2026, 3, 8, 3, 30, 0, 0, ny),
		time.Date(2026, 3, 9, 2, 30, 0, 0, ny),
	}
	for _, at := range steps {
		ts.at(at)
	}
	want := []string{"03-07 02:30 EST", "03-08 03:00 EDT", "03-09 02:30 EDT"}
	if got := ts.intervals("spring", ny); !eq(got, want) {
		t.Fatalf("spring forward: runs ending %v, want %v", got, want)
	}

	first := time.Date(2026, 11, 1, 1, 30, 0, 0, ny) // EDT, the first 01:30
	for _, at := range []time.Time{
		time.Date(2026, 10, 31, 1, 30, 0, 0, ny),
		first, first.Add(30 * time.Minute), first.Add(time.Hour), first.Add(90 * time.Minute), // the second 01:30 (EST) and after
		time.Date(2026, 11, 2, 1, 30, 0, 0, ny),
	} {
		ts.at(at)
	}
	got := ts.intervals("fall", ny)
	tail := got[len(got)-3:]
	if want := []string{"10-31 01:30 EDT", "11-01 01:30 EDT", "11-02 01:30 EST"}; !eq(tail, want) {
		t.Fatalf("fall back: runs ending %v, want %v at the end", got, want)
	}
	// Catch-up "all" filled every day between March and October exactly once.
	seen := map[string]bool{}
	for _, end := range got {
		if seen[end] {
			t.Fatalf("interval ending %s ran twice", end)
		}
		seen[end] = true
	}
}

// TestCatchUpPolicies stops the clock for a few days, as a downtime would,
// and checks each policy.
func TestCatchUpPolicies(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testCatchUpPolicies(t, "") })
	t.Run("postgres", func(t *testing.T) { testCatchUpPolicies(t, pgtest.DSN(t)) })
}

func testCatchUpPolicies(t *testing.T, db string) {
	tokyo := mustLoad(t, "Asia/Tokyo")
	dir := pipelineDir(t, map[string]string{
		"all.yaml":    "name: all\nschedule: {cron: '0 9 * * *', catchup: all, max_catchup: 2}\ntasks: [{id: a, run: 'true'}]\n",
		"latest.yaml": "name: latest\nschedule: {cron: '0 9 * * *'}\ntasks: [{id: a, run: 'true'}]\n",
		"none.yaml":   "name: none\nschedule: {cron: '0 9 * * *', catchup: none}\ntasks: [{id: a, run: 'true'}]\n",
	})
	home := t.TempDir()
	ts := newTestServerDB(t, home, dir, db, time.Date(2026, 11, 20, 8, 0, 0, 0, tokyo))
	ts.at(time.Date(2026, 11, 20, 9, 0, 0, 0, tokyo))
	ts.stop()

	// Down for three days; a new server on the same data directory.
	ts = newTestServerDB(t, home, dir, db, time.Date(2026, 11, 23, 10, 0, 0, 0, tokyo))
	for range 3 {
		ts.at(time.Date(2026, 11, 23, 10, 0, 0, 0, tokyo))
	}
	cases := map[string][]string{
		"all":    {"11-20 09:00 JST", "11-21 09:00 JST", "11-22 09:00 JST", "11-23 09:00 JST"},
		"latest": {"11-20 09:00 JST", "11-23 09:00 JST"},
		"none":   {"11-20 09:00 JST"},
	}
	for name, want := range cases {
		if got := ts.intervals(name, tokyo); !eq(got, want) {
			t.Errorf("%s: runs ending %v, want %v", name, got, want)
		}
	}
	// The next regular fire happens for every policy.
	ts.at(time.Date(2026, 11, 24, 9, 0, 0, 0, tokyo))
	for name := range cases {
		if got := ts.intervals(name, tokyo); got[len(got)-1] != "11-24 09:00 JST" {
			t.Errorf("%s after the downtime: %v", name, got)
		}
	}
}

// TestPausedPipelineIsNotScheduled pauses a schedule, lets fire times pass,
// and unpauses: the default policy runs only the latest missed interval.
func TestPausedPipelineIsNotScheduled(t *testing.T) {
	tokyo := mustLoad(t, "Asia/Tokyo")
	dir := pipelineDir(t, map[string]string{"p.yaml": "name: p\nschedule: {cron: '0 * * * *'}\ntasks: [{id: a, run: 'true'}]\n"})
	ts := newTestServer(t, t.TempDir(), dir, time.Date(2026, 11, 20, 8, 30, 0, 0, tokyo))
	svc := &service{s: ts.Server}
	if _, err := svc.SetPaused(context.Background(), "p", true, "test"); err != nil {
		t.Fatal(err)
	}
	ts.at(time.Date(2026, 11, 20, 9, 0, 0, 0, tokyo))
	ts.at(time.Date(2026, 11, 20, 11, 5, 0, 0, tokyo))
	if got := ts.intervals("p", tokyo); len(got) != 0 {
		t.Fatalf("paused pipeline ran: %v", got)
	}
	if _, err := svc.SetPaused(context.Background(), "p", false, "test"); err != nil {
		t.Fatal(err)
	}
	ts.at(time.Date(2026, 11, 20, 11, 6, 0, 0, tokyo))
	if got := ts.intervals("p", tokyo); !eq(got, []string{"11-20 11:00 JST"}) {
		t.Fatalf("after unpause: %v", got)
	}
}

// TestIntervalReachesTasks checks the interval variables a scheduled task sees.
func TestIntervalReachesTasks(t *testing.T) {
	tokyo := mustLoad(t, "Asia/Tokyo")
	out := filepath.Join(t.TempDir(), "seen")
	dir := pipelineDir(t, map[string]string{"p.yaml": `name: p
schedule: {cron: '0 9 * * *'}
tasks:
  - id: a
    run: echo "$TASUKI_TRIGGER $TASUKI_INTERVAL_START $TASUKI_INTERVAL_END $TASUKI_INTERVAL_DATE" > ` + out + `
`})
	ts := newTestServer(t, t.TempDir(), dir, time.Date(2026, 11, 20, 8, 0, 0, 0, tokyo))
	ts.at(time.Date(2026, 11, 20, 9, 0, 0, 0, tokyo))
	ts.wg.Wait()
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := "schedule 2026-11-19T09:00:00+09:00 2026-11-20T09:00:00+09:00 2026-11-19\n"; string(b) != want {
		t.Fatalf("task saw %q, want %q", b, want)
	}
	runs, _ := ts.store.ListRuns(context.Background(), store.RunFilter{Pipeline: "p"})
	if len(runs) != 1 || runs[0].State != engine.RunSucceeded {
		t.Fatalf("runs %+v", runs)
	}
}

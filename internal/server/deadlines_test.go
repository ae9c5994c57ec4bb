package server

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/notify"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
)

// deadlineAlerts keeps the events the deadline watcher publishes (its
// reasons start with the state it judged), not those of the ends of runs.
type deadlineAlerts struct {
	mu     sync.Mutex
	events []notify.Event
	seen   chan notify.Kind // when not nil, each event's kind is sent here too
}

func (a *deadlineAlerts) Publish(_ context.Context, ev notify.Event) error {
	for _, p := range []string{"on track:", "at risk:", "missed:", "met:"} {
		if strings.HasPrefix(ev.Reason, p) {
			a.mu.Lock()
			a.events = append(a.events, ev)
			a.mu.Unlock()
			if a.seen != nil {
				a.seen <- ev.Kind
			}
			return nil
		}
	}
	return nil
}

func (a *deadlineAlerts) all() []notify.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.events)
}

func (a *deadlineAlerts) kinds() []notify.Kind {
	var out []notify.Kind
	for _, ev := range a.all() {
		out = append(out, ev.Kind)
	}
	return out
}

// awaitProgress waits until the run's progress has been observed (the
// deadline watcher's wake-up) and cond holds of the run's tasks.
func (ts *testServer) awaitProgress(ctx context.Context, runID int64, cond func(map[string]store.TaskRow) bool) {
	ts.t.Helper()
	ts.deadlines.init()
	timeout := time.After(20 * time.Second)
	for {
		tasks, err := ts.store.Tasks(ctx, runID)
		if err != nil {
			ts.t.Fatal(err)
		}
		byID := map[string]store.TaskRow{}
		for _, t := range tasks {
			byID[t.TaskID] = t
		}
		if cond(byID) {
			return
		}
		select {
		case <-ts.deadlines.wake:
		case <-timeout:
			ts.t.Fatalf("run %d: tasks %+v never got there", runID, byID)
		}
	}
}

// deadlineEvents returns the run's deadline records.
func (ts *testServer) deadlineEvents(ctx context.Context, runID int64) []store.Event {
	ts.t.Helper()
	evs, err := ts.store.Events(ctx, runID, 0, store.MaxEventsLimit)
	if err != nil {
		ts.t.Fatal(err)
	}
	var out []store.Event
	for _, e := range evs {
		if strings.HasPrefix(string(e.Kind), "deadline_") {
			out = append(out, e)
		}
	}
	return out
}

const relayPipeline = `name: relay
deadline: {after: 20s}
tasks:
  - id: relay
    wait: {file: %s/quotes.csv, poke: 1s}
  - id: publish
    needs: [relay]
    expected_duration: 8s
    run: "true"
`

// TestDeadlineAtRiskBeforeTheMiss is the acceptance case on a real
// server with the injected clock: a 20 s deadline, a relay wait (poke 1s)
// that keeps waiting, then a task expected to take 8s. Judged every
// second, the run is on track at first and at risk no later than 12 s
// after the start, with the predicted finish, the critical path and what
// the relay waits on in the timeline and in the alert. When the file lands
// and the run succeeds before the deadline, it is met and "recovered" is
// published. On SQLite and on PostgreSQL.
func TestDeadlineAtRiskBeforeTheMiss(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			dsn := ""
			if db == "postgres" {
				dsn = pgtest.DSN(t)
			}
			testAtRiskBeforeTheMiss(t, dsn)
		})
	}
}

func testAtRiskBeforeTheMiss(t *testing.T, dsn string) {
	ctx := context.Background()
	data := t.TempDir()
	dir := pipelineDir(t, map[string]string{"relay.yaml": strings.ReplaceAll(relayPipeline, "%s", data)})
	start := time.Date(2026, 12, 7, 19, 0, 0, 0, time.UTC)
	ts := newTestServerDB(t, t.TempDir(), dir, dsn, start)
	alerts := &deadlineAlerts{}
	ts.alerts = alerts
	svc := &service{s: ts.Server}
	created, err := svc.Trigger(ctx, "relay", nil, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if created.Deadline == nil || !created.Deadline.Equal(start.Add(20*time.Second)) {
		t.Fatalf("the run's deadline is %v, want %s (20s after its creation)", created.Deadline, start.Add(20*time.Second))
	}
	ts.pass(ctx) // starts the run
	ts.awaitProgress(ctx, created.ID, func(ts map[string]store.TaskRow) bool {
		return ts["relay"].State == engine.TaskWaiting && ts["relay"].Message != ""
	})

	var atRisk time.Duration = -1
	for el := time.Duration(0); el <= 19*time.Second; el += time.Second {
		ts.clock.Set(start.Add(el))
		ts.deadlinePass(ctx, nil)
		r, err := ts.store.Run(ctx, created.ID)
		if err != nil {
			t.Fatal(err)
		}
		if el == 0 && r.DeadlineState != store.DeadlineOnTrack {
			t.Fatalf("at the start the run is %q, want on_track", r.DeadlineState)
		}
		if r.DeadlineState == store.DeadlineAtRisk {
			atRisk = el
			if want := start.Add(el + 9*time.Second); !r.PredictedFinish.Equal(want) {
				t.Errorf("predicted finish %s, want %s (now + the poke + 8s)", r.PredictedFinish, want)
			}
			if !slices.Equal(r.CriticalPath, []string{"relay", "publish"}) {
				t.Errorf("critical path %q", r.CriticalPath)
			}
			break
		}
	}
	if atRisk < 0 || atRisk > 12*time.Second {
		t.Fatalf("at risk %v after the start, want no later than 12s", atRisk)
	}
	t.Logf("at risk %s after the start, %s before the deadline", atRisk, 20*time.Second-atRisk)

	evs := ts.deadlineEvents(ctx, created.ID)
	if len(evs) != 2 || evs[0].Kind != store.RecDeadlineOnTrack || evs[1].Kind != store.RecDeadlineAtRisk {
		t.Fatalf("deadline records %+v, want on_track then at_risk", evs)
	}
	msg := evs[1].Message
	for _, want := range []string{"at risk: predicted finish", "after the deadline", "critical path: relay -> publish", "relay waits: "} {
		if !strings.Contains(msg, want) {
			t.Errorf("at_risk record %q lacks %q", msg, want)
		}
	}
	var data1 deadlineData
	if err := json.Unmarshal(evs[1].Data, &data1); err != nil || data1.Waiting["relay"] == "" || data1.PredictedFinish == nil {
		t.Errorf("at_risk record data %s (%v)", evs[1].Data, err)
	}
	got := alerts.all()
	if len(got) != 1 || got[0].Kind != notify.AtRisk || got[0].RunID != created.ID || got[0].Pipeline != "relay" ||
		!got[0].Deadline.Equal(start.Add(20*time.Second)) || got[0].PredictedFinish.IsZero() || got[0].Reason != msg {
		t.Fatalf("published %+v, want one at_risk with the deadline, the prediction and the reason", got)
	}
	// The API shows it.
	view, err := svc.Run(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if view.DeadlineState != store.DeadlineAtRisk || view.PredictedFinish == nil || !slices.Equal(view.CriticalPath, []string{"relay", "publish"}) {
		t.Errorf("API run: state %q predicted %v path %v", view.DeadlineState, view.PredictedFinish, view.CriticalPath)
	}

	// A pass with nothing new writes nothing.
	ts.deadlinePass(ctx, nil)
	if n := len(ts.deadlineEvents(ctx, created.ID)); n != 2 {
		t.Errorf("%d deadline records after a quiet pass, want 2", n)
	}

	// The data lands; the run finishes before the deadline.
	if err := os.WriteFile(filepath.Join(data, "quotes.csv"), []byte("USDJPY,150.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts.settle(ctx)
	r, _ := ts.store.Run(ctx, created.ID)
	if r.State != engine.RunSucceeded {
		t.Fatalf("run is %s, want succeeded", r.State)
	}
	ts.deadlinePass(ctx, nil)
	r, _ = ts.store.Run(ctx, created.ID)
	if r.DeadlineState != store.DeadlineMet || !r.PredictedFinish.IsZero() || r.CriticalPath != nil {
		t.Errorf("finished run: state %q predicted %v path %v, want met and no prediction", r.DeadlineState, r.PredictedFinish, r.CriticalPath)
	}
	// The watcher opens the incident; the run's success closes it
	// (recovered, published at the run's end, not by a prediction).
	if kinds := alerts.kinds(); !slices.Equal(kinds, []notify.Kind{notify.AtRisk}) {
		t.Errorf("the watcher published %v, want at_risk only", kinds)
	}
	evs = ts.deadlineEvents(ctx, created.ID)
	if last := evs[len(evs)-1]; last.Kind != store.RecDeadlineMet || !strings.Contains(last.Message, "before the deadline") {
		t.Errorf("last deadline record %+v, want deadline_met", last)
	}
	// The durations of its tasks are history now.
	hist, err := ts.store.TaskDurations(ctx, "relay")
	if err != nil || len(hist["relay"]) != 1 || len(hist["publish"]) != 1 {
		t.Errorf("durations %v, %v", hist, err)
	}
	// Met is final: the run is no longer watched.
	if rs, _ := ts.store.DeadlineRuns(ctx, 0, 0); len(rs) != 0 {
		t.Errorf("runs still judged: %d", len(rs))
	}
}

// TestDeadlineMissed: a run whose wait never sees its data is at risk, then
// missed once the deadline passes, with what it waits on; a run that
// finishes quickly is met at its first judgement and tells nobody.
func TestDeadlineMissed(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	dir := pipelineDir(t, map[string]string{
		"relay.yaml": strings.ReplaceAll(relayPipeline, "%s", data),
		"quick.yaml": "name: quick\ndeadline: {after: 1h}\ntasks: [{id: a, run: 'true'}]\n",
	})
	start := time.Date(2026, 12, 7, 19, 0, 0, 0, time.UTC)
	ts := newTestServer(t, t.TempDir(), dir, start)
	alerts := &deadlineAlerts{}
	ts.alerts = alerts
	svc := &service{s: ts.Server}
	relay, err := svc.Trigger(ctx, "relay", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	quick, err := svc.Trigger(ctx, "quick", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	ts.pass(ctx)
	ts.awaitProgress(ctx, relay.ID, func(ts map[string]store.TaskRow) bool { return ts["relay"].Message != "" })
	// The run ends in the commit of its last task's success.
	ts.awaitProgress(ctx, quick.ID, func(ts map[string]store.TaskRow) bool { return ts["a"].State == engine.TaskSucceeded })
	ts.clock.Set(start.Add(15 * time.Second))
	ts.deadlinePass(ctx, nil)
	ts.clock.Set(start.Add(21 * time.Second))
	ts.deadlinePass(ctx, nil)
	r, _ := ts.store.Run(ctx, relay.ID)
	if r.DeadlineState != store.DeadlineMissed {
		t.Fatalf("relay is %q, want missed", r.DeadlineState)
	}
	evs := ts.deadlineEvents(ctx, relay.ID)
	last := evs[len(evs)-1]
	if last.Kind != store.RecDeadlineMissed || !strings.Contains(last.Message, "passed with the run running") || !strings.Contains(last.Message, "relay waits: ") {
		t.Errorf("missed record %q", last.Message)
	}
	q, _ := ts.store.Run(ctx, quick.ID)
	if q.DeadlineState != store.DeadlineMet {
		t.Errorf("quick is %q, want met", q.DeadlineState)
	}
	if kinds := alerts.kinds(); !slices.Equal(kinds, []notify.Kind{notify.AtRisk, notify.Missed}) {
		t.Errorf("published %v, want at_risk then missed (for relay only)", kinds)
	}
	// The metrics counted both changes of state.
	for _, c := range []struct {
		pipeline, state string
		want            float64
	}{{"relay", "at_risk", 1}, {"relay", "missed", 1}, {"quick", "met", 1}} {
		if got := counterValue(t, ts.metrics.Registry(), "tasuki_deadline_states_total", "pipeline", c.pipeline, "state", c.state); got != c.want {
			t.Errorf("tasuki_deadline_states_total{%s,%s} = %v, want %v", c.pipeline, c.state, got, c.want)
		}
	}
	// Missed is final, and stays so.
	ts.clock.Set(start.Add(time.Hour))
	ts.deadlinePass(ctx, nil)
	if n := len(ts.deadlineEvents(ctx, relay.ID)); n != len(evs) {
		t.Errorf("a missed run got more records: %d, had %d", n, len(evs))
	}
	if _, err := svc.Cancel(ctx, relay.ID, "alice"); err != nil {
		t.Fatal(err)
	}
}

// TestDeadlineFromHistory: once a task has succeeded three times its
// recent durations, not expected_duration, decide the prediction.
func TestDeadlineFromHistory(t *testing.T) {
	ctx := context.Background()
	dir := pipelineDir(t, map[string]string{"slow.yaml": `name: slow
deadline: {after: 1m}
tasks:
  - id: load
    expected_duration: 10s
    run: "true"
`})
	start := time.Date(2026, 12, 7, 19, 0, 0, 0, time.UTC)
	ts := newTestServer(t, t.TempDir(), dir, start)
	svc := &service{s: ts.Server}
	first, err := svc.Trigger(ctx, "slow", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	judge := func(runID int64) store.Run {
		t.Helper()
		ts.deadlinePass(ctx, nil)
		r, err := ts.store.Run(ctx, runID)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := judge(first.ID); !r.PredictedFinish.Equal(start.Add(10*time.Second)) || r.DeadlineState != store.DeadlineOnTrack {
		t.Fatalf("queued run: %q, predicted %s; want on_track at 10s (expected_duration)", r.DeadlineState, r.PredictedFinish)
	}
	ts.settle(ctx)
	// Three successes of 90s each, as the attempts recorded them.
	for i := range 3 {
		r, err := svc.Trigger(ctx, "slow", nil, "")
		if err != nil {
			t.Fatal(err)
		}
		at := start.Add(time.Duration(i+1) * time.Hour)
		err = ts.store.Apply(ctx,
			store.Change{RunID: r.ID, Attempts: []store.Attempt{{Index: 0, Attempt: 1, StartedAt: at}}},
			store.Change{RunID: r.ID, Attempts: []store.Attempt{{Index: 0, Attempt: 1, FinishedAt: at.Add(90 * time.Second), Outcome: store.OutcomeSucceeded}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Cancel(ctx, r.ID, "test"); err != nil {
			t.Fatal(err)
		}
	}
	ts.settle(ctx)
	ts.clock.Set(start.Add(5 * time.Hour)) // past the history cache
	next, err := svc.Trigger(ctx, "slow", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	r := judge(next.ID)
	if want := ts.now().Add(90 * time.Second); !r.PredictedFinish.Equal(want) || r.DeadlineState != store.DeadlineAtRisk {
		t.Errorf("with history: %q, predicted %s; want at_risk at %s (90s, past the 1m deadline)", r.DeadlineState, r.PredictedFinish, want)
	}
}

// TestDeadlineWatcher: the watcher the leader starts judges runs on its
// own, at once and when their progress is observed: a queued run expected
// to take an hour against a 10 minute deadline is at risk; when it
// succeeds in time it is met, and "recovered" is published.
func TestDeadlineWatcher(t *testing.T) {
	ctx := context.Background()
	dir := pipelineDir(t, map[string]string{"hour.yaml": "name: hour\ndeadline: {after: 10m}\ntasks: [{id: a, run: 'true', expected_duration: 1h}]\n"})
	ts := newTestServer(t, t.TempDir(), dir, time.Date(2026, 12, 7, 19, 0, 0, 0, time.UTC))
	alerts := &deadlineAlerts{seen: make(chan notify.Kind, 10)}
	ts.alerts = alerts
	run, err := (&service{s: ts.Server}).Trigger(ctx, "hour", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	stop := ts.startDeadlines(ctx)
	defer stop()
	await := func(want notify.Kind) {
		t.Helper()
		select {
		case k := <-alerts.seen:
			if k != want {
				t.Fatalf("published %s, want %s", k, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no %s published", want)
		}
	}
	await(notify.AtRisk)
	ts.pass(ctx) // the run starts, and succeeds at once by the standing clock
	ts.wg.Wait()
	// The watcher may be judging the run right now, from a read made
	// before it ended (its write then loses the compare-and-set); once it
	// has stopped, a pass judges what the store holds.
	stop()
	ts.deadlinePass(ctx, nil)
	if r, _ := ts.store.Run(ctx, run.ID); r.DeadlineState != store.DeadlineMet {
		t.Errorf("run is %q, want met", r.DeadlineState)
	}
}

// TestSetDeadline works out the deadlines runs are created with.
func TestSetDeadline(t *testing.T) {
	tokyo := mustLoad(t, "Asia/Tokyo")
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, tokyo)
	s := &Server{loc: tokyo, now: func() time.Time { return now }}
	dl := func(src string) *spec.Pipeline {
		t.Helper()
		p, err := spec.Parse("p.yaml", []byte("name: p\n"+src+"tasks: [{id: a, run: x}]\n"))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	end := time.Date(2026, 3, 2, 0, 0, 0, 0, tokyo) // the interval ended at midnight
	tests := []struct {
		name   string
		p      *spec.Pipeline
		end    time.Time
		rerun  bool
		want   time.Time
		zeroOK bool
	}{
		{"at, after the interval end", dl("deadline: {at: \"06:00\"}\n"), end, false, time.Date(2026, 3, 2, 6, 0, 0, 0, tokyo), false},
		{"at, after the creation", dl("deadline: {at: \"20:00\"}\n"), time.Time{}, false, time.Date(2026, 3, 2, 20, 0, 0, 0, tokyo), false},
		{"at, in the schedule's zone", dl("schedule: {cron: '@daily', timezone: Europe/London}\ndeadline: {at: \"06:00\"}\n"), end, false,
			time.Date(2026, 3, 2, 6, 0, 0, 0, mustLoad(t, "Europe/London")), false},
		{"after, from the interval end", dl("deadline: {after: 90m}\n"), end, false, end.Add(90 * time.Minute), false},
		{"after, from the creation", dl("deadline: {after: 90m}\n"), time.Time{}, false, now.Add(90 * time.Minute), false},
		{"none", dl(""), end, false, time.Time{}, true},
		{"a rerun while the deadline is ahead", dl("deadline: {at: \"20:00\"}\n"), end, true, time.Date(2026, 3, 2, 20, 0, 0, 0, tokyo), false},
		{"a rerun after it passed", dl("deadline: {at: \"06:00\"}\n"), end, true, time.Time{}, true},
	}
	for _, tt := range tests {
		nr := store.NewRun{Run: store.Run{IntervalEnd: tt.end}}
		if tt.rerun {
			s.setRerunDeadline(tt.p, &nr)
		} else {
			s.setDeadline(tt.p, &nr)
		}
		if !nr.Run.Deadline.Equal(tt.want) {
			t.Errorf("%s: deadline %s, want %s", tt.name, nr.Run.Deadline, tt.want)
		}
	}
}

// TestBackfillDeadline: a backfill's runs have no deadline unless the
// request gives one, which must be ahead.
func TestBackfillDeadline(t *testing.T) {
	ctx := context.Background()
	dir := pipelineDir(t, map[string]string{"daily.yaml": "name: daily\nschedule: {cron: '0 6 * * *'}\ndeadline: {at: \"07:00\"}\ntasks: [{id: a, run: 'true'}]\n"})
	start := time.Date(2026, 12, 7, 19, 0, 0, 0, time.UTC)
	ts := newTestServer(t, t.TempDir(), dir, start)
	svc := &service{s: ts.Server}
	from, to := start.Add(-72*time.Hour), start.Add(-24*time.Hour)
	b, err := svc.CreateBackfill(ctx, api.BackfillRequest{Pipeline: "daily", From: from, To: to}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	by := start.Add(6 * time.Hour)
	b2, err := svc.CreateBackfill(ctx, api.BackfillRequest{Pipeline: "daily", From: from, To: to, Deadline: &by}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	past := start.Add(-time.Minute)
	if _, err := svc.CreateBackfill(ctx, api.BackfillRequest{Pipeline: "daily", From: from, To: to, Deadline: &past}, "alice"); err == nil || !strings.Contains(err.Error(), "must be in the future") {
		t.Errorf("a deadline in the past: %v", err)
	}
	for _, c := range []struct {
		id   int64
		want time.Time
	}{{b.ID, time.Time{}}, {b2.ID, by}} {
		runs, err := ts.store.ListRuns(ctx, store.RunFilter{BackfillID: c.id})
		if err != nil || len(runs) == 0 {
			t.Fatalf("backfill %d runs: %v, %v", c.id, runs, err)
		}
		for _, r := range runs {
			if !r.Deadline.Equal(c.want) {
				t.Errorf("backfill %d run %d: deadline %s, want %s", c.id, r.ID, r.Deadline, c.want)
			}
		}
	}
}

// counterValue is the value of the series of a metric family whose labels
// are the given name-value pairs (0 when there is none).
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for i := 0; i < len(labels); i += 2 {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == labels[i] && l.GetValue() == labels[i+1] }) {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

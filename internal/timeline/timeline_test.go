package timeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
	"github.com/tasuki-dev/tasuki/internal/timeline"
)

func openStore(t *testing.T) *sqlite.DB {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "tasuki.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// builder writes a run's rows and records straight into a store, for runs
// no runner would make quickly: a fan-out of thousands, records of kinds
// not written yet.
type builder struct {
	t     testing.TB
	st    store.Store
	run   store.Run
	now   time.Time
	recs  []engine.Record
	atts  []store.Attempt
	total int
}

func newBuilder(t testing.TB, st store.Store, tasks int, state engine.RunState) *builder {
	t.Helper()
	rows := make([]store.TaskRow, tasks)
	for i := range rows {
		rows[i] = store.TaskRow{Index: i, TaskID: fmt.Sprintf("part%04d", i), Task: engine.Task{State: engine.TaskSucceeded, Attempt: 1}}
	}
	r := store.Run{Pipeline: "fan", Trigger: store.TriggerSchedule, CreatedAt: t0,
		IntervalStart: t0.Add(-time.Hour), IntervalEnd: t0, Run: engine.Run{State: state, StartedAt: t0}}
	if state.Terminal() {
		r.FinishedAt = t0.Add(time.Hour)
	}
	run, err := st.CreateRun(context.Background(), store.NewRun{Run: r, Tasks: rows, Actor: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	return &builder{t: t, st: st, run: run, now: t0}
}

// add records one record, tick after the previous one.
func (b *builder) add(tick time.Duration, rec engine.Record) {
	b.now = b.now.Add(tick)
	rec.Time = b.now
	b.recs = append(b.recs, rec)
	b.total++
	if len(b.recs) == 1000 {
		b.flush()
	}
}

func (b *builder) attempt(a store.Attempt) { b.atts = append(b.atts, a) }

func (b *builder) flush() {
	b.t.Helper()
	if len(b.recs) == 0 && len(b.atts) == 0 {
		return
	}
	err := b.st.Apply(context.Background(), store.Change{RunID: b.run.ID, Transition: engine.Transition{Records: b.recs}, Attempts: b.atts})
	if err != nil {
		b.t.Fatal(err)
	}
	b.recs, b.atts = nil, nil
}

// fanOut builds a run of n tasks that all become ready at once and run two
// at a time; task 7 fails once and is retried; a wait's check changes what
// it saw many times; an alert fails; a record of a kind this package does
// not know arrives.
func fanOut(t testing.TB, st store.Store, n, pokes int) *builder {
	b := newBuilder(t, st, n, engine.RunSucceeded)
	b.add(0, engine.Record{Kind: engine.EvRunStarted, Task: -1})
	for i := range n {
		b.add(time.Microsecond, engine.Record{Kind: engine.RecTaskReady, Task: i})
	}
	for i := range n {
		b.add(time.Millisecond, engine.Record{Kind: engine.EvTaskStarted, Task: i, Attempt: 1})
		start := b.now
		if i == 7 {
			code := 2
			b.add(time.Second, engine.Record{Kind: engine.EvTaskFailed, Task: i, Attempt: 1, ExitCode: &code, Message: "connection refused"})
			b.attempt(store.Attempt{Index: i, Attempt: 1, Worker: "w1", StartedAt: start, FinishedAt: b.now, Outcome: store.OutcomeFailed, ExitCode: &code, Message: "connection refused"})
			b.add(0, engine.Record{Kind: engine.RecRetryScheduled, Task: i, Attempt: 1, Message: "attempt 2 of 3 in 10s"})
			b.add(10*time.Second, engine.Record{Kind: engine.EvRetryDue, Task: i})
			b.add(0, engine.Record{Kind: engine.RecTaskReady, Task: i})
			b.add(0, engine.Record{Kind: engine.EvTaskStarted, Task: i, Attempt: 2})
			start = b.now
			b.add(time.Second, engine.Record{Kind: engine.EvTaskSucceeded, Task: i, Attempt: 2})
			b.attempt(store.Attempt{Index: i, Attempt: 2, Worker: "w1", StartedAt: start, FinishedAt: b.now, Outcome: store.OutcomeSucceeded})
			continue
		}
		b.add(time.Millisecond, engine.Record{Kind: engine.EvTaskSucceeded, Task: i, Attempt: 1})
		b.attempt(store.Attempt{Index: i, Attempt: 1, Worker: "w1", StartedAt: start, FinishedAt: b.now, Outcome: store.OutcomeSucceeded})
	}
	for i := range pokes {
		b.add(time.Second, engine.Record{Kind: engine.EvWaitPoked, Task: 0, Attempt: 1, Message: fmt.Sprintf("%d rows, waiting for 100", i)})
	}
	b.add(time.Second, engine.Record{Kind: timeline.KindAlertFailed, Task: -1, Message: "failed to webhook https://hooks.example.com/…: HTTP 502"})
	b.add(0, engine.Record{Kind: "slo_breach", Task: -1, Message: "raw.orders fresh_by 09:00", Data: json.RawMessage(`{"objective": "raw.orders", "late_by": "12m"}`)})
	b.add(time.Second, engine.Record{Kind: engine.RecRunFinished, Task: -1, Message: "succeeded"})
	b.flush()
	return b
}

func TestFanOutIsBounded(t *testing.T) {
	st := openStore(t)
	b := fanOut(t, st, 2000, 300)
	ctx := context.Background()
	tl, err := timeline.Load(ctx, st, b.run.ID, timeline.Options{MaxRows: 40, PageSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	if err := tl.WriteMarkdown(ctx, &md); err != nil {
		t.Fatal(err)
	}
	out := md.String()
	rows := 0
	for _, l := range strings.Split(out[strings.Index(out, "## Events"):strings.Index(out, "## Attempts")], "\n") {
		if strings.HasPrefix(l, "| ") && !strings.HasPrefix(l, "| Time") {
			rows++
		}
	}
	if rows > 80 {
		t.Errorf("%d event rows for MaxRows 40: the Markdown is not bounded", rows)
	}
	for _, want := range []string{
		"| 10:00:00.000 | 0s |  |  | *2015 routine records over 17ms: 2000 ready, 8 started, 7 succeeded (part0000, part0001, part0002, …)* |",
		"**attempt 1 failed after 1s (exit 2): connection refused**",
		"retry scheduled: attempt 2 of 3 in 10s",
		"check saw: 0 rows, waiting for 100",
		// Past the budget, what matters is still listed.
		"**alert not delivered: failed to webhook https://hooks.example.com/…: HTTP 502**",
		`slo breach: raw.orders fresh\_by 09:00 \[{"objective":"raw.orders","late\_by":"12m"}\]`,
		"run finished: succeeded",
		"wait\\_poked): past 40 rows only failures",
		"- **Run:** 1 (trigger schedule, by bob)",
		"- **Interval:** 2026-11-20 09:00:00 UTC to 2026-11-20 10:00:00 UTC",
		"- **Alerts:** 0 sent, **1 not delivered**.",
		fmt.Sprintf("- **Records:** %d in the run's timeline.", b.total+1),
		"2 of 2001 attempts: those that did not succeed and those of tasks tried more than once",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the Markdown lacks %q\n%s", want, out)
		}
	}
	if strings.Contains(out, "check saw: 299 rows") {
		t.Error("a wait's check past the row budget is listed")
	}

	var js bytes.Buffer
	if err := tl.WriteJSON(ctx, &js); err != nil {
		t.Fatal(err)
	}
	doc := checkShape(t, js.Bytes())
	if got, want := len(doc.Events), b.total+1; got != want { // and run_created
		t.Fatalf("JSON has %d events, want every one of %d", got, want)
	}
	last := doc.Events[len(doc.Events)-1]
	if last.Kind != engine.RecRunFinished || last.SincePreviousMS != 1000 || last.SinceStartMS != b.now.Sub(t0).Milliseconds() {
		t.Errorf("last event %+v", last)
	}
	for i, e := range doc.Events[1:] {
		if e.Seq <= doc.Events[i].Seq {
			t.Fatalf("events out of order at %d: %d after %d", i+1, e.Seq, doc.Events[i].Seq)
		}
	}
	if doc.Summary.Retries != 1 || doc.Summary.FailedAttempts != 1 || doc.Summary.Events != int64(b.total+1) || doc.Summary.AlertsFailed != 1 {
		t.Errorf("summary %+v", doc.Summary)
	}
	if doc.Run.Actor != "bob" || doc.Run.DurationMS == nil || *doc.Run.DurationMS != time.Hour.Milliseconds() {
		t.Errorf("run %+v", doc.Run)
	}
}

// TestSmallRunListedWhole: a run that fits the row budget has every
// record listed, routine or not.
func TestSmallRunListedWhole(t *testing.T) {
	st := openStore(t)
	b := fanOut(t, st, 20, 3)
	ctx := context.Background()
	tl, err := timeline.Load(ctx, st, b.run.ID, timeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	if err := tl.WriteMarkdown(ctx, &md); err != nil {
		t.Fatal(err)
	}
	out := md.String()
	rows := strings.Count(out[strings.Index(out, "## Events"):strings.Index(out, "## Attempts")], "\n| ") - 1 // less the header
	if rows != b.total+1 || strings.Contains(out, "routine records") {
		t.Errorf("%d rows for %d records:\n%s", rows, b.total+1, out)
	}
}

// TestRunningRun: a run still going says how long it has run as of the
// export, and records written after the first pass are left out of both
// parts, so they agree.
func TestRunningRun(t *testing.T) {
	st := openStore(t)
	b := newBuilder(t, st, 2, engine.RunRunning)
	b.add(0, engine.Record{Kind: engine.EvRunStarted, Task: -1})
	b.add(time.Second, engine.Record{Kind: engine.RecTaskReady, Task: 0})
	b.add(time.Second, engine.Record{Kind: engine.EvTaskStarted, Task: 0, Attempt: 1})
	b.attempt(store.Attempt{Index: 0, Attempt: 1, Worker: "w9", StartedAt: b.now})
	b.flush()
	ctx := context.Background()
	now := t0.Add(90 * time.Second)
	tl, err := timeline.Load(ctx, st, b.run.ID, timeline.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	b.add(time.Second, engine.Record{Kind: engine.EvTaskSucceeded, Task: 0, Attempt: 1})
	b.flush()
	var md bytes.Buffer
	if err := tl.WriteMarkdown(ctx, &md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# Run 1 of fan: running",
		"- **Outcome:** running for 1m30s as of 2026-11-20 10:01:30 UTC (not finished)",
		"- **Records:** 4 in the run's timeline.",
		"| 10:00:02.000 | 2s | +1s | `part0000` | attempt 1 started on w9 |",
		"| `part0000` | 1 | w9 | 10:00:02.000 |  | running |  |  |",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("the Markdown lacks %q:\n%s", want, md.String())
		}
	}
	if strings.Contains(md.String(), "succeeded") && strings.Contains(md.String(), "attempt 1 succeeded") {
		t.Error("a record written after the first pass is listed")
	}
	var js bytes.Buffer
	if err := tl.WriteJSON(ctx, &js); err != nil {
		t.Fatal(err)
	}
	doc := checkShape(t, js.Bytes())
	if len(doc.Events) != 4 || doc.Run.DurationMS == nil || *doc.Run.DurationMS != 90000 || doc.Deadline != nil {
		t.Errorf("document %+v", doc)
	}
}

// TestDeadline: the deadline line and document come from the run (its
// deadline, the watcher's latest judgement) and from the newest deadline
// record, whose data fills in what the run does not say.
func TestDeadline(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name     string
		deadline time.Time
		records  []engine.Record
		want     string // the Markdown's deadline line
		check    func(d *timeline.Deadline) bool
	}{
		{name: "none", want: "- **Deadline:** none\n", check: func(d *timeline.Deadline) bool { return d == nil }},
		{name: "not judged yet", deadline: t0.Add(30 * time.Minute),
			want: "- **Deadline:** 2026-11-20 10:30:00 UTC, not judged yet\n",
			check: func(d *timeline.Deadline) bool {
				return d.State == "" && d.Since == nil && d.Deadline.Equal(t0.Add(30*time.Minute))
			}},
		{name: "from records", records: []engine.Record{
			{Time: t0, Kind: timeline.KindDeadlineAtRisk, Task: -1, Message: "first"},
			{Time: t0.Add(time.Minute), Kind: timeline.KindDeadlineAtRisk, Task: -1, Message: "waits on `arrive`",
				Data: json.RawMessage(`{"deadline": "2026-11-20T10:20:00Z", "predicted_finish": "2026-11-20T10:25:00Z"}`)},
			{Time: t0.Add(2 * time.Minute), Kind: timeline.KindDeadlineMissed, Task: -1, Message: "10:20 passed",
				Data: json.RawMessage(`{"deadline": "2026-11-20T10:20:00Z", "predicted_finish": "soon"}`)},
		},
			want: "- **Deadline:** 2026-11-20 10:20:00 UTC, **missed** as of 2026-11-20 10:02:00 UTC: 10:20 passed; first at risk 2026-11-20 10:00:00 UTC\n",
			check: func(d *timeline.Deadline) bool {
				return d.State == "missed" && d.Message == "10:20 passed" && d.PredictedFinish == nil && d.FirstAtRisk.Equal(t0)
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := openStore(t)
			rows := []store.TaskRow{{Index: 0, TaskID: "a", Task: engine.Task{State: engine.TaskPending}}}
			run, err := st.CreateRun(ctx, store.NewRun{Run: store.Run{Pipeline: "p", CreatedAt: t0, Deadline: c.deadline}, Tasks: rows})
			if err != nil {
				t.Fatal(err)
			}
			if len(c.records) > 0 {
				if err := st.Apply(ctx, store.Change{RunID: run.ID, Transition: engine.Transition{Records: c.records}}); err != nil {
					t.Fatal(err)
				}
			}
			tl, err := timeline.Load(ctx, st, run.ID, timeline.Options{Now: func() time.Time { return t0 }})
			if err != nil {
				t.Fatal(err)
			}
			var md, js bytes.Buffer
			if err := tl.WriteMarkdown(ctx, &md); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(md.String(), c.want) {
				t.Errorf("the Markdown lacks %q:\n%s", c.want, md.String())
			}
			if err := tl.WriteJSON(ctx, &js); err != nil {
				t.Fatal(err)
			}
			if doc := checkShape(t, js.Bytes()); !c.check(doc.Deadline) {
				t.Errorf("deadline %+v", doc.Deadline)
			}
		})
	}
}

func TestMissingRun(t *testing.T) {
	_, err := timeline.Load(context.Background(), openStore(t), 42, timeline.Options{})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
}

// TestLogTail: the tail of a large log is its last lines, read from its
// end; a huge line is cut; the Markdown fences a log that holds fences.
func TestLogTail(t *testing.T) {
	st := openStore(t)
	lf := logs.NewFiles(t.TempDir())
	ctx := context.Background()
	b := newBuilder(t, st, 2, engine.RunFailed)
	one := 1
	for i, body := range []func(w *logs.Writer){
		func(w *logs.Writer) {
			for n := range 20000 {
				fmt.Fprintf(w.Stdout(), "line %d\n", n)
			}
			fmt.Fprintf(w.Stderr(), "%s\n", strings.Repeat("é", 5000))
		},
		func(w *logs.Writer) { fmt.Fprintln(w.Stdout(), "```sh\nrm -rf /\n```") },
	} {
		w, err := lf.Create(ctx, logs.Key{RunID: b.run.ID, TaskID: fmt.Sprintf("part%04d", i), Attempt: 1}, nil)
		if err != nil {
			t.Fatal(err)
		}
		body(w)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		b.attempt(store.Attempt{Index: i, Attempt: 1, Worker: "w", StartedAt: t0, FinishedAt: t0.Add(time.Second), Outcome: store.OutcomeFailed, ExitCode: &one, Log: "x"})
	}
	b.add(0, engine.Record{Kind: engine.RecRunFinished, Task: -1, Message: "failed"})
	b.flush()
	tl, err := timeline.Load(ctx, st, b.run.ID, timeline.Options{Logs: lf, LogLines: 5})
	if err != nil {
		t.Fatal(err)
	}
	var js bytes.Buffer
	if err := tl.WriteJSON(ctx, &js); err != nil {
		t.Fatal(err)
	}
	doc := checkShape(t, js.Bytes())
	tail := doc.Attempts[0].LogTail
	if tail == nil || len(tail.Lines) != 5 || !tail.Truncated {
		t.Fatalf("tail %+v", tail)
	}
	if !strings.HasSuffix(tail.Lines[3], " out line 19999") || len(tail.Lines[4]) > 1100 || !strings.HasSuffix(tail.Lines[4], "é …") {
		t.Errorf("tail lines %q", tail.Lines)
	}
	var md bytes.Buffer
	if err := tl.WriteMarkdown(ctx, &md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "````text\n") || !strings.Contains(md.String(), "Its last 5 lines (earlier lines not shown)") {
		t.Errorf("the Markdown:\n%s", md.String())
	}
}

func TestDuration(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{350 * time.Millisecond, "350ms"},
		{1500 * time.Millisecond, "1.5s"},
		{12*time.Second + 40*time.Millisecond, "12s"},
		{time.Minute, "1m"},
		{92 * time.Second, "1m32s"},
		{2 * time.Hour, "2h"},
		{26*time.Hour + 3*time.Minute, "26h3m"},
		{-2 * time.Second, "-2s"},
	} {
		if got := timeline.Duration(c.d); got != c.want {
			t.Errorf("Duration(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

// BenchmarkExport100k exports a run of 100,000 records (a fan-out of
// 33,000 tasks) in both forms, reading the records from a real SQLite store
// a page at a time.
func BenchmarkExport100k(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "tasuki.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	run := fanOut(b, st, 33_300, 0)
	ctx := context.Background()
	for _, format := range []string{"markdown", "json"} {
		b.Run(format, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tl, err := timeline.Load(ctx, st, run.run.ID, timeline.Options{})
				if err != nil {
					b.Fatal(err)
				}
				if format == "json" {
					err = tl.WriteJSON(ctx, io.Discard)
				} else {
					err = tl.WriteMarkdown(ctx, io.Discard)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

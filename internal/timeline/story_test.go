package timeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
	"github.com/tasuki-dev/tasuki/internal/timeline"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// clock is the runner's clock in the story: it moves only when the story
// says so, so every time stamp the run records is known in advance.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// t0 is when the story's run is created.
var t0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

const storyPipeline = `name: rates
tasks:
  - id: arrive
    wait: {file: in/rates.csv, non_empty: true, poke: 10ms}
  - id: load
    needs: [arrive]
    retry: {attempts: 2, backoff: 30s, jitter: 0}
    run: |
      echo "loading in/rates.csv (attempt $TASUKI_ATTEMPT)"
      if [ ! -e fixed ]; then echo "in/rates.csv: no header row" >&2; exit 3; fi
      echo "loaded 1 row"
  - id: publish
    needs: [load]
    run: echo published
`

// story is a run played by a real runner on a real SQLite store with the
// clock in the story's hands: the file wait sees nothing, then an empty
// file, then the file (two changes of what it saw, and what arrived);
// load fails, is retried after its backoff and fails again, so the run
// fails; an operator retries the failed part once the cause is fixed, and
// the run succeeds. The run has a deadline half an hour after its
// creation; the deadline watcher's judgements and the alerts are written
// where the server would write them (on track at the start, at risk at the
// first failure with an alert, met at the end), through the store as the
// parts that decide them do.
type story struct {
	st    *sqlite.DB
	logs  *logs.Files
	clk   *clock
	runID int64
}

func playStory(t *testing.T) *story {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	home, dir := t.TempDir(), t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(home, "tasuki.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := &story{st: st, logs: logs.NewFiles(filepath.Join(home, "logs")), clk: &clock{t: t0}}
	file := filepath.Join(dir, "rates.yaml")
	if err := os.WriteFile(file, []byte(storyPipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := spec.Parse(file, []byte(storyPipeline))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "in"), 0o755); err != nil {
		t.Fatal(err)
	}

	var (
		mu      sync.Mutex
		problem error
		pokes   int
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if problem == nil {
			problem = err
		}
	}
	record := func(at time.Time, kind engine.EventKind, msg string) {
		rec := engine.Record{Time: at, Kind: kind, Task: -1, Message: msg}
		if err := st.Apply(ctx, store.Change{RunID: s.runID, Transition: engine.Transition{Records: []engine.Record{rec}}}); err != nil {
			fail(err)
		}
	}
	// judge records the deadline watcher's judgement, as it does.
	judged := ""
	judge := func(at time.Time, state, msg string, predicted time.Time, path ...string) {
		u := store.DeadlineUpdate{RunID: s.runID, Expect: judged, State: state, PredictedFinish: predicted, CriticalPath: path,
			Records: []engine.Record{{Time: at, Kind: store.DeadlineRecord(state), Task: -1, Message: msg}}}
		if err := st.SetRunDeadline(ctx, nil, u); err != nil {
			fail(err)
		}
		judged = state
	}
	// Each step of the story happens when the run has recorded what comes
	// before it: Observe is called after each commit, before anything the
	// commit asked for is launched, so the clock set here is the clock of
	// what follows.
	//
	// The wait's checks are timed by a Poker of their own on the wall
	// clock, so they come one after another at once (the story's clock is
	// in the past): a check that raced a step of the story and saw the old
	// state is followed at once by one that sees the new, whose record has
	// the step's time. On the story's clock, which stands still between
	// steps, a check due after such a race would never come.
	r := &runner.Runner{Store: st, Logs: s.logs, Home: home, Parallel: 2, Worker: "local:test", Now: s.clk.Now,
		Grace: 500 * time.Millisecond, Poker: &runner.Poker{}}
	r.Observe = func(pr runner.Progress) {
		for _, rec := range pr.Records {
			id := ""
			if rec.Task >= 0 {
				id = pr.TaskID(rec.Task)
			}
			switch {
			case rec.Kind == engine.EvRunStarted:
				judge(rec.Time, store.DeadlineOnTrack, "predicted to finish 23m50s before the deadline; waiting on arrive",
					t0.Add(6*time.Minute+10*time.Second), "arrive", "load", "publish")
			case rec.Kind == engine.EvWaitPoked:
				pokes++
				switch pokes {
				case 1: // nothing there yet: two minutes later, an empty file
					s.clk.Set(t0.Add(2 * time.Minute))
					if err := os.WriteFile(filepath.Join(dir, "in", "rates.csv"), nil, 0o644); err != nil {
						fail(err)
					}
				case 2: // empty: three minutes later, the data, whole at once
					s.clk.Set(t0.Add(5 * time.Minute))
					tmp := filepath.Join(dir, "rates.tmp")
					if err := os.WriteFile(tmp, []byte("usdjpy,155.2\n"), 0o644); err != nil {
						fail(err)
					}
					if err := os.Chtimes(tmp, t0.Add(4*time.Minute), t0.Add(4*time.Minute)); err != nil {
						fail(err)
					}
					if err := os.Rename(tmp, filepath.Join(dir, "in", "rates.csv")); err != nil {
						fail(err)
					}
				}
			case rec.Kind == engine.EvTaskStarted && id == "load":
				took := map[int]time.Duration{1: 30 * time.Second, 2: 45 * time.Second, 3: 40 * time.Second}[rec.Attempt]
				s.clk.Set(rec.Time.Add(took))
			case rec.Kind == engine.EvTaskFailed && id == "load" && rec.Attempt == 1:
				judge(rec.Time, store.DeadlineAtRisk, "predicted to finish 1m15s after the deadline; load retries in 30s",
					t0.Add(31*time.Minute+15*time.Second), "load", "publish")
				record(rec.Time, timeline.KindAlertSent, "at_risk → webhook ops")
			case rec.Kind == engine.RecRetryScheduled:
				s.clk.Set(rec.Time.Add(30 * time.Second)) // the backoff
			case rec.Kind == engine.EvTaskStarted && id == "publish":
				s.clk.Set(rec.Time.Add(5 * time.Second))
			case rec.Kind == engine.RecRunFinished && rec.Message == string(engine.RunSucceeded):
				judge(rec.Time, store.DeadlineMet, "succeeded 9m14s before the deadline", time.Time{})
				record(rec.Time, timeline.KindAlertSent, "recovered → webhook ops")
			}
		}
	}

	nr, err := r.NewRun(ctx, p, nil, store.TriggerManual)
	if err != nil {
		t.Fatal(err)
	}
	nr.Run.Deadline = t0.Add(30 * time.Minute)
	created, err := st.CreateRun(ctx, nr)
	if err != nil {
		t.Fatal(err)
	}
	s.runID = created.ID
	s.clk.Set(t0.Add(2 * time.Second)) // queued for two seconds
	run, err := r.Execute(ctx, created.ID)
	if err != nil || run.State != engine.RunFailed {
		t.Fatalf("first execution: %s, %v", run.State, err)
	}

	// The operator finds the cause, fixes it and retries the failed part.
	s.clk.Set(t0.Add(20 * time.Minute))
	if err := os.WriteFile(filepath.Join(dir, "fixed"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, reopened, err := r.Act(ctx, created.ID, engine.Event{Kind: engine.EvRetryFailed, Task: -1, Actor: "alice@example.com"}); err != nil || !reopened {
		t.Fatalf("retry failed: reopened %v, %v", reopened, err)
	}
	s.clk.Set(t0.Add(20*time.Minute + time.Second))
	run, err = r.Execute(ctx, created.ID)
	if err != nil || run.State != engine.RunSucceeded {
		t.Fatalf("second execution: %s, %v", run.State, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if problem != nil {
		t.Fatal(problem)
	}
	return s
}

// logTimes are the time stamps of log lines, written with the wall clock.
var logTimes = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (out|err|log) `)

// golden compares got with testdata/name (after masking the log lines'
// wall-clock times), or rewrites the file with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	got = logTimes.ReplaceAll(got, []byte("<log time> $2 "))
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what was written (-update rewrites it); got:\n%s", path, got)
	}
}

func TestStoryMarkdown(t *testing.T) {
	s := playStory(t)
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tl, err := timeline.Load(ctx, s.st, s.runID, timeline.Options{Logs: s.logs, Location: tokyo, Now: s.clk.Now, PageSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	if err := tl.WriteMarkdown(ctx, &md); err != nil {
		t.Fatal(err)
	}
	golden(t, "story.md", md.Bytes())

	var js bytes.Buffer
	if err := tl.WriteJSON(ctx, &js); err != nil {
		t.Fatal(err)
	}
	golden(t, "story.json", indent(t, js.Bytes()))
	checkShape(t, js.Bytes())
}

// indent makes a JSON document readable in a golden file.
func indent(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	return append(out.Bytes(), '\n')
}

// checkShape checks that a streamed JSON export is exactly a
// timeline.Document as encoding/json writes it: the same fields, in the
// same order, nothing unknown, so the documented type is the shape.
func checkShape(t *testing.T, streamed []byte) timeline.Document {
	t.Helper()
	var doc timeline.Document
	dec := json.NewDecoder(bytes.NewReader(streamed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("the export is not a Document: %v", err)
	}
	again, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(again, '\n'), streamed) {
		t.Errorf("the streamed export differs from the Document it decodes to:\nstreamed: %.2000s\nmarshal:  %.2000s", streamed, again)
	}
	return doc
}

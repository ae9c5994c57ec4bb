package runner

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// TestWaitHoldsNoSlot: with one execution slot, a file wait and the task
// that writes the file run side by side: the wait holds no slot (were it
// to, the writer could never start and the run would hang). What arrived
// reaches the dependent as the wait's result; the wait has one attempt row
// and the timeline records what it saw only when that changed.
func TestWaitHoldsNoSlot(t *testing.T) {
	e := newEnv(t)
	e.r.Parallel = 1
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, tasks := e.run(ctx, `name: relay
tasks:
  - id: arrive
    wait: {file: in/rates.csv, non_empty: true, poke: 20ms, timeout: 1m}
  - id: relay
    run: "mkdir -p in && touch in/rates.csv && sleep 0.2 && echo 1.5 > in/rates.csv"
  - id: merge
    needs: [arrive]
    run: cat "$TASUKI_NEED_ARRIVE"
`, nil)
	if run.State != engine.RunSucceeded {
		t.Fatalf("run %s: %+v", run.State, tasks)
	}
	var res struct {
		Files []struct{ Path string }
		Count int
	}
	if err := json.Unmarshal(tasks["arrive"].Result, &res); err != nil || res.Count != 1 || res.Files[0].Path != "in/rates.csv" {
		t.Fatalf("wait result %s (%v)", tasks["arrive"].Result, err)
	}
	if log := e.log(run.ID, "merge", 1); !strings.Contains(log, `"in/rates.csv"`) {
		t.Fatalf("merge did not read the wait's result: %q", log)
	}
	atts, err := e.st.Attempts(ctx, run.ID, tasks["arrive"].Index)
	if err != nil || len(atts) != 1 || atts[0].Outcome != attempt.Succeeded || atts[0].FinishedAt.IsZero() {
		t.Fatalf("wait attempts %+v (%v)", atts, err)
	}
	events, err := e.st.Events(ctx, run.ID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, ev := range events {
		if ev.TaskID == "arrive" && ev.Kind == engine.EvWaitPoked {
			seen = append(seen, ev.Message)
		}
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] == seen[i-1] {
			t.Fatalf("the timeline repeats what the wait saw: %q", seen)
		}
	}
	if len(seen) == 0 || len(seen) > 3 {
		t.Fatalf("wait_poked records %q: want the changes only (nothing, then empty)", seen)
	}
}

// TestWaitTimesOutAndCancel: a wait that never sees its file ends
// timed_out with what it last saw; a cancel ends a waiting task at once.
func TestWaitTimesOutAndCancel(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, tasks := e.run(ctx, `name: late
tasks:
  - id: arrive
    wait: {file: never/*.csv, poke: 20ms, timeout: 150ms}
`, nil)
	if run.State != engine.RunFailed || tasks["arrive"].State != engine.TaskTimedOut || tasks["arrive"].Message != "waited 150ms: no file matches never/*.csv" {
		t.Fatalf("run %s, task %+v", run.State, tasks["arrive"])
	}
	atts, _ := e.st.Attempts(ctx, run.ID, 0)
	if len(atts) != 1 || atts[0].Outcome != attempt.TimedOut {
		t.Fatalf("attempts %+v", atts)
	}

	created, err := e.r.Create(ctx, e.pipeline("name: forever\ntasks:\n  - id: arrive\n    wait: {file: never.csv, poke: 10ms}\n"), nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{})
	var once bool
	e.r.Observe = func(p Progress) {
		if !once && p.Counts[engine.TaskWaiting] == 1 {
			once = true
			close(waiting)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan store.Run, 1)
	go func() {
		r, _ := e.r.Execute(runCtx, created.ID)
		done <- r
	}()
	<-waiting
	stop()
	if r := <-done; r.State != engine.RunCancelled {
		t.Fatalf("cancelled run is %s", r.State)
	}
	if p := e.r.Poker.Pending(); p != 0 {
		t.Fatalf("%d checks still queued after the run ended", p)
	}
}

// TestWaitSurvivesRestart: a run whose wait was waiting when its process
// died goes on waiting (no attempt is lost: nothing was running) and
// succeeds once the file is there.
func TestWaitSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := e.pipeline("name: resume\ntasks:\n  - id: arrive\n    wait: {file: late.csv, poke: 10ms}\n")
	created, err := e.r.Create(ctx, p, nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	// The first process: executes until the wait has started, then "dies"
	// (its context ends with a drain, which leaves waits waiting).
	waiting := make(chan struct{})
	var once bool
	e.r.Observe = func(p Progress) {
		if !once && p.Counts[engine.TaskWaiting] == 1 {
			once = true
			close(waiting)
		}
	}
	done := make(chan error, 1)
	go func() { _, err := e.r.Execute(ctx, created.ID); done <- err }()
	<-waiting
	e.r.Drain()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if rows := e.tasks(created.ID); rows["arrive"].State != engine.TaskWaiting {
		t.Fatalf("after the first process: %s", rows["arrive"].State)
	}
	if err := os.WriteFile(filepath.Join(e.home, "late.csv"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	second := &Runner{Store: e.st, Logs: e.logs, Home: e.home}
	run, err := second.Execute(ctx, created.ID)
	if err != nil || run.State != engine.RunSucceeded {
		t.Fatalf("second process: %s %v", run.State, err)
	}
	atts, _ := e.st.Attempts(ctx, created.ID, 0)
	if len(atts) != 1 || atts[0].Outcome != attempt.Succeeded {
		t.Fatalf("attempts %+v: want the one wait attempt, succeeded", atts)
	}
}

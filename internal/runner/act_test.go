package runner

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/store"
)

func TestRetryFailedReopensFinishedRun(t *testing.T) {
	e := newEnv(t)
	marker := filepath.Join(e.home, "fixed")
	run, tasks := e.run(context.Background(), `
name: fixable
env: {MARKER: `+marker+`}
tasks:
  - {id: ok, run: "true"}
  - {id: needs-fix, needs: [ok], run: 'test -e "$MARKER"'}
  - {id: after, needs: [needs-fix], run: "true"}
`, nil)
	if run.State != engine.RunFailed || tasks["after"].State != engine.TaskUpstreamFailed {
		t.Fatalf("setup: run %s", run.State)
	}
	os.WriteFile(marker, nil, 0o644)
	got, reopened, err := e.r.Act(context.Background(), run.ID, engine.Event{Kind: engine.EvRetryFailed, Task: -1, Actor: "dana"})
	if err != nil || !reopened || got.State != engine.RunRunning {
		t.Fatalf("act: %v reopened=%t state=%s", err, reopened, got.State)
	}
	got, err = e.r.Execute(context.Background(), run.ID)
	if err != nil || got.State != engine.RunSucceeded {
		t.Fatalf("execute: %v %s", err, got.State)
	}
	tasks = e.tasks(run.ID)
	if tasks["ok"].Attempt != 1 || tasks["needs-fix"].Attempt != 2 || tasks["after"].Attempt != 1 {
		t.Fatalf("attempts ok=%d fix=%d after=%d", tasks["ok"].Attempt, tasks["needs-fix"].Attempt, tasks["after"].Attempt)
	}
	evs, _ := e.st.Events(context.Background(), run.ID, 0, 1000)
	found := false
	for _, ev := range evs {
		if ev.Kind == engine.EvRetryFailed && ev.Actor == "dana" {
			found = true
		}
	}
	if !found {
		t.Fatal("the retry is not in the timeline with its actor")
	}
}

func TestActCancelsExecutingRun(t *testing.T) {
	e := newEnv(t)
	fifo := filepath.Join(e.home, "started")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	run, err := e.r.Create(context.Background(), e.pipeline(`
name: cancel-me
tasks:
  - {id: long, run: 'echo x > "$FIFO"; exec sleep 60', env: {FIFO: `+fifo+`}}
`), nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan store.Run, 1)
	go func() {
		r, err := e.r.Execute(context.Background(), run.ID)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	if _, err := os.ReadFile(fifo); err != nil {
		t.Fatal(err)
	}
	got, reopened, err := e.r.Act(context.Background(), run.ID, engine.Event{Kind: engine.EvCancel, Task: -1, Actor: "erin"})
	if err != nil || reopened || !got.Cancelling {
		t.Fatalf("act: %v reopened=%t %+v", err, reopened, got.Run)
	}
	if r := <-done; r.State != engine.RunCancelled {
		t.Fatalf("run %s", r.State)
	}
}

// TestDrainHandsAttemptsBack checks the SIGTERM path of a server: running
// attempts are handed back as preempted, not charged to the retry budget,
// and the run resumes where it was at the next start.
func TestDrainHandsAttemptsBack(t *testing.T) {
	e := newEnv(t)
	e.r.DrainGrace = 50 * time.Millisecond
	fifo := filepath.Join(e.home, "started")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(e.home, "second-life")
	run, err := e.r.Create(context.Background(), e.pipeline(`
name: drain-me
env: {FIFO: `+fifo+`, MARKER: `+marker+`}
tasks:
  - id: long
    retry: {attempts: 1}
    run: 'if [ -e "$MARKER" ]; then exit 0; fi; echo x > "$FIFO"; exec sleep 60'
`), nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan store.Run, 1)
	go func() {
		r, err := e.r.Execute(context.Background(), run.ID)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	if _, err := os.ReadFile(fifo); err != nil {
		t.Fatal(err)
	}
	e.r.Drain()
	got := <-done
	if got.State != engine.RunRunning {
		t.Fatalf("after drain run is %s, want still running", got.State)
	}
	task := e.tasks(run.ID)["long"]
	if task.State != engine.TaskReady || task.Spent != 0 {
		t.Fatalf("after drain task %s spent %d, want ready and not charged", task.State, task.Spent)
	}
	atts, _ := e.st.Attempts(context.Background(), run.ID, 0)
	if len(atts) != 1 || atts[0].Outcome != store.OutcomePreempted {
		t.Fatalf("attempts %+v", atts)
	}

	os.WriteFile(marker, nil, 0o644)
	next := &Runner{Store: e.st, Logs: e.logs, Home: e.home}
	got, err = next.Execute(context.Background(), run.ID)
	if err != nil || got.State != engine.RunSucceeded {
		t.Fatalf("after restart: %v %s", err, got.State)
	}
}

// TestActOnStoredRunHoldsNoSlot checks that acting on a run nobody executes
// records the change without queueing its tasks in the dispatcher: a slot
// taken there would never be given back.
func TestActOnStoredRunHoldsNoSlot(t *testing.T) {
	e := newEnv(t)
	e.r.Dispatcher = NewDispatcher(1, nil)
	run, _ := e.run(context.Background(), "name: x\ntasks: [{id: a, run: 'exit 1'}]\n", nil)
	for k := 0; k < 3; k++ {
		if _, _, err := e.r.Act(context.Background(), run.ID, engine.Event{Kind: engine.EvRetryFailed, Task: -1}); err != nil && k == 0 {
			t.Fatal(err)
		}
	}
	if u := e.r.Dispatcher.Pools()[0]; u.Used != 0 || u.Waiting != 0 {
		t.Fatalf("after acting on a stored run the dispatcher holds %+v", u)
	}
	got, err := e.r.Execute(context.Background(), run.ID)
	if err != nil || got.State != engine.RunFailed || e.tasks(run.ID)["a"].Attempt != 2 {
		t.Fatalf("execute after retry: %v %s", err, got.State)
	}
}

// TestRecoveryHoldsAttemptsOfRemoteWorkers checks that a task whose running
// attempt was held by a remote worker when the previous process died is not
// started again before that worker's lease has surely ended, while one the
// process ran itself starts again at once.
func TestRecoveryHoldsAttemptsOfRemoteWorkers(t *testing.T) {
	e := newEnv(t)
	run, err := e.r.Create(context.Background(), e.pipeline("name: held\ntasks: [{id: remote, run: 'true'}, {id: here, run: 'true'}]\n"), nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	e.r.defaults()
	c, err := e.r.load(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c.apply(engine.Event{Kind: engine.EvRunStarted, Task: -1}, now)
	c.apply(engine.Event{Kind: engine.EvTaskStarted, Task: 0}, now, store.Attempt{RunID: run.ID, Index: 0, Attempt: 1, Worker: "spot-7:4242", StartedAt: now})
	c.apply(engine.Event{Kind: engine.EvTaskStarted, Task: 1}, now, store.Attempt{RunID: run.ID, Index: 1, Attempt: 1, Worker: "local:me", StartedAt: now})
	if err := c.commit(context.Background()); err != nil {
		t.Fatal(err)
	}

	next := &Runner{Store: e.st, Logs: e.logs, Home: e.home, Now: func() time.Time { return now },
		LostHold: func(worker string) time.Duration {
			if worker == "local:me" {
				return 0
			}
			return time.Hour
		}}
	next.defaults()
	c, err = next.load(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.recover(); err != nil {
		t.Fatal(err)
	}
	if tk := c.mem.Task(0); tk.State != engine.TaskRetryWait || !tk.ReadyAt.Equal(now.Add(time.Hour)) || tk.Spent != 0 {
		t.Fatalf("remote worker's task: %s ready at %s spent %d, want held an hour and not charged", tk.State, tk.ReadyAt, tk.Spent)
	}
	if tk := c.mem.Task(1); tk.State != engine.TaskReady {
		t.Fatalf("this process's own task: %s, want ready at once", tk.State)
	}
}

// TestRecoveryAdoptsAttemptsOfRemoteWorkers checks that a task whose
// running attempt a remote worker held is adopted at recovery when Adopt
// says so: the attempt goes on as it was (same number, nothing lost, no
// process reaped) and its end is recorded as any other; the attempt of
// the process's own executor is lost and run again.
func TestRecoveryAdoptsAttemptsOfRemoteWorkers(t *testing.T) {
	e := newEnv(t)
	run, err := e.r.Create(context.Background(), e.pipeline("name: adopt\ntasks: [{id: remote, run: 'true'}, {id: here, run: 'true'}, {id: after, run: 'true', needs: [remote]}]\n"), nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	e.r.defaults()
	c, err := e.r.load(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c.apply(engine.Event{Kind: engine.EvRunStarted, Task: -1}, now)
	c.apply(engine.Event{Kind: engine.EvTaskStarted, Task: 0}, now, store.Attempt{RunID: run.ID, Index: 0, Attempt: 1, Worker: "spot-7:4242", StartedAt: now})
	c.apply(engine.Event{Kind: engine.EvTaskStarted, Task: 1}, now, store.Attempt{RunID: run.ID, Index: 1, Attempt: 1, Worker: "local:me", StartedAt: now})
	if err := c.commit(context.Background()); err != nil {
		t.Fatal(err)
	}

	var got []*Attempt
	release := make(chan struct{})
	next := &Runner{Store: e.st, Logs: e.logs, Home: e.home, Dispatcher: NewDispatcher(1, nil),
		Adopt: func(worker string) TaskFunc {
			if worker != "spot-7:4242" {
				return nil
			}
			return func(ctx context.Context, a *Attempt) AttemptResult {
				got = append(got, a)
				<-release
				return AttemptResult{Outcome: attempt.Succeeded, Worker: worker, Result: json.RawMessage(`{"epochs": 90}`)}
			}
		}}
	done := make(chan error, 1)
	var end store.Run
	go func() {
		var err error
		end, err = next.Execute(context.Background(), run.ID)
		done <- err
	}()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if end.State != engine.RunSucceeded {
		t.Fatalf("run %s, want succeeded", end.State)
	}
	if len(got) != 1 || got[0].Index != 0 || got[0].Number != 1 || got[0].TaskID != "remote" {
		t.Fatalf("adopted %+v, want attempt 1 of task remote", got)
	}
	atts, err := e.st.Attempts(context.Background(), run.ID, 0)
	if err != nil || len(atts) != 1 || atts[0].Outcome != store.OutcomeSucceeded || atts[0].Worker != "spot-7:4242" {
		t.Fatalf("attempts of the adopted task: %+v %v", atts, err)
	}
	if atts, _ := e.st.Attempts(context.Background(), run.ID, 1); len(atts) != 2 || atts[0].Outcome != store.OutcomeLost {
		t.Fatalf("attempts of this process's own task: %+v, want lost then another", atts)
	}
	if tk := e.tasks(run.ID)["after"]; tk.State != engine.TaskSucceeded {
		t.Fatalf("the dependent of the adopted task: %s", tk.State)
	}
	if u := next.Dispatcher.Pools()[0]; u.Used != 0 {
		t.Fatalf("after the run the dispatcher holds %+v", u)
	}
}

func TestAttemptEnded(t *testing.T) {
	e := newEnv(t)
	run, err := e.r.Create(context.Background(), e.pipeline("name: quiet\ntasks: [{id: a, run: 'true'}, {id: b, run: 'true'}]\n"), nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	e.r.defaults()
	c, _ := e.r.load(context.Background(), run.ID)
	now := time.Now()
	c.apply(engine.Event{Kind: engine.EvRunStarted, Task: -1}, now)
	c.apply(engine.Event{Kind: engine.EvTaskStarted, Task: 0}, now, store.Attempt{RunID: run.ID, Index: 0, Attempt: 1, StartedAt: now})
	c.apply(engine.Event{Kind: engine.EvTaskStarted, Task: 1}, now, store.Attempt{RunID: run.ID, Index: 1, Attempt: 1, StartedAt: now})
	c.apply(engine.Event{Kind: engine.EvTaskSucceeded, Task: 1, Attempt: 1}, now, store.Attempt{RunID: run.ID, Index: 1, Attempt: 1, FinishedAt: now, Outcome: store.OutcomeSucceeded})
	if err := c.commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	ended := AttemptEnded(e.st)
	cases := []struct {
		key  logs.Key
		want bool
	}{
		{logs.Key{RunID: run.ID, TaskID: "a", Attempt: 1}, false}, // running
		{logs.Key{RunID: run.ID, TaskID: "b", Attempt: 1}, true},  // succeeded
		{logs.Key{RunID: run.ID, TaskID: "nope", Attempt: 1}, true},
		{logs.Key{RunID: 999, TaskID: "a", Attempt: 1}, true},
	}
	for _, c := range cases {
		if got := ended(context.Background(), c.key); got != c.want {
			t.Errorf("AttemptEnded(%v) = %t, want %t", c.key, got, c.want)
		}
	}
}

package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// drainFifos makes the named pipes a drain test controls its task with,
// and the path of the task's ledger, as pipeline env lines.
func drainFifos(t *testing.T, names ...string) (map[string]string, string) {
	t.Helper()
	dir := t.TempDir()
	paths := map[string]string{"LEDGER": filepath.Join(dir, "ledger")}
	for _, n := range names {
		paths[n] = filepath.Join(dir, n)
		if err := syscall.Mkfifo(paths[n], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var env []string
	for k, v := range paths {
		env = append(env, k+": "+strconv.Quote(v))
	}
	return paths, "env: {" + strings.Join(env, ", ") + "}\n"
}

// readFifo returns what a task writes to a FIFO, once it has closed it.
func readFifo(t *testing.T, path string) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		b, _ := os.ReadFile(path)
		got <- string(b)
	}()
	select {
	case s := <-got:
		return s
	case <-time.After(30 * time.Second):
		t.Fatalf("nothing was written to %s", path)
		return ""
	}
}

// executeAsync runs Execute in the background.
func executeAsync(t *testing.T, r *Runner, id int64) <-chan store.Run {
	done := make(chan store.Run, 1)
	go func() {
		got, err := r.Execute(context.Background(), id)
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	return done
}

// TestDrainRecordsAttemptThatFinishedByItself drains a task that finishes
// by itself within the grace: no signal reaches it meanwhile (its TERM trap
// would write to the ledger), it is recorded as succeeded with its exit
// code, and nothing runs it again after a restart.
func TestDrainRecordsAttemptThatFinishedByItself(t *testing.T) {
	e := newEnv(t)
	e.r.DrainGrace, e.r.Grace = time.Minute, time.Minute
	f, env := drainFifos(t, "STARTED", "GO")
	run, err := e.r.Create(context.Background(), e.pipeline(`name: ledger
`+env+`tasks:
  - id: write
    retry: {attempts: 1}
    run: |
      trap 'echo term >> "$LEDGER"' TERM
      echo started > "$STARTED"
      cat "$GO" > /dev/null
      echo done >> "$LEDGER"
`), nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	done := executeAsync(t, e.r, run.ID)
	readFifo(t, f["STARTED"])
	e.r.Drain()
	if err := os.WriteFile(f["GO"], []byte("go\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got.State != engine.RunSucceeded {
		t.Errorf("after the drain the run is %s, want succeeded", got.State)
	}
	atts, _ := e.st.Attempts(context.Background(), run.ID, 0)
	if len(atts) != 1 || atts[0].Outcome != attempt.Succeeded || atts[0].ExitCode == nil || *atts[0].ExitCode != 0 {
		t.Fatalf("attempts %+v, want one succeeded with exit code 0", atts)
	}

	next := &Runner{Store: e.st, Logs: e.logs, Home: e.home}
	if got, err := next.Execute(context.Background(), run.ID); err != nil || got.State != engine.RunSucceeded {
		t.Fatalf("after restart: %v %s", err, got.State)
	}
	if b, _ := os.ReadFile(f["LEDGER"]); string(b) != "done\n" {
		t.Errorf("ledger %q, want the task's one line: no SIGTERM during the grace, no second run", b)
	}
}

// TestDrainKillsGroupBeforeHandingBack is the scenario: a task that
// traps SIGTERM, with a child that would write once released, is still
// running when the drain grace ends. The whole group is killed at once with
// SIGKILL (no SIGTERM it could answer by exiting 0, and no wait for the kill
// grace, which is longer than the test's patience), and only then is the
// attempt recorded as preempted. Nothing of it acts after the store says it
// was handed back.
func TestDrainKillsGroupBeforeHandingBack(t *testing.T) {
	e := newEnv(t)
	e.r.DrainGrace, e.r.Grace = 50*time.Millisecond, time.Minute
	f, env := drainFifos(t, "STARTED", "GO")
	run, err := e.r.Create(context.Background(), e.pipeline(`name: ledger
`+env+`tasks:
  - id: write
    retry: {attempts: 1}
    run: |
      trap 'echo term >> "$LEDGER"; exit 0' TERM
      (cat "$GO" > /dev/null; echo late >> "$LEDGER") &
      echo started > "$STARTED"
      wait
`), nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	done := executeAsync(t, e.r, run.ID)
	readFifo(t, f["STARTED"])
	e.r.Drain()
	var got store.Run
	select {
	case got = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the drain waited for the kill grace: the hand-back must kill at once")
	}
	if got.State != engine.RunRunning {
		t.Errorf("after the drain the run is %s, want running (to resume)", got.State)
	}
	atts, _ := e.st.Attempts(context.Background(), run.ID, 0)
	if len(atts) != 1 || atts[0].Outcome != attempt.Preempted || !strings.Contains(atts[0].Message, "handed back") {
		t.Fatalf("attempts %+v, want one preempted", atts)
	}
	// Recorded as handed back: no process of the group reads GO any more.
	fd, err := syscall.Open(f["GO"], syscall.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err == nil {
		syscall.Close(fd)
	}
	if !errors.Is(err, syscall.ENXIO) {
		t.Errorf("open GO for writing: %v, want ENXIO (no reader left)", err)
	}
	if b, err := os.ReadFile(f["LEDGER"]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the attempt wrote %q after it was stopped: %v", b, err)
	}
}

// TestDrainHandsBackWithCause checks what an executor is told when a drain
// ends its attempt (attempt.ErrPreempted, so a remote worker can be asked
// to hand it back) and that an executor answering only "cancelled" still
// has its attempt recorded as preempted, not charged.
func TestDrainHandsBackWithCause(t *testing.T) {
	e := newEnv(t)
	e.r.DrainGrace = 10 * time.Millisecond
	started := make(chan struct{})
	causes := make(chan error, 1)
	e.r.Executor = func(ctx context.Context, a *Attempt) AttemptResult {
		close(started)
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return AttemptResult{Outcome: attempt.Cancelled, Message: "stopped"}
	}
	run, err := e.r.Create(context.Background(), e.pipeline("name: x\ntasks: [{id: a, run: 'true', retry: {attempts: 1}}]\n"), nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	done := executeAsync(t, e.r, run.ID)
	<-started
	e.r.Drain()
	<-done
	if cause := <-causes; !errors.Is(cause, attempt.ErrPreempted) {
		t.Errorf("the executor was stopped with %v, want attempt.ErrPreempted", cause)
	}
	task := e.tasks(run.ID)["a"]
	atts, _ := e.st.Attempts(context.Background(), run.ID, 0)
	if task.Spent != 0 || len(atts) != 1 || atts[0].Outcome != attempt.Preempted {
		t.Fatalf("task spent %d, attempts %+v: want one preempted, not charged", task.Spent, atts)
	}
}

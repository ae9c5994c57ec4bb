package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// TestProcessDrainRecordsAttemptThatFinished is the drain defect of the
// issue with real processes: a task that ignores SIGTERM is still running
// when the server's drain grace ends, takes the SIGTERM and then finishes by
// itself, writing its ledger line and exiting 0. The server records it as
// succeeded, so after a restart nothing runs it again. FIFOs order each
// step: the task says it started, says the SIGTERM came (the grace is over)
// and finishes only when the test lets it.
func TestProcessDrainRecordsAttemptThatFinished(t *testing.T) {
	t.Parallel()
	home, dir, work := t.TempDir(), t.TempDir(), t.TempDir()
	ledger, once := filepath.Join(work, "ledger"), filepath.Join(work, "once")
	fifo := map[string]string{}
	for _, n := range []string{"started", "signaled", "go"} {
		fifo[n] = filepath.Join(work, n)
		if err := syscall.Mkfifo(fifo[n], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, dir, "ledger.yaml", fmt.Sprintf(`name: ledger
env: {LEDGER: %q, ONCE: %q, STARTED: %q, SIGNALED: %q, GO: %q}
tasks:
  - id: write
    retry: {attempts: 1}
    run: |
      if [ -e "$ONCE" ]; then echo "again $TASUKI_ATTEMPT" >> "$LEDGER"; exit 0; fi
      touch "$ONCE"
      trap 'echo term > "$SIGNALED"' TERM
      (trap '' TERM; echo started > "$STARTED"; exec cat "$GO" > /dev/null) &
      wait $!
      wait $!
      echo "done $TASUKI_ATTEMPT" >> "$LEDGER"
`, ledger, once, fifo["started"], fifo["signaled"], fifo["go"]))
	s1 := startServer(t, home, dir, nil, "--drain-grace", "1s")
	run, err := s1.c.Trigger(context.Background(), "ledger", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	awaitFifo(t, fifo["started"], s1, 30*time.Second)
	if err := s1.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	awaitFifo(t, fifo["signaled"], s1, 30*time.Second) // the drain grace is over
	if err := os.WriteFile(fifo["go"], []byte("go\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s1.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the server did not exit once its attempt had ended\n%s", s1.logs())
	}
	if s1.err != nil {
		t.Fatalf("the server's exit after SIGTERM: %v\n%s", s1.err, s1.logs())
	}

	s2 := startServer(t, home, dir, nil)
	got := waitRunEnd(t, s2.c, run.ID)
	if got.State != engine.RunSucceeded {
		t.Fatalf("run %d after the restart: %s", run.ID, got.State)
	}
	task, err := s2.c.Task(context.Background(), run.ID, "write")
	if err != nil {
		t.Fatal(err)
	}
	if len(task.Attempts) != 1 || task.Attempts[0].Outcome != store.OutcomeSucceeded || task.Attempts[0].ExitCode == nil || *task.Attempts[0].ExitCode != 0 {
		t.Errorf("attempts %+v, want one, succeeded with exit code 0", task.Attempts)
	}
	if b, _ := os.ReadFile(ledger); string(b) != "done 1\n" {
		t.Errorf("ledger %q, want the task's side effect once", b)
	}
	s2.term(10 * time.Second)
}

package server_test

import (
	"context"
	"errors"
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
// issue with real processes: a task that traps SIGTERM (its trap would exit
// 0, claiming work it never did) and has a child that would write once
// released is still running when the server's drain grace ends. The server
// kills the whole group at once, records the attempt as handed back only
// then, and exits; after a restart the task runs once more and its ledger
// holds that run's line alone: no SIGTERM answered, nothing written after
// the hand-back, no side effect twice.
func TestProcessDrainRecordsAttemptThatFinished(t *testing.T) {
	t.Parallel()
	home, dir, work := t.TempDir(), t.TempDir(), t.TempDir()
	ledger := filepath.Join(work, "ledger")
	fifo := map[string]string{}
	for _, n := range []string{"started", "go"} {
		fifo[n] = filepath.Join(work, n)
		if err := syscall.Mkfifo(fifo[n], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, dir, "ledger.yaml", fmt.Sprintf(`name: ledger
env: {LEDGER: %q, STARTED: %q, GO: %q}
tasks:
  - id: write
    retry: {attempts: 1}
    run: |
      trap 'echo "term $TASUKI_ATTEMPT" >> "$LEDGER"; exit 0' TERM
      if [ "$TASUKI_ATTEMPT" = 1 ]; then
        (cat "$GO" > /dev/null; echo "late $TASUKI_ATTEMPT" >> "$LEDGER") &
        echo started > "$STARTED"
        wait
      fi
      echo "done $TASUKI_ATTEMPT" >> "$LEDGER"
`, ledger, fifo["started"], fifo["go"]))
	s1 := startServer(t, home, dir, nil, "--drain-grace", "1s")
	run, err := s1.c.Trigger(context.Background(), "ledger", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	awaitFifo(t, fifo["started"], s1, 30*time.Second)
	if err := s1.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s1.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the server did not exit after its drain grace\n%s", s1.logs())
	}
	if s1.err != nil {
		t.Fatalf("the server's exit after SIGTERM: %v\n%s", s1.err, s1.logs())
	}
	// Handed back: no process of the attempt is left to read GO.
	if fd, err := syscall.Open(fifo["go"], syscall.O_WRONLY|syscall.O_NONBLOCK, 0); !errors.Is(err, syscall.ENXIO) {
		if err == nil {
			syscall.Close(fd)
		}
		t.Errorf("open GO for writing: %v, want ENXIO (the attempt's child outlived the hand-back)", err)
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
	if n := len(task.Attempts); n != 2 || task.Attempts[0].Outcome != store.OutcomePreempted || task.Attempts[1].Outcome != store.OutcomeSucceeded {
		t.Errorf("attempts %+v, want one preempted, then one succeeded", task.Attempts)
	}
	if b, _ := os.ReadFile(ledger); string(b) != "done 2\n" {
		t.Errorf("ledger %q, want the second attempt's line alone", b)
	}
	s2.term(10 * time.Second)
}

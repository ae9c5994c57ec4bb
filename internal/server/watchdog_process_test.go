package server_test

// Tests of the watchdog of a server's in-process executor (shell.Watchdog)
// with real processes: a server frozen (SIGSTOP) under a long task loses the
// task's processes within watchdog_timeout, and, woken up, records the
// attempt preempted (not charged) and runs it again; on PostgreSQL, the
// attempt a frozen leader ran never overlaps the one its successor runs.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
)

// TestFrozenServerEndsItsTasks: a server runs a long task (its first
// attempt leaves a child in its process group and writes both pids); the
// test freezes the server (SIGSTOP). Within watchdog_timeout, plus a margin
// for a loaded machine, both processes are gone, and the watchdog says why
// in the server's log. Woken up (SIGCONT), the server records the attempt
// preempted, not failed: the task has no retries, yet it runs again, and
// the run succeeds.
func TestFrozenServerEndsItsTasks(t *testing.T) {
	if testing.Short() {
		t.Skip("freezes a server past its watchdog timeout (~5 s)")
	}
	t.Parallel()
	const watchdog = time.Second
	home, dir, work := t.TempDir(), t.TempDir(), t.TempDir()
	fifo, pidFile := mkfifo(t, work), filepath.Join(work, "pids")
	writeFile(t, dir, "frozen.yaml", fmt.Sprintf(`name: frozen
env: {STARTED: %q, PIDS: %q}
tasks:
  - id: long
    run: |
      if [ "$TASUKI_ATTEMPT" = 1 ]; then
        sleep 1013 &
        echo $$ $! > "$PIDS"
        echo started > "$STARTED"
        wait
      fi
      echo "attempt $TASUKI_ATTEMPT done"
`, fifo, pidFile))
	s := startServer(t, home, dir, []string{"TASUKI_WATCHDOG_TIMEOUT=" + watchdog.String()})
	eventually(t, 10*time.Second, "the server to start its watchdog", func() (bool, string) {
		return strings.Contains(s.logs(), "attempt watchdog started"), "not yet"
	})
	ctx := context.Background()
	run, err := s.c.Trigger(ctx, "frozen", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	awaitFifo(t, fifo, s, 30*time.Second)
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for f := range strings.FieldsSeq(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("pids %q: %v", b, err)
		}
		pids = append(pids, pid)
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	}
	if len(pids) != 2 {
		t.Fatalf("pids %q: want the task's and its child's", b)
	}

	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	t.Cleanup(func() { _ = s.cmd.Process.Signal(syscall.SIGCONT) })
	eventually(t, watchdog+10*time.Second, "the frozen server's task to end", func() (bool, string) {
		for _, pid := range pids {
			if alive(pid) {
				return false, fmt.Sprintf("process %d alive", pid)
			}
		}
		return true, ""
	})
	t.Logf("the task's processes were gone %s after SIGSTOP (watchdog_timeout %s)", time.Since(stopped).Round(time.Millisecond), watchdog)
	eventually(t, 5*time.Second, "the watchdog to say why", func() (bool, string) {
		return strings.Contains(s.logs(), "sent no keepalive for"), "nothing yet"
	})

	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if got := waitRunEnd(t, s.c, run.ID); got.State != engine.RunSucceeded {
		t.Fatalf("run %d: %s, want succeeded\n%s", run.ID, got.State, s.logs())
	}
	tk, err := s.c.Task(ctx, run.ID, "long")
	if err != nil {
		t.Fatal(err)
	}
	if len(tk.Attempts) != 2 || tk.Attempts[0].Outcome != store.OutcomePreempted || tk.Attempts[1].Outcome != store.OutcomeSucceeded {
		t.Fatalf("attempts %+v: want 1 preempted, 2 succeeded", tk.Attempts)
	}
	if msg := tk.Attempts[0].Message; !strings.Contains(msg, "watchdog") {
		t.Errorf("the preempted attempt's message %q does not name the watchdog", msg)
	}
	evs := allEvents(t, s.c, run.ID)
	if !hasEvent(evs, engine.EvTaskPreempted, 1) || hasEvent(evs, engine.EvTaskFailed, 0) {
		t.Errorf("timeline: want task_preempted for attempt 1 and no failure: %+v", evs)
	}
	if log := runLog(t, s.c, run.ID, "long"); !strings.Contains(log, "attempt 2 done") {
		t.Errorf("log of attempt 2: %q", log)
	}
	s.term(15 * time.Second)
}

// TestFrozenLeaderTasksNeverOverlap: on PostgreSQL the leader runs a long
// task in its in-process executor, each attempt appending ticks of the
// clock to a ledger; the leader freezes (SIGSTOP). Its watchdog ends the
// attempt within watchdog_timeout, before the follower takes over (after
// leader_ttl), records it lost and runs it again on its own executor: the
// ledger's ticks of the two attempts never interleave. Woken up, the
// deposed leader records nothing and exits.
func TestFrozenLeaderTasksNeverOverlap(t *testing.T) {
	if testing.Short() {
		t.Skip("freezes the leader of two servers on PostgreSQL (~10 s)")
	}
	const watchdog = 500 * time.Millisecond
	dsn := pgtest.DSN(t)
	dir, ledger, started, goFile := tickFixture(t)
	env := func(name string) []string {
		return []string{"TASUKI_LEADER_TTL=3s", "TASUKI_LEASE_TIMEOUT=9s", "TASUKI_WATCHDOG_TIMEOUT=" + watchdog.String(), "W=" + name}
	}
	leader := startPGServer(t, dsn, "", dir, env("a"), "--labels", "adopt")
	leader.waitLine("leading:", 10*time.Second)
	follower := startPGServer(t, dsn, "", dir, env("b"), "--labels", "adopt")
	follower.waitLine("following:", 10*time.Second)
	st := openPG(t, dsn)
	ctx := context.Background()

	run, err := follower.c.Trigger(ctx, "tick", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	waitFifo(t, started, leader.proc, 30*time.Second)
	leader.signal(syscall.SIGSTOP)
	stopped := time.Now()
	t.Cleanup(func() { _ = leader.cmd.Process.Signal(syscall.SIGCONT) })
	leader.waitLine("sent no keepalive for", watchdog+10*time.Second)
	follower.waitLine("leading:", 15*time.Second)
	if err := os.WriteFile(goFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := waitRunEnd(t, follower.c, run.ID); got.State != engine.RunSucceeded {
		t.Fatalf("run %d: %s, want succeeded", run.ID, got.State)
	}
	tk, atts := taskAttempts(t, st, run.ID, "long")
	if tk.Attempt != 2 || len(atts) != 2 || atts[0].Outcome != store.OutcomeLost || atts[1].Outcome != store.OutcomeSucceeded {
		t.Errorf("task %s attempt %d, attempts %s; want 1 lost, 2 succeeded", tk.State, tk.Attempt, outcomes(atts))
	}
	spans := attemptSpans(t, ledger)
	if len(spans) != 2 || spans[0].workers[0] != "a" || spans[1].workers[0] != "b" {
		t.Fatalf("ledger: %+v, want attempt 1 on a, then 2 on b", spans)
	}
	checkDisjoint(t, spans)
	// The ticks run every 20 ms; a margin for a loaded machine.
	if last := time.Unix(0, spans[0].last); last.After(stopped.Add(watchdog + 3*time.Second)) {
		t.Errorf("the frozen leader's attempt ticked until %s after SIGSTOP (watchdog_timeout %s)", last.Sub(stopped).Round(time.Millisecond), watchdog)
	}
	t.Logf("attempt 1 (frozen leader) ticked until %s after SIGSTOP, attempt 2 (new leader) from %s after it",
		time.Unix(0, spans[0].last).Sub(stopped).Round(time.Millisecond), time.Unix(0, spans[1].first).Sub(stopped).Round(time.Millisecond))

	// Woken up, the deposed leader finds its attempt ended by the watchdog
	// and its leadership gone; nothing it does reaches the store.
	leader.signal(syscall.SIGCONT)
	select {
	case <-leader.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the deposed leader still runs 30 s after it woke up")
	}
	tk2, atts2 := taskAttempts(t, st, run.ID, "long")
	if tk2.Attempt != 2 || len(atts2) != 2 || atts2[0].Outcome != store.OutcomeLost {
		t.Errorf("after the deposed leader stopped: task %+v, attempts %s", tk2, outcomes(atts2))
	}
	follower.term(15 * time.Second)
}

// killWatchdog kills the server's watchdog (SIGKILL) and waits until the
// server has seen it exit.
func (s *serverProc) killWatchdog() {
	s.t.Helper()
	var pid int
	eventually(s.t, 10*time.Second, "the server to start its watchdog", func() (bool, string) {
		for line := range strings.Lines(s.logs()) {
			if !strings.Contains(line, "attempt watchdog started") {
				continue
			}
			_, rest, _ := strings.Cut(line, " pid=")
			f, _, _ := strings.Cut(rest, " ")
			pid, _ = strconv.Atoi(f)
			return pid > 0, line
		}
		return false, "not yet"
	})
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		s.t.Fatalf("kill the watchdog %d: %v", pid, err)
	}
	eventually(s.t, 10*time.Second, "the server to see its watchdog exit", func() (bool, string) {
		return strings.Contains(s.logs(), "the attempt watchdog exited"), "not yet"
	})
}

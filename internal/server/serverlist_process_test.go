package server_test

// A worker given several servers (`tasuki worker --server A --server B`,
// api.Failover) keeps its attempt when the server it talks to dies: its
// calls go on to the other one, which takes over and adopts the attempt.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
)

// TestWorkerServerListFailover: a worker is given the leader first and the
// follower second, and talks to the leader only. Under a long task the
// leader dies (kill -9: its connections are refused) or freezes past its
// lease (SIGSTOP: they hang, and each call's try there runs out of its
// share of the time). The worker moves to the follower, says so once, and
// keeps its attempt; the follower takes over and adopts it. One attempt,
// succeeded on the worker, no lost record, and the log the old leader took
// is read from the new one.
func TestWorkerServerListFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and freezes the leader of two servers on PostgreSQL (~10 s)")
	}
	for _, how := range []string{"kill -9", "SIGSTOP"} {
		t.Run(how, func(t *testing.T) {
			dsn := pgtest.DSN(t)
			dir, work := t.TempDir(), t.TempDir()
			ledger, goFile := filepath.Join(work, "ledger"), filepath.Join(work, "go")
			started := mkfifoAt(t, filepath.Join(work, "started"))
			// tickPipeline's task, saying in its log that it started.
			writeFile(t, dir, "tick.yaml", fmt.Sprintf(`name: tick
env: {LEDGER: %q, STARTED: %q, GO: %q}
tasks:
  - id: long
    labels: [adopt]
    retry: {attempts: 1}
    run: |
      tick() { echo "$TASUKI_ATTEMPT $(date +%%s%%N) $W" >> "$LEDGER"; }
      tick
      echo "attempt $TASUKI_ATTEMPT started on $W"
      if [ "$TASUKI_ATTEMPT" = 1 ]; then echo started > "$STARTED"; fi
      while [ ! -e "$GO" ]; do sleep 0.02; tick; done
      tick
      echo "attempt $TASUKI_ATTEMPT done on $W"
`, ledger, started, goFile))
			leader, follower := twoServers(t, dsn, dir)
			_, tokenFile := createToken(t, leader.url, "list")
			w := startWorker(t, leader.url, tokenFile, "w1", nil, "--server", follower.url, "--labels", "adopt")
			st := openPG(t, dsn)
			ctx := context.Background()

			run, err := leader.c.Trigger(ctx, "tick", nil, "test")
			if err != nil {
				t.Fatal(err)
			}
			waitFifo(t, started, w.proc, 30*time.Second)
			// The first line reached the database the servers share (the
			// worker is told a chunk was taken only then): any server reads it.
			eventually(t, 10*time.Second, "the attempt's first line to be readable from the follower", func() (bool, string) {
				var b bytes.Buffer
				if _, err := follower.c.ReadLog(ctx, run.ID, "long", 0, 0, &b); err != nil {
					return false, err.Error()
				}
				return strings.Contains(b.String(), "attempt 1 started on w1"), b.String()
			})
			if strings.Contains(w.logs(), "moved to another server") {
				t.Fatalf("the worker moved while the leader was alive:\n%s", w.logs())
			}
			if how == "kill -9" {
				leader.kill9()
			} else {
				// What the frozen leader does once woken up is
				// TestFailoverAdoptsLiveAttempts's concern.
				leader.signal(syscall.SIGSTOP)
				t.Cleanup(func() { _ = leader.cmd.Process.Signal(syscall.SIGCONT) })
			}
			follower.waitLine("leading:", 10*time.Second)
			follower.waitLine("attempt adopted", 10*time.Second)
			line := w.waitLine("moved to another server", adoptLeaseTimeout)
			if !strings.Contains(line, "from="+leader.url) || !strings.Contains(line, "to="+follower.url) {
				t.Errorf("the worker's line does not say it moved from %s to %s: %s", leader.url, follower.url, line)
			}
			awaitHeartbeat(t, follower.c, "w1", 1)
			if err := os.WriteFile(goFile, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if got := waitRunEnd(t, follower.c, run.ID); got.State != engine.RunSucceeded {
				t.Fatalf("run %d: %s, want succeeded", run.ID, got.State)
			}
			tk, atts := taskAttempts(t, st, run.ID, "long")
			if tk.Attempt != 1 || len(atts) != 1 || atts[0].Outcome != store.OutcomeSucceeded || atts[0].Worker != "w1" {
				t.Errorf("task %s attempt %d, attempts %s; want attempt 1 succeeded on w1, alone", tk.State, tk.Attempt, outcomes(atts))
			}
			if evs := storeEvents(t, st, run.ID); storeHasEvent(evs, engine.EvTaskLost, 0) {
				t.Errorf("the timeline records a lost attempt: %+v", evs)
			}
			if spans := attemptSpans(t, ledger); len(spans) != 1 || spans[0].attempt != 1 {
				t.Errorf("ledger: %+v, want attempt 1 alone", spans)
			}
			if log := runLog(t, follower.c, run.ID, "long"); !strings.Contains(log, "attempt 1 started on w1") {
				t.Errorf("log of the adopted attempt, read from the new leader: %q", log)
			}
			logs := w.logs()
			if n := strings.Count(logs, "moved to another server"); n != 1 {
				t.Errorf("the worker said %d times that it moved, want once:\n%s", n, logs)
			}
			if strings.Contains(logs, "ending the attempts") || strings.Contains(logs, "no longer holds the lease") {
				t.Errorf("the worker ended its attempt:\n%s", logs)
			}
			w.term(10 * time.Second)
			follower.term(15 * time.Second)
		})
	}
}

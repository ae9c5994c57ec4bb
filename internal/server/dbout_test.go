package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
)

// TestProcessPostgresRestartMidRun: a server on a PostgreSQL of the test's
// own, a remote worker, a run whose middle task is held on a fifo.
// PostgreSQL is stopped while the task runs; the API answers 503, not 500;
// the task finishes meanwhile and its worker reports it; the leader, whose
// renewals fail past its lease, is suspended rather than stopped.
// PostgreSQL starts again: the run goes on and succeeds with exactly one
// attempt of each task, none lost.
func TestProcessPostgresRestartMidRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, a server and a worker")
	}
	pg := pgtest.Private(t)
	dsn := pg.DSN()
	dir, work := t.TempDir(), t.TempDir()
	started := mkfifoAt(t, filepath.Join(work, "started"))
	release := mkfifoAt(t, filepath.Join(work, "release"))
	writeFile(t, dir, "hold.yaml", fmt.Sprintf(`name: hold
tasks:
  - id: first
    run: "true"
  - id: held
    needs: [first]
    run: 'echo started > %q; cat %q > /dev/null'
  - id: last
    needs: [held]
    run: "true"
`, started, release))
	s := startPGServer(t, dsn, "", dir, nil, "--workers", "0")
	_, tokenFile := createToken(t, s.url, "w1")
	w := startWorker(t, s.url, tokenFile, "w1", nil)
	ctx := context.Background()
	run, err := s.c.Trigger(ctx, "hold", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	waitFifo(t, started, w.proc, 60*time.Second)

	pg.Stop(t, "fast")
	// The API answers what it cannot read with 503.
	_, err = s.c.Run(ctx, run.ID)
	if e, ok := errors.AsType[*api.Error](err); !ok || e.Status != http.StatusServiceUnavailable {
		t.Errorf("GET run while PostgreSQL is down = %v, want 503", err)
	}
	// The held task ends while the store is down; its worker reports it.
	released := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(release, os.O_WRONLY, 0)
		if err == nil {
			_, err = f.WriteString("go\n")
			f.Close()
		}
		released <- err
	}()
	select {
	case err := <-released:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the held task never read its release fifo")
	}
	// Past the lease: the leader is suspended, not stopped; the run's write
	// waits.
	s.waitLine("no longer known to lead", 30*time.Second)
	s.waitLine("write run state: the store failed", 30*time.Second)
	if s.exited() {
		t.Fatalf("the server exited while PostgreSQL was down:\n%s", s.logs())
	}
	pg.Start(t)
	s.waitLine("leading again", 30*time.Second)

	got := waitRunEnd(t, s.c, run.ID)
	if got.State != engine.RunSucceeded {
		t.Fatalf("run ended %s\nserver:\n%s\nworker:\n%s", got.State, s.logs(), w.logs())
	}
	st := openPG(t, dsn)
	for _, task := range []string{"first", "held", "last"} {
		row, atts := taskAttempts(t, st, run.ID, task)
		if len(atts) != 1 || atts[0].Outcome != store.OutcomeSucceeded || row.Attempt != 1 {
			t.Errorf("task %s: attempts %s (row attempt %d), want exactly one, succeeded", task, outcomes(atts), row.Attempt)
		}
	}
	evs := storeEvents(t, st, run.ID)
	seen := map[string]int{}
	for _, ev := range evs {
		seen[string(ev.Kind)+"/"+ev.TaskID]++
	}
	for k, n := range seen {
		if n > 1 {
			t.Errorf("record %s written %d times", k, n)
		}
	}
	if strings.Contains(s.logs(), "status=500") {
		t.Errorf("the server answered 500 during the outage:\n%s", s.logs())
	}
}

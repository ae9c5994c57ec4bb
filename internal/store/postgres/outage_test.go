package postgres

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
)

// viaProxy is dsn with its host:port replaced by addr.
func viaProxy(t *testing.T, dsn, addr string) (string, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Skipf("the test server's DSN is not a URL with a host: %s", dsn)
	}
	target := u.Host
	u.Host = addr
	return u.String(), target
}

// TestApplyCommitAnswerLost: the connection breaks after the server
// committed a batch and before pgx read the answer. Apply must not say it
// failed (a retry would write the records twice) nor that it succeeded (it
// cannot know): it returns an OutcomeUnknownError, whose Committed says
// yes; and for a COMMIT lost before it reached the server, no.
func TestApplyCommitAnswerLost(t *testing.T) {
	dsn := pgtest.DSN(t)
	_, target := viaProxy(t, dsn, "127.0.0.1:1")
	proxy := pgtest.NewProxy(t, target)
	through, _ := viaProxy(t, dsn, proxy.Addr())
	db := openDSN(t, through)
	direct := openDSN(t, dsn)
	ctx := t.Context()

	r, err := db.CreateRun(ctx, store.NewRun{Run: store.Run{Pipeline: "p", Trigger: "manual",
		Run: engine.Run{State: engine.RunQueued, Remaining: 1}},
		Tasks: []store.TaskRow{{Index: 0, TaskID: "a", Task: engine.Task{State: engine.TaskPending}}}})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(msg string) store.Change {
		return store.Change{RunID: r.ID, Transition: engine.Transition{
			Run:     &engine.Run{State: engine.RunRunning, Remaining: 1, StartedAt: time.Now()},
			Records: []engine.Record{{Time: time.Now(), Kind: engine.EvRunStarted, Task: -1, Message: msg}}}}
	}
	dropped := proxy.LoseNextCommitAnswer()
	err = db.Apply(ctx, rec("committed, answer lost"))
	<-dropped
	ou, ok := errors.AsType[*store.OutcomeUnknownError](err)
	if !ok {
		t.Fatalf("Apply with its COMMIT answer lost = %v, want an OutcomeUnknownError", err)
	}
	if !store.Transient(err) {
		t.Errorf("Transient(%v) = false", err)
	}
	committed, err := ou.Committed(ctx)
	if err != nil || !committed {
		t.Fatalf("Committed = %v, %v; want true", committed, err)
	}
	evs, err := direct.Events(ctx, r.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[1].Message != "committed, answer lost" {
		t.Fatalf("events after the lost answer: %+v; want run_created and the batch's record once", evs)
	}

	// Cut while the batch is open: the server rolls it back; Apply's
	// error is transient, and if it is an unknown outcome, Committed says no.
	proxy.Cut()
	err = db.Apply(ctx, rec("never committed"))
	if err == nil || !store.Transient(err) {
		t.Fatalf("Apply through a cut proxy = %v, want a transient error", err)
	}
	proxy.Restore()
	if ou, ok := errors.AsType[*store.OutcomeUnknownError](err); ok {
		c, err := ou.Committed(ctx)
		if err != nil || c {
			t.Fatalf("Committed of a batch that never reached COMMIT = %v, %v", c, err)
		}
	}
	if err := db.Apply(ctx, rec("after the cut")); err != nil {
		t.Fatalf("Apply once the proxy is restored: %v", err)
	}
	evs, _ = direct.Events(ctx, r.ID, 0, 0)
	if len(evs) != 3 || evs[2].Message != "after the cut" {
		t.Fatalf("events: %+v; want run_created, the first batch's record and the last one", evs)
	}
}

// TestApplyAcrossRestart: a private PostgreSQL restarted under an open
// pool: the first Apply after the restart fails with a transient error (its
// connection was ended with admin_shutdown), or already works on a fresh
// connection; either way the next one works and nothing is half written.
func TestApplyAcrossRestart(t *testing.T) {
	in := pgtest.Private(t)
	db := openDSN(t, in.DSN())
	ctx := t.Context()
	r, err := db.CreateRun(ctx, store.NewRun{Run: store.Run{Pipeline: "p", Trigger: "manual",
		Run: engine.Run{State: engine.RunQueued, Remaining: 1}},
		Tasks: []store.TaskRow{{Index: 0, TaskID: "a", Task: engine.Task{State: engine.TaskPending}}}})
	if err != nil {
		t.Fatal(err)
	}
	change := store.Change{RunID: r.ID, Transition: engine.Transition{
		Records: []engine.Record{{Time: time.Now(), Kind: engine.EvRunStarted, Task: -1}}}}
	in.Restart(t)
	var failures int
	for {
		err := db.Apply(ctx, change)
		if err == nil {
			break
		}
		if !store.Transient(err) {
			t.Fatalf("Apply after a restart: permanent error %v", err)
		}
		if failures++; failures > 20 {
			t.Fatalf("Apply still failing after %d tries: %v", failures, err)
		}
		if ou, ok := errors.AsType[*store.OutcomeUnknownError](err); ok {
			if c, err := ou.Committed(ctx); err == nil && c {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("Apply failed %d times after the restart", failures)
	evs, err := db.Events(context.Background(), r.ID, 0, 0)
	if err != nil || len(evs) != 2 {
		t.Fatalf("events = %d, %v; want 2", len(evs), err)
	}
}

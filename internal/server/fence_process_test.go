package server_test

// Tests of a leader cut off from PostgreSQL while its workers still reach
// it (internal/server/leader.go: authoritative). Each server's connection
// to the database goes through a TCP proxy the test cuts; workers reach
// the servers directly.

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
)

// dsnVia returns dsn with its host replaced by a proxy the test controls.
func dsnVia(t *testing.T, dsn string) (string, *pgtest.Proxy) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Skipf("the test server's DSN is not a URL with a host: %s", dsn)
	}
	p := pgtest.NewProxy(t, u.Host)
	u.Host = p.Addr()
	return u.String(), p
}

// shareAdminToken makes the admin token that server s created known for
// the database under another DSN (the direct one, beside the proxy's).
func shareAdminToken(t *testing.T, s *pgServer, dsn string) {
	t.Helper()
	token, ok := serverTokens.Load(s.url)
	if !ok {
		t.Fatalf("no admin token for server %s", s.url)
	}
	adminTokens.Store(dsn, token)
}

// TestLeaderCutFromStoreStopsAnsweringWorkers: the leader loses the
// database but not its worker. Another server takes over and adopts the
// worker's attempt; the worker, which reaches only the old leader, must
// not be kept alive by it, or the new leader would run the attempt again
// on another worker at the same moment. The old leader stops answering
// the worker protocol once a successor may lead, the worker ends its
// attempt itself, and the new leader runs it again after its lease
// timeout: two attempts whose ticks never interleave.
func TestLeaderCutFromStoreStopsAnsweringWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("cuts a leader off PostgreSQL and waits a lease timeout (~15 s)")
	}
	dsn := pgtest.DSN(t)
	through, proxy := dsnVia(t, dsn)
	dir, ledger, started, goFile := tickFixture(t)
	a := startPGServer(t, through, "", dir, adoptEnv, "--workers", "0")
	a.waitLine("leading:", 10*time.Second)
	shareAdminToken(t, a, dsn)
	b := startPGServer(t, dsn, "", dir, adoptEnv, "--workers", "0")
	b.waitLine("following:", 10*time.Second)
	_, tokenFile := createToken(t, b.url, "fence")
	w1 := startWorker(t, a.url, tokenFile, "w1", nil, "--labels", "adopt")
	st := openPG(t, dsn)

	run, err := b.c.Trigger(context.Background(), "tick", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	waitFifo(t, started, w1.proc, 30*time.Second)
	// A second worker, on the other server, for the attempt that follows.
	w2 := startWorker(t, b.url, tokenFile, "w2", nil, "--labels", "adopt")

	proxy.Cut()
	b.waitLine("leading:", 15*time.Second)
	b.waitLine("attempt adopted", 10*time.Second)
	a.waitLine("workers' heartbeats go unanswered", 15*time.Second)
	w1.waitLine("ending the attempts before they are given to another worker", 15*time.Second)
	if err := os.WriteFile(goFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := waitRunEnd(t, b.c, run.ID); got.State != engine.RunSucceeded {
		t.Fatalf("run %d: %s, want succeeded", run.ID, got.State)
	}
	tk, atts := taskAttempts(t, st, run.ID, "long")
	if tk.Attempt != 2 || len(atts) != 2 || atts[0].Outcome != store.OutcomeLost || atts[1].Outcome != store.OutcomeSucceeded || atts[1].Worker != "w2" {
		t.Errorf("task %s attempt %d, attempts %s; want 1 lost, 2 succeeded on w2", tk.State, tk.Attempt, outcomes(atts))
	}
	spans := attemptSpans(t, ledger)
	if len(spans) != 2 {
		t.Fatalf("ledger: %+v, want two attempts", spans)
	}
	checkDisjoint(t, spans)
	t.Logf("attempt 1 (w1, answered by the cut leader) ticked until %s, attempt 2 (w2) from %s: %s apart",
		time.Unix(0, spans[0].last).Format("15:04:05.000"), time.Unix(0, spans[1].first).Format("15:04:05.000"),
		time.Duration(spans[1].first-spans[0].last).Round(time.Millisecond))
	w2.term(10 * time.Second)
	b.term(15 * time.Second)
}

// TestStoreOutageWorkerKeepsAttempt: the only server loses PostgreSQL for
// seven seconds, with the timings of adoptEnv (leader_ttl 1s,
// lease_timeout 9s; the defaults, 5s and 30s, scale this to about 30 s).
// Its worker's attempt goes on through it: the server answers heartbeats
// as long as no other server can have taken over, and past that the
// worker keeps it two thirds of a lease timeout more. When the database
// answers, the server leads again in the same term and takes the report:
// one attempt, succeeded.
func TestStoreOutageWorkerKeepsAttempt(t *testing.T) {
	if testing.Short() {
		t.Skip("cuts a server off PostgreSQL for 7 s")
	}
	dsn := pgtest.DSN(t)
	through, proxy := dsnVia(t, dsn)
	dir, ledger, started, goFile := tickFixture(t)
	s := startPGServer(t, through, "", dir, adoptEnv, "--workers", "0")
	s.waitLine("leading:", 10*time.Second)
	_, tokenFile := createToken(t, s.url, "outage")
	w := startWorker(t, s.url, tokenFile, "w1", nil, "--labels", "adopt")
	st := openPG(t, dsn)

	run, err := s.c.Trigger(context.Background(), "tick", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	waitFifo(t, started, w.proc, 30*time.Second)
	proxy.Cut()
	cut := time.Now()
	s.waitLine("no longer known to lead", 10*time.Second)
	// The outage outlasts the leader's lease and its authority: the
	// worker holds on by itself for the rest.
	s.waitLine("workers' heartbeats go unanswered", 10*time.Second)
	time.Sleep(time.Until(cut.Add(7 * time.Second))) // the outage's length is the test, not a wait for an event
	proxy.Restore()
	s.waitLine("leading again in the same term", 15*time.Second)
	if err := os.WriteFile(goFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := waitRunEnd(t, s.c, run.ID); got.State != engine.RunSucceeded {
		t.Fatalf("run %d: %s, want succeeded", run.ID, got.State)
	}
	tk, atts := taskAttempts(t, st, run.ID, "long")
	if tk.Attempt != 1 || len(atts) != 1 || atts[0].Outcome != store.OutcomeSucceeded {
		t.Errorf("task %s attempt %d, attempts %s; want attempt 1 succeeded, alone", tk.State, tk.Attempt, outcomes(atts))
	}
	if strings.Contains(w.logs(), "ending the attempts") {
		t.Errorf("the worker ended its attempt:\n%s", w.logs())
	}
	if spans := attemptSpans(t, ledger); len(spans) != 1 {
		t.Errorf("ledger: %+v, want attempt 1 alone", spans)
	}
	w.term(10 * time.Second)
	s.term(15 * time.Second)
}

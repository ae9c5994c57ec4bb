package server_test

// Tests of a new leader adopting the attempts remote workers still run
// (internal/lease/adopt.go), with real processes on PostgreSQL: the leader
// is killed (SIGKILL) or frozen (SIGSTOP) under a long task, the follower
// takes over, and the worker, which sends its heartbeats to the follower,
// keeps its attempt; a worker that is really gone loses it after a lease
// timeout. Each attempt keeps a ledger of ticks from the worker's clock, and
// the ticks of two attempts of a task never interleave.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
)

// Leases of the adoption tests: a worker keeps its attempts two thirds of
// the lease timeout without an answer (6 s), much longer than a takeover
// (the leader TTL, a third of it, and the new leader's start).
const (
	adoptLeaderTTL    = time.Second
	adoptLeaseTimeout = 9 * time.Second
)

var adoptEnv = []string{
	"TASUKI_LEADER_TTL=" + adoptLeaderTTL.String(),
	"TASUKI_LEASE_TIMEOUT=" + adoptLeaseTimeout.String(),
}

// tickTask is a pipeline whose task appends "ATTEMPT NANOS" lines to a
// ledger every 20 ms from its first moment to its last, from the clock of
// the machine it runs on, and prints "line N" to its log at each tick (N
// from 0), signals STARTED (a fifo) on its first attempt, and ends
// (succeeded) once the file GO exists.
func tickPipeline(t *testing.T, dir, ledger, started, goFile string) {
	t.Helper()
	writeFile(t, dir, "tick.yaml", fmt.Sprintf(`name: tick
env: {LEDGER: %q, STARTED: %q, GO: %q}
tasks:
  - id: long
    labels: [adopt]
    retry: {attempts: 1}
    run: |
      n=0
      tick() { echo "$TASUKI_ATTEMPT $(date +%%s%%N) $W" >> "$LEDGER"; echo "line $n"; n=$((n+1)); }
      tick
      if [ "$TASUKI_ATTEMPT" = 1 ]; then echo started > "$STARTED"; fi
      while [ ! -e "$GO" ]; do sleep 0.02; tick; done
      tick
      echo "attempt $TASUKI_ATTEMPT done on $W"
`, ledger, started, goFile))
}

// tickFixture writes tickPipeline in a new pipelines directory, with its
// ledger, started fifo and go file in another, and returns them.
func tickFixture(t *testing.T) (dir, ledger, started, goFile string) {
	t.Helper()
	dir, work := t.TempDir(), t.TempDir()
	ledger, goFile = filepath.Join(work, "ledger"), filepath.Join(work, "go")
	started = mkfifoAt(t, filepath.Join(work, "started"))
	tickPipeline(t, dir, ledger, started, goFile)
	return dir, ledger, started, goFile
}

// awaitHeartbeat waits until the leader c reaches lists worker as heard
// of, running the given number of attempts: its heartbeat reached the
// new leader, whose leases are now its.
func awaitHeartbeat(t *testing.T, c *api.Client, worker string, running int) {
	t.Helper()
	eventually(t, adoptLeaseTimeout, "the worker's heartbeat to reach the new leader", func() (bool, string) {
		r, err := c.Workers(context.Background())
		if err != nil {
			return false, err.Error()
		}
		for _, wi := range r {
			if wi.Name == worker && wi.LastHeartbeat != nil && len(wi.Running) == running {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", r)
	})
}

// attemptSpans reads the ledger: each attempt's first and last tick, and
// the workers that ran it.
type span struct {
	attempt     int
	first, last int64
	workers     []string
}

func attemptSpans(t *testing.T, ledger string) []span {
	t.Helper()
	by := map[int]*span{}
	for _, line := range readLines(t, ledger) {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("ledger line %q", line)
		}
		n, _ := strconv.Atoi(f[0])
		at, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			t.Fatalf("ledger line %q: %v", line, err)
		}
		s := by[n]
		if s == nil {
			s = &span{attempt: n, first: at, last: at}
			by[n] = s
		}
		s.first, s.last = min(s.first, at), max(s.last, at)
		if !slices.Contains(s.workers, f[2]) {
			s.workers = append(s.workers, f[2])
		}
	}
	var out []span
	for _, s := range by {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b span) int { return int(a.first - b.first) })
	return out
}

// checkDisjoint fails the test if two attempts' ticks overlap in time.
func checkDisjoint(t *testing.T, spans []span) {
	t.Helper()
	for i := 1; i < len(spans); i++ {
		if spans[i].first <= spans[i-1].last {
			t.Errorf("attempts %d and %d ran at the same moment: %d ran until %s, %d started at %s", spans[i-1].attempt, spans[i].attempt,
				spans[i-1].attempt, time.Unix(0, spans[i-1].last).Format(time.RFC3339Nano), spans[i].attempt, time.Unix(0, spans[i].first).Format(time.RFC3339Nano))
		}
	}
}

// twoServers starts two servers without an in-process executor on dsn and
// returns the leader and the follower.
func twoServers(t *testing.T, dsn, dir string) (leader, follower *pgServer) {
	t.Helper()
	a := startPGServer(t, dsn, "", dir, adoptEnv, "--workers", "0")
	a.waitLine("leading:", 10*time.Second)
	b := startPGServer(t, dsn, "", dir, adoptEnv, "--workers", "0")
	b.waitLine("following:", 10*time.Second)
	return a, b
}

// TestFailoverAdoptsLiveAttempts: a remote worker runs a long task for the
// leader; the leader dies (SIGKILL) or freezes past its lease (SIGSTOP).
// The follower takes over and adopts the attempt: the worker, whose
// heartbeats go to the follower, keeps running it, and when the task ends
// its report is taken. One attempt, succeeded, no lost record, its ticks
// uninterrupted; the frozen leader, woken up, writes nothing. The
// attempt's log goes on across the takeover: read from every server once
// the run has ended, and followed live from before the kill to its end,
// it holds the lines written before the kill and after the takeover, in
// order, each once.
func TestFailoverAdoptsLiveAttempts(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and freezes leaders of two servers on PostgreSQL (~20 s)")
	}
	for _, how := range []string{"kill -9", "SIGSTOP"} {
		t.Run(how, func(t *testing.T) {
			dsn := pgtest.DSN(t)
			dir, ledger, started, goFile := tickFixture(t)
			leader, follower := twoServers(t, dsn, dir)
			_, tokenFile := createToken(t, follower.url, "adopt")
			// The worker talks to the follower, which forwards to whoever leads.
			w := startWorker(t, follower.url, tokenFile, "w1", nil, "--labels", "adopt")
			st := openPG(t, dsn)
			ctx := context.Background()

			run, err := follower.c.Trigger(ctx, "tick", nil, "test")
			if err != nil {
				t.Fatal(err)
			}
			waitFifo(t, started, w.proc, 30*time.Second)
			// The log's first lines are in the store, taken by the leader,
			// and followed live on the follower.
			live := &followBuffer{changed: make(chan struct{}, 1)}
			followed := make(chan error, 1)
			go func() { followed <- follower.c.FollowLog(ctx, run.ID, "long", 1, live) }()
			live.await(t, " out line 3\n", 15*time.Second)
			killed := time.Now()
			if how == "kill -9" {
				leader.kill9()
			} else {
				leader.signal(syscall.SIGSTOP)
				t.Cleanup(func() { _ = leader.cmd.Process.Signal(syscall.SIGCONT) })
			}
			follower.waitLine("leading:", 10*time.Second)
			took := time.Now()
			follower.waitLine("attempt adopted", 10*time.Second)
			// The worker's heartbeat reaches the new leader: the lease is its.
			awaitHeartbeat(t, follower.c, "w1", 1)
			// Lines written after the takeover reach the log (the worker
			// tries its log again with a backoff of up to 10 s).
			eventually(t, 30*time.Second, "lines written after the takeover in the log", func() (bool, string) {
				stamps, _ := tickLog(t, runLog(t, follower.c, run.ID, "long"))
				return len(stamps) > 0 && stamps[len(stamps)-1].After(took), fmt.Sprintf("%d lines", len(stamps))
			})
			if err := os.WriteFile(goFile, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if got := waitRunEnd(t, follower.c, run.ID); got.State != engine.RunSucceeded {
				t.Fatalf("run %d: %s, want succeeded", run.ID, got.State)
			}
			whole := runLog(t, follower.c, run.ID, "long")
			checkAcrossKill(t, whole, killed, took)
			if !strings.Contains(follower.logs(), "the log of an adopted attempt goes on") {
				t.Errorf("the new leader did not resume the adopted attempt's log")
			}
			select {
			case err := <-followed:
				if err != nil || live.String() != whole {
					t.Errorf("followed live across the takeover: %v\n%q\nwant %q", err, live.String(), whole)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("the live follow did not end with the attempt; got %q", live.String())
			}
			// A server that joins later reads it whole too.
			third := startPGServer(t, dsn, "", dir, adoptEnv, "--workers", "0")
			third.waitLine("following:", 10*time.Second)
			if got := runLog(t, third.c, run.ID, "long"); got != whole {
				t.Errorf("the log read from a third server:\n%q\nwant %q", got, whole)
			}
			tk, atts := taskAttempts(t, st, run.ID, "long")
			if tk.Attempt != 1 || len(atts) != 1 || atts[0].Outcome != store.OutcomeSucceeded || atts[0].Worker != "w1" {
				t.Errorf("task %s attempt %d, attempts %s; want attempt 1 succeeded on w1, alone", tk.State, tk.Attempt, outcomes(atts))
			}
			if evs := storeEvents(t, st, run.ID); storeHasEvent(evs, engine.EvTaskLost, 0) {
				t.Errorf("the timeline records a lost attempt: %+v", evs)
			}
			spans := attemptSpans(t, ledger)
			if len(spans) != 1 || spans[0].attempt != 1 {
				t.Errorf("ledger: %+v, want attempt 1 alone", spans)
			}
			if log := runLog(t, follower.c, run.ID, "long"); !strings.Contains(log, "attempt 1 done on w1") {
				t.Errorf("log of the adopted attempt, read from the new leader: %q", log)
			}
			if strings.Contains(w.logs(), "ending the attempts") || strings.Contains(w.logs(), "no longer holds the lease") {
				t.Errorf("the worker ended its attempt:\n%s", w.logs())
			}
			if how == "SIGSTOP" {
				// Woken up, the old leader finds it was deposed and stops;
				// nothing it does reaches the store.
				leader.signal(syscall.SIGCONT)
				select {
				case <-leader.done:
				case <-time.After(30 * time.Second):
					t.Fatalf("the deposed leader still runs 30 s after it woke up")
				}
				tk2, atts2 := taskAttempts(t, st, run.ID, "long")
				if tk2.State != tk.State || tk2.Attempt != tk.Attempt || len(atts2) != 1 || atts2[0].Outcome != store.OutcomeSucceeded {
					t.Errorf("after the deposed leader stopped: task %+v, attempts %s", tk2, outcomes(atts2))
				}
				if got := runLog(t, third.c, run.ID, "long"); got != whole {
					t.Errorf("the log after the deposed leader stopped:\n%q\nwant %q", got, whole)
				}
			}
			w.term(10 * time.Second)
			third.term(15 * time.Second)
			follower.term(15 * time.Second)
		})
	}
}

// tickLog reads the log of an attempt of tickPipeline's task: the stamps
// of its "line N" lines, checked to come from 0 on, each once, in order,
// and whether the line saying the attempt is done ends it. A line being
// written (the log read while the attempt runs) is left out.
func tickLog(t *testing.T, log string) (stamps []time.Time, done bool) {
	t.Helper()
	log = log[:strings.LastIndexByte(log, '\n')+1]
	for line := range strings.SplitSeq(strings.TrimSuffix(log, "\n"), "\n") {
		if line == "" {
			continue
		}
		stamp, text, _ := strings.Cut(line, " ")
		at, err := time.Parse(time.RFC3339Nano, stamp)
		want := fmt.Sprintf("out line %d", len(stamps))
		switch {
		case err != nil || done:
			t.Errorf("log line %q after line %d", line, len(stamps)-1)
			return stamps, done
		case text == want:
			stamps = append(stamps, at)
		case strings.HasPrefix(text, "out attempt 1 done on "):
			done = true
		default:
			t.Errorf("log line %q, want %q", line, want)
			return stamps, done
		}
	}
	return stamps, done
}

// checkAcrossKill checks the whole log of an attempt that ran across a
// takeover: its lines in order, each once, some written before the leader
// was killed and some after the takeover, and its last line.
func checkAcrossKill(t *testing.T, log string, killed, took time.Time) {
	t.Helper()
	stamps, done := tickLog(t, log)
	var before, after int
	for _, at := range stamps {
		if at.Before(killed) {
			before++
		}
		if at.After(took) {
			after++
		}
	}
	if before == 0 || after == 0 || !done {
		t.Errorf("log of the adopted attempt: %d lines written before the kill, %d after the takeover, the last line there: %v (want some, some, true)\n%s",
			before, after, done, log)
	} else {
		t.Logf("log of the adopted attempt: %d lines, %d written before the kill, %d after the takeover", len(stamps), before, after)
	}
}

// TestFailoverWorkerGoneIsLost: the leader and the worker running its
// attempt both die. The new leader adopts the attempt, hears nothing of it
// for a lease timeout, records it lost (not charged) and runs it again on
// another worker; the two attempts never run at the same moment (the
// dead worker's process is ended by the test before the new leader's
// lease timeout runs out, as the worker's own give-up would have).
func TestFailoverWorkerGoneIsLost(t *testing.T) {
	if testing.Short() {
		t.Skip("waits a lease timeout after a takeover (~20 s)")
	}
	dsn := pgtest.DSN(t)
	dir, ledger, started, goFile := tickFixture(t)
	leader, follower := twoServers(t, dsn, dir)
	_, tokenFile := createToken(t, follower.url, "adopt")
	w1 := startWorker(t, follower.url, tokenFile, "w1", nil, "--labels", "adopt")
	st := openPG(t, dsn)
	ctx := context.Background()

	run, err := follower.c.Trigger(ctx, "tick", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	waitFifo(t, started, w1.proc, 30*time.Second)
	// The worker dies, and its attempt's processes with it (a spot
	// instance reclaimed); then the leader.
	w1.kill9()
	killTicker(t, ledger)
	leader.kill9()
	took := time.Now()
	follower.waitLine("leading:", 10*time.Second)
	follower.waitLine("attempt adopted", 10*time.Second)
	if err := os.WriteFile(goFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w2 := startWorker(t, follower.url, tokenFile, "w2", nil, "--labels", "adopt")
	if got := waitRunEnd(t, follower.c, run.ID); got.State != engine.RunSucceeded {
		t.Fatalf("run %d: %s, want succeeded", run.ID, got.State)
	}
	if since := time.Since(took); since < adoptLeaseTimeout {
		t.Errorf("the run ended %s after the takeover, before the lease timeout (%s) the adopted attempt had", since, adoptLeaseTimeout)
	}
	tk, atts := taskAttempts(t, st, run.ID, "long")
	if tk.Attempt != 2 || len(atts) != 2 || atts[0].Outcome != store.OutcomeLost || atts[1].Outcome != store.OutcomeSucceeded || atts[1].Worker != "w2" {
		t.Errorf("task %s attempt %d, attempts %s; want 1 lost, 2 succeeded on w2", tk.State, tk.Attempt, outcomes(atts))
	}
	if !strings.Contains(atts[0].Message, "not heard of") {
		t.Errorf("lost attempt's message %q does not say its worker was not heard of", atts[0].Message)
	}
	evs := storeEvents(t, st, run.ID)
	if storeHasEvent(evs, engine.EvTaskFailed, 0) || storeHasEvent(evs, engine.RecRetryScheduled, 0) {
		t.Errorf("the lost attempt was charged: %+v", evs)
	}
	checkDisjoint(t, attemptSpans(t, ledger))
	w2.term(10 * time.Second)
	follower.term(15 * time.Second)
}

// killTicker kills the ticking attempt of a worker killed with SIGKILL (its
// process outlives it, in a process group of its own), found by its
// ledger in its environment, and waits until it is gone.
func killTicker(t *testing.T, ledger string) {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	want := "LEDGER=" + ledger
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !slices.Contains(strings.Split(string(env), "\x00"), want) {
			continue
		}
		if pgid, err := syscall.Getpgid(pid); err == nil {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	eventually(t, 5*time.Second, "the dead worker's attempt to end", func() (bool, string) {
		for _, e := range entries {
			env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
			if err == nil && slices.Contains(strings.Split(string(env), "\x00"), want) {
				if b, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); strings.Contains(string(b), ") Z ") {
					continue // a zombie runs nothing
				}
				return false, "process " + e.Name()
			}
		}
		return true, ""
	})
}

// TestWorkerNetworkCutNeverOverlaps cuts a worker off the server (a TCP
// proxy between them) in the middle of a long attempt: the worker ends the
// attempt itself before the server's lease timeout, and the server runs it
// again on another worker after it; the ledger's ticks of the two attempts
// do not interleave.
func TestWorkerNetworkCutNeverOverlaps(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a cut worker's lease to expire (~10 s)")
	}
	dsn := pgtest.DSN(t)
	dir, ledger, started, goFile := tickFixture(t)
	s := startPGServer(t, dsn, "", dir, []string{"TASUKI_LEASE_TIMEOUT=3s"}, "--workers", "0")
	_, tokenFile := createToken(t, s.url, "cut")
	proxy := pgtest.NewProxy(t, strings.TrimPrefix(s.url, "http://"))
	w1 := startWorker(t, "http://"+proxy.Addr(), tokenFile, "w1", nil, "--labels", "adopt")
	st := openPG(t, dsn)
	ctx := context.Background()

	run, err := s.c.Trigger(ctx, "tick", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	waitFifo(t, started, w1.proc, 30*time.Second)
	proxy.Cut()
	w1.waitLine("ending the attempts before they are given to another worker", 10*time.Second)
	if err := os.WriteFile(goFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w2 := startWorker(t, s.url, tokenFile, "w2", nil, "--labels", "adopt")
	if got := waitRunEnd(t, s.c, run.ID); got.State != engine.RunSucceeded {
		t.Fatalf("run %d: %s, want succeeded", run.ID, got.State)
	}
	tk, atts := taskAttempts(t, st, run.ID, "long")
	if tk.Attempt != 2 || len(atts) != 2 || atts[0].Outcome != store.OutcomeLost || atts[1].Outcome != store.OutcomeSucceeded {
		t.Errorf("task %s attempt %d, attempts %s; want 1 lost, 2 succeeded", tk.State, tk.Attempt, outcomes(atts))
	}
	spans := attemptSpans(t, ledger)
	if len(spans) != 2 {
		t.Fatalf("ledger: %+v, want two attempts", spans)
	}
	checkDisjoint(t, spans)
	t.Logf("attempt 1 (w1) ticked until %s, attempt 2 (w2) from %s: %s apart", time.Unix(0, spans[0].last).Format("15:04:05.000"),
		time.Unix(0, spans[1].first).Format("15:04:05.000"), time.Duration(spans[1].first-spans[0].last).Round(time.Millisecond))
	proxy.Restore()
	w2.term(10 * time.Second)
	s.term(15 * time.Second)
}

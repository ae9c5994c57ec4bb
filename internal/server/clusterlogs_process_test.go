package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
)

// TestClusterLogsAcrossLeaderChange: with two servers on one PostgreSQL
// database and a remote worker, the log of an attempt run under leader A
// is read from server B whole, by byte range and live (the SSE stream),
// while it is written; the log of an attempt cut short by A's SIGKILL is
// followed on B to its end (B, now leading, records the attempt lost);
// and both are still read from B once A's data directory is gone.
func TestClusterLogsAcrossLeaderChange(t *testing.T) {
	if testing.Short() {
		t.Skip("kills the leader of two servers on PostgreSQL and waits for the takeover (~15 s)")
	}
	dsn := pgtest.DSN(t)
	dir, work := t.TempDir(), t.TempDir()
	started, gate := mkfifoAt(t, filepath.Join(work, "started")), mkfifoAt(t, filepath.Join(work, "gate"))
	child := filepath.Join(work, "child.pid")
	t.Cleanup(func() { killPidFile(child) })
	// talk prints two lines, waits for the test, prints a third; hang
	// prints a line and sleeps in its first attempt, and ends at once in
	// the next.
	writeFile(t, dir, "talk.yaml", fmt.Sprintf(`name: talk
env: {STARTED: %q, GATE: %q, CHILD: %q}
tasks:
  - id: say
    run: |
      echo "line 1 of run $TASUKI_RUN_ID"
      echo "line 2 on $W" >&2
      echo started > "$STARTED"
      cat "$GATE" > /dev/null
      echo "line 3"
  - id: hang
    needs: [say]
    run: |
      echo "before the kill, attempt $TASUKI_ATTEMPT"
      if [ "$TASUKI_ATTEMPT" = 1 ]; then
        sleep 300 & echo $! > "$CHILD"
        echo started > "$STARTED"
        wait
      fi
      echo "attempt $TASUKI_ATTEMPT ends"
`, started, gate, child))
	ctx := context.Background()

	a := startPGServer(t, dsn, "", dir, nil, "--workers", "0")
	a.waitLine("leading:", 10*time.Second)
	b := startPGServer(t, dsn, "", dir, nil, "--workers", "0")
	b.waitLine("following:", 10*time.Second)
	_, tokenFile := createToken(t, b.url, "logs")
	// The worker talks to B, which forwards the worker protocol to the
	// leader: A, then B itself.
	w := startWorker(t, b.url, tokenFile, "w1", nil)

	run, err := b.c.Trigger(ctx, "talk", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	waitFifo(t, started, w.proc, 30*time.Second)

	// Live, from B, while A's worker runs the attempt.
	live := &followBuffer{changed: make(chan struct{}, 1)}
	followed := make(chan error, 1)
	go func() { followed <- b.c.FollowLog(ctx, run.ID, "say", 1, live) }()
	live.await(t, " err line 2 on w1\n", 15*time.Second)
	if !strings.Contains(live.String(), fmt.Sprintf(" out line 1 of run %d\n", run.ID)) {
		t.Errorf("the follower on B got %q", live.String())
	}
	select {
	case err := <-followed:
		t.Fatalf("the follow ended while the attempt runs: %v", err)
	default:
	}
	if err := os.WriteFile(gate, []byte("go\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-followed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the follow on B did not end with the attempt; got %q", live.String())
	}
	whole := runLog(t, b.c, run.ID, "say")
	if live.String() != whole || !strings.HasSuffix(whole, " out line 3\n") || strings.Count(whole, "\n") != 3 {
		t.Errorf("followed %q\nread whole %q", live.String(), whole)
	}
	// Byte ranges, from B.
	for _, off := range []int64{1, int64(strings.Index(whole, "line 2")), int64(len(whole)) - 3} {
		var part bytes.Buffer
		end, err := b.c.ReadLog(ctx, run.ID, "say", 1, off, &part)
		if err != nil || part.String() != whole[off:] || end != int64(len(whole)) {
			t.Errorf("from %d: %q, end %d, %v; want %q", off, part.String(), end, err, whole[off:])
		}
	}
	// The log is in the database, not on A's disk.
	if _, err := os.Stat(filepath.Join(a.home, "logs", strconv.FormatInt(run.ID, 10), "say.1.log")); !os.IsNotExist(err) {
		t.Errorf("the log file stayed on A's disk: %v", err)
	}

	// hang's first attempt prints a line and sleeps; A is killed.
	waitFifo(t, started, w.proc, 30*time.Second)
	cut := &followBuffer{changed: make(chan struct{}, 1)}
	go func() { followed <- b.c.FollowLog(ctx, run.ID, "hang", 1, cut) }()
	cut.await(t, " out before the kill, attempt 1\n", 15*time.Second)
	a.kill9()
	b.waitLine("leading:", 15*time.Second)
	select {
	case err := <-followed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the follow of the attempt cut short did not end; got %q", cut.String())
	}
	if strings.Count(cut.String(), "\n") != 1 {
		t.Errorf("the follow of the attempt cut short got %q", cut.String())
	}
	if got := waitRunEnd(t, b.c, run.ID); got.State != engine.RunSucceeded {
		t.Fatalf("run %d: %s", run.ID, got.State)
	}

	// A's disk is lost: every log is still there.
	if err := os.RemoveAll(a.home); err != nil {
		t.Fatal(err)
	}
	if got := runLog(t, b.c, run.ID, "say"); got != whole {
		t.Errorf("say after A's disk is gone: %q", got)
	}
	var first bytes.Buffer
	if _, err := b.c.ReadLog(ctx, run.ID, "hang", 1, 0, &first); err != nil || first.String() != cut.String() {
		t.Errorf("hang attempt 1 after A's disk is gone: %q, %v", first.String(), err)
	}
	if got := runLog(t, b.c, run.ID, "hang"); !strings.HasSuffix(got, " out attempt 2 ends\n") {
		t.Errorf("hang attempt 2: %q", got)
	}
	refollow := &followBuffer{changed: make(chan struct{}, 1)}
	if err := b.c.FollowLog(ctx, run.ID, "say", 1, refollow); err != nil || refollow.String() != whole {
		t.Errorf("follow of an ended log from B: %q, %v", refollow.String(), err)
	}
	w.term(15 * time.Second)
	b.term(15 * time.Second)
}

// cutProxy is a TCP proxy between a worker and its server that the test
// cuts (every connection closed, new ones refused) and restores.
type cutProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]bool
}

func startProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *cutProxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *cutProxy) serve(c net.Conn) {
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.conns[c] = true
	p.mu.Unlock()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[s] = true
	p.mu.Unlock()
	go func() { io.Copy(s, c); s.Close() }()
	io.Copy(c, s)
	c.Close()
}

// setCut cuts (closing every connection) or restores the link.
func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
		clear(p.conns)
	}
}

// TestWorkerBuffersLogWhileCut: a worker cut from its server (a proxy the
// test controls) while its task writes far more than --log-buffer keeps
// the first and last parts of that output, and delivers them with a line
// saying how much was dropped between them once the link is back; the
// attempt succeeds and its log is whole around the gap.
func TestWorkerBuffersLogWhileCut(t *testing.T) {
	if testing.Short() {
		t.Skip("cuts a worker from its server for a few seconds")
	}
	dsn := pgtest.DSN(t)
	dir, work := t.TempDir(), t.TempDir()
	started, written := mkfifoAt(t, filepath.Join(work, "started")), mkfifoAt(t, filepath.Join(work, "written"))
	gate := mkfifoAt(t, filepath.Join(work, "gate"))
	const lines = 20000
	writeFile(t, dir, "chatty.yaml", fmt.Sprintf(`name: chatty
env: {STARTED: %q, WRITTEN: %q, GATE: %q}
tasks:
  - id: talk
    run: |
      echo first
      echo started > "$STARTED"
      cat "$GATE" > /dev/null
      i=0
      while [ $i -lt %d ]; do echo "line $i"; i=$((i+1)); done
      echo written > "$WRITTEN"
      echo last
`, started, written, gate, lines))
	ctx := context.Background()
	// A lease outlives the cut.
	s := startPGServer(t, dsn, "", dir, []string{"TASUKI_LEASE_TIMEOUT=60s"}, "--workers", "0")
	_, tokenFile := createToken(t, s.url, "cut")
	proxy := startProxy(t, strings.TrimPrefix(s.url, "http://"))
	w := startWorker(t, proxy.url(), tokenFile, "w1", nil, "--log-buffer", "64KiB")
	run, err := s.c.Trigger(ctx, "chatty", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	waitFifo(t, started, w.proc, 30*time.Second)
	eventually(t, 10*time.Second, "the first line to reach the server", func() (bool, string) {
		got := runLog(t, s.c, run.ID, "talk")
		return strings.Contains(got, " out first\n"), got
	})
	proxy.setCut(true)
	if err := os.WriteFile(gate, []byte("go\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFifo(t, written, w.proc, 30*time.Second) // all of it is in the worker now
	before := runLog(t, s.c, run.ID, "talk")
	proxy.setCut(false)
	if got := waitRunEnd(t, s.c, run.ID); got.State != engine.RunSucceeded {
		t.Fatalf("run %d: %s", run.ID, got.State)
	}
	log := runLog(t, s.c, run.ID, "talk")
	if !strings.HasPrefix(log, before) || strings.Contains(before, " out last\n") {
		t.Errorf("the server had %d bytes before the link came back, which the log does not start with", len(before))
	}
	if len(log) > 80<<10 {
		t.Errorf("%d bytes of log, past the 64 KiB buffer and a few lines", len(log))
	}
	note := regexp.MustCompile(`(?m)^\S+ log tasuki worker: the server did not take the log as fast as the task wrote it: (\d+) lines \(.+ of log, time stamps included\) dropped here$`)
	m := note.FindAllStringSubmatch(log, -1)
	if len(m) != 1 {
		t.Fatalf("%d lines about dropped output, want 1; log:\n%s", len(m), log)
	}
	dropped, _ := strconv.Atoi(m[0][1])
	kept := regexp.MustCompile(`(?m)^\S+ out line \d+$`).FindAllString(log, -1)
	if len(kept)+dropped != lines {
		t.Errorf("%d lines kept and %d dropped: not the %d written", len(kept), dropped, lines)
	}
	for _, want := range []string{" out first\n", " out line 0\n", fmt.Sprintf(" out line %d\n", lines-1), " out last\n"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	if !strings.HasSuffix(log, " out last\n") {
		t.Errorf("the log does not end with the task's last line: %q", log[max(len(log)-200, 0):])
	}
	w.term(15 * time.Second)
	s.term(15 * time.Second)
}

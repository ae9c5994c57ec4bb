package server_test

// Tests of tasuki scaled out, with real processes: several `tasuki server`
// processes on one PostgreSQL store (one leads, the others answer the API
// and forward), and `tasuki worker` processes that lease attempts over HTTP
// and are killed, stopped and preempted under the server's feet. Each test
// has a PostgreSQL schema of its own (pgtest.DSN: skipped without
// PostgreSQL, failed under CI=true), and every process it starts is killed
// when it ends.
//
// Leases are short here (leader TTL and worker lease timeout of 2 s), so
// takeovers and expiries happen within seconds.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/cli"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/lease"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/postgres"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
)

// Lease lengths of the servers these tests start.
const (
	scaleLeaderTTL    = 2 * time.Second
	scaleLeaseTimeout = 2 * time.Second
)

// scaleEnv is the environment of a server on PostgreSQL: short leases.
func scaleEnv(extra ...string) []string {
	return append([]string{
		"TASUKI_LEADER_TTL=" + scaleLeaderTTL.String(),
		"TASUKI_LEASE_TIMEOUT=" + scaleLeaseTimeout.String(),
	}, extra...)
}

// proc is a tasuki process (a server or a worker) started by this file: the
// test binary as the CLI. It keeps what the process writes on stderr, and
// wakes whoever waits for a line at each one.
type proc struct {
	tb   testing.TB
	what string // "server", "worker w1": for messages
	argv []string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // cmd.Wait's answer, once done is closed

	mu      sync.Mutex
	log     bytes.Buffer
	changed chan struct{} // closed (and replaced) at each line of stderr
}

// spawn starts the test binary as `tasuki ARGS...` with env added to
// serverEnv's. The process is killed (SIGKILL) when the test ends, and a data
// race it reported fails the test.
func spawn(tb testing.TB, what, dir string, env []string, args ...string) *proc {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = serverEnv(env...)
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &proc{tb: tb, what: what, argv: args, cmd: cmd, done: make(chan struct{}), changed: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stderr)
		p.err = cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.kill()
		logs := p.logs()
		if strings.Contains(logs, "WARNING: DATA RACE") {
			tb.Errorf("%s (process %d) reported a data race:\n%s", what, cmd.Process.Pid, logs)
		} else if tb.Failed() {
			tb.Logf("log of %s (process %d, %v):\n%s", what, cmd.Process.Pid, args, logs)
		}
	})
	return p
}

func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill ends the process with SIGKILL if it still runs, and reaps it.
func (p *proc) kill() {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// kill9 kills the process with SIGKILL, as a crash, the OOM killer or a
// spot instance vanishing would, and checks it died of it.
func (p *proc) kill9() {
	p.tb.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.tb.Fatalf("kill -9 %s: %v", p.what, err)
	}
	<-p.done
	var ee *exec.ExitError
	if !errors.As(p.err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		p.tb.Fatalf("%s did not die of SIGKILL: %v", p.what, p.err)
	}
}

// signal sends sig (SIGSTOP, SIGCONT...).
func (p *proc) signal(sig syscall.Signal) {
	p.tb.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.tb.Fatalf("signal %v to %s: %v", sig, p.what, err)
	}
}

// term sends SIGTERM and waits at most within for an exit with status 0; it
// returns how long the process took.
func (p *proc) term(within time.Duration) time.Duration {
	p.tb.Helper()
	began := time.Now()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(within):
		p.tb.Fatalf("%s did not exit within %s of SIGTERM\n%s", p.what, within, p.logs())
	}
	if p.err != nil {
		p.tb.Fatalf("%s exited with %v after SIGTERM, want status 0\n%s", p.what, p.err, p.logs())
	}
	return time.Since(began)
}

// waitLine waits until the process has written a line containing substr on
// stderr, and returns that line.
func (p *proc) waitLine(substr string, timeout time.Duration) string {
	p.tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		text, changed := p.log.String(), p.changed
		p.mu.Unlock()
		if i := strings.Index(text, substr); i >= 0 {
			start := strings.LastIndexByte(text[:i], '\n') + 1
			line, _, _ := strings.Cut(text[start:], "\n")
			return line
		}
		select {
		case <-changed:
		case <-p.done:
			if strings.Contains(p.logs(), substr) {
				continue
			}
			p.tb.Fatalf("%s exited (%v) before writing %q\n%s", p.what, p.err, substr, p.logs())
		case <-deadline.C:
			p.tb.Fatalf("%s did not write %q within %s\n%s", p.what, substr, timeout, p.logs())
		}
	}
}

// pgServer is a `tasuki server` process on a PostgreSQL store.
type pgServer struct {
	*proc
	home, url string
	c         *api.Client
}

// startPGServer starts a server on the store dsn with the data directory
// home (a new one when empty), on a port the kernel picks, and waits for its
// "listening" line.
func startPGServer(tb testing.TB, dsn, home, pipelines string, env []string, args ...string) *pgServer {
	tb.Helper()
	if home == "" {
		home = tb.TempDir()
	}
	argv := append([]string{"server", "--home", home, "--pipelines", pipelines, "--addr", "127.0.0.1:0", "--db", dsn}, args...)
	p := spawn(tb, "server "+filepath.Base(home), home, scaleEnv(env...), argv...)
	line := p.waitLine("tasuki server listening on ", 30*time.Second)
	u, _, _ := strings.Cut(strings.TrimPrefix(line, "tasuki server listening on "), " ")
	if !strings.HasPrefix(u, "http://127.0.0.1:") || strings.HasSuffix(u, ":0") {
		tb.Fatalf("listening on %q: want a loopback URL with the port the kernel chose", u)
	}
	c, err := api.NewClient(u, nil)
	if err != nil {
		tb.Fatal(err)
	}
	// The first server of a database leaves the admin token in its data
	// directory; the others share it.
	token, ok := "", false
	if b, err := os.ReadFile(filepath.Join(home, "admin.token")); err == nil {
		token = strings.TrimSpace(string(b))
		adminTokens.Store(dsn, token)
	} else if v, found := adminTokens.Load(dsn); found {
		token, ok = v.(string), true
	}
	if token == "" && !ok {
		tb.Fatalf("no admin token for the database of server %s", u)
	}
	serverTokens.Store(u, token)
	p.what = "server " + u
	return &pgServer{proc: p, home: home, url: u, c: c.WithToken(token)}
}

// adminTokens is the admin API token of each test database (by DSN), and
// serverTokens that of each server (by URL), for the CLI commands tests run
// against them.
var adminTokens, serverTokens sync.Map

// workerProc is a `tasuki worker` process.
type workerProc struct {
	*proc
	name string
}

// startWorker starts `tasuki worker --server URL --token-file FILE --name
// NAME ARGS...` and waits for it to start. Its tasks see W=NAME in their
// environment (the worker passes its own to them), so a side effect can say
// which worker ran it.
func startWorker(tb testing.TB, url, tokenFile, name string, env []string, args ...string) *workerProc {
	tb.Helper()
	dir := tb.TempDir()
	argv := []string{"worker", "--server", url, "--name", name, "--dir", dir}
	if tokenFile != "" {
		argv = append(argv, "--token-file", tokenFile)
	}
	p := spawn(tb, "worker "+name, dir, append([]string{"W=" + name}, env...), append(argv, args...)...)
	p.waitLine("worker started", 30*time.Second)
	return &workerProc{proc: p, name: name}
}

// cliAt runs the CLI in this process against the server at url.
func cliAt(tb testing.TB, url string, args ...string) cliResult {
	tb.Helper()
	var out, errb bytes.Buffer
	args = append([]string{"--server", url, "--home", filepath.Join(tb.TempDir(), "cli-unused")}, args...)
	if v, ok := serverTokens.Load(url); ok {
		args = append([]string{"--token", v.(string)}, args...)
	}
	code := cli.Main(args, cli.IO{In: strings.NewReader(""), Out: &out, Err: &errb}, "test")
	return cliResult{code: code, out: out.String(), errOut: errb.String()}
}

// createToken makes a worker token with `tasuki token create NAME`, checks
// the token is the last line of the output, and writes it to a file (0600)
// for workers' --token-file. It returns the token and the file.
func createToken(tb testing.TB, url, name string) (token, file string) {
	tb.Helper()
	r := cliAt(tb, url, "token", "create", name)
	if r.code != 0 {
		tb.Fatalf("token create %s: exit %d\n%s%s", name, r.code, r.out, r.errOut)
	}
	lines := strings.Split(strings.TrimRight(r.out, "\n"), "\n")
	token = strings.TrimSpace(lines[len(lines)-1])
	if !strings.HasPrefix(token, "tsk_") || len(token) < 40 {
		tb.Fatalf("token create %s: last line %q is not a token\nstdout:\n%s\nstderr:\n%s", name, token, r.out, r.errOut)
	}
	if strings.Contains(r.errOut, token) {
		tb.Errorf("token create printed the token on stderr too: %q", r.errOut)
	}
	file = filepath.Join(tb.TempDir(), "token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return token, file
}

// openPG opens the store the servers share, to check what they recorded.
func openPG(tb testing.TB, dsn string) store.Store {
	tb.Helper()
	st, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// waitFifo blocks until a task writes to the FIFO, or fails the test when p
// exits or nothing comes in time.
func waitFifo(t *testing.T, fifo string, p *proc, timeout time.Duration) {
	t.Helper()
	got := make(chan error, 1)
	go func() {
		_, err := os.ReadFile(fifo)
		got <- err
	}()
	release := func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		<-got
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-p.done:
		release()
		t.Fatalf("%s exited (%v) before a task wrote to %s", p.what, p.err, fifo)
	case <-time.After(timeout):
		release()
		t.Fatalf("no task wrote to %s within %s", fifo, timeout)
	}
}

func mkfifoAt(t *testing.T, path string) string {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// taskAttempts reads a task's row and attempts from the store.
func taskAttempts(t *testing.T, st store.Store, run int64, task string) (store.TaskRow, []store.Attempt) {
	t.Helper()
	ctx := context.Background()
	tasks, err := st.Tasks(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks {
		if tk.TaskID == task {
			atts, err := st.Attempts(ctx, run, tk.Index)
			if err != nil {
				t.Fatal(err)
			}
			return tk, atts
		}
	}
	t.Fatalf("run %d has no task %q", run, task)
	return store.TaskRow{}, nil
}

func outcomes(atts []store.Attempt) string {
	var s []string
	for _, a := range atts {
		s = append(s, fmt.Sprintf("%d:%s", a.Attempt, a.Outcome))
	}
	return strings.Join(s, " ")
}

// storeEvents reads a run's whole timeline from the store.
func storeEvents(t *testing.T, st store.Store, run int64) []store.Event {
	t.Helper()
	var out []store.Event
	var after int64
	for {
		evs, err := st.Events(context.Background(), run, after, store.MaxEventsLimit)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, evs...)
		if len(evs) < store.MaxEventsLimit {
			return out
		}
		after = evs[len(evs)-1].Seq
	}
}

func storeHasEvent(evs []store.Event, kind engine.EventKind, attempt int) bool {
	for _, e := range evs {
		if e.Kind == kind && (attempt == 0 || e.Attempt == attempt) {
			return true
		}
	}
	return false
}

// waitRunsEnd waits until none of the runs is queued or running, and
// returns them as they ended.
func waitRunsEnd(t *testing.T, c *api.Client, ids []int64, timeout time.Duration) []api.Run {
	t.Helper()
	out := make([]api.Run, len(ids))
	eventually(t, timeout, fmt.Sprintf("%d runs to end", len(ids)), func() (bool, string) {
		for i, id := range ids {
			if out[i].State.Terminal() {
				continue
			}
			r, err := c.Run(context.Background(), id)
			if err != nil {
				return false, err.Error()
			}
			if !r.State.Terminal() {
				return false, fmt.Sprintf("run %d is %s", id, r.State)
			}
			out[i] = r
		}
		return true, ""
	})
	return out
}

// readLines reads a file of lines ("" when it does not exist).
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// TestFailoverScheduleExactlyOnce runs two servers on one PostgreSQL schema
// (a data directory each, the same pipelines directory) with a schedule that
// fires every second, catch-up all. Exactly one leads; the other answers the
// API: it lists runs, a trigger through it is executed by the leader, a
// cancel and a log read through it are forwarded. Then the leader is killed
// with SIGKILL in the middle of an attempt, while intervals keep falling due:
// the follower takes over within about the leader TTL, recovers the run it
// was executing (the attempt is lost, then retried) and catches up the
// intervals that fell due meanwhile. The killed server, restarted on its data
// directory, follows. At the end every interval from the first to the last
// ran exactly once: contiguous, none doubled or missing, all succeeded.
//
// The schedule runs on the real clock (a 6-field cron with seconds), not on
// the accelerated test clock (TASUKI_TEST_CLOCK): that clock also times the
// leadership lease (leader.go passes s.now() to AcquireLeadership), so at
// 600x a 2 s TTL lasts 3 ms of real time and the servers depose each other.
func TestFailoverScheduleExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("kills the leader of two servers on PostgreSQL and waits for the takeover (~20 s)")
	}
	dsn := pgtest.DSN(t)
	dir, work := t.TempDir(), t.TempDir()
	marks, lock, pidFile := filepath.Join(work, "marks"), filepath.Join(work, "lock"), filepath.Join(work, "blocked.pid")
	fifo := mkfifoAt(t, filepath.Join(work, "started"))
	t.Cleanup(func() { killPidFile(pidFile) })
	// The attempt of the fourth interval or so blocks (once) until the test
	// has seen it, so the kill lands in the middle of it.
	writeFile(t, dir, "tick.yaml", fmt.Sprintf(`name: tick
schedule: {cron: '* * * * * *', timezone: UTC, catchup: all}
env: {MARKS: %q, LOCK: %q, FIFO: %q, PIDFILE: %q}
tasks:
  - id: mark
    retry: {attempts: 3, backoff: 50ms}
    run: |
      echo "$TASUKI_INTERVAL_START $TASUKI_ATTEMPT" >> "$MARKS"
      if [ "$(wc -l < "$MARKS")" -ge 4 ] && mkdir "$LOCK" 2>/dev/null; then
        echo "$TASUKI_INTERVAL_START" > "$LOCK/interval"
        echo $$ > "$PIDFILE"
        echo started > "$FIFO"
        exec sleep 30
      fi
      sleep 0.2
`, marks, lock, fifo, pidFile))
	writeFile(t, dir, "greet.yaml", "name: greet\ntasks:\n  - {id: say, run: 'echo \"hello from $TASUKI_RUN_ID\"'}\n")
	writeFile(t, dir, "long.yaml", "name: long\ntasks:\n  - {id: wait, run: 'sleep 30'}\n")
	ctx := context.Background()

	a := startPGServer(t, dsn, "", dir, nil)
	b := startPGServer(t, dsn, "", dir, nil)
	// Exactly one leads, and says so; the other follows it.
	var leader, follower *pgServer
	eventually(t, 10*time.Second, "one of the servers to lead", func() (bool, string) {
		la, lb := strings.Contains(a.logs(), "leading:"), strings.Contains(b.logs(), "leading:")
		switch {
		case la && lb:
			t.Fatalf("both servers say they lead")
		case la:
			leader, follower = a, b
		case lb:
			leader, follower = b, a
		}
		return leader != nil, "no leading: line yet"
	})
	follower.waitLine("following: another server leads", 10*time.Second)
	if line := follower.waitLine("following:", time.Second); !strings.Contains(line, leader.url) {
		t.Errorf("the follower's line %q does not name the leader's address %s", line, leader.url)
	}

	// Every server answers the API.
	if _, err := follower.c.Runs(ctx, api.RunFilter{}); err != nil {
		t.Fatalf("GET /runs on the follower: %v", err)
	}
	if err := follower.c.Ready(ctx); err != nil {
		t.Errorf("the follower is not ready: %v", err)
	}
	// A trigger through the follower is executed by the leader; its log,
	// in the database the servers share, is read by the follower itself.
	greet, err := follower.c.Trigger(ctx, "greet", nil, "test")
	if err != nil {
		t.Fatalf("trigger through the follower: %v", err)
	}
	if got := waitRunEnd(t, follower.c, greet.ID); got.State != engine.RunSucceeded {
		t.Fatalf("run %d triggered through the follower: %s", greet.ID, got.State)
	}
	if log := runLog(t, follower.c, greet.ID, "say"); !strings.Contains(log, fmt.Sprintf("hello from %d", greet.ID)) {
		t.Errorf("log of run %d read through the follower: %q", greet.ID, log)
	}
	if end, ok, err := openPG(t, dsn).LogEnd(ctx, greet.ID, "say", 1); err != nil || !ok || !end.Final {
		t.Errorf("run %d's log is not complete in the database: %+v, %v, %v", greet.ID, end, ok, err)
	}
	if _, err := os.Stat(filepath.Join(follower.home, "logs", strconv.FormatInt(greet.ID, 10))); err == nil {
		t.Errorf("run %d ran on the follower: its log is in the follower's data directory", greet.ID)
	}
	// A cancel through the follower is forwarded to the leader, which ends
	// the running attempt.
	long, err := follower.c.Trigger(ctx, "long", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the long task to run", func() (bool, string) {
		r, err := follower.c.Run(ctx, long.ID)
		if err != nil || len(r.Tasks) == 0 {
			return false, fmt.Sprint(err)
		}
		return r.Tasks[0].State == engine.TaskRunning, string(r.Tasks[0].State)
	})
	if _, err := follower.c.Cancel(ctx, long.ID, "test"); err != nil {
		t.Fatalf("cancel through the follower: %v", err)
	}
	if got := waitRunEnd(t, follower.c, long.ID); got.State != engine.RunCancelled || got.Tasks[0].State != engine.TaskCancelled {
		t.Fatalf("run %d cancelled through the follower: %s, task %s", long.ID, got.State, got.Tasks[0].State)
	}

	// The kill lands in the middle of an attempt, while intervals fire.
	waitFifo(t, fifo, leader.proc, 30*time.Second)
	leader.kill9()
	killedAt := time.Now()
	line := follower.waitLine("leading:", 10*scaleLeaderTTL)
	took := time.Since(killedAt)
	t.Logf("the follower took over %s after the leader was killed (leader TTL %s): %s", took.Round(time.Millisecond), scaleLeaderTTL, line)
	if limit := scaleLeaderTTL + scaleLeaderTTL/3 + 2*time.Second; took > limit {
		t.Errorf("the follower took over %s after the kill, want within %s (TTL %s, renewal every TTL/3, and slack)", took, limit, scaleLeaderTTL)
	}
	survivor := follower
	// The killed server, restarted on its data directory, follows.
	restarted := startPGServer(t, dsn, leader.home, dir, nil)
	if line := restarted.waitLine("following:", 10*time.Second); !strings.Contains(line, survivor.url) {
		t.Errorf("the restarted server follows %q, want the survivor %s", line, survivor.url)
	}
	if strings.Contains(restarted.logs(), "leading:") {
		t.Errorf("the restarted server leads while the survivor does")
	}

	// Let the survivor run past the takeover, then stop the schedule (a
	// paused pipeline gets no more scheduled runs) and let started runs end.
	until := killedAt.Add(4 * time.Second).UTC()
	eventually(t, 30*time.Second, "a succeeded run of an interval ending after "+until.Format(time.RFC3339Nano), func() (bool, string) {
		page, err := survivor.c.Runs(ctx, api.RunFilter{Pipeline: "tick", Limit: 10})
		if err != nil || len(page.Items) == 0 {
			return false, fmt.Sprint(err)
		}
		for _, r := range page.Items {
			if r.State == engine.RunSucceeded && r.IntervalEnd.After(until) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("newest run %d ending %s: %s", page.Items[0].ID, page.Items[0].IntervalEnd, page.Items[0].State)
	})
	if _, err := restarted.c.SetPaused(ctx, "tick", true, "test"); err != nil { // through a follower
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "every run of tick to end", func() (bool, string) {
		active := listRuns(t, survivor.c, api.RunFilter{Pipeline: "tick", States: []engine.RunState{engine.RunQueued, engine.RunRunning}})
		return len(active) == 0, fmt.Sprintf("%d runs queued or running", len(active))
	})

	runs := listRuns(t, restarted.c, api.RunFilter{Pipeline: "tick"}) // a follower's view of the store
	for _, r := range runs {
		if r.Trigger != store.TriggerSchedule {
			t.Errorf("run %d: trigger %q, want schedule", r.ID, r.Trigger)
		}
	}
	seen := readMarks(t, marks)
	lost := checkIntervalRuns(t, survivor.c, runs, "mark", seen, time.UTC)
	checkKilled(t, lock, lost, seen, time.UTC)
	first, last := runs[0], runs[len(runs)-1] // sorted by checkIntervalRuns
	if !first.IntervalStart.Before(killedAt.Add(-3*time.Second)) || !last.IntervalEnd.After(until) {
		t.Errorf("runs cover %s to %s; want them to span the kill at %s", first.IntervalStart, last.IntervalEnd, killedAt.UTC())
	}
	t.Logf("%d scheduled runs, one per second from %s to %s, across the kill; with a lost attempt: %d", len(runs), first.IntervalStart.Format("15:04:05"), last.IntervalEnd.Format("15:04:05"), len(lost))
	survivor.term(15 * time.Second)
	restarted.term(15 * time.Second)
}

// TestFailoverDeposedLeaderIsFenced freezes the leader (SIGSTOP) in the
// middle of an attempt, past its leadership lease: the follower takes over,
// records the attempt as lost and runs it again to success. The old
// leader's watchdog has ended its attempt meanwhile (watchdog_timeout, a
// third of the lease timeout, after it froze). Then the old leader wakes up
// (SIGCONT), finds it no longer leads and drains, and tries to record its
// attempt's end (preempted: the watchdog killed it). Nothing it writes may
// reach the store: the attempt stays lost, the timeline gets no other end
// for it, and the task and run stay as the new leader left them.
func TestFailoverDeposedLeaderIsFenced(t *testing.T) {
	if testing.Short() {
		t.Skip("freezes a leader past its lease (~15 s)")
	}
	dsn := pgtest.DSN(t)
	dir, work := t.TempDir(), t.TempDir()
	marks := filepath.Join(work, "marks")
	fifo := mkfifoAt(t, filepath.Join(work, "started"))
	writeFile(t, dir, "slow.yaml", fmt.Sprintf(`name: slow
env: {MARKS: %q, FIFO: %q}
tasks:
  - id: work
    run: |
      echo "$TASUKI_ATTEMPT" >> "$MARKS"
      if [ "$TASUKI_ATTEMPT" = 1 ]; then echo started > "$FIFO"; sleep 6; fi
      echo "attempt $TASUKI_ATTEMPT done"
`, marks, fifo))
	// A drain grace long enough for the frozen leader's attempt to end
	// while it drains, so it has a result to write.
	a := startPGServer(t, dsn, "", dir, nil, "--drain-grace", "20s")
	a.waitLine("leading:", 10*time.Second)
	b := startPGServer(t, dsn, "", dir, nil, "--drain-grace", "20s")
	b.waitLine("following:", 10*time.Second)
	st := openPG(t, dsn)
	ctx := context.Background()

	run, err := b.c.Trigger(ctx, "slow", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	waitFifo(t, fifo, a.proc, 30*time.Second)
	a.signal(syscall.SIGSTOP)
	frozen := true
	t.Cleanup(func() {
		if frozen {
			_ = a.cmd.Process.Signal(syscall.SIGCONT)
		}
	})
	b.waitLine("leading:", 10*scaleLeaderTTL)
	if got := waitRunEnd(t, b.c, run.ID); got.State != engine.RunSucceeded {
		t.Fatalf("run %d under the new leader: %s", run.ID, got.State)
	}
	_, before := taskAttempts(t, st, run.ID, "work")
	if len(before) != 2 || before[0].Outcome != store.OutcomeLost || before[1].Outcome != store.OutcomeSucceeded {
		t.Fatalf("attempts under the new leader: %s, want lost then succeeded", outcomes(before))
	}

	a.signal(syscall.SIGCONT)
	frozen = false
	select {
	case <-a.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the deposed leader still runs 30 s after it woke up")
	}
	t.Logf("the deposed leader exited: %v", a.err)
	if !strings.Contains(a.logs(), "lost leadership") {
		t.Errorf("the deposed leader did not say it lost the leadership")
	}
	if !strings.Contains(a.logs(), "sent no keepalive for") || !strings.Contains(a.logs(), "killed by the watchdog") {
		t.Errorf("the deposed leader's log does not show its watchdog ending the attempt")
	}
	// It did try to write the attempt's end (so the test tests something),
	// and the store refused it.
	if !strings.Contains(a.logs(), "fenced: no longer the leader") {
		t.Errorf("the deposed leader's log shows no write refused by the fence")
	}

	tk, atts := taskAttempts(t, st, run.ID, "work")
	if len(atts) != 2 || atts[0].Outcome != store.OutcomeLost || atts[1].Outcome != store.OutcomeSucceeded || tk.Attempt != 2 || tk.State != engine.TaskSucceeded {
		t.Errorf("after the deposed leader drained: task %s attempt %d, attempts %s; want attempt 2 succeeded and attempt 1 still lost", tk.State, tk.Attempt, outcomes(atts))
	}
	evs := storeEvents(t, st, run.ID)
	if storeHasEvent(evs, engine.EvTaskSucceeded, 1) || storeHasEvent(evs, engine.EvTaskPreempted, 1) {
		t.Errorf("the deposed leader wrote the end of attempt 1 into the timeline after the new leader recorded it lost: %+v", evs)
	}
	if r, err := st.Run(ctx, run.ID); err != nil || r.State != engine.RunSucceeded {
		t.Errorf("run %d after the deposed leader drained: %+v %v", run.ID, r.State, err)
	}
	b.term(15 * time.Second)
}

// chaosRuns and chaosTasks make the chaos test's 1,000 tasks.
const (
	chaosRuns  = 10
	chaosTasks = 100
)

// TestChaosRemoteWorkers is the chaos test of issue 4: a server on
// PostgreSQL without an in-process executor, three `tasuki worker`
// processes, ten runs of 100 independent tasks (1,000 in all) whose side
// effect is one line "RUN TASK ATTEMPT WORKER" appended to a shared file.
// While they run, a random worker is killed with SIGKILL every 0.4 to 1 s
// and a new one started; twice a worker gets SIGTERM instead (with a grace
// shorter than a task) and must hand its attempts back. At the end every
// task succeeded exactly once in the store, the other attempts are lost or
// preempted (never failed), and each side effect appears once per attempt
// the store recorded: no attempt ran twice, nothing ran that the store does
// not know of, and every succeeded attempt left its line.
func TestChaosRemoteWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 1,000 tasks on remote workers that are killed every second (~30 s)")
	}
	dsn := pgtest.DSN(t)
	dir, work := t.TempDir(), t.TempDir()
	effects := filepath.Join(work, "effects")
	var src strings.Builder
	fmt.Fprintf(&src, "name: chaos\nenv: {FX: %q}\ntasks:\n", effects)
	for i := range chaosTasks {
		// One short line per attempt (O_APPEND: atomic under PIPE_BUF).
		fmt.Fprintf(&src, "  - {id: t%03d, retry: {attempts: 5, backoff: 100ms}, run: 'echo \"$TASUKI_RUN_ID $TASUKI_TASK_ID $TASUKI_ATTEMPT $W\" >> \"$FX\"; sleep 0.1'}\n", i)
	}
	writeFile(t, dir, "chaos.yaml", src.String())
	s := startPGServer(t, dsn, "", dir, nil, "--workers", "0")
	_, tokenFile := createToken(t, s.url, "chaos")
	st := openPG(t, dsn)
	ctx := context.Background()

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 42))
	t.Logf("chaos seed %d", seed)
	workerArgs := []string{"--slots", "4", "--grace", "1ms", "--kill-grace", "500ms"}
	var workers []*workerProc
	started := 0
	startOne := func() {
		started++
		workers = append(workers, startWorker(t, s.url, tokenFile, fmt.Sprintf("w%d", started), nil, workerArgs...))
	}
	for range 3 {
		startOne()
	}

	began := time.Now()
	var ids []int64
	for range chaosRuns {
		r, err := s.c.Trigger(ctx, "chaos", nil, "test")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}

	// Chaos until every run has ended.
	allEnded := func() (bool, string) {
		active := listRuns(t, s.c, api.RunFilter{Pipeline: "chaos", States: []engine.RunState{engine.RunQueued, engine.RunRunning}})
		return len(active) == 0, fmt.Sprintf("%d runs queued or running", len(active))
	}
	var killed, termed int
	deadline := time.Now().Add(90 * time.Second)
	for round := 1; ; round++ {
		time.Sleep(time.Duration(400+rng.IntN(600)) * time.Millisecond)
		if ok, _ := allEnded(); ok {
			break
		}
		if time.Now().After(deadline) {
			_, seen := allEnded()
			t.Fatalf("after 90 s of chaos (%d workers killed, %d terminated), still %s", killed, termed, seen)
		}
		if round == 2 || round == 5 {
			// A spot preemption notice, to the oldest worker (it has been
			// running attempts the longest): it stops leasing, ends what runs
			// after its 1 ms grace and hands it back, then exits 0.
			w := workers[0]
			workers = workers[1:]
			took := w.term(15 * time.Second)
			termed++
			t.Logf("round %d: SIGTERM to %s, exited after %s", round, w.name, took.Round(time.Millisecond))
		} else {
			i := rng.IntN(len(workers))
			w := workers[i]
			workers = append(workers[:i], workers[i+1:]...)
			w.kill9()
			killed++
		}
		startOne()
	}
	elapsed := time.Since(began)
	runs := waitRunsEnd(t, s.c, ids, 10*time.Second)
	for _, r := range runs {
		if r.State != engine.RunSucceeded {
			t.Errorf("run %d: %s, want succeeded", r.ID, r.State)
		}
	}

	// The store: each task succeeded, exactly one attempt succeeded and it
	// is the last; every other attempt was lost or handed back.
	type key struct {
		run     int64
		task    string
		attempt int
	}
	recorded := map[key]store.Outcome{}
	count := map[store.Outcome]int{}
	for _, id := range ids {
		tasks, err := st.Tasks(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		atts, err := st.Attempts(ctx, id, -1)
		if err != nil {
			t.Fatal(err)
		}
		byIndex := map[int][]store.Attempt{}
		for _, a := range atts {
			byIndex[a.Index] = append(byIndex[a.Index], a)
		}
		if len(tasks) != chaosTasks {
			t.Fatalf("run %d has %d tasks, want %d", id, len(tasks), chaosTasks)
		}
		for _, tk := range tasks {
			as := byIndex[tk.Index]
			succeeded := 0
			for k, a := range as {
				recorded[key{id, tk.TaskID, a.Attempt}] = a.Outcome
				count[a.Outcome]++
				if a.Attempt != k+1 {
					t.Errorf("run %d task %s: attempts numbered %s, want 1..n", id, tk.TaskID, outcomes(as))
				}
				switch a.Outcome {
				case store.OutcomeSucceeded:
					succeeded++
				case store.OutcomeLost, store.OutcomePreempted:
				default:
					t.Errorf("run %d task %s attempt %d: outcome %q, want lost or preempted before the success (attempts %s)", id, tk.TaskID, a.Attempt, a.Outcome, outcomes(as))
				}
			}
			if tk.State != engine.TaskSucceeded || succeeded != 1 || len(as) == 0 || as[len(as)-1].Outcome != store.OutcomeSucceeded {
				t.Errorf("run %d task %s: %s with attempts %s; want succeeded exactly once, by its last attempt", id, tk.TaskID, tk.State, outcomes(as))
			}
		}
	}

	// The side effects: one line per attempt that ran, none twice, none for
	// an attempt the store does not know; every success left its line.
	lines := readLines(t, effects)
	ran := map[key]bool{}
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) != 4 {
			t.Errorf("side effect line %q: want \"RUN TASK ATTEMPT WORKER\"", line)
			continue
		}
		run, err1 := strconv.ParseInt(f[0], 10, 64)
		n, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			t.Errorf("side effect line %q: bad numbers", line)
			continue
		}
		k := key{run, f[1], n}
		if ran[k] {
			t.Errorf("attempt %d of task %s in run %d ran twice (line %q repeated)", n, f[1], run, line)
		}
		ran[k] = true
		if _, ok := recorded[k]; !ok {
			t.Errorf("attempt %d of task %s in run %d ran (on %s) but the store has no such attempt", n, f[1], run, f[3])
		}
	}
	var unstarted int
	for k, o := range recorded {
		switch {
		case o == store.OutcomeSucceeded && !ran[k]:
			t.Errorf("attempt %d of task %s in run %d succeeded in the store, but its side effect is missing", k.attempt, k.task, k.run)
		case !ran[k]:
			unstarted++ // lost or preempted before its process wrote the line
		}
	}
	if count[store.OutcomeLost] == 0 {
		t.Errorf("no attempt was lost, although %d workers were killed: the chaos did not bite", killed)
	}
	if count[store.OutcomePreempted] == 0 {
		t.Errorf("no attempt was preempted, although %d workers were sent SIGTERM with a 1 ms grace", termed)
	}
	t.Logf("%d tasks in %s on %d workers (%d killed with SIGKILL, %d terminated): %d attempts recorded (%d succeeded, %d lost, %d preempted), %d side effects, %d recorded attempts left none",
		chaosRuns*chaosTasks, elapsed.Round(time.Millisecond), started, killed, termed, len(recorded),
		count[store.OutcomeSucceeded], count[store.OutcomeLost], count[store.OutcomePreempted], len(lines), unstarted)
	if got := count[store.OutcomeSucceeded]; got != chaosRuns*chaosTasks {
		t.Errorf("%d succeeded attempts, want %d", got, chaosRuns*chaosTasks)
	}
	if n := strings.Count(s.logs(), "lease lost: no heartbeat"); n == 0 {
		t.Errorf("the server never logged a lost lease")
	}
	for _, w := range workers {
		w.term(15 * time.Second)
	}
	s.term(15 * time.Second)
}

// TestWorkerDeathAndPreemption checks what becomes of an attempt whose
// worker goes away, with one server on PostgreSQL and worker processes that
// each scenario isolates with a label:
//   - kill -9: the lease expires, the attempt is recorded as lost (not
//     failed), and it is leased again to another worker within twice the
//     lease timeout, without spending the retry budget (attempts: 1 still
//     completes).
//   - fencing: a worker frozen (SIGSTOP) past its lease, whose attempt then
//     ran again elsewhere and succeeded, wakes up with a failed result for
//     the old attempt: the server refuses it, and the store keeps the newer
//     attempt's success. (Its task process, in a process group of its own,
//     ran on meanwhile, beside the newer attempt: a worker cut off from the
//     server likewise keeps its attempts running until it hears from the
//     server again.)
//   - SIGTERM (a spot preemption notice) with --grace 300ms: the worker
//     stops leasing, ends the attempt after the grace, hands it back as
//     preempted and exits 0; the attempt runs again elsewhere without
//     spending its retry budget (attempts: 1 still completes).
func TestWorkerDeathAndPreemption(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for worker leases to expire (~15 s)")
	}
	dsn := pgtest.DSN(t)
	dir, work := t.TempDir(), t.TempDir()
	path := func(name string) string { return filepath.Join(work, name) }
	for _, f := range []string{"killed.pid", "stale.pid", "preempted.pid"} {
		t.Cleanup(func() { killPidFile(path(f)) })
	}
	writeFile(t, dir, "killed.yaml", fmt.Sprintf(`name: killed
env: {MARKS: %q, FIFO: %q, PIDFILE: %q}
tasks:
  - id: long
    labels: [killed]
    retry: {attempts: 1}
    run: |
      echo "$TASUKI_ATTEMPT $W" >> "$MARKS"
      if [ "$TASUKI_ATTEMPT" = 1 ]; then echo $$ > "$PIDFILE"; echo started > "$FIFO"; exec sleep 30; fi
      echo "second attempt on $W"
`, path("killed.marks"), mkfifoAt(t, path("killed.fifo")), path("killed.pid")))
	writeFile(t, dir, "stale.yaml", fmt.Sprintf(`name: stale
env: {MARKS: %q, FIFO: %q, PIDFILE: %q, EXITED: %q}
tasks:
  - id: work
    labels: [stale]
    retry: {attempts: 1}
    run: |
      echo "$TASUKI_ATTEMPT $W" >> "$MARKS"
      if [ "$TASUKI_ATTEMPT" = 1 ]; then
        echo $$ > "$PIDFILE"; echo started > "$FIFO"
        sleep 3; echo "stale output"; touch "$EXITED"; exit 7
      fi
      echo "fresh output"
`, path("stale.marks"), mkfifoAt(t, path("stale.fifo")), path("stale.pid"), path("stale.exited")))
	writeFile(t, dir, "preempted.yaml", fmt.Sprintf(`name: preempted
env: {MARKS: %q, FIFO: %q, PIDFILE: %q}
tasks:
  - id: long
    labels: [preempted]
    retry: {attempts: 1}
    run: |
      echo "$TASUKI_ATTEMPT $W" >> "$MARKS"
      if [ "$TASUKI_ATTEMPT" = 1 ]; then echo $$ > "$PIDFILE"; echo started > "$FIFO"; exec sleep 30; fi
      echo "resumed on $W"
`, path("preempted.marks"), mkfifoAt(t, path("preempted.fifo")), path("preempted.pid")))
	s := startPGServer(t, dsn, "", dir, nil, "--workers", "0")
	_, tokenFile := createToken(t, s.url, "death")
	st := openPG(t, dsn)
	ctx := context.Background()
	pidOf := func(name string) int {
		b, err := os.ReadFile(path(name))
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return pid
	}

	t.Run("kill -9", func(t *testing.T) {
		a := startWorker(t, s.url, tokenFile, "a", nil, "--labels", "killed")
		run, err := s.c.Trigger(ctx, "killed", nil, "test")
		if err != nil {
			t.Fatal(err)
		}
		waitFifo(t, path("killed.fifo"), a.proc, 30*time.Second)
		b := startWorker(t, s.url, tokenFile, "b", nil, "--labels", "killed")
		a.kill9()
		killedAt := time.Now()
		var again time.Duration
		eventually(t, 4*scaleLeaseTimeout, "the attempt to run again on worker b", func() (bool, string) {
			lines := readLines(t, path("killed.marks"))
			if len(lines) >= 2 {
				again = time.Since(killedAt)
				return true, ""
			}
			return false, fmt.Sprint(lines)
		})
		t.Logf("the killed worker's attempt ran again elsewhere %s after the kill (lease timeout %s)", again.Round(time.Millisecond), scaleLeaseTimeout)
		if again > 2*scaleLeaseTimeout {
			t.Errorf("the attempt ran again %s after its worker was killed, want within twice the lease timeout (%s)", again, 2*scaleLeaseTimeout)
		}
		if got := waitRunEnd(t, s.c, run.ID); got.State != engine.RunSucceeded {
			t.Fatalf("run %d: %s, want succeeded", run.ID, got.State)
		}
		if got := strings.Join(readLines(t, path("killed.marks")), ","); got != "1 a,2 b" {
			t.Errorf("the task ran as %q, want attempt 1 on a then 2 on b", got)
		}
		tk, atts := taskAttempts(t, st, run.ID, "long")
		if tk.State != engine.TaskSucceeded || len(atts) != 2 || atts[0].Outcome != store.OutcomeLost || atts[1].Outcome != store.OutcomeSucceeded {
			t.Fatalf("task %s with attempts %s, want lost then succeeded", tk.State, outcomes(atts))
		}
		evs := storeEvents(t, st, run.ID)
		if !storeHasEvent(evs, engine.EvTaskLost, 1) || storeHasEvent(evs, engine.EvTaskFailed, 0) || storeHasEvent(evs, engine.RecRetryScheduled, 0) {
			t.Errorf("timeline: want task_lost for attempt 1, no task_failed and no retry charged: %+v", evs)
		}
		if log := runLog(t, s.c, run.ID, "long"); !strings.Contains(log, "second attempt on b") {
			t.Errorf("log of attempt 2: %q", log)
		}
		if !strings.Contains(s.logs(), "lease lost: no heartbeat from its worker") {
			t.Errorf("the server did not log the lost lease")
		}
		// The orphan of the killed worker is not the server's to kill (it
		// is on another machine, as far as the server knows).
		killPidFile(path("killed.pid"))
		b.term(10 * time.Second)
	})

	t.Run("fencing", func(t *testing.T) {
		c := startWorker(t, s.url, tokenFile, "c", nil, "--labels", "stale")
		run, err := s.c.Trigger(ctx, "stale", nil, "test")
		if err != nil {
			t.Fatal(err)
		}
		waitFifo(t, path("stale.fifo"), c.proc, 30*time.Second)
		d := startWorker(t, s.url, tokenFile, "d", nil, "--labels", "stale")
		// Frozen: no heartbeats; its task (its own process group) goes on
		// and fails 3 s later.
		c.signal(syscall.SIGSTOP)
		frozen := true
		defer func() {
			if frozen {
				_ = c.cmd.Process.Signal(syscall.SIGCONT)
			}
		}()
		if got := waitRunEnd(t, s.c, run.ID); got.State != engine.RunSucceeded {
			t.Fatalf("run %d: %s, want succeeded by attempt 2 on d", run.ID, got.State)
		}
		eventually(t, 10*time.Second, "the stale attempt's process to fail", func() (bool, string) {
			_, err := os.Stat(path("stale.exited"))
			return err == nil && !alive(pidOf("stale.pid")), fmt.Sprint(err)
		})
		c.signal(syscall.SIGCONT)
		frozen = false
		// Awake, it finds the lease gone (heartbeat "unknown", or 409 to
		// its report) and reports nothing.
		t.Logf("the stale worker, woken up: %s", c.waitLine("no longer holds", 15*time.Second))
		if strings.Contains(c.logs(), "attempt reported") {
			t.Errorf("the stale worker's report was accepted:\n%s", c.logs())
		}
		if got, err := s.c.Run(ctx, run.ID); err != nil || got.State != engine.RunSucceeded {
			t.Fatalf("run %d after the stale worker woke up: %+v %v", run.ID, got.State, err)
		}
		tk, atts := taskAttempts(t, st, run.ID, "work")
		if tk.State != engine.TaskSucceeded || len(atts) != 2 || atts[0].Outcome != store.OutcomeLost || atts[1].Outcome != store.OutcomeSucceeded {
			t.Fatalf("task %s with attempts %s, want lost then succeeded", tk.State, outcomes(atts))
		}
		if atts[0].ExitCode != nil {
			t.Errorf("the lost attempt has exit code %d: the stale report was written", *atts[0].ExitCode)
		}
		if evs := storeEvents(t, st, run.ID); storeHasEvent(evs, engine.EvTaskFailed, 0) || !storeHasEvent(evs, engine.EvTaskLost, 1) {
			t.Errorf("timeline: want task_lost for attempt 1 and no task_failed: %+v", evs)
		}
		if log := runLog(t, s.c, run.ID, "work"); !strings.Contains(log, "fresh output") || strings.Contains(log, "stale output") {
			t.Errorf("log of attempt 2: %q", log)
		}
		if got := strings.Join(readLines(t, path("stale.marks")), ","); got != "1 c,2 d" {
			t.Errorf("the task ran as %q, want attempt 1 on c then 2 on d", got)
		}
		c.term(10 * time.Second)
		d.term(10 * time.Second)
	})

	t.Run("SIGTERM", func(t *testing.T) {
		e := startWorker(t, s.url, tokenFile, "e", nil, "--labels", "preempted", "--grace", "300ms", "--kill-grace", "1s")
		run, err := s.c.Trigger(ctx, "preempted", nil, "test")
		if err != nil {
			t.Fatal(err)
		}
		waitFifo(t, path("preempted.fifo"), e.proc, 30*time.Second)
		f := startWorker(t, s.url, tokenFile, "f", nil, "--labels", "preempted")
		took := e.term(10 * time.Second)
		if took < 300*time.Millisecond {
			t.Errorf("the worker exited %s after SIGTERM, before its 300ms grace", took)
		}
		if pid := pidOf("preempted.pid"); alive(pid) {
			t.Errorf("the preempted attempt's process %d outlived its worker", pid)
		}
		for _, want := range []string{"draining", "grace period over", "outcome=preempted", "worker drained"} {
			if !strings.Contains(e.logs(), want) {
				t.Errorf("the worker's log lacks %q", want)
			}
		}
		if got := waitRunEnd(t, s.c, run.ID); got.State != engine.RunSucceeded {
			t.Fatalf("run %d: %s, want succeeded although retry attempts is 1", run.ID, got.State)
		}
		tk, atts := taskAttempts(t, st, run.ID, "long")
		if tk.State != engine.TaskSucceeded || len(atts) != 2 || atts[0].Outcome != store.OutcomePreempted || atts[1].Outcome != store.OutcomeSucceeded {
			t.Fatalf("task %s with attempts %s, want preempted then succeeded", tk.State, outcomes(atts))
		}
		if evs := storeEvents(t, st, run.ID); !storeHasEvent(evs, engine.EvTaskPreempted, 1) || storeHasEvent(evs, engine.RecRetryScheduled, 0) {
			t.Errorf("timeline: want task_preempted for attempt 1 and no retry charged: %+v", evs)
		}
		if got := strings.Join(readLines(t, path("preempted.marks")), ","); got != "1 e,2 f" {
			t.Errorf("the task ran as %q, want attempt 1 on e then 2 on f", got)
		}
		if log := runLog(t, s.c, run.ID, "long"); !strings.Contains(log, "resumed on f") {
			t.Errorf("log of attempt 2: %q", log)
		}
		f.term(10 * time.Second)
	})
	s.term(15 * time.Second)
}

// leaseStatus sends one worker lease request (no wait) with the given
// Authorization header ("" for none) and returns the status and body.
func leaseStatus(t *testing.T, url, auth string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+api.Prefix+"/worker/lease", strings.NewReader(`{"worker": "probe", "free": 1, "wait_seconds": 0}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestWorkerTokens checks the worker tokens end to end, on two servers
// sharing a PostgreSQL store, the worker talking to the follower (which
// forwards the worker protocol to the leader): a request without a token, or
// with a wrong or revoked one, is refused with 401; a worker with a revoked
// token stops at once with an error; the store keeps only the token's hash;
// and the token appears in no log: neither the servers' nor the workers'
// stderr, nor the log of a task the worker ran.
func TestWorkerTokens(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := t.TempDir()
	writeFile(t, dir, "env.yaml", "name: env\ntasks:\n  - {id: show, run: 'env | sort'}\n")
	a := startPGServer(t, dsn, "", dir, nil, "--workers", "0")
	a.waitLine("leading:", 10*time.Second)
	b := startPGServer(t, dsn, "", dir, nil, "--workers", "0")
	b.waitLine("following:", 10*time.Second)
	ctx := context.Background()

	token, tokenFile := createToken(t, b.url, "w1") // through the follower
	for _, s := range []*pgServer{a, b} {
		for _, c := range []struct{ name, auth string }{
			{"no token", ""},
			{"not a bearer token", "Basic " + token},
			{"a wrong token", "Bearer tsk_" + strings.Repeat("A", 43)},
			{"a truncated token", "Bearer " + token[:len(token)-1]},
		} {
			if code, body := leaseStatus(t, s.url, c.auth); code != http.StatusUnauthorized || !strings.Contains(body, api.CodeUnauthorized) {
				t.Errorf("%s: lease request with %s: %d %s, want 401 unauthorized", s.url, c.name, code, body)
			}
		}
		if code, body := leaseStatus(t, s.url, "Bearer "+token); code != http.StatusOK {
			t.Errorf("%s: lease request with the token: %d %s, want 200", s.url, code, body)
		}
	}

	// A worker given the token in $TASUKI_TOKEN, as the worker's help
	// recommends, through the follower.
	w := startWorker(t, b.url, "", "env-worker", []string{"TASUKI_TOKEN=" + token})
	run, err := b.c.Trigger(ctx, "env", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if got := waitRunEnd(t, b.c, run.ID); got.State != engine.RunSucceeded {
		t.Fatalf("run %d on the worker: %s", run.ID, got.State)
	}
	taskLog := runLog(t, b.c, run.ID, "show")
	if !strings.Contains(taskLog, "W=env-worker") {
		t.Fatalf("the task's environment was not printed: %q", taskLog)
	}
	if strings.Contains(taskLog, token) {
		t.Errorf("the worker token is in the environment of the tasks it runs, and so in their logs (the task printed its environment): %s",
			strings.TrimSpace(taskLog[max(0, strings.Index(taskLog, token)-40):strings.Index(taskLog, token)]))
	}

	// Revoked: refused by both servers; a worker with it stops at once.
	cliAt(t, a.url, "token", "revoke", "w1").expect(t, 0, "token w1 revoked")
	for _, s := range []*pgServer{a, b} {
		if code, body := leaseStatus(t, s.url, "Bearer "+token); code != http.StatusUnauthorized {
			t.Errorf("%s: lease request with the revoked token: %d %s, want 401", s.url, code, body)
		}
	}
	revoked := spawn(t, "worker revoked", t.TempDir(), nil, "worker", "--server", b.url, "--token-file", tokenFile, "--name", "revoked")
	select {
	case <-revoked.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("a worker with a revoked token still runs after 15 s\n%s", revoked.logs())
	}
	if revoked.err == nil || !strings.Contains(strings.ToLower(revoked.logs()), "token") {
		t.Errorf("a worker with a revoked token exited with %v and said:\n%s\nwant a non-zero status and a message about the token", revoked.err, revoked.logs())
	}
	// The running worker's token is revoked too: stop it.
	w.kill9()

	// Only the hash is stored.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var name string
	var hash []byte
	if err := conn.QueryRow(ctx, `SELECT name, hash FROM worker_tokens WHERE kind = 'worker'`).Scan(&name, &hash); err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256([]byte(token)); name != "w1" || !bytes.Equal(hash, sum[:]) {
		t.Errorf("stored token %q with hash %s, want w1 with the SHA-256 of the token %s", name, hex.EncodeToString(hash), hex.EncodeToString(sum[:]))
	}

	// No secret in any process's log.
	for _, p := range []*proc{a.proc, b.proc, w.proc, revoked} {
		if strings.Contains(p.logs(), token) {
			t.Errorf("the token appears in the log of %s:\n%s", p.what, p.logs())
		}
	}
	a.term(15 * time.Second)
	b.term(15 * time.Second)
}

// benchTasks is the number of tasks of the benchmark's pipeline: one
// benchmark operation is a run of them.
const benchTasks = 1000

// writeNoopPipeline writes a pipeline of n independent tasks running `true`
// (argv, no shell) and returns its directory and file.
func writeNoopPipeline(b *testing.B, n int) (dir, file string, src []byte) {
	b.Helper()
	var s strings.Builder
	s.WriteString("name: noop\ntasks:\n")
	for i := range n {
		fmt.Fprintf(&s, "  - {id: t%04d, run: [\"true\"]}\n", i)
	}
	dir = b.TempDir()
	file = filepath.Join(dir, "noop.yaml")
	if err := os.WriteFile(file, []byte(s.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir, file, []byte(s.String())
}

// benchRuns triggers b.N runs of noop at once and waits for all to succeed;
// it reports tasks dispatched and completed per second.
func benchRuns(b *testing.B, c *api.Client) {
	b.Helper()
	ctx := context.Background()
	b.ResetTimer()
	began := time.Now()
	ids := make([]int64, b.N)
	for i := range b.N {
		r, err := c.Trigger(ctx, "noop", nil, "bench")
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = r.ID
	}
	for _, id := range ids {
		for {
			r, err := c.Run(ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			if r.State.Terminal() {
				if r.State != engine.RunSucceeded {
					b.Fatalf("run %d: %s", id, r.State)
				}
				break
			}
			time.Sleep(pollEvery)
		}
	}
	elapsed := time.Since(began)
	b.StopTimer()
	b.ReportMetric(float64(b.N*benchTasks)/elapsed.Seconds(), "tasks/s")
}

// serverProfile returns --cpuprofile FILE when $TASUKI_BENCH_PROFILE names
// a directory (a server or worker writes it when it stops cleanly).
func serverProfile(name string) []string {
	d := os.Getenv("TASUKI_BENCH_PROFILE")
	if d == "" {
		return nil
	}
	return []string{"--cpuprofile", filepath.Join(d, name+".prof")}
}

// BenchmarkDispatchPostgres measures tasks dispatched and completed per
// second on PostgreSQL, one operation being a run of 1,000 independent
// tasks (DAG bookkeeping included), b.N runs triggered at once:
//
//   - in-process: a real `tasuki server --workers 8` running `true` (argv);
//   - two-remote-workers: `tasuki server --workers 0` and two `tasuki
//     worker --slots 8` processes running `true`;
//   - remote-protocol-no-process: the same server, with two fake workers in
//     this process that lease over HTTP (up to 16 at once) and complete each
//     lease at once without running anything: the server's orchestration,
//     the worker protocol and the store, without fork/exec;
//   - runner-no-process: internal/runner with a no-op task kind on the
//     PostgreSQL store, through the lease broker and an in-process executor
//     of 8 slots, as the server wires them: DAG bookkeeping and the store
//     alone.
//
// Run it without the race detector, for example:
//
//	go test -run '^$' -bench DispatchPostgres -benchtime 5x ./internal/server/
//
// With TASUKI_BENCH_PROFILE=DIR the servers and workers write CPU profiles
// into DIR.
func BenchmarkDispatchPostgres(b *testing.B) {
	b.Run("in-process", func(b *testing.B) {
		dsn := pgtest.DSN(b)
		dir, _, _ := writeNoopPipeline(b, benchTasks)
		s := startPGServer(b, dsn, "", dir, nil, append([]string{"--workers", "8", "--parallel", "256"}, serverProfile("in-process")...)...)
		benchRuns(b, s.c)
		s.term(30 * time.Second)
	})
	b.Run("two-remote-workers", func(b *testing.B) {
		dsn := pgtest.DSN(b)
		dir, _, _ := writeNoopPipeline(b, benchTasks)
		s := startPGServer(b, dsn, "", dir, nil, append([]string{"--workers", "0", "--parallel", "256"}, serverProfile("two-remote-workers")...)...)
		_, tokenFile := createToken(b, s.url, "bench")
		var workers []*workerProc
		for i := range 2 {
			workers = append(workers, startWorker(b, s.url, tokenFile, fmt.Sprintf("bench%d", i), nil, append([]string{"--slots", "8"}, serverProfile(fmt.Sprintf("worker%d", i))...)...))
		}
		benchRuns(b, s.c)
		for _, w := range workers {
			w.term(30 * time.Second)
		}
		s.term(30 * time.Second)
	})
	b.Run("remote-protocol-no-process", func(b *testing.B) {
		dsn := pgtest.DSN(b)
		dir, _, _ := writeNoopPipeline(b, benchTasks)
		s := startPGServer(b, dsn, "", dir, nil, append([]string{"--workers", "0", "--parallel", "256"}, serverProfile("remote-protocol-no-process")...)...)
		token, _ := createToken(b, s.url, "bench")
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() { fakeWorker(ctx, s.c.WithToken(token), fmt.Sprintf("fake%d", i), 16) })
		}
		benchRuns(b, s.c)
		stop()
		wg.Wait()
		s.term(30 * time.Second)
	})
	b.Run("runner-no-process", func(b *testing.B) {
		dsn := pgtest.DSN(b)
		_, file, src := writeNoopPipeline(b, benchTasks)
		p, err := spec.Parse(file, src)
		if err != nil {
			b.Fatal(err)
		}
		st := openPG(b, dsn)
		home := b.TempDir()
		logger := slog.New(slog.NewTextHandler(io.Discard, nil))
		lf := logs.NewFiles(filepath.Join(home, "logs"))
		r := &runner.Runner{Store: st, Logs: lf, Home: home, Parallel: 256, Logger: logger}
		br := lease.New(lf, logger)
		r.Executor = br.Run
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			br.RunLocal(ctx, 8, nil, func(context.Context, *runner.Attempt) runner.AttemptResult {
				return runner.AttemptResult{Outcome: attempt.Succeeded}
			})
		}()
		b.ResetTimer()
		began := time.Now()
		var wg sync.WaitGroup
		for range b.N {
			run, err := r.Create(ctx, p, nil, "manual")
			if err != nil {
				b.Fatal(err)
			}
			wg.Go(func() {
				end, err := r.Execute(ctx, run.ID)
				if err != nil || end.State != engine.RunSucceeded {
					b.Errorf("run %d: %s %v", run.ID, end.State, err)
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(began)
		b.StopTimer()
		b.ReportMetric(float64(b.N*benchTasks)/elapsed.Seconds(), "tasks/s")
		stop()
		<-done
	})
}

// fakeWorker leases attempts over the worker protocol and completes each
// at once as succeeded, without running anything, until ctx ends.
func fakeWorker(ctx context.Context, c *api.Client, name string, slots int) {
	free := make(chan struct{}, slots)
	for range slots {
		free <- struct{}{}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		n := 0
		<-free
		n++
	more:
		for n < slots {
			select {
			case <-free:
				n++
			default:
				break more
			}
		}
		resp, err := c.Lease(ctx, api.LeaseRequest{Worker: name, Free: n, WaitSeconds: 1})
		if err != nil {
			for range n {
				free <- struct{}{}
			}
			if ctx.Err() == nil {
				time.Sleep(10 * time.Millisecond)
			}
			continue
		}
		for range n - len(resp.Leases) {
			free <- struct{}{}
		}
		for _, l := range resp.Leases {
			wg.Go(func() {
				defer func() { free <- struct{}{} }()
				code := 0
				_ = c.Complete(context.WithoutCancel(ctx), l.ID, api.CompleteRequest{Outcome: api.OutcomeSucceeded, ExitCode: &code})
			})
		}
	}
}

package server_test

// Tests of real `tasuki server` processes on loopback ports. The test binary
// re-executes itself as the tasuki command (TestMain in main_test.go,
// TASUKI_TEST_AS_CLI=1), so the tests can SIGKILL, SIGTERM and restart
// servers on one data directory, and talk to them through the Go client and
// the CLI.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/cli"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// pollEvery is how often a test asks a server process how things stand, where
// no event tells it.
const pollEvery = 25 * time.Millisecond

// serverProc is a `tasuki server` process.
type serverProc struct {
	t     *testing.T
	cmd   *exec.Cmd
	url   string
	home  string
	token string        // the admin API token the server left in home
	c     *api.Client   // sends token
	done  chan struct{} // closed once the process has exited and been reaped
	err   error         // cmd.Wait's answer, once done is closed

	mu  sync.Mutex
	log bytes.Buffer // everything it wrote on stderr
}

// serverEnv is the environment of a server process: the test's, without any
// TASUKI_* variable of the developer's shell, plus fast ticks and reloads.
func serverEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TASUKI_") {
			env = append(env, kv)
		}
	}
	env = append(env, "TASUKI_TEST_AS_CLI=1", "TASUKI_TICK_INTERVAL=100ms", "TASUKI_RELOAD_INTERVAL=100ms")
	return append(env, extra...)
}

// startServer starts `tasuki server` on a port the kernel picks and waits for
// its "listening" line. The process is killed when the test ends.
func startServer(t *testing.T, home, pipelines string, env []string, args ...string) *serverProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"server", "--home", home, "--pipelines", pipelines, "--addr", "127.0.0.1:0", "--workers", "4"}, args...)
	cmd := exec.Command(exe, argv...)
	cmd.Env = serverEnv(env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &serverProc{t: t, cmd: cmd, home: home, done: make(chan struct{})}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log.WriteString(line + "\n")
			s.mu.Unlock()
			if rest, ok := strings.CutPrefix(line, "tasuki server listening on "); ok {
				u, _, _ := strings.Cut(rest, " ")
				select {
				case listening <- u:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		s.err = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.kill()
		logs := s.logs()
		if strings.Contains(logs, "WARNING: DATA RACE") {
			t.Errorf("the server process %d reported a data race:\n%s", cmd.Process.Pid, logs)
		} else if t.Failed() {
			t.Logf("log of server process %d (%v):\n%s", cmd.Process.Pid, argv, logs)
		}
	})
	select {
	case u := <-listening:
		s.url = u
	case <-s.done:
		t.Fatalf("the server exited before listening: %v\n%s", s.err, s.logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("the server did not say it was listening within 30s\n%s", s.logs())
	}
	if !strings.HasPrefix(s.url, "http://127.0.0.1:") || strings.HasSuffix(s.url, ":0") {
		t.Fatalf("listening on %q: want a loopback URL with the port the kernel chose", s.url)
	}
	s.token = readAdminToken(t, home)
	c, err := api.NewClient(s.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.c = c.WithToken(s.token)
	return s
}

// readAdminToken reads the admin API token a server left in its data
// directory, which it writes before it starts listening.
func readAdminToken(tb testing.TB, home string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(home, "admin.token"))
	if err != nil {
		tb.Fatalf("the server left no admin token: %v", err)
	}
	return strings.TrimSpace(string(b))
}

func (s *serverProc) logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// exited reports whether the process has ended.
func (s *serverProc) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// kill ends the process with SIGKILL if it still runs, and reaps it.
func (s *serverProc) kill() {
	if !s.exited() {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-s.done
}

// kill9 kills the server with SIGKILL, as a crash or an OOM killer would.
func (s *serverProc) kill9() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		s.t.Fatal(err)
	}
	<-s.done
	var ee *exec.ExitError
	if !errors.As(s.err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		s.t.Fatalf("the server did not die of SIGKILL: %v", s.err)
	}
}

// term sends SIGTERM and waits at most within for a clean exit; it returns
// how long the server took.
func (s *serverProc) term(within time.Duration) time.Duration {
	s.t.Helper()
	began := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatal(err)
	}
	select {
	case <-s.done:
	case <-time.After(within):
		s.t.Fatalf("the server did not exit within %s of SIGTERM\n%s", within, s.logs())
	}
	took := time.Since(began)
	if s.err != nil {
		s.t.Fatalf("the server's exit after SIGTERM: %v (want status 0)\n%s", s.err, s.logs())
	}
	return took
}

// eventually polls cond until it holds. It is for state changes of another
// process that no event announces. cond returns whether it holds and, when
// not, what it saw (for the failure message).
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, still waiting for %s; last seen: %s", timeout, what, seen)
		}
		time.Sleep(pollEvery)
	}
}

// waitRunEnd waits for a run to reach a terminal state and returns it.
func waitRunEnd(t *testing.T, c *api.Client, id int64) api.Run {
	t.Helper()
	var run api.Run
	eventually(t, 30*time.Second, fmt.Sprintf("run %d to end", id), func() (bool, string) {
		var err error
		run, err = c.Run(context.Background(), id)
		if err != nil {
			return false, err.Error()
		}
		return run.State.Terminal(), string(run.State)
	})
	return run
}

// runLog reads the latest attempt's log of a task.
func runLog(t *testing.T, c *api.Client, run int64, task string) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := c.ReadLog(context.Background(), run, task, 0, 0, &b); err != nil {
		t.Fatalf("log of %s in run %d: %v", task, run, err)
	}
	return b.String()
}

// allEvents reads a run's whole timeline.
func allEvents(t *testing.T, c *api.Client, run int64) []api.Event {
	t.Helper()
	var out []api.Event
	var after int64
	for {
		page, err := c.Events(context.Background(), run, after, 1000)
		if err != nil {
			t.Fatalf("events of run %d: %v", run, err)
		}
		out = append(out, page.Items...)
		if page.Next == "" || len(page.Items) == 0 {
			return out
		}
		after = page.Items[len(page.Items)-1].Seq
	}
}

func hasEvent(evs []api.Event, kind engine.EventKind, attempt int) bool {
	for _, e := range evs {
		if e.Kind == kind && (attempt == 0 || e.Attempt == attempt) {
			return true
		}
	}
	return false
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// replaceFile swaps a file's content at once (write aside, rename), as a git
// checkout does, so the server never reads half a file.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func mkfifo(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "started")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// awaitFifo blocks until a task writes to the FIFO (its attempt is running
// then), or fails the test if the server exits or nothing comes in time.
func awaitFifo(t *testing.T, fifo string, s *serverProc, timeout time.Duration) {
	t.Helper()
	got := make(chan error, 1)
	go func() {
		_, err := os.ReadFile(fifo)
		got <- err
	}()
	release := func() { // lets the reader above return
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
	case <-s.done:
		release()
		t.Fatalf("the server exited (%v) before a task wrote to %s", s.err, fifo)
	case <-time.After(timeout):
		release()
		t.Fatalf("no task wrote to %s within %s", fifo, timeout)
	}
}

// killPidFile kills the process whose id a task wrote to path, if any: a
// leftover of an attempt whose server was killed, in case the test failed
// before a restarted server reaped it.
func killPidFile(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// alive reports whether a process exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// readMarks parses a marks file of "INTERVAL_START ATTEMPT" lines into the
// attempts seen per interval start, failing on a line seen twice (the same
// attempt of the same interval executed twice).
func readMarks(t *testing.T, path string) map[string][]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]int{}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		start, att, ok := strings.Cut(line, " ")
		n, err := strconv.Atoi(att)
		if !ok || err != nil {
			t.Fatalf("marks line %q: want \"START ATTEMPT\"", line)
		}
		if seen[line] {
			t.Errorf("attempt %d of the interval starting %s ran twice (marks line %q repeated)", n, start, line)
		}
		seen[line] = true
		out[start] = append(out[start], n)
	}
	return out
}

// checkIntervalRuns checks finished runs that each cover one interval: in
// interval order they are contiguous (each starts where the previous ended),
// no interval is doubled or missing, every run succeeded, and each interval's
// task ran (marks, keyed by the start in loc). A run with more than one
// attempt lost all but its last, and its timeline says so; the task may not
// have written its mark in a lost attempt (the kill can land between the
// attempt's start being recorded and the script's first line), but it wrote
// it in the last one, and never for an attempt that was not recorded. It
// returns the runs with a lost attempt.
func checkIntervalRuns(t *testing.T, c *api.Client, runs []api.Run, task string, marks map[string][]int, loc *time.Location) []api.Run {
	t.Helper()
	sort.Slice(runs, func(i, j int) bool { return runs[i].IntervalStart.Before(*runs[j].IntervalStart) })
	starts := map[string]bool{}
	var lost []api.Run
	for i, r := range runs {
		if r.IntervalStart == nil || r.IntervalEnd == nil {
			t.Fatalf("run %d has no interval: %+v", r.ID, r)
		}
		if i > 0 && !r.IntervalStart.Equal(*runs[i-1].IntervalEnd) {
			t.Errorf("run %d starts at %s but the previous run %d ended at %s: interval doubled or missing",
				r.ID, r.IntervalStart.In(loc), runs[i-1].ID, runs[i-1].IntervalEnd.In(loc))
		}
		if r.State != engine.RunSucceeded {
			t.Errorf("run %d (interval %s) is %s, want succeeded", r.ID, r.IntervalStart.In(loc), r.State)
		}
		start := r.IntervalStart.In(loc).Format(time.RFC3339)
		starts[start] = true
		tk, err := c.Task(context.Background(), r.ID, task)
		if err != nil {
			t.Fatal(err)
		}
		n := len(tk.Attempts)
		if n == 0 {
			t.Errorf("run %d: no attempt recorded", r.ID)
			continue
		}
		ran := map[int]bool{}
		for _, a := range marks[start] {
			ran[a] = true
			if a < 1 || a > n {
				t.Errorf("run %d: the task ran as attempt %d, but %d attempts are recorded", r.ID, a, n)
			}
		}
		if !ran[n] {
			t.Errorf("run %d: its task never ran as its last attempt %d for the interval starting %s (marks %v)", r.ID, n, start, marks[start])
		}
		if n == 1 {
			if tk.Attempts[0].Outcome != store.OutcomeSucceeded {
				t.Errorf("run %d: attempt outcome %q, want succeeded", r.ID, tk.Attempts[0].Outcome)
			}
			continue
		}
		evs := allEvents(t, c, r.ID)
		for k, a := range tk.Attempts {
			want := store.OutcomeLost
			if k == n-1 {
				want = store.OutcomeSucceeded
			}
			if a.Outcome != want {
				t.Errorf("run %d, attempt %d: outcome %q, want %q (marks show attempts %v)", r.ID, a.Attempt, a.Outcome, want, marks[start])
			}
			if want == store.OutcomeLost && !hasEvent(evs, engine.EvTaskLost, a.Attempt) {
				t.Errorf("run %d: the timeline has no task_lost for attempt %d: %+v", r.ID, a.Attempt, evs)
			}
		}
		lost = append(lost, r)
	}
	for start := range marks {
		if !starts[start] {
			t.Errorf("a task ran for the interval starting %s, which has no run", start)
		}
	}
	return lost
}

// checkKilled checks the run of the interval whose attempt the test killed
// the server in (its start is in lockDir/interval): it is among the runs
// with a lost attempt, and its task ran as attempt 1 then 2.
func checkKilled(t *testing.T, lockDir string, lost []api.Run, marks map[string][]int, loc *time.Location) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(lockDir, "interval"))
	if err != nil {
		t.Fatal(err)
	}
	start := strings.TrimSpace(string(b))
	if got := fmt.Sprint(marks[start]); got != "[1 2]" {
		t.Errorf("the interval starting %s, killed mid-attempt, ran as attempts %s, want [1 2]", start, got)
	}
	for _, r := range lost {
		if r.IntervalStart.In(loc).Format(time.RFC3339) == start {
			return
		}
	}
	t.Errorf("the run of the interval starting %s, killed mid-attempt, does not show a lost attempt", start)
}

// listRuns lists every run matching f (one page of up to 1000).
func listRuns(t *testing.T, c *api.Client, f api.RunFilter) []api.Run {
	t.Helper()
	f.Limit = 1000
	page, err := c.Runs(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	if page.Next != "" {
		t.Fatalf("more than 1000 runs for %+v", f)
	}
	return page.Items
}

// TestProcessKillDuringScheduledRunsAcrossDST drives a real server with an
// accelerated clock (10 schedule minutes per real second) through the New
// York spring-forward night: SIGKILL in the middle of a run, a downtime in
// which intervals are missed, a restart on the same data directory whose
// clock goes on from where the first one was, catch-up of everything missed.
// Every interval from the first to the last runs exactly once, contiguous
// across the kill and the jump from 02:00 EST to 03:00 EDT; the attempt the
// kill interrupted is recorded as lost and retried, and what it left behind
// (its watchdog killed first) is killed by the restarted server.
func TestProcessKillDuringScheduledRunsAcrossDST(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a server on an accelerated clock for ~12 s")
	}
	t.Parallel()
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	home, dir, work := t.TempDir(), t.TempDir(), t.TempDir()
	marks, lock, child := filepath.Join(work, "marks"), filepath.Join(work, "lock"), filepath.Join(work, "child.pid")
	fifo := mkfifo(t, work)
	t.Cleanup(func() { killPidFile(child) })
	// The third attempt to run blocks (once) until the test has seen it, so
	// the kill lands in the middle of it; it leaves a child behind, as a
	// real task's subprocess would.
	writeFile(t, dir, "tick.yaml", fmt.Sprintf(`name: tick
schedule: {cron: '*/10 * * * *', timezone: America/New_York, catchup: all}
env: {MARKS: %q, LOCK: %q, FIFO: %q, CHILD: %q}
tasks:
  - id: mark
    retry: {attempts: 3, backoff: 50ms}
    run: |
      echo "$TASUKI_INTERVAL_START $TASUKI_ATTEMPT" >> "$MARKS"
      if [ "$(wc -l < "$MARKS")" -ge 3 ] && mkdir "$LOCK" 2>/dev/null; then
        echo "$TASUKI_INTERVAL_START" > "$LOCK/interval"
        sleep 30 & echo $! > "$CHILD"
        echo started > "$FIFO"
        wait
      fi
      sleep 0.3
`, marks, lock, fifo, child))

	const speed = 600 // one 10-minute interval per real second
	clock := func(start time.Time) string {
		return "TASUKI_TEST_CLOCK=" + start.Format(time.RFC3339Nano) + "*" + strconv.Itoa(speed)
	}
	// Early enough that the first server reaches its third run, and its
	// restart 25 schedule minutes later, before the jump at 02:00 even on
	// a busy machine (the kill must come within 6 real seconds).
	start1 := time.Date(2026, 3, 8, 0, 30, 0, 0, ny)
	began := time.Now()
	s1 := startServer(t, home, dir, []string{clock(start1)})
	awaitFifo(t, fifo, s1, 30*time.Second)
	// The fake time now, by the test's reckoning (a little ahead of the
	// server's, which started its clock after the test started the process).
	atKill := start1.Add(time.Since(began) * speed)
	// Its watchdog would end what the attempt leaves as soon as the server
	// dies: gone first (the OOM killer, a kill of the whole service), it
	// leaves that to the restarted server.
	s1.killWatchdog()
	s1.kill9()
	b, _ := os.ReadFile(child)
	orphan, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if !alive(orphan) {
		t.Fatalf("test setup: the killed attempt's child %d should outlive the server", orphan)
	}

	// Down for 25 schedule minutes (2.5 s at this speed): two or three
	// intervals end while no server runs. Rather than sleep, the restarted
	// server's clock starts that much after where the killed one stood, so
	// it keeps moving forward.
	start2 := atKill.Add(25 * time.Minute)
	if !start2.Before(time.Date(2026, 3, 8, 3, 0, 0, 0, ny)) {
		t.Fatalf("the first server took too long (fake time %s at the kill): the restart would begin after the DST jump", atKill)
	}
	s2 := startServer(t, home, dir, []string{clock(start2)})
	until := time.Date(2026, 3, 8, 3, 30, 0, 0, ny) // EDT, past the jump
	eventually(t, 30*time.Second, "a succeeded run of the interval ending "+until.Format(time.RFC3339), func() (bool, string) {
		page, err := s2.c.Runs(context.Background(), api.RunFilter{Pipeline: "tick", Limit: 10})
		if err != nil || len(page.Items) == 0 {
			return false, fmt.Sprint(err)
		}
		for _, r := range page.Items {
			if r.State == engine.RunSucceeded && !r.IntervalEnd.Before(until) {
				return true, ""
			}
		}
		r := page.Items[0]
		return false, fmt.Sprintf("newest run %d ending %s: %s", r.ID, r.IntervalEnd.In(ny), r.State)
	})
	// Stop the schedule (a paused pipeline gets no more scheduled runs, by
	// the store's compare-and-set) and let what started finish.
	if _, err := s2.c.SetPaused(context.Background(), "tick", true, "test"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "every run of tick to end", func() (bool, string) {
		active := listRuns(t, s2.c, api.RunFilter{Pipeline: "tick", States: []engine.RunState{engine.RunQueued, engine.RunRunning}})
		return len(active) == 0, fmt.Sprintf("%d runs queued or running", len(active))
	})
	eventually(t, 10*time.Second, fmt.Sprintf("the lost attempt's child %d to be killed by the restarted server", orphan), func() (bool, string) {
		return !alive(orphan), "alive"
	})

	runs := listRuns(t, s2.c, api.RunFilter{Pipeline: "tick"})
	for _, r := range runs {
		if r.Trigger != store.TriggerSchedule {
			t.Errorf("run %d: trigger %q, want schedule", r.ID, r.Trigger)
		}
	}
	seen := readMarks(t, marks)
	lost := checkIntervalRuns(t, s2.c, runs, "mark", seen, ny)
	checkKilled(t, lock, lost, seen, ny)
	// The runs span the kill, the downtime and the DST jump.
	first, last := runs[0], runs[len(runs)-1] // sorted by checkIntervalRuns
	if first.IntervalStart.After(start1.Add(10*time.Minute)) || last.IntervalEnd.Before(until) {
		t.Errorf("runs cover %s to %s, want from %s or 10 minutes later to at least %s", first.IntervalStart.In(ny), last.IntervalEnd.In(ny), start1, until)
	}
	jumpStart, jumpEnd := time.Date(2026, 3, 8, 1, 50, 0, 0, ny), time.Date(2026, 3, 8, 3, 0, 0, 0, ny)
	var jumped bool
	for _, r := range runs {
		if r.IntervalEnd.Sub(*r.IntervalStart) != 10*time.Minute {
			t.Errorf("run %d: interval %s to %s is not 10 minutes long", r.ID, r.IntervalStart.In(ny), r.IntervalEnd.In(ny))
		}
		if r.IntervalStart.Equal(jumpStart) && r.IntervalEnd.Equal(jumpEnd) {
			jumped = true
		}
	}
	if !jumped {
		t.Errorf("no run covers 01:50 EST to 03:00 EDT, the interval across the jump")
	}
	for _, r := range lost {
		if !r.IntervalEnd.After(atKill.Add(-30*time.Minute)) || r.IntervalStart.After(atKill) {
			t.Errorf("run %d (interval %s) lost an attempt, but the kill was at about %s", r.ID, r.IntervalStart.In(ny), atKill)
		}
	}
	t.Logf("%d scheduled runs from %s to %s; lost and retried: %d", len(runs), first.IntervalStart.In(ny), last.IntervalEnd.In(ny), len(lost))
	s2.term(10 * time.Second)
}

// TestProcessKillDuringBackfill kills a server with SIGKILL while a backfill
// of 30 intervals runs three at a time, and restarts it: the backfill
// finishes, succeeded, with exactly one run per interval.
func TestProcessKillDuringBackfill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a backfill of 30 intervals across a kill")
	}
	t.Parallel()
	home, dir, work := t.TempDir(), t.TempDir(), t.TempDir()
	marks, lock, child := filepath.Join(work, "marks"), filepath.Join(work, "lock"), filepath.Join(work, "child.pid")
	fifo := mkfifo(t, work)
	t.Cleanup(func() { killPidFile(child) })
	writeFile(t, dir, "hourly.yaml", fmt.Sprintf(`name: hourly
schedule: {cron: '@hourly', timezone: UTC}
env: {MARKS: %q, LOCK: %q, FIFO: %q, CHILD: %q}
tasks:
  - id: load
    retry: {attempts: 3, backoff: 50ms}
    run: |
      echo "$TASUKI_INTERVAL_START $TASUKI_ATTEMPT" >> "$MARKS"
      if [ "$(wc -l < "$MARKS")" -ge 10 ] && mkdir "$LOCK" 2>/dev/null; then
        echo "$TASUKI_INTERVAL_START" > "$LOCK/interval"
        sleep 30 & echo $! > "$CHILD"
        echo started > "$FIFO"
        wait
      fi
      sleep 0.2
`, marks, lock, fifo, child))
	// The server's clock stands half an hour from any @hourly fire, so no
	// scheduled run mixes with the backfill's, whenever the test runs.
	s1 := startServer(t, home, dir, []string{"TASUKI_TEST_CLOCK=2026-01-10T00:30:00Z*1"})
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.Add(30 * time.Hour)
	b, err := s1.c.CreateBackfill(context.Background(), api.BackfillRequest{Pipeline: "hourly", From: from, To: to, Parallel: 3}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if b.Runs != 30 || b.State != store.BackfillRunning || b.Parallel != 3 {
		t.Fatalf("backfill created: %+v, want 30 runs, running, 3 at once", b)
	}
	awaitFifo(t, fifo, s1, 30*time.Second)
	s1.kill9()

	s2 := startServer(t, home, dir, []string{"TASUKI_TEST_CLOCK=2026-01-10T00:31:00Z*1"})
	eventually(t, 40*time.Second, fmt.Sprintf("backfill %d to end", b.ID), func() (bool, string) {
		b, err = s2.c.Backfill(context.Background(), b.ID)
		if err != nil {
			return false, err.Error()
		}
		return b.State != store.BackfillRunning, fmt.Sprintf("%s %v", b.State, b.Counts)
	})
	if b.State != store.BackfillSucceeded || b.Counts[engine.RunSucceeded] != 30 || b.Runs != 30 || b.FinishedAt == nil {
		t.Errorf("backfill after the restart: %+v, want succeeded with 30 succeeded runs", b)
	}
	eventually(t, 10*time.Second, "the lost attempt's child to be killed by the restarted server", func() (bool, string) {
		bs, _ := os.ReadFile(child)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(bs)))
		return pid > 0 && !alive(pid), "alive"
	})
	runs := listRuns(t, s2.c, api.RunFilter{BackfillID: b.ID})
	if len(runs) != 30 {
		t.Fatalf("backfill %d has %d runs, want 30", b.ID, len(runs))
	}
	if all := listRuns(t, s2.c, api.RunFilter{Pipeline: "hourly"}); len(all) != 30 {
		t.Errorf("hourly has %d runs, want the backfill's 30 only", len(all))
	}
	seen := readMarks(t, marks)
	lost := checkIntervalRuns(t, s2.c, runs, "load", seen, time.UTC)
	checkKilled(t, lock, lost, seen, time.UTC)
	if !runs[0].IntervalStart.Equal(from) || !runs[len(runs)-1].IntervalEnd.Equal(to) {
		t.Errorf("runs cover %s to %s, want %s to %s", runs[0].IntervalStart, runs[len(runs)-1].IntervalEnd, from, to)
	}
	for _, r := range runs {
		if r.Trigger != store.TriggerBackfill || r.BackfillID != b.ID {
			t.Errorf("run %d: trigger %q backfill %d, want backfill %d", r.ID, r.Trigger, r.BackfillID, b.ID)
		}
	}
	s2.term(10 * time.Second)
}

// TestProcessHotReloadBrokenFile edits the pipeline file under a running
// server: a broken file keeps the last good version running and reports the
// error with its position; a fixed file is used for the next run; a removed
// file stops the pipeline from starting runs while its history stays.
func TestProcessHotReloadBrokenFile(t *testing.T) {
	t.Parallel()
	home, dir := t.TempDir(), t.TempDir()
	file := writeFile(t, dir, "hot.yaml", "name: hot\ntasks:\n  - {id: say, run: 'echo version-1'}\n")
	s := startServer(t, home, dir, nil)
	ctx := context.Background()
	p, err := s.c.Pipeline(ctx, "hot")
	if err != nil {
		t.Fatal(err)
	}
	if p.Error != "" || p.Removed || p.Tasks != 1 {
		t.Fatalf("pipeline at start: %+v", p)
	}
	good := p.Hash

	trigger := func(want string) {
		t.Helper()
		run, err := s.c.Trigger(ctx, "hot", nil, "test")
		if err != nil {
			t.Fatal(err)
		}
		if run = waitRunEnd(t, s.c, run.ID); run.State != engine.RunSucceeded {
			t.Fatalf("run %d: %s", run.ID, run.State)
		}
		if log := runLog(t, s.c, run.ID, "say"); !strings.Contains(log, " out "+want+"\n") {
			t.Fatalf("run %d printed %q, want %q", run.ID, log, want)
		}
	}
	trigger("version-1")

	// A YAML syntax error (an unclosed flow mapping on line 3).
	replaceFile(t, file, "name: hot\ntasks:\n  - {id: say, run: 'echo version-2'\n")
	eventually(t, 15*time.Second, "the broken file to be reported", func() (bool, string) {
		p, err = s.c.Pipeline(ctx, "hot")
		return err == nil && p.Error != "", fmt.Sprintf("%+v %v", p, err)
	})
	checkPosition(t, p.Error, file, 3)
	if p.Hash != good || p.Removed {
		t.Errorf("after the broken edit the pipeline shows hash %s removed %v; want the last good version %s", p.Hash, p.Removed, good)
	}
	if err := s.c.Ready(ctx); err != nil || s.exited() {
		t.Fatalf("the server is not ready after a broken file: %v", err)
	}
	trigger("version-1") // the last good version still runs

	replaceFile(t, file, "name: hot\ntasks:\n  - {id: say, run: 'echo version-3'}\n")
	eventually(t, 15*time.Second, "the fixed file to be loaded", func() (bool, string) {
		p, err = s.c.Pipeline(ctx, "hot")
		return err == nil && p.Error == "" && p.Hash != good, fmt.Sprintf("%+v %v", p, err)
	})
	trigger("version-3")

	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the removal to be noticed", func() (bool, string) {
		p, err = s.c.Pipeline(ctx, "hot")
		return err == nil && p.Removed, fmt.Sprintf("%+v %v", p, err)
	})
	if p.NextRun != nil || p.Error != "" {
		t.Errorf("removed pipeline: %+v", p)
	}
	_, err = s.c.Trigger(ctx, "hot", nil, "test")
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Code != api.CodeConflict || !strings.Contains(ae.Message, "removed") {
		t.Fatalf("trigger of a removed pipeline: %v, want 409 conflict", err)
	}
	if runs := listRuns(t, s.c, api.RunFilter{Pipeline: "hot"}); len(runs) != 3 {
		t.Errorf("history of the removed pipeline: %d runs, want 3", len(runs))
	}
	s.term(10 * time.Second)
}

// checkPosition checks that an error names file:line:col with the given line.
func checkPosition(t *testing.T, msg, file string, line int) {
	t.Helper()
	i := strings.Index(msg, file+":")
	if i < 0 {
		t.Errorf("error %q does not name the file %s", msg, file)
		return
	}
	ln, rest, _ := strings.Cut(msg[i+len(file)+1:], ":")
	col, _, _ := strings.Cut(rest, ":")
	if n, err := strconv.Atoi(ln); err != nil || n != line {
		t.Errorf("error %q: want %s:%d:COL", msg, file, line)
	} else if n, err := strconv.Atoi(col); err != nil || n < 1 {
		t.Errorf("error %q: want %s:%d:COL", msg, file, line)
	}
}

// TestProcessRestartWithChangedDirectory changes the pipelines directory
// while the server is down, as a git pull between two deployments does: one
// file broken, one removed. After the restart each must be what it would be
// had the change happened under the running server: the broken one keeps its
// last good version (the error reported with its position, triggers still
// run the good version), the removed one shows removed and a trigger gets
// 409.
func TestProcessRestartWithChangedDirectory(t *testing.T) {
	t.Parallel()
	home, dir := t.TempDir(), t.TempDir()
	kept := writeFile(t, dir, "kept.yaml", "name: kept\nschedule: {cron: '0 9 * * *', timezone: Asia/Tokyo}\ntasks:\n  - {id: say, run: 'echo good-version'}\n")
	gone := writeFile(t, dir, "gone.yaml", "name: gone\nschedule: {cron: '0 9 * * *', timezone: Asia/Tokyo}\ntasks:\n  - {id: a, run: 'true'}\n")
	ctx := context.Background()
	// Clocks far from 09:00 in Tokyo: nothing is scheduled during the test.
	s1 := startServer(t, home, dir, []string{"TASUKI_TEST_CLOCK=2026-01-10T12:00:00+09:00*1"})
	p, err := s1.c.Pipeline(ctx, "kept")
	if err != nil || p.Error != "" || p.Tasks != 1 {
		t.Fatalf("kept at first: %+v %v", p, err)
	}
	good := p.Hash
	s1.term(10 * time.Second)

	replaceFile(t, kept, "name: kept\ntasks:\n  - {id: say, run: 'echo bad-version'\n")
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	s2 := startServer(t, home, dir, []string{"TASUKI_TEST_CLOCK=2026-01-10T12:01:00+09:00*1"})
	p, err = s2.c.Pipeline(ctx, "kept")
	switch {
	case err != nil:
		t.Errorf("kept after the restart: %v", err)
	case p.Error == "" || p.Hash != good || p.Tasks != 1 || p.Schedule == "" || p.Removed:
		t.Errorf("kept after a restart with its file broken: %+v; want the file's error and the last good version %s (1 task, its schedule)", p, good)
	default:
		checkPosition(t, p.Error, kept, 3)
	}
	if run, err := s2.c.Trigger(ctx, "kept", nil, "test"); err != nil {
		t.Errorf("trigger of kept after a restart with its file broken: %v; want a run of the last good version", err)
	} else if run = waitRunEnd(t, s2.c, run.ID); run.State != engine.RunSucceeded || !strings.Contains(runLog(t, s2.c, run.ID, "say"), "good-version") {
		t.Errorf("run %d of kept: %s, want the good version to succeed", run.ID, run.State)
	}
	p, err = s2.c.Pipeline(ctx, "gone")
	if err != nil || !p.Removed || p.NextRun != nil {
		t.Errorf("gone after a restart with its file removed: %+v %v; want removed, with no next run", p, err)
	}
	_, err = s2.c.Trigger(ctx, "gone", nil, "test")
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		t.Errorf("trigger of gone after a restart with its file removed: %v; want 409 conflict (removed), as under a running server", err)
	}
	s2.term(10 * time.Second)
}

// TestProcessSIGTERMDuringStartup sends SIGTERM to a server still loading a
// large pipelines directory (right after it said it was listening): it must
// stop cleanly, status 0, as a drain does, and the next start must load every
// pipeline.
func TestProcessSIGTERMDuringStartup(t *testing.T) {
	t.Parallel()
	home, dir := t.TempDir(), t.TempDir()
	const n = 300
	for i := range n {
		writeFile(t, dir, fmt.Sprintf("p%03d.yaml", i), fmt.Sprintf("name: p%03d\nschedule: {cron: '0 9 * * *', timezone: Asia/Tokyo}\ntasks:\n  - {id: a, run: 'true'}\n", i))
	}
	clock := []string{"TASUKI_TEST_CLOCK=2026-01-10T12:00:00+09:00*1"}
	s1 := startServer(t, home, dir, clock)
	s1.term(10 * time.Second)

	s2 := startServer(t, home, dir, clock)
	ps, err := s2.c.Pipelines(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	loaded := 0
	for _, p := range ps.Items {
		if p.Error == "" && !p.Removed && p.Tasks == 1 && p.NextRun != nil {
			loaded++
		}
	}
	if loaded != n {
		t.Errorf("after a restart, %d of %d pipelines are loaded and scheduled", loaded, n)
	}
	s2.term(10 * time.Second)
}

// cliResult is what one CLI invocation did.
type cliResult struct {
	code        int
	out, errOut string
}

// tasukiCLI runs the CLI in this process against a server.
func tasukiCLI(t *testing.T, s *serverProc, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	args = append([]string{"--server", s.url, "--home", filepath.Join(s.home, "cli-unused"), "--token", s.token}, args...)
	code := cli.Main(args, cli.IO{In: strings.NewReader(""), Out: &out, Err: &errb}, "test")
	return cliResult{code: code, out: out.String(), errOut: errb.String()}
}

// expect checks an invocation's exit status and that its output holds each
// of want.
func (r cliResult) expect(t *testing.T, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.out, r.errOut)
	}
	for _, w := range want {
		if !strings.Contains(r.out+r.errOut, w) {
			t.Fatalf("output lacks %q\nstdout:\n%s\nstderr:\n%s", w, r.out, r.errOut)
		}
	}
}

// sameJSON reports whether raw is the same JSON value as want.
func sameJSON(raw json.RawMessage, want string) bool {
	var a, b any
	return json.Unmarshal(raw, &a) == nil && json.Unmarshal([]byte(want), &b) == nil && fmt.Sprint(a) == fmt.Sprint(b)
}

// runID reads the run id a command printed on its first line.
func (r cliResult) runID(t *testing.T) int64 {
	t.Helper()
	first, _, _ := strings.Cut(r.out, "\n")
	id, err := strconv.ParseInt(strings.TrimSpace(first), 10, 64)
	if err != nil {
		t.Fatalf("first line of stdout is not a run id: %q", r.out)
	}
	return id
}

// TestProcessCLIAgainstLiveServer runs the CLI's server commands against a
// real server process and checks their output and exit statuses.
func TestProcessCLIAgainstLiveServer(t *testing.T) {
	t.Parallel()
	home, dir, work := t.TempDir(), t.TempDir(), t.TempDir()
	fix := filepath.Join(work, "fixed")
	writeFile(t, dir, "greet.yaml", `name: greet
description: says hello
params: [{name: who, default: world}]
tasks:
  - {id: hello, run: 'echo "hello $TASUKI_PARAM_WHO"'}
`)
	writeFile(t, dir, "long.yaml", "name: long\ntasks:\n  - {id: wait, run: 'sleep 30'}\n")
	writeFile(t, dir, "fragile.yaml", fmt.Sprintf(`name: fragile
env: {FIX: %q}
tasks:
  - id: extract
    run: 'if [ -e "$FIX" ]; then echo fixed; else echo "not yet" >&2; exit 3; fi'
  - {id: report, needs: [extract], run: 'echo report-ran'}
`, fix))
	writeFile(t, dir, "daily.yaml", `name: daily
schedule: {cron: '0 9 * * *', timezone: Asia/Tokyo}
tasks:
  - {id: day, run: 'echo "$TASUKI_INTERVAL_DATE"'}
`)
	// A clock far from 09:00 in Tokyo: daily is not scheduled during the test.
	s := startServer(t, home, dir, []string{"TASUKI_TEST_CLOCK=2026-01-10T12:00:00+09:00*1"})
	ctx := context.Background()

	r := tasukiCLI(t, s, "pipelines")
	r.expect(t, 0, "NAME", "SCHEDULE", "greet", "long", "fragile", "daily", "0 9 * * * Asia/Tokyo")

	// trigger --wait: the run id on stdout, progress on stderr, exit 0.
	r = tasukiCLI(t, s, "trigger", "greet", "-p", "who=tasuki", "--wait")
	r.expect(t, 0, "✓ hello succeeded")
	greet := r.runID(t)

	r = tasukiCLI(t, s, "runs", "-o", "json")
	r.expect(t, 0)
	var runs []api.Run
	if err := json.Unmarshal([]byte(r.out), &runs); err != nil {
		t.Fatalf("runs -o json: %v\n%s", err, r.out)
	}
	if len(runs) != 1 || runs[0].ID != greet || runs[0].State != engine.RunSucceeded || runs[0].Pipeline != "greet" || !sameJSON(runs[0].Params, `{"who":"tasuki"}`) {
		t.Fatalf("runs -o json: %+v", runs)
	}

	r = tasukiCLI(t, s, "status", strconv.FormatInt(greet, 10), "-o", "json")
	r.expect(t, 0)
	var status api.Run
	if err := json.Unmarshal([]byte(r.out), &status); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, r.out)
	}
	if status.ID != greet || status.State != engine.RunSucceeded || len(status.Tasks) != 1 || status.Tasks[0].ID != "hello" || status.Tasks[0].State != engine.TaskSucceeded {
		t.Fatalf("status -o json: %+v", status)
	}
	tasukiCLI(t, s, "status", strconv.FormatInt(greet, 10)).expect(t, 0, "hello", "succeeded")
	tasukiCLI(t, s, "logs", strconv.FormatInt(greet, 10), "hello").expect(t, 0, " out hello tasuki")

	// cancel a long run while its task runs.
	r = tasukiCLI(t, s, "trigger", "long")
	r.expect(t, 0)
	long := r.runID(t)
	eventually(t, 15*time.Second, "the long task to start", func() (bool, string) {
		run, err := s.c.Run(ctx, long)
		if err != nil || len(run.Tasks) == 0 {
			return false, fmt.Sprint(err)
		}
		return run.Tasks[0].State == engine.TaskRunning, string(run.Tasks[0].State)
	})
	tasukiCLI(t, s, "cancel", strconv.FormatInt(long, 10)).expect(t, 0, fmt.Sprintf("run %d of long:", long))
	if run := waitRunEnd(t, s.c, long); run.State != engine.RunCancelled || run.Tasks[0].State != engine.TaskCancelled {
		t.Fatalf("cancelled run: %+v", run)
	}
	cancelledBy := ""
	for _, e := range allEvents(t, s.c, long) {
		if e.Kind == engine.EvCancel {
			cancelledBy = e.Actor
		}
	}
	if cancelledBy != "admin" { // the credential's name
		t.Errorf("the timeline does not record who cancelled: actor %q", cancelledBy)
	}
	// Cancelling a finished run is refused by the server: a usage error.
	tasukiCLI(t, s, "cancel", strconv.FormatInt(long, 10)).expect(t, 2, "cancel")

	// retry: a failed run, fixed by a marker file, then retried in place.
	r = tasukiCLI(t, s, "trigger", "fragile", "--wait")
	r.expect(t, 1, "✗ extract failed (exit 3)")
	failed := r.runID(t)
	writeFile(t, work, "fixed", "")
	tasukiCLI(t, s, "retry", strconv.FormatInt(failed, 10)).expect(t, 0, fmt.Sprintf("run %d of fragile:", failed))
	run := waitRunEnd(t, s.c, failed)
	if run.State != engine.RunSucceeded || run.Tasks[0].Attempt != 2 || run.Tasks[1].State != engine.TaskSucceeded {
		t.Fatalf("retried run: %+v", run)
	}
	if !strings.Contains(runLog(t, s.c, failed, "report"), "report-ran") {
		t.Errorf("report did not run after the retry")
	}

	// mark: the failed task is skipped by hand, what needs it runs.
	if err := os.Remove(fix); err != nil {
		t.Fatal(err)
	}
	r = tasukiCLI(t, s, "trigger", "fragile", "--wait")
	r.expect(t, 1)
	marked := r.runID(t)
	r = tasukiCLI(t, s, "mark", strconv.FormatInt(marked, 10), "extract", "skipped")
	r.expect(t, 0, fmt.Sprintf("task extract of run %d marked skipped", marked))
	run = waitRunEnd(t, s.c, marked)
	if run.State != engine.RunSucceeded || run.Tasks[0].State != engine.TaskSkipped || run.Tasks[1].State != engine.TaskSucceeded {
		t.Fatalf("run after mark: %+v", run)
	}
	tasukiCLI(t, s, "mark", strconv.FormatInt(marked, 10), "extract", "failed").expect(t, 2, "succeeded or skipped")

	// pause / unpause.
	tasukiCLI(t, s, "pause", "daily").expect(t, 0, "pipeline daily paused")
	if p, err := s.c.Pipeline(ctx, "daily"); err != nil || !p.Paused || p.NextRun != nil {
		t.Fatalf("after pause: %+v %v", p, err)
	}
	tasukiCLI(t, s, "pipelines").expect(t, 0, "paused")
	tasukiCLI(t, s, "unpause", "daily").expect(t, 0, "pipeline daily unpaused")
	if p, err := s.c.Pipeline(ctx, "daily"); err != nil || p.Paused || p.NextRun == nil {
		t.Fatalf("after unpause: %+v %v", p, err)
	}

	// backfill: times without an offset are in the pipeline's zone.
	r = tasukiCLI(t, s, "backfill", "daily", "--from", "2026-01-01T09:00", "--to", "2026-01-04T09:00", "--parallel", "2")
	r.expect(t, 0, "backfill 1 of daily: 3 runs from 2026-01-01T09:00:00+09:00 to 2026-01-04T09:00:00+09:00, 2 at once")
	eventually(t, 20*time.Second, "backfill 1 to end", func() (bool, string) {
		b, err := s.c.Backfill(ctx, 1)
		return err == nil && b.State != store.BackfillRunning, fmt.Sprintf("%+v %v", b, err)
	})
	tasukiCLI(t, s, "backfill", "show", "1").expect(t, 0, "backfill 1 of daily: succeeded", "succeeded 3")
	r = tasukiCLI(t, s, "runs", "--backfill", "1", "-o", "json")
	r.expect(t, 0)
	runs = nil
	if err := json.Unmarshal([]byte(r.out), &runs); err != nil || len(runs) != 3 {
		t.Fatalf("runs --backfill 1: %v\n%s", err, r.out)
	}
	var dates []string
	for _, r := range runs {
		dates = append(dates, strings.TrimSpace(strings.SplitN(runLog(t, s.c, r.ID, "day"), " out ", 2)[1]))
	}
	sort.Strings(dates)
	if strings.Join(dates, ",") != "2026-01-01,2026-01-02,2026-01-03" {
		t.Errorf("backfill runs saw interval dates %v", dates)
	}

	// What the server refuses is a usage error naming the problem.
	tasukiCLI(t, s, "status", "999").expect(t, 2, "no run 999")
	tasukiCLI(t, s, "trigger", "nope").expect(t, 2, `no pipeline "nope"`)
	tasukiCLI(t, s, "logs", strconv.FormatInt(greet, 10), "nope").expect(t, 2, `no task "nope"`)
	tasukiCLI(t, s, "backfill", "greet", "--from", "2026-01-01", "--to", "2026-01-02").expect(t, 2, "no schedule")
	s.term(10 * time.Second)
}

// TestProcessAPIErrors checks that what the real server refuses comes back as
// JSON with the documented status and code.
func TestProcessAPIErrors(t *testing.T) {
	t.Parallel()
	home, dir := t.TempDir(), t.TempDir()
	writeFile(t, dir, "typed.yaml", "name: typed\nparams: [{name: n, type: int, default: 1}]\ntasks:\n  - {id: a, run: 'echo $TASUKI_PARAM_N'}\n")
	gone := writeFile(t, dir, "gone.yaml", "name: gone\ntasks:\n  - {id: a, run: 'true'}\n")
	s := startServer(t, home, dir, nil)
	base := s.url + api.Prefix
	ctx := context.Background()

	run, err := s.c.Trigger(ctx, "typed", map[string]string{"n": "7"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	waitRunEnd(t, s.c, run.ID)
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the removal of gone.yaml to be noticed", func() (bool, string) {
		p, err := s.c.Pipeline(ctx, "gone")
		return err == nil && p.Removed, fmt.Sprintf("%+v %v", p, err)
	})
	runPath := "/runs/" + strconv.FormatInt(run.ID, 10)

	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
		want                     string // in the message
	}{
		{"unknown route", "GET", "/nope", "", 404, api.CodeNotFound, "no such route"},
		{"unknown route under a run", "GET", runPath + "/nope", "", 404, api.CodeNotFound, "no such route"},
		{"wrong method", "DELETE", runPath, "", 405, api.CodeMethodNotAllowed, "DELETE is not allowed"},
		{"wrong method on a collection", "PUT", "/pipelines", "", 405, api.CodeMethodNotAllowed, "PUT"},
		{"unknown run", "GET", "/runs/999999", "", 404, api.CodeNotFound, "no run 999999"},
		{"unknown run's events", "GET", "/runs/999999/events", "", 404, api.CodeNotFound, "999999"},
		{"cancel an unknown run", "POST", "/runs/999999/cancel", "", 404, api.CodeNotFound, "999999"},
		{"bad run id", "GET", "/runs/abc", "", 400, api.CodeInvalid, `"abc"`},
		{"unknown task", "GET", runPath + "/tasks/nope", "", 404, api.CodeNotFound, `"nope"`},
		{"log of an attempt that never was", "GET", runPath + "/tasks/a/logs?attempt=5", "", 404, api.CodeNotFound, "attempt 5"},
		{"unknown pipeline", "GET", "/pipelines/nope", "", 404, api.CodeNotFound, `"nope"`},
		{"trigger an unknown pipeline", "POST", "/pipelines/nope/runs", "{}", 404, api.CodeNotFound, `"nope"`},
		{"bad param value", "POST", "/pipelines/typed/runs", `{"params": {"n": "many"}}`, 400, api.CodeInvalidParams, `"n"`},
		{"undeclared param", "POST", "/pipelines/typed/runs", `{"params": {"m": 1}}`, 400, api.CodeInvalidParams, `"m"`},
		{"malformed JSON body", "POST", "/pipelines/typed/runs", `{"params": `, 400, api.CodeInvalid, "JSON"},
		{"unknown field in the body", "POST", "/pipelines/typed/runs", `{"parms": {}}`, 400, api.CodeInvalid, `"parms"`},
		{"bad query value", "GET", "/runs?limit=5000", "", 400, api.CodeInvalid, "limit"},
		{"unknown query parameter", "GET", "/runs?pipline=typed", "", 400, api.CodeInvalid, "pipline"},
		{"bad cursor", "GET", "/runs?cursor=xyz", "", 400, api.CodeInvalid, "cursor"},
		{"trigger a removed pipeline", "POST", "/pipelines/gone/runs", "{}", 409, api.CodeConflict, "removed"},
		{"cancel a finished run", "POST", runPath + "/cancel", "", 409, api.CodeConflict, ""},
		{"retry a succeeded run", "POST", runPath + "/retry", "", 409, api.CodeConflict, ""},
		{"mark with a bad state", "POST", runPath + "/tasks/a/mark", `{"state": "failed"}`, 400, api.CodeInvalid, `"skipped"`},
		{"backfill of a pipeline without schedule", "POST", "/backfills", `{"pipeline": "typed", "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}`, 400, api.CodeInvalid, "no schedule"},
		{"unknown backfill", "GET", "/backfills/42", "", 404, api.CodeNotFound, "42"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body io.Reader
			if c.body != "" {
				body = strings.NewReader(c.body)
			}
			req, err := http.NewRequestWithContext(ctx, c.method, base+c.path, body)
			if err != nil {
				t.Fatal(err)
			}
			if c.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			req.Header.Set("Authorization", "Bearer "+s.token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, c.status, raw)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q, want application/json: %s", ct, raw)
			}
			var eb api.ErrorBody
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&eb); err != nil {
				t.Fatalf("the answer is not the error JSON: %v: %s", err, raw)
			}
			if eb.Error.Code != c.code || eb.Error.Message == "" || !strings.Contains(eb.Error.Message, c.want) {
				t.Errorf("error %+v, want code %q and a message with %q", eb.Error, c.code, c.want)
			}
			if c.status == http.StatusMethodNotAllowed && resp.Header.Get("Allow") == "" {
				t.Errorf("405 without an Allow header")
			}
		})
	}
	// Nothing above started a run or changed the one there was.
	if runs := listRuns(t, s.c, api.RunFilter{}); len(runs) != 1 || runs[0].State != engine.RunSucceeded {
		t.Errorf("runs after the refused requests: %+v", runs)
	}
	s.term(10 * time.Second)
}

// TestProcessDrainOnSIGTERM sends SIGTERM while a long task runs: the server
// hands the attempt back after the drain grace and exits; after a restart the
// attempt shows as preempted, not charged to the retry budget (a task with
// one attempt runs again), and the run completes.
func TestProcessDrainOnSIGTERM(t *testing.T) {
	t.Parallel()
	home, dir, work := t.TempDir(), t.TempDir(), t.TempDir()
	marks, once := filepath.Join(work, "marks"), filepath.Join(work, "once")
	fifo := mkfifo(t, work)
	writeFile(t, dir, "drain.yaml", fmt.Sprintf(`name: drain
env: {MARKS: %q, ONCE: %q, FIFO: %q}
tasks:
  - id: long
    retry: {attempts: 1}
    run: |
      echo "attempt $TASUKI_ATTEMPT" >> "$MARKS"
      if [ -e "$ONCE" ]; then echo quick; exit 0; fi
      touch "$ONCE"
      echo started > "$FIFO"
      sleep 30
`, marks, once, fifo))
	s1 := startServer(t, home, dir, nil, "--drain-grace", "1s")
	run, err := s1.c.Trigger(context.Background(), "drain", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	awaitFifo(t, fifo, s1, 30*time.Second)
	took := s1.term(8 * time.Second)
	if took < time.Second {
		t.Errorf("the server exited %s after SIGTERM, before the 1s drain grace", took)
	}
	if logs := s1.logs(); !strings.Contains(logs, "draining") || !strings.Contains(logs, "tasuki server stopped") {
		t.Errorf("the server's log does not tell of the drain:\n%s", logs)
	}

	s2 := startServer(t, home, dir, nil)
	got := waitRunEnd(t, s2.c, run.ID)
	if got.State != engine.RunSucceeded {
		t.Fatalf("run %d after the restart: %s", run.ID, got.State)
	}
	task, err := s2.c.Task(context.Background(), run.ID, "long")
	if err != nil {
		t.Fatal(err)
	}
	if len(task.Attempts) != 2 || task.Attempts[0].Outcome != store.OutcomePreempted || task.Attempts[1].Outcome != store.OutcomeSucceeded {
		t.Fatalf("attempts: %+v, want preempted then succeeded", task.Attempts)
	}
	if evs := allEvents(t, s2.c, run.ID); !hasEvent(evs, engine.EvTaskPreempted, 1) || hasEvent(evs, engine.RecRetryScheduled, 0) {
		t.Errorf("timeline: want task_preempted for attempt 1 and no retry charged: %+v", evs)
	}
	if b, _ := os.ReadFile(marks); string(b) != "attempt 1\nattempt 2\n" {
		t.Errorf("the task ran as %q, want attempts 1 and 2 once each", b)
	}
	if log := runLog(t, s2.c, run.ID, "long"); !strings.Contains(log, " out quick") {
		t.Errorf("attempt 2's log: %q", log)
	}
	s2.term(10 * time.Second)
}

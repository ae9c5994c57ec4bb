package shell

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// watchdogRoleEnv makes the test binary act as a process of the watchdog
// tests: "companion" (what 'tasuki watchdog' runs) or "server" (a stand-in
// tasuki server: fakeServer).
const watchdogRoleEnv = "TASUKI_SHELL_TEST_WATCHDOG"

// watchdogRole runs the test binary as the process its role names, and
// reports whether it had one.
func watchdogRole() (code int, ok bool) {
	switch os.Getenv(watchdogRoleEnv) {
	case "companion":
		if err := ServeWatchdog(os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "companion:", err)
			return 1, true
		}
		return 0, true
	case "server":
		return fakeServer(), true
	}
	return 0, false
}

// roleEnv is the environment of the test binary playing role.
func roleEnv(role string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, watchdogRoleEnv+"=") && !strings.HasPrefix(kv, CgroupRootEnv+"=") {
			env = append(env, kv)
		}
	}
	return append(env, watchdogRoleEnv+"="+role)
}

// fakeServer plays a tasuki server: it starts the watchdog (WD_TIMEOUT),
// then WD_ATTEMPTS attempts of the script WD_SCRIPT (with I set to the
// attempt's number), and prints on stdout the companion's pid, then each
// attempt's end. When its stdin closes, it waits for its attempts, closes
// the watchdog, prints "closed" and exits.
func fakeServer() int {
	timeout, err := time.ParseDuration(os.Getenv("WD_TIMEOUT"))
	if err != nil {
		fmt.Println("error", err)
		return 2
	}
	n, _ := strconv.Atoi(os.Getenv("WD_ATTEMPTS"))
	exe, err := os.Executable()
	if err != nil {
		fmt.Println("error", err)
		return 2
	}
	wd, err := StartWatchdog(WatchdogConfig{Path: exe, Args: []string{"tasuki-test-watchdog"}, Env: roleEnv("companion"), Timeout: timeout})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Printf("companion %d\n", wd.PID())
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for i := range n {
		wg.Go(func() {
			res := Run(context.Background(), Command{Script: os.Getenv("WD_SCRIPT"), Env: append(os.Environ(), "I="+strconv.Itoa(i))})
			mu.Lock()
			defer mu.Unlock()
			fmt.Printf("result %d watchdog=%t signal=%s exit=%d timedout=%t cancelled=%t\n", i, res.Watchdog, res.Signal, res.ExitCode, res.TimedOut, res.Cancelled)
		})
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	wg.Wait()
	if err := wd.Close(); err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("closed")
	return 0
}

// fakeServerProc is a running fakeServer.
type fakeServerProc struct {
	t         *testing.T
	cmd       *exec.Cmd
	stdin     io.WriteCloser
	lines     chan string // its stdout, line by line; closed at its end
	stderr    syncBuffer
	companion int
}

// startFakeServer starts fakeServer with the containment of mechanism m
// (under a cgroup directory of the test's own where m uses cgroups, which
// is swept and removed at the end), skipping the test where m cannot be
// used here.
func startFakeServer(t *testing.T, m Mechanism, timeout time.Duration, attempts int, script string) *fakeServerProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env := append(roleEnv("server"), "WD_TIMEOUT="+timeout.String(), "WD_ATTEMPTS="+strconv.Itoa(attempts), "WD_SCRIPT="+script)
	switch m {
	case Cgroup2, Freezer:
		ct := testContainer(t, m) // skips where m cannot be used
		t.Cleanup(func() {
			// What the server kept for reuse, or left: as its next
			// tasuki would.
			stale := &container{info: Containment{Mechanism: m, Path: ct.info.Path}}
			if _, err := stale.sweep(); err != nil {
				t.Errorf("sweep the fake server's cgroups: %v", err)
			}
		})
		env = append(env, CgroupRootEnv+"="+ct.info.Path)
	case Subreaper:
		env = append(env, CgroupRootEnv+"=none")
	default:
		t.Fatalf("no fake server for %s", m)
	}
	cmd := exec.Command(exe)
	cmd.Env = env
	p := &fakeServerProc{t: t, cmd: cmd, lines: make(chan string, 64)}
	cmd.Stderr = &p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("fake server's stderr:\n%s", p.stderr.String())
		}
	})
	line := p.next("companion ", 10*time.Second)
	if p.companion, err = strconv.Atoi(strings.TrimPrefix(line, "companion ")); err != nil {
		t.Fatalf("fake server said %q", line)
	}
	return p
}

// next returns the fake server's next line, which must start with prefix.
func (p *fakeServerProc) next(prefix string, within time.Duration) string {
	p.t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			p.t.Fatalf("the fake server ended before saying %q\n%s", prefix, p.stderr.String())
		}
		if !strings.HasPrefix(line, prefix) {
			p.t.Fatalf("the fake server said %q, want %q...\n%s", line, prefix, p.stderr.String())
		}
		return line
	case <-time.After(within):
		p.t.Fatalf("the fake server did not say %q within %s\n%s", prefix, within, p.stderr.String())
	}
	return ""
}

// results reads n "result" lines, by attempt.
func (p *fakeServerProc) results(n int, within time.Duration) map[int]string {
	p.t.Helper()
	out := map[int]string{}
	for range n {
		line := p.next("result ", within)
		f := strings.SplitN(line, " ", 3)
		i, _ := strconv.Atoi(f[1])
		out[i] = f[2]
	}
	return out
}

// closeAndWait closes the fake server's stdin: it waits for its attempts,
// closes the watchdog, and exits with status 0.
func (p *fakeServerProc) closeAndWait() {
	p.t.Helper()
	p.stdin.Close()
	p.next("closed", 30*time.Second)
	if err := p.cmd.Wait(); err != nil {
		p.t.Fatalf("the fake server exited with %v\n%s", err, p.stderr.String())
	}
}

// attemptScript is what each attempt of the kill tests runs: a child in the
// attempt's group and one that left it (setsid), which it reports, with its
// own pid, in the FIFO fifo.I; then it waits for them.
func attemptScript(dir string) string {
	return `setsid sleep 1011 & e=$!; sleep 1012 & echo $$ $! $e > "` + dir + `/fifo.$I"; wait`
}

// attemptPids reads the pids each of n attempts reported in its FIFO.
func attemptPids(t *testing.T, dir string, n int) []int {
	t.Helper()
	var pids []int
	for i := range n {
		fifo := filepath.Join(dir, "fifo."+strconv.Itoa(i))
		got := make(chan []byte, 1)
		go func() {
			b, _ := os.ReadFile(fifo)
			got <- b
		}()
		var b []byte
		select {
		case b = <-got:
		case <-time.After(30 * time.Second):
			if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				f.Close()
			}
			<-got
			t.Fatalf("attempt %d did not report its pids within 30s", i)
		}
		for f := range strings.FieldsSeq(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("attempt %d reported %q", i, b)
			}
			pids = append(pids, pid)
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
		}
	}
	if len(pids) != 3*n {
		t.Fatalf("attempts reported pids %v, want three each", pids)
	}
	return pids
}

// makeFifos makes the FIFOs of n attempts in dir.
func makeFifos(t *testing.T, dir string, n int) {
	t.Helper()
	for i := range n {
		if err := syscall.Mkfifo(filepath.Join(dir, "fifo."+strconv.Itoa(i)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// awaitGone waits, on the processes' exits (pidfds), until none of pids
// is alive, or fails the test at deadline.
func awaitGone(t *testing.T, pids []int, deadline time.Time, what string) {
	t.Helper()
	for {
		var left []int
		for _, pid := range pids {
			if alive(pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return
		}
		if !time.Now().Before(deadline) {
			t.Fatalf("%s: processes %v still alive", what, left)
		}
		if !awaitExit(left, deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestWatchdogEndsAttemptsOfFrozenProcess: a process running attempts
// stops sending keepalives (SIGSTOP); within the timeout (plus a margin for
// a loaded machine) every process of its attempts is gone, those that left
// the group included, and the companion says why. Woken up, the process
// finds its attempts killed by the watchdog, not timed out, not failed by
// the task; the companion sees keepalives again, and the process closes it.
func TestWatchdogEndsAttemptsOfFrozenProcess(t *testing.T) {
	const timeout = time.Second
	for _, m := range []Mechanism{Cgroup2, Freezer, Subreaper} {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			makeFifos(t, dir, 2)
			p := startFakeServer(t, m, timeout, 2, attemptScript(dir))
			pids := attemptPids(t, dir, 2)
			if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			stopped := time.Now()
			t.Cleanup(func() { _ = p.cmd.Process.Signal(syscall.SIGCONT) })
			awaitGone(t, pids, stopped.Add(timeout+5*time.Second), "after the process froze")
			t.Logf("attempts gone %s after SIGSTOP (timeout %s)", time.Since(stopped).Round(time.Millisecond), timeout)
			if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			for i, r := range p.results(2, 30*time.Second) {
				if r != "watchdog=true signal=SIGKILL exit=-1 timedout=false cancelled=false" {
					t.Errorf("attempt %d: %s, want killed by the watchdog", i, r)
				}
			}
			p.closeAndWait()
			if alive(p.companion) {
				t.Errorf("the companion %d outlived the watchdog's Close", p.companion)
			}
			log := p.stderr.String()
			// (It may not have been told of an attempt that started in the
			// instant before the freeze: the cgroups, or the process's
			// descendants, still show its processes.)
			if !strings.Contains(log, "tasuki watchdog: tasuki process "+strconv.Itoa(p.cmd.Process.Pid)+" sent no keepalive for") ||
				!strings.Contains(log, " running attempts") || !strings.Contains(log, "answers again") {
				t.Errorf("the companion's stderr does not say what it did and why:\n%s", log)
			}
		})
	}
}

// TestWatchdogEndsAttemptsOfDeadProcess: the process dies (SIGKILL), its
// pipe closes: the companion ends what is left of its attempts (their main
// processes die of Pdeathsig; their children, in the group or out of it,
// of the companion) and exits.
func TestWatchdogEndsAttemptsOfDeadProcess(t *testing.T) {
	for _, m := range []Mechanism{Cgroup2, Freezer, Subreaper} {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			makeFifos(t, dir, 2)
			// A timeout the test does not reach: the pipe's end does it.
			p := startFakeServer(t, m, time.Hour, 2, attemptScript(dir))
			pids := attemptPids(t, dir, 2)
			if err := p.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			awaitGone(t, pids, time.Now().Add(10*time.Second), "after the process died")
			awaitGone(t, []int{p.companion}, time.Now().Add(10*time.Second), "the companion")
			// (It may not have been told of an attempt that started in the
			// instant before: the cgroups, or the subreaper's tags, still
			// show its processes.)
			if log := p.stderr.String(); !strings.Contains(log, "is gone: killed what was left of its running attempts") {
				t.Errorf("the companion's stderr does not say what it did:\n%s", log)
			}
		})
	}
}

// TestWatchdogLeavesLiveProcessAlone: while keepalives come, attempts
// longer than the timeout run to their end.
func TestWatchdogLeavesLiveProcessAlone(t *testing.T) {
	const timeout = 2 * time.Second
	t.Parallel()
	p := startFakeServer(t, Cgroup2, timeout, 2, "sleep 5")
	for i, r := range p.results(2, 30*time.Second) {
		if r != "watchdog=false signal= exit=0 timedout=false cancelled=false" {
			t.Errorf("attempt %d: %s, want exit 0", i, r)
		}
	}
	p.closeAndWait()
	if log := p.stderr.String(); strings.Contains(log, "tasuki watchdog") {
		t.Errorf("the companion acted on a live process:\n%s", log)
	}
}

// TestWatchdogRunByHand: 'tasuki watchdog' without the pipe a server gives
// it says so, and watches nothing.
func TestWatchdogRunByHand(t *testing.T) {
	if err := ServeWatchdog(io.Discard); err == nil || !strings.Contains(err.Error(), "not by hand") {
		t.Errorf("ServeWatchdog without a pipe: %v", err)
	}
}

// TestWatchdogAttribution checks which ends of an attempt Run gives to the
// watchdog: a SIGKILL after it fired; not one after a firing before the
// attempt started, nor an exit status after a firing.
func TestWatchdogAttribution(t *testing.T) {
	ct := testContainer(t, ProcessGroup)
	w := startTestWatchdog(t, ct, time.Hour)
	// The test plays the companion's firing, on a stamp of its own (the
	// shared page is read-only here).
	w.mu.Lock()
	w.stamp = new(int64)
	w.mu.Unlock()
	fire := func() { atomic.StoreInt64(w.stamp, monotonic()) }
	fire()
	if res := runIn(t.Context(), Command{Script: "kill -9 $$", Env: testEnv}, ct); res.Watchdog || res.Signal != "SIGKILL" {
		t.Errorf("killed after a firing before it started: %+v", res)
	}
	res := runIn(t.Context(), Command{Script: `read x; kill -9 $$`, Env: testEnv, Stdin: firing{fire}}, ct)
	if !res.Watchdog || res.Signal != "SIGKILL" || res.OK() || !strings.Contains(res.Err().Error(), "watchdog") {
		t.Errorf("killed after a firing: %+v", res)
	}
	if res := runIn(t.Context(), Command{Script: `read x; exit 3`, Env: testEnv, Stdin: firing{fire}}, ct); res.Watchdog || res.ExitCode != 3 {
		t.Errorf("exit after a firing: %+v", res)
	}
}

// TestWatchdogFirst: a SIGKILL is the watchdog's when it fired before
// tasuki stopped the attempt, or tasuki did not.
func TestWatchdogFirst(t *testing.T) {
	t0 := time.Now()
	for _, c := range []struct {
		name     string
		signaled bool
		stopped  time.Time
		want     bool
	}{
		{"killed, not stopped", true, time.Time{}, true},
		{"killed, stopped after the firing (as it woke up)", true, t0.Add(time.Second), true},
		{"killed, stopped before the firing (a timeout's grace)", true, t0.Add(-time.Second), false},
		{"exited", false, time.Time{}, false},
	} {
		if got := watchdogFirst(c.signaled, t0, c.stopped); got != c.want {
			t.Errorf("%s: %t, want %t", c.name, got, c.want)
		}
	}
}

// firing is a Stdin that fires the watchdog, then gives the attempt a line.
type firing struct{ fire func() }

func (f firing) Read(p []byte) (int, error) {
	f.fire()
	return copy(p, "go\n"), io.EOF
}

// startTestWatchdog starts a watchdog for the container ct, its companion
// being the test binary, and maps the shared page writable so the test can
// play the companion's firing.
func startTestWatchdog(tb testing.TB, ct *container, timeout time.Duration) *Watchdog {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	w, err := startWatchdog(ct, WatchdogConfig{Path: exe, Args: []string{"tasuki-test-watchdog"}, Env: roleEnv("companion"), Timeout: timeout,
		Stderr: io.Discard, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := w.Close(); err != nil {
			tb.Error(err)
		}
	})
	return w
}

// BenchmarkWatchdog is the cost of the watchdog for an attempt of `true`
// in the process-group containment: off, and on (a companion told of each
// attempt's group as it starts and ends), where it also reports the CPU
// time the companion spent per attempt (companion-ns/op), on another core.
func BenchmarkWatchdog(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
			ct := testContainer(b, ProcessGroup)
			var w *Watchdog
			if on {
				w = startTestWatchdog(b, ct, time.Hour)
			}
			cmd := Command{Argv: []string{"true"}, Env: testEnv}
			for b.Loop() {
				if res := runIn(b.Context(), cmd, ct); !res.OK() {
					b.Fatal(res.Err())
				}
			}
			if w != nil {
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
				ru := w.cmd.ProcessState.SysUsage().(*syscall.Rusage)
				cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "companion-ns/op")
			}
		})
	}
}

// BenchmarkWatchdogHooks is what Run adds per attempt with a watchdog: the
// two messages to the companion and the look at the shared page. Every
// thousand rounds it waits, off the clock, for the companion to have read
// the pipe: a loop of nothing but messages outruns it, which attempts
// (a millisecond each at the least) never do, and a write to a full pipe
// fails at once, which would flatter the numbers.
func BenchmarkWatchdogHooks(b *testing.B) {
	w := startTestWatchdog(b, testContainer(b, ProcessGroup), time.Hour)
	start := time.Now()
	n := 0
	for b.Loop() {
		w.started(123456)
		w.ended(123456)
		if _, ok := w.firedSince(start); ok {
			b.Fatal("fired")
		}
		if n++; n%1000 == 0 {
			b.StopTimer()
			for {
				queued, err := unix.IoctlGetInt(w.fd, unix.TIOCINQ) // FIONREAD
				if err != nil || queued == 0 {
					break
				}
				time.Sleep(100 * time.Microsecond)
			}
			b.StartTimer()
		}
	}
	if w.complained.Load() {
		b.Error("a message found the pipe full")
	}
}

// TestWatchdogForgetsReusedGroup: a group the companion was told of whose
// leader's id now belongs to a process started since (the message that it
// ended was lost) is not killed; one whose leader is the process told of
// is.
func TestWatchdogForgetsReusedGroup(t *testing.T) {
	before := bootTime()
	cmd := exec.Command("sleep", "1014")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if started, ok := startedAt(pid); !ok || started < before-int64(time.Second)/userHZ || started > bootTime() {
		t.Fatalf("startedAt(%d) = %d, %t; want between %d and now", pid, started, ok, before)
	}
	c := &companion{groups: map[int]int64{pid: before - int64(time.Hour)}}
	if n := c.killGroups(); n != 0 || len(c.groups) != 0 || !alive(pid) {
		t.Fatalf("a group told of an hour before its leader started: killed %d, left %v, alive %t", n, c.groups, alive(pid))
	}
	c.groups[pid] = bootTime()
	if n := c.killGroups(); n != 1 {
		t.Fatalf("the group told of: killed %d", n)
	}
	_ = cmd.Wait()
}

package shell

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// runIn runs c as Run does, in the containment ct.
func runIn(ctx context.Context, c Command, ct *container) Result {
	e := Executor{ct: ct}
	defer e.Close()
	return e.Run(ctx, c)
}

// testContainer sets up mechanism m for one test, under a cgroup directory
// of the test's own where m uses cgroups, or skips the test if this system
// does not allow it.
func testContainer(t testing.TB, m Mechanism) *container {
	t.Helper()
	switch m {
	case Cgroup2, Freezer:
		v2, v1, err := ownCgroups()
		if err != nil {
			t.Skipf("%s: %v", m, err)
		}
		base := v2
		if m == Freezer {
			base = v1
		}
		if base == "" {
			t.Skipf("%s: no such hierarchy here", m)
		}
		dir := filepath.Join(base, "tasuki-test-"+strconv.Itoa(os.Getpid())+"-"+strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Skipf("%s: cannot make a cgroup: %v", m, err)
		}
		var c *container
		t.Cleanup(func() {
			if c != nil {
				if err := c.pool.drain(); err != nil {
					t.Errorf("drain the pool: %v", err)
				}
			}
			if err := os.Remove(dir); err != nil {
				t.Errorf("test cgroup not empty: %v", err)
			}
		})
		if m == Cgroup2 {
			c, err = newCgroup2(dir)
		} else {
			c, err = newFreezer(dir, "")
		}
		if err != nil {
			t.Skipf("%s: %v", m, err)
		}
		return c
	case Subreaper:
		restoreSubreaper(t)
		c, err := newSubreaper()
		if err != nil {
			t.Skipf("%s: %v", m, err)
		}
		return c
	}
	return &container{info: Containment{Mechanism: ProcessGroup}}
}

// restoreSubreaper puts the process's child-subreaper flag back as it is
// now when the test ends: the tests' own Run may depend on it.
func restoreSubreaper(t testing.TB) {
	t.Helper()
	var was int32
	if err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&was)), 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, uintptr(was), 0, 0, 0) })
}

// escapee writes a script to dir that a task starts with `setsid sh FILE &`:
// it leaves the task's session and group, starts a child of its own (which
// has its pid as process group), reports both pids in the FIFO, and waits.
// With term set, it ignores SIGTERM.
func escapee(t *testing.T, dir string, term bool) (script, fifo string) {
	t.Helper()
	fifo = filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	trap := `trap 'echo cleaned > "$DIR/cleaned"; exit 0' TERM`
	if term {
		trap = `trap '' TERM`
	}
	script = filepath.Join(dir, "escape.sh")
	body := trap + "\nsleep 1012 &\necho $$ $! > \"$DIR/fifo\"\nwait\n"
	if err := os.WriteFile(script, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return script, fifo
}

// readEscapees reads the pids an escapee reported.
func readEscapees(t *testing.T, out string) []int {
	t.Helper()
	var pids []int
	for f := range strings.FieldsSeq(out) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("escapee pids %q: %v", out, err)
		}
		pids = append(pids, pid)
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	}
	if len(pids) != 2 {
		t.Fatalf("escapee pids %q, want two", out)
	}
	return pids
}

var mechanisms = []Mechanism{Cgroup2, Freezer, Subreaper}

// TestEscapedProcessesEndWithAttempt is the case: a process that
// left the attempt's session (setsid) and holds its stdout. Every mechanism
// kills it, and its child, as soon as the main process exits, rather than
// leave it running and make Run wait out the grace period for the pipe.
func TestEscapedProcessesEndWithAttempt(t *testing.T) {
	for _, m := range mechanisms {
		t.Run(string(m), func(t *testing.T) {
			ct := testContainer(t, m)
			dir := t.TempDir()
			escapee(t, dir, true)
			var out syncBuffer
			start := time.Now()
			res := runIn(t.Context(), Command{
				// The FIFO is read only after the escapee has left and
				// reported its pids, so the main process ends after that.
				Script: `setsid sh "$DIR/escape.sh" & read pids < "$DIR/fifo"; echo "$pids"; echo bye`,
				Env:    append(slices.Clip(testEnv), "DIR="+dir),
				Grace:  10 * time.Second,
				Stdout: &out,
			}, ct)
			elapsed := time.Since(start)
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != 2 || lines[1] != "bye" {
				t.Fatalf("stdout %q", out.String())
			}
			pids := readEscapees(t, lines[0])
			if !res.OK() {
				t.Errorf("result %+v", res)
			}
			if elapsed > 3*time.Second {
				t.Errorf("Run took %v; the escaped process was not killed at once", elapsed)
			}
			for _, pid := range pids {
				if alive(pid) {
					t.Errorf("escaped process %d survived the attempt", pid)
				}
			}
			assertNoCages(t, ct)
		})
	}
}

// TestProcessGroupAloneLetsEscapeesLive documents what the other mechanisms
// fix: with the process group only, the escapee survives, holds stdout, and
// Run returns only when Grace has passed.
func TestProcessGroupAloneLetsEscapeesLive(t *testing.T) {
	ct := testContainer(t, ProcessGroup)
	dir := t.TempDir()
	escapee(t, dir, true)
	const grace = 300 * time.Millisecond
	var out syncBuffer
	start := time.Now()
	res := runIn(t.Context(), Command{
		Script: `setsid sh "$DIR/escape.sh" & read pids < "$DIR/fifo"; echo "$pids"`,
		Env:    append(slices.Clip(testEnv), "DIR="+dir),
		Grace:  grace,
		Stdout: &out,
	}, ct)
	elapsed := time.Since(start)
	pids := readEscapees(t, out.String())
	if !res.OK() || elapsed < grace {
		t.Errorf("result %+v after %v, want OK after the grace period", res, elapsed)
	}
	if !alive(pids[0]) {
		t.Errorf("escapee %d died; this test documents that it does not", pids[0])
	}
}

// TestStopReachesEscapedProcesses checks that a timeout or a cancel stops
// escaped processes too: they get SIGTERM (and can clean up) like the
// process group, and SIGKILL when they ignore it and the grace period ends.
func TestStopReachesEscapedProcesses(t *testing.T) {
	for _, m := range mechanisms {
		for _, tc := range []struct {
			name   string
			ignore bool // the escapee ignores SIGTERM
			cancel bool // cancel ctx rather than time out
		}{
			{"timeout cleans up", false, false},
			{"cancel ignores TERM", true, true},
		} {
			t.Run(string(m)+"/"+tc.name, func(t *testing.T) {
				ct := testContainer(t, m)
				dir := t.TempDir()
				escapee(t, dir, tc.ignore)
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				ready := newMarkerWriter("ready\n")
				cmd := Command{
					Script: `setsid sh "$DIR/escape.sh" & read pids < "$DIR/fifo"; echo "$pids"; echo ready; exec sleep 100`,
					Env:    append(slices.Clip(testEnv), "DIR="+dir),
					Grace:  time.Minute,
					Stdout: ready,
				}
				if tc.ignore {
					cmd.Grace = 300 * time.Millisecond
				}
				if tc.cancel {
					go func() {
						select {
						case <-ready.ch:
							cancel()
						case <-ctx.Done():
						}
					}()
				} else {
					cmd.Timeout = 500 * time.Millisecond
				}
				start := time.Now()
				res := runIn(ctx, cmd, ct)
				elapsed := time.Since(start)
				if !ready.seen() {
					t.Fatalf("never ready: %+v", res)
				}
				ready.mu.Lock()
				first, _, _ := strings.Cut(ready.buf.String(), "\n")
				ready.mu.Unlock()
				pids := readEscapees(t, first)
				if res.TimedOut == tc.cancel || res.Cancelled != tc.cancel {
					t.Errorf("TimedOut %v Cancelled %v", res.TimedOut, res.Cancelled)
				}
				if tc.ignore {
					if elapsed < cmd.Grace || elapsed > cmd.Grace+3*time.Second {
						t.Errorf("Run took %v, want about the grace period %v", elapsed, cmd.Grace)
					}
				} else {
					if elapsed > 10*time.Second {
						t.Errorf("Run took %v; it should not wait out the grace period", elapsed)
					}
					if b, err := os.ReadFile(filepath.Join(dir, "cleaned")); err != nil || string(b) != "cleaned\n" {
						t.Errorf("escapee did not clean up on SIGTERM: %q, %v", b, err)
					}
				}
				for _, pid := range pids {
					if alive(pid) {
						t.Errorf("escaped process %d survived the stop", pid)
					}
				}
				assertNoCages(t, ct)
			})
		}
	}
}

// TestConcurrentAttemptsKeepTheirEscapees runs two attempts that each leave
// an escapee behind while they run. When the first ends, only its escapee
// is ended; the second's lives until the second ends. This is what the
// subreaper's attribution by tag is for; cgroups have it by construction.
func TestConcurrentAttemptsKeepTheirEscapees(t *testing.T) {
	for _, m := range mechanisms {
		t.Run(string(m), func(t *testing.T) {
			ct := testContainer(t, m)
			var pids [2][]int
			dirs := [2]string{t.TempDir(), t.TempDir()}
			release := filepath.Join(dirs[1], "release")
			if err := syscall.Mkfifo(release, 0o600); err != nil {
				t.Fatal(err)
			}
			// Held open for reading and writing, the FIFO never blocks
			// the test, whatever became of the attempt that reads it.
			rel, err := os.OpenFile(release, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer rel.Close()
			for _, d := range dirs {
				escapee(t, d, false)
			}
			second := newMarkerWriter("ready\n")
			var res2 Result
			done := make(chan struct{})
			go func() {
				defer close(done)
				res2 = runIn(t.Context(), Command{
					Script: `setsid sh "$DIR/escape.sh" & read pids < "$DIR/fifo"; echo "$pids"; echo ready; read x < "$DIR/release"`,
					Env:    append(slices.Clip(testEnv), "DIR="+dirs[1]),
					Stdout: second,
				}, ct)
			}()
			select {
			case <-second.ch:
			case <-done:
				t.Fatalf("second attempt ended before it was ready: %+v", res2)
			}
			second.mu.Lock()
			line, _, _ := strings.Cut(second.buf.String(), "\n")
			second.mu.Unlock()
			pids[1] = readEscapees(t, line)

			var out syncBuffer
			res1 := runIn(t.Context(), Command{
				Script: `setsid sh "$DIR/escape.sh" & read pids < "$DIR/fifo"; echo "$pids"`,
				Env:    append(slices.Clip(testEnv), "DIR="+dirs[0]),
				Stdout: &out,
			}, ct)
			pids[0] = readEscapees(t, out.String())
			if !res1.OK() {
				t.Errorf("first: %+v", res1)
			}
			for _, pid := range pids[0] {
				if alive(pid) {
					t.Errorf("first attempt's escapee %d survived it", pid)
				}
			}
			for _, pid := range pids[1] {
				if !alive(pid) {
					t.Errorf("second attempt's escapee %d was killed when the first attempt ended", pid)
				}
			}
			// Let the second attempt end.
			if _, err := rel.WriteString("go\n"); err != nil {
				t.Fatal(err)
			}
			<-done
			if !res2.OK() {
				t.Errorf("second: %+v", res2)
			}
			for _, pid := range pids[1] {
				if alive(pid) {
					t.Errorf("second attempt's escapee %d survived it", pid)
				}
			}
			assertNoCages(t, ct)
		})
	}
}

func TestProbe(t *testing.T) {
	t.Run("cgroup2 root", func(t *testing.T) {
		ct := testContainer(t, Cgroup2)
		c := probe(ct.info.Path)
		if c.info.Mechanism != Cgroup2 || c.info.Path != ct.info.Path || c.info.Reason != "" {
			t.Errorf("probe(%s) = %v", ct.info.Path, c.info)
		}
	})
	t.Run("freezer root", func(t *testing.T) {
		ct := testContainer(t, Freezer)
		c := probe(ct.info.Path)
		if c.info.Mechanism != Freezer || c.info.Path != ct.info.Path {
			t.Errorf("probe(%s) = %v", ct.info.Path, c.info)
		}
	})
	t.Run("none", func(t *testing.T) {
		restoreSubreaper(t)
		c := probe("none")
		if c.info.Mechanism != Subreaper || c.info.Reason != CgroupRootEnv+"=none" {
			t.Errorf("probe(none) = %v", c.info)
		}
		var on int32
		if err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&on)), 0, 0, 0); err != nil || on != 1 {
			t.Errorf("not a subreaper: %d, %v", on, err)
		}
	})
	t.Run("not a cgroup", func(t *testing.T) {
		restoreSubreaper(t)
		dir := t.TempDir()
		c := probe(dir)
		if c.info.Mechanism != Subreaper || !strings.Contains(c.info.Reason, CgroupRootEnv+"="+dir+": not a cgroup directory") {
			t.Errorf("probe(%s) = %v", dir, c.info)
		}
		if s := c.info.String(); !strings.HasPrefix(s, "subreaper (") {
			t.Errorf("String() = %q", s)
		}
	})
	t.Run("current", func(t *testing.T) {
		c := CurrentContainment()
		if c.Mechanism == "" || c.String() == "" {
			t.Errorf("CurrentContainment() = %#v", c)
		}
		if c != CurrentContainment() {
			t.Error("CurrentContainment changed between calls")
		}
	})
}

func TestEnvTag(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"", ""},
		{"A=1\x00" + AttemptTagEnv + "=12-3\x00B=2\x00", "12-3"},
		{AttemptTagEnv + "=7-1\x00", "7-1"},
		{"X" + AttemptTagEnv + "=7-1\x00", ""},
		{"A=1\x00" + AttemptTagEnv + "=9-9", "9-9"},
	} {
		if got := envTag([]byte(tc.env)); got != tc.want {
			t.Errorf("envTag(%q) = %q, want %q", tc.env, got, tc.want)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/sys/fs/with\040space\134x`); got != `/sys/fs/with space\x` {
		t.Errorf("got %q", got)
	}
}

// assertNoCages fails if an attempt's cgroup is left under ct's directory,
// other than empty ones kept for reuse.
func assertNoCages(t *testing.T, ct *container) {
	t.Helper()
	if ct.info.Path == "" {
		return
	}
	entries, err := os.ReadDir(ct.info.Path)
	if err != nil {
		t.Fatal(err)
	}
	ct.pool.mu.Lock()
	pooled := slices.Clone(ct.pool.free)
	ct.pool.mu.Unlock()
	for _, e := range entries {
		dir := filepath.Join(ct.info.Path, e.Name())
		if !e.IsDir() {
			continue
		}
		if !slices.Contains(pooled, dir) {
			t.Errorf("attempt cgroup %s left behind", e.Name())
			continue
		}
		if pids, err := readPids(filepath.Join(dir, "cgroup.procs")); err != nil || len(pids) > 0 {
			t.Errorf("pooled cgroup %s holds %v (%v)", e.Name(), pids, err)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// BenchmarkContainment is the cost of starting `true` under each mechanism;
// the cgroup ones add a mkdir and rmdir per attempt.
func BenchmarkContainment(b *testing.B) {
	for _, m := range append([]Mechanism{ProcessGroup}, mechanisms...) {
		b.Run(string(m), func(b *testing.B) {
			ct := testContainer(b, m)
			cmd := Command{Argv: []string{"true"}, Env: testEnv}
			for b.Loop() {
				if res := runIn(b.Context(), cmd, ct); !res.OK() {
					b.Fatal(res.Err())
				}
			}
		})
	}
}

// TestSweepStaleCages plays a tasuki process that was killed outright: its
// attempt's cgroup still holds a process. The next tasuki's sweep kills it
// and removes the cgroup, and leaves alone the cgroups of live processes
// and directories that are not attempts'.
func TestSweepStaleCages(t *testing.T) {
	for _, m := range []Mechanism{Cgroup2, Freezer} {
		t.Run(string(m), func(t *testing.T) {
			ct := testContainer(t, m)
			// A pid that no process has: one that has exited and been reaped.
			gone := exec.Command("true")
			if err := gone.Run(); err != nil {
				t.Fatal(err)
			}
			dead := gone.Process.Pid
			stale := filepath.Join(ct.info.Path, fmt.Sprintf("tasuki-%d-7", dead))
			empty := filepath.Join(ct.info.Path, fmt.Sprintf("tasuki-%d-8", dead))
			live := filepath.Join(ct.info.Path, "tasuki-1-1") // pid 1 is always alive
			other := filepath.Join(ct.info.Path, "tasuki-test-other")
			for _, d := range []string{stale, empty, live, other} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			t.Cleanup(func() {
				for _, d := range []string{live, other} {
					_ = os.Remove(d)
				}
			})
			left := exec.Command("sleep", "1012")
			if err := left.Start(); err != nil {
				t.Fatal(err)
			}
			defer left.Process.Kill()
			if err := writeFile(filepath.Join(stale, "cgroup.procs"), strconv.Itoa(left.Process.Pid)); err != nil {
				t.Fatal(err)
			}
			n, err := ct.sweep()
			if err != nil || n != 2 {
				_ = left.Process.Kill()
				t.Errorf("sweep = %d, %v; want 2 removed", n, err)
			}
			// The left-over process was killed; Wait reaps it.
			if err := left.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
				t.Errorf("left-over process: %v, want killed", err)
			}
			for _, d := range []string{stale, empty} {
				if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s: %v, want removed", d, err)
				}
			}
			for _, d := range []string{live, other} {
				if _, err := os.Stat(d); err != nil {
					t.Errorf("%s was touched: %v", d, err)
				}
			}
		})
	}
}

func TestCageOwner(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  int
		ok   bool
	}{
		{"tasuki-123-4", 123, true},
		{"tasuki-123", 0, false},
		{"tasuki-test-123-4", 0, false},
		{"tasuki-0-1", 0, false},
		{"tasuki-12-x", 0, false},
		{"other-12-1", 0, false},
	} {
		if pid, ok := cageOwner(tc.name); pid != tc.pid || ok != tc.ok {
			t.Errorf("cageOwner(%q) = %d, %v; want %d, %v", tc.name, pid, ok, tc.pid, tc.ok)
		}
	}
}

// TestTryCloneInto checks the probe that clone3 into a cgroup works: with a
// descriptor of a cgroup it does, with one of a plain directory the kernel
// refuses it, and the probe says so.
func TestTryCloneInto(t *testing.T) {
	ct := testContainer(t, Cgroup2)
	for _, tc := range []struct {
		dir string
		ok  bool
	}{{ct.info.Path, true}, {t.TempDir(), false}} {
		fd, err := unix.Open(tc.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = tryCloneInto(fd)
		unix.Close(fd)
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), "CLONE_INTO_CGROUP")) {
			t.Errorf("tryCloneInto(%s) = %v, want ok %v", tc.dir, err, tc.ok)
		}
	}
}

// TestCgroupReuse checks that attempts reuse the empty cgroups of finished
// ones, and only empty ones: one whose process is stuck is not reused.
func TestCgroupReuse(t *testing.T) {
	for _, m := range []Mechanism{Cgroup2, Freezer} {
		t.Run(string(m), func(t *testing.T) {
			ct := testContainer(t, m)
			where := func() string {
				var out syncBuffer
				res := runIn(t.Context(), Command{Script: "cat /proc/self/cgroup", Env: testEnv, Stdout: &out}, ct)
				if !res.OK() {
					t.Fatalf("run: %+v", res)
				}
				for line := range strings.Lines(out.String()) {
					f := strings.SplitN(strings.TrimSpace(line), ":", 3)
					if len(f) == 3 && ((m == Cgroup2 && f[0] == "0") || (m == Freezer && hasOption(f[1], "freezer"))) {
						return f[2]
					}
				}
				t.Fatalf("no cgroup in %q", out.String())
				return ""
			}
			first, second := where(), where()
			if first != second || !strings.Contains(first, "/tasuki-") {
				t.Errorf("attempts ran in %s then %s, want the same attempt cgroup", first, second)
			}
			// An attempt that leaves a process behind has its cgroup
			// killed; the next attempt runs (in a new cgroup v2: see
			// cgroup2Cage.killed).
			if res := runIn(t.Context(), Command{Script: "sleep 1012 &", Env: testEnv}, ct); !res.OK() {
				t.Fatalf("run: %+v", res)
			}
			if third := where(); m == Cgroup2 && third == first {
				t.Errorf("the next attempt reused the cgroup %s of a killed one", third)
			}
			ct.pool.mu.Lock()
			n := len(ct.pool.free)
			ct.pool.mu.Unlock()
			if n != 1 {
				t.Errorf("%d cgroups pooled, want 1", n)
			}
			assertNoCages(t, ct)
		})
	}
}

// TestEscapeeWithoutEnvironmentEnds is an escapee that also clears its
// environment (env -i), so the subreaper cannot read its tag: it is still
// ended with the attempt, as the only attempt running.
func TestEscapeeWithoutEnvironmentEnds(t *testing.T) {
	for _, m := range mechanisms {
		t.Run(string(m), func(t *testing.T) {
			ct := testContainer(t, m)
			dir := t.TempDir()
			fifo := filepath.Join(dir, "fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			var out syncBuffer
			res := runIn(t.Context(), Command{
				// The escapee reports its pid and holds nothing open.
				Script: `setsid env -i /bin/sh -c 'echo $$ > "$0"; exec sleep 1012' "$DIR/fifo" </dev/null >/dev/null 2>&1 & read pid < "$DIR/fifo"; echo "$pid"`,
				Env:    append(slices.Clip(testEnv), "DIR="+dir),
				Stdout: &out,
			}, ct)
			pid, err := strconv.Atoi(strings.TrimSpace(out.String()))
			if err != nil {
				t.Fatalf("escapee pid %q: %v", out.String(), err)
			}
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
			if !res.OK() {
				t.Errorf("result %+v", res)
			}
			if alive(pid) {
				t.Errorf("escapee %d with a cleared environment survived the attempt", pid)
			}
			assertNoCages(t, ct)
		})
	}
}

// TestCgroupEmptyRemembered: a cgroup v2 cage found empty after its main
// process started is not read again (the flag that saves two reads of
// cgroup.events per attempt), but one found empty before the start says
// nothing: what the attempt leaves behind is still found and killed.
func TestCgroupEmptyRemembered(t *testing.T) {
	ct := testContainer(t, Cgroup2)
	cg, err := ct.open()
	if err != nil {
		t.Fatal(err)
	}
	g := cg.(*cgroup2Cage)
	if !g.wait(0, time.Time{}) || g.empty.Load() {
		t.Fatalf("before the start: wait %v, empty remembered %v; want empty, not remembered", g.wait(0, time.Time{}), g.empty.Load())
	}
	cmd := exec.Command("/bin/sh", "-c", "sleep 1013 & exit 0")
	cmd.Env = testEnv
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := g.start(cmd); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	awaitLeaderExit(pgid)
	if g.wait(pgid, time.Time{}) || g.empty.Load() {
		t.Fatal("the leftover sleep is in the cgroup, yet it was found empty")
	}
	g.kill(pgid)
	_ = cmd.Wait()
	if !g.wait(pgid, time.Now().Add(killWait)) {
		t.Fatal("the cgroup did not empty after the kill")
	}
	if !g.empty.Load() {
		t.Error("an empty cgroup after the start is not remembered as empty")
	}
	// Remembered: cgroup.events is not read again (a stand-in that says
	// populated would make wait answer false).
	dir := g.dir
	g.dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(g.dir, "cgroup.events"), []byte("populated 1\nfrozen 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if !g.wait(pgid, time.Time{}) {
		t.Error("wait read cgroup.events again")
	}
	g.dir = dir
	if err := g.close(pgid); err != nil {
		t.Errorf("close: %v", err)
	}
}

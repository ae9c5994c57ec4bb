package shell

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary act as a stand-in tasuki process for
// TestParentDeathKillsChild.
const helperEnv = "TASUKI_SHELL_TEST_HELPER"

func TestMain(m *testing.M) {
	if code, ok := watchdogRole(); ok {
		os.Exit(code)
	}
	if fifo := os.Getenv(helperEnv); fifo != "" {
		// Run a child that reports its pid, then wait to be killed.
		res := Run(context.Background(), Command{Script: "echo $$ > " + fifo + "; exec sleep 100"})
		fmt.Fprintln(os.Stderr, "helper: child ended unexpectedly:", res)
		os.Exit(3)
	}
	goleak.VerifyTestMain(m)
}

// testEnv is a small, explicit environment, as the worker will pass.
var testEnv = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C"}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		name     string
		cmd      Command
		exit     int
		signal   string
		ok       bool
		errMatch string
	}{
		{"success", Command{Script: "exit 0"}, 0, "", true, ""},
		{"exit 3", Command{Script: "exit 3"}, 3, "", false, "exit status 3"},
		{"argv false", Command{Argv: []string{"false"}}, 1, "", false, "exit status 1"},
		{"argv with args", Command{Argv: []string{"sh", "-c", "exit $0", "7"}}, 7, "", false, "exit status 7"},
		{"killed", Command{Script: "kill -KILL $$"}, -1, "SIGKILL", false, "killed by SIGKILL"},
		{"other shell", Command{Shell: "sh", Script: "exit 4"}, 4, "", false, "exit status 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cmd.Env = testEnv
			res := Run(t.Context(), tt.cmd)
			if res.StartErr != nil {
				t.Fatalf("StartErr = %v", res.StartErr)
			}
			if res.ExitCode != tt.exit || res.Signal != tt.signal || res.OK() != tt.ok {
				t.Errorf("got exit %d signal %q ok %v, want %d %q %v", res.ExitCode, res.Signal, res.OK(), tt.exit, tt.signal, tt.ok)
			}
			if res.TimedOut || res.Cancelled {
				t.Errorf("TimedOut %v Cancelled %v, want neither", res.TimedOut, res.Cancelled)
			}
			if err := res.Err(); (err == nil) != tt.ok || (err != nil && err.Error() != tt.errMatch) {
				t.Errorf("Err() = %v, want %q", err, tt.errMatch)
			}
			if res.PID <= 0 || res.Duration <= 0 {
				t.Errorf("PID %d Duration %v, want both positive", res.PID, res.Duration)
			}
		})
	}
}

func TestStdoutStderrSeparate(t *testing.T) {
	var out, errb bytes.Buffer
	res := Run(t.Context(), Command{
		Script: "echo one; echo two >&2; echo three",
		Env:    testEnv,
		Stdout: &out, Stderr: &errb,
	})
	if !res.OK() {
		t.Fatalf("run: %v", res.Err())
	}
	if out.String() != "one\nthree\n" || errb.String() != "two\n" {
		t.Errorf("stdout %q stderr %q", out.String(), errb.String())
	}
}

func TestEnvDirAndPath(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// A program only on the task's PATH, not on tasuki's.
	if err := os.WriteFile(filepath.Join(bin, "tasuki-test-tool"), []byte("#!/bin/sh\necho \"tool $FOO $(pwd)\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=/usr/bin:/bin", "FOO=ignored", "FOO=bar", "PATH=relative:" + bin + ":/usr/bin:/bin"}

	var out bytes.Buffer
	res := Run(t.Context(), Command{Argv: []string{"tasuki-test-tool"}, Env: env, Dir: work, Stdout: &out})
	if !res.OK() {
		t.Fatalf("run: %v", res.Err())
	}
	if want := "tool bar " + work + "\n"; out.String() != want {
		t.Errorf("argv: stdout %q, want %q", out.String(), want)
	}

	out.Reset()
	res = Run(t.Context(), Command{Script: `echo "$FOO"; pwd; echo "${HOME-unset}"`, Env: env, Dir: work, Stdout: &out})
	if !res.OK() {
		t.Fatalf("script: %v", res.Err())
	}
	if want := "bar\n" + work + "\nunset\n"; out.String() != want {
		t.Errorf("script: stdout %q, want %q", out.String(), want)
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cmd  Command
		want string // exact error, or prefix when it ends with "…"
	}{
		{"missing binary", Command{Argv: []string{"nosuchbinary"}}, `start "nosuchbinary": executable file not found in $PATH`},
		{"missing absolute", Command{Argv: []string{"/nonexistent/tool"}}, `start "/nonexistent/tool": stat /nonexistent/tool: no such file or directory`},
		{"not executable", Command{Argv: []string{notExec}}, `start "` + notExec + `": permission denied`},
		{"missing shell", Command{Shell: "nosuchshell", Script: "true"}, `start "nosuchshell": executable file not found in $PATH`},
		{"missing dir", Command{Script: "true", Dir: filepath.Join(dir, "nope")}, `start "/bin/sh": working directory: stat ` + filepath.Join(dir, "nope") + `: no such file or directory`},
		{"dir is a file", Command{Script: "true", Dir: notExec}, `start "/bin/sh": working directory ` + notExec + ` is not a directory`},
		{"nothing", Command{}, "start: command has neither a script nor argv"},
		{"both", Command{Script: "true", Argv: []string{"true"}}, "start: command has both a script and argv; set one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cmd.Env = testEnv
			res := Run(t.Context(), tt.cmd)
			if res.StartErr == nil {
				t.Fatalf("StartErr = nil, result %+v", res)
			}
			if res.StartErr.Error() != tt.want {
				t.Errorf("StartErr = %q\n                want %q", res.StartErr, tt.want)
			}
			if res.ExitCode != -1 || res.PID != 0 || res.OK() || res.Err() != res.StartErr {
				t.Errorf("result %+v, want exit -1, no pid, not OK", res)
			}
		})
	}
	if res := Run(t.Context(), Command{Argv: []string{"nosuchbinary"}, Env: testEnv}); !errors.Is(res.StartErr, exec.ErrNotFound) {
		t.Errorf("missing binary: %v does not wrap exec.ErrNotFound", res.StartErr)
	}
}

func TestTimeoutKillsWholeTree(t *testing.T) {
	ready := newMarkerWriter("ready\n")
	start := time.Now()
	res := Run(t.Context(), Command{
		Script:  "sleep 100 & sleep 100 & echo ready; wait",
		Env:     testEnv,
		Timeout: 500 * time.Millisecond,
		Grace:   5 * time.Second,
		Stdout:  ready,
	})
	elapsed := time.Since(start)
	if !ready.seen() {
		t.Fatalf("script never got ready: %+v", res)
	}
	if !res.TimedOut || res.Cancelled || res.OK() {
		t.Errorf("TimedOut %v Cancelled %v OK %v, want timed out only", res.TimedOut, res.Cancelled, res.OK())
	}
	if res.Signal != "SIGTERM" {
		t.Errorf("Signal = %q, want SIGTERM", res.Signal)
	}
	if !strings.HasPrefix(res.Err().Error(), "timed out after") {
		t.Errorf("Err() = %v", res.Err())
	}
	// Everything dies on SIGTERM, so the grace period is not used up.
	if elapsed > 3*time.Second {
		t.Errorf("Run took %v", elapsed)
	}
	assertGroupGone(t, res.PID)
}

func TestSIGTERMIgnoredThenKilled(t *testing.T) {
	const grace = 200 * time.Millisecond
	for _, how := range []string{"timeout", "cancel"} {
		t.Run(how, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			ready := newMarkerWriter("ready\n")
			cmd := Command{
				// The ignored disposition is inherited by sleep, and by the
				// background child, which also keeps stdout open.
				Script: "trap '' TERM; sleep 100 & echo ready; sleep 100",
				Env:    testEnv,
				Grace:  grace,
				Stdout: ready,
			}
			if how == "timeout" {
				cmd.Timeout = 300 * time.Millisecond
			} else {
				go func() {
					select {
					case <-ready.ch:
						cancel()
					case <-ctx.Done():
					}
				}()
			}
			start := time.Now()
			res := Run(ctx, cmd)
			elapsed := time.Since(start)
			if !ready.seen() {
				t.Fatalf("script never got ready: %+v", res)
			}
			if res.TimedOut != (how == "timeout") || res.Cancelled != (how == "cancel") {
				t.Errorf("TimedOut %v Cancelled %v", res.TimedOut, res.Cancelled)
			}
			if res.Signal != "SIGKILL" || res.ExitCode != -1 {
				t.Errorf("Signal %q exit %d, want SIGKILL -1", res.Signal, res.ExitCode)
			}
			if elapsed < grace || elapsed > grace+3*time.Second {
				t.Errorf("Run took %v, want about the grace period after the stop", elapsed)
			}
			assertGroupGone(t, res.PID)
		})
	}
}

func TestChildIgnoringSIGTERMOutlivesLeader(t *testing.T) {
	// The leader dies on SIGTERM at once; its child ignores SIGTERM and
	// holds stdout. It must be SIGKILLed when the grace period ends.
	const grace = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ready := newMarkerWriter("ready\n")
	go func() {
		select {
		case <-ready.ch:
			cancel()
		case <-ctx.Done():
		}
	}()
	start := time.Now()
	res := Run(ctx, Command{
		Script: "(trap '' TERM; echo ready; exec sleep 100) & wait",
		Env:    testEnv,
		Grace:  grace,
		Stdout: ready,
	})
	elapsed := time.Since(start)
	if !res.Cancelled || res.Signal != "SIGTERM" {
		t.Errorf("Cancelled %v Signal %q, want true SIGTERM", res.Cancelled, res.Signal)
	}
	if elapsed < grace || elapsed > grace+3*time.Second {
		t.Errorf("Run took %v, want about %v", elapsed, grace)
	}
	assertGroupGone(t, res.PID)
}

func TestGraceLetsChildrenCleanUp(t *testing.T) {
	// The leader dies on SIGTERM at once; its child traps SIGTERM to clean
	// up. It gets to finish, and Run returns as soon as it has, not at the
	// end of the grace period.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := newMarkerWriter("ready\n")
	go func() {
		select {
		case <-out.ch:
			cancel()
		case <-ctx.Done():
		}
	}()
	start := time.Now()
	res := Run(ctx, Command{
		Script: "(trap 'echo cleaned up; exit 0' TERM; echo ready; while :; do sleep 1; done) & wait",
		Env:    testEnv,
		Grace:  time.Minute,
		Stdout: out,
	})
	if !res.Cancelled {
		t.Errorf("result %+v, want cancelled", res)
	}
	out.mu.Lock()
	got := out.buf.String()
	out.mu.Unlock()
	if got != "ready\ncleaned up\n" {
		t.Errorf("stdout %q, want the child's clean-up output", got)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("Run took %v; it should not wait out the grace period", elapsed)
	}
	assertGroupGone(t, res.PID)
}

func TestLeftoverHoldingStdoutIsKilled(t *testing.T) {
	// A background job keeps stdout open after the script ends. It is
	// killed when the main process exits; Run does not wait out the grace.
	var out bytes.Buffer
	start := time.Now()
	res := Run(t.Context(), Command{
		Script: "sleep 100 & echo done",
		Env:    testEnv,
		Grace:  time.Minute,
		Stdout: &out,
	})
	elapsed := time.Since(start)
	if !res.OK() || out.String() != "done\n" {
		t.Errorf("result %+v stdout %q", res, out.String())
	}
	if elapsed > 10*time.Second {
		t.Errorf("Run took %v", elapsed)
	}
	assertGroupGone(t, res.PID)
}

func TestEscapedGrandchildHoldingStdoutDoesNotHang(t *testing.T) {
	// A grandchild in a session of its own escapes the group kill and holds
	// stdout open. With this system's containment it is killed when the
	// main process exits; with the process group alone, Run still returns,
	// Grace after the main process exited. (contain_test.go tests each
	// mechanism.)
	const grace = 300 * time.Millisecond
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	out := newMarkerWriter("\n")
	start := time.Now()
	res := Run(t.Context(), Command{
		// The main process ends only once the grandchild is in its own
		// session, which it reports through the FIFO.
		Script: `setsid sh -c 'echo $$; echo > "$FIFO"; exec sleep 100' & read x < "$FIFO"`,
		Env:    append(testEnv[:len(testEnv):len(testEnv)], "FIFO="+fifo),
		Grace:  grace,
		Stdout: out,
	})
	elapsed := time.Since(start)
	out.mu.Lock()
	pid, err := strconv.Atoi(strings.TrimSpace(out.buf.String()))
	out.mu.Unlock()
	if err != nil {
		t.Fatalf("grandchild pid: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if !res.OK() {
		t.Errorf("result %+v", res)
	}
	if CurrentContainment().Mechanism == ProcessGroup {
		if elapsed < grace || elapsed > grace+3*time.Second {
			t.Errorf("Run took %v, want about %v", elapsed, grace)
		}
		return
	}
	if elapsed > grace {
		t.Errorf("Run took %v; the escaped grandchild should be killed at once (%v)", elapsed, CurrentContainment())
	}
	if alive(pid) {
		t.Errorf("escaped grandchild %d survived the attempt (%v)", pid, CurrentContainment())
	}
}

func TestLeftoverIsKilled(t *testing.T) {
	var out bytes.Buffer
	res := Run(t.Context(), Command{
		Script: "sleep 100 >/dev/null 2>&1 & echo $!",
		Env:    testEnv,
		Grace:  time.Minute, // must not be waited for
		Stdout: &out,
	})
	if !res.OK() {
		t.Fatalf("run: %v", res.Err())
	}
	if res.Duration > 10*time.Second {
		t.Errorf("Run took %v", res.Duration)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("background pid %q: %v", out.String(), err)
	}
	assertGroupGone(t, res.PID)
	if alive(pid) {
		t.Errorf("background process %d survived", pid)
	}
}

func TestCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	res := Run(ctx, Command{Script: "echo should not run", Env: testEnv})
	if !res.Cancelled || res.StartErr != nil || res.PID != 0 || res.OK() {
		t.Errorf("result %+v, want cancelled without start", res)
	}
}

func TestParentDeathKillsChild(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "pid")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"="+fifo)
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	// Opening the FIFO blocks until the grandchild opens it to write its pid.
	f, err := os.Open(fifo)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(f).ReadString('\n')
	f.Close()
	if err != nil {
		t.Fatalf("read pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(pidfd)

	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	// The pidfd becomes readable when the process exits.
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 5000)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("child %d outlived its parent by 5s", pid)
		}
		return
	}
}

// markerWriter collects output and closes ch once it has seen marker.
type markerWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker string
	ch     chan struct{}
	closed bool
}

func newMarkerWriter(marker string) *markerWriter {
	return &markerWriter{marker: marker, ch: make(chan struct{})}
}

func (w *markerWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.closed && strings.Contains(w.buf.String(), w.marker) {
		w.closed = true
		close(w.ch)
	}
	return len(p), nil
}

func (w *markerWriter) seen() bool {
	select {
	case <-w.ch:
		return true
	default:
		return false
	}
}

// assertGroupGone fails unless every process of group pgid has exited soon.
// Killed processes need a moment to die and be reaped; there is no event to
// wait for that covers a whole group, so this polls with a deadline.
func assertGroupGone(t *testing.T, pgid int) {
	t.Helper()
	if pgid <= 0 {
		t.Fatalf("no process group (pgid %d)", pgid)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		members := groupMembers(t, pgid)
		if len(members) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range members {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Fatalf("processes %v of group %d are still alive", members, pgid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// groupMembers lists the live (not zombie) processes whose group is pgid.
func groupMembers(t *testing.T, pgid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		// Fields after the command name, which is in parentheses and may
		// contain spaces: state ppid pgrp ...
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 3 || fields[0] == "Z" || fields[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(fields[2]); g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

func BenchmarkRunTrue(b *testing.B) {
	cmd := Command{Argv: []string{"true"}, Env: testEnv}
	for b.Loop() {
		if res := Run(b.Context(), cmd); !res.OK() {
			b.Fatal(res.Err())
		}
	}
}

func BenchmarkRunShellTrue(b *testing.B) {
	cmd := Command{Script: "true", Env: testEnv}
	for b.Loop() {
		if res := Run(b.Context(), cmd); !res.OK() {
			b.Fatal(res.Err())
		}
	}
}

// BenchmarkRunTrueWithOutput adds the output pipes and copying goroutines a
// task with logs has.
func BenchmarkRunTrueWithOutput(b *testing.B) {
	var out, errb bytes.Buffer
	cmd := Command{Argv: []string{"true"}, Env: testEnv, Stdout: &out, Stderr: &errb}
	for b.Loop() {
		if res := Run(b.Context(), cmd); !res.OK() {
			b.Fatal(res.Err())
		}
	}
}

// BenchmarkExecTrueFloor is plain os/exec with nothing of Run's: the floor
// Run's overhead is measured against.
func BenchmarkExecTrueFloor(b *testing.B) {
	path, err := exec.LookPath("true")
	if err != nil {
		b.Skip(err)
	}
	for b.Loop() {
		if err := exec.Command(path).Run(); err != nil {
			b.Fatal(err)
		}
	}
}

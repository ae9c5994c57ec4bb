package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as the tasuki command, so tests can run,
// kill and restart real tasuki processes without building a separate binary.
func TestMain(m *testing.M) {
	if os.Getenv("TASUKI_TEST_AS_CLI") == "1" {
		os.Exit(Main(os.Args[1:], IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, "test"))
	}
	os.Exit(m.Run())
}

// tasuki returns a command running the CLI in a separate process.
func tasuki(t *testing.T, home string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, append([]string{"--home", home}, args...)...)
	cmd.Env = append(os.Environ(), "TASUKI_TEST_AS_CLI=1")
	return cmd
}

type result struct {
	code           int
	stdout, stderr string
}

// call runs the CLI in-process.
func call(args ...string) result {
	var out, errb bytes.Buffer
	code := Main(args, IO{In: strings.NewReader(""), Out: &out, Err: &errb}, "test")
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRunSucceedsAndLists(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	file := writeFile(t, dir, "p.yaml", `
name: hello
params: [{name: who, default: world}]
tasks:
  - {id: greet, run: 'echo "hello $TASUKI_PARAM_WHO"'}
  - {id: after, needs: [greet], run: "true"}
`)
	r := call("--home", home, "run", file, "--param", "who=tasuki")
	if r.code != 0 {
		t.Fatalf("run exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"greet", "succeeded", "run 1 of hello succeeded"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "▶ greet started") || !strings.Contains(r.stderr, "✓ greet succeeded in") {
		t.Errorf("progress lacks start/finish lines:\n%s", r.stderr)
	}
	r = call("--home", home, "runs", "-o", "json")
	var runs []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &runs); err != nil || len(runs) != 1 {
		t.Fatalf("runs -o json: %v\n%s", err, r.stdout)
	}
	if runs[0]["id"] != float64(1) || runs[0]["state"] != "succeeded" {
		t.Fatalf("runs[0] = %v", runs[0])
	}
	r = call("--home", home, "logs", "1", "greet")
	if r.code != 0 || !strings.Contains(r.stdout, "out hello tasuki") {
		t.Fatalf("logs: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = call("--home", home, "status", "1", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"state": "succeeded"`) || !strings.Contains(r.stdout, `"id": "greet"`) {
		t.Fatalf("status: %d %s %s", r.code, r.stdout, r.stderr)
	}
}

func TestExitStatusAndErrors(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	failing := writeFile(t, dir, "fail.yaml", "name: f\ntasks: [{id: a, run: 'exit 4'}]\n")
	typed := writeFile(t, dir, "typed.yaml", "name: t\nparams: [{name: n, type: int}]\ntasks: [{id: a, run: 'true'}]\n")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"failed run", []string{"run", failing}, 1, "failed"},
		{"bad param value", []string{"run", typed, "-p", "n=x"}, 2, `"n"`},
		{"malformed param flag", []string{"run", typed, "-p", "n"}, 2, "expected name=value"},
		{"missing file", []string{"run", filepath.Join(dir, "nope.yaml")}, 2, "nope.yaml"},
		{"unknown run", []string{"status", "99"}, 2, "no run 99"},
		{"bad run id", []string{"status", "abc"}, 2, "positive number"},
		{"bad output", []string{"runs", "-o", "xml"}, 2, "table or json"},
		{"resume unknown", []string{"resume", "42"}, 2, "no run 42"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := call(append([]string{"--home", home}, c.args...)...)
			if r.code != c.code || !strings.Contains(r.stdout+r.stderr, c.want) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s\n%s", r.code, c.code, c.want, r.stdout, r.stderr)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "good.yaml", "name: good\ntasks: [{id: a, run: 'true'}]\n")
	bad := writeFile(t, dir, "bad.yaml", "name: bad\ntasks:\n  - id: a\n    run: 'true'\n    neds: [b]\n")
	r := call("validate", dir)
	if r.code != 2 {
		t.Fatalf("exit %d, want 2\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, bad+":5:5:") || !strings.Contains(r.stdout, `did you mean "needs"`) {
		t.Fatalf("validate output:\n%s", r.stdout)
	}
	r = call("validate", filepath.Join(dir, "good.yaml"))
	if r.code != 0 {
		t.Fatalf("good file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestSchemaIsJSON(t *testing.T) {
	r := call("schema")
	var v map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil || v["$schema"] == nil {
		t.Fatalf("schema: %d %.200s", r.code, r.stdout)
	}
}

// TestKillAndResume kills a real tasuki process with SIGKILL in the middle of
// a run, then resumes it: the task that succeeded is not run again, the
// attempt that was running is recorded as lost and retried, and the process
// it left behind is killed.
func TestKillAndResume(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	fifo := filepath.Join(dir, "started")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	marks := filepath.Join(dir, "marks")
	file := writeFile(t, dir, "p.yaml", `
name: crash
env: {MARKS: `+marks+`, FIFO: `+fifo+`, CHILD: `+filepath.Join(dir, "child.pid")+`}
tasks:
  - {id: first, run: 'echo first >> "$MARKS"'}
  - id: slow
    needs: [first]
    retry: {attempts: 2, backoff: 10ms}
    run: |
      echo "slow $TASUKI_ATTEMPT" >> "$MARKS"
      if [ "$TASUKI_ATTEMPT" = 1 ]; then
        sleep 300 & echo $! > "$CHILD"
        echo started > "$FIFO"
        wait
      fi
`)
	cmd := tasuki(t, home, "run", file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(fifo); err != nil { // blocks until slow's first attempt runs
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("tasuki run did not die of SIGKILL: %v\n%s", err, stderr.String())
	}
	b, _ := os.ReadFile(filepath.Join(dir, "child.pid"))
	child, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if !alive(child) {
		t.Fatalf("test setup: the task's child %d should outlive the killed tasuki", child)
	}

	out, err := tasuki(t, home, "resume", "1").CombinedOutput()
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(marks); string(b) != "first\nslow 1\nslow 2\n" {
		t.Fatalf("side effects = %q: first must run once, slow twice", b)
	}
	waitGone(t, child)
	r := call("--home", home, "status", "1", "-o", "json")
	var v struct {
		State string
		Tasks []struct {
			ID      string
			State   string
			Attempt int
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatal(err)
	}
	if v.State != "succeeded" || v.Tasks[0].Attempt != 1 || v.Tasks[1].Attempt != 2 {
		t.Fatalf("after resume: %+v", v)
	}
	if !strings.Contains(string(out), "lost") {
		t.Errorf("resume output does not mention the lost attempt:\n%s", out)
	}
}

// TestInterruptCancels sends SIGINT (Ctrl-C) to a real tasuki process: the
// task's whole process group ends, the run is cancelled, the exit status is 130.
func TestInterruptCancels(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	fifo := filepath.Join(dir, "started")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	pids := filepath.Join(dir, "pids")
	file := writeFile(t, dir, "p.yaml", `
name: interrupt
env: {FIFO: `+fifo+`, PIDS: `+pids+`}
tasks:
  - id: long
    run: |
      sleep 300 & echo $! >> "$PIDS"
      sh -c 'trap "" TERM INT; sleep 300' & echo $! >> "$PIDS"
      echo started > "$FIFO"
      wait
`)
	cmd := tasuki(t, home, "run", file, "--grace", "300ms")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(fifo); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("exit = %v, want 130\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "cancelled") {
		t.Errorf("output:\n%s", out.String())
	}
	b, _ := os.ReadFile(pids)
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		if alive(pid) {
			t.Errorf("process %d outlived the cancelled run", pid)
		}
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// waitGone waits for a killed process to be reaped by its new parent.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for alive(pid) {
		select {
		case <-ctx.Done():
			t.Fatalf("process %d still alive", pid)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestRunPoolLimitsConcurrency runs four tasks of a pool of one slot with
// parallelism 4: each takes a lock directory that a concurrent one would
// find taken, so any overlap fails the run. A task of another pool that
// names no limit runs beside them.
func TestRunPoolLimitsConcurrency(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	lock := filepath.Join(dir, "lock")
	task := `{id: %s, pool: warehouse, run: 'mkdir "$LOCK" || exit 9; sleep 0.05; rmdir "$LOCK"'}`
	var tasks []string
	for _, id := range []string{"a", "b", "c", "d"} {
		tasks = append(tasks, "  - "+strings.ReplaceAll(task, "%s", id))
	}
	file := writeFile(t, dir, "p.yaml", "name: pooled\nenv: {LOCK: "+lock+"}\ntasks:\n"+strings.Join(tasks, "\n")+
		"\n  - {id: other, pool: gpu, priority: 5, run: 'true'}\n")
	r := call("--home", home, "run", file, "-j", "4", "--pool", "warehouse=1")
	if r.code != 0 {
		t.Fatalf("exit %d: tasks of a one-slot pool overlapped?\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	r = call("--home", home, "run", file, "--pool", "warehouse=x")
	if r.code != 2 || !strings.Contains(r.stderr, "name=slots") {
		t.Fatalf("bad --pool: exit %d %s", r.code, r.stderr)
	}
}

package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
)

// awaitText waits until buf holds want, or fails after 60s.
func awaitText(t *testing.T, buf *lockedBuffer, want string, done <-chan int) {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for !strings.Contains(buf.String(), want) {
		select {
		case <-buf.changed:
		case code := <-done:
			t.Fatalf("logs -f exited (%d) before printing %q; printed %q", code, want, buf.String())
		case <-timeout:
			t.Fatalf("%q never came; have %q", want, buf.String())
		}
	}
}

// setTask replaces a task of a run of the fake server.
func setTask(t *testing.T, s *testServer, runID int64, task api.Task) {
	t.Helper()
	r, err := s.fake.Run(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	for i := range r.Tasks {
		if r.Tasks[i].ID == task.ID {
			task.Index = r.Tasks[i].Index
			r.Tasks[i] = task
		}
	}
	s.fake.AddRun(r)
}

// writeLog writes a finished log of an attempt.
func writeLog(t *testing.T, s *testServer, key logs.Key, lines ...string) {
	t.Helper()
	w, err := s.logs.Create(context.Background(), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		fmt.Fprintln(w.Stdout(), l)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLogsFollowAcrossAttempts follows a task against a server while it is
// tried twice: the second attempt is printed from its first line after a
// boundary that says how the first ended, and following ends with the task.
func TestLogsFollowAcrossAttempts(t *testing.T) {
	s := newTestServer(t)
	now := time.Now()
	out := &lockedBuffer{changed: make(chan struct{}, 1)}
	var errb lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main([]string{"--server", s.url, "logs", "-f", "3", "greet"}, IO{In: strings.NewReader(""), Out: out, Err: &errb}, "test")
	}()
	k1 := logs.Key{RunID: 3, TaskID: "greet", Attempt: 1}
	w, err := s.logs.Create(context.Background(), k1, nil)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(w.Stdout(), "one 1")
	awaitText(t, out, "out one 1\n", done)
	fmt.Fprintln(w.Stdout(), "one 2")
	w.Close()
	// The server has not yet recorded how attempt 1 ended; then it was lost
	// and attempt 2 started, which writes its log, and the task succeeds.
	setTask(t, s, 3, api.Task{ID: "greet", State: engine.TaskRunning, Attempt: 2, Attempts: []api.Attempt{
		{Attempt: 1, StartedAt: now, FinishedAt: &now, Outcome: "lost", Message: "the server restarted"},
		{Attempt: 2, StartedAt: now}}})
	writeLog(t, s, logs.Key{RunID: 3, TaskID: "greet", Attempt: 2}, "two 1", "two 2")
	awaitText(t, out, "out two 2\n", done)
	setTask(t, s, 3, api.Task{ID: "greet", State: engine.TaskSucceeded, Attempt: 2})
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("logs -f did not end with the task")
	}
	got := stripStamps(out.String())
	want := "out one 1\nout one 2\n--- attempt 1 ended: lost: the server restarted ---\n--- attempt 2 ---\nout two 1\nout two 2\n"
	if got != want {
		t.Fatalf("followed:\n%s\nwant:\n%s", got, want)
	}
}

// stripStamps drops the time stamp of each log line.
func stripStamps(s string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(strings.TrimSuffix(s, "\n"), "\n") {
		if !strings.HasPrefix(line, "---") {
			_, line, _ = strings.Cut(line, " ")
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// TestLogsFollowWaitsForStart: following a task that has not started waits
// for it, saying so; one that will never run is reported and ends it.
func TestLogsFollowWaitsForStart(t *testing.T) {
	for _, tt := range []struct {
		name  string
		then  api.Task
		code  int
		check string // in stdout, or stderr when code != 0
	}{
		{"starts", api.Task{ID: "after", State: engine.TaskSucceeded, Attempt: 1}, 0, "out after ran\n"},
		{"never runs", api.Task{ID: "after", State: engine.TaskUpstreamFailed}, 1, `task "after" of run 3 will not run: it is upstream_failed`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t)
			var out lockedBuffer
			errb := &lockedBuffer{changed: make(chan struct{}, 1)}
			done := make(chan int, 1)
			go func() {
				done <- Main([]string{"--server", s.url, "logs", "-f", "3", "after"}, IO{In: strings.NewReader(""), Out: &out, Err: errb}, "test")
			}()
			awaitText(t, errb, "has not started yet (pending); waiting for it", done)
			if tt.then.Attempt > 0 {
				writeLog(t, s, logs.Key{RunID: 3, TaskID: "after", Attempt: 1}, "after ran")
			}
			setTask(t, s, 3, tt.then)
			var code int
			select {
			case code = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("logs -f did not end")
			}
			text := out.String()
			if tt.code != 0 {
				text = errb.String()
			}
			if code != tt.code || !strings.Contains(text, tt.check) {
				t.Fatalf("exit %d (want %d); stdout %q; stderr %q; want %q", code, tt.code, out.String(), errb.String(), tt.check)
			}
		})
	}
}

// TestLogsFollowLocalAcrossKill follows a task on the embedded store while
// `tasuki run` is killed with SIGKILL at line 4 of 30 and `tasuki resume`
// runs the task again: the follow says where attempt 1 ended and prints
// attempt 2 from its line 1, then ends with the task.
func TestLogsFollowLocalAcrossKill(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	fifo := filepath.Join(dir, "started")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, dir, "p.yaml", `
name: thirty
env: {FIFO: `+fifo+`}
tasks:
  - id: count
    run: |
      i=1
      while [ $i -le 30 ]; do
        echo "line $i"
        if [ $i = 4 ] && [ "$TASUKI_ATTEMPT" = 1 ]; then echo started > "$FIFO"; sleep 300; fi
        i=$((i+1))
      done
`)
	run := tasuki(t, home, "run", file)
	var runErr bytes.Buffer
	run.Stderr = &runErr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = run.Process.Kill(); _ = run.Wait() })
	if _, err := os.ReadFile(fifo); err != nil { // attempt 1 is at line 4
		t.Fatal(err)
	}
	out := &lockedBuffer{changed: make(chan struct{}, 1)}
	errb := lockedBuffer{changed: make(chan struct{}, 1)}
	done := make(chan int, 1)
	go func() {
		done <- Main([]string{"--home", home, "logs", "-f", "1", "count"}, IO{In: strings.NewReader(""), Out: out, Err: &errb}, "test")
	}()
	awaitText(t, out, "out line 4\n", done)
	if err := run.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := run.Wait(); !errors.As(err, &ee) {
		t.Fatalf("tasuki run: %v\n%s", err, runErr.String())
	}
	// Nothing records how attempt 1 ended until resume: the follower says
	// what it waits for.
	awaitText(t, &errb, "'tasuki resume 1' goes on with it", done)
	if b, err := tasuki(t, home, "resume", "1").CombinedOutput(); err != nil {
		t.Fatalf("resume: %v\n%s", err, b)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("logs -f did not end with the task; printed %q", out.String())
	}
	checkKillFollow(t, stripStamps(out.String()))
}

// checkKillFollow checks the output of following a 30-line task whose
// first attempt was lost at line 4.
func checkKillFollow(t *testing.T, got string) {
	t.Helper()
	var want strings.Builder
	for i := 1; i <= 4; i++ {
		fmt.Fprintf(&want, "out line %d\n", i)
	}
	want.WriteString("--- attempt 1 ended: lost")
	head, rest, ok := strings.Cut(got, " ---\n--- attempt 2 ---\n")
	if !ok || !strings.HasPrefix(head, want.String()) {
		t.Fatalf("followed:\n%s\nwant lines 1-4 of attempt 1, then a line saying it was lost, then attempt 2", got)
	}
	want.Reset()
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&want, "out line %d\n", i)
	}
	if rest != want.String() {
		t.Fatalf("attempt 2 printed as:\n%s\nwant lines 1 to 30", rest)
	}
}

package server_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/cli"
)

// followBuffer collects what `logs -f` prints and wakes a waiting test.
type followBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func (f *followBuffer) Write(p []byte) (int, error) {
	f.mu.Lock()
	n, err := f.b.Write(p)
	f.mu.Unlock()
	select {
	case f.changed <- struct{}{}:
	default:
	}
	return n, err
}

func (f *followBuffer) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.b.String()
}

// await waits until the buffer holds want.
func (f *followBuffer) await(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for !strings.Contains(f.String(), want) {
		select {
		case <-f.changed:
		case <-deadline:
			t.Fatalf("%q never came; have %q", want, f.String())
		}
	}
}

// TestProcessLogsFollowAcrossKill follows a 30-line task with `tasuki logs
// -f` against a server that is killed with SIGKILL while the task is at
// line 4, and restarted on the same address: the follower says on stderr
// that it lost the server, reconnects, prints a line saying that attempt 1
// was lost, and prints attempt 2 from its line 1 to its line 30.
func TestProcessLogsFollowAcrossKill(t *testing.T) {
	t.Parallel()
	home, dir, work := t.TempDir(), t.TempDir(), t.TempDir()
	fifo := mkfifo(t, work)
	child := filepath.Join(work, "child.pid")
	t.Cleanup(func() { killPidFile(child) })
	writeFile(t, dir, "thirty.yaml", fmt.Sprintf(`name: thirty
env: {FIFO: %q, CHILD: %q}
tasks:
  - id: count
    run: |
      i=1
      while [ $i -le 30 ]; do
        echo "line $i"
        if [ $i = 4 ] && [ "$TASUKI_ATTEMPT" = 1 ]; then
          sleep 300 & echo $! > "$CHILD"
          echo started > "$FIFO"
          wait
        fi
        i=$((i+1))
      done
`, fifo, child))
	// One address for both servers, so the follower finds the second.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s1 := startServer(t, home, dir, nil, "--addr", addr)
	run, err := s1.c.Trigger(context.Background(), "thirty", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	awaitFifo(t, fifo, s1, 30*time.Second)

	out := &followBuffer{changed: make(chan struct{}, 1)}
	errOut := &followBuffer{changed: make(chan struct{}, 1)}
	done := make(chan int, 1)
	go func() {
		args := []string{"--server", s1.url, "--home", filepath.Join(home, "cli-unused"), "--token", s1.token, "logs", "-f", fmt.Sprint(run.ID), "count"}
		done <- cli.Main(args, cli.IO{In: strings.NewReader(""), Out: out, Err: errOut}, "test")
	}()
	out.await(t, "out line 4\n", 30*time.Second)
	s1.kill9()
	errOut.await(t, "lost the server", 30*time.Second)
	s2 := startServer(t, home, dir, nil, "--addr", addr)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("logs -f: exit %d\nstderr:\n%s", code, errOut.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("logs -f did not end with the task; printed:\n%s\nstderr:\n%s", out.String(), errOut.String())
	}
	if !strings.Contains(errOut.String(), "reconnected") {
		t.Errorf("stderr does not say the follower reconnected:\n%s", errOut.String())
	}

	var got strings.Builder
	for line := range strings.SplitSeq(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if !strings.HasPrefix(line, "---") {
			_, line, _ = strings.Cut(line, " ") // the time stamp
		}
		got.WriteString(line + "\n")
	}
	var want strings.Builder
	for i := 1; i <= 4; i++ {
		fmt.Fprintf(&want, "out line %d\n", i)
	}
	head, rest, ok := strings.Cut(got.String(), " ---\n--- attempt 2 ---\n")
	if !ok || !strings.HasPrefix(head, want.String()+"--- attempt 1 ended: lost") {
		t.Fatalf("followed:\n%s\nwant lines 1-4 of attempt 1, a line saying it was lost, then attempt 2", got.String())
	}
	want.Reset()
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&want, "out line %d\n", i)
	}
	if rest != want.String() {
		t.Fatalf("attempt 2 printed as:\n%s\nwant its lines 1 to 30", rest)
	}
	s2.term(10 * time.Second)
}

// TestProcessLogLimit: a server started with TASUKI_LOG_LIMIT bounds the
// log of a task that prints far more, keeping its first and last lines
// with a line saying how many were dropped.
func TestProcessLogLimit(t *testing.T) {
	t.Parallel()
	home, dir := t.TempDir(), t.TempDir()
	writeFile(t, dir, "chatty.yaml", `name: chatty
tasks:
  - id: talk
    run: 'i=0; while [ $i -lt 20000 ]; do echo "line $i"; i=$((i+1)); done'
`)
	s := startServer(t, home, dir, []string{"TASUKI_LOG_LIMIT=64KiB"})
	run, err := s.c.Trigger(context.Background(), "chatty", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if r := waitRunEnd(t, s.c, run.ID); r.State != "succeeded" {
		t.Fatalf("run ended %s", r.State)
	}
	log := runLog(t, s.c, run.ID, "talk")
	if len(log) > 64<<10 {
		t.Fatalf("log of %d bytes, limit 64 KiB", len(log))
	}
	for _, want := range []string{" out line 0\n", " log log limit of 64 KiB reached", " lines (", "dropped here\n", " out line 19999\n"} {
		if !strings.Contains(log, want) {
			t.Fatalf("log lacks %q:\n%.2000s", want, log)
		}
	}
	s.term(10 * time.Second)
}

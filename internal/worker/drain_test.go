package worker

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// fifos makes named pipes in a temporary directory, by name.
func fifos(t *testing.T, names ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	out := map[string]string{}
	for _, n := range names {
		p := filepath.Join(dir, n)
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
		out[n] = p
	}
	out["LEDGER"] = filepath.Join(dir, "ledger")
	return out
}

// readFifo returns what a task writes to a FIFO; it blocks until the task
// has opened, written and closed it.
func readFifo(t *testing.T, path string) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		b, _ := os.ReadFile(path)
		got <- string(b)
	}()
	select {
	case s := <-got:
		return s
	case <-time.After(testTimeout):
		t.Fatalf("nothing was written to %s", path)
		return ""
	}
}

// writeFifo writes to a FIFO a task reads.
func writeFifo(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("go\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// signalled is a task line that records in the ledger any SIGTERM the
// attempt receives: a drain must send none.
const signalled = `trap 'echo term >> "$LEDGER"' TERM
`

// TestDrainReportsAttemptThatFinishedByItself drains a worker whose attempt
// finishes by itself within the grace: no signal reaches it meanwhile (a
// task that answered SIGTERM by exiting 0 would claim work it never did),
// and it is reported as what it was, succeeded.
func TestDrainReportsAttemptThatFinishedByItself(t *testing.T) {
	h := newHarness(t)
	w := h.worker()
	w.Grace, w.KillGrace = time.Minute, time.Minute
	f := fifos(t, "STARTED", "GO")
	l := shellLease("11.ledger.1", signalled+`echo started > "$STARTED"
cat "$GO" > /dev/null
echo done >> "$LEDGER"
`)
	l.Spec.Env = f
	h.fake.Add(l)
	h.start(t, w)
	readFifo(t, f["STARTED"])
	close(h.drain)
	h.wlog.await(t, "draining")
	writeFifo(t, f["GO"])
	c := h.completion(t, l.ID)
	if c.Outcome != api.OutcomeSucceeded || c.ExitCode == nil || *c.ExitCode != 0 {
		t.Errorf("completion %+v, want succeeded with exit code 0", c)
	}
	if b, _ := os.ReadFile(f["LEDGER"]); string(b) != "done\n" {
		t.Errorf("ledger %q, want only the attempt's own line (no SIGTERM during the grace)", b)
	}
	if err := h.wait(t); err != nil {
		t.Errorf("Run after drain: %v", err)
	}
}

// TestDrainKillsGroupBeforeReporting drains a worker whose attempt is still
// running when the grace ends, with a child that would write once released:
// the whole group is killed at once with SIGKILL (no SIGTERM it could answer,
// and no wait for the kill grace, which is longer than the test's patience),
// and only then is the attempt reported preempted. Nothing of it acts
// afterwards.
func TestDrainKillsGroupBeforeReporting(t *testing.T) {
	h := newHarness(t)
	w := h.worker()
	w.Grace, w.KillGrace = 50*time.Millisecond, 2*testTimeout
	f := fifos(t, "STARTED", "GO")
	l := shellLease("12.ledger.1", signalled+`(cat "$GO" > /dev/null; echo late >> "$LEDGER") &
echo "$!" > "$STARTED"
wait`)
	l.Spec.Env = f
	h.fake.Add(l)
	h.start(t, w)
	child, err := strconv.Atoi(strings.TrimSpace(readFifo(t, f["STARTED"])))
	if err != nil {
		t.Fatal(err)
	}
	close(h.drain)
	c := h.completion(t, l.ID)
	if c.Outcome != api.OutcomePreempted || !strings.Contains(c.Message, "handed back") {
		t.Errorf("completion %+v, want preempted", c)
	}
	// Reported: nothing of the group may run any more. No one reads GO.
	if alive(child) {
		t.Errorf("process %d of the attempt is alive after it was reported preempted", child)
	}
	if fd, err := syscall.Open(f["GO"], syscall.O_WRONLY|syscall.O_NONBLOCK, 0); !errors.Is(err, syscall.ENXIO) {
		if err == nil {
			syscall.Close(fd)
		}
		t.Errorf("open GO for writing: %v, want ENXIO (no reader left)", err)
	}
	if b, err := os.ReadFile(f["LEDGER"]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the attempt wrote its ledger (%q) after it was stopped: %v", b, err)
	}
	if err := h.wait(t); err != nil {
		t.Errorf("Run after drain: %v", err)
	}
}

// TestServerPreemptViaHeartbeat has the server hand a running lease back
// (it is shutting down): the worker ends it and reports it preempted, not
// cancelled, so it is not charged to the task's retries.
func TestServerPreemptViaHeartbeat(t *testing.T) {
	h := newHarness(t)
	l := shellLease("13.long.1", "echo started; exec sleep 60")
	h.fake.Add(l)
	h.start(t, h.worker())
	h.waitLog(t, l.ID, "out started")
	h.fake.Preempt(l.ID)
	c := h.completion(t, l.ID)
	if c.Outcome != api.OutcomePreempted || c.ExitCode == nil {
		t.Errorf("completion %+v, want preempted", c)
	}
	if err := h.stop(t); err != nil {
		t.Error(err)
	}
}

// alive reports whether process pid exists and has not exited (a zombie
// has exited).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	state := s[i+2]
	return state != 'Z' && state != 'X'
}

package worker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	attemptpkg "github.com/tasuki-dev/tasuki/internal/attempt"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds every wait of a test, so a bug fails it instead of
// hanging the suite.
const testTimeout = 30 * time.Second

// logBuffer captures a logger's output and lets a test wait for a line.
type logBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{})} }

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.changed)
	l.changed = make(chan struct{})
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// await waits until the log contains text.
func (l *logBuffer) await(t *testing.T, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for {
		l.mu.Lock()
		ok := strings.Contains(l.b.String(), text)
		changed := l.changed
		l.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the worker never logged %q; it logged:\n%s", text, l.String())
		case <-changed:
		}
	}
}

// harness is a real API handler over the fake Workers and Tokens on a
// loopback HTTP server, and a worker talking to it with a valid token.
type harness struct {
	fake    *apitest.Workers
	tokens  *apitest.Tokens
	client  *api.Client // with the token
	srv     *httptest.Server
	wlog    *logBuffer // the worker's log
	slog    *logBuffer // the server's log
	secret  string
	dir     string
	drain   chan struct{}
	cancel  context.CancelFunc
	errc    chan error
	stopped bool
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{fake: apitest.NewWorkers(), tokens: apitest.NewTokens(), wlog: newLogBuffer(), slog: newLogBuffer(), dir: t.TempDir()}
	h.secret = h.tokens.Add("w1")
	handler := api.NewHandler(apitest.NewSeeded(), nil, api.WithLogger(slog.New(slog.NewTextHandler(h.slog, nil))),
		api.WithWorkers(h.fake, h.tokens))
	h.srv = httptest.NewServer(handler)
	t.Cleanup(h.srv.Close)
	c, err := api.NewClient(h.srv.URL, h.srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	h.client = c.WithToken(h.secret)
	return h
}

// worker returns a worker of the harness with short retries.
func (h *harness) worker() *Worker {
	return &Worker{
		Client: h.client, Name: "test:1", Labels: []string{"spot"}, Slots: 2, Dir: h.dir,
		Grace: time.Minute, KillGrace: 2 * time.Second,
		Logger:   slog.New(slog.NewTextHandler(h.wlog, &slog.HandlerOptions{Level: slog.LevelDebug})),
		retryMin: 20 * time.Millisecond, retryMax: 200 * time.Millisecond,
	}
}

// start runs w in the background; the test's cleanup drains it if the
// test did not stop it.
func (h *harness) start(t *testing.T, w *Worker) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.drain, h.cancel, h.errc = make(chan struct{}), cancel, make(chan error, 1)
	go func() { h.errc <- w.Run(ctx, h.drain) }()
	t.Cleanup(func() {
		if !h.stopped {
			close(h.drain)
			cancel()
			<-h.errc
		}
	})
}

// stop drains the worker and returns what Run returned.
func (h *harness) stop(t *testing.T) error {
	t.Helper()
	close(h.drain)
	return h.wait(t)
}

// wait returns what Run returned.
func (h *harness) wait(t *testing.T) error {
	t.Helper()
	h.stopped = true
	defer h.cancel()
	select {
	case err := <-h.errc:
		return err
	case <-time.After(testTimeout):
		t.Fatalf("Run did not return; the worker logged:\n%s", h.wlog.String())
		return nil
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// completion waits for the report of lease.
func (h *harness) completion(t *testing.T, lease string) api.CompleteRequest {
	t.Helper()
	c, err := h.fake.WaitComplete(ctxT(t), lease)
	if err != nil {
		t.Fatalf("lease %s was not reported: %v; the worker logged:\n%s", lease, err, h.wlog.String())
	}
	return c
}

// waitLog waits until the log of lease holds text.
func (h *harness) waitLog(t *testing.T, lease, text string) {
	t.Helper()
	if err := h.fake.WaitLog(ctxT(t), lease, text); err != nil {
		t.Fatalf("the log of %s never held %q: %v; it holds:\n%s\nthe worker logged:\n%s", lease, text, err, h.fake.Log(lease), h.wlog.String())
	}
}

// shellLease is a lease running script, with quick heartbeats.
func shellLease(id, script string) api.Lease {
	run, task, attempt, err := api.ParseLeaseID(id)
	if err != nil {
		panic(err)
	}
	l := api.Lease{ID: id, RunID: run, Pipeline: "p", Task: task, Attempt: attempt, Spec: attemptpkg.Spec{Kind: "shell", Env: map[string]string{}},
		HeartbeatEvery: api.Duration(50 * time.Millisecond), LeaseTimeout: api.Duration(2 * time.Second)}
	setCommand(&l, script)
	return l
}

// setCommand makes the lease run script with /bin/sh, or argv when given.
func setCommand(l *api.Lease, script string, argv ...string) {
	body := map[string]any{"shell": script}
	if len(argv) > 0 {
		body = map[string]any{"argv": argv}
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	l.Spec.Body = b
}

// logLine is one parsed line of a log.
type logLine struct{ stream, text string }

func parseLog(t *testing.T, b []byte) []logLine {
	t.Helper()
	var out []logLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		ts, rest, ok1 := strings.Cut(sc.Text(), " ")
		stream, text, ok2 := strings.Cut(rest, " ")
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !ok1 || !ok2 {
			t.Fatalf("malformed log line %q", sc.Text())
		}
		out = append(out, logLine{stream, text})
	}
	return out
}

// TestAttemptRunsAndCompletes runs a lease as a real process: environment,
// working directory, needs, result, and a log of many lines arriving in
// order.
func TestAttemptRunsAndCompletes(t *testing.T) {
	h := newHarness(t)
	sub := filepath.Join(h.dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	l := shellLease("1.load-data.1", `set -e
test "$(pwd)" = "$WANT_DIR"
i=1; while [ $i -le 500 ]; do echo "line $i"; i=$((i+1)); done
echo "to stderr" >&2
cat "$TASUKI_NEED_EXTRACT_RATES"; echo
printf '{"rows": %s}' "$ROWS" > "$TASUKI_RESULT"`)
	l.Spec.Env = map[string]string{"ROWS": "42", "WANT_DIR": sub, "TASUKI_RESULT": "/nonexistent/result", "TASUKI_NEED_EXTRACT_RATES": "/nonexistent"}
	l.Spec.Workdir = "sub"
	l.Spec.Needs = map[string]json.RawMessage{"extract-rates": json.RawMessage(`{"n":1}`)}
	h.fake.Add(l)
	h.start(t, h.worker())

	c := h.completion(t, l.ID)
	if c.Outcome != api.OutcomeSucceeded || c.ExitCode == nil || *c.ExitCode != 0 || string(c.Result) != `{"rows":42}` {
		t.Fatalf("completion %+v (message %q)\n%s", c, c.Message, h.fake.Log(l.ID))
	}
	log := h.fake.Log(l.ID)
	if c.LogSize != int64(len(log)) {
		t.Errorf("log_size %d, the server has %d bytes", c.LogSize, len(log))
	}
	// Each stream in order; stdout and stderr are separate pipes, so how
	// their lines interleave is up to the scheduler.
	var out, errs []string
	for _, l := range parseLog(t, log) {
		if l.stream == "out" {
			out = append(out, l.text)
		} else {
			errs = append(errs, l.text)
		}
	}
	var want []string
	for i := 1; i <= 500; i++ {
		want = append(want, "line "+strconv.Itoa(i))
	}
	want = append(want, `{"n":1}`)
	if !reflect.DeepEqual(out, want) || !reflect.DeepEqual(errs, []string{"to stderr"}) {
		t.Errorf("log lines out of order or missing: got %d and %d lines, want %d and 1\n%s", len(out), len(errs), len(want), log)
	}

	if err := h.stop(t); err != nil {
		t.Errorf("Run after drain: %v", err)
	}
	for _, name := range h.fake.TokenNames() {
		if name != "w1" {
			t.Errorf("a lease request was authenticated as %q", name)
		}
	}
	reqs := h.fake.LeaseRequests()
	if len(reqs) == 0 || reqs[0].Worker != "test:1" || !reflect.DeepEqual(reqs[0].Labels, []string{"spot"}) || reqs[0].Free != 2 || reqs[0].WaitSeconds != api.MaxLeaseWait {
		t.Errorf("first lease request %+v", reqs)
	}
	if strings.Contains(h.wlog.String(), h.secret) || strings.Contains(h.slog.String(), h.secret) {
		t.Error("a log holds the token")
	}
}

// TestAttemptOutcomes checks how attempts that do not succeed are reported.
func TestAttemptOutcomes(t *testing.T) {
	type tc struct {
		name    string
		lease   func(l *api.Lease)
		outcome attemptpkg.Outcome
		exit    *int // nil: no exit code expected
		message string
		logs    string
	}
	exit := func(n int) *int { return &n }
	cases := []tc{
		{name: "failing", lease: func(l *api.Lease) { setCommand(l, "echo bye; exit 3") }, outcome: api.OutcomeFailed, exit: exit(3), message: "exit status 3", logs: "out bye"},
		{name: "killed", lease: func(l *api.Lease) { setCommand(l, "kill -9 $$") }, outcome: api.OutcomeFailed, exit: exit(-1), message: "killed by signal SIGKILL"},
		{name: "timeout", lease: func(l *api.Lease) {
			setCommand(l, "echo waiting; exec sleep 60")
			l.Spec.Timeout = api.Duration(200 * time.Millisecond)
		},
			outcome: api.OutcomeTimedOut, exit: exit(-1), message: "timed out after 200ms", logs: "out waiting"},
		{name: "missing workdir", lease: func(l *api.Lease) { setCommand(l, "true"); l.Spec.Workdir = "/nonexistent/dir" },
			outcome: api.OutcomeFailed, message: "working directory"},
		{name: "unknown program", lease: func(l *api.Lease) { setCommand(l, "", "no-such-program-tasuki") },
			outcome: api.OutcomeFailed, message: "no-such-program-tasuki"},
		{name: "bad result", lease: func(l *api.Lease) { setCommand(l, `echo '{' > "$TASUKI_RESULT"`) }, outcome: api.OutcomeFailed, exit: exit(0), message: "read result"},
		{name: "argv", lease: func(l *api.Lease) { setCommand(l, "", "echo", "hello; not a shell") },
			outcome: api.OutcomeSucceeded, exit: exit(0), logs: "out hello; not a shell"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			l := shellLease("2.t.1", "")
			c.lease(&l)
			h.fake.Add(l)
			h.start(t, h.worker())
			got := h.completion(t, l.ID)
			if got.Outcome != c.outcome || !strings.Contains(got.Message, c.message) {
				t.Errorf("outcome %q message %q, want %q with %q", got.Outcome, got.Message, c.outcome, c.message)
			}
			if (got.ExitCode == nil) != (c.exit == nil) || (c.exit != nil && *got.ExitCode != *c.exit) {
				t.Errorf("exit code %v, want %v", fmtInt(got.ExitCode), fmtInt(c.exit))
			}
			if !strings.Contains(string(h.fake.Log(l.ID)), c.logs) {
				t.Errorf("log %q lacks %q", h.fake.Log(l.ID), c.logs)
			}
			if err := h.stop(t); err != nil {
				t.Error(err)
			}
		})
	}
}

func fmtInt(p *int) string {
	if p == nil {
		return "none"
	}
	return strconv.Itoa(*p)
}

// TestCancelViaHeartbeat cancels a running attempt from the server: the
// process group ends and the attempt is reported cancelled.
func TestCancelViaHeartbeat(t *testing.T) {
	h := newHarness(t)
	l := shellLease("3.long.1", "echo started; sleep 60 & wait")
	h.fake.Add(l)
	h.start(t, h.worker())
	h.waitLog(t, l.ID, "out started")
	h.fake.Cancel(l.ID)
	c := h.completion(t, l.ID)
	if c.Outcome != api.OutcomeCancelled || c.ExitCode == nil {
		t.Errorf("completion %+v", c)
	}
	hbs := h.fake.Heartbeats()
	if len(hbs) == 0 || hbs[0].Worker != "test:1" || !reflect.DeepEqual(hbs[0].Leases, []string{l.ID}) {
		t.Errorf("heartbeats %+v", hbs)
	}
	if err := h.stop(t); err != nil {
		t.Error(err)
	}
}

// completeCalls counts the completions the worker attempts.
func completeCalls(h *harness) *atomic.Int32 {
	var n atomic.Int32
	h.fake.CompleteErr = func(string, api.CompleteRequest) error { n.Add(1); return nil }
	return &n
}

// TestUnknownLeaseEndsUnreported has the server forget a running lease:
// the worker ends the process and does not report it.
func TestUnknownLeaseEndsUnreported(t *testing.T) {
	h := newHarness(t)
	calls := completeCalls(h)
	l := shellLease("4.long.1", "echo pid $$; exec sleep 60")
	h.fake.Add(l)
	h.start(t, h.worker())
	h.waitLog(t, l.ID, "out pid ")
	pid := pidIn(t, h.fake.Log(l.ID))
	h.fake.Forget(l.ID)
	awaitExit(t, pid)
	h.wlog.await(t, "attempt ended unreported")
	// The grace period is a minute: a quick return shows nothing was left.
	if err := h.stop(t); err != nil {
		t.Error(err)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the worker reported a forgotten lease %d times", n)
	}
}

// pidIn reads the number after "pid " in a log.
func pidIn(t *testing.T, log []byte) int {
	t.Helper()
	_, rest, _ := strings.Cut(string(log), "pid ")
	f := strings.Fields(rest)
	if len(f) == 0 {
		t.Fatalf("no pid in %q", log)
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatalf("no pid in %q", log)
	}
	return pid
}

// awaitExit waits for a process that is not our child to exit.
func awaitExit(t *testing.T, pid int) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(testTimeout.Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n == 0 {
			t.Fatalf("process %d did not exit: %v", pid, err)
		}
		return
	}
}

// TestDrainPreemptsAfterGrace drains a worker with a long attempt: no more
// leases are taken, and after the grace period the attempt is ended and
// reported preempted.
func TestDrainPreemptsAfterGrace(t *testing.T) {
	h := newHarness(t)
	w := h.worker()
	w.Grace = 300 * time.Millisecond
	l := shellLease("5.long.1", "echo started; exec sleep 60")
	h.fake.Add(l)
	h.start(t, w)
	h.waitLog(t, l.ID, "out started")
	drained := time.Now()
	close(h.drain)
	h.wlog.await(t, "draining")
	// Once the server has seen the worker hang up, a new lease must stay
	// with the server.
	if err := h.fake.Await(ctxT(t), func(s apitest.State) bool { return s.Polling() == 0 }); err != nil {
		t.Fatal(err)
	}
	h.fake.Add(shellLease("5.other.1", "true"))
	c := h.completion(t, l.ID)
	if c.Outcome != api.OutcomePreempted || c.ExitCode == nil || !strings.Contains(c.Message, "shutting down") {
		t.Errorf("completion %+v", c)
	}
	if d := time.Since(drained); d < w.Grace {
		t.Errorf("preempted after %s, before the grace period of %s", d, w.Grace)
	}
	if err := h.wait(t); err != nil {
		t.Errorf("Run after drain: %v", err)
	}
	if err := h.fake.Await(ctxT(t), func(s apitest.State) bool { return s.Queued() == 1 }); err != nil {
		t.Error("a draining worker took a new lease")
	}
}

// TestDrainLetsAttemptsFinish drains a worker whose attempt ends within the
// grace period: it is reported as it ended, not preempted.
func TestDrainLetsAttemptsFinish(t *testing.T) {
	h := newHarness(t)
	fifo := filepath.Join(t.TempDir(), "go")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	l := shellLease("6.wait.1", `echo started; read line < "$FIFO"; echo "got $line"`)
	l.Spec.Env["FIFO"] = fifo
	h.fake.Add(l)
	h.start(t, h.worker())
	h.waitLog(t, l.ID, "out started")
	close(h.drain)
	h.wlog.await(t, "draining")
	if err := os.WriteFile(fifo, []byte("go\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := h.completion(t, l.ID)
	if c.Outcome != api.OutcomeSucceeded {
		t.Errorf("completion %+v", c)
	}
	h.waitLog(t, l.ID, "out got go")
	if err := h.wait(t); err != nil {
		t.Errorf("Run after drain: %v", err)
	}
}

// TestHardStop cancels Run's context: attempts are ended at once and
// handed back, and Run says it was stopped.
func TestHardStop(t *testing.T) {
	h := newHarness(t)
	l := shellLease("7.long.1", "echo started; exec sleep 60")
	h.fake.Add(l)
	h.start(t, h.worker())
	h.waitLog(t, l.ID, "out started")
	h.cancel()
	if err := h.wait(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Run after cancel: %v", err)
	}
	c, ok := h.fake.Completion(l.ID)
	if !ok || c.Outcome != api.OutcomePreempted {
		t.Errorf("completion %+v (reported: %v)", c, ok)
	}
}

// TestLeaseLostOnComplete has the server refuse a report with 409: the
// worker logs it and goes on with the next lease.
func TestLeaseLostOnComplete(t *testing.T) {
	h := newHarness(t)
	first := shellLease("8.a.1", "echo one")
	h.fake.CompleteErr = func(lease string, _ api.CompleteRequest) error {
		if lease == first.ID {
			return api.Errorf(http.StatusConflict, api.CodeLeaseLost, "lease %s expired", lease)
		}
		return nil
	}
	h.fake.Add(first)
	h.start(t, h.worker())
	h.wlog.await(t, "the server refused the report")
	second := shellLease("8.b.1", "echo two")
	h.fake.Add(second)
	if c := h.completion(t, second.ID); c.Outcome != api.OutcomeSucceeded {
		t.Errorf("second completion %+v", c)
	}
	if _, ok := h.fake.Completion(first.ID); ok {
		t.Error("the refused completion was recorded")
	}
	if err := h.stop(t); err != nil {
		t.Error(err)
	}
}

// TestTransientFailuresAreRetried has the server fail log appends and a
// completion with 503: they are retried, and nothing is lost or repeated.
func TestTransientFailuresAreRetried(t *testing.T) {
	h := newHarness(t)
	var appends, completes atomic.Int32
	unavailable := api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "restarting")
	h.fake.AppendErr = func(string, int64, []byte) error {
		if appends.Add(1) <= 2 {
			return unavailable
		}
		return nil
	}
	h.fake.CompleteErr = func(string, api.CompleteRequest) error {
		if completes.Add(1) == 1 {
			return unavailable
		}
		return nil
	}
	l := shellLease("9.t.1", "for i in 1 2 3; do echo line $i; done")
	h.fake.Add(l)
	h.start(t, h.worker())
	c := h.completion(t, l.ID)
	if c.Outcome != api.OutcomeSucceeded {
		t.Errorf("completion %+v", c)
	}
	lines := parseLog(t, h.fake.Log(l.ID))
	want := []logLine{{"out", "line 1"}, {"out", "line 2"}, {"out", "line 3"}}
	if !reflect.DeepEqual(lines, want) || c.LogSize != int64(len(h.fake.Log(l.ID))) {
		t.Errorf("log %q, log_size %d", h.fake.Log(l.ID), c.LogSize)
	}
	if completes.Load() != 2 {
		t.Errorf("%d completion calls, want 2", completes.Load())
	}
	if err := h.stop(t); err != nil {
		t.Error(err)
	}
}

// TestLogRefusedEndsAttempt has the server refuse a log append with 409:
// the lease is gone, so the process is ended and nothing reported.
func TestLogRefusedEndsAttempt(t *testing.T) {
	h := newHarness(t)
	calls := completeCalls(h)
	h.fake.AppendErr = func(lease string, _ int64, _ []byte) error {
		return api.Errorf(http.StatusConflict, api.CodeLeaseLost, "lease %s expired", lease)
	}
	l := shellLease("10.long.1", "echo started; exec sleep 60")
	h.fake.Add(l)
	h.start(t, h.worker())
	h.wlog.await(t, "attempt ended unreported")
	if err := h.stop(t); err != nil {
		t.Error(err)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("%d completion calls for a lost lease", n)
	}
}

// TestLargeLogIsSentInChunks holds the log back while a task writes more
// than one request may carry, then lets it through: it arrives whole, in
// order, in chunks within the limit.
func TestLargeLogIsSentInChunks(t *testing.T) {
	h := newHarness(t)
	fifo := filepath.Join(t.TempDir(), "written")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	var blocked atomic.Bool
	blocked.Store(true)
	var maxChunk, chunks atomic.Int64
	h.fake.AppendErr = func(_ string, _ int64, data []byte) error {
		if blocked.Load() {
			return api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "busy")
		}
		chunks.Add(1)
		if n := int64(len(data)); n > maxChunk.Load() {
			maxChunk.Store(n)
		}
		return nil
	}
	const lines = 6000
	l := shellLease("11.big.1", fmt.Sprintf(`head -c %d /dev/zero | tr '\0' a | fold -w 999; echo; echo written > "$FIFO"; echo end`, lines*999))
	l.Spec.Env["FIFO"] = fifo
	h.fake.Add(l)
	w := h.worker()
	h.start(t, w)
	if _, err := os.ReadFile(fifo); err != nil { // the task has written its lines
		t.Fatal(err)
	}
	blocked.Store(false)
	c := h.completion(t, l.ID)
	log := h.fake.Log(l.ID)
	if c.Outcome != api.OutcomeSucceeded || c.LogSize != int64(len(log)) || len(log) <= api.MaxLogChunk {
		t.Fatalf("completion %+v, %d log bytes", c, len(log))
	}
	got := parseLog(t, log)
	if len(got) != lines+1 || got[lines].text != "end" || got[0].text != strings.Repeat("a", 999) {
		t.Errorf("%d lines, last %q", len(got), got[len(got)-1])
	}
	if maxChunk.Load() > api.MaxLogChunk || chunks.Load() < 2 {
		t.Errorf("%d chunks, the largest %d bytes", chunks.Load(), maxChunk.Load())
	}
	if err := h.stop(t); err != nil {
		t.Error(err)
	}
}

// TestRefusedToken runs a worker with a token the server does not know:
// Run returns the refusal at once.
func TestRefusedToken(t *testing.T) {
	h := newHarness(t)
	w := h.worker()
	w.Client = h.client.WithToken("tsk_not-a-token")
	err := w.Run(ctxT(t), nil)
	if e, ok := errors.AsType[*api.Error](err); !ok || e.Status != http.StatusUnauthorized {
		t.Errorf("Run with a bad token: %v", err)
	}
	if strings.Contains(h.wlog.String(), "tsk_not-a-token") || strings.Contains(h.slog.String(), "tsk_not-a-token") {
		t.Error("a log holds the token")
	}
}

// TestServerUnreachable starts a worker against a server that is down,
// then brings it up: the worker keeps retrying and then works.
func TestServerUnreachable(t *testing.T) {
	h := newHarness(t)
	var up atomic.Bool
	h.fake.LeaseErr = func(api.LeaseRequest) error {
		if !up.Load() {
			return api.Errorf(http.StatusBadGateway, api.CodeBadResponse, "proxy: no upstream")
		}
		return nil
	}
	h.start(t, h.worker())
	if err := h.fake.Await(ctxT(t), func(s apitest.State) bool { return s.LeaseRequests() >= 3 }); err != nil {
		t.Fatal(err)
	}
	up.Store(true)
	l := shellLease("12.t.1", "echo up")
	h.fake.Add(l)
	if c := h.completion(t, l.ID); c.Outcome != api.OutcomeSucceeded {
		t.Errorf("completion %+v", c)
	}
	if err := h.stop(t); err != nil {
		t.Error(err)
	}
}

// TestSlots checks that the worker takes no more attempts than it has
// slots, and takes the next one when a slot frees.
func TestSlots(t *testing.T) {
	h := newHarness(t)
	w := h.worker()
	w.Slots = 2
	var leases []api.Lease
	var fifos []string
	for i := range 3 {
		fifo := filepath.Join(t.TempDir(), "go")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		l := shellLease(fmt.Sprintf("13.t%d.1", i), `echo started; read line < "$FIFO"`)
		l.Spec.Env["FIFO"] = fifo
		leases, fifos = append(leases, l), append(fifos, fifo)
	}
	h.fake.Add(leases...)
	h.start(t, w)
	h.waitLog(t, leases[0].ID, "started")
	h.waitLog(t, leases[1].ID, "started")
	if err := h.fake.Await(ctxT(t), func(s apitest.State) bool { return s.Queued() == 1 }); err != nil {
		t.Fatal(err)
	}
	release := func(i int) {
		t.Helper()
		if err := os.WriteFile(fifos[i], []byte("go\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if c := h.completion(t, leases[i].ID); c.Outcome != api.OutcomeSucceeded {
			t.Errorf("completion of %s: %+v", leases[i].ID, c)
		}
	}
	release(0)
	h.waitLog(t, leases[2].ID, "started") // the freed slot was used
	release(1)
	release(2)
	for _, r := range h.fake.LeaseRequests() {
		if r.Free < 1 || r.Free > 2 {
			t.Errorf("lease request for %d attempts with 2 slots", r.Free)
		}
	}
	if err := h.stop(t); err != nil {
		t.Error(err)
	}
}

// TestEnvironment checks the variables and files an attempt gets on a
// worker: the lease's variables, but not its idea of the worker's files,
// and never the worker's token.
func TestEnvironment(t *testing.T) {
	t.Setenv("TASUKI_TOKEN", "tsk_secret")
	h := newHarness(t)
	l := shellLease("9.env.1", `set -e; test "$TASUKI_RESULT" != /elsewhere; cat "$TASUKI_NEED_LOAD_DATA" "$TASUKI_NEED_X"; echo; test -z "$TASUKI_TOKEN"; echo "A=$A"`)
	l.Spec.Env = map[string]string{"A": "1", "TASUKI_RESULT": "/elsewhere", "TASUKI_NEED_X": "/elsewhere"}
	l.Spec.Needs = map[string]json.RawMessage{"load-data": json.RawMessage(`[1,2]`), "x": nil}
	h.fake.Add(l)
	h.start(t, h.worker())
	c := h.completion(t, l.ID)
	if c.Outcome != api.OutcomeSucceeded {
		t.Fatalf("completion %+v\n%s", c, h.fake.Log(l.ID))
	}
	h.waitLog(t, l.ID, "out [1,2]{}")
	h.waitLog(t, l.ID, "out A=1")
	if err := h.stop(t); err != nil {
		t.Error(err)
	}
}

// TestShortLogRidesWithTheReport: a lease that offers InlineLog gets the
// whole log of a short attempt in its report, with no log request; a log
// larger than the offer, or a lease without one, goes through the log
// route as before, and the report then carries none.
func TestShortLogRidesWithTheReport(t *testing.T) {
	h := newHarness(t)
	small := shellLease("10.small.1", "echo one; echo two >&2")
	small.InlineLog = api.MaxInlineLog
	big := shellLease("10.big.1", "for i in $(seq 40); do echo line $i; done")
	big.InlineLog = 100
	old := shellLease("10.old.1", "echo from an older server")
	h.fake.Add(small, big, old)
	h.start(t, h.worker())

	c := h.completion(t, small.ID)
	lines := parseLog(t, c.Log)
	if want := []logLine{{"out", "one"}, {"err", "two"}}; !reflect.DeepEqual(lines, want) {
		t.Errorf("the report's log %q, want the lines %v", c.Log, want)
	}
	if got := h.fake.Log(small.ID); len(got) != 0 || c.LogSize != 0 {
		t.Errorf("a short log also went through the log route: %q (log_size %d)", got, c.LogSize)
	}
	for _, l := range []api.Lease{big, old} {
		c := h.completion(t, l.ID)
		sent := h.fake.Log(l.ID)
		if len(c.Log) != 0 || len(sent) == 0 || c.LogSize != int64(len(sent)) {
			t.Errorf("%s: report log %q, log route %d bytes, log_size %d", l.ID, c.Log, len(sent), c.LogSize)
		}
	}
	if err := h.stop(t); err != nil {
		t.Error(err)
	}
}

// TestServerWithoutBundles: the worker asks for bundles of up to its slots;
// a server that predates them refuses the field (as any unknown field), and
// the worker asks again without it and runs what it gets.
func TestServerWithoutBundles(t *testing.T) {
	h := newHarness(t)
	h.fake.LeaseErr = func(req api.LeaseRequest) error {
		if req.Bundle > 0 {
			return api.Errorf(http.StatusBadRequest, api.CodeInvalid, `invalid JSON body: unknown field "bundle"`)
		}
		return nil
	}
	h.fake.Add(shellLease("1.a.1", "echo hi"))
	h.start(t, h.worker())
	if c := h.completion(t, "1.a.1"); c.Outcome != api.OutcomeSucceeded {
		t.Fatalf("completion %+v", c)
	}
	h.wlog.await(t, "the server hands out no bundles")
	if err := h.stop(t); err != nil {
		t.Fatal(err)
	}
	reqs := h.fake.LeaseRequests()
	if len(reqs) < 2 || reqs[0].Bundle != 2 || reqs[len(reqs)-1].Bundle != 0 {
		t.Fatalf("lease requests %+v: want bundles of 2 (the slots) asked for once, then none", reqs)
	}
}

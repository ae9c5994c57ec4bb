package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newBroker(t testing.TB) (*Broker, *clock, *logs.Files) {
	lf := logs.NewFiles(filepath.Join(t.TempDir(), "logs"))
	b := New(lf, slog.New(slog.NewTextHandler(io.Discard, nil)))
	c := &clock{now: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)}
	b.Now = c.Now
	return b, c, lf
}

// offered is an attempt of task id, described as the runner describes it.
func offered(run int64, id string, priority int, labels ...string) *runner.Attempt {
	t := &spec.Task{ID: id, Run: spec.Command{Shell: "echo " + id}}
	s, err := attempt.Builtin().Describe(t, map[string]string{"TASUKI_TASK_ID": id}, nil)
	if err != nil {
		panic(err)
	}
	a := &runner.Attempt{RunID: run, Pipeline: "p", TaskID: id, Number: 1, Priority: priority, Labels: labels,
		Log: logs.Key{RunID: run, TaskID: id, Attempt: 1}}
	return a.WithSpec(s)
}

// submit runs b.Run in the background and returns where its result arrives.
func submit(ctx context.Context, b *Broker, a *runner.Attempt) <-chan runner.AttemptResult {
	ch := make(chan runner.AttemptResult, 1)
	ready := make(chan struct{})
	go func() {
		b.mu.Lock()
		changed := b.changed
		b.mu.Unlock()
		go func() { <-changed; close(ready) }()
		ch <- b.Run(ctx, a)
	}()
	<-ready // the offer is in line
	return ch
}

func lease(t *testing.T, b *Broker, worker string, free int, labels ...string) []api.Lease {
	t.Helper()
	resp, err := b.Lease(context.Background(), api.LeaseRequest{Worker: worker, Free: free, Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Leases
}

func TestLeaseCompleteAndOrder(t *testing.T) {
	b, _, lf := newBroker(t)
	low := submit(context.Background(), b, offered(1, "low", 0))
	high := submit(context.Background(), b, offered(1, "high", 9))
	gpu := submit(context.Background(), b, offered(2, "train", 5, "gpu"))

	got := lease(t, b, "w1", 1)
	if len(got) != 1 || got[0].ID != "1.high.1" || got[0].Spec.Env["TASUKI_TASK_ID"] != "high" || got[0].Spec.Kind != "shell" || string(got[0].Spec.Body) != `{"shell":"echo high"}` {
		t.Fatalf("first lease %+v: want the highest priority the worker can run", got)
	}
	if got := lease(t, b, "w1", 5); len(got) != 1 || got[0].Task != "low" {
		t.Fatalf("a worker without the gpu label got %+v", got)
	}
	if got := lease(t, b, "w2", 5, "gpu", "spot"); len(got) != 1 || got[0].Task != "train" {
		t.Fatalf("gpu worker got %+v", got)
	}

	if err := b.AppendLog(context.Background(), "1.high.1", 0, []byte("line 1\n")); err != nil {
		t.Fatal(err)
	}
	// A retried request repeats bytes the server has: they are skipped.
	if err := b.AppendLog(context.Background(), "1.high.1", 0, []byte("line 1\nline 2\n")); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendLog(context.Background(), "1.high.1", 99, []byte("x")); err == nil {
		t.Fatal("a log gap was accepted")
	}
	code := 0
	if err := b.Complete(context.Background(), "1.high.1", api.CompleteRequest{Outcome: api.OutcomeSucceeded, ExitCode: &code, Result: []byte(`{"n":1}`)}); err != nil {
		t.Fatal(err)
	}
	if res := <-high; res.Outcome != attempt.Succeeded || string(res.Result) != `{"n":1}` {
		t.Fatalf("result %+v", res)
	}
	r, _ := lf.Open(context.Background(), logs.Key{RunID: 1, TaskID: "high", Attempt: 1}, 0)
	if b, _ := io.ReadAll(r); string(b) != "line 1\nline 2\n" {
		t.Fatalf("log %q", b)
	}
	r.Close()

	// Reporting twice, or a lease never given, is refused: fencing.
	var e *api.Error
	if err := b.Complete(context.Background(), "1.high.1", api.CompleteRequest{Outcome: api.OutcomeFailed}); !errors.As(err, &e) || e.Code != api.CodeLeaseLost {
		t.Fatalf("second report: %v", err)
	}
	b.Complete(context.Background(), "1.low.1", api.CompleteRequest{Outcome: api.OutcomeFailed})
	b.Complete(context.Background(), "2.train.1", api.CompleteRequest{Outcome: api.OutcomePreempted})
	if res := <-low; res.Outcome != attempt.Failed {
		t.Fatalf("low: %+v", res)
	}
	if res := <-gpu; res.Outcome != attempt.Preempted {
		t.Fatalf("train: %+v", res)
	}
}

func TestLeaseExpiresWithoutHeartbeat(t *testing.T) {
	b, clk, _ := newBroker(t)
	res := submit(context.Background(), b, offered(1, "a", 0))
	if got := lease(t, b, "w1", 1); len(got) != 1 {
		t.Fatal("no lease")
	}
	clk.Add(b.LeaseTimeout / 2)
	hb, _ := b.Heartbeat(context.Background(), api.HeartbeatRequest{Worker: "w1", Leases: []string{"1.a.1", "9.x.1"}})
	if len(hb.Unknown) != 1 || hb.Unknown[0] != "9.x.1" {
		t.Fatalf("heartbeat %+v", hb)
	}
	clk.Add(b.LeaseTimeout / 2) // renewed: still alive
	b.expire()
	select {
	case r := <-res:
		t.Fatalf("a renewed lease expired: %+v", r)
	default:
	}
	clk.Add(b.LeaseTimeout + time.Second)
	b.expire()
	if r := <-res; r.Outcome != attempt.Lost {
		t.Fatalf("result %+v, want lost", r)
	}
	var e *api.Error
	if err := b.Complete(context.Background(), "1.a.1", api.CompleteRequest{Outcome: api.OutcomeSucceeded}); !errors.As(err, &e) || e.Status != 409 {
		t.Fatalf("the vanished worker's late report: %v", err)
	}
	if hb, _ := b.Heartbeat(context.Background(), api.HeartbeatRequest{Worker: "w1", Leases: []string{"1.a.1"}}); len(hb.Unknown) != 1 {
		t.Fatalf("heartbeat after expiry %+v", hb)
	}
}

func TestCancel(t *testing.T) {
	b, _, _ := newBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	waiting := submit(ctx, b, offered(1, "waiting", 0))
	cancel()
	if r := <-waiting; r.Outcome != attempt.Cancelled {
		t.Fatalf("offer cancelled before a lease: %+v", r)
	}
	if got := lease(t, b, "w", 1); len(got) != 0 {
		t.Fatalf("a cancelled offer was leased: %+v", got)
	}

	ctx, cancel = context.WithCancel(context.Background())
	leased := submit(ctx, b, offered(1, "leased", 0))
	lease(t, b, "w", 1)
	cancel()
	for {
		hb, _ := b.Heartbeat(context.Background(), api.HeartbeatRequest{Worker: "w", Leases: []string{"1.leased.1"}})
		if len(hb.Cancel) == 1 {
			break
		}
	}
	b.Complete(context.Background(), "1.leased.1", api.CompleteRequest{Outcome: api.OutcomeCancelled})
	if r := <-leased; r.Outcome != attempt.Cancelled {
		t.Fatalf("leased attempt: %+v", r)
	}
}

func TestLongPollWakesOnOffer(t *testing.T) {
	b, _, _ := newBroker(t)
	got := make(chan api.LeaseResponse, 1)
	go func() {
		resp, _ := b.Lease(context.Background(), api.LeaseRequest{Worker: "w", Free: 1, WaitSeconds: 30})
		got <- resp
	}()
	res := submit(context.Background(), b, offered(1, "a", 0))
	if resp := <-got; len(resp.Leases) != 1 {
		t.Fatalf("long poll %+v", resp)
	}
	b.Complete(context.Background(), "1.a.1", api.CompleteRequest{Outcome: api.OutcomeSucceeded})
	<-res
	if _, err := b.Lease(context.Background(), api.LeaseRequest{Worker: "w"}); err == nil {
		t.Fatal("free 0 accepted")
	}
}

func TestRunLocal(t *testing.T) {
	b, _, _ := newBroker(t)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		b.RunLocal(ctx, 2, nil, func(ctx context.Context, a *runner.Attempt) runner.AttemptResult {
			return runner.AttemptResult{Outcome: attempt.Succeeded, Message: a.TaskID}
		})
		close(done)
	}()
	for _, id := range []string{"a", "b", "c"} {
		if r := b.Run(context.Background(), offered(1, id, 0)); r.Message != id {
			t.Fatalf("local run of %s: %+v", id, r)
		}
	}
	stop()
	<-done
}

// TestLeasesBelongToTheirWorker checks that only the token a lease was
// handed to can report, append to or keep it, and that no remote worker can
// pass for the server's own executor.
func TestLeasesBelongToTheirWorker(t *testing.T) {
	b, _, _ := newBroker(t)
	w1 := api.WithTokenName(context.Background(), "w1")
	w2 := api.WithTokenName(context.Background(), "w2")
	if _, err := b.Lease(w1, api.LeaseRequest{Worker: "local", Free: 1}); err == nil {
		t.Fatal("a remote worker named itself local")
	}
	res := submit(context.Background(), b, offered(1, "a", 0))
	resp, err := b.Lease(w1, api.LeaseRequest{Worker: "host:1", Free: 1})
	if err != nil || len(resp.Leases) != 1 {
		t.Fatalf("lease %+v %v", resp, err)
	}
	id := resp.Leases[0].ID
	var e *api.Error
	if err := b.Complete(w2, id, api.CompleteRequest{Outcome: api.OutcomeSucceeded}); !errors.As(err, &e) || e.Code != api.CodeLeaseLost {
		t.Fatalf("another token completed the lease: %v", err)
	}
	if err := b.AppendLog(w2, id, 0, []byte("x\n")); !errors.As(err, &e) {
		t.Fatalf("another token appended to the log: %v", err)
	}
	if hb, _ := b.Heartbeat(w2, api.HeartbeatRequest{Worker: "host:1", Leases: []string{id}}); len(hb.Unknown) != 1 {
		t.Fatalf("another token kept the lease: %+v", hb)
	}
	if err := b.Complete(w1, id, api.CompleteRequest{Outcome: api.OutcomeSucceeded}); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.Outcome != attempt.Succeeded || r.Worker != "host:1" {
		t.Fatalf("result %+v", r)
	}
}

// TestConcurrentLogAppends sends the same log twice at once, as a worker
// retrying a slow request does: the log holds it once.
func TestConcurrentLogAppends(t *testing.T) {
	b, _, lf := newBroker(t)
	res := submit(context.Background(), b, offered(1, "a", 0))
	id := lease(t, b, "w", 1)[0].ID
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { b.AppendLog(context.Background(), id, 0, []byte("one\ntwo\n")) })
	}
	wg.Wait()
	b.Complete(context.Background(), id, api.CompleteRequest{Outcome: api.OutcomeSucceeded})
	<-res
	r, _ := lf.Open(context.Background(), logs.Key{RunID: 1, TaskID: "a", Attempt: 1}, 0)
	defer r.Close()
	if got, _ := io.ReadAll(r); string(got) != "one\ntwo\n" {
		t.Fatalf("log %q", got)
	}
}

// TestPreempt hands attempts back as a draining server does (the run's
// context ends with attempt.ErrPreempted): an offer no worker took comes
// back preempted at once, a leased one is listed for its worker to hand
// back (and, for workers that predate that, to cancel), and what the
// worker then reports is recorded.
func TestPreempt(t *testing.T) {
	b, _, _ := newBroker(t)
	ctx, stop := context.WithCancelCause(context.Background())
	waiting := submit(ctx, b, offered(1, "waiting", 0))
	stop(attempt.ErrPreempted)
	if r := <-waiting; r.Outcome != attempt.Preempted {
		t.Fatalf("offer handed back before a lease: %+v", r)
	}

	ctx, stop = context.WithCancelCause(context.Background())
	leased := submit(ctx, b, offered(1, "leased", 0))
	lease(t, b, "w", 1)
	stop(attempt.ErrPreempted)
	for {
		hb, _ := b.Heartbeat(context.Background(), api.HeartbeatRequest{Worker: "w", Leases: []string{"1.leased.1"}})
		if len(hb.Preempt) == 1 {
			// Listed to cancel as well, for workers that predate preempt.
			if len(hb.Cancel) != 1 {
				t.Fatalf("heartbeat %+v: want the lease under preempt and cancel", hb)
			}
			break
		}
	}
	// It finished by itself meanwhile: that is what is recorded.
	code := 0
	if err := b.Complete(context.Background(), "1.leased.1", api.CompleteRequest{Outcome: api.OutcomeSucceeded, ExitCode: &code}); err != nil {
		t.Fatal(err)
	}
	if r := <-leased; r.Outcome != attempt.Succeeded || r.ExitCode == nil || r.Worker != "w" {
		t.Fatalf("leased attempt: %+v", r)
	}
}

// TestCompleteRefusesLost checks that a worker cannot report an attempt
// lost, or an outcome that does not exist: lost is the server's finding.
func TestCompleteRefusesLost(t *testing.T) {
	b, _, _ := newBroker(t)
	res := submit(context.Background(), b, offered(1, "a", 0))
	lease(t, b, "w", 1)
	for _, o := range []attempt.Outcome{attempt.Lost, "exploded", ""} {
		err := b.Complete(context.Background(), "1.a.1", api.CompleteRequest{Outcome: o})
		if e, ok := errors.AsType[*api.Error](err); !ok || e.Status != http.StatusBadRequest {
			t.Errorf("outcome %q: %v, want 400", o, err)
		}
	}
	if err := b.Complete(context.Background(), "1.a.1", api.CompleteRequest{Outcome: api.OutcomeFailed}); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.Outcome != attempt.Failed {
		t.Fatalf("result %+v", r)
	}
}

// TestUndescribedAttemptIsNotOffered checks that an attempt whose Spec
// cannot be built fails at once instead of being leased with nothing to run.
func TestUndescribedAttemptIsNotOffered(t *testing.T) {
	b, _, _ := newBroker(t)
	r := b.Run(context.Background(), &runner.Attempt{RunID: 1, TaskID: "a", Number: 1})
	if r.Outcome != attempt.Failed || !strings.Contains(r.Message, "not described") {
		t.Fatalf("result %+v", r)
	}
	if got := lease(t, b, "w", 1); len(got) != 0 {
		t.Fatalf("leased %+v", got)
	}
}

// TestReportedLogs: the logs that reports carry are kept before the
// attempts are handed back: the whole logs of a batch's map items in the
// map's pack, a plain task's as its own file, and the last bytes of a log
// that was partly appended before at its end. A report for a lease no
// longer held keeps nothing.
func TestReportedLogs(t *testing.T) {
	b, _, lf := newBroker(t)
	ctx := t.Context()
	item := func(i int) *runner.Attempt {
		a := offered(4, logs.ItemTask("each", i), 0)
		a.TaskID, a.Items = "each", 1
		return a
	}
	var results []<-chan runner.AttemptResult
	attempts := []*runner.Attempt{item(0), item(1), offered(4, "plain", 0), offered(4, "partial", 0)}
	for _, a := range attempts {
		results = append(results, submit(ctx, b, a))
	}
	got := lease(t, b, "w", 4)
	if len(got) != 4 {
		t.Fatalf("leased %d", len(got))
	}
	for _, l := range got {
		if l.InlineLog != api.MaxInlineLog {
			t.Fatalf("lease %s offers inline_log %d", l.ID, l.InlineLog)
		}
	}
	if err := b.AppendLog(ctx, got[3].ID, 0, []byte("x out first\n")); err != nil {
		t.Fatal(err)
	}
	var reports []api.LeaseReport
	for i, l := range got {
		reports = append(reports, api.LeaseReport{Lease: l.ID, CompleteRequest: api.CompleteRequest{Outcome: attempt.Succeeded, Log: fmt.Appendf(nil, "x out whole %d\n", i)}})
	}
	reports = append(reports, api.LeaseReport{Lease: "4.gone.1", CompleteRequest: api.CompleteRequest{Outcome: attempt.Succeeded, Log: []byte("x out never\n")}})
	errs := b.CompleteMany(ctx, reports)
	for i, err := range errs[:4] {
		if err != nil {
			t.Errorf("report %d: %v", i, err)
		}
	}
	if errs[4] == nil {
		t.Error("a report for a lease never held was taken")
	}
	for _, ch := range results {
		if res := <-ch; res.Outcome != attempt.Succeeded {
			t.Errorf("result %+v", res)
		}
	}
	want := map[string]string{}
	for i, l := range got {
		want[l.ID] = fmt.Sprintf("x out whole %d\n", i)
	}
	want[got[3].ID] = "x out first\n" + want[got[3].ID]
	for i, a := range attempts {
		r, err := lf.Open(ctx, a.Log, 0)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(r)
		r.Close()
		if string(data) != want[got[i].ID] {
			t.Errorf("log of %s: %q, want %q", a.Log, data, want[got[i].ID])
		}
	}
}

// TestObserveAndStats: what the broker tells its observer (a take with
// the time in line, an end with the time held, an expiry and a refused
// report) and what Stats shows: attempts in line by labels, attempts
// held, live workers and the longest silence.
func TestObserveAndStats(t *testing.T) {
	b, clk, _ := newBroker(t)
	var mu sync.Mutex
	var seen []Observation
	b.Observe = func(o Observation) { mu.Lock(); seen = append(seen, o); mu.Unlock() }
	res := submit(context.Background(), b, offered(1, "a", 0, "gpu"))
	other, cancel := context.WithCancel(context.Background())
	defer cancel()
	submit(other, b, offered(1, "b", 0))
	if st := b.Stats(); st.Waiting["gpu"] != 1 || st.Waiting[""] != 1 || st.Running != 0 || st.Workers != 0 {
		t.Fatalf("stats before a lease %+v", st)
	}
	clk.Add(3 * time.Second)
	if got := lease(t, b, "w1", 1, "gpu"); len(got) != 1 {
		t.Fatal("no lease")
	}
	clk.Add(2 * time.Second)
	if st := b.Stats(); st.Waiting["gpu"] != 0 || st.Running != 1 || st.Workers != 1 || st.OldestHeartbeat != 2*time.Second {
		t.Fatalf("stats with a lease %+v", st)
	}
	clk.Add(b.LeaseTimeout)
	b.expire()
	if r := <-res; r.Outcome != attempt.Lost {
		t.Fatalf("result %+v", r)
	}
	_ = b.Complete(context.Background(), "1.a.1", api.CompleteRequest{Outcome: api.OutcomeSucceeded})
	if st := b.Stats(); st.Workers != 0 || st.Running != 0 {
		t.Errorf("a worker silent for a lease timeout is still counted: %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []Observation{
		{Pipeline: "p", Labels: []string{"gpu"}, Waited: 3 * time.Second, Remote: true},
		{Event: "expired", Pipeline: "p"},
		{Ended: true, Pipeline: "p", Labels: []string{"gpu"}, Outcome: attempt.Lost, Ran: 2*time.Second + b.LeaseTimeout},
		{Event: "refused"},
	}
	if !reflect.DeepEqual(seen, want) {
		t.Errorf("observed\n %+v\nwant\n %+v", seen, want)
	}
}

// TestCancelledWhileHandedOut: a run cancelled while its attempt is being
// handed to a worker (recording the worker failed, so the lease is given
// back) ends the attempt as cancelled instead of putting it in line again,
// where Run would wait for ever or a worker would run it.
func TestCancelledWhileHandedOut(t *testing.T) {
	b, _, _ := newBroker(t)
	ctx, cancel := context.WithCancel(context.Background())
	b.OnLease = func(*runner.Attempt, string) error {
		cancel()
		return errors.New("the store is gone")
	}
	res := submit(ctx, b, offered(1, "a", 0))
	resp, err := b.Lease(context.Background(), api.LeaseRequest{Worker: "w1", Free: 1})
	if err != nil || len(resp.Leases) != 0 {
		t.Fatalf("lease: %+v %v", resp, err)
	}
	select {
	case r := <-res:
		if r.Outcome != attempt.Cancelled {
			t.Errorf("result %+v, want cancelled", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return: the cancelled attempt went back in line")
	}
	if st := b.Stats(); st.Waiting[""] != 0 || st.Running != 0 {
		t.Errorf("stats after: %+v", st)
	}
}

// serverKind stands for a kind that reads the server's store (the
// inventory kind): attempt.ServerOnly.
type serverKind struct{}

func (serverKind) Name() string                             { return "inventory" }
func (serverKind) Body(*spec.Task) (json.RawMessage, error) { return json.RawMessage(`{}`), nil }
func (serverKind) ServerOnly() bool                         { return true }
func (serverKind) Run(context.Context, *attempt.Spec, *attempt.Host) attempt.Result {
	return attempt.Result{}
}

// TestServerOnly: an attempt of a server-only kind is never leased to a
// remote worker (whatever labels it asks with) nor taken by RunLocal's
// slots, which take the attempts offered after it; RunServerOnly runs it,
// labels or not, and nothing else.
func TestServerOnly(t *testing.T) {
	b, _, _ := newBroker(t)
	kinds, err := attempt.Builtin().With(serverKind{})
	if err != nil {
		t.Fatal(err)
	}
	b.ServerOnly = kinds.ServerOnly
	if !kinds.ServerOnly("inventory") || kinds.ServerOnly("shell") || kinds.ServerOnly("nope") {
		t.Fatal("Registry.ServerOnly does not follow the kinds")
	}
	sweep := func(run int64, labels ...string) *runner.Attempt {
		task := &spec.Task{ID: "sweep", Inventory: &spec.Inventory{Package: "dnsmasq"}}
		s, err := kinds.Describe(task, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		a := &runner.Attempt{RunID: run, Pipeline: "p", TaskID: "sweep", Number: 1, Labels: labels, Log: logs.Key{RunID: run, TaskID: "sweep", Attempt: 1}}
		return a.WithSpec(s)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	first := submit(ctx, b, sweep(1))
	gpu := submit(ctx, b, sweep(2, "gpu"))
	shell := submit(ctx, b, offered(3, "build", 0))
	if got := lease(t, b, "w1", 5, "gpu"); len(got) != 1 || got[0].Task != "build" {
		t.Fatalf("a remote worker got %+v: want the shell attempt only", got)
	}
	if err := b.Complete(context.Background(), "3.build.1", api.CompleteRequest{Outcome: api.OutcomeSucceeded}); err != nil {
		t.Fatal(err)
	}
	<-shell

	// RunLocal's slots look at the line in order: the sweeps come first,
	// and they take the shell attempt after them.
	local := make(chan struct{})
	go func() {
		defer close(local)
		b.RunLocal(ctx, 2, []string{"gpu"}, func(context.Context, *runner.Attempt) runner.AttemptResult {
			return runner.AttemptResult{Outcome: attempt.Succeeded, Message: "local"}
		})
	}()
	if r := b.Run(ctx, offered(4, "later", 0)); r.Message != "local" {
		t.Fatalf("local run: %+v", r)
	}
	if !b.Waiting(1, "sweep", 1) || !b.Waiting(2, "sweep", 1) {
		t.Fatal("RunLocal took a server-only attempt")
	}
	if st := b.Stats(); st.Waiting[""] != 1 || st.Waiting["gpu"] != 1 {
		t.Errorf("stats %+v: want both sweeps waiting", st)
	}

	server := make(chan struct{})
	go func() {
		defer close(server)
		b.RunServerOnly(ctx, 1, func(_ context.Context, a *runner.Attempt) runner.AttemptResult {
			if s, _ := a.Spec(); s.Kind != "inventory" {
				t.Errorf("RunServerOnly got an attempt of kind %q", s.Kind)
			}
			return runner.AttemptResult{Outcome: attempt.Succeeded, Message: "server"}
		})
	}()
	for _, ch := range []<-chan runner.AttemptResult{first, gpu} {
		if r := <-ch; r.Message != "server" {
			t.Fatalf("a sweep ran as %+v, want on the server-only slot", r)
		}
	}
	if r := b.Run(ctx, offered(5, "last", 0)); r.Message != "local" {
		t.Fatalf("a shell attempt after the sweeps: %+v", r)
	}
	stop()
	<-local
	<-server
}

// TestPreemptLocal: the in-process executor's running attempts end with
// attempt.ErrPreempted as their cause (their processes are killed at once
// and they are recorded preempted, not charged); remote leases are not
// touched; attempts taken afterwards run as usual.
func TestPreemptLocal(t *testing.T) {
	b, _, _ := newBroker(t)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	remote := submit(ctx, b, offered(1, "remote", 0))
	if got := lease(t, b, "w1", 1); len(got) != 1 || got[0].Task != "remote" {
		t.Fatalf("the remote worker got %+v", got)
	}
	running := make(chan struct{})
	local := make(chan struct{})
	go func() {
		defer close(local)
		b.RunLocal(ctx, 2, nil, func(actx context.Context, a *runner.Attempt) runner.AttemptResult {
			if a.TaskID == "after" {
				return runner.AttemptResult{Outcome: attempt.Succeeded}
			}
			running <- struct{}{}
			<-actx.Done()
			if cause := context.Cause(actx); !errors.Is(cause, attempt.ErrPreempted) {
				return runner.AttemptResult{Outcome: attempt.Failed, Message: fmt.Sprintf("cause %v", cause)}
			}
			return runner.AttemptResult{Outcome: attempt.Preempted}
		})
	}()
	first, second := submit(ctx, b, offered(2, "a", 0)), submit(ctx, b, offered(3, "b", 0))
	<-running
	<-running
	if n := b.PreemptLocal(); n != 2 {
		t.Errorf("PreemptLocal ended %d attempts, want the 2 local ones", n)
	}
	for _, ch := range []<-chan runner.AttemptResult{first, second} {
		if r := <-ch; r.Outcome != attempt.Preempted {
			t.Errorf("a local attempt ended %+v, want preempted", r)
		}
	}
	if r := b.Run(ctx, offered(4, "after", 0)); r.Outcome != attempt.Succeeded {
		t.Errorf("an attempt after the preemption: %+v", r)
	}
	if err := b.Complete(context.Background(), "1.remote.1", api.CompleteRequest{Outcome: api.OutcomeSucceeded}); err != nil {
		t.Fatalf("the remote lease was touched: %v", err)
	}
	if r := <-remote; r.Outcome != attempt.Succeeded {
		t.Errorf("remote attempt: %+v", r)
	}
	stop()
	<-local
}

// TestAuthorityHoldsHandOuts: while Authority says no, nothing is handed
// out: a remote worker's lease request is answered 503 (it tries another
// server) and the in-process executor takes nothing; once it says yes
// again and the broker is woken, the attempt waiting in line runs.
func TestAuthorityHoldsHandOuts(t *testing.T) {
	b, _, _ := newBroker(t)
	var mu sync.Mutex
	may := false
	b.Authority = func() bool { mu.Lock(); defer mu.Unlock(); return may }
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	res := submit(ctx, b, offered(1, "a", 0))
	_, err := b.Lease(context.Background(), api.LeaseRequest{Worker: "w1", Free: 1, WaitSeconds: 1})
	var e *api.Error
	if !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable {
		t.Fatalf("lease request without authority: %v, want 503", err)
	}
	ran := make(chan string, 1)
	local := make(chan struct{})
	go func() {
		defer close(local)
		b.RunLocal(ctx, 1, nil, func(_ context.Context, a *runner.Attempt) runner.AttemptResult {
			ran <- a.TaskID
			return runner.AttemptResult{Outcome: attempt.Succeeded}
		})
	}()
	b.Wake() // the executor looks, and takes nothing
	if !b.Waiting(1, "a", 1) {
		t.Fatal("the attempt left the line without authority")
	}
	mu.Lock()
	may = true
	mu.Unlock()
	b.Wake()
	if got := <-ran; got != "a" {
		t.Fatalf("ran %q", got)
	}
	if r := <-res; r.Outcome != attempt.Succeeded {
		t.Fatalf("result %+v", r)
	}
	stop()
	<-local
}

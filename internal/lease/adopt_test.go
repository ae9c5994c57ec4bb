package lease

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/runner"
)

// adopt runs b.Adopt(worker) for a in the background, returns once the
// lease is held, and gives where its result arrives.
func adopt(ctx context.Context, b *Broker, worker string, a *runner.Attempt) <-chan runner.AttemptResult {
	ch := make(chan runner.AttemptResult, 1)
	go func() { ch <- b.Adopt(worker)(ctx, a) }()
	id := api.LeaseID(a.RunID, a.TaskID, a.Number)
	for {
		b.mu.Lock()
		_, ok := b.leases[id]
		b.mu.Unlock()
		if ok {
			return ch
		}
		runtime.Gosched()
	}
}

func found(run int64, task string, n int) *runner.Attempt {
	return &runner.Attempt{RunID: run, Pipeline: "p", TaskID: task, Number: n, Log: logs.Key{RunID: run, TaskID: task, Attempt: n}}
}

func TestAdoptedLeaseKeptByItsWorker(t *testing.T) {
	b, clk, lf := newBroker(t)
	b.AdoptFrom(clk.Now())
	w1 := api.WithTokenName(context.Background(), "tok1")
	w2 := api.WithTokenName(context.Background(), "tok2")
	res := adopt(context.Background(), b, "w1", found(3, "train", 2))

	// Another worker, or another token, cannot take it.
	if hb, _ := b.Heartbeat(w2, api.HeartbeatRequest{Worker: "w2", Leases: []string{"3.train.2"}}); len(hb.Unknown) != 1 {
		t.Fatalf("another worker's heartbeat: %+v", hb)
	}
	// Its worker's heartbeat keeps it, past the first lease timeout, and
	// binds it to the worker's token.
	clk.Add(b.LeaseTimeout * 3 / 4)
	if hb, _ := b.Heartbeat(w1, api.HeartbeatRequest{Worker: "w1", Leases: []string{"3.train.2"}}); len(hb.Unknown) != 0 {
		t.Fatalf("its worker's heartbeat: %+v", hb)
	}
	clk.Add(b.LeaseTimeout * 3 / 4)
	b.expire()
	if hb, _ := b.Heartbeat(w2, api.HeartbeatRequest{Worker: "w1", Leases: []string{"3.train.2"}}); len(hb.Unknown) != 1 {
		t.Fatalf("another token under the worker's name: %+v", hb)
	}
	// Its log goes on (here from its start: the previous leader had none).
	if err := b.AppendLog(w1, "3.train.2", 0, []byte("later line\n")); err != nil {
		t.Fatalf("append to an adopted lease's log: %v", err)
	}
	if err := b.Complete(w2, "3.train.2", api.CompleteRequest{Outcome: api.OutcomeSucceeded}); err == nil {
		t.Fatal("another token completed the lease")
	}
	if err := b.Complete(w1, "3.train.2", api.CompleteRequest{Outcome: api.OutcomeSucceeded, LogSize: 11}); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.Outcome != attempt.Succeeded || r.Worker != "w1" {
		t.Fatalf("adopted attempt: %+v", r)
	}
	if got := readLog(t, lf, logs.Key{RunID: 3, TaskID: "train", Attempt: 2}); got != "later line\n" {
		t.Fatalf("log of the adopted attempt: %q", got)
	}
}

func TestAdoptedLeaseNotHeardOfIsLost(t *testing.T) {
	b, clk, _ := newBroker(t)
	b.AdoptFrom(clk.Now())
	res := adopt(context.Background(), b, "gone", found(1, "a", 1))
	clk.Add(b.LeaseTimeout - 1)
	b.expire()
	select {
	case r := <-res:
		t.Fatalf("lost before the lease timeout: %+v", r)
	default:
	}
	clk.Add(2)
	b.expire()
	r := <-res
	if r.Outcome != attempt.Lost || !strings.Contains(r.Message, "not heard of") {
		t.Fatalf("result %+v, want lost, not heard of", r)
	}
	// Its late report is refused, as any lost lease's.
	var e *api.Error
	if err := b.Complete(api.WithTokenName(context.Background(), "t"), "1.a.1", api.CompleteRequest{Outcome: api.OutcomeSucceeded}); !errors.As(err, &e) || e.Status != 409 {
		t.Fatalf("late report: %v", err)
	}
}

// A heartbeat that comes before the run is recovered is remembered, not
// refused (which would end the attempt on the worker), a map item's and a
// bundle's too (adoptitems_test.go); one that is no lease id is refused;
// after the window, unknown is unknown.
func TestHeartbeatBeforeAdoption(t *testing.T) {
	b, clk, lf := newBroker(t)
	b.AdoptFrom(clk.Now())
	w1 := api.WithTokenName(context.Background(), "tok1")
	hb, _ := b.Heartbeat(w1, api.HeartbeatRequest{Worker: "w1", Leases: []string{"5.t.1", "5.m.7.1", "nonsense"}, Bundles: []string{"5.m.8.1"}})
	if len(hb.Unknown) != 1 || hb.Unknown[0] != "nonsense" {
		t.Fatalf("heartbeat before adoption: %+v", hb)
	}
	res := adopt(context.Background(), b, "w1", found(5, "t", 1))
	// Bound to the token heard: another is refused.
	if err := b.Complete(api.WithTokenName(context.Background(), "tok2"), "5.t.1", api.CompleteRequest{Outcome: api.OutcomeSucceeded}); err == nil {
		t.Fatal("another token completed the lease heard of before adoption")
	}
	// A report without a heartbeat first is taken too (the attempt may
	// end just after the takeover).
	// Its log, short enough to come whole with the report, is kept.
	if err := b.Complete(w1, "5.t.1", api.CompleteRequest{Outcome: api.OutcomeFailed, Message: "exit 3", Log: []byte("whole log\n")}); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.Outcome != attempt.Failed {
		t.Fatalf("adopted attempt: %+v", r)
	}
	r, err := lf.Open(context.Background(), logs.Key{RunID: 5, TaskID: "t", Attempt: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if string(got) != "whole log\n" {
		t.Fatalf("whole log of an adopted attempt: %q", got)
	}
	clk.Add(b.LeaseTimeout + 1)
	b.expire()
	if hb, _ := b.Heartbeat(w1, api.HeartbeatRequest{Worker: "w1", Leases: []string{"6.t.1"}}); len(hb.Unknown) != 1 {
		t.Fatalf("heartbeat after the window: %+v", hb)
	}
}

func readLog(t *testing.T, ls logs.Store, k logs.Key) string {
	t.Helper()
	r, err := ls.Open(context.Background(), k, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(got)
}

// previousLeader writes the start of a log as the server that led before
// did (a Files store: the same disk, a single server that restarted).
func previousLeader(t *testing.T, lf *logs.Files, k logs.Key, data string) {
	t.Helper()
	sink, err := lf.Sink(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(sink, data); err != nil {
		t.Fatal(err)
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
}

// An adopted lease's log goes on where the previous leader left it: a part
// the worker sends again (its acknowledgement was lost with the leader)
// is not doubled, later parts are kept, in order, and a part past what
// was taken is refused as for any lease.
func TestAdoptedLeaseLogGoesOn(t *testing.T) {
	b, clk, lf := newBroker(t)
	b.AdoptFrom(clk.Now())
	w1 := api.WithTokenName(context.Background(), "tok1")
	k := logs.Key{RunID: 3, TaskID: "train", Attempt: 2}
	previousLeader(t, lf, k, "line 1\nline 2\n")
	res := adopt(context.Background(), b, "w1", found(3, "train", 2))

	for _, part := range []struct {
		offset int64
		data   string
	}{
		{7, "line 2\nline 3\n"}, // sent before the takeover, its answer lost; and more
		{21, "line 4\n"},
		{14, "line 3\n"}, // a retry of a part taken here
		{21, "line 4\nline 5\n"},
	} {
		if err := b.AppendLog(w1, "3.train.2", part.offset, []byte(part.data)); err != nil {
			t.Fatalf("append %q at %d: %v", part.data, part.offset, err)
		}
	}
	var e *api.Error
	if err := b.AppendLog(w1, "3.train.2", 100, []byte("line 9\n")); !errors.As(err, &e) || e.Status != 400 {
		t.Fatalf("append past what was taken: %v", err)
	}
	if err := b.Complete(w1, "3.train.2", api.CompleteRequest{Outcome: api.OutcomeSucceeded, LogSize: 35}); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.Outcome != attempt.Succeeded {
		t.Fatalf("adopted attempt: %+v", r)
	}
	if got, want := readLog(t, lf, k), "line 1\nline 2\nline 3\nline 4\nline 5\n"; got != want {
		t.Fatalf("log of the adopted attempt: %q, want %q", got, want)
	}
}

// A worker's first part past what the store kept (the previous leader
// acknowledged bytes it did not store where this server reads them) is
// taken: the log says how much is missing there, and goes on.
func TestAdoptedLeaseLogGap(t *testing.T) {
	b, clk, lf := newBroker(t)
	b.AdoptFrom(clk.Now())
	w1 := api.WithTokenName(context.Background(), "tok1")
	k := logs.Key{RunID: 4, TaskID: "t", Attempt: 1}
	previousLeader(t, lf, k, "line 1\n")
	res := adopt(context.Background(), b, "w1", found(4, "t", 1))
	if err := b.AppendLog(w1, "4.t.1", 20, []byte("2026-01-02T03:04:05Z out line 9\n")); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendLog(w1, "4.t.1", 60, []byte("x\n")); err == nil {
		t.Fatal("a second part past what was taken was taken")
	}
	if err := b.Complete(w1, "4.t.1", api.CompleteRequest{Outcome: api.OutcomeSucceeded, LogSize: 53}); err != nil {
		t.Fatal(err)
	}
	<-res
	want := "line 1\n2026-01-02T03:04:05Z log tasuki: 13 bytes of log the previous leader took were lost with it\n2026-01-02T03:04:05Z out line 9\n"
	if got := readLog(t, lf, k); got != want {
		t.Fatalf("log: %q\nwant %q", got, want)
	}
}

// A log part or a report for a lease not adopted yet, within the adoption
// window, is answered "try again" (503), not lease lost, which would end
// the attempt on its worker (a map item's too: items are adopted as
// well); after the window, it is lost.
func TestLogAndReportBeforeAdoption(t *testing.T) {
	b, clk, lf := newBroker(t)
	b.AdoptFrom(clk.Now())
	w1 := api.WithTokenName(context.Background(), "tok1")
	status := func(err error) int {
		var e *api.Error
		if !errors.As(err, &e) {
			return 0
		}
		return e.Status
	}
	if err := b.AppendLog(w1, "5.t.1", 0, []byte("line 1\n")); status(err) != 503 {
		t.Errorf("a log part before adoption: %v, want 503", err)
	}
	if err := b.Complete(w1, "5.t.1", api.CompleteRequest{Outcome: api.OutcomeSucceeded}); status(err) != 503 {
		t.Errorf("a report before adoption: %v, want 503", err)
	}
	if err := b.AppendLog(w1, "5.m.7.1", 0, []byte("line 1\n")); status(err) != 503 {
		t.Errorf("a map item's log part: %v, want 503", err)
	}
	res := adopt(context.Background(), b, "w1", found(5, "t", 1))
	if err := b.AppendLog(w1, "5.t.1", 0, []byte("line 1\n")); err != nil {
		t.Fatalf("the log part once adopted: %v", err)
	}
	if err := b.Complete(w1, "5.t.1", api.CompleteRequest{Outcome: api.OutcomeSucceeded, LogSize: 7}); err != nil {
		t.Fatal(err)
	}
	<-res
	if got := readLog(t, lf, logs.Key{RunID: 5, TaskID: "t", Attempt: 1}); got != "line 1\n" {
		t.Errorf("log: %q", got)
	}
	clk.Add(b.LeaseTimeout + 1)
	if err := b.AppendLog(w1, "6.t.1", 0, []byte("x\n")); status(err) != 409 {
		t.Errorf("a log part after the window: %v, want 409", err)
	}
}

// completeLogs is a log store whose logs are all complete: nothing resumes.
type completeLogs struct{ *logs.Files }

func (completeLogs) Resume(ctx context.Context, k logs.Key) (io.WriteCloser, int64, error) {
	return nil, 0, fmt.Errorf("resume log of %s: %w", k, logs.ErrComplete)
}

// An adopted lease whose log the store has complete (the previous leader
// ended it) takes the worker's parts without keeping them: the attempt
// goes on, its log as it was.
func TestAdoptedLeaseLogComplete(t *testing.T) {
	b, clk, lf := newBroker(t)
	b.Logs = completeLogs{lf}
	b.AdoptFrom(clk.Now())
	w1 := api.WithTokenName(context.Background(), "tok1")
	k := logs.Key{RunID: 4, TaskID: "t", Attempt: 1}
	previousLeader(t, lf, k, "line 1\n")
	res := adopt(context.Background(), b, "w1", found(4, "t", 1))
	if err := b.AppendLog(w1, "4.t.1", 7, []byte("line 2\n")); err != nil {
		t.Fatal(err)
	}
	if err := b.Complete(w1, "4.t.1", api.CompleteRequest{Outcome: api.OutcomeSucceeded, LogSize: 14}); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.Outcome != attempt.Succeeded {
		t.Fatalf("adopted attempt: %+v", r)
	}
	if got := readLog(t, lf, k); got != "line 1\n" {
		t.Fatalf("log: %q", got)
	}
}

// Cancelling an adopted attempt asks its worker to end it, as for any lease.
func TestAdoptedLeaseCancel(t *testing.T) {
	b, clk, _ := newBroker(t)
	b.AdoptFrom(clk.Now())
	ctx, cancel := context.WithCancelCause(context.Background())
	res := adopt(ctx, b, "w1", found(1, "a", 1))
	cancel(attempt.ErrPreempted)
	w1 := api.WithTokenName(context.Background(), "tok1")
	for {
		hb, _ := b.Heartbeat(w1, api.HeartbeatRequest{Worker: "w1", Leases: []string{"1.a.1"}})
		if len(hb.Preempt) == 1 {
			break
		}
		runtime.Gosched()
	}
	if err := b.Complete(w1, "1.a.1", api.CompleteRequest{Outcome: api.OutcomePreempted}); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.Outcome != attempt.Preempted {
		t.Fatalf("adopted attempt handed back: %+v", r)
	}
}

func TestAdoptable(t *testing.T) {
	for w, want := range map[string]bool{"": false, "local": false, "local:host1": false, "gpu-7": true, "host:123": true} {
		if got := Adoptable(w); got != want {
			t.Errorf("Adoptable(%q) = %v, want %v", w, got, want)
		}
	}
}

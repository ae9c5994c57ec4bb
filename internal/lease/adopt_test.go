package lease

import (
	"context"
	"errors"
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
	// Its log's parts are taken (the worker goes on) but not kept: its
	// start went to the previous leader, at offsets this log would reuse.
	if err := b.AppendLog(w1, "3.train.2", 100, []byte("later line\n")); err != nil {
		t.Fatalf("append to an adopted lease's log: %v", err)
	}
	if err := b.Complete(w2, "3.train.2", api.CompleteRequest{Outcome: api.OutcomeSucceeded}); err == nil {
		t.Fatal("another token completed the lease")
	}
	if err := b.Complete(w1, "3.train.2", api.CompleteRequest{Outcome: api.OutcomeSucceeded, LogSize: 111, Log: []byte("last line\n")}); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.Outcome != attempt.Succeeded || r.Worker != "w1" {
		t.Fatalf("adopted attempt: %+v", r)
	}
	if r, err := lf.Open(context.Background(), logs.Key{RunID: 3, TaskID: "train", Attempt: 2}, 0); err == nil {
		got, _ := io.ReadAll(r)
		r.Close()
		if len(got) > 0 {
			t.Fatalf("this server kept part of a log whose start it does not have: %q", got)
		}
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

package runner

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"go.uber.org/goleak"
)

// gateCondition is a wait condition whose checks block until released,
// counting how many run at once.
type gateCondition struct {
	release chan struct{}
	running atomic.Int32
	most    atomic.Int32
}

func (*gateCondition) Name() string                             { return "wait.gate" }
func (*gateCondition) Body(*spec.Task) (json.RawMessage, error) { return json.RawMessage(`{}`), nil }
func (g *gateCondition) Check(ctx context.Context, _ *attempt.Spec, _ *attempt.Host, _ json.RawMessage) attempt.Observation {
	n := g.running.Add(1)
	for {
		m := g.most.Load()
		if n <= m || g.most.CompareAndSwap(m, n) {
			break
		}
	}
	defer g.running.Add(-1)
	select {
	case <-g.release:
	case <-ctx.Done():
	}
	return attempt.Observation{Met: true}
}

// TestPokerBoundsChecks: checks due at once run at most Workers at a time,
// every one is delivered, a stopped entry is never checked, and the heap's
// goroutine is gone once nothing is queued.
func TestPokerBoundsChecks(t *testing.T) {
	g := &gateCondition{release: make(chan struct{})}
	kinds, err := attempt.NewRegistry(g)
	if err != nil {
		t.Fatal(err)
	}
	p := &Poker{Kinds: kinds, Workers: 3}
	box := newMailbox[pokeResult]()
	var entries []*poke
	now := time.Now()
	for i := range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		e := &poke{task: i, attempt: 1, index: -1, timeout: time.Minute, ctx: ctx, cancel: cancel, deliver: box.put,
			host: &attempt.Host{}, describe: func() (attempt.Spec, error) { return attempt.Spec{Kind: "wait.gate"}, nil }}
		entries = append(entries, e)
	}
	// One entry far in the future, stopped before it is due.
	later := entries[19]
	p.schedule(later, now.Add(time.Hour))
	for _, e := range entries[:19] {
		p.schedule(e, now)
	}
	p.stop(later)
	var mu sync.Mutex
	got := map[int]bool{}
	close(g.release)
	for len(got) < 19 {
		<-box.signal
		mu.Lock()
		for _, r := range box.take() {
			if !r.obs.Met || got[r.task] {
				t.Fatalf("result %+v (seen before: %t)", r, got[r.task])
			}
			got[r.task] = true
		}
		mu.Unlock()
	}
	if m := g.most.Load(); m > 3 || m < 1 {
		t.Fatalf("%d checks ran at once with Workers 3", m)
	}
	if got[19] {
		t.Fatal("a stopped entry was checked")
	}
	p.inFlight.Wait()
	if n := p.Pending(); n != 0 {
		t.Fatalf("%d entries still queued", n)
	}
}

// TestPokerStopWakesLoop: stopping the only queued check, due in an hour,
// ends the heap's goroutine now instead of leaving it asleep until then.
func TestPokerStopWakesLoop(t *testing.T) {
	before := goleak.IgnoreCurrent()
	p := &Poker{}
	entry := func(deliver func(pokeResult)) *poke {
		ctx, cancel := context.WithCancel(context.Background())
		return &poke{index: -1, timeout: time.Minute, ctx: ctx, cancel: cancel, deliver: deliver,
			describe: func() (attempt.Spec, error) { return attempt.Spec{}, errors.New("nothing to check") }}
	}
	// A check due now, then one due in an hour: once the first is
	// delivered, the loop is asleep until the second.
	delivered := make(chan struct{})
	now := entry(func(pokeResult) { close(delivered) })
	later := entry(func(pokeResult) { t.Error("a stopped check was delivered") })
	p.schedule(later, time.Now().Add(time.Hour))
	p.schedule(now, time.Now())
	<-delivered
	p.stop(later)
	p.inFlight.Wait()
	goleak.VerifyNone(t, before)
}

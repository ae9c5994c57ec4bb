package engine

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

func intp(v int) *int { return &v }

// harness drives one run in memory and checks the transition bookkeeping.
type harness struct {
	t   testing.TB
	e   *Engine
	m   *Mem
	now time.Time
}

func newHarness(t testing.TB, defs []NodeDef) *harness {
	t.Helper()
	g, err := NewGraph(defs)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, e: &Engine{Graph: g, Seed: 1}, m: NewMem(g.InitialRun(), g.InitialTasks()), now: t0}
}

func (h *harness) apply(ev Event) (Transition, error) {
	tr, err := h.e.Apply(h.m, h.now, ev)
	if err == nil {
		h.m.Commit(tr)
	}
	return tr, err
}

func (h *harness) must(ev Event) Transition {
	h.t.Helper()
	tr, err := h.apply(ev)
	if err != nil {
		h.t.Fatalf("apply %s: %v", ev.Kind, err)
	}
	return tr
}

func (h *harness) idx(id string) int {
	i, ok := h.e.Graph.Index(id)
	if !ok {
		h.t.Fatalf("no task %q", id)
	}
	return i
}

func (h *harness) state(id string) TaskState { return h.m.Task(h.idx(id)).State }

func (h *harness) start(id string) int {
	h.t.Helper()
	i := h.idx(id)
	h.must(Event{Kind: EvTaskStarted, Task: i})
	return h.m.Task(i).Attempt
}

func (h *harness) end(id string, kind EventKind, code int) Transition {
	h.t.Helper()
	i := h.idx(id)
	return h.must(Event{Kind: kind, Task: i, Attempt: h.m.Task(i).Attempt, ExitCode: intp(code)})
}

func chain(ids ...string) []NodeDef {
	defs := make([]NodeDef, len(ids))
	for i, id := range ids {
		defs[i] = NodeDef{ID: id}
		if i > 0 {
			defs[i].Needs = []string{ids[i-1]}
		}
	}
	return defs
}

func TestChainSucceeds(t *testing.T) {
	h := newHarness(t, chain("a", "b", "c"))
	tr := h.must(Event{Kind: EvRunStarted, Task: -1})
	if got := actionTasks(tr, ActReady); fmt.Sprint(got) != "[0]" {
		t.Fatalf("ready after start = %v, want [0]", got)
	}
	for _, id := range []string{"a", "b", "c"} {
		if h.state(id) != TaskReady {
			t.Fatalf("%s is %s, want ready", id, h.state(id))
		}
		h.start(id)
		h.end(id, EvTaskSucceeded, 0)
	}
	if r := h.m.Run(); r.State != RunSucceeded || r.Remaining != 0 || r.Unsuccessful != 0 {
		t.Fatalf("run = %+v", r)
	}
}

func TestNeedsWaitForAll(t *testing.T) {
	h := newHarness(t, []NodeDef{{ID: "a"}, {ID: "b"}, {ID: "join", Needs: []string{"a", "b"}}})
	h.must(Event{Kind: EvRunStarted, Task: -1})
	h.start("a")
	h.end("a", EvTaskSucceeded, 0)
	if s := h.state("join"); s != TaskPending {
		t.Fatalf("join after one need = %s, want pending", s)
	}
	h.start("b")
	h.end("b", EvTaskSucceeded, 0)
	if s := h.state("join"); s != TaskReady {
		t.Fatalf("join after both needs = %s, want ready", s)
	}
}

func TestFailurePropagatesUpstreamFailed(t *testing.T) {
	h := newHarness(t, []NodeDef{
		{ID: "a"}, {ID: "b", Needs: []string{"a"}}, {ID: "c", Needs: []string{"b"}},
		{ID: "side"}, {ID: "d", Needs: []string{"side", "c"}},
	})
	h.must(Event{Kind: EvRunStarted, Task: -1})
	h.start("a")
	h.end("a", EvTaskFailed, 3)
	for _, id := range []string{"b", "c", "d"} {
		if s := h.state(id); s != TaskUpstreamFailed {
			t.Errorf("%s = %s, want upstream_failed", id, s)
		}
	}
	if h.m.Run().State != RunRunning {
		t.Fatalf("run ended while side is still ready")
	}
	h.start("side")
	h.end("side", EvTaskSucceeded, 0)
	if r := h.m.Run(); r.State != RunFailed || r.Unsuccessful != 4 {
		t.Fatalf("run = %+v, want failed with 4 unsuccessful", r)
	}
	if got := *h.m.Task(h.idx("a")).ExitCode; got != 3 {
		t.Fatalf("exit code = %d", got)
	}
}

func TestRetryBackoff(t *testing.T) {
	policy := RetryPolicy{Attempts: 3, Backoff: time.Second, MaxBackoff: 3 * time.Second, Multiplier: 4}
	h := newHarness(t, []NodeDef{{ID: "a", Retry: policy}})
	h.must(Event{Kind: EvRunStarted, Task: -1})
	wantDelays := []time.Duration{time.Second, 3 * time.Second}
	for n, want := range wantDelays {
		h.start("a")
		tr := h.end("a", EvTaskFailed, 1)
		if s := h.state("a"); s != TaskRetryWait {
			t.Fatalf("after failure %d: %s, want retry_wait", n+1, s)
		}
		wake := findAction(tr, ActWake)
		if wake == nil || wake.At.Sub(h.now) != want {
			t.Fatalf("retry %d: wake = %+v, want in %s", n+1, wake, want)
		}
		// Too early: the engine asks to be woken again and changes nothing.
		tr = h.must(Event{Kind: EvRetryDue, Task: 0})
		if len(tr.Tasks) != 0 || findAction(tr, ActWake) == nil {
			t.Fatalf("early retry_due changed state: %+v", tr)
		}
		h.now = wake.At
		h.must(Event{Kind: EvRetryDue, Task: 0})
		if s := h.state("a"); s != TaskReady {
			t.Fatalf("after backoff: %s, want ready", s)
		}
	}
	h.start("a")
	h.end("a", EvTaskFailed, 1)
	if s, spent := h.state("a"), h.m.Task(0).Spent; s != TaskFailed || spent != 3 {
		t.Fatalf("after last attempt: %s spent=%d, want failed spent=3", s, spent)
	}
	if h.m.Run().State != RunFailed {
		t.Fatalf("run = %s", h.m.Run().State)
	}
}

func TestRetryDelayJitterBounds(t *testing.T) {
	p := RetryPolicy{Backoff: 10 * time.Second, MaxBackoff: time.Minute, Multiplier: 2, Jitter: 0.2}
	tests := []struct {
		n    int
		u    float64
		want time.Duration
	}{
		{1, 0, 10 * time.Second},
		{2, 0, 20 * time.Second},
		{3, 0, 40 * time.Second},
		{4, 0, time.Minute},
		{1, 1, 12 * time.Second},
		{1, -1, 8 * time.Second},
		{10, -1, 48 * time.Second},
		{100, 0, time.Minute},
		{5000, 0, time.Minute}, // Multiplier^n overflows to +Inf
		{0, 0, 10 * time.Second},
	}
	for _, tt := range tests {
		if got := p.Delay(tt.n, tt.u); got != tt.want {
			t.Errorf("Delay(%d, %v) = %s, want %s", tt.n, tt.u, got, tt.want)
		}
	}
}

func TestRetryDelayExtremes(t *testing.T) {
	constant := RetryPolicy{Backoff: time.Second, MaxBackoff: time.Hour, Multiplier: 1}
	if got := constant.Delay(7, 0.8); got != time.Second {
		t.Errorf("constant delay = %v", got)
	}
	huge := RetryPolicy{Backoff: math.MaxInt64, MaxBackoff: math.MaxInt64, Multiplier: 2, Jitter: 1}
	if got := huge.Delay(3, 0.98); got <= 0 {
		t.Errorf("huge delay = %v, want a large positive value", got)
	}
}

func TestTimeoutAndLost(t *testing.T) {
	h := newHarness(t, []NodeDef{{ID: "a", Retry: RetryPolicy{Attempts: 2, Backoff: time.Second}}, {ID: "b"}})
	h.must(Event{Kind: EvRunStarted, Task: -1})
	h.start("a")
	h.end("a", EvTaskLost, -1)
	if s, spent := h.state("a"), h.m.Task(0).Spent; s != TaskReady || spent != 0 {
		t.Fatalf("lost attempt: %s spent %d, want ready and not charged (the executor vanished, not the task)", s, spent)
	}
	h.start("a")
	h.end("a", EvTaskTimedOut, -1)
	if s := h.state("a"); s != TaskRetryWait {
		t.Fatalf("first timeout: %s, want retry_wait", s)
	}
	h.now = h.now.Add(time.Hour)
	h.must(Event{Kind: EvRetryDue, Task: 0})
	h.start("a")
	h.end("a", EvTaskTimedOut, -1)
	if s := h.state("a"); s != TaskTimedOut {
		t.Fatalf("second timeout: %s, want timed_out", s)
	}
	// A task that loses every executor it runs on is charged past the bound.
	for k := 0; k < MaxUncharged; k++ {
		h.start("b")
		h.end("b", EvTaskLost, -1)
	}
	if s := h.state("b"); s != TaskReady {
		t.Fatalf("after %d losses: %s, want ready", MaxUncharged, s)
	}
	h.start("b")
	h.end("b", EvTaskLost, -1)
	if s, a := h.state("b"), h.m.Task(1).Attempt; s != TaskFailed || a != MaxUncharged+1 {
		t.Fatalf("loss %d: %s after %d attempts, want failed", MaxUncharged+1, s, a)
	}
}

func TestPreemptionIsNotCharged(t *testing.T) {
	h := newHarness(t, []NodeDef{{ID: "a", Retry: RetryPolicy{Attempts: 1}}})
	h.must(Event{Kind: EvRunStarted, Task: -1})
	for k := 0; k < 5; k++ {
		h.start("a")
		h.end("a", EvTaskPreempted, -1)
		if s := h.state("a"); s != TaskReady {
			t.Fatalf("preempted: %s, want ready", s)
		}
	}
	h.start("a")
	h.end("a", EvTaskSucceeded, 0)
	if task := h.m.Task(0); task.Attempt != 6 || task.Spent != 1 {
		t.Fatalf("attempt=%d spent=%d, want 6 and 1", task.Attempt, task.Spent)
	}
}

func TestCancel(t *testing.T) {
	h := newHarness(t, []NodeDef{{ID: "a"}, {ID: "b"}, {ID: "c", Needs: []string{"a"}}})
	h.must(Event{Kind: EvRunStarted, Task: -1})
	h.start("a")
	tr := h.must(Event{Kind: EvCancel, Task: -1, Actor: "alice"})
	if got := actionTasks(tr, ActKill); fmt.Sprint(got) != "[0]" {
		t.Fatalf("kill actions = %v, want [0]", got)
	}
	if h.state("b") != TaskCancelled || h.state("c") != TaskCancelled {
		t.Fatalf("b=%s c=%s, want cancelled", h.state("b"), h.state("c"))
	}
	if h.m.Run().State != RunRunning {
		t.Fatalf("run ended while a is still running")
	}
	if _, err := h.apply(Event{Kind: EvTaskStarted, Task: 1}); !errors.Is(err, ErrRejected) {
		t.Fatalf("start during cancel: err = %v", err)
	}
	tr = h.end("a", EvTaskCancelled, -1)
	if h.m.Run().State != RunCancelled || findAction(tr, ActDone) == nil {
		t.Fatalf("run = %s, want cancelled with a done action", h.m.Run().State)
	}
	if tr.Records[0].Kind != EvTaskCancelled {
		t.Fatalf("records = %+v", tr.Records)
	}
}

func TestCancelQueuedRun(t *testing.T) {
	h := newHarness(t, chain("a", "b"))
	h.must(Event{Kind: EvCancel, Task: -1})
	if r := h.m.Run(); r.State != RunCancelled || r.Remaining != 0 {
		t.Fatalf("run = %+v", r)
	}
}

func TestRejections(t *testing.T) {
	h := newHarness(t, chain("a", "b"))
	cases := []struct {
		name string
		ev   Event
	}{
		{"start before run", Event{Kind: EvTaskStarted, Task: 0}},
		{"unknown task", Event{Kind: EvTaskStarted, Task: 7}},
		{"unknown kind", Event{Kind: "bogus", Task: 0}},
	}
	for _, c := range cases {
		if _, err := h.apply(c.ev); !errors.Is(err, ErrRejected) {
			t.Errorf("%s: err = %v, want ErrRejected", c.name, err)
		}
	}
	h.must(Event{Kind: EvRunStarted, Task: -1})
	att := h.start("a")
	cases = []struct {
		name string
		ev   Event
	}{
		{"start running task", Event{Kind: EvTaskStarted, Task: 0}},
		{"start pending task", Event{Kind: EvTaskStarted, Task: 1}},
		{"stale attempt", Event{Kind: EvTaskSucceeded, Task: 0, Attempt: att + 1}},
		{"end pending task", Event{Kind: EvTaskFailed, Task: 1, Attempt: 0}},
		{"retry_due when running", Event{Kind: EvRetryDue, Task: 0}},
		{"run started twice", Event{Kind: EvRunStarted, Task: -1}},
	}
	for _, c := range cases {
		if _, err := h.apply(c.ev); !errors.Is(err, ErrRejected) {
			t.Errorf("%s: err = %v, want ErrRejected", c.name, err)
		}
	}
	h.end("a", EvTaskSucceeded, 0)
	h.start("b")
	h.end("b", EvTaskSucceeded, 0)
	if _, err := h.apply(Event{Kind: EvCancel, Task: -1}); !errors.Is(err, ErrRejected) {
		t.Errorf("cancel finished run: err = %v", err)
	}
}

func TestEmptyGraphSucceedsAtStart(t *testing.T) {
	h := newHarness(t, nil)
	h.must(Event{Kind: EvRunStarted, Task: -1})
	if h.m.Run().State != RunSucceeded {
		t.Fatalf("run = %s", h.m.Run().State)
	}
}

func TestNewGraphErrors(t *testing.T) {
	cases := []struct {
		defs []NodeDef
		want string
	}{
		{[]NodeDef{{ID: "a"}, {ID: "a"}}, `duplicate task id "a"`},
		{[]NodeDef{{ID: "a", Needs: []string{"x"}}}, `needs unknown task "x"`},
		{[]NodeDef{{ID: "a", Needs: []string{"b"}}, {ID: "b", Needs: []string{"a"}}}, "dependency cycle"},
	}
	for _, c := range cases {
		_, err := NewGraph(c.defs)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewGraph: err = %v, want %q", err, c.want)
		}
	}
}

// TestRandomDAGs is the property test: random graphs under random event orders
// (starts, successes, failures, timeouts, losses, preemptions, retries due,
// cancels, stale and duplicate events, operator retries and marks on failed
// and cancelled runs) always terminate, never start a task
// before all its needs are satisfied (a need it zips with: running),
// keep each pending task's count of open needs exact, never run a task twice at once, never
// charge more attempts than the policy allows, and keep the run's counters
// equal to what the tasks say.
func TestRandomDAGs(t *testing.T) {
	seeds := 400
	if testing.Short() {
		seeds = 50
	}
	for seed := 0; seed < seeds; seed++ {
		simulate(t, uint64(seed))
	}
}

func FuzzEngine(f *testing.F) {
	for _, s := range []uint64{1, 2, 3, 42, 1 << 40} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, seed uint64) { simulate(t, seed) })
}

func simulate(t *testing.T, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	n := 1 + rng.IntN(40)
	defs := make([]NodeDef, n)
	for i := range defs {
		defs[i] = NodeDef{ID: fmt.Sprintf("t%d", i), Retry: RetryPolicy{Attempts: rng.IntN(4), Backoff: time.Duration(rng.IntN(5)) * time.Second, Multiplier: 2, Jitter: 0.5}}
		if rng.IntN(4) == 0 {
			// A wait: pokes every second, and maybe a timeout of a few.
			defs[i].Wait = &WaitPolicy{Poke: time.Second, Timeout: time.Duration(rng.IntN(4)) * time.Second}
		}
		for j := 0; j < i; j++ {
			if rng.IntN(n) < 2 {
				defs[i].Needs = append(defs[i].Needs, defs[j].ID)
				if defs[j].Wait == nil && rng.IntN(3) == 0 {
					// It may start once the need is running.
					defs[i].Zip = append(defs[i].Zip, defs[j].ID)
				}
			}
		}
	}
	h := newHarness(t, defs)
	h.e.Seed = seed
	g := h.e.Graph
	failRate := rng.IntN(4) // 0: nothing fails
	cancelAt := -1
	if rng.IntN(4) == 0 {
		cancelAt = rng.IntN(4 * n)
	}
	h.must(Event{Kind: EvRunStarted, Task: -1})
	wakes := map[int]time.Time{}
	marked := map[int]bool{}
	reruns := 0
	for step := 0; ; step++ {
		if step > 100*n+100 {
			t.Fatalf("seed %d: run did not terminate after %d steps: %+v", seed, step, h.m.Run())
		}
		checkInvariants(t, seed, g, h.m, marked)
		if h.m.Run().State.Terminal() && h.m.Run().Unsuccessful > 0 && reruns < 2 && rng.IntN(2) == 0 {
			// An operator retries what failed, or marks one task succeeded.
			reruns++
			if op := rng.IntN(3); op == 0 {
				h.must(Event{Kind: EvRetryFailed, Task: -1, Actor: "op"})
			} else {
				kind := EvMarkSucceeded
				if op == 2 {
					kind = EvMarkSkipped
				}
				var unsuccessful []int
				for i := 0; i < g.Len(); i++ {
					if s := h.m.Task(i).State; s.Terminal() && !s.Satisfies() {
						unsuccessful = append(unsuccessful, i)
					}
				}
				i := unsuccessful[rng.IntN(len(unsuccessful))]
				h.must(Event{Kind: kind, Task: i, Actor: "op"})
				marked[i] = kind == EvMarkSucceeded
			}
			failRate, cancelAt = 0, -1
			continue
		}
		if h.m.Run().State.Terminal() {
			for i := 0; i < g.Len(); i++ {
				if s := h.m.Task(i).State; !s.Terminal() {
					t.Fatalf("seed %d: run %s but task %d is %s", seed, h.m.Run().State, i, s)
				}
			}
			waitTimedOut := false // time passes between pokes: a wait may time out even when nothing fails
			for i := 0; i < g.Len(); i++ {
				waitTimedOut = waitTimedOut || g.Node(i).Wait != nil && h.m.Task(i).State == TaskTimedOut
			}
			if failRate == 0 && cancelAt < 0 && reruns == 0 && !waitTimedOut && h.m.Run().State != RunSucceeded {
				t.Fatalf("seed %d: nothing failed but run is %s", seed, h.m.Run().State)
			}
			return
		}
		if step == cancelAt {
			h.must(Event{Kind: EvCancel, Task: -1})
			continue
		}
		var ready, running, waiting []int
		for i := 0; i < g.Len(); i++ {
			switch h.m.Task(i).State {
			case TaskReady:
				ready = append(ready, i)
			case TaskRunning:
				running = append(running, i)
			case TaskWaiting:
				waiting = append(waiting, i)
			}
		}
		if len(waiting) > 0 && rng.IntN(3) == 0 {
			i := waiting[rng.IntN(len(waiting))]
			pokeWait(t, seed, rng, h, i, failRate, wakes)
			continue
		}
		// Stale or duplicate input must be rejected without changing anything.
		if rng.IntN(5) == 0 {
			i := rng.IntN(g.Len())
			before := h.m.Task(i)
			ev := Event{Kind: EvTaskSucceeded, Task: i, Attempt: before.Attempt - 1}
			if rng.IntN(2) == 0 && before.State != TaskReady {
				ev = Event{Kind: EvTaskStarted, Task: i}
			}
			if _, err := h.apply(ev); err == nil {
				t.Fatalf("seed %d: stale %s on task %d (%s) accepted", seed, ev.Kind, i, before.State)
			}
			continue
		}
		switch choice := rng.IntN(3); {
		case choice == 0 && len(ready) > 0:
			i := ready[rng.IntN(len(ready))]
			for _, need := range g.Node(i).Needs {
				if s := h.m.Task(need).State; !s.Satisfies() && (s != TaskRunning || !g.Zips(i, need)) {
					t.Fatalf("seed %d: task %d ready while need %d is %s", seed, i, need, h.m.Task(need).State)
				}
			}
			h.must(Event{Kind: EvTaskStarted, Task: i})
		case choice == 1 && len(running) > 0:
			i := running[rng.IntN(len(running))]
			kind := EvTaskSucceeded
			if failRate > 0 && rng.IntN(4) < failRate {
				kind = []EventKind{EvTaskFailed, EvTaskTimedOut, EvTaskLost, EvTaskPreempted}[rng.IntN(4)]
			}
			if h.m.Run().Cancelling && rng.IntN(2) == 0 {
				kind = EvTaskCancelled
			}
			tr := h.must(Event{Kind: kind, Task: i, Attempt: h.m.Task(i).Attempt})
			for _, a := range tr.Actions {
				if a.Kind == ActWake {
					wakes[a.Task] = a.At
				}
			}
		case len(wakes) > 0:
			for i, at := range wakes {
				if rng.IntN(3) == 0 {
					h.now = h.now.Add(time.Millisecond) // too early is fine: it re-arms
				} else if at.After(h.now) {
					h.now = at
				}
				delete(wakes, i)
				if h.m.Task(i).State != TaskRetryWait {
					break // cancelled meanwhile
				}
				tr := h.must(Event{Kind: EvRetryDue, Task: i})
				for _, a := range tr.Actions {
					if a.Kind == ActWake {
						wakes[a.Task] = a.At
					}
				}
				break
			}
		}
	}
}

// pokeWait delivers one check of waiting task i: unmet (seeing one of two
// things), met, failed for good, or unmet at or past its deadline. It
// checks what the engine promises about waits: a poke records only a
// change of what was seen, asks for the next poke on the poke grid (no
// later than the deadline), and a poke at the deadline ends the wait.
func pokeWait(t *testing.T, seed uint64, rng *rand.Rand, h *harness, i, failRate int, wakes map[int]time.Time) {
	t.Helper()
	before := h.m.Task(i)
	pol := *h.e.Graph.Node(i).Wait
	deadline := before.StartedAt.Add(pol.Timeout)
	if rng.IntN(3) == 0 {
		h.now = h.now.Add(time.Duration(rng.IntN(1500)) * time.Millisecond)
	}
	var ev Event
	switch r := rng.IntN(6); {
	case r == 0 && failRate == 0 || r == 1:
		ev = Event{Kind: EvTaskSucceeded, Task: i, Attempt: before.Attempt, Result: []byte(`{"arrived":true}`)}
	case r == 2 && failRate > 0:
		ev = Event{Kind: EvTaskFailed, Task: i, Attempt: before.Attempt, Message: "can never hold"}
	default:
		ev = Event{Kind: EvWaitPoked, Task: i, Attempt: before.Attempt, Message: []string{"nothing yet", "half there"}[rng.IntN(2)]}
	}
	tr := h.must(ev)
	after := h.m.Task(i)
	if ev.Kind != EvWaitPoked {
		if after.State == TaskWaiting {
			t.Fatalf("seed %d: %s left task %d waiting", seed, ev.Kind, i)
		}
	} else {
		timedOut := pol.Timeout > 0 && !h.now.Before(deadline)
		pokes := 0
		for _, r := range tr.Records {
			if r.Kind == EvWaitPoked {
				pokes++
			}
		}
		if want := map[bool]int{true: 1, false: 0}[ev.Message != before.Message]; pokes != want {
			t.Fatalf("seed %d: poke seeing %q after %q recorded %d wait_poked, want %d", seed, ev.Message, before.Message, pokes, want)
		}
		switch {
		case timedOut && (after.State == TaskWaiting || after.Attempt == before.Attempt && after.State != TaskRetryWait && after.State != TaskTimedOut && after.State != TaskCancelled):
			t.Fatalf("seed %d: poke past the deadline left task %d %s", seed, i, after.State)
		case !timedOut:
			a := findAction(tr, ActPoke)
			grid := before.StartedAt.Add(Phase(i, pol.Poke))
			if a == nil || a.Attempt != before.Attempt || !a.At.After(h.now) || a.At.Sub(grid)%pol.Poke != 0 && !(pol.Timeout > 0 && a.At.Equal(deadline)) ||
				a.At.Sub(h.now) > pol.Poke {
				t.Fatalf("seed %d: poke of task %d at %s asked for the next at %+v (start %s, poke %s)", seed, i, h.now, a, before.StartedAt, pol.Poke)
			}
		}
	}
	for _, a := range tr.Actions {
		if a.Kind == ActWake {
			wakes[a.Task] = a.At
		}
	}
}

// marked holds the tasks an operator marked succeeded: they need not have
// run, so their needs need not be satisfied.
func checkInvariants(t *testing.T, seed uint64, g *Graph, m *Mem, marked map[int]bool) {
	t.Helper()
	remaining, unsuccessful := 0, 0
	for i := 0; i < g.Len(); i++ {
		task := m.Task(i)
		if !task.State.Terminal() {
			remaining++
		} else if !task.State.Satisfies() {
			unsuccessful++
		}
		if max := max(g.Node(i).Retry.Attempts, 1); task.Spent > max {
			t.Fatalf("seed %d: task %d spent %d attempts, policy allows %d", seed, i, task.Spent, max)
		}
		if (task.State == TaskWaiting) != (g.Node(i).Wait != nil && task.State == TaskWaiting) {
			t.Fatalf("seed %d: task %d is waiting but is not a wait", seed, i)
		}
		if g.Node(i).Wait != nil && (task.State == TaskRunning || task.State == TaskReady) {
			t.Fatalf("seed %d: wait task %d is %s: a wait never takes a slot", seed, i, task.State)
		}
		if task.State == TaskRunning || task.State == TaskWaiting || task.State == TaskSucceeded && !marked[i] {
			for _, need := range g.Node(i).Needs {
				nt := m.Task(need)
				if g.Zips(i, need) && nt.Attempt > 0 {
					continue // it started beside the need, which ran at least once
				}
				if !nt.State.Satisfies() {
					t.Fatalf("seed %d: task %d is %s but need %d is %s", seed, i, task.State, need, nt.State)
				}
			}
		}
		// A pending task counts exactly the needs that keep it from
		// starting; a ready one has none.
		if task.State == TaskPending || task.State == TaskReady {
			open := 0
			for _, need := range g.Node(i).Needs {
				if s := m.Task(need).State; !s.Satisfies() && (s != TaskRunning || !g.Zips(i, need)) {
					open++
				}
			}
			if task.State == TaskReady && open > 0 || task.State == TaskPending && task.PendingNeeds != open {
				t.Fatalf("seed %d: task %d is %s with %d pending needs counted, but %d needs keep it from starting", seed, i, task.State, task.PendingNeeds, open)
			}
		}
	}
	r := m.Run()
	if r.State == RunFailed {
		failed := false
		for i := 0; i < g.Len(); i++ {
			if s := m.Task(i).State; s == TaskFailed || s == TaskTimedOut {
				failed = true
			}
		}
		if !failed {
			t.Fatalf("seed %d: run failed but no task failed or timed out", seed)
		}
	}
	if r.Remaining != remaining || r.Unsuccessful != unsuccessful {
		t.Fatalf("seed %d: run counters remaining=%d unsuccessful=%d, tasks say %d and %d", seed, r.Remaining, r.Unsuccessful, remaining, unsuccessful)
	}
}

func actionTasks(tr Transition, k ActionKind) []int {
	var out []int
	for _, a := range tr.Actions {
		if a.Kind == k {
			out = append(out, a.Task)
		}
	}
	return out
}

func findAction(tr Transition, k ActionKind) *Action {
	for i := range tr.Actions {
		if tr.Actions[i].Kind == k {
			return &tr.Actions[i]
		}
	}
	return nil
}

func TestRetryFailedKeepsSuccesses(t *testing.T) {
	h := newHarness(t, []NodeDef{
		{ID: "ok"}, {ID: "bad", Retry: RetryPolicy{Attempts: 2}}, {ID: "after", Needs: []string{"ok", "bad"}},
	})
	h.must(Event{Kind: EvRunStarted, Task: -1})
	h.start("ok")
	h.end("ok", EvTaskSucceeded, 0)
	h.start("bad")
	h.m.Commit(h.must(Event{Kind: EvTaskFailed, Task: 1, Attempt: 1}))
	h.must(Event{Kind: EvRetryDue, Task: 1}) // backoff 0
	h.start("bad")
	h.end("bad", EvTaskFailed, 1)
	if h.m.Run().State != RunFailed || h.state("after") != TaskUpstreamFailed {
		t.Fatalf("setup: run %s after %s", h.m.Run().State, h.state("after"))
	}
	if _, err := h.apply(Event{Kind: EvRetryDue, Task: 1}); !errors.Is(err, ErrRejected) {
		t.Fatalf("event on finished run accepted: %v", err)
	}
	tr := h.must(Event{Kind: EvRetryFailed, Task: -1, Actor: "bob"})
	if h.m.Run().State != RunRunning || h.state("bad") != TaskReady || h.state("after") != TaskPending || h.state("ok") != TaskSucceeded {
		t.Fatalf("after retry: run %s bad %s after %s ok %s", h.m.Run().State, h.state("bad"), h.state("after"), h.state("ok"))
	}
	if tr.Records[0].Actor != "bob" || h.m.Task(1).Spent != 0 {
		t.Fatalf("records %+v spent %d", tr.Records, h.m.Task(1).Spent)
	}
	h.start("bad")
	if h.m.Task(1).Attempt != 3 {
		t.Fatalf("attempt numbers must keep growing: %d", h.m.Task(1).Attempt)
	}
	h.end("bad", EvTaskSucceeded, 0)
	h.start("after")
	h.end("after", EvTaskSucceeded, 0)
	if h.m.Run().State != RunSucceeded {
		t.Fatalf("run %s", h.m.Run().State)
	}
}

func TestMarkSucceededRevivesDownstream(t *testing.T) {
	h := newHarness(t, []NodeDef{{ID: "a"}, {ID: "b", Needs: []string{"a"}}, {ID: "c", Needs: []string{"b"}}, {ID: "d"}})
	h.must(Event{Kind: EvRunStarted, Task: -1})
	h.start("a")
	h.end("a", EvTaskFailed, 1)
	if _, err := h.apply(Event{Kind: EvMarkSkipped, Task: 3}); err != nil {
		t.Fatal(err) // skipping a ready task is allowed
	}
	if h.m.Run().State != RunFailed {
		t.Fatalf("run %s, want failed", h.m.Run().State)
	}
	h.must(Event{Kind: EvMarkSucceeded, Task: 0, Actor: "carol"})
	if h.state("a") != TaskSucceeded || h.state("b") != TaskReady || h.state("c") != TaskPending || h.m.Run().State != RunRunning {
		t.Fatalf("a %s b %s c %s run %s", h.state("a"), h.state("b"), h.state("c"), h.m.Run().State)
	}
	if _, err := h.apply(Event{Kind: EvMarkSucceeded, Task: 0}); !errors.Is(err, ErrRejected) {
		t.Fatalf("marking twice: %v", err)
	}
	h.start("b")
	if _, err := h.apply(Event{Kind: EvMarkSucceeded, Task: 1}); !errors.Is(err, ErrRejected) {
		t.Fatalf("marking a running task: %v", err)
	}
	h.end("b", EvTaskSucceeded, 0)
	h.must(Event{Kind: EvMarkSkipped, Task: 2})
	if r := h.m.Run(); r.State != RunSucceeded || r.Remaining != 0 || r.Unsuccessful != 0 {
		t.Fatalf("run %+v", r)
	}
}

func TestLostAttemptHold(t *testing.T) {
	h := newHarness(t, []NodeDef{{ID: "a", Retry: RetryPolicy{Attempts: 1}}})
	h.must(Event{Kind: EvRunStarted, Task: -1})
	h.start("a")
	tr := h.must(Event{Kind: EvTaskLost, Task: 0, Attempt: 1, Hold: 15 * time.Second})
	if s, spent := h.state("a"), h.m.Task(0).Spent; s != TaskRetryWait || spent != 0 {
		t.Fatalf("held lost attempt: %s spent %d", s, spent)
	}
	if w := findAction(tr, ActWake); w == nil || w.At.Sub(h.now) != 15*time.Second {
		t.Fatalf("wake %+v", w)
	}
	h.now = h.now.Add(15 * time.Second)
	h.must(Event{Kind: EvRetryDue, Task: 0})
	h.start("a")
	h.end("a", EvTaskSucceeded, 0)
	if h.m.Run().State != RunSucceeded {
		t.Fatalf("run %s", h.m.Run().State)
	}
}

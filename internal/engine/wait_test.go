package engine

import (
	"testing"
	"time"
)

func countRecords(tr Transition, k EventKind) int {
	n := 0
	for _, r := range tr.Records {
		if r.Kind == k {
			n++
		}
	}
	return n
}

// TestWaitLifecycle follows one wait: it starts waiting (no slot, first poke
// now) when its needs are met, records only changes of what it sees, asks
// for pokes on its grid, and succeeds with what arrived, starting its
// dependent.
func TestWaitLifecycle(t *testing.T) {
	h := newHarness(t, []NodeDef{
		{ID: "rates", Wait: &WaitPolicy{Poke: 10 * time.Second}},
		{ID: "merge", Needs: []string{"rates"}},
	})
	tr := h.must(Event{Kind: EvRunStarted, Task: -1})
	w := h.idx("rates")
	if h.state("rates") != TaskWaiting || countRecords(tr, RecTaskWaiting) != 1 || len(actionTasks(tr, ActReady)) != 0 {
		t.Fatalf("after start: rates %s, records %+v, actions %+v", h.state("rates"), tr.Records, tr.Actions)
	}
	start := h.now
	if a := findAction(tr, ActPoke); a == nil || a.Task != w || a.Attempt != 1 || !a.At.Equal(start) {
		t.Fatalf("first poke: %+v, want task %d attempt 1 now", a, w)
	}
	poke := func(at time.Duration, seen string) Transition {
		h.now = start.Add(at)
		return h.must(Event{Kind: EvWaitPoked, Task: w, Attempt: 1, Message: seen})
	}
	tr = poke(0, "no file matches in/*.csv")
	if countRecords(tr, EvWaitPoked) != 1 || h.m.Task(w).Message != "no file matches in/*.csv" {
		t.Fatalf("first unmet poke: records %+v", tr.Records)
	}
	tr = poke(13*time.Second, "no file matches in/*.csv")
	if len(tr.Records) != 0 || len(tr.Tasks) != 0 {
		t.Fatalf("unchanged poke wrote something: %+v", tr)
	}
	if a := findAction(tr, ActPoke); a == nil || !a.At.Equal(start.Add(20*time.Second)) {
		t.Fatalf("next poke after a late one: %+v, want on the grid at +20s", a)
	}
	tr = poke(20*time.Second, "in/a.csv is empty")
	if countRecords(tr, EvWaitPoked) != 1 {
		t.Fatalf("changed poke: records %+v", tr.Records)
	}
	h.now = start.Add(30 * time.Second)
	tr = h.must(Event{Kind: EvTaskSucceeded, Task: w, Attempt: 1, Result: []byte(`{"count":1}`)})
	if h.state("rates") != TaskSucceeded || string(h.m.Task(w).Result) != `{"count":1}` || h.state("merge") != TaskReady {
		t.Fatalf("met: rates %s result %s merge %s", h.state("rates"), h.m.Task(w).Result, h.state("merge"))
	}
	if _, err := h.apply(Event{Kind: EvWaitPoked, Task: w, Attempt: 1, Message: "late"}); err == nil {
		t.Fatal("a poke after the wait ended was accepted")
	}
}

// TestWaitTimeout: a poke at the deadline that still sees nothing ends the
// attempt timed out with what it saw; the retry policy starts a fresh wait.
func TestWaitTimeout(t *testing.T) {
	h := newHarness(t, []NodeDef{{ID: "w", Wait: &WaitPolicy{Poke: 4 * time.Second, Timeout: 10 * time.Second}, Retry: RetryPolicy{Attempts: 2, Backoff: time.Second, Multiplier: 1}}})
	h.must(Event{Kind: EvRunStarted, Task: -1})
	start := h.now
	h.now = start.Add(8 * time.Second)
	tr := h.must(Event{Kind: EvWaitPoked, Task: 0, Attempt: 1, Message: "HTTP 503"})
	if a := findAction(tr, ActPoke); a == nil || !a.At.Equal(start.Add(10*time.Second)) {
		t.Fatalf("last poke should be at the deadline: %+v", a)
	}
	h.now = start.Add(10 * time.Second)
	h.must(Event{Kind: EvWaitPoked, Task: 0, Attempt: 1, Message: "HTTP 503"})
	if s := h.state("w"); s != TaskRetryWait {
		t.Fatalf("after the deadline: %s, want retry_wait", s)
	}
	h.now = h.m.Task(0).ReadyAt
	tr = h.must(Event{Kind: EvRetryDue, Task: 0})
	if h.state("w") != TaskWaiting || h.m.Task(0).Attempt != 2 || findAction(tr, ActPoke) == nil {
		t.Fatalf("retry: %s attempt %d actions %+v", h.state("w"), h.m.Task(0).Attempt, tr.Actions)
	}
	h.now = h.now.Add(10 * time.Second)
	h.must(Event{Kind: EvWaitPoked, Task: 0, Attempt: 2, Message: "HTTP 503"})
	if s, msg := h.state("w"), h.m.Task(0).Message; s != TaskTimedOut || msg != "waited 10s: HTTP 503" {
		t.Fatalf("second timeout: %s %q", s, msg)
	}
	if h.m.Run().State != RunFailed {
		t.Fatalf("run %s, want failed", h.m.Run().State)
	}
}

// TestWaitCancelAndMark: cancelling a run ends its waits at once (nothing to
// kill); an operator may mark a waiting task succeeded (the data is there,
// go on).
func TestWaitCancelAndMark(t *testing.T) {
	h := newHarness(t, []NodeDef{{ID: "w", Wait: &WaitPolicy{Poke: time.Second}}, {ID: "after", Needs: []string{"w"}}})
	h.must(Event{Kind: EvRunStarted, Task: -1})
	tr := h.must(Event{Kind: EvCancel, Task: -1})
	if h.state("w") != TaskCancelled || len(actionTasks(tr, ActKill)) != 0 || h.m.Run().State != RunCancelled {
		t.Fatalf("cancel: w %s run %s actions %+v", h.state("w"), h.m.Run().State, tr.Actions)
	}

	h = newHarness(t, []NodeDef{{ID: "w", Wait: &WaitPolicy{Poke: time.Second}}, {ID: "after", Needs: []string{"w"}}})
	h.must(Event{Kind: EvRunStarted, Task: -1})
	h.must(Event{Kind: EvMarkSucceeded, Task: 0, Actor: "ops"})
	if h.state("w") != TaskSucceeded || h.state("after") != TaskReady {
		t.Fatalf("mark: w %s after %s", h.state("w"), h.state("after"))
	}
}

// TestPhaseSpreadsPokes: the waits of ten thousand tasks that started
// together are checked spread over the interval, not all at once.
func TestPhaseSpreadsPokes(t *testing.T) {
	poke := time.Second
	buckets := make([]int, 10)
	for i := range 10000 {
		ph := Phase(i, poke)
		if ph < 0 || ph >= poke {
			t.Fatalf("phase of task %d is %s, outside [0, %s)", i, ph, poke)
		}
		buckets[ph*10/poke]++
	}
	for b, n := range buckets {
		if n < 800 || n > 1200 {
			t.Fatalf("tenth %d of the interval has %d of 10000 pokes: %v", b, n, buckets)
		}
	}
}

func TestNextPoke(t *testing.T) {
	start := time.Date(2026, 12, 7, 19, 0, 0, 0, time.UTC)
	p := WaitPolicy{Poke: 30 * time.Second, Timeout: 100 * time.Second}
	for _, tt := range []struct{ now, want time.Duration }{
		{-time.Second, 0}, {0, 30 * time.Second}, {29 * time.Second, 30 * time.Second},
		{30 * time.Second, 60 * time.Second}, {95 * time.Second, 100 * time.Second}, {200 * time.Second, 100 * time.Second},
	} {
		if got := p.NextPoke(0, start, start.Add(tt.now)); !got.Equal(start.Add(tt.want)) {
			t.Errorf("NextPoke at +%s = +%s, want +%s", tt.now, got.Sub(start), tt.want)
		}
	}
}

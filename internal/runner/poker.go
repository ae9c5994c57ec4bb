package runner

import (
	"container/heap"
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/kinds"
)

// Poker checks the conditions of waiting tasks at their poke times, for
// every run of this process. A wait between pokes is one entry in a heap:
// no execution slot, no goroutine. A goroutine exists only while a check
// runs, and at most Workers at once; the heap's goroutine itself runs only
// while entries are due, so an idle process has none.
//
// It is one per process and shared by the runs it executes, like the
// Dispatcher.
type Poker struct {
	// Kinds checks the conditions (Registry.Check).
	Kinds *attempt.Registry
	// Workers bounds the checks running at once (default 64): enough to
	// keep slow HTTP or SQL checks from delaying the others, few enough
	// not to flood what they check.
	Workers int
	// Late, when set, is told how late each check started against its
	// poke time (benchmarks and metrics).
	Late func(time.Duration)
	// Now is the clock poke times are read on: the runner's, which the
	// engine's poke times come from (default time.Now).
	Now func() time.Time

	once     sync.Once
	mu       sync.Mutex
	queue    pokeHeap
	running  bool          // the heap's goroutine is alive
	wake     chan struct{} // an earlier entry was added
	sem      chan struct{} // one value per running check
	inFlight sync.WaitGroup
}

// poke is one scheduled check of a wait attempt. The coordinator owns it
// (creates, reschedules, cancels); the Poker holds it while it is due.
type poke struct {
	run     int64
	task    int
	attempt int
	due     time.Time
	timeout time.Duration // of one check

	// describe builds the attempt's Spec, once, on the first check, off
	// the coordinator's goroutine (secrets are looked up then).
	describe func() (attempt.Spec, error)
	spec     *attempt.Spec
	host     *attempt.Host
	memo     json.RawMessage // the previous check's Observation.Memo
	deliver  func(pokeResult)

	ctx       context.Context // ended when the wait is
	cancel    context.CancelFunc
	cancelled atomic.Bool
	index     int // in the heap; -1 when not queued
}

// pokeResult is what one check saw, delivered to the coordinator.
type pokeResult struct {
	task    int
	attempt int
	obs     attempt.Observation
	at      time.Time // when the check ended
}

func (p *Poker) init() {
	if p.Workers <= 0 {
		p.Workers = 64
	}
	if p.Kinds == nil {
		p.Kinds = kinds.Builtin()
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	p.wake = make(chan struct{}, 1)
	p.sem = make(chan struct{}, p.Workers)
}

// schedule queues e for time due (or moves it there, if it is queued).
func (p *Poker) schedule(e *poke, due time.Time) {
	p.once.Do(p.init)
	p.mu.Lock()
	e.due = due
	if e.index >= 0 && e.index < len(p.queue) && p.queue[e.index] == e {
		heap.Fix(&p.queue, e.index)
	} else {
		heap.Push(&p.queue, e)
	}
	first := p.queue[0] == e
	start := !p.running
	p.running = true
	p.mu.Unlock()
	if start {
		go p.loop()
	} else if first {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// stop cancels e: a queued check is dropped, a running one is stopped, and
// nothing more is delivered for it.
func (p *Poker) stop(e *poke) {
	e.cancelled.Store(true)
	e.cancel()
	p.mu.Lock()
	head := false
	if e.index >= 0 && e.index < len(p.queue) && p.queue[e.index] == e {
		head = e.index == 0
		heap.Remove(&p.queue, e.index)
	}
	p.mu.Unlock()
	if head {
		// The loop may be sleeping until e's time: let it look again (and
		// exit, if nothing is left), rather than keep a goroutine asleep.
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// Pending returns how many checks are queued (waits between pokes).
func (p *Poker) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue)
}

// loop starts each check when it is due, until the heap is empty.
func (p *Poker) loop() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	// fired: the timer set for that entry ran out, so it is due even if
	// the clock (an injected one, standing still) says otherwise. It is
	// the entry, not a flag: a head stopped as its timer fired must not
	// make the next head due early.
	var fired *poke
	for {
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		e := p.queue[0]
		if wait := e.due.Sub(p.Now()); wait > 0 && fired != e {
			p.mu.Unlock()
			timer.Reset(wait)
			select {
			case <-timer.C:
				fired = e
			case <-p.wake:
				if !timer.Stop() {
					<-timer.C
				}
			}
			continue
		}
		fired = nil
		heap.Pop(&p.queue)
		p.mu.Unlock()
		if e.cancelled.Load() {
			continue
		}
		p.sem <- struct{}{}
		if p.Late != nil {
			p.Late(p.Now().Sub(e.due))
		}
		p.inFlight.Add(1)
		go func() {
			defer func() { <-p.sem; p.inFlight.Done() }()
			p.check(e)
		}()
	}
}

// check runs one check of e and delivers what it saw, unless e was
// cancelled meanwhile.
func (p *Poker) check(e *poke) {
	var obs attempt.Observation
	if e.spec == nil {
		s, err := e.describe()
		if err != nil {
			obs = attempt.Observation{Fail: err.Error()}
		} else {
			e.spec = &s
		}
	}
	if e.spec != nil {
		ctx, cancel := context.WithTimeout(e.ctx, e.timeout)
		obs = p.Kinds.Check(ctx, e.spec, e.host, e.memo)
		cancel()
	}
	if e.cancelled.Load() {
		return
	}
	e.deliver(pokeResult{task: e.task, attempt: e.attempt, obs: obs, at: time.Now()})
}

// checkTimeout bounds one check: the poke interval, within [5s, 1m], so a
// check of a slow server neither hangs for ever nor gives up sooner than
// a person would.
func checkTimeout(poke time.Duration) time.Duration {
	return min(max(poke, 5*time.Second), time.Minute)
}

// pokeHeap orders pokes by due time (container/heap).
type pokeHeap []*poke

func (h pokeHeap) Len() int           { return len(h) }
func (h pokeHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h pokeHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *pokeHeap) Push(x any) {
	e := x.(*poke)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *pokeHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*h = old[:len(old)-1]
	return e
}

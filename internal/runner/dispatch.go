package runner

import (
	"container/heap"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// Dispatcher hands execution slots to ready tasks of every run in this
// process, highest priority first and, within a priority, in the order they
// became ready. A task may also draw from a named pool with its own slot count
// (a "warehouse" pool of 4 keeps nightly jobs from overloading a database).
//
// It is one per process and shared by all the runs it executes, so limits and
// priorities hold across runs; each run's coordinator enqueues its ready
// tasks and receives grants in its inbox.
type Dispatcher struct {
	mu       sync.Mutex
	parallel int
	running  int
	pools    map[string]*pool
	tickets  map[int64]map[unitKey]*ticket // by run, then task (or map unit)
	seq      uint64
	paused   bool

	// Waited, when set, is told how long each task (or map unit) waited
	// in line for a slot, by pool ("default" for none), when it gets one
	// (for metrics). It is called with the dispatcher's lock held and
	// must be quick.
	Waited func(pool string, waited time.Duration)

	// OpenPools makes a pool the dispatcher does not know unlimited
	// (bounded only by parallelism) instead of an error. 'tasuki run' sets
	// it: a pipeline written for a server's pools still runs on a laptop.
	OpenPools bool
}

// pool is a named slot count and the tickets waiting for it. The default
// pool "" has no own limit: only the dispatcher's parallelism applies.
type pool struct {
	name  string
	slots int // 0 means unlimited (bounded by parallelism only)
	used  int
	queue ticketHeap
}

// unitKey names what a slot is for: a task (unit 0), or a unit of a map
// task's items (unit = its first item + 1, so the zero value is a task).
type unitKey struct{ task, unit int }

// ticket is a ready task (or map unit) waiting for a slot.
type ticket struct {
	run      int64
	task     int
	unit     int // a map unit's first item + 1; 0 for a task
	priority int
	pool     string
	seq      uint64
	inbox    *inbox
	index    int       // in its pool's heap
	queued   time.Time // when it joined the line (for Waited)
}

// grant is a slot given to a task. The coordinator either starts the task or
// gives the slot back with Release.
type grant struct {
	task int
	unit int // a map unit's first item + 1; 0 for a task
	pool string
	err  string // set instead of a slot when the task cannot be queued
}

// NewDispatcher returns a dispatcher running at most parallel attempts at
// once, with the given pools (name to slot count).
func NewDispatcher(parallel int, pools map[string]int) *Dispatcher {
	if parallel <= 0 {
		parallel = 1
	}
	d := &Dispatcher{parallel: parallel, pools: map[string]*pool{"": {}}, tickets: map[int64]map[unitKey]*ticket{}}
	for name, slots := range pools {
		d.pools[name] = &pool{name: name, slots: slots}
	}
	return d
}

// Parallel is the most attempts the dispatcher runs at once.
func (d *Dispatcher) Parallel() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.parallel
}

// HasPool reports whether a pool of that name is configured.
func (d *Dispatcher) HasPool(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.pools[name]
	return ok
}

// readyTask is a task of a run that became ready, as the dispatcher sees it.
type readyTask struct {
	task     int
	unit     int // a map unit's first item + 1; 0 for a task
	priority int
	pool     string
}

// queueError is a task that could not be put in line, and why.
type queueError struct {
	task int
	unit int
	err  error
}

// enqueue puts ready tasks of one run in line and only then grants the slots
// that are free, so tasks that became ready together compete by priority for
// the first free slot as for every other: granting each on arrival would give
// a free slot to whichever came first. Enqueuing a task already in line does
// nothing. It returns the tasks that cannot be queued (their pool is not
// configured); the others are queued.
func (d *Dispatcher) enqueue(run int64, in *inbox, tasks ...readyTask) []queueError {
	d.mu.Lock()
	defer d.mu.Unlock()
	var failed []queueError
	for _, rt := range tasks {
		if err := d.push(run, in, rt); err != nil {
			failed = append(failed, queueError{task: rt.task, unit: rt.unit, err: err})
		}
	}
	d.pump()
	return failed
}

// push puts one ticket in line without granting anything. d.mu is held.
func (d *Dispatcher) push(run int64, in *inbox, rt readyTask) error {
	p, ok := d.pools[rt.pool]
	if !ok && d.OpenPools {
		p = &pool{name: rt.pool}
		d.pools[rt.pool] = p
	} else if !ok {
		return fmt.Errorf("pool %q is not configured", rt.pool)
	}
	byTask := d.tickets[run]
	if byTask == nil {
		byTask = map[unitKey]*ticket{}
		d.tickets[run] = byTask
	}
	key := unitKey{rt.task, rt.unit}
	if _, dup := byTask[key]; dup {
		return nil
	}
	d.seq++
	t := &ticket{run: run, task: rt.task, unit: rt.unit, priority: rt.priority, pool: rt.pool, seq: d.seq, inbox: in}
	if d.Waited != nil {
		t.queued = time.Now()
	}
	byTask[key] = t
	heap.Push(&p.queue, t)
	return nil
}

// withdraw takes every ticket of a run out of line (the run ended, is being
// cancelled or is draining).
func (d *Dispatcher) withdraw(run int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range d.tickets[run] {
		heap.Remove(&d.pools[t.pool].queue, t.index)
	}
	delete(d.tickets, run)
}

// release gives back a slot of the pool.
func (d *Dispatcher) release(poolName string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.running--
	if p := d.pools[poolName]; p != nil {
		p.used--
	}
	d.pump()
}

// occupy takes a slot of the pool without waiting in line, even past the
// limits: for an attempt found still running at recovery (adopted from a
// remote worker), which runs whether or not a slot is free; it is given
// back with release like a granted one.
func (d *Dispatcher) occupy(poolName string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.running++
	if p := d.pools[poolName]; p != nil {
		p.used++
	}
}

// setPaused stops (or resumes) granting slots, for a draining server.
func (d *Dispatcher) setPaused(paused bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.paused = paused
	d.pump()
}

// pump grants slots while some are free: each time to the best head of the
// pools that have room. Pools are few, so a grant costs O(pools + log n).
func (d *Dispatcher) pump() {
	for !d.paused && d.running < d.parallel {
		var best *pool
		for _, p := range d.pools {
			if len(p.queue) == 0 || (p.slots > 0 && p.used >= p.slots) {
				continue
			}
			if best == nil || p.queue.less(p.queue[0], best.queue[0]) {
				best = p
			}
		}
		if best == nil {
			return
		}
		t := heap.Pop(&best.queue).(*ticket)
		if byTask := d.tickets[t.run]; len(byTask) <= 1 {
			delete(d.tickets, t.run)
		} else {
			delete(byTask, unitKey{t.task, t.unit})
		}
		best.used++
		d.running++
		if d.Waited != nil {
			name := t.pool
			if name == "" {
				name = "default"
			}
			d.Waited(name, time.Since(t.queued))
		}
		t.inbox.put(grant{task: t.task, unit: t.unit, pool: t.pool})
	}
}

// Waiting says why a queued task has not started, or "" if it is not queued.
func (d *Dispatcher) Waiting(run int64, task int) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.tickets[run][unitKey{task, 0}]
	if !ok {
		return ""
	}
	p := d.pools[t.pool]
	switch {
	case d.paused:
		return "the executor is draining; the task starts after the restart"
	case p.slots > 0 && p.used >= p.slots:
		return fmt.Sprintf("pool %s: %d of %d slots in use", p.name, p.used, p.slots)
	default:
		return fmt.Sprintf("waiting for an executor slot: %d of %d in use", d.running, d.parallel)
	}
}

// PoolUsage is the state of one pool.
type PoolUsage struct {
	Name    string `json:"name"`
	Slots   int    `json:"slots"` // 0: bounded by parallelism only
	Used    int    `json:"used"`
	Waiting int    `json:"waiting"`
}

// Pools reports every pool's usage, by name.
func (d *Dispatcher) Pools() []PoolUsage {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]PoolUsage, 0, len(d.pools))
	for _, name := range slices.Sorted(maps.Keys(d.pools)) {
		p := d.pools[name]
		if name == "" {
			name = "default"
		}
		out = append(out, PoolUsage{Name: name, Slots: p.slots, Used: p.used, Waiting: len(p.queue)})
	}
	return out
}

// ticketHeap orders tickets by priority (higher first), then arrival.
type ticketHeap []*ticket

func (h ticketHeap) less(a, b *ticket) bool {
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	return a.seq < b.seq
}
func (h ticketHeap) Len() int           { return len(h) }
func (h ticketHeap) Less(i, j int) bool { return h.less(h[i], h[j]) }
func (h ticketHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *ticketHeap) Push(x any) {
	t := x.(*ticket)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *ticketHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return t
}

// inbox is a coordinator's mailbox of grants: the dispatcher never blocks
// on a busy coordinator.
type inbox = mailbox[grant]

func newInbox() *inbox { return newMailbox[grant]() }

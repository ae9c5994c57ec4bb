package lease

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/runner"
)

// Adoption: a server that starts leading (after a failover, or a restart)
// finds in the store attempts its predecessor handed to remote workers.
// Those workers may still run them: a worker keeps its attempts and their
// heartbeats going through a server outage (it ends them itself only after
// two thirds of a lease timeout without an answer), and sends its
// heartbeats to whichever server answers, which forwards them to the
// leader. Recording those attempts lost would throw their work away (hours
// of training, for a long task) and hold their tasks for a lease timeout.
//
// So the new leader adopts them: each becomes a lease of its broker again,
// held for the worker the store names, with a deadline a lease timeout
// away. A heartbeat from that worker naming the lease keeps it as any
// other (and binds it to the worker's token); its report is taken as any
// other. Only a lease not heard of within the timeout is lost, and only
// then is its task offered again: an adopted lease is never also in line,
// so an attempt never runs twice at once.
//
// Heartbeats may come before the runs are recovered (the server answers
// the worker protocol as soon as it leads): within the adoption window
// (AdoptFrom) a heartbeat for a lease (or a bundle) the broker does not
// hold is remembered rather than refused, and the lease adopted later
// counts it.
//
// The items of a map are adopted the same way (AdoptItems): the store
// records which worker was handed which items, a bundle at a time
// (OnLeaseItems, store.MapLease), and the runner adopts those not ended.

// earlyBeat is a heartbeat heard for a lease not yet adopted.
type earlyBeat struct {
	worker, owner string
	at            time.Time
}

// maxEarly bounds the heartbeats remembered before adoption.
const maxEarly = 1 << 16

// AdoptFrom opens the adoption window: for a lease timeout from now,
// heartbeats for leases this broker does not hold are remembered for
// Adopt rather than answered unknown (which would make their workers end
// the attempts). A server calls it when it starts leading, before it
// recovers its runs.
func (b *Broker) AdoptFrom(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.adoptUntil = now.Add(b.LeaseTimeout)
	b.early = map[string]earlyBeat{}
}

// Adoptable reports whether an attempt the store says ran on worker may
// still be running there: a remote worker's (it outlives the server); not
// the in-process executor's of any server ("local", "local:HOST"), whose
// processes died with it, nor an attempt no worker took.
func Adoptable(worker string) bool {
	return worker != "" && worker != localWorker && !strings.HasPrefix(worker, localWorker+":")
}

// Adopt is a runner.TaskFunc for an attempt the store says worker was
// running when the previous leader stopped: it holds the attempt as a
// lease of worker's, waiting a lease timeout for a heartbeat or a report
// of it, and returns how it ended (lost if the worker is not heard of).
// Cancelling ctx asks the worker to end it, as for Run.
func (b *Broker) Adopt(worker string) runner.TaskFunc {
	return b.adopt(worker, "")
}

// AdoptItems is Adopt for an attempt of a map's items the store says
// worker was handed in bundle (store.MapLease: the bundle's id, or the
// attempt's lease id when it came alone): the worker's heartbeats name the
// bundle, not its items, so the adopted leases of one bundle are a bundle
// again, bound to the first token that names it.
func (b *Broker) AdoptItems(worker, bundle string) runner.TaskFunc {
	return b.adopt(worker, bundle)
}

func (b *Broker) adopt(worker, bundle string) runner.TaskFunc {
	return func(ctx context.Context, a *runner.Attempt) runner.AttemptResult {
		now := b.Now()
		o := &offer{a: a, priority: a.Priority, labels: a.Labels, result: make(chan runner.AttemptResult, 1), ctx: ctx, offered: now, taken: now}
		task := a.TaskID
		if a.Items > 0 {
			task = a.Log.TaskID
		}
		l := &leaseState{id: api.LeaseID(a.RunID, task, a.Number), o: o, worker: worker, deadline: now.Add(b.LeaseTimeout), adopted: true}
		o.lease = l
		b.mu.Lock()
		if e, ok := b.early[l.id]; ok && e.worker == worker {
			l.owner, l.heard = e.owner, true
			if bundle == "" {
				delete(b.early, l.id) // a bundle's id is its first item's: kept for the others
			}
		}
		if old, ok := b.leases[l.id]; ok {
			// Not expected: the attempt is already held here. Keep that
			// lease; this attempt ends with it.
			b.mu.Unlock()
			b.Logger.Warn("adopt: the lease is already held", attemptAttrs(old, "worker", old.worker)...)
			return runner.AttemptResult{Outcome: attempt.Lost, Message: "adopted twice", Worker: worker}
		}
		b.leases[l.id] = l
		if bundle != "" {
			b.adoptInBundle(l, bundle)
		}
		heard := l.heard
		b.mu.Unlock()
		if level := attemptLevel(a); b.Logger.Enabled(ctx, level) {
			b.Logger.Log(ctx, level, "attempt adopted: waiting for its worker's heartbeat", attemptAttrs(l, "worker", worker, "heard", heard)...)
		}

		var res runner.AttemptResult
		select {
		case res = <-o.result:
		case <-ctx.Done():
			cause := context.Cause(ctx)
			if !errors.Is(cause, attempt.ErrPreempted) {
				cause = attempt.ErrCancelled
			}
			b.mu.Lock()
			l.stop = cause
			b.mu.Unlock()
			res = <-o.result // the worker reports, or the lease expires
		}
		b.observe(Observation{Ended: true, Pipeline: a.Pipeline, Labels: a.Labels, Outcome: res.Outcome, Ran: b.Now().Sub(now)})
		return res
	}
}

// adoptInBundle puts an adopted lease of a map's items in the bundle of
// that id, made again for the adopted leases of the bundle it was handed
// out in; b.mu is held. A heartbeat heard for the bundle before (early)
// binds it to that heartbeat's token.
func (b *Broker) adoptInBundle(l *leaseState, id string) {
	bs := b.bundles[id]
	if bs == nil || !bs.adopted || bs.worker != l.worker {
		if bs != nil {
			return // not expected: a bundle of that id is held (the lease stays alone)
		}
		bs = &bundleState{id: id, worker: l.worker, adopted: true}
		if e, ok := b.early[id]; ok && e.worker == l.worker {
			bs.owner, bs.heard = e.owner, true
		}
		if b.bundles == nil {
			b.bundles = map[string]*bundleState{}
		}
		b.bundles[id] = bs
	}
	if bs.heard && !l.heard {
		l.owner, l.heard = bs.owner, true
	}
	bs.leases = append(bs.leases, l)
	bs.held++
	l.bundle = bs
}

// bind gives an adopted bundle not yet heard of to the token that first
// names it, as bindAdopted does a lease; b.mu is held. It reports whether
// owner may act on the bundle.
func (bs *bundleState) bind(owner string) bool {
	if bs.adopted && !bs.heard {
		bs.heard = true
		bs.owner = owner
		return true
	}
	return bs.owner == owner
}

// adoptableLocked reports whether id, a lease not held, may still be
// adopted: the adoption window is open and id names a task's attempt;
// b.mu is held.
func (b *Broker) adoptableLocked(id string, now time.Time) bool {
	if b.early == nil || !now.Before(b.adoptUntil) {
		return false
	}
	// A task's lease, a map item's ("task.ITEM"), or a bundle's (its
	// first item's).
	_, _, _, err := api.ParseLeaseID(id)
	return err == nil
}

// pendingAdoptionLocked reports whether a log part or a report for id, a
// lease not held, may be for one not adopted yet: its worker sent it just
// as this server took over, before its runs were recovered. It is answered
// 503 (try again), not lease lost, which would end the attempt; b.mu is
// held.
func (b *Broker) pendingAdoptionLocked(id string) bool {
	_, held := b.leases[id]
	return !held && b.adoptableLocked(id, b.Now())
}

func notAdoptedYet(id string) error {
	return api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "lease %s: this server has just taken over and has not adopted it yet; try again", id)
}

// bindAdopted gives an adopted lease not yet heard of to the token that
// first names it (the store keeps the worker's name, not its token); b.mu
// is held. It reports whether owner may act on l.
func (l *leaseState) bindAdopted(owner string) bool {
	if l.adopted && !l.heard {
		l.heard = true
		l.owner = owner
		return true
	}
	return l.owner == owner
}

// rememberEarly keeps a heartbeat for a lease not held, within the
// adoption window; b.mu is held. It reports whether the heartbeat was
// kept (and must not be answered unknown).
func (b *Broker) rememberEarly(id, worker, owner string, now time.Time) bool {
	if worker == "" || len(worker) > maxWorkerName || !b.adoptableLocked(id, now) {
		return false
	}
	if _, ok := b.early[id]; !ok && len(b.early) >= maxEarly {
		return false
	}
	b.early[id] = earlyBeat{worker: worker, owner: owner, at: now}
	return true
}

// HandedItems is a hand-out of attempts of a map's items to a remote
// worker, for Broker.OnLeaseItems: a bundle, or a lease alone.
type HandedItems struct {
	Worker string
	// ID is the bundle's id, or the lease's when it came alone: what the
	// worker's heartbeats name, and what AdoptItems is given again.
	ID       string
	Attempts []*runner.Attempt
	At       time.Time // when it was handed out
}

// Recording hand-outs of map items costs a write, and a map's items are
// handed out by the thousand a second: a write before each lease request's
// answer halved the items a worker could take. So a hand-out is recorded
// before the worker has it only when a record of it could be mistaken
// for an older one: an attempt past an item's first (a retry, an item
// lost before), or a lease handed out before and given back. The others,
// first attempts (nearly all of a map's), are recorded just after, by
// recordLoop, a batch per write. One not yet written when the leader dies
// is not adopted: with no record, its items are lost and held for longer
// than any worker could still run them (Runner.LostHold), as before
// records. Nothing can be mistaken for an item's first attempt.

// A map's first hand-out to a remote worker is recorded before its answer
// too: a map with no record then had no item on a remote worker, so the
// items a restarted server finds lost were its own executor's, whose
// processes it killed, and run again at once (Runner.LostHold) instead of
// being held as if a remote worker might still run them.

// mapRef names a map task of a run.
type mapRef struct {
	run  int64
	task int
}

// maxMapsRecorded bounds Broker.mapsRecorded.
const maxMapsRecorded = 1 << 14

// maxLateRecords bounds the hand-outs waiting for recordLoop (the store
// may be unreachable): past it, the newest are not recorded.
const maxLateRecords = 1 << 16

// recordItems tells OnLeaseItems of the attempts of map items among got,
// just taken by worker: now those that must be recorded before the worker
// has them (above), in one call, the others to recordLoop. When the call
// fails, every lease of got is given back (none was handed out yet) and
// the error is the worker's, which asks again later.
func (b *Broker) recordItems(worker string, got []*leaseState) error {
	if b.OnLeaseItems == nil {
		return nil
	}
	type group struct {
		h     HandedItems
		early bool // to be recorded before it is answered
	}
	var groups []group
	at := b.Now()
	b.mu.Lock()
	for _, l := range got {
		if l.o.a.Items == 0 {
			continue
		}
		id := l.id
		if l.bundle != nil {
			id = l.bundle.id // a bundle's leases come one after the other
		}
		if n := len(groups); n == 0 || groups[n-1].h.ID != id {
			groups = append(groups, group{h: HandedItems{Worker: worker, ID: id, At: at}})
		}
		g := &groups[len(groups)-1]
		g.h.Attempts = append(g.h.Attempts, l.o.a)
		g.early = g.early || l.o.handed || !firstAttempts(l.o.a) || !b.mapsRecorded[mapRef{l.o.a.RunID, l.o.a.Index}]
		l.o.handed = true
	}
	var now, late []HandedItems
	for _, g := range groups {
		if g.early {
			now = append(now, g.h)
		} else {
			late = append(late, g.h)
		}
	}
	if len(late) > 0 {
		if len(b.late) < maxLateRecords {
			b.late = append(b.late, late...)
		} else if !b.lateDropped {
			b.lateDropped = true
			b.Logger.Warn("too many hand-outs of map items wait to be recorded: some are not; those are held rather than adopted after a failover", "waiting", len(b.late))
		}
		select {
		case b.lateWake <- struct{}{}:
		default:
		}
	}
	b.mu.Unlock()
	if len(now) == 0 {
		return nil
	}
	err := b.OnLeaseItems(now)
	if err == nil {
		b.mu.Lock()
		if b.mapsRecorded == nil || len(b.mapsRecorded) >= maxMapsRecorded {
			b.mapsRecorded = map[mapRef]bool{} // forgotten maps are recorded early once more
		}
		for _, h := range now {
			for _, a := range h.Attempts {
				b.mapsRecorded[mapRef{a.RunID, a.Index}] = true
			}
		}
		b.mu.Unlock()
		return nil
	}
	b.Logger.Warn("could not record which worker takes which map items; offering them again", "worker", worker, "err", err)
	for _, l := range got {
		b.giveBack(l)
	}
	return api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "could not record the attempts handed out: %v", err)
}

// firstAttempts reports whether every item a's attempt runs is on its
// first attempt.
func firstAttempts(a *runner.Attempt) bool {
	_, attempts := a.Unit()
	for _, n := range attempts {
		if n != 1 {
			return false
		}
	}
	return true
}

// recordLoop writes the hand-outs recordItems left for later, a batch
// per write (those that came while the last was written), until ctx ends.
func (b *Broker) recordLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.lateWake:
		}
		b.recordLate()
	}
}

// recordLate writes the hand-outs waiting for recordLoop. A failure is
// logged: their items are held rather than adopted after a failover.
func (b *Broker) recordLate() {
	b.mu.Lock()
	batch := b.late
	b.late, b.lateDropped = nil, false
	b.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	if err := b.OnLeaseItems(batch); err != nil {
		b.Logger.Warn("could not record which workers took which map items; after a failover they are held rather than adopted", "hand-outs", len(batch), "err", err)
	}
}

package lease

import (
	"context"
	"errors"
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
// (AdoptFrom) a heartbeat for a lease the broker does not hold is
// remembered rather than refused, and the lease adopted later counts it.

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
			delete(b.early, l.id)
		}
		if old, ok := b.leases[l.id]; ok {
			// Not expected: the attempt is already held here. Keep that
			// lease; this attempt ends with it.
			b.mu.Unlock()
			b.Logger.Warn("adopt: the lease is already held", attemptAttrs(old, "worker", old.worker)...)
			return runner.AttemptResult{Outcome: attempt.Lost, Message: "adopted twice", Worker: worker}
		}
		b.leases[l.id] = l
		heard := l.heard
		b.mu.Unlock()
		b.Logger.Info("attempt adopted: waiting for its worker's heartbeat", attemptAttrs(l, "worker", worker, "heard", heard)...)

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
	if b.early == nil || !now.Before(b.adoptUntil) || worker == "" || len(worker) > maxWorkerName {
		return false
	}
	if _, task, _, err := api.ParseLeaseID(id); err != nil || strings.Contains(task, ".") {
		// Not a task's lease (a map item's is "task.ITEM"; task ids have
		// no dot): items are not adopted, and their worker must end them
		// before they run again.
		return false
	}
	if _, ok := b.early[id]; !ok && len(b.early) >= maxEarly {
		return false
	}
	b.early[id] = earlyBeat{worker: worker, owner: owner, at: now}
	return true
}

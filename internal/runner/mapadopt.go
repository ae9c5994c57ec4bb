package runner

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Adoption of a map's items: a server that takes over a running map (a
// failover, a restart) finds in the store which items its predecessor
// handed to remote workers (store.MapLease, written by the broker as it
// hands them out). Those workers may still run them, as they may a task's
// attempt (Runner.Adopt): each such attempt of the items is taken over as
// it is (Runner.AdoptItems), so the work in flight is not thrown away and
// the items are neither run again nor held for a lease timeout. An item
// not in such a record, in flight when the previous executor stopped, is
// lost as before.
//
// A record is not updated when its items end (that would be a write per
// item): an attempt of it still runs when none of its items has a row of
// that attempt or later. An item handed out more than once (a retry, a
// hand-out given back) belongs to its latest hand-out only.

// leasedUnit is an attempt of a map's items a remote worker was handed
// (a unit of a store.MapLease), as recovery found it.
type leasedUnit struct {
	worker, bundle  string
	started         time.Time
	items, attempts []int
	run             TaskFunc // Runner.AdoptItems's, for worker and bundle
}

// attemptOf is item i's attempt in lu (0 when lu is nil or lacks i).
func (lu *leasedUnit) attemptOf(i int) int {
	if lu == nil {
		return 0
	}
	for k, it := range lu.items {
		if it == i {
			return lu.attempts[k]
		}
	}
	return 0
}

// after reports whether lu hands item i out at an attempt past n.
func (lu *leasedUnit) after(i, n int) bool { return lu.attemptOf(i) > n }

// lostItemsWorker is the worker to hold the lost items of map task i
// for (Runner.LostHold): this executor's own when the store keeps records
// of hand-outs to remote workers and has none for the map (a map's first
// hand-out is recorded before the worker has it, so none went out),
// unknown ("") otherwise.
func (c *coordinator) lostItemsWorker(i int) string {
	if _, ok := c.r.Store.(store.MapLeases); ok && c.r.AdoptItems != nil && !c.handedRemote[i] {
		return c.r.Worker
	}
	return ""
}

// readLeased reads which attempts of map task i's items remote workers
// were handed, and returns, by item, those Runner.AdoptItems adopts: each
// item's latest hand-out (by attempt, then by time), when it is the latest
// of every item it runs.
func (c *coordinator) readLeased(i int) (map[int]*leasedUnit, error) {
	ms, ok := c.r.Store.(store.MapLeases)
	if !ok || c.r.AdoptItems == nil {
		return nil, nil
	}
	ls, err := ms.MapLeases(context.Background(), c.run.ID, i)
	if err != nil {
		return nil, fmt.Errorf("read which workers were handed the items of map %s: %w", c.eng.Graph.Node(i).ID, err)
	}
	if len(ls) > 0 {
		if c.handedRemote == nil {
			c.handedRemote = map[int]bool{}
		}
		c.handedRemote[i] = true
	}
	var units []*leasedUnit
	for _, l := range ls {
		for _, u := range l.Units {
			if len(u.Items) == 0 || len(u.Items) != len(u.Attempts) {
				continue
			}
			units = append(units, &leasedUnit{worker: l.Worker, bundle: l.ID, started: l.StartedAt, items: u.Items, attempts: u.Attempts})
		}
	}
	latest := map[int]*leasedUnit{}
	for _, lu := range units {
		for k, it := range lu.items {
			old := latest[it]
			if old == nil {
				latest[it] = lu
				continue
			}
			if n, o := lu.attempts[k], old.attemptOf(it); n > o || (n == o && lu.started.After(old.started)) {
				latest[it] = lu
			}
		}
	}
	out := map[int]*leasedUnit{}
	for _, lu := range units {
		whole := true
		for _, it := range lu.items {
			whole = whole && latest[it] == lu
		}
		if !whole {
			continue // some of its items were handed out again since
		}
		if lu.run = c.r.AdoptItems(lu.worker, lu.bundle); lu.run == nil {
			continue
		}
		for _, it := range lu.items {
			out[it] = lu
		}
	}
	return out, nil
}

// spare adds to spared the keys (reapOrphans) of the processes of the
// leased attempts: a worker on this machine may run them, under this
// server's data directory.
func spare(spared map[string]bool, task string, leased map[int]*leasedUnit) {
	for _, lu := range leased {
		item := ""
		if len(lu.items) == 1 {
			item = strconv.Itoa(lu.items[0]) // a batch's processes have no TASUKI_ITEM_INDEX
		}
		spared[orphanKey(task, item, strconv.Itoa(lu.attempts[0]))] = true
	}
}

// takeLeased takes over the leased units whose every item was found in
// flight (inflight): they stay running, as units of the map, for
// adoptUnits to launch. The items of a unit found in flight only in part
// are lost (lostNow).
func (f *fanout) takeLeased(leased map[int]*leasedUnit, inflight map[int]bool, lostNow func(int)) {
	seen := map[*leasedUnit]bool{}
	for _, i := range slices.Sorted(maps.Keys(inflight)) {
		lu := leased[i]
		if seen[lu] {
			continue
		}
		seen[lu] = true
		whole := true
		for _, it := range lu.items {
			whole = whole && inflight[it]
		}
		if !whole {
			for _, it := range lu.items {
				if inflight[it] {
					lostNow(it)
				}
			}
			continue
		}
		for _, it := range lu.items {
			f.set(it, itemRunning)
			f.active++
		}
		f.units[lu.items[0]] = &unit{items: lu.items, attempts: lu.attempts, started: lu.started}
		f.adopted = append(f.adopted, lu)
	}
}

// adoptUnits launches the units of map f taken over at recovery
// (takeLeased): each holds a slot and ends like a unit launched here, so
// its report is recorded as its own.
func (c *coordinator) adoptUnits(f *fanout) {
	if len(f.adopted) == 0 {
		return
	}
	node := c.eng.Graph.Node(f.task)
	t := f.t
	items := 0
	for _, lu := range f.adopted {
		first, n := lu.items[0], lu.attempts[0]
		items += len(lu.items)
		a := &Attempt{
			RunID: c.run.ID, Pipeline: c.pipeline.Name, TaskID: node.ID, Index: f.task, Number: n,
			Item: first, Items: len(lu.items), Priority: t.Priority, Labels: t.Labels,
			Log: logs.Key{RunID: c.run.ID, TaskID: ItemLogID(node.ID, first), Attempt: n},
			dir: c.dir, workDir: c.workDir, unitItems: lu.items, unitAttempts: lu.attempts,
		}
		a.describe = func() (attempt.Spec, error) {
			return attempt.Spec{}, fmt.Errorf("attempt %d of item %d of map %s was adopted from the worker running it: it is not described again", n, first, node.ID)
		}
		c.r.Dispatcher.occupy(t.Pool)
		ctx, cancel := context.WithCancelCause(context.Background())
		unit := first + 1
		c.running[unitKey{f.task, unit}] = &attemptHandle{cancel: cancel, pool: t.Pool}
		run := lu.run
		go func() {
			res := run(ctx, a)
			c.done <- completion{task: f.task, unit: unit, attempt: n, res: res, at: c.now()}
		}()
	}
	c.log.Info("map items found running on remote workers: adopted, waiting for the workers", "task", node.ID, "attempts", len(f.adopted), "items", items)
	f.adopted = nil
}

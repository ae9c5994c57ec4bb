package runner

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/cache"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// This file drives the map tasks of an executing run: their start
// (expansion), their items through the dispatcher and the executor, and
// their end. The item bookkeeping itself is fanout's.

// mapStore is the store's map part.
func (c *coordinator) mapStore() (store.Maps, error) {
	ms, ok := c.r.Store.(store.Maps)
	if !ok {
		return nil, errors.New("this store does not keep map items")
	}
	return ms, nil
}

// ItemLogID is the task part of the log key of a map item's attempts:
// "task.ITEM" (logs.ItemTask).
func ItemLogID(task string, item int) string { return logs.ItemTask(task, item) }

// startMap starts map task i, which just became ready: its attempt begins
// and its items are expanded (or, for a map that ran before in this run
// and was reset by an operator, taken up again: what succeeded is kept).
func (c *coordinator) startMap(i int) {
	now := c.now()
	n := c.mem.Task(i).Attempt + 1
	att := store.Attempt{RunID: c.run.ID, Index: i, Attempt: n, Worker: c.r.Worker, StartedAt: now}
	if _, err := c.apply(engine.Event{Kind: engine.EvTaskStarted, Task: i}, now, att); err != nil {
		c.log.Warn("map start rejected", "task", c.eng.Graph.Node(i).ID, "err", err)
		return
	}
	f := c.newFanout(i)
	info, ok, err := c.mapInfo(i)
	switch {
	case err != nil:
		// Not "never expanded": expanding again would delete every item
		// row of the map (and run what succeeded again).
	case ok:
		err = c.loadMap(f, info, true)
	case f.zip != nil:
		err = c.zipExpand(f)
	default:
		var v itemValues
		if v, err = c.expand(i); err == nil {
			f.setItems(v)
			f.expanded = true
			f.changed = true
		}
	}
	if err != nil {
		msg := err.Error()
		att := store.Attempt{RunID: c.run.ID, Index: i, Attempt: n, FinishedAt: now, Outcome: attempt.Failed, Message: msg}
		if _, err := c.apply(engine.Event{Kind: engine.EvTaskFailed, Task: i, Attempt: n, Message: msg}, now, att); err != nil {
			c.log.Warn("record failed map", "err", err)
		}
		return
	}
	c.maps[i] = f
	c.mapInfos = nil // taken: a later start of this map finds it in its fanout's rows
	c.endMapIfDone(i)
}

func (c *coordinator) newFanout(i int) *fanout {
	t := &c.pipeline.Tasks[i]
	f := newFanout(i, t, retryPolicy(t.Retry), c.r.Dispatcher.Parallel())
	if up, ok := c.zipFrom(i); ok {
		f.zip = &zipLink{from: up, id: c.eng.Graph.Node(up).ID, counted: map[int]struct{}{}}
	}
	return f
}

// mapInfo returns the stored state of map task i, if it was expanded
// before. An error reading the store is not "never expanded": the caller
// must not expand again (which would delete the map's item rows).
func (c *coordinator) mapInfo(i int) (store.MapInfo, bool, error) {
	if c.mapInfos == nil {
		ms, err := c.mapStore()
		if err != nil {
			return store.MapInfo{}, false, err
		}
		if c.mapInfos, err = ms.MapInfos(context.Background(), c.run.ID); err != nil {
			return store.MapInfo{}, false, fmt.Errorf("read the run's maps: %w", err)
		}
	}
	for _, mi := range c.mapInfos {
		if mi.Index == i {
			return mi, true, nil
		}
	}
	return store.MapInfo{}, false, nil
}

// resumeMap takes up map task i, found running when the run was loaded:
// items that ended stay ended, items a remote worker was handed and may
// still run are adopted (mapadopt.go), and the other items that were
// running (or queued) when the previous executor stopped are lost, not
// charged, and run again (held first when the executor may have been a
// remote worker that still runs them).
func (c *coordinator) resumeMap(i int) error {
	f := c.newFanout(i)
	info, ok, err := c.mapInfo(i)
	if err != nil {
		return fmt.Errorf("resume map %s: %w", c.eng.Graph.Node(i).ID, err)
	}
	switch {
	case !ok && f.zip != nil:
		if err := c.zipExpand(f); err != nil {
			return c.failMapNow(i, err.Error())
		}
	case !ok:
		// Started but never expanded: expand now.
		v, err := c.expand(i)
		if err != nil {
			return c.failMapNow(i, err.Error())
		}
		f.setItems(v)
		f.expanded = true
		f.changed = true
	default:
		if err := c.loadMap(f, info, false); err != nil {
			return fmt.Errorf("resume map %s: %w", c.eng.Graph.Node(i).ID, err)
		}
	}
	c.maps[i] = f
	delete(c.leased, i)
	c.adoptUnits(f)
	c.endMapIfDone(i)
	return nil
}

// failMapNow ends a running map task as failed, with msg.
func (c *coordinator) failMapNow(i int, msg string) error {
	now := c.now()
	n := c.mem.Task(i).Attempt
	att := store.Attempt{RunID: c.run.ID, Index: i, Attempt: n, FinishedAt: now, Outcome: attempt.Failed, Message: msg}
	_, err := c.apply(engine.Event{Kind: engine.EvTaskFailed, Task: i, Attempt: n, Message: msg}, now, att)
	return err
}

// loadMap fills f from the store: the item values and the kept rows. With
// restart (an operator reset the map), items that did not succeed are
// ready again with a fresh retry budget; otherwise (a resume) they keep
// their state, and items that were in flight are ready again.
func (c *coordinator) loadMap(f *fanout, info store.MapInfo, restart bool) error {
	ms, err := c.mapStore()
	if err != nil {
		return err
	}
	ctx := context.Background()
	var verdicts map[int]zipVerdict
	if f.zip != nil {
		// Its values are its upstream's items' results.
		f.setCount(info.Items)
		f.zip.vals.init(info.Items)
		if verdicts, err = c.zipLoad(f); err != nil {
			return err
		}
	} else {
		var v itemValues
		const page = 1 << 16
		for from := 0; from < info.Items; from += page {
			vals, err := ms.MapValues(ctx, c.run.ID, f.task, from, page)
			if err != nil {
				return fmt.Errorf("read the items: %w", err)
			}
			for _, raw := range vals {
				v.add(raw)
			}
		}
		if v.len() != info.Items {
			return fmt.Errorf("read %d item values of %d", v.len(), info.Items)
		}
		f.setItems(v)
	}
	f.next = info.Next
	f.mark = info.Next
	f.slow = append(f.slow[:0], info.Slowest...)
	var hold time.Duration
	if !restart && c.r.LostHold != nil {
		hold = c.r.LostHold(c.lostItemsWorker(f.task))
	}
	now := c.now()
	var leased map[int]*leasedUnit // by item: the adoptable units a remote worker was handed
	if !restart {
		leased = c.leased[f.task]
	}
	inflight := map[int]bool{} // items of leased units found in flight, adopted below
	var lostNow func(i int)
	lost := func(i int) {
		if lu := leased[i]; lu != nil && f.tries[i].attempt < lu.attemptOf(i) {
			inflight[i] = true // its worker may still run it
			return
		}
		lostNow(i)
	}
	lostNow = func(i int) {
		// The attempt that was in flight (if it started: which is not
		// known for an item without a row) counts, uncharged, so the next
		// is a new number with a log of its own, and an item that brings
		// every executor down stops at engine.MaxUncharged.
		tr := f.tries[i]
		tr.attempt++
		f.tries[i] = tr
		row := store.MapItem{Index: f.task, Item: i, State: engine.TaskPending, Attempt: tr.attempt, Spent: tr.spent, FinishedAt: now,
			Message: "lost: the executor stopped while the item was in flight"}
		if tr.attempt-tr.spent > engine.MaxUncharged {
			f.set(i, itemFailed)
			f.unsuccessful++
			row.State, row.Message = engine.TaskFailed, fmt.Sprintf("lost %d times: the item stops every executor it runs on", tr.attempt-tr.spent)
			if len(f.messages) < 3 {
				f.messages = append(f.messages, fmt.Sprintf("item %d: %s", i, row.Message))
			}
			f.dirty[i] = row
			c.zipFeed(f, i, nil)
			return
		}
		if hold > 0 {
			// Held, and written so: a recovery before readyAt (the next
			// leader fails in turn) finds it waiting, not in flight, and
			// does not count it lost again.
			tr := f.tries[i]
			tr.readyAt = now.Add(hold)
			f.tries[i] = tr
			row.State, row.ReadyAt = engine.TaskRetryWait, tr.readyAt
			f.dirty[i] = row
			f.set(i, itemRetryWait)
			c.wakeItem(f.task, i, tr.readyAt)
			return
		}
		f.dirty[i] = row
		f.again = append(f.again, i)
	}
	seen := 0 // items below it were looked at
	for from := 0; ; {
		rows, err := ms.MapItems(ctx, store.MapItemFilter{RunID: c.run.ID, Index: f.task, From: from, Limit: store.MaxMapItemsLimit})
		if err != nil {
			return fmt.Errorf("read the items' states: %w", err)
		}
		for _, row := range rows {
			for ; seen < row.Item && seen < f.next; seen++ {
				if f.runnable(seen) {
					lost(seen) // started, never ended: in flight when the executor stopped
				}
			}
			seen = max(seen, row.Item+1)
			if row.Item >= f.n {
				continue
			}
			st := itemStateOf(row.State)
			switch {
			case st == itemSkipped && f.zip != nil && strings.HasPrefix(row.Message, zipNotRun):
				// Skipped because its upstream item did not succeed: it
				// is looked at again (zipSettle) on a reset, or when the
				// upstream item has succeeded since; otherwise it counts.
				if restart || f.runnable(row.Item) {
					msg := "reset: run again"
					if !restart {
						msg = fmt.Sprintf("item %d of %s succeeded: run after all", row.Item, f.zip.id)
					}
					f.tries[row.Item] = itemTry{attempt: row.Attempt}
					f.dirty[row.Item] = store.MapItem{Index: f.task, Item: row.Item, State: engine.TaskPending, Attempt: row.Attempt, Message: msg}
					continue
				}
				f.set(row.Item, itemSkipped)
				f.zip.counted[row.Item] = struct{}{}
				f.upSkipped++
				if len(f.messages) < 3 {
					f.messages = append(f.messages, fmt.Sprintf("item %d: %s", row.Item, row.Message))
				}
			case st == itemSucceeded || st == itemSkipped:
				f.set(row.Item, st)
				if row.CachedFrom != 0 {
					f.cached++
				}
			case restart && st != itemPending:
				f.tries[row.Item] = itemTry{attempt: row.Attempt}
				f.again = append(f.again, row.Item)
				f.dirty[row.Item] = store.MapItem{Index: f.task, Item: row.Item, State: engine.TaskPending, Attempt: row.Attempt, Message: "reset: run again"}
			case st.unsuccessful():
				f.tries[row.Item] = itemTry{attempt: row.Attempt, spent: row.Spent}
				f.set(row.Item, st)
				f.unsuccessful++
				if len(f.messages) < 3 {
					f.messages = append(f.messages, fmt.Sprintf("item %d: %s", row.Item, nonEmpty(row.Message, string(row.State))))
				}
			case st == itemRetryWait && row.ReadyAt.After(now) && !leased[row.Item].after(row.Item, row.Attempt):
				f.tries[row.Item] = itemTry{attempt: row.Attempt, spent: row.Spent, readyAt: row.ReadyAt}
				f.set(row.Item, itemRetryWait)
				c.wakeItem(f.task, row.Item, row.ReadyAt)
			case st == itemRetryWait:
				// Its retry was due: it may have been running (as its
				// next attempt) when the executor stopped.
				f.tries[row.Item] = itemTry{attempt: row.Attempt, spent: row.Spent}
				lost(row.Item)
			default:
				f.tries[row.Item] = itemTry{attempt: row.Attempt, spent: row.Spent}
				lost(row.Item)
			}
		}
		if len(rows) < store.MaxMapItemsLimit {
			break
		}
		from = rows[len(rows)-1].Item + 1
	}
	for ; seen < f.next; seen++ {
		if f.runnable(seen) {
			lost(seen)
		}
	}
	f.takeLeased(leased, inflight, lostNow)
	if f.zip != nil {
		c.zipSettle(f, verdicts)
	}
	if f.bad() > f.allowed {
		f.stopping = true
	}
	f.changed = true
	return nil
}

// fillMaps puts the items the running maps may start now in line, as
// tickets beside the tasks that became ready.
func (c *coordinator) fillMaps(batch []readyTask) []readyTask {
	for i, f := range c.maps {
		t := f.t
		for _, u := range f.take() {
			batch = append(batch, readyTask{task: i, unit: u.items[0] + 1, priority: t.Priority, pool: t.Pool})
		}
	}
	return batch
}

// startUnit takes a slot granted to a unit of a map's items.
func (c *coordinator) startUnit(g grant) (start, bool) {
	f := c.maps[g.task]
	var u *unit
	if f != nil {
		u = f.units[g.unit-1]
	}
	if g.err != "" {
		if u != nil && u.queued {
			// The pool is not configured: every item of the unit fails.
			c.unitDone(f, u, attempt.Result{Outcome: attempt.Failed, Message: g.err}, c.now(), "")
			c.endMapIfDone(g.task)
		}
		return start{}, false
	}
	if u == nil || !u.queued || c.draining || c.mem.Run().Cancelling || f.cancelling {
		c.r.Dispatcher.release(g.pool)
		return start{}, false
	}
	u.queued = false
	u.started = c.now()
	for _, i := range u.items {
		f.set(i, itemRunning)
	}
	return start{task: g.task, unit: g.unit, attempt: u.attempts[0], pool: g.pool}, true
}

// launchUnit runs the attempt of a unit of a map's items.
func (c *coordinator) launchUnit(s start) {
	f := c.maps[s.task]
	u := f.units[s.unit-1]
	node := c.eng.Graph.Node(s.task)
	t := f.t
	first := u.items[0]
	a := &Attempt{
		RunID:    c.run.ID,
		Pipeline: c.pipeline.Name,
		TaskID:   node.ID,
		Index:    s.task,
		Number:   s.attempt,
		Item:     first,
		Items:    len(u.items),
		Priority: t.Priority,
		Labels:   t.Labels,
		Log:      logs.Key{RunID: c.run.ID, TaskID: ItemLogID(node.ID, first), Attempt: s.attempt},
		dir:      c.dir,
		workDir:  c.workDir,

		unitItems:    u.items,
		unitAttempts: u.attempts,
	}
	needs := c.needResults(a, s.task)
	var item json.RawMessage
	var items []json.RawMessage
	if f.batch > 1 {
		items = make([]json.RawMessage, len(u.items))
		for k, i := range u.items {
			items[k] = f.value(i)
		}
	} else {
		item = f.value(first)
	}
	trigger := c.run.Trigger
	a.describe = func() (attempt.Spec, error) {
		env := c.taskEnv(a, t, trigger)
		if item != nil {
			itemEnv(env, first, item)
		}
		s, err := f.describe(c.r.Kinds, env, needs)
		if err != nil {
			return s, err
		}
		s.Item, s.Items = item, items
		if err := c.addArtifacts(&s, t, node.Needs); err != nil {
			return s, err
		}
		return s, c.addSecrets(&s, t)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	c.running[unitKey{s.task, s.unit}] = &attemptHandle{cancel: cancel, pool: s.pool}
	go func() {
		res := c.execute(ctx, a, t, item)
		c.done <- completion{task: s.task, unit: s.unit, attempt: s.attempt, res: res, at: c.now()}
	}()
}

// unitEnded records how the attempt of a unit of a map's items ended.
func (c *coordinator) unitEnded(comp completion) {
	key := unitKey{comp.task, comp.unit}
	res := comp.res
	if h, ok := c.running[key]; ok {
		h.cancel(nil)
		delete(c.running, key)
		c.r.Dispatcher.release(h.pool)
		if h.preempt && res.Outcome == attempt.Cancelled {
			res = AttemptResult{Outcome: attempt.Preempted, ExitCode: res.ExitCode, Message: "handed back: the executor is shutting down", Worker: res.Worker}
		}
	}
	f := c.maps[comp.task]
	if f == nil {
		return
	}
	u := f.units[comp.unit-1]
	if u == nil {
		return
	}
	c.unitDone(f, u, res, comp.at, res.Worker)
	c.endMapIfDone(comp.task)
}

// unitDone records the end of every item of a unit.
func (c *coordinator) unitDone(f *fanout, u *unit, res attempt.Result, at time.Time, worker string) {
	delete(f.units, u.items[0])
	started := u.started
	if started.IsZero() {
		started = at
	}
	if worker == "" {
		worker = c.r.Worker // this machine's executor, as for a task's attempt
	}
	o := itemOutcome{exit: res.ExitCode, message: res.Message, worker: worker, charged: true, cached: res.CachedFrom}
	switch res.Outcome {
	case attempt.Succeeded:
		o.state = itemSucceeded
	case attempt.TimedOut:
		o.state = itemTimedOut
	case attempt.Cancelled:
		o.state = itemCancelled
	case attempt.Lost, attempt.Preempted:
		o.state, o.charged = itemPending, false
	default:
		o.state = itemFailed
	}
	var recs []engine.Record
	for k, i := range u.items {
		io := o
		if o.state == itemSucceeded {
			switch {
			case f.batch > 1 && k < len(res.Results):
				io.result = res.Results[k]
			case f.batch == 1:
				io.result = res.Result
			}
			if err := store.CheckJSON("result", io.result); err != nil {
				io = itemOutcome{state: itemFailed, exit: o.exit, message: "result refused: " + err.Error(), worker: worker, charged: true}
			} else if f.batch == 1 {
				c.keepOutputs(f.task, i, res)
				c.remember(f.task, i, res, at)
			}
		}
		if rec := f.end(i, u.attempts[k], started, at, io, uint64(c.run.ID)); rec != nil {
			recs = append(recs, *rec)
		}
		c.zipFeed(f, i, io.result)
		if f.state[i] == itemRetryWait {
			c.wakeItem(f.task, i, f.tries[i].readyAt)
		}
		if row, ok := f.dirty[i]; ok && len(u.items) > 1 {
			// The items of a batch share the log of the process that ran them.
			row.Log = ItemLogID(c.eng.Graph.Node(f.task).ID, u.items[0])
			f.dirty[i] = row
		}
	}
	if len(recs) > 0 {
		c.itemRecs = append(c.itemRecs, store.Change{RunID: c.run.ID, Transition: engine.Transition{Records: recs}})
		c.records = append(c.records, recs...)
	}
	c.itemWrites += len(u.items)
	if !f.stopping {
		return
	}
	// Too many failures: what is still waiting for a slot does not start.
	f.unqueue()
}

// unqueue takes the map's units that wait for a slot out of line (their
// items are pending again); their grants, if any arrive, are given back.
func (f *fanout) unqueue() {
	for first, u := range f.units {
		if !u.queued {
			continue
		}
		delete(f.units, first)
		for _, i := range u.items {
			f.active--
			f.set(i, itemPending)
			f.again = append(f.again, i)
		}
	}
}

// cancelMap stops map task i: running items are stopped (and recorded
// cancelled when their executors say they ended), nothing more starts.
func (c *coordinator) cancelMap(i int) {
	f := c.maps[i]
	if f == nil || f.cancelling {
		return
	}
	f.cancelling, f.stopping = true, true
	f.unqueue()
	f.again = nil
	for k, h := range c.running {
		if k.task == i && k.unit > 0 {
			h.cancel(attempt.ErrCancelled)
		}
	}
	c.endMapIfDone(i)
}

// endMapIfDone ends map task i when its items are done.
func (c *coordinator) endMapIfDone(i int) {
	f := c.maps[i]
	if f == nil || !f.finished() || c.mem.Task(i).State != engine.TaskRunning {
		return
	}
	now := c.now()
	n := c.mem.Task(i).Attempt
	ev := f.verdict(n)
	outcome := attempt.Succeeded
	switch ev.Kind {
	case engine.EvTaskFailed:
		outcome = attempt.Failed
	case engine.EvTaskCancelled:
		outcome = attempt.Cancelled
	}
	att := store.Attempt{RunID: c.run.ID, Index: i, Attempt: n, FinishedAt: now, Outcome: outcome, Message: ev.Message}
	// The map's last item rows go with its end, in the same commit, and
	// the record of the workers its items were handed to goes.
	mc := f.flush()
	if mc == nil {
		mc = &store.MapChange{Index: f.task}
	}
	mc.Ended = true
	c.pending = append(c.pending, store.Change{RunID: c.run.ID, Maps: []store.MapChange{*mc}})
	if _, err := c.apply(ev, now, att); err != nil {
		c.log.Warn("map end rejected", "task", c.eng.Graph.Node(i).ID, "err", err)
	}
	delete(c.maps, i)
	c.zipUpstreamEnded(i)
}

// flushMaps queues what every running map must write with the next commit.
func (c *coordinator) flushMaps() {
	c.pending = append(c.pending, c.itemRecs...)
	c.itemRecs = c.itemRecs[:0]
	released := false
	for _, f := range c.maps {
		c.flushMap(f)
		released = f.zipRelease() || released // their upstream items' successes are in this commit
	}
	if released {
		// Wake the loop, which may be about to wait: what the commit
		// released is taken at its top, like a grant.
		select {
		case c.inbox.signal <- struct{}{}:
		default:
		}
	}
}

// Group commits of map items: the ends of items (and nothing else) are
// written together, at most itemCommitDelay after the first of them or
// once itemCommitBatch of them are waiting, instead of at every turn of
// the loop: a map of cheap items would otherwise cost a commit (an fsync)
// per handful of items.
const (
	itemCommitDelay = 100 * time.Millisecond
	itemCommitBatch = 4096
)

// itemsMayWait reports whether what is pending is only the ends of map
// items, which may wait for the next group commit, and how long.
func (c *coordinator) itemsMayWait() (time.Duration, bool) {
	if c.itemWrites == 0 || len(c.pending) > 0 || len(c.kills) > 0 || c.draining || c.itemWrites >= itemCommitBatch {
		return 0, false
	}
	if len(c.mapStarts) > 0 {
		return 0, false // a map that starts reads its upstream's items from the store (zipExpand)
	}
	for _, f := range c.maps {
		if f.markMoved {
			return 0, false // the store learns the new cursor before the items past the old one run
		}
	}
	wait := itemCommitDelay - time.Since(c.lastCommit)
	return wait, wait > 0
}

func (c *coordinator) flushMap(f *fanout) {
	if mc := f.flush(); mc != nil {
		c.pending = append(c.pending, store.Change{RunID: c.run.ID, Maps: []store.MapChange{*mc}})
	}
}

// needResults returns the results of task i's needs, by id, for an
// attempt's Spec, and gives the attempt the run's need files. A map
// need's result is its counts; its items' results reach a process as a
// JSON-lines file (needFiles).
func (c *coordinator) needResults(a *Attempt, i int) map[string]json.RawMessage {
	node := c.eng.Graph.Node(i)
	if len(node.Needs) == 0 {
		return nil
	}
	needs := make(map[string]json.RawMessage, len(node.Needs))
	for _, n := range node.Needs {
		if c.eng.Graph.Zips(i, n) {
			// A zipped map's item gets its upstream item's result as its
			// item; the upstream map has not ended, so it has no file.
			continue
		}
		id := c.eng.Graph.Node(n).ID
		needs[id] = c.mem.Task(n).Result
		if c.pipeline.Tasks[n].Map != nil {
			c.needs.mapNeed(id, n)
		}
	}
	a.needs = c.needs
	return needs
}

// writeMapResults writes every item result of map task index of the run
// to path, one JSON line per item in item order (null for an item without
// a result, or one that did not succeed), reading the store a page at a
// time.
func writeMapResults(ms store.Maps, runID int64, index int, path string) error {
	infos, err := ms.MapInfos(context.Background(), runID)
	if err != nil {
		return err
	}
	items := -1
	for _, mi := range infos {
		if mi.Index == index {
			items = mi.Items
		}
	}
	if items < 0 {
		return fmt.Errorf("map %d of run %d was never expanded", index, runID)
	}
	tmp := path + ".tmp"
	file, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(file, 1<<16)
	next := 0
	var line bytes.Buffer
	put := func(raw json.RawMessage) {
		// One line per item: a result written over several lines is
		// compacted.
		line.Reset()
		if len(raw) == 0 || json.Compact(&line, raw) != nil {
			line.Reset()
			line.WriteString("null")
		}
		line.WriteByte('\n')
		w.Write(line.Bytes())
		next++
	}
	for from := 0; ; {
		rows, err := ms.MapItems(context.Background(), store.MapItemFilter{RunID: runID, Index: index, From: from, Limit: store.MaxMapItemsLimit})
		if err != nil {
			file.Close()
			return err
		}
		for _, row := range rows {
			for next < row.Item {
				put(nil)
			}
			if row.State == engine.TaskSucceeded {
				put(row.Result)
			} else {
				put(nil)
			}
		}
		if len(rows) < store.MaxMapItemsLimit {
			break
		}
		from = rows[len(rows)-1].Item + 1
	}
	for next < items {
		put(nil)
	}
	if err := w.Flush(); err != nil {
		file.Close()
		return err
	}
	if err := file.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// mapNeed notes that need id is map task index of the run: its file is
// its items' results as JSON lines.
func (nf *needFiles) mapNeed(id string, index int) {
	nf.mu.Lock()
	defer nf.mu.Unlock()
	if nf.maps == nil {
		nf.maps = map[string]int{}
	}
	nf.maps[id] = index
}

// mapFile writes (once) the JSON-lines file of map need id. nf.mu is held.
func (nf *needFiles) mapFile(id string, index int) (string, error) {
	if nf.store == nil {
		return "", fmt.Errorf("need %s is a map and this executor cannot read its items", id)
	}
	path := filepath.Join(nf.dir, id+".jsonl")
	if err := writeMapResults(nf.store, nf.runID, index, path); err != nil {
		return "", fmt.Errorf("write the item results of need %s: %w", id, err)
	}
	return path, nil
}

// sharedNeedName names the file of a map need's results in
// attempt.Spec.NeedFiles: a remote executor places it at <need id>/<name>
// in a directory of the attempt's own.
const sharedNeedName = "results.jsonl"

// share returns the file of map need id kept in st for executors on
// other machines (attempt.Spec.NeedFiles), writing and keeping it on first
// use: once per run, whatever the number of attempts that need it. ok is
// false when id is not a map need.
func (nf *needFiles) share(ctx context.Context, st artifact.Store, id string) (n artifact.Need, ok bool, err error) {
	nf.mu.Lock()
	defer nf.mu.Unlock()
	if _, ok := nf.maps[id]; !ok {
		return n, false, nil
	}
	if f, ok := nf.shared[id]; ok {
		return artifact.Need{Need: id, File: f}, true, nil
	}
	path, err := nf.file(id, nil)
	if err != nil {
		return n, false, err
	}
	file, err := os.Open(path)
	if err != nil {
		return n, false, fmt.Errorf("keep the item results of need %s: %w", id, err)
	}
	defer file.Close()
	info, err := st.Put(ctx, file, "")
	if err != nil {
		return n, false, fmt.Errorf("keep the item results of need %s: %w", id, err)
	}
	if nf.shared == nil {
		nf.shared = map[string]artifact.File{}
	}
	f := artifact.File{Path: sharedNeedName, Digest: info.Digest, Size: info.Size}
	nf.shared[id] = f
	return artifact.Need{Need: id, File: f}, true, nil
}

// sharedDigests appends the digests of the files share kept.
func (nf *needFiles) sharedDigests(out []string) []string {
	nf.mu.Lock()
	defer nf.mu.Unlock()
	for _, f := range nf.shared {
		out = append(out, f.Digest)
	}
	return out
}

// shareMapNeeds names in an attempt's Spec the files of its map needs'
// results kept in the artifact store (Runner.ShareMapNeeds), for an
// executor on another machine. Only attempts that run a process read
// need files. It runs off the coordinator's goroutine.
func (c *coordinator) shareMapNeeds(s *attempt.Spec) error {
	s.NeedFiles = nil
	if !c.r.ShareMapNeeds || !FilesKind(s.Kind) || len(s.Needs) == 0 {
		return nil
	}
	for _, id := range slices.Sorted(maps.Keys(s.Needs)) {
		n, ok, err := c.needs.share(context.Background(), c.r.Artifacts, id)
		if err != nil {
			return err
		}
		if ok {
			s.NeedFiles = append(s.NeedFiles, n)
		}
	}
	return nil
}

// keepOutputs records the output files of a succeeded attempt (of item
// of map task; -1 for a task) with its success.
func (c *coordinator) keepOutputs(task, item int, res AttemptResult) {
	if refs := OutputRefs(c.run.ID, task, item, res.Outputs); refs != nil {
		c.pending = append(c.pending, store.Change{RunID: c.run.ID, Artifacts: refs})
	}
}

// addArtifacts gives an attempt of task t its output patterns, the
// output files of its needs that have outputs (maps' items' files are not
// handed on), read from the store, and the files of its map needs'
// results when they are shared (shareMapNeeds). It runs off the coordinator's
// goroutine.
func (c *coordinator) addArtifacts(s *attempt.Spec, t *spec.Task, needs []int) error {
	s.Outputs = nil
	for _, o := range t.Outputs {
		s.Outputs = append(s.Outputs, cache.Expand(o, s.Env))
	}
	if err := c.shareMapNeeds(s); err != nil {
		return err
	}
	as, ok := c.r.Store.(store.Artifacts)
	if !ok {
		return nil
	}
	byIndex := map[int]string{}
	for _, n := range needs {
		if nt := &c.pipeline.Tasks[n]; nt.Map == nil && len(nt.Outputs) > 0 {
			byIndex[n] = nt.ID
		}
	}
	if len(byIndex) == 0 {
		return nil
	}
	var err error
	s.Artifacts, err = NeedArtifacts(context.Background(), as, c.run.ID, byIndex)
	return err
}

package runner

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/cache"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// coordinator is the state of one executing run. Only its loop goroutine
// touches it; other goroutines talk to it through the dispatcher's grants,
// the done channel and control requests.
type coordinator struct {
	r        *Runner
	log      *slog.Logger // the runner's, naming the run and its pipeline on every line
	run      store.Run
	pipeline *spec.Pipeline
	dir      string
	params   map[string]string
	interval map[string]string // TASUKI_INTERVAL_* of a run with an interval
	eng      *engine.Engine
	mem      *engine.Mem
	counts   map[engine.TaskState]int

	inbox    *inbox                     // slots granted by the dispatcher
	timers   wakeHeap                   // retry_wait tasks by due time
	running  map[unitKey]*attemptHandle // attempts in flight, by task (or map unit)
	done     chan completion            // attempts report here
	control  chan controlReq            // operator actions from other goroutines
	exited   chan struct{}              // closed when the loop has returned
	detached bool                       // records transitions only (Act on a run not executing)
	pending  []store.Change             // transitions not yet written
	kills    []int                      // attempts to end once pending is written
	ready    []int                      // tasks that became ready, to queue before the next dispatch
	records  []engine.Record            // records of pending, for the observer
	draining bool                       // no new starts; hand attempts back at the deadline
	drainAt  <-chan time.Time           // when draining attempts are handed back

	workDir string     // the run's scratch directory
	needs   *needFiles // result files written for dependents

	maps       map[int]*fanout // map tasks running, by task
	mapInfos   []store.MapInfo // the run's expanded maps when it was loaded
	mapStarts  []int           // map tasks that became ready, to start after the next commit
	itemRecs   []store.Change  // timeline records of map items, written with the next commit
	itemWrites int             // map items ended since the last commit
	lastCommit time.Time       // when the last commit was written (wall clock)
	// leased are, by map task and item, the units of running maps' items
	// remote workers were handed and may still run, read at recovery
	// (mapadopt.go).
	leased map[int]map[int]*leasedUnit
	// handedRemote are the running maps (by task) of which a remote
	// worker was handed items, as the store's records say (readLeased).
	handedRemote map[int]bool

	hasher    *cache.Hasher      // cache keys, remembering input files' digests
	cachePuts []store.CacheEntry // cache entries to store after the next commit
	cacheHits []string           // keys of cache hits to record after the next commit

	waits   map[int]*poke        // waiting tasks' next checks, by task
	pokes   *mailbox[pokeResult] // what the checks saw
	updated []string             // datasets updated by pending, for DatasetsUpdated
}

// attemptHandle is one attempt in flight.
type attemptHandle struct {
	cancel  context.CancelCauseFunc // stops the attempt, saying why
	pool    string
	preempt bool // ended by a drain: record as preempted, not cancelled
}

type completion struct {
	task    int
	unit    int // a map unit's first item + 1; 0 for a task
	attempt int
	res     AttemptResult
	at      time.Time
}

// controlReq is an operator action for the coordinator to apply.
type controlReq struct {
	ev     engine.Event
	mapAct *MapAction // instead of ev: an action on a map's items
	reply  chan controlResult
}

type controlResult struct {
	run store.Run
	err error
}

func (r *Runner) load(ctx context.Context, runID int64) (*coordinator, error) {
	run, err := r.Store.Run(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("load run %d: %w", runID, err)
	}
	pv, err := r.version(ctx, run.VersionID)
	if err != nil {
		return nil, fmt.Errorf("run %d: %w", runID, err)
	}
	p, g := pv.p, pv.g
	rows, err := r.Store.Tasks(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("load tasks of run %d: %w", runID, err)
	}
	if len(rows) != g.Len() {
		return nil, fmt.Errorf("run %d has %d task rows but its pipeline has %d tasks", runID, len(rows), g.Len())
	}
	params, err := paramEnv(p, run.Params)
	if err != nil {
		return nil, fmt.Errorf("params of run %d: %w", runID, err)
	}
	tasks := make([]engine.Task, len(rows))
	c := &coordinator{
		r: r, run: run, pipeline: p, dir: filepath.Dir(pv.file),
		log:      r.Logger.With("run", run.ID, "pipeline", run.Pipeline),
		params:   params,
		interval: r.intervalEnv(p, run),
		eng:      &engine.Engine{Graph: g, Seed: uint64(runID)},
		counts:   map[engine.TaskState]int{},
		inbox:    newInbox(),
		running:  map[unitKey]*attemptHandle{},
		maps:     map[int]*fanout{},
		hasher:   cache.NewHasher(),
		done:     make(chan completion, 16),
		control:  make(chan controlReq),
		exited:   make(chan struct{}),
		waits:    map[int]*poke{},
		pokes:    newMailbox[pokeResult](),

		workDir: filepath.Join(r.home(), "work", strconv.FormatInt(runID, 10)),
		needs:   &needFiles{dir: filepath.Join(r.home(), "work", strconv.FormatInt(runID, 10), "needs"), at: map[string]string{}, runID: runID},
	}
	if ms, ok := r.Store.(store.Maps); ok {
		c.needs.store = ms
	}
	for i, row := range rows {
		tasks[i] = row.Task
		c.counts[row.State]++
	}
	c.mem = engine.NewMem(run.Run, tasks)
	return c, nil
}

func (c *coordinator) now() time.Time { return c.r.Now().UTC() }

// apply runs one event through the engine, keeps memory current and queues
// the change for the next group commit.
func (c *coordinator) apply(ev engine.Event, at time.Time, attempts ...store.Attempt) (engine.Transition, error) {
	tr, err := c.eng.Apply(c.mem, at, ev)
	if err != nil {
		return tr, err
	}
	for _, tc := range tr.Tasks {
		before := c.mem.Task(tc.Index)
		c.counts[before.State]--
		c.counts[tc.Task.State]++
		attempts = c.waitAttempts(ev, at, tc, before, attempts)
	}
	c.mem.Commit(tr)
	c.pending = append(c.pending, store.Change{RunID: c.run.ID, Transition: tr, Attempts: attempts})
	c.records = append(c.records, tr.Records...)
	if c.detached {
		return tr, nil
	}
	for _, a := range tr.Actions {
		switch a.Kind {
		case engine.ActReady:
			c.ready = append(c.ready, a.Task)
		case engine.ActWake:
			heap.Push(&c.timers, wake{task: a.Task, at: a.At})
		case engine.ActKill:
			// Ended after the cancel is written (commit): a cancel that
			// could not be recorded must not have killed anything.
			c.kills = append(c.kills, a.Task)
		case engine.ActDone:
			c.r.Dispatcher.withdraw(c.run.ID)
		case engine.ActPoke:
			c.schedulePoke(a.Task, a.Attempt, a.At)
		}
	}
	if c.mem.Run().Cancelling {
		c.r.Dispatcher.withdraw(c.run.ID)
	}
	return tr, nil
}

// enqueue puts the tasks that became ready since the last dispatch in line
// for a slot, all at once: tasks that became ready together compete by
// priority, even for a slot that is free now.
func (c *coordinator) enqueue() {
	ready := c.ready
	c.ready = c.ready[:0]
	if c.draining || c.mem.Run().Cancelling || (len(ready) == 0 && len(c.maps) == 0) {
		return
	}
	batch := make([]readyTask, 0, len(ready))
	for _, i := range ready {
		if c.mem.Task(i).State != engine.TaskReady {
			continue // started, marked or cancelled since
		}
		t := &c.pipeline.Tasks[i]
		if t.Map != nil {
			// It holds no slot (its items do); it starts once what is
			// pending is written, since its items may be what a need
			// just wrote.
			c.mapStarts = append(c.mapStarts, i)
			continue
		}
		batch = append(batch, readyTask{task: i, priority: t.Priority, pool: t.Pool})
	}
	batch = c.fillMaps(batch)
	for _, qe := range c.r.Dispatcher.enqueue(c.run.ID, c.inbox, batch...) {
		// The pipeline names a pool this executor does not have: fail the
		// attempt with the reason rather than wait forever.
		c.log.Warn("task cannot be queued", "task", c.eng.Graph.Node(qe.task).ID, "err", qe.err)
		c.inbox.put(grant{task: qe.task, unit: qe.unit, err: qe.err.Error()})
	}
}

// commit writes every queued change in one transaction, then tells the observer.
func (c *coordinator) commit(ctx context.Context) error {
	c.flushMaps()
	if len(c.pending) == 0 {
		return nil
	}
	// Writes finish even when the run is being cancelled: the store must
	// learn how the attempts it started ended.
	if err := c.write(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("write run %d state: %w", c.run.ID, err)
	}
	c.pending = c.pending[:0]
	c.itemWrites, c.lastCommit = 0, time.Now()
	c.storeCache(ctx)
	if len(c.updated) > 0 {
		if c.r.DatasetsUpdated != nil {
			c.r.DatasetsUpdated(c.updated)
		}
		c.updated = nil
	}
	for _, i := range c.kills {
		if h, ok := c.running[unitKey{i, 0}]; ok {
			h.cancel(attempt.ErrCancelled)
		}
		if _, ok := c.maps[i]; ok {
			c.cancelMap(i)
		}
	}
	c.kills = c.kills[:0]
	c.run.Run = c.mem.Run()
	if c.r.Observe != nil && len(c.records) > 0 {
		c.r.Observe(Progress{
			Run: c.run, Records: c.records, Counts: c.counts,
			TaskID: func(i int) string { return c.eng.Graph.Node(i).ID },
			Task:   c.mem.Task,
		})
	}
	c.records = c.records[:0]
	return nil
}

// write applies what is pending in one transaction. A transient failure
// (store.Transient) is tried again, waiting longer each time, for up to
// Runner.StoreOutage: the run stands still meanwhile (nothing it granted
// starts before its start is written, nothing is told of what is not
// written), while its running attempts run on and their ends wait in the
// done channel. A write whose outcome is unknown (its COMMIT's answer was
// lost) is not written again before the store says it was not committed:
// written twice, its records and dataset updates would be doubled. A Hurry
// (the server stops at once) ends the wait.
func (c *coordinator) write(ctx context.Context) error {
	wait := c.r.RetryMin
	var began time.Time
	var unknown *store.OutcomeUnknownError
	for tries := 0; ; tries++ {
		var err error
		tctx, cancel := context.WithTimeout(ctx, writeTimeout)
		if unknown != nil {
			var committed bool
			committed, err = unknown.Committed(tctx)
			if err == nil {
				c.log.Info("a write whose answer was lost is known now", "committed", committed)
				unknown = nil
				if committed {
					cancel()
					return nil
				}
				err = c.writeOnce(tctx)
			}
		} else {
			err = c.writeOnce(tctx)
		}
		cancel()
		if err == nil {
			if tries > 0 {
				c.log.Info("the store accepts writes again; the run goes on", "tries", tries+1, "after", time.Since(began).Round(time.Millisecond))
			}
			return nil
		}
		if ou, ok := errors.AsType[*store.OutcomeUnknownError](err); ok {
			unknown = ou
		}
		if !store.Transient(err) {
			return err
		}
		if began.IsZero() {
			began = time.Now()
		}
		if time.Since(began) > c.r.StoreOutage {
			return fmt.Errorf("the store failed for %s, giving up: %w", time.Since(began).Round(time.Second), err)
		}
		c.log.Warn("write run state: the store failed, trying again; nothing new starts meanwhile",
			"err", err, "in", wait, "changes", len(c.pending), "running", len(c.running))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.r.hurry:
			t.Stop()
			return fmt.Errorf("stopping while the store fails: %w", err)
		}
		wait = min(2*wait, c.r.RetryMax)
	}
}

// writeOnce is one try of write: the pending changes in one transaction,
// after the logs the log store keeps back (logFlusher) are where every
// server reads them, so the ends of attempts are never recorded before
// their logs are durable: a server killed between the two would leave
// attempts that succeeded, in the store, without a log.
func (c *coordinator) writeOnce(ctx context.Context) error {
	if f, ok := c.r.Logs.(logFlusher); ok {
		if err := f.Flush(ctx); err != nil {
			return fmt.Errorf("write the logs held back: %w", err)
		}
	}
	return c.r.Store.Apply(ctx, c.pending...)
}

// logFlusher is a log store that keeps logs back for a while before they
// are durable: logs.Cluster queues the logs that remote workers send whole
// with the reports of map items (WriteWhole), to write them in one
// statement every ItemFlush, and those the database could not take when
// they came. Flush writes what it holds now (nothing, at once, when it
// holds nothing).
type logFlusher interface {
	Flush(ctx context.Context) error
}

// writeTimeout bounds one try of a write, so that a connection that stopped
// answering (a network cut) fails the try rather than hangs the run.
const writeTimeout = time.Minute

// loop drives the run until it ends, or until a drain has handed every
// attempt back.
func (c *coordinator) loop(ctx context.Context) (store.Run, error) {
	if err := os.MkdirAll(c.workDir, 0o700); err != nil {
		return c.run, fmt.Errorf("prepare scratch directory of run %d: %w", c.run.ID, err)
	}
	defer c.r.Dispatcher.withdraw(c.run.ID)
	defer c.stopPokes()
	if err := c.recover(); err != nil {
		return c.run, err
	}
	cancelled := c.mem.Run().Cancelling
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	flush := time.NewTimer(time.Hour)
	defer flush.Stop()
	for {
		c.enqueue()
		starts := c.dispatch()
		var flushC <-chan time.Time
		if wait, ok := c.itemsMayWait(); ok {
			// Only map items ended: their rows wait for the next group
			// commit (a crash runs them again, as it would a lost item).
			flush.Reset(wait)
			flushC = flush.C
		} else if err := c.commit(ctx); err != nil {
			for _, st := range starts {
				c.r.Dispatcher.release(st.pool) // granted, never launched
			}
			c.abort()
			return c.run, err
		}
		for _, s := range starts {
			c.launch(s)
		}
		if len(c.mapStarts) > 0 {
			starting := c.mapStarts
			c.mapStarts = nil
			for _, i := range starting {
				if c.mem.Task(i).State == engine.TaskReady && !c.draining && !c.mem.Run().Cancelling {
					c.startMap(i)
				}
			}
			continue
		}
		if len(c.running) == 0 && (c.mem.Run().State.Terminal() || c.draining) {
			if c.mem.Run().State.Terminal() {
				c.cleanup()
			}
			return c.run, nil
		}

		var timerC <-chan time.Time
		if next, ok := c.timers.peek(); ok && !c.draining {
			timer.Reset(next.at.Sub(c.r.Now()))
			timerC = timer.C
		}
		ctxDone := ctx.Done()
		if cancelled {
			ctxDone = nil
		}
		drain := c.r.drain
		var hurry <-chan struct{}
		if c.draining {
			drain = nil
			if c.drainAt != nil {
				hurry = c.r.hurry
			}
		}
		select {
		case comp := <-c.done:
			c.finish(comp)
			// Drain what else has finished: one commit for all of them.
			for more := true; more; {
				select {
				case comp := <-c.done:
					c.finish(comp)
				default:
					more = false
				}
			}
		case <-flushC:
			if err := c.commit(ctx); err != nil {
				c.abort()
				return c.run, err
			}
		case <-c.inbox.signal:
			// Grants are taken by dispatch at the top of the loop.
		case <-c.pokes.signal:
			for _, pr := range c.pokes.take() {
				c.poked(pr)
			}
		case req := <-c.control:
			c.handleControl(ctx, req)
		case <-timerC:
			now := c.now()
			for {
				w, ok := c.timers.peek()
				if !ok || w.at.After(now) {
					break
				}
				heap.Pop(&c.timers)
				if w.item > 0 {
					if f := c.maps[w.task]; f != nil {
						f.retryDue(w.item - 1)
					}
					continue
				}
				if _, err := c.apply(engine.Event{Kind: engine.EvRetryDue, Task: w.task}, now); err != nil && !errors.Is(err, engine.ErrRejected) {
					c.abort()
					return c.run, err
				}
			}
		case <-ctxDone:
			cancelled = true
			if _, err := c.apply(engine.Event{Kind: engine.EvCancel, Task: -1, Actor: "local", Message: "interrupted"}, c.now()); err != nil && !errors.Is(err, engine.ErrRejected) {
				c.abort()
				return c.run, err
			}
		case <-drain:
			c.startDrain()
		case <-hurry:
			c.handBack()
		case <-c.drainAt:
			c.handBack()
		}
	}
}

// handBack ends a drain's grace: running attempts are stopped (their whole
// process group ends) and, once their executors say they are gone, recorded
// as preempted (not charged). One that finishes by itself meanwhile is
// recorded as what it was (finish).
func (c *coordinator) handBack() {
	if len(c.running) > 0 {
		c.log.Info("drain grace over: ending the running attempts to hand them back", "running", len(c.running))
	}
	for _, h := range c.running {
		h.preempt = true
		h.cancel(attempt.ErrPreempted)
	}
	c.drainAt = nil
}

// startDrain stops new starts; running attempts get the drain grace period to
// finish, then are handed back (preempted, not charged to their retry budget).
func (c *coordinator) startDrain() {
	c.draining = true
	// Waits stay waiting in the store; whoever executes the run next
	// checks them again.
	c.stopPokes()
	c.r.Dispatcher.withdraw(c.run.ID)
	for _, g := range c.inbox.take() {
		if g.err == "" {
			c.r.Dispatcher.release(g.pool)
		}
	}
	for _, f := range c.maps {
		f.unqueue()
	}
	if len(c.running) > 0 {
		c.drainAt = time.After(c.r.DrainGrace)
	}
}

// handleControl applies an operator action and answers once it is written.
func (c *coordinator) handleControl(ctx context.Context, req controlReq) {
	if req.mapAct != nil {
		err := c.actMap(*req.mapAct)
		if err == nil {
			err = c.commit(ctx)
		}
		req.reply <- controlResult{run: c.run, err: err}
		return
	}
	_, err := c.apply(req.ev, c.now())
	if err == nil {
		err = c.commit(ctx)
	}
	req.reply <- controlResult{run: c.run, err: err}
}

// recover brings a loaded run back to life: a queued run starts; attempts
// that were running when the previous process died are lost (and whatever
// they left behind is killed); ready tasks are queued; retry waits are
// re-armed.
func (c *coordinator) recover() error {
	now := c.now()
	if c.mem.Run().State == engine.RunQueued {
		_, err := c.apply(engine.Event{Kind: engine.EvRunStarted, Task: -1}, now)
		return err
	}
	lost := map[string]int{}
	workers := map[int]string{}   // of running tasks, as their attempt rows name them
	adopted := map[int]TaskFunc{} // running tasks whose worker may still run them
	spared := map[string]bool{}   // processes of map items adopted (reapOrphans)
	for i := 0; i < c.eng.Graph.Len(); i++ {
		t := c.mem.Task(i)
		if t.State != engine.TaskRunning {
			continue
		}
		if c.pipeline.Tasks[i].Map != nil {
			id := c.eng.Graph.Node(i).ID
			lost[id] = 0 // every item's process, whatever its attempt, but those adopted
			leased, err := c.readLeased(i)
			if err != nil {
				return fmt.Errorf("recover map %s: %w", id, err)
			}
			if len(leased) > 0 {
				if c.leased == nil {
					c.leased = map[int]map[int]*leasedUnit{}
				}
				c.leased[i] = leased
				spare(spared, id, leased)
			}
			continue
		}
		if c.r.LostHold != nil || c.r.Adopt != nil {
			workers[i] = c.attemptWorker(i, t.Attempt)
		}
		if c.r.Adopt != nil {
			if run := c.r.Adopt(workers[i]); run != nil {
				adopted[i] = run // runs elsewhere: nothing here to reap
				continue
			}
		}
		lost[c.eng.Graph.Node(i).ID] = t.Attempt
	}
	if n := reapOrphans(c.r.home(), c.run.ID, lost, spared); n > 0 {
		c.log.Info("killed leftover processes of lost attempts", "process_groups", n)
	}
	for i := 0; i < c.eng.Graph.Len(); i++ {
		t := c.mem.Task(i)
		if t.State == engine.TaskRunning && c.pipeline.Tasks[i].Map != nil {
			// A map's items carry on where they were; those that were
			// running are found lost by resumeMap.
			if err := c.resumeMap(i); err != nil {
				return err
			}
			continue
		}
		switch t.State {
		case engine.TaskRunning:
			if run, ok := adopted[i]; ok {
				c.adopt(i, t.Attempt, run)
				continue
			}
			msg := "the executor of this attempt stopped (process crashed or was killed)"
			var hold time.Duration
			if c.r.LostHold != nil {
				hold = c.r.LostHold(workers[i]) // "" (unknown): held, to be safe
			}
			att := store.Attempt{RunID: c.run.ID, Index: i, Attempt: t.Attempt, FinishedAt: now, Outcome: attempt.Lost, Message: msg}
			if _, err := c.apply(engine.Event{Kind: attempt.Lost.Event(), Task: i, Attempt: t.Attempt, Message: msg, Hold: hold}, now, att); err != nil {
				return fmt.Errorf("recover task %s: %w", c.eng.Graph.Node(i).ID, err)
			}
		case engine.TaskReady:
			c.ready = append(c.ready, i)
		case engine.TaskRetryWait:
			heap.Push(&c.timers, wake{task: i, at: t.ReadyAt})
		case engine.TaskWaiting:
			// A wait has nothing running that could have died with the
			// previous process: it goes on, checked at once.
			c.schedulePoke(i, t.Attempt, now)
		}
	}
	return nil
}

// attemptWorker is the worker the store names for attempt n of task i
// ("" when it does not know).
func (c *coordinator) attemptWorker(i, n int) string {
	atts, err := c.r.Store.Attempts(context.Background(), c.run.ID, i)
	if err != nil || len(atts) == 0 {
		return ""
	}
	if last := atts[len(atts)-1]; last.Attempt == n {
		return last.Worker
	}
	return ""
}

// adopt takes over attempt n of task i, found running at recovery, with
// run (Runner.Adopt): it holds a slot and ends like one launched here, so
// its report is recorded as its own and the task stays running meanwhile.
func (c *coordinator) adopt(i, n int, run TaskFunc) {
	node := c.eng.Graph.Node(i)
	t := &c.pipeline.Tasks[i]
	a := &Attempt{
		RunID: c.run.ID, Pipeline: c.pipeline.Name, TaskID: node.ID, Index: i, Number: n,
		Priority: t.Priority, Labels: t.Labels,
		Log: logs.Key{RunID: c.run.ID, TaskID: node.ID, Attempt: n},
		dir: c.dir, workDir: c.workDir,
	}
	a.describe = func() (attempt.Spec, error) {
		return attempt.Spec{}, fmt.Errorf("attempt %d of task %s was adopted from the worker running it: it is not described again", n, node.ID)
	}
	c.r.Dispatcher.occupy(t.Pool)
	ctx, cancel := context.WithCancelCause(context.Background())
	c.running[unitKey{i, 0}] = &attemptHandle{cancel: cancel, pool: t.Pool}
	c.log.Info("attempt found running on a remote worker: adopted, waiting for the worker", "task", node.ID, "attempt", n)
	go func() {
		res := run(ctx, a)
		c.done <- completion{task: i, attempt: n, res: res, at: c.now()}
	}()
}

type start struct {
	task    int
	unit    int // a map unit's first item + 1; 0 for a task
	attempt int
	pool    string
}

// dispatch starts the tasks the dispatcher granted slots to.
func (c *coordinator) dispatch() []start {
	var starts []start
	for _, g := range c.inbox.take() {
		i := g.task
		if g.unit > 0 {
			if s, ok := c.startUnit(g); ok {
				starts = append(starts, s)
			}
			continue
		}
		if g.err != "" {
			// Not a slot: the task could not be queued (see enqueue).
			c.failStart(i, g.err)
			continue
		}
		if c.draining || c.mem.Task(i).State != engine.TaskReady || c.mem.Run().Cancelling {
			c.r.Dispatcher.release(g.pool)
			continue
		}
		now := c.now()
		attempt := c.mem.Task(i).Attempt + 1
		key := logs.Key{RunID: c.run.ID, TaskID: c.eng.Graph.Node(i).ID, Attempt: attempt}
		att := store.Attempt{RunID: c.run.ID, Index: i, Attempt: attempt, Worker: c.r.Worker, StartedAt: now, Log: key.String()}
		if _, err := c.apply(engine.Event{Kind: engine.EvTaskStarted, Task: i}, now, att); err != nil {
			c.log.Warn("start rejected", "task", key.TaskID, "err", err)
			c.r.Dispatcher.release(g.pool)
			continue
		}
		starts = append(starts, start{task: i, attempt: attempt, pool: g.pool})
	}
	return starts
}

// failStart records an attempt that could not even be handed a slot.
func (c *coordinator) failStart(i int, msg string) {
	if c.mem.Task(i).State != engine.TaskReady {
		return
	}
	now := c.now()
	if _, err := c.apply(engine.Event{Kind: engine.EvTaskStarted, Task: i}, now); err != nil {
		return
	}
	n := c.mem.Task(i).Attempt
	att := store.Attempt{RunID: c.run.ID, Index: i, Attempt: n, Worker: c.r.Worker, StartedAt: now, FinishedAt: now, Outcome: attempt.Failed, Message: msg}
	if _, err := c.apply(engine.Event{Kind: attempt.Failed.Event(), Task: i, Attempt: n, Message: msg}, now, att); err != nil {
		c.log.Warn("record failed start", "err", err)
	}
}

// launch runs an attempt in its own goroutine. Its Spec is built when the
// executor first asks for it, off the coordinator's goroutine, from what
// does not change while the run executes and the needs' results read now.
func (c *coordinator) launch(s start) {
	if s.unit > 0 {
		c.launchUnit(s)
		return
	}
	node := c.eng.Graph.Node(s.task)
	t := &c.pipeline.Tasks[s.task]
	a := &Attempt{
		RunID:    c.run.ID,
		Pipeline: c.pipeline.Name,
		TaskID:   node.ID,
		Index:    s.task,
		Number:   s.attempt,
		Priority: t.Priority,
		Labels:   t.Labels,
		Log:      logs.Key{RunID: c.run.ID, TaskID: node.ID, Attempt: s.attempt},
		dir:      c.dir,
		workDir:  c.workDir,
	}
	needs := c.needResults(a, s.task)
	trigger := c.run.Trigger
	a.describe = func() (attempt.Spec, error) {
		s, err := c.r.Kinds.Describe(t, c.taskEnv(a, t, trigger), needs)
		if err != nil {
			return s, err
		}
		if err := c.addArtifacts(&s, t, node.Needs); err != nil {
			return s, err
		}
		return s, c.addSecrets(&s, t)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	c.running[unitKey{s.task, 0}] = &attemptHandle{cancel: cancel, pool: s.pool}
	go func() {
		res := c.execute(ctx, a, t, nil)
		c.done <- completion{task: s.task, attempt: s.attempt, res: res, at: c.now()}
	}()
}

// finish records how an attempt ended. An attempt a drain stopped was
// recorded by its executor as what it was: preempted if it was ended, or
// its own outcome if it finished by itself meanwhile (its side effects
// happened: running it again would repeat them). Only an executor that
// could merely say "cancelled" (it does not know why it was stopped) is
// taken to have been handed back.
func (c *coordinator) finish(comp completion) {
	if comp.unit > 0 {
		c.unitEnded(comp)
		return
	}
	res := comp.res
	if h, ok := c.running[unitKey{comp.task, 0}]; ok {
		h.cancel(nil)
		delete(c.running, unitKey{comp.task, 0})
		c.r.Dispatcher.release(h.pool)
		if h.preempt && res.Outcome == attempt.Cancelled {
			res = AttemptResult{Outcome: attempt.Preempted, ExitCode: res.ExitCode, Message: "handed back: the executor is shutting down", Worker: res.Worker}
		}
	}
	if res.Outcome.Event() == "" {
		res = AttemptResult{Outcome: attempt.Failed, ExitCode: res.ExitCode, Worker: res.Worker,
			Message: fmt.Sprintf("the executor reported an unknown outcome %q (%s)", res.Outcome, res.Message)}
	}
	var updates []store.DatasetUpdate
	if res.Outcome == attempt.Succeeded {
		var err error
		if updates, err = c.datasetUpdates(comp.task, comp.at, res.Datasets); err != nil {
			res = AttemptResult{Outcome: attempt.Failed, ExitCode: res.ExitCode, Worker: res.Worker, Message: err.Error()}
		}
	}
	if err := store.CheckJSON("result", res.Result); err != nil {
		// The attempt fails, rather than the store's write of its end,
		// which would stop the run.
		res = AttemptResult{Outcome: attempt.Failed, ExitCode: res.ExitCode, Worker: res.Worker,
			Message: "result refused: " + err.Error()}
	}
	att := store.Attempt{
		RunID: c.run.ID, Index: comp.task, Attempt: comp.attempt, Worker: res.Worker,
		FinishedAt: comp.at, Outcome: res.Outcome, ExitCode: res.ExitCode, Message: res.Message,
	}
	ev := engine.Event{Kind: res.Outcome.Event(), Task: comp.task, Attempt: comp.attempt, ExitCode: res.ExitCode, Message: res.Message, Result: res.Result}
	if _, err := c.apply(ev, comp.at, att); err != nil {
		c.log.Warn("attempt result rejected", "task", c.eng.Graph.Node(comp.task).ID, "attempt", comp.attempt, "err", err)
		return
	}
	if res.Outcome == attempt.Succeeded {
		c.produced(updates)
		c.keepOutputs(comp.task, -1, res)
		c.remember(comp.task, -1, res, comp.at)
	}
}

// abort ends every running attempt after a fatal store error. What the store
// has is consistent: the run can be resumed.
func (c *coordinator) abort() {
	c.r.Dispatcher.withdraw(c.run.ID)
	c.stopPokes()
	for _, h := range c.running {
		// Nothing more is recorded here: the next start finds these
		// attempts running and records them as lost.
		h.cancel(attempt.ErrLost)
	}
	for len(c.running) > 0 {
		comp := <-c.done
		if h, ok := c.running[unitKey{comp.task, comp.unit}]; ok {
			c.r.Dispatcher.release(h.pool)
			delete(c.running, unitKey{comp.task, comp.unit})
		}
	}
	// Slots granted but not yet taken go back too.
	for _, g := range c.inbox.take() {
		if g.err == "" {
			c.r.Dispatcher.release(g.pool)
		}
	}
}

// needFiles writes the results of a run's tasks to files for the tasks that
// need them, each once per run whatever the number of dependents. Executors
// that run a process write them (off the coordinator's goroutine); others
// never touch the disk for them.
type needFiles struct {
	dir string
	mu  sync.Mutex
	at  map[string]string // by task id

	// Needs that are maps: their file is their items' results, read from
	// the store (by task id, the map's index in the run).
	maps  map[string]int
	store store.Maps
	runID int64
	// shared are the files of map needs kept in the artifact store for
	// remote executors (share), by task id.
	shared map[string]artifact.File
}

// paths returns, by need id, files holding the given results.
func (nf *needFiles) paths(results map[string]json.RawMessage) (map[string]string, error) {
	nf.mu.Lock()
	defer nf.mu.Unlock()
	out := make(map[string]string, len(results))
	for id, data := range results {
		path, err := nf.file(id, data)
		if err != nil {
			return nil, err
		}
		out[id] = path
	}
	return out, nil
}

// file returns the file holding need id's result (data, unless the need is
// a map), writing it on first use. nf.mu is held.
func (nf *needFiles) file(id string, data json.RawMessage) (string, error) {
	if path, ok := nf.at[id]; ok {
		return path, nil
	}
	if len(nf.at) == 0 {
		if err := os.MkdirAll(nf.dir, 0o700); err != nil {
			return "", fmt.Errorf("prepare needs directory: %w", err)
		}
	}
	if index, ok := nf.maps[id]; ok {
		path, err := nf.mapFile(id, index)
		if err != nil {
			return "", err
		}
		nf.at[id] = path
		return path, nil
	}
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	path := filepath.Join(nf.dir, id+".json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", fmt.Errorf("write result of need %s: %w", id, err)
	}
	nf.at[id] = path
	return path, nil
}

// cleanup removes the run's scratch files once it has ended; results live in
// the store.
func (c *coordinator) cleanup() {
	if err := os.RemoveAll(c.workDir); err != nil {
		c.log.Warn("remove scratch directory", "dir", c.workDir, "err", err)
	}
}

// wake is a retry_wait task's due time, or a map item's.
type wake struct {
	task int
	item int // a map item + 1; 0 for the task
	at   time.Time
}

// wakeHeap orders wakes by time (container/heap).
type wakeHeap []wake

func (h wakeHeap) Len() int           { return len(h) }
func (h wakeHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h wakeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *wakeHeap) Push(x any)        { *h = append(*h, x.(wake)) }
func (h *wakeHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	*h = old[:len(old)-1]
	return w
}

func (h wakeHeap) peek() (wake, bool) {
	if len(h) == 0 {
		return wake{}, false
	}
	return h[0], true
}

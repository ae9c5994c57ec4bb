// Package runner executes runs of pipelines on this machine: it creates a run
// in the store, drives the engine with the outcomes of real processes, writes
// every transition through to the store before acting on it, and resumes runs
// that a crash interrupted.
//
// One coordinator goroutine owns the run's in-memory state and the engine;
// task attempts run in their own goroutines and report back on a channel. All
// transitions that arrive while the store is busy are written in one
// transaction (group commit), which keeps the store off the critical path of
// short tasks.
package runner

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Runner runs pipelines on this machine against a store.
type Runner struct {
	Store store.Store
	Logs  logs.Store
	// Home is the data directory; per-run scratch files live under Home/work.
	Home string
	// Parallel is the most task attempts running at once (default 4).
	Parallel int
	// Grace is how long a task gets between SIGTERM and SIGKILL (default 10s).
	Grace time.Duration
	// Worker names this executor in attempt rows (default "local:<hostname>").
	Worker string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Observe, when set, is called from the coordinator after each committed
	// batch with the records it wrote. It must not block for long.
	Observe func(Progress)
	// Kind runs a task attempt. Nil means run it as a process (RunProcess);
	// benchmarks pass a no-op to measure orchestration alone.
	Kind TaskFunc
	// Logger receives operational messages (default slog.Default()).
	Logger *slog.Logger
}

// Progress is what an observer sees after a batch of transitions.
type Progress struct {
	Run     store.Run
	Records []engine.Record
	// TaskID names task i of the run.
	TaskID func(i int) string
	// Task returns task i's current state.
	Task func(i int) engine.Task
	// Counts is the number of tasks in each state.
	Counts map[engine.TaskState]int
}

// Attempt is everything a TaskFunc needs to run one attempt.
type Attempt struct {
	RunID    int64
	Pipeline *spec.Pipeline
	Task     *spec.Task
	Number   int
	Params   map[string]string // rendered parameter values by environment name
	// NeedFiles holds, by task id of each need, the path of a file with the
	// need's JSON result.
	NeedFiles map[string]string
	Dir       string // directory of the pipeline file (relative workdirs start here)
	// WorkDir is the run's scratch directory, where the attempt writes its
	// result file. One directory per run keeps a short task to one file
	// created, not a directory tree.
	WorkDir string
	Log     logs.Key
}

// AttemptResult is how an attempt ended.
type AttemptResult struct {
	Kind     engine.EventKind // succeeded, failed, timed_out, cancelled
	ExitCode *int
	Message  string
	Result   json.RawMessage
}

// TaskFunc runs one attempt; ctx is cancelled when the run is cancelled.
type TaskFunc func(ctx context.Context, a *Attempt) AttemptResult

func (r *Runner) defaults() {
	if r.Parallel <= 0 {
		r.Parallel = 4
	}
	if r.Grace <= 0 {
		r.Grace = 10 * time.Second
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.Worker == "" {
		h, _ := os.Hostname()
		r.Worker = "local:" + h
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	if r.Kind == nil {
		r.Kind = r.RunProcess
	}
}

// Create stores the pipeline version and a queued run of it with the given
// parameter values (checked against the declared types).
func (r *Runner) Create(ctx context.Context, p *spec.Pipeline, params map[string]string, trigger string) (store.Run, error) {
	r.defaults()
	values, err := p.ResolveParams(params)
	if err != nil {
		return store.Run{}, err
	}
	g, err := Graph(p)
	if err != nil {
		return store.Run{}, err
	}
	file := p.Source.File
	if abs, err := filepath.Abs(file); err == nil {
		file = abs
	}
	v, err := r.Store.PutPipelineVersion(ctx, store.PipelineVersion{
		Pipeline: p.Name, Hash: p.Source.Hash, File: file, Source: p.Source.Data, CreatedAt: r.Now(),
	})
	if err != nil {
		return store.Run{}, fmt.Errorf("store pipeline %s: %w", p.Name, err)
	}
	for _, prm := range p.Params {
		// Dates and datetimes are kept in their canonical text form, the one
		// commands see; numbers, bools and lists stay JSON values.
		if t, ok := values[prm.Name].(time.Time); ok {
			if values[prm.Name], err = prm.Format(t); err != nil {
				return store.Run{}, err
			}
		}
	}
	pj, err := json.Marshal(values)
	if err != nil {
		return store.Run{}, fmt.Errorf("encode params: %w", err)
	}
	tasks := make([]store.TaskRow, g.Len())
	for i, t := range g.InitialTasks() {
		tasks[i] = store.TaskRow{Index: i, TaskID: g.Node(i).ID, Task: t}
	}
	run, err := r.Store.CreateRun(ctx, store.NewRun{
		Run: store.Run{
			Pipeline: p.Name, VersionID: v.ID, Trigger: trigger, Params: pj,
			CreatedAt: r.Now(), TaskCount: g.Len(), Run: g.InitialRun(),
		},
		Tasks: tasks,
	})
	if err != nil {
		return store.Run{}, fmt.Errorf("create run of %s: %w", p.Name, err)
	}
	return run, nil
}

// ErrBusy is returned when another process is already executing the run.
var ErrBusy = errors.New("run is being executed by another process")

// Execute drives a run to its end: a queued run is started, an interrupted
// run is resumed (attempts that were running when the previous process died
// are recorded as lost and follow their retry policy). Cancelling ctx cancels
// the run: running attempts get SIGTERM, then SIGKILL after the grace period,
// and the run ends cancelled. Execute returns the run as it ended.
func (r *Runner) Execute(ctx context.Context, runID int64) (store.Run, error) {
	r.defaults()
	unlock, err := r.lock(runID)
	if err != nil {
		return store.Run{}, err
	}
	defer unlock()

	c, err := r.load(ctx, runID)
	if err != nil {
		return store.Run{}, err
	}
	if c.run.State.Terminal() {
		return c.run, nil
	}
	return c.loop(ctx)
}

// home returns the absolute data directory, which attempts carry in
// TASUKI_HOME.
func (r *Runner) home() string {
	if abs, err := filepath.Abs(r.Home); err == nil {
		return abs
	}
	return r.Home
}

// lock takes an exclusive lock on the run for this process. The kernel drops
// it when the process dies, so a crash never leaves a run locked.
func (r *Runner) lock(runID int64) (func(), error) {
	dir := filepath.Join(r.Home, "locks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock run %d: %w", runID, err)
	}
	path := filepath.Join(dir, "run-"+strconv.FormatInt(runID, 10)+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock run %d: %w", runID, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("run %d: %w", runID, ErrBusy)
		}
		return nil, fmt.Errorf("lock run %d: %w", runID, err)
	}
	return func() { f.Close() }, nil
}

// coordinator is the state of one executing run. Only the loop goroutine
// touches it.
type coordinator struct {
	r        *Runner
	run      store.Run
	pipeline *spec.Pipeline
	dir      string
	params   map[string]string
	eng      *engine.Engine
	mem      *engine.Mem
	counts   map[engine.TaskState]int

	queue   []int // ready tasks in the order they became ready
	timers  wakeHeap
	running map[int]context.CancelFunc
	done    chan completion
	pending []store.Change
	records []engine.Record

	workDir   string         // the run's scratch directory
	needFiles map[int]string // result files written for dependents, by task
}

type completion struct {
	task    int
	attempt int
	res     AttemptResult
	at      time.Time
}

func (r *Runner) load(ctx context.Context, runID int64) (*coordinator, error) {
	run, err := r.Store.Run(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("load run %d: %w", runID, err)
	}
	v, err := r.Store.PipelineVersion(ctx, run.VersionID)
	if err != nil {
		return nil, fmt.Errorf("load pipeline version of run %d: %w", runID, err)
	}
	p, err := spec.Parse(v.File, v.Source)
	if err != nil {
		return nil, fmt.Errorf("parse stored pipeline of run %d: %w", runID, err)
	}
	g, err := Graph(p)
	if err != nil {
		return nil, fmt.Errorf("graph of run %d: %w", runID, err)
	}
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
		r: r, run: run, pipeline: p, dir: filepath.Dir(v.File),
		params:  params,
		eng:     &engine.Engine{Graph: g, Seed: uint64(runID)},
		counts:  map[engine.TaskState]int{},
		running: map[int]context.CancelFunc{},
		done:    make(chan completion, r.Parallel),

		workDir:   filepath.Join(r.home(), "work", strconv.FormatInt(runID, 10)),
		needFiles: map[int]string{},
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
		c.counts[c.mem.Task(tc.Index).State]--
		c.counts[tc.Task.State]++
	}
	c.mem.Commit(tr)
	c.pending = append(c.pending, store.Change{RunID: c.run.ID, Transition: tr, Attempts: attempts})
	c.records = append(c.records, tr.Records...)
	for _, a := range tr.Actions {
		switch a.Kind {
		case engine.ActReady:
			c.queue = append(c.queue, a.Task)
		case engine.ActWake:
			c.timers.push(wake{task: a.Task, at: a.At})
		case engine.ActKill:
			if cancel, ok := c.running[a.Task]; ok {
				cancel()
			}
		}
	}
	return tr, nil
}

// commit writes every queued change in one transaction, then tells the observer.
func (c *coordinator) commit(ctx context.Context) error {
	if len(c.pending) == 0 {
		return nil
	}
	// Writes finish even when the run is being cancelled: the store must
	// learn how the attempts it started ended.
	if err := c.r.Store.Apply(context.WithoutCancel(ctx), c.pending...); err != nil {
		return fmt.Errorf("write run %d state: %w", c.run.ID, err)
	}
	c.pending = c.pending[:0]
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

func (c *coordinator) loop(ctx context.Context) (store.Run, error) {
	if err := os.MkdirAll(c.workDir, 0o755); err != nil {
		return c.run, fmt.Errorf("prepare scratch directory of run %d: %w", c.run.ID, err)
	}
	if err := c.recover(); err != nil {
		return c.run, err
	}
	cancelled := false
	if c.mem.Run().Cancelling {
		cancelled = true
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		starts := c.dispatch()
		if err := c.commit(ctx); err != nil {
			c.abort()
			return c.run, err
		}
		for _, s := range starts {
			c.launch(s)
		}
		if c.mem.Run().State.Terminal() && len(c.running) == 0 {
			c.cleanup()
			return c.run, nil
		}

		var timerC <-chan time.Time
		if next, ok := c.timers.peek(); ok {
			d := next.at.Sub(c.r.Now())
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			timerC = timer.C
		}
		ctxDone := ctx.Done()
		if cancelled {
			ctxDone = nil
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
		case <-timerC:
			now := c.now()
			for {
				w, ok := c.timers.peek()
				if !ok || w.at.After(now) {
					break
				}
				c.timers.pop()
				if _, err := c.apply(engine.Event{Kind: engine.EvRetryDue, Task: w.task}, now); err != nil && !errors.Is(err, engine.ErrRejected) {
					return c.run, err
				}
			}
		case <-ctxDone:
			cancelled = true
			if _, err := c.apply(engine.Event{Kind: engine.EvCancel, Task: -1, Actor: "local", Message: "interrupted"}, c.now()); err != nil && !errors.Is(err, engine.ErrRejected) {
				return c.run, err
			}
		}
	}
}

// recover brings a loaded run back to life: a queued run starts; attempts
// that were running when the previous process died are lost; ready tasks are
// queued; retry waits are re-armed.
func (c *coordinator) recover() error {
	now := c.now()
	st := c.mem.Run().State
	if st == engine.RunQueued {
		_, err := c.apply(engine.Event{Kind: engine.EvRunStarted, Task: -1}, now)
		return err
	}
	lost := map[string]int{}
	for i := 0; i < c.eng.Graph.Len(); i++ {
		if t := c.mem.Task(i); t.State == engine.TaskRunning {
			lost[c.eng.Graph.Node(i).ID] = t.Attempt
		}
	}
	if n := reapOrphans(c.r.home(), c.run.ID, lost); n > 0 {
		c.r.Logger.Info("killed leftover processes of lost attempts", "run", c.run.ID, "process_groups", n)
	}
	for i := 0; i < c.eng.Graph.Len(); i++ {
		t := c.mem.Task(i)
		switch t.State {
		case engine.TaskRunning:
			msg := "the executor of this attempt stopped (process crashed or was killed)"
			att := store.Attempt{RunID: c.run.ID, Index: i, Attempt: t.Attempt, FinishedAt: now, Outcome: store.OutcomeLost, Message: msg}
			if _, err := c.apply(engine.Event{Kind: engine.EvTaskLost, Task: i, Attempt: t.Attempt, Message: msg}, now, att); err != nil {
				return fmt.Errorf("recover task %s: %w", c.eng.Graph.Node(i).ID, err)
			}
		case engine.TaskReady:
			c.queue = append(c.queue, i)
		case engine.TaskRetryWait:
			c.timers.push(wake{task: i, at: t.ReadyAt})
		}
	}
	return nil
}

type start struct {
	task    int
	attempt int
}

// dispatch starts ready tasks while slots are free.
func (c *coordinator) dispatch() []start {
	var starts []start
	for len(c.queue) > 0 && len(c.running)+len(starts) < c.r.Parallel {
		i := c.queue[0]
		c.queue = c.queue[1:]
		if c.mem.Task(i).State != engine.TaskReady {
			continue
		}
		now := c.now()
		attempt := c.mem.Task(i).Attempt + 1
		key := logs.Key{RunID: c.run.ID, TaskID: c.eng.Graph.Node(i).ID, Attempt: attempt}
		att := store.Attempt{RunID: c.run.ID, Index: i, Attempt: attempt, Worker: c.r.Worker, StartedAt: now, Log: key.String()}
		if _, err := c.apply(engine.Event{Kind: engine.EvTaskStarted, Task: i}, now, att); err != nil {
			c.r.Logger.Warn("start rejected", "run", c.run.ID, "task", key.TaskID, "err", err)
			continue
		}
		starts = append(starts, start{task: i, attempt: attempt})
	}
	if len(c.queue) == 0 {
		c.queue = nil // let a drained queue's array be collected
	}
	return starts
}

// launch runs an attempt in its own goroutine.
func (c *coordinator) launch(s start) {
	node := c.eng.Graph.Node(s.task)
	a := &Attempt{
		RunID:    c.run.ID,
		Pipeline: c.pipeline,
		Task:     &c.pipeline.Tasks[s.task],
		Number:   s.attempt,
		Params:   c.params,
		Dir:      c.dir,
		WorkDir:  c.workDir,
		Log:      logs.Key{RunID: c.run.ID, TaskID: node.ID, Attempt: s.attempt},
	}
	var needErr error
	if len(node.Needs) > 0 {
		a.NeedFiles = make(map[string]string, len(node.Needs))
		for _, n := range node.Needs {
			path, err := c.needFile(n)
			if err != nil {
				needErr = err
				break
			}
			a.NeedFiles[c.eng.Graph.Node(n).ID] = path
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.running[s.task] = cancel
	go func() {
		var res AttemptResult
		if needErr != nil {
			res = AttemptResult{Kind: engine.EvTaskFailed, Message: needErr.Error()}
		} else {
			res = c.r.Kind(ctx, a)
		}
		c.done <- completion{task: s.task, attempt: s.attempt, res: res, at: c.now()}
	}()
}

func (c *coordinator) finish(comp completion) {
	if cancel, ok := c.running[comp.task]; ok {
		cancel()
		delete(c.running, comp.task)
	}
	res := comp.res
	outcome := map[engine.EventKind]store.Outcome{
		engine.EvTaskSucceeded: store.OutcomeSucceeded,
		engine.EvTaskFailed:    store.OutcomeFailed,
		engine.EvTaskTimedOut:  store.OutcomeTimedOut,
		engine.EvTaskCancelled: store.OutcomeCancelled,
		engine.EvTaskPreempted: store.OutcomePreempted,
		engine.EvTaskLost:      store.OutcomeLost,
	}[res.Kind]
	att := store.Attempt{
		RunID: c.run.ID, Index: comp.task, Attempt: comp.attempt,
		FinishedAt: comp.at, Outcome: outcome, ExitCode: res.ExitCode, Message: res.Message,
	}
	ev := engine.Event{Kind: res.Kind, Task: comp.task, Attempt: comp.attempt, ExitCode: res.ExitCode, Message: res.Message, Result: res.Result}
	if _, err := c.apply(ev, comp.at, att); err != nil {
		c.r.Logger.Warn("attempt result rejected", "run", c.run.ID, "task", c.eng.Graph.Node(comp.task).ID, "attempt", comp.attempt, "err", err)
	}
}

// abort ends every running attempt after a fatal store error. What the store
// has is consistent: the run can be resumed.
func (c *coordinator) abort() {
	for _, cancel := range c.running {
		cancel()
	}
	for len(c.running) > 0 {
		comp := <-c.done
		delete(c.running, comp.task)
	}
}

// needFile returns the path of a file holding task n's result, writing it the
// first time a dependent needs it: each result is written once per run, not
// once per dependent.
func (c *coordinator) needFile(n int) (string, error) {
	if path, ok := c.needFiles[n]; ok {
		return path, nil
	}
	id := c.eng.Graph.Node(n).ID
	if len(c.needFiles) == 0 {
		if err := os.MkdirAll(filepath.Join(c.workDir, "needs"), 0o755); err != nil {
			return "", fmt.Errorf("prepare needs directory: %w", err)
		}
	}
	data := c.mem.Task(n).Result
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	path := filepath.Join(c.workDir, "needs", id+".json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return "", fmt.Errorf("write result of need %s: %w", id, err)
	}
	c.needFiles[n] = path
	return path, nil
}

// cleanup removes the run's scratch files once it has ended; results live in
// the store.
func (c *coordinator) cleanup() {
	if err := os.RemoveAll(c.workDir); err != nil {
		c.r.Logger.Warn("remove scratch directory", "dir", c.workDir, "err", err)
	}
}

// wake is a retry_wait task's due time.
type wake struct {
	task int
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

func (h *wakeHeap) push(w wake) { heap.Push(h, w) }
func (h *wakeHeap) pop() wake   { return heap.Pop(h).(wake) }

func (h wakeHeap) peek() (wake, bool) {
	if len(h) == 0 {
		return wake{}, false
	}
	return h[0], true
}

// paramEnv renders a run's stored parameter values as the environment
// variables commands see (TASUKI_PARAM_<NAME>).
func paramEnv(p *spec.Pipeline, raw json.RawMessage) (map[string]string, error) {
	out := map[string]string{}
	if len(raw) == 0 {
		return out, nil
	}
	var values map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&values); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	for _, prm := range p.Params {
		v, ok := values[prm.Name]
		if !ok {
			continue
		}
		if n, isNum := v.(json.Number); isNum {
			v = n.String()
		}
		if list, isList := v.([]any); isList {
			items := make([]string, len(list))
			for i, item := range list {
				items[i] = fmt.Sprint(item)
			}
			v = items
		}
		s, err := prm.Format(v)
		if err != nil {
			return nil, err
		}
		out[prm.EnvName()] = s
	}
	return out, nil
}

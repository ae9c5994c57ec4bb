package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/kinds"
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
	// Parallel is the most task attempts running at once (default 4) when
	// Dispatcher is nil.
	Parallel int
	// Dispatcher hands out execution slots; share one between runners of
	// one process so limits, pools and priorities hold across runs.
	Dispatcher *Dispatcher
	// DrainGrace is how long running attempts get to finish by themselves
	// after Drain (no signal reaches them meanwhile) before they are killed
	// at once and handed back (default 30s).
	DrainGrace time.Duration
	// Grace is how long a task stopped for a timeout or a cancel gets between
	// SIGTERM and SIGKILL (default 10s).
	Grace time.Duration
	// Worker names this executor in attempt rows (default "local:<hostname>").
	Worker string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Observe, when set, is called from the coordinator after each committed
	// batch with the records it wrote. It must not block for long.
	Observe func(Progress)
	// Executor runs task attempts. Nil means run them here with their kind
	// (RunProcess); a server passes its lease broker, benchmarks a no-op to
	// measure orchestration alone.
	Executor TaskFunc
	// Artifacts keeps the output files of attempts and gives those of
	// their needs (default: an artifact.Dir in Home/artifacts).
	Artifacts artifact.Store
	// ShareMapNeeds keeps the file of a map need's results (each item's,
	// as JSON lines) in Artifacts, once per run, and names it in the
	// Spec of every attempt of a run task that needs the map
	// (attempt.Spec.NeedFiles), for executors on other machines: a
	// server sets it for its remote workers. Without it the file is only
	// written in the run's scratch directory, which RunProcess reads.
	ShareMapNeeds bool
	// Kinds are the kinds of work attempts are described and run with
	// (default kinds.Builtin(): commands, HTTP, SQL and the waits that need no store).
	Kinds *attempt.Registry
	// LostHold, when set, says how long to hold the next attempt of a task
	// whose running attempt is found lost at recovery, by the worker that
	// ran it: a remote worker may still be running it until its lease ends.
	LostHold func(worker string) time.Duration
	// Adopt, when set, is asked at recovery about each attempt of a task
	// (not a map's item) that the store says is running, with the worker
	// its row names: a TaskFunc it returns takes the attempt over as it is
	// (the worker may still run it: the function waits for its end, or
	// for it to be found lost), so the attempt is neither recorded lost
	// nor run again. Nil (from Adopt or for it) records the attempt lost.
	Adopt func(worker string) TaskFunc
	// AdoptItems, when set, is asked at recovery about each attempt of a
	// running map's items that the store says a remote worker was handed
	// (store.MapLease) and that has not ended, with that worker and the
	// bundle it came in (its lease's id when it came alone): a TaskFunc
	// it returns takes the attempt over as it is, as Adopt does a task's,
	// so its items are neither recorded lost nor run again. Nil (from
	// AdoptItems or for it) records them lost.
	AdoptItems func(worker, bundle string) TaskFunc
	// Timezone is where schedules without a timezone are read; interval
	// variables are written in the schedule's zone (default UTC).
	Timezone *time.Location
	// Logger receives operational messages (default slog.Default()).
	Logger *slog.Logger
	// Secrets looks up the secrets pipelines refer to, when an attempt is
	// described (nil: there are none, and an attempt that needs one fails).
	Secrets SecretSource
	// Poker checks the conditions of waiting tasks (default one of its
	// own, checking with Kinds); share one between runners of a process.
	Poker *Poker
	// NoCache runs every attempt, even of tasks with cache:, and stores
	// their results, replacing the entries of their keys: 'tasuki run
	// --no-cache' refreshes a cached result.
	NoCache bool
	// CacheTTL is how long a cache entry is reused when the task gives no
	// cache.ttl (0: DefaultCacheTTL; negative: no expiry).
	CacheTTL time.Duration
	// DatasetsUpdated, when set, is called after a commit that recorded
	// updates of datasets (a producing task succeeded), with their names:
	// a server wakes its scheduler for the pipelines they start.
	DatasetsUpdated func(names []string)
	// StoreOutage is how long a run keeps trying to write its state
	// through transient store failures (store.Transient: the database
	// restarting, unreachable, a disk full) before its execution gives up
	// as it does on a permanent error (default 10 minutes). Meanwhile its
	// running attempts run on and nothing new starts. RetryMin and
	// RetryMax bound the wait between tries (defaults 100 ms and 5 s).
	StoreOutage        time.Duration
	RetryMin, RetryMax time.Duration

	initOnce  sync.Once
	drain     chan struct{} // closed by Drain
	drainOnce sync.Once
	hurry     chan struct{} // closed by Hurry
	hurryOnce sync.Once
	mu        sync.Mutex
	active    map[int64]*coordinator   // runs executing in this process
	versions  map[int64]*parsedVersion // parsed pipeline versions, by id
}

// parsedVersion is a stored pipeline version, parsed, with its graph: both
// are immutable and shared by every run of the version. Parsing a large
// pipeline again for each run was an eighth of the cost of running it.
type parsedVersion struct {
	p    *spec.Pipeline
	g    *engine.Graph
	file string
}

// maxVersions bounds the parsed versions kept; past it the cache starts over.
const maxVersions = 256

func (r *Runner) remember(id int64, pv *parsedVersion) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.versions) >= maxVersions {
		clear(r.versions)
	}
	r.versions[id] = pv
}

// Pipeline returns a stored pipeline version, parsed (and kept: the result
// is shared and must not be modified). A version that no longer parses
// gives an error wrapping the spec.ErrorList.
func (r *Runner) Pipeline(ctx context.Context, versionID int64) (*spec.Pipeline, error) {
	r.defaults()
	pv, err := r.version(ctx, versionID)
	if err != nil {
		return nil, err
	}
	return pv.p, nil
}

// version returns a pipeline version parsed, from the cache or the store.
func (r *Runner) version(ctx context.Context, id int64) (*parsedVersion, error) {
	r.mu.Lock()
	pv, ok := r.versions[id]
	r.mu.Unlock()
	if ok {
		return pv, nil
	}
	v, err := r.Store.PipelineVersion(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("load pipeline version %d: %w", id, err)
	}
	p, err := spec.Parse(v.File, v.Source)
	if err != nil {
		return nil, fmt.Errorf("parse stored pipeline version %d: %w", id, err)
	}
	g, err := Graph(p)
	if err != nil {
		return nil, fmt.Errorf("graph of pipeline version %d: %w", id, err)
	}
	pv = &parsedVersion{p: p, g: g, file: v.File}
	r.remember(id, pv)
	return pv, nil
}

// SecretSource gives the value of a secret by name (secret.Resolver). An
// error must name the secret, never hold a value: it becomes the failed
// attempt's message.
type SecretSource interface {
	Secret(ctx context.Context, name string) (string, error)
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

// Attempt is one attempt handed to an executor (a TaskFunc): who it is,
// what a broker needs to place it, and its Spec, the one description of
// what to run that local and remote executors alike are given.
// An Attempt is used through its pointer, never copied.
type Attempt struct {
	RunID    int64
	Pipeline string // the pipeline's name
	TaskID   string
	Index    int // the task's position in the run's graph
	Number   int
	// Item and Items say which items of a map task the attempt runs:
	// Items of them from Item on (Items is 0 for a task that is not a map,
	// 1 for one item, more for a batch).
	Item, Items int
	// Priority and Labels place the attempt: higher priorities are handed
	// out first, and only to workers that have every label.
	Priority int
	Labels   []string
	Log      logs.Key

	// unitItems and unitAttempts are the items of a map's attempt and each
	// one's attempt number (Unit).
	unitItems, unitAttempts []int

	describe func() (attempt.Spec, error) // builds the Spec; set by the runner
	once     sync.Once
	spec     attempt.Spec
	specErr  error

	// What the runner's own process executor needs on this machine.
	dir     string     // directory of the pipeline file: relative workdirs start here
	workDir string     // the run's scratch directory, where the result file goes
	needs   *needFiles // writes the needs' results to files, once per run
}

// Spec returns the attempt's description: what the in-process executor
// runs and what a lease carries to a remote worker. The runner builds it
// on first use, once, so an executor that runs nothing (a benchmark's
// no-op) does not pay for it, and every caller gets the same Spec.
func (a *Attempt) Spec() (*attempt.Spec, error) {
	a.once.Do(func() {
		if a.describe == nil {
			a.specErr = fmt.Errorf("attempt %d of task %s was not described", a.Number, a.TaskID)
			return
		}
		a.spec, a.specErr = a.describe()
	})
	return &a.spec, a.specErr
}

// Unit returns the items an attempt of a map's items runs and each one's
// attempt number (nil for a task's attempt): what a record of the worker
// running them names (store.LeasedUnit). The slices are the runner's: not
// to be changed. An attempt built outside the runner without WithUnit
// runs Items items from Item, each at its Number.
func (a *Attempt) Unit() (items, attempts []int) {
	if a.unitItems != nil || a.Items == 0 {
		return a.unitItems, a.unitAttempts
	}
	for k := range a.Items {
		items, attempts = append(items, a.Item+k), append(attempts, a.Number)
	}
	return items, attempts
}

// WithUnit gives an attempt built outside the runner (tests of executors)
// the items it runs, and returns it.
func (a *Attempt) WithUnit(items, attempts []int) *Attempt {
	a.unitItems, a.unitAttempts = items, attempts
	return a
}

// WithSpec gives an attempt built outside the runner (tests of executors)
// its Spec, and returns it.
func (a *Attempt) WithSpec(s attempt.Spec) *Attempt {
	a.describe = func() (attempt.Spec, error) { return s, nil }
	return a
}

// AttemptResult is how an attempt ended.
type AttemptResult = attempt.Result

// TaskFunc runs one attempt and returns once it has ended. ctx is cancelled
// when the attempt must stop, with a cause saying why (attempt.ErrCancelled
// when the run is cancelled, attempt.ErrPreempted when a drain hands it
// back).
type TaskFunc func(ctx context.Context, a *Attempt) AttemptResult

func (r *Runner) defaults() { r.initOnce.Do(r.init) }

func (r *Runner) init() {
	if r.Parallel <= 0 {
		r.Parallel = 4
	}
	if r.Dispatcher == nil {
		r.Dispatcher = NewDispatcher(r.Parallel, nil)
	}
	if r.Timezone == nil {
		r.Timezone = time.UTC
	}
	if r.StoreOutage <= 0 {
		r.StoreOutage = 10 * time.Minute
	}
	if r.RetryMin <= 0 {
		r.RetryMin = 100 * time.Millisecond
	}
	if r.RetryMax <= 0 {
		r.RetryMax = 5 * time.Second
	}
	if r.DrainGrace <= 0 {
		r.DrainGrace = 30 * time.Second
	}
	r.drain = make(chan struct{})
	r.hurry = make(chan struct{})
	r.active = map[int64]*coordinator{}
	r.versions = map[int64]*parsedVersion{}
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
	if r.Kinds == nil {
		r.Kinds = kinds.Builtin()
	}
	if r.Artifacts == nil {
		r.Artifacts = &artifact.Dir{Root: filepath.Join(r.home(), "artifacts")}
	}
	if r.Executor == nil {
		r.Executor = r.RunProcess
	}
	if r.Poker == nil {
		r.Poker = &Poker{Kinds: r.Kinds, Now: r.Now}
	}
}

// Create stores the pipeline version and a queued run of it with the given
// parameter values (checked against the declared types).
func (r *Runner) Create(ctx context.Context, p *spec.Pipeline, params map[string]string, trigger string) (store.Run, error) {
	nr, err := r.NewRun(ctx, p, params, trigger)
	if err != nil {
		return store.Run{}, err
	}
	run, err := r.Store.CreateRun(ctx, nr)
	if err != nil {
		return store.Run{}, fmt.Errorf("create run of %s: %w", p.Name, err)
	}
	return run, nil
}

// ParamError is a parameter value that does not fit its declaration.
type ParamError struct{ Err error }

func (e *ParamError) Error() string { return e.Err.Error() }
func (e *ParamError) Unwrap() error { return e.Err }

// NewRun prepares (without writing it) a queued run of p: the pipeline
// version is stored, parameters are checked and every task row is built.
// Callers that need more (a schedule interval, a backfill) fill it in and
// pass it to the store's CreateRun. Bad parameter values are a *ParamError.
func (r *Runner) NewRun(ctx context.Context, p *spec.Pipeline, params map[string]string, trigger string) (store.NewRun, error) {
	r.defaults()
	values, err := p.ResolveParams(params)
	if err != nil {
		return store.NewRun{}, &ParamError{Err: err}
	}
	g, err := Graph(p)
	if err != nil {
		return store.NewRun{}, err
	}
	file := p.Source.File
	if abs, err := filepath.Abs(file); err == nil {
		file = abs
	}
	v, err := r.Store.PutPipelineVersion(ctx, store.PipelineVersion{
		Pipeline: p.Name, Hash: p.Source.Hash, File: file, Source: p.Source.Data, CreatedAt: r.Now(),
	})
	if err != nil {
		return store.NewRun{}, fmt.Errorf("store pipeline %s: %w", p.Name, err)
	}
	r.remember(v.ID, &parsedVersion{p: p, g: g, file: v.File})
	for _, prm := range p.Params {
		// Dates and datetimes are kept in their canonical text form, the one
		// commands see; numbers, bools and lists stay JSON values.
		if t, ok := values[prm.Name].(time.Time); ok {
			if values[prm.Name], err = prm.Format(t); err != nil {
				return store.NewRun{}, err
			}
		}
	}
	pj, err := json.Marshal(values)
	if err != nil {
		return store.NewRun{}, fmt.Errorf("encode params: %w", err)
	}
	tasks := make([]store.TaskRow, g.Len())
	for i, t := range g.InitialTasks() {
		tasks[i] = store.TaskRow{Index: i, TaskID: g.Node(i).ID, Task: t}
	}
	return store.NewRun{
		Run: store.Run{
			Pipeline: p.Name, VersionID: v.ID, Trigger: trigger, Params: pj,
			CreatedAt: r.Now(), TaskCount: g.Len(), Run: g.InitialRun(),
		},
		Tasks: tasks,
	}, nil
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
	r.mu.Lock()
	r.active[runID] = c
	r.mu.Unlock()
	defer func() {
		close(c.exited) // before leaving r.active: Act falls back to the store
		r.mu.Lock()
		delete(r.active, runID)
		r.mu.Unlock()
	}()
	return c.loop(ctx)
}

// Act applies an operator action (cancel, retry failed, mark a task) to a
// run and returns the run as written. A run executing in this process gets
// the event through its coordinator; any other run is changed in the store
// directly, and reopened returns true when the run must be executed again
// (a retry or a mark reopened a finished run).
func (r *Runner) Act(ctx context.Context, runID int64, ev engine.Event) (run store.Run, reopened bool, err error) {
	r.defaults()
	for {
		r.mu.Lock()
		c := r.active[runID]
		r.mu.Unlock()
		if c == nil {
			break
		}
		req := controlReq{ev: ev, reply: make(chan controlResult, 1)}
		select {
		case c.control <- req:
			res := <-req.reply
			return res.run, false, res.err
		case <-c.exited:
			// The loop ended meanwhile: act on the store (below), once its
			// Execute has let go of the run.
		case <-ctx.Done():
			return store.Run{}, false, ctx.Err()
		}
		break
	}
	unlock, err := r.lockWait(ctx, runID)
	if err != nil {
		return store.Run{}, false, err
	}
	defer unlock()
	c, err := r.load(ctx, runID)
	if err != nil {
		return store.Run{}, false, err
	}
	// Nothing executes this run here: record the transition only. Its
	// actions (tasks to queue, timers) are Execute's business if the run
	// was reopened.
	c.detached = true
	wasTerminal := c.run.State.Terminal()
	if _, err := c.apply(ev, c.now()); err != nil {
		return c.run, false, err
	}
	if err := c.commit(ctx); err != nil {
		return c.run, false, err
	}
	return c.run, wasTerminal && !c.run.State.Terminal() || c.run.State == engine.RunQueued, nil
}

// lockWait takes the run's lock, waiting a little for an Execute of this
// process that is letting go of it.
func (r *Runner) lockWait(ctx context.Context, runID int64) (func(), error) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		unlock, err := r.lock(runID)
		if !errors.Is(err, ErrBusy) || time.Now().After(deadline) {
			return unlock, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Drain stops starting attempts in every run this runner executes; running
// attempts get DrainGrace to finish, then are handed back as preempted (not
// charged to their retry budget). Execute calls return once their attempts
// are done; the runs resume at the next start.
func (r *Runner) Drain() {
	r.defaults()
	r.drainOnce.Do(func() {
		r.Dispatcher.setPaused(true)
		close(r.drain)
	})
}

// Hurry ends a drain's grace period at once: running attempts are ended
// and handed back now. A server that lost its leadership uses it, since
// another server is about to run those tasks.
func (r *Runner) Hurry() {
	r.defaults()
	r.hurryOnce.Do(func() { close(r.hurry) })
}

// Waiting says why a ready task of a run has not started yet.
func (r *Runner) Waiting(runID int64, task int) string {
	r.defaults()
	return r.Dispatcher.Waiting(runID, task)
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
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("lock run %d: %w", runID, err)
	}
	path := filepath.Join(dir, "run-"+strconv.FormatInt(runID, 10)+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
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

// paramEnv renders a run's stored parameter values as the environment
// variables commands see (TASUKI_PARAM_<NAME>), through spec.ParamEnv.
func paramEnv(p *spec.Pipeline, raw json.RawMessage) (map[string]string, error) {
	text, err := ParamText(p, raw)
	if err != nil {
		return nil, err
	}
	values := make(map[string]any, len(text))
	for k, v := range text {
		values[k] = v
	}
	env, err := p.ParamEnv(values)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out, nil
}

// ParamText renders a run's stored parameter values (a JSON object) as the
// canonical text of each parameter, by name: what commands see, and what
// ResolveParams reads back (a rerun passes them again).
func ParamText(p *spec.Pipeline, raw json.RawMessage) (map[string]string, error) {
	out := map[string]string{}
	if len(raw) == 0 {
		return out, nil
	}
	var values map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&values); err != nil {
		return nil, fmt.Errorf("decode params: %w", err)
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
		out[prm.Name] = s
	}
	return out, nil
}

// intervalEnv renders a run's logical interval as the TASUKI_INTERVAL_*
// variables, in the time zone of the pipeline's schedule.
func (r *Runner) intervalEnv(p *spec.Pipeline, run store.Run) map[string]string {
	if run.IntervalStart.IsZero() && run.IntervalEnd.IsZero() {
		return nil
	}
	loc := r.Timezone
	if p.Schedule != nil && p.Schedule.Timezone != "" {
		if l, err := time.LoadLocation(p.Schedule.Timezone); err == nil {
			loc = l
		}
	}
	start, end := run.IntervalStart.In(loc), run.IntervalEnd.In(loc)
	return map[string]string{
		"TASUKI_INTERVAL_START": start.Format(time.RFC3339),
		"TASUKI_INTERVAL_END":   end.Format(time.RFC3339),
		"TASUKI_INTERVAL_DATE":  start.Format(spec.DateLayout),
	}
}

// AttemptEnded reports whether the attempt a log key names has ended, as
// the store says: its attempt row has an outcome. Log stores use it to stop
// following the log of an attempt that printed nothing. A task's position
// is looked up once per run, so each check reads only that task's attempts,
// however large the run.
func AttemptEnded(st store.Store) func(ctx context.Context, k logs.Key) bool {
	var mu sync.Mutex
	index := map[logs.Key]int{} // by run and task (Attempt zero)
	return func(ctx context.Context, k logs.Key) bool {
		if task, item, ok := logs.ParseItemTask(k.TaskID); ok {
			return itemAttemptEnded(ctx, st, k, task, item)
		}
		key := logs.Key{RunID: k.RunID, TaskID: k.TaskID}
		mu.Lock()
		i, ok := index[key]
		mu.Unlock()
		if !ok {
			tasks, err := st.Tasks(ctx, k.RunID)
			if err != nil {
				return errors.Is(err, store.ErrNotFound)
			}
			i = -1
			for _, t := range tasks {
				if t.TaskID == k.TaskID {
					i = t.Index
				}
			}
			if i < 0 {
				return true
			}
			mu.Lock()
			if len(index) > 1000 {
				clear(index)
			}
			index[key] = i
			mu.Unlock()
		}
		atts, err := st.Attempts(ctx, k.RunID, i)
		if err != nil {
			return errors.Is(err, store.ErrNotFound)
		}
		for _, a := range atts {
			if a.Attempt == k.Attempt {
				return a.Outcome != ""
			}
		}
		return len(atts) > 0 && atts[len(atts)-1].Attempt > k.Attempt
	}
}

// itemAttemptEnded is AttemptEnded for the log of a map item ("task.ITEM"):
// an item's row is written when an attempt of it ends, so the attempt has
// ended once the row names it or a later one.
func itemAttemptEnded(ctx context.Context, st store.Store, k logs.Key, task string, item int) bool {
	ms, ok := st.(store.Maps)
	if !ok {
		return true
	}
	tasks, err := st.Tasks(ctx, k.RunID)
	if err != nil {
		return errors.Is(err, store.ErrNotFound)
	}
	for _, t := range tasks {
		if t.TaskID != task {
			continue
		}
		if t.State.Terminal() {
			return true
		}
		rows, err := ms.MapItems(ctx, store.MapItemFilter{RunID: k.RunID, Index: t.Index, From: item, Limit: 1})
		if err != nil {
			return false
		}
		return len(rows) == 1 && rows[0].Item == item && rows[0].Attempt >= k.Attempt && rows[0].State != engine.TaskPending
	}
	return true
}

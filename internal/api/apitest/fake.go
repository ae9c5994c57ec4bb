package apitest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
)

// Call is one recorded call of a Service method, with its arguments after
// the context.
type Call struct {
	Method string
	Args   []any
}

// Fake is an in-memory api.Service. Its zero value is not usable; use New.
type Fake struct {
	mu        sync.Mutex
	calls     []Call
	pipelines map[string]api.Pipeline
	problems  []api.FileProblem
	runs      map[int64]api.Run // with tasks and their attempts
	events    map[int64][]api.Event
	backfills map[int64]api.Backfill
	nextRun   int64
	nextBF    int64
	fail      map[string]error
	panics    map[string]bool
	notReady  error

	// TriggerState is the state new runs start in (default queued), so
	// tests of waiting for a run can make it end at once.
	TriggerState engine.RunState
	// Now is the clock of created runs and events.
	Now func() time.Time
}

var _ api.Service = (*Fake)(nil)

// New returns an empty Fake.
func New() *Fake {
	return &Fake{
		pipelines: map[string]api.Pipeline{}, runs: map[int64]api.Run{}, events: map[int64][]api.Event{},
		backfills: map[int64]api.Backfill{}, fail: map[string]error{}, panics: map[string]bool{},
		Now: func() time.Time { return time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC) },
	}
}

// AddPipeline adds (or replaces) a pipeline.
func (f *Fake) AddPipeline(p api.Pipeline) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pipelines[p.Name] = p
}

// AddProblem lists a pipeline file that does not load.
func (f *Fake) AddProblem(p api.FileProblem) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.problems = append(f.problems, p)
}

// AddRun adds a run (its tasks may carry attempts); ID 0 takes the next id.
// It returns the run as stored.
func (f *Fake) AddRun(r api.Run) api.Run {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.ID == 0 {
		f.nextRun++
		r.ID = f.nextRun
	}
	f.nextRun = max(f.nextRun, r.ID)
	if r.CreatedAt.IsZero() {
		r.CreatedAt = f.Now()
	}
	r.TaskCount = max(r.TaskCount, len(r.Tasks))
	f.runs[r.ID] = r
	return r
}

// SetRunState changes a run's state.
func (f *Fake) SetRunState(id int64, s engine.RunState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.runs[id]
	r.State = s
	f.runs[id] = r
}

// AddEvents appends events to a run's timeline, numbering them.
func (f *Fake) AddEvents(runID int64, evs ...api.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addEventsLocked(runID, evs...)
}

func (f *Fake) addEventsLocked(runID int64, evs ...api.Event) {
	for _, e := range evs {
		e.Seq = int64(len(f.events[runID]) + 1)
		if e.Time.IsZero() {
			e.Time = f.Now()
		}
		f.events[runID] = append(f.events[runID], e)
	}
}

// AddBackfill adds a backfill; ID 0 takes the next id.
func (f *Fake) AddBackfill(b api.Backfill) api.Backfill {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b.ID == 0 {
		f.nextBF++
		b.ID = f.nextBF
	}
	f.nextBF = max(f.nextBF, b.ID)
	f.backfills[b.ID] = b
	return b
}

// Fail makes every later call of method return err (nil: succeed again).
func (f *Fake) Fail(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.fail, method)
	} else {
		f.fail[method] = err
	}
}

// Panic makes every later call of method panic.
func (f *Fake) Panic(method string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.panics[method] = true
}

// SetReady makes Ready return err.
func (f *Fake) SetReady(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.notReady = err
}

// Calls returns the calls made so far.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// LastCall returns the latest call of method.
func (f *Fake) LastCall(method string) (Call, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.calls) - 1; i >= 0; i-- {
		if f.calls[i].Method == method {
			return f.calls[i], true
		}
	}
	return Call{}, false
}

// enter records a call and applies what the test asked for (a panic, an
// error). It returns with f.mu held unless it returns an error.
func (f *Fake) enter(method string, args ...any) error {
	f.mu.Lock()
	f.calls = append(f.calls, Call{Method: method, Args: args})
	if f.panics[method] {
		f.mu.Unlock()
		panic("apitest: " + method + " panics as asked")
	}
	if err := f.fail[method]; err != nil {
		f.mu.Unlock()
		return err
	}
	return nil
}

// Pipelines implements api.Service.
func (f *Fake) Pipelines(ctx context.Context) (api.PipelineList, error) {
	if err := f.enter("Pipelines"); err != nil {
		return api.PipelineList{}, err
	}
	defer f.mu.Unlock()
	ps := make([]api.Pipeline, 0, len(f.pipelines))
	for _, p := range f.pipelines {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b api.Pipeline) int { return cmp.Compare(a.Name, b.Name) })
	return api.PipelineList{Items: ps, Problems: append([]api.FileProblem{}, f.problems...)}, nil
}

// Pipeline implements api.Service.
func (f *Fake) Pipeline(ctx context.Context, name string) (api.Pipeline, error) {
	if err := f.enter("Pipeline", name); err != nil {
		return api.Pipeline{}, err
	}
	defer f.mu.Unlock()
	return f.pipelineLocked(name)
}

func (f *Fake) pipelineLocked(name string) (api.Pipeline, error) {
	p, ok := f.pipelines[name]
	if !ok {
		return api.Pipeline{}, api.NotFound("no pipeline %q", name)
	}
	return p, nil
}

// SetPaused implements api.Service.
func (f *Fake) SetPaused(ctx context.Context, name string, paused bool, actor string) (api.Pipeline, error) {
	if err := f.enter("SetPaused", name, paused, actor); err != nil {
		return api.Pipeline{}, err
	}
	defer f.mu.Unlock()
	p, err := f.pipelineLocked(name)
	if err != nil {
		return p, err
	}
	p.Paused = paused
	f.pipelines[name] = p
	return p, nil
}

// Trigger implements api.Service. Parameters must be declared; int, float
// and bool values are checked as the server would.
func (f *Fake) Trigger(ctx context.Context, name string, params map[string]string, actor string) (api.Run, error) {
	if err := f.enter("Trigger", name, params, actor); err != nil {
		return api.Run{}, err
	}
	defer f.mu.Unlock()
	p, err := f.pipelineLocked(name)
	if err != nil {
		return api.Run{}, err
	}
	for k, v := range params {
		i := slices.IndexFunc(p.Params, func(d api.Param) bool { return d.Name == k })
		if i < 0 {
			return api.Run{}, api.ParamError(k, "param %q: pipeline %s has no such parameter", k, name)
		}
		if msg := checkParam(p.Params[i].Type, v); msg != "" {
			return api.Run{}, api.ParamError(k, "param %q: expected %s, got %q", k, msg, v)
		}
	}
	b, _ := json.Marshal(params)
	state := cmp.Or(f.TriggerState, engine.RunQueued)
	f.nextRun++
	r := api.Run{ID: f.nextRun, Pipeline: name, State: state, Trigger: "manual", Params: b, CreatedAt: f.Now(), TaskCount: p.Tasks, Remaining: p.Tasks}
	if state.Terminal() {
		r.Remaining = 0
	}
	f.runs[r.ID] = r
	f.addEventsLocked(r.ID, api.Event{Kind: "run_triggered", Actor: actor})
	if state.Terminal() {
		f.addEventsLocked(r.ID, api.Event{Kind: engine.RecRunFinished, Message: string(state)})
	}
	return r, nil
}

// checkParam says what a value of a type looks like if v is not one.
func checkParam(typ, v string) string {
	var err error
	switch typ {
	case "int":
		_, err = strconv.ParseInt(v, 10, 64)
		if err != nil {
			return "an integer like 42"
		}
	case "float":
		_, err = strconv.ParseFloat(v, 64)
		if err != nil {
			return "a number like 3.14"
		}
	case "bool":
		_, err = strconv.ParseBool(v)
		if err != nil {
			return "true or false"
		}
	case "list":
		if strings.HasPrefix(v, "[") {
			var items []string
			if json.Unmarshal([]byte(v), &items) != nil {
				return `a list of strings like ["a","b"]`
			}
		}
	}
	return ""
}

// Runs implements api.Service: newest first; the cursor is the id below
// which the next page starts.
func (f *Fake) Runs(ctx context.Context, flt api.RunFilter) (api.Page[api.Run], error) {
	if err := f.enter("Runs", flt); err != nil {
		return api.Page[api.Run]{}, err
	}
	defer f.mu.Unlock()
	below := int64(1 << 62)
	if flt.Cursor != "" {
		n, err := strconv.ParseInt(flt.Cursor, 10, 64)
		if err != nil {
			return api.Page[api.Run]{}, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "cursor %q: not one this server gave", flt.Cursor)
		}
		below = n
	}
	limit := cmp.Or(flt.Limit, 50)
	all := []api.Run{}
	for _, r := range f.runs {
		if r.ID >= below || (flt.Pipeline != "" && r.Pipeline != flt.Pipeline) ||
			(len(flt.States) > 0 && !slices.Contains(flt.States, r.State)) ||
			(flt.BackfillID != 0 && r.BackfillID != flt.BackfillID) ||
			(!flt.CreatedFrom.IsZero() && r.CreatedAt.Before(flt.CreatedFrom)) ||
			(!flt.CreatedBefore.IsZero() && !r.CreatedAt.Before(flt.CreatedBefore)) {
			continue
		}
		r.Tasks = nil
		all = append(all, r)
	}
	slices.SortFunc(all, func(a, b api.Run) int { return cmp.Compare(b.ID, a.ID) })
	var page api.Page[api.Run]
	if len(all) > limit {
		all = all[:limit]
		page.Next = strconv.FormatInt(all[limit-1].ID, 10)
	}
	page.Items = all
	return page, nil
}

// Run implements api.Service.
func (f *Fake) Run(ctx context.Context, id int64) (api.Run, error) {
	if err := f.enter("Run", id); err != nil {
		return api.Run{}, err
	}
	defer f.mu.Unlock()
	r, err := f.runLocked(id)
	if err != nil {
		return r, err
	}
	r.Tasks = slices.Clone(r.Tasks)
	for i := range r.Tasks {
		r.Tasks[i].Attempts = nil
	}
	return r, nil
}

func (f *Fake) runLocked(id int64) (api.Run, error) {
	r, ok := f.runs[id]
	if !ok {
		return api.Run{}, api.NotFound("no run %d", id)
	}
	return r, nil
}

// Task implements api.Service.
func (f *Fake) Task(ctx context.Context, runID int64, task string) (api.Task, error) {
	if err := f.enter("Task", runID, task); err != nil {
		return api.Task{}, err
	}
	defer f.mu.Unlock()
	_, t, err := f.taskLocked(runID, task)
	if err != nil {
		return api.Task{}, err
	}
	return f.runs[runID].Tasks[t], nil
}

func (f *Fake) taskLocked(runID int64, task string) (api.Run, int, error) {
	r, err := f.runLocked(runID)
	if err != nil {
		return r, 0, err
	}
	i := slices.IndexFunc(r.Tasks, func(t api.Task) bool { return t.ID == task })
	if i < 0 {
		return r, 0, api.NotFound("run %d has no task %q", runID, task)
	}
	return r, i, nil
}

// Events implements api.Service.
func (f *Fake) Events(ctx context.Context, runID int64, after int64, limit int) (api.Page[api.Event], error) {
	if err := f.enter("Events", runID, after, limit); err != nil {
		return api.Page[api.Event]{}, err
	}
	defer f.mu.Unlock()
	if _, err := f.runLocked(runID); err != nil {
		return api.Page[api.Event]{}, err
	}
	limit = cmp.Or(limit, 50)
	page := api.Page[api.Event]{Items: []api.Event{}}
	for _, e := range f.events[runID] {
		if e.Seq > after {
			page.Items = append(page.Items, e)
		}
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		page.Next = strconv.FormatInt(page.Items[limit-1].Seq, 10)
	}
	return page, nil
}

// rejected is how the fake refuses an action, like the engine does.
func rejected(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), engine.ErrRejected)
}

// Cancel implements api.Service.
func (f *Fake) Cancel(ctx context.Context, runID int64, actor string) (api.Run, error) {
	if err := f.enter("Cancel", runID, actor); err != nil {
		return api.Run{}, err
	}
	defer f.mu.Unlock()
	r, err := f.runLocked(runID)
	if err != nil {
		return r, err
	}
	if r.State.Terminal() {
		return api.Run{}, rejected("cancel run %d: it has %s", runID, r.State)
	}
	r.State = engine.RunCancelled
	f.runs[runID] = r
	f.addEventsLocked(runID, api.Event{Kind: engine.EvCancel, Actor: actor})
	return r, nil
}

// RetryFailed implements api.Service.
func (f *Fake) RetryFailed(ctx context.Context, runID int64, actor string) (api.Run, error) {
	if err := f.enter("RetryFailed", runID, actor); err != nil {
		return api.Run{}, err
	}
	defer f.mu.Unlock()
	r, err := f.runLocked(runID)
	if err != nil {
		return r, err
	}
	if r.State != engine.RunFailed {
		return api.Run{}, rejected("retry run %d: it has not failed (%s)", runID, r.State)
	}
	r.State = engine.RunRunning
	f.runs[runID] = r
	f.addEventsLocked(runID, api.Event{Kind: engine.EvRetryFailed, Actor: actor})
	return r, nil
}

// Rerun implements api.Service.
func (f *Fake) Rerun(ctx context.Context, runID int64, actor string) (api.Run, error) {
	if err := f.enter("Rerun", runID, actor); err != nil {
		return api.Run{}, err
	}
	defer f.mu.Unlock()
	r, err := f.runLocked(runID)
	if err != nil {
		return r, err
	}
	f.nextRun++
	n := api.Run{ID: f.nextRun, Pipeline: r.Pipeline, State: engine.RunQueued, Trigger: "rerun", Params: r.Params,
		IntervalStart: r.IntervalStart, IntervalEnd: r.IntervalEnd, CreatedAt: f.Now(), TaskCount: r.TaskCount, Remaining: r.TaskCount}
	f.runs[n.ID] = n
	return n, nil
}

// MarkTask implements api.Service.
func (f *Fake) MarkTask(ctx context.Context, runID int64, task string, state engine.TaskState, actor string) (api.Run, error) {
	if err := f.enter("MarkTask", runID, task, state, actor); err != nil {
		return api.Run{}, err
	}
	defer f.mu.Unlock()
	r, i, err := f.taskLocked(runID, task)
	if err != nil {
		return r, err
	}
	if r.Tasks[i].State == engine.TaskRunning {
		return api.Run{}, rejected("mark task %q of run %d: it is running", task, runID)
	}
	r.Tasks = slices.Clone(r.Tasks)
	r.Tasks[i].State = state
	f.runs[runID] = r
	return r, nil
}

// CreateBackfill implements api.Service: one run per day of the range.
func (f *Fake) CreateBackfill(ctx context.Context, req api.BackfillRequest, actor string) (api.Backfill, error) {
	if err := f.enter("CreateBackfill", req, actor); err != nil {
		return api.Backfill{}, err
	}
	defer f.mu.Unlock()
	if _, err := f.pipelineLocked(req.Pipeline); err != nil {
		return api.Backfill{}, err
	}
	f.nextBF++
	n := int(req.To.Sub(req.From) / (24 * time.Hour))
	b := api.Backfill{ID: f.nextBF, Pipeline: req.Pipeline, From: req.From, To: req.To, Parallel: cmp.Or(req.Parallel, 1),
		State: "running", Actor: actor, CreatedAt: f.Now(), Runs: n, Counts: api.RunCounts{engine.RunQueued: n}}
	f.backfills[b.ID] = b
	return b, nil
}

// Backfills implements api.Service.
func (f *Fake) Backfills(ctx context.Context, pipeline string, cursor string, limit int) (api.Page[api.Backfill], error) {
	if err := f.enter("Backfills", pipeline, cursor, limit); err != nil {
		return api.Page[api.Backfill]{}, err
	}
	defer f.mu.Unlock()
	page := api.Page[api.Backfill]{Items: []api.Backfill{}}
	for _, b := range f.backfills {
		if pipeline == "" || b.Pipeline == pipeline {
			page.Items = append(page.Items, b)
		}
	}
	slices.SortFunc(page.Items, func(a, b api.Backfill) int { return cmp.Compare(b.ID, a.ID) })
	return page, nil
}

// Backfill implements api.Service.
func (f *Fake) Backfill(ctx context.Context, id int64) (api.Backfill, error) {
	if err := f.enter("Backfill", id); err != nil {
		return api.Backfill{}, err
	}
	defer f.mu.Unlock()
	b, ok := f.backfills[id]
	if !ok {
		return b, api.NotFound("no backfill %d", id)
	}
	return b, nil
}

// CancelBackfill implements api.Service.
func (f *Fake) CancelBackfill(ctx context.Context, id int64, actor string) (api.Backfill, error) {
	if err := f.enter("CancelBackfill", id, actor); err != nil {
		return api.Backfill{}, err
	}
	defer f.mu.Unlock()
	b, ok := f.backfills[id]
	if !ok {
		return b, api.NotFound("no backfill %d", id)
	}
	if b.State != "running" {
		return api.Backfill{}, rejected("cancel backfill %d: it has %s", id, b.State)
	}
	b.State = "cancelled"
	f.backfills[id] = b
	return b, nil
}

// LogKey implements api.Service.
func (f *Fake) LogKey(ctx context.Context, runID int64, task string, attempt int) (logs.Key, error) {
	if err := f.enter("LogKey", runID, task, attempt); err != nil {
		return logs.Key{}, err
	}
	defer f.mu.Unlock()
	r, i, err := f.taskLocked(runID, task)
	if err != nil {
		return logs.Key{}, err
	}
	t := r.Tasks[i]
	if attempt == 0 {
		attempt = t.Attempt
	}
	if attempt <= 0 || attempt > t.Attempt {
		return logs.Key{}, api.NotFound("task %q of run %d has no attempt %d", task, runID, attempt)
	}
	return logs.Key{RunID: runID, TaskID: task, Attempt: attempt}, nil
}

// Ready implements api.Service.
func (f *Fake) Ready(ctx context.Context) error {
	if err := f.enter("Ready"); err != nil {
		return err
	}
	defer f.mu.Unlock()
	if f.notReady != nil {
		return fmt.Errorf("fake: %w", f.notReady)
	}
	return nil
}

// ErrBoom is a convenient internal error for tests.
var ErrBoom = errors.New("apitest: boom (internal detail that must not reach clients)")

// NewSeeded returns a Fake holding a small, fixed world that tests can
// rely on:
//
//   - pipelines "hello" (params who: string, n: int, ok: bool, items: list;
//     2 tasks) and "nightly" (cron 0 3 * * * in Asia/Tokyo, paused: false);
//   - run 1 of hello, succeeded: tasks greet (1 attempt) and after;
//   - run 2 of nightly, failed: task load failed after 2 attempts;
//   - run 3 of hello, running: task greet running in attempt 1, after pending;
//   - backfill 1 of nightly over 2026-01-01..2026-01-04, running.
func NewSeeded() *Fake {
	f := New()
	t0 := f.Now().Add(-time.Hour)
	t1 := t0.Add(90 * time.Second)
	zero, two := 0, 2
	f.AddPipeline(api.Pipeline{Name: "hello", Description: "say hello", File: "pipelines/hello.yaml", Hash: "h1", Tasks: 2,
		Params: []api.Param{{Name: "who", Type: "string", Default: "world"}, {Name: "n", Type: "int"}, {Name: "ok", Type: "bool"}, {Name: "items", Type: "list"}}})
	next := f.Now().Add(18 * time.Hour)
	f.AddPipeline(api.Pipeline{Name: "nightly", File: "pipelines/nightly.yaml", Hash: "h2", Tasks: 1, Schedule: "0 3 * * *", Timezone: "Asia/Tokyo", NextRun: &next})
	f.AddRun(api.Run{ID: 1, Pipeline: "hello", State: engine.RunSucceeded, Trigger: "manual", Params: json.RawMessage(`{"who":"world"}`),
		CreatedAt: t0, StartedAt: &t0, FinishedAt: &t1, TaskCount: 2,
		Tasks: []api.Task{
			{ID: "greet", Index: 0, State: engine.TaskSucceeded, Attempt: 1, StartedAt: &t0, FinishedAt: &t1, ExitCode: &zero,
				Attempts: []api.Attempt{{Attempt: 1, Worker: "local", StartedAt: t0, FinishedAt: &t1, Outcome: "succeeded", ExitCode: &zero}}},
			{ID: "after", Index: 1, State: engine.TaskSucceeded, Attempt: 1, StartedAt: &t1, FinishedAt: &t1, ExitCode: &zero},
		}})
	f.AddEvents(1, api.Event{Kind: engine.EvRunStarted}, api.Event{Kind: engine.EvTaskStarted, Task: "greet", Attempt: 1},
		api.Event{Kind: engine.EvTaskSucceeded, Task: "greet", Attempt: 1, ExitCode: &zero}, api.Event{Kind: engine.RecRunFinished, Message: "succeeded"})
	f.AddRun(api.Run{ID: 2, Pipeline: "nightly", State: engine.RunFailed, Trigger: "schedule", CreatedAt: t0, StartedAt: &t0, FinishedAt: &t1, TaskCount: 1,
		Tasks: []api.Task{{ID: "load", State: engine.TaskFailed, Attempt: 2, StartedAt: &t0, FinishedAt: &t1, ExitCode: &two, Message: "exit status 2",
			Attempts: []api.Attempt{
				{Attempt: 1, StartedAt: t0, FinishedAt: &t1, Outcome: "failed", ExitCode: &two},
				{Attempt: 2, StartedAt: t0, FinishedAt: &t1, Outcome: "failed", ExitCode: &two},
			}}}})
	f.AddRun(api.Run{ID: 3, Pipeline: "hello", State: engine.RunRunning, Trigger: "manual", CreatedAt: t1, StartedAt: &t1, TaskCount: 2, Remaining: 2,
		Tasks: []api.Task{
			{ID: "greet", Index: 0, State: engine.TaskRunning, Attempt: 1, StartedAt: &t1, Attempts: []api.Attempt{{Attempt: 1, StartedAt: t1}}},
			{ID: "after", Index: 1, State: engine.TaskPending},
		}})
	f.AddBackfill(api.Backfill{ID: 1, Pipeline: "nightly", From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 1, 4, 0, 0, 0, 0, time.UTC),
		Parallel: 1, State: "running", Actor: "ops", CreatedAt: t0, Runs: 3, Counts: api.RunCounts{engine.RunSucceeded: 1, engine.RunQueued: 2}})
	return f
}

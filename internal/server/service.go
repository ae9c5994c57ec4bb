package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/schedule"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// service implements api.Service over the server's store, registry and
// runner.
type service struct{ s *Server }

var _ api.Service = (*service)(nil)

// lastRunsShown is how many recent runs a pipeline listing carries.
const lastRunsShown = 5

func (v *service) pipeline(ctx context.Context, l Loaded, st store.PipelineState) (api.Pipeline, error) {
	out := api.Pipeline{Name: st.Name, File: st.File, Error: st.Error, Removed: st.Removed, Paused: st.Paused, NextRun: api.TimePtr(st.NextFire)}
	out.Namespace = api.Namespace(v.s.cfg.Pipelines, st.File)
	if p := l.Pipeline; p != nil {
		out.Description = p.Description
		out.Hash = p.Source.Hash
		out.Tasks = len(p.Tasks)
		if p.Schedule != nil {
			out.Schedule = p.Schedule.Cron
			out.Timezone = p.Schedule.Timezone
			out.Datasets, out.DatasetsAny = p.Schedule.Datasets, p.Schedule.Any
			if out.Timezone == "" {
				out.Timezone = v.s.loc.String()
			}
		}
		for _, prm := range p.Params {
			ap := api.Param{Name: prm.Name, Type: string(prm.Type), Required: prm.Required, Description: prm.Description, Secret: prm.Secret}
			if prm.Default != nil && prm.Secret {
				ap.Default = logs.Mask
			} else if prm.Default != nil {
				if s, err := prm.Format(prm.Default); err == nil {
					ap.Default = s
				}
			}
			out.Params = append(out.Params, ap)
		}
	}
	if st.Paused || st.Removed {
		out.NextRun = nil
	}
	runs, err := v.s.store.ListRuns(ctx, store.RunFilter{Pipeline: st.Name, Limit: lastRunsShown})
	if err != nil {
		return out, err
	}
	for _, r := range runs {
		out.LastRuns = append(out.LastRuns, v.s.apiRun(ctx, r))
	}
	return out, nil
}

func (v *service) Pipelines(ctx context.Context) (api.PipelineList, error) {
	states, err := v.s.store.PipelineStates(ctx)
	if err != nil {
		return api.PipelineList{}, err
	}
	out := api.PipelineList{Items: make([]api.Pipeline, 0, len(states)), Problems: []api.FileProblem{}}
	for _, st := range states {
		l, _ := v.s.reg.Get(st.Name)
		p, err := v.pipeline(ctx, l, st)
		if err != nil {
			return api.PipelineList{}, err
		}
		out.Items = append(out.Items, p)
	}
	for _, fp := range v.s.reg.Problems() {
		out.Problems = append(out.Problems, api.FileProblem{File: fp.File, Pipeline: fp.Pipeline, Errors: fp.Errors})
	}
	return out, nil
}

func (v *service) Pipeline(ctx context.Context, name string) (api.Pipeline, error) {
	st, err := v.s.store.PipelineState(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return api.Pipeline{}, api.NotFound("no pipeline %q", name)
	}
	if err != nil {
		return api.Pipeline{}, err
	}
	l, _ := v.s.reg.Get(name)
	return v.pipeline(ctx, l, st)
}

func (v *service) SetPaused(ctx context.Context, name string, paused bool, actor string) (api.Pipeline, error) {
	if _, err := v.Pipeline(ctx, name); err != nil {
		return api.Pipeline{}, err
	}
	if err := v.s.store.SetPaused(ctx, name, paused); err != nil {
		return api.Pipeline{}, err
	}
	v.s.log.Info("pipeline schedule paused", "pipeline", name, "paused", paused, "actor", actor)
	v.s.wakeLeader(ctx)
	return v.Pipeline(ctx, name)
}

// loaded returns a pipeline that can start runs now. A pipeline whose file
// is broken but has a last good version runs that version; one with no
// version to run but a file that declares it says what is wrong with that
// file.
func (v *service) loaded(name string) (*spec.Pipeline, error) {
	l, ok := v.s.reg.Get(name)
	if !ok || l.Removed {
		if fp, broken := v.s.reg.Problem(name); broken {
			return nil, brokenFile(name, fp)
		}
	}
	switch {
	case !ok:
		return nil, api.NotFound("no pipeline %q", name)
	case l.Removed:
		return nil, api.Errorf(http.StatusConflict, api.CodeConflict, "pipeline %q was removed from the pipelines directory; its history stays, but it cannot start runs", name)
	}
	return l.Pipeline, nil
}

// maxErrorsShown is how many of a broken file's problems a trigger's
// error repeats; the pipelines listing has them all.
const maxErrorsShown = 3

// brokenFile is the answer to a trigger of a pipeline whose file does not
// load: the file and its first problems, each as file:line:col: message.
func brokenFile(name string, fp FileProblem) error {
	shown := fp.Errors[:min(len(fp.Errors), maxErrorsShown)]
	msg := fmt.Sprintf("pipeline %q cannot start runs: its file %s does not load:\n%s", name, fp.File, strings.Join(shown, "\n"))
	if more := len(fp.Errors) - len(shown); more > 0 {
		msg += fmt.Sprintf("\n(and %d more; see tasuki pipelines)", more)
	}
	return api.Errorf(http.StatusConflict, api.CodePipelineInvalid, "%s", msg)
}

func paramsError(err error) error {
	var pe *runner.ParamError
	if errors.As(err, &pe) {
		e := api.Errorf(http.StatusBadRequest, api.CodeInvalidParams, "%s", pe.Error())
		for _, p := range spec.ParamErrors(pe) {
			e.Params = append(e.Params, api.ParamProblem{Param: p.Param, Message: p.Error()})
		}
		return e
	}
	return err
}

func (v *service) Trigger(ctx context.Context, name string, params map[string]string, actor string) (api.Run, error) {
	p, err := v.loaded(name)
	if err != nil {
		return api.Run{}, err
	}
	nr, err := v.s.runner.NewRun(ctx, p, params, store.TriggerManual)
	if err != nil {
		return api.Run{}, paramsError(err)
	}
	nr.Actor = actor
	v.s.setDeadline(p, &nr)
	run, err := v.s.store.CreateRun(ctx, nr)
	if err != nil {
		return api.Run{}, err
	}
	v.s.log.Info("run triggered", "pipeline", name, "run", run.ID, "actor", actor)
	v.s.wakeLeader(ctx)
	return v.s.apiRun(ctx, run), nil
}

func parseCursor(c string) (int64, error) {
	if c == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(c, 10, 64)
	if err != nil || n <= 0 {
		return 0, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "cursor %q: not one this server gave", c)
	}
	return n, nil
}

func (v *service) Runs(ctx context.Context, f api.RunFilter) (api.Page[api.Run], error) {
	before, err := parseCursor(f.Cursor)
	if err != nil {
		return api.Page[api.Run]{}, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = store.DefaultRunsLimit
	}
	// One more than the page is read to know whether another follows.
	limit = min(limit, store.MaxRunsLimit-1)
	if (!f.CreatedFrom.IsZero() || !f.CreatedBefore.IsZero()) && f.Pipeline == "" {
		return api.Page[api.Run]{}, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "a filter on the creation time needs a pipeline")
	}
	runs, err := v.s.store.ListRuns(ctx, store.RunFilter{Pipeline: f.Pipeline, States: f.States, BackfillID: f.BackfillID,
		CreatedFrom: f.CreatedFrom, CreatedBefore: f.CreatedBefore, BeforeID: before, Limit: limit + 1})
	if err != nil {
		return api.Page[api.Run]{}, err
	}
	page := api.Page[api.Run]{Items: []api.Run{}}
	for i, r := range runs {
		if i == limit {
			page.Next = strconv.FormatInt(runs[limit-1].ID, 10)
			break
		}
		page.Items = append(page.Items, v.s.apiRun(ctx, r))
	}
	return page, nil
}

func (v *service) Run(ctx context.Context, id int64) (api.Run, error) {
	r, err := v.s.store.Run(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return api.Run{}, api.NotFound("no run %d", id)
	}
	if err != nil {
		return api.Run{}, err
	}
	tasks, err := v.s.store.Tasks(ctx, id)
	if err != nil {
		return api.Run{}, err
	}
	out := v.s.apiRun(ctx, r)
	out.Tasks = make([]api.Task, len(tasks))
	for i, t := range tasks {
		out.Tasks[i] = api.NewTask(t)
		out.Tasks[i].Waiting = v.waiting(id, t)
		if t.State == engine.TaskWaiting {
			out.Tasks[i].NextPoke = v.nextPoke(ctx, r, t)
		}
	}
	if err := v.addMaps(ctx, r, tasks, out.Tasks); err != nil {
		return api.Run{}, err
	}
	return out, nil
}

// nextPoke is when a waiting task's condition is checked next: pokes fall
// on a grid from the wait's start (engine.WaitPolicy.NextPoke), so it is
// computed, not stored.
func (v *service) nextPoke(ctx context.Context, r store.Run, t store.TaskRow) *time.Time {
	p, err := v.s.runner.Pipeline(ctx, r.VersionID)
	if err != nil || t.Index >= len(p.Tasks) || p.Tasks[t.Index].Wait == nil {
		return nil
	}
	w := p.Tasks[t.Index].Wait
	next := engine.WaitPolicy{Poke: w.PokeEvery(), Timeout: w.Timeout.D()}.NextPoke(t.Index, t.StartedAt, v.s.now())
	return &next
}

// waiting says why a task that may start has not: no slot yet (ready), or no
// worker has taken its attempt yet (running, offered).
func (v *service) waiting(runID int64, t store.TaskRow) string {
	switch {
	case t.State == engine.TaskReady:
		return v.s.runner.Waiting(runID, t.Index)
	case t.State == engine.TaskRunning && v.s.broker.Waiting(runID, t.TaskID, t.Attempt):
		return "waiting for a worker to take it (none free with the task's labels)"
	}
	return ""
}

// task finds a task of a run by id.
func (v *service) task(ctx context.Context, runID int64, id string) (store.TaskRow, error) {
	if _, err := v.s.store.Run(ctx, runID); errors.Is(err, store.ErrNotFound) {
		return store.TaskRow{}, api.NotFound("no run %d", runID)
	} else if err != nil {
		return store.TaskRow{}, err
	}
	tasks, err := v.s.store.Tasks(ctx, runID)
	if err != nil {
		return store.TaskRow{}, err
	}
	for _, t := range tasks {
		if t.TaskID == id {
			return t, nil
		}
	}
	return store.TaskRow{}, api.NotFound("run %d has no task %q", runID, id)
}

func (v *service) Task(ctx context.Context, runID int64, id string) (api.Task, error) {
	t, err := v.task(ctx, runID, id)
	if err != nil {
		return api.Task{}, err
	}
	atts, err := v.s.store.Attempts(ctx, runID, t.Index)
	if err != nil {
		return api.Task{}, err
	}
	out := api.NewTask(t)
	out.Waiting = v.waiting(runID, t)
	r, err := v.s.store.Run(ctx, runID)
	if err != nil {
		return api.Task{}, err
	}
	if t.State == engine.TaskWaiting {
		out.NextPoke = v.nextPoke(ctx, r, t)
	}
	for _, a := range atts {
		out.Attempts = append(out.Attempts, api.NewAttempt(a))
	}
	if p, err := v.s.runner.Pipeline(ctx, r.VersionID); err != nil || (t.Index < len(p.Tasks) && p.Tasks[t.Index].Map != nil) {
		one := []api.Task{out}
		if err := v.addMaps(ctx, r, []store.TaskRow{t}, one); err != nil {
			return api.Task{}, err
		}
		out = one[0]
	}
	return out, nil
}

func (v *service) Events(ctx context.Context, runID int64, after int64, limit int) (api.Page[api.Event], error) {
	if limit <= 0 {
		limit = store.DefaultEventsLimit
	}
	evs, err := v.s.store.Events(ctx, runID, after, limit+1)
	if errors.Is(err, store.ErrNotFound) {
		return api.Page[api.Event]{}, api.NotFound("no run %d", runID)
	}
	if err != nil {
		return api.Page[api.Event]{}, err
	}
	page := api.Page[api.Event]{Items: []api.Event{}}
	for i, e := range evs {
		if i == limit {
			page.Next = strconv.FormatInt(evs[limit-1].Seq, 10)
			break
		}
		page.Items = append(page.Items, api.NewEvent(e))
	}
	return page, nil
}

// act applies an operator action and executes the run again if it was
// reopened.
func (v *service) act(ctx context.Context, runID int64, ev engine.Event) (api.Run, error) {
	before, err := v.s.store.Run(ctx, runID)
	if errors.Is(err, store.ErrNotFound) {
		return api.Run{}, api.NotFound("no run %d", runID)
	}
	if err != nil {
		return api.Run{}, err
	}
	_, reopened, err := v.s.runner.Act(ctx, runID, ev)
	if errors.Is(err, runner.ErrBusy) {
		return api.Run{}, api.Errorf(http.StatusConflict, api.CodeConflict, "run %d is being executed by another process; try again", runID)
	}
	if err != nil {
		return api.Run{}, err
	}
	v.s.log.Info("operator action", "run", runID, "action", ev.Kind, "actor", ev.Actor)
	if reopened {
		if b := before.BackfillID; b != 0 {
			// The backfill is running again until this run ends too.
			if err := v.s.store.SetBackfillState(ctx, b, store.BackfillRunning, time.Time{}); err != nil {
				return api.Run{}, err
			}
			v.s.mu.Lock()
			v.s.backfills[b] = true
			v.s.mu.Unlock()
		}
		v.s.wakeLeader(ctx) // the scheduler executes it again
	}
	return v.Run(ctx, runID)
}

func (v *service) Cancel(ctx context.Context, runID int64, actor string) (api.Run, error) {
	return v.act(ctx, runID, engine.Event{Kind: engine.EvCancel, Task: -1, Actor: actor})
}

func (v *service) RetryFailed(ctx context.Context, runID int64, actor string) (api.Run, error) {
	return v.act(ctx, runID, engine.Event{Kind: engine.EvRetryFailed, Task: -1, Actor: actor})
}

func (v *service) MarkTask(ctx context.Context, runID int64, task string, state engine.TaskState, actor string) (api.Run, error) {
	kind := engine.EvMarkSucceeded
	switch state {
	case engine.TaskSucceeded:
	case engine.TaskSkipped:
		kind = engine.EvMarkSkipped
	default:
		return api.Run{}, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "state %q: a task can be marked succeeded or skipped", state)
	}
	t, err := v.task(ctx, runID, task)
	if err != nil {
		return api.Run{}, err
	}
	return v.act(ctx, runID, engine.Event{Kind: kind, Task: t.Index, Actor: actor})
}

func (v *service) Rerun(ctx context.Context, runID int64, actor string) (api.Run, error) {
	old, err := v.s.store.Run(ctx, runID)
	if errors.Is(err, store.ErrNotFound) {
		return api.Run{}, api.NotFound("no run %d", runID)
	}
	if err != nil {
		return api.Run{}, err
	}
	p, err := v.s.runner.Pipeline(ctx, old.VersionID)
	if err != nil {
		return api.Run{}, fmt.Errorf("pipeline version of run %d: %w", runID, err)
	}
	params, err := runner.ParamText(p, old.Params)
	if err != nil {
		return api.Run{}, err
	}
	nr, err := v.s.runner.NewRun(ctx, p, params, triggerRerun)
	if err != nil {
		return api.Run{}, paramsError(err)
	}
	nr.Run.IntervalStart, nr.Run.IntervalEnd = old.IntervalStart, old.IntervalEnd
	nr.Actor = actor
	v.s.setRerunDeadline(p, &nr)
	run, err := v.s.store.CreateRun(ctx, nr)
	if err != nil {
		return api.Run{}, err
	}
	v.s.log.Info("run rerun", "of", runID, "run", run.ID, "actor", actor)
	v.s.wakeLeader(ctx)
	return v.s.apiRun(ctx, run), nil
}

func (v *service) CreateBackfill(ctx context.Context, req api.BackfillRequest, actor string) (api.Backfill, error) {
	p, err := v.loaded(req.Pipeline)
	if err != nil {
		return api.Backfill{}, err
	}
	sch, err := v.s.scheduleOf(p)
	if err != nil {
		return api.Backfill{}, err
	}
	if sch == nil && p.Schedule != nil {
		return api.Backfill{}, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "pipeline %q has no schedule with a cron expression (only datasets), so it has no intervals to backfill", req.Pipeline)
	}
	if sch == nil {
		return api.Backfill{}, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "pipeline %q has no schedule, so it has no intervals to backfill", req.Pipeline)
	}
	if !req.From.Before(req.To) {
		return api.Backfill{}, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "from (%s) must be before to (%s)", req.From.Format(time.RFC3339), req.To.Format(time.RFC3339))
	}
	if req.Parallel < 0 {
		return api.Backfill{}, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "parallel must be 1 or more")
	}
	// Backfills have no deadline unless the request gives one, for all
	// their runs: the pipeline's would have passed long ago.
	var deadline time.Time
	if req.Deadline != nil {
		if deadline = *req.Deadline; !deadline.After(v.s.now()) {
			return api.Backfill{}, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "deadline (%s) must be in the future", deadline.Format(time.RFC3339))
		}
	}
	ivs, err := schedule.Intervals(sch, req.From, req.To, maxBackfillIntervals)
	if errors.Is(err, schedule.ErrTooManyIntervals) {
		return api.Backfill{}, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "the range holds more than %d intervals of %q; split it", maxBackfillIntervals, p.Schedule.Cron)
	}
	if err != nil {
		return api.Backfill{}, err
	}
	if len(ivs) == 0 {
		return api.Backfill{}, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "no interval of %q lies within [%s, %s)", p.Schedule.Cron, req.From.Format(time.RFC3339), req.To.Format(time.RFC3339))
	}
	proto, err := v.s.runner.NewRun(ctx, p, req.Params, store.TriggerBackfill)
	if err != nil {
		return api.Backfill{}, paramsError(err)
	}
	runs := make([]store.NewRun, len(ivs))
	for i, iv := range ivs {
		nr := proto
		nr.Run.IntervalStart, nr.Run.IntervalEnd = iv.Start, iv.End
		nr.Run.Deadline = deadline
		nr.Actor = actor
		runs[i] = nr
	}
	b, err := v.s.store.CreateBackfill(ctx, store.Backfill{
		Pipeline: req.Pipeline, From: req.From, To: req.To, Parallel: max(req.Parallel, 1),
		State: store.BackfillRunning, Actor: actor, CreatedAt: v.s.now(),
	}, runs)
	if err != nil {
		return api.Backfill{}, err
	}
	v.s.mu.Lock()
	v.s.backfills[b.ID] = true
	v.s.mu.Unlock()
	v.s.log.Info("backfill created", "backfill", b.ID, "pipeline", req.Pipeline, "runs", len(runs), "actor", actor)
	v.s.wakeLeader(ctx)
	return v.Backfill(ctx, b.ID)
}

// maxBackfillIntervals bounds one backfill; a longer range is split.
const maxBackfillIntervals = 100_000

func (v *service) backfill(ctx context.Context, b store.Backfill) (api.Backfill, error) {
	counts, err := v.s.store.BackfillCounts(ctx, b.ID)
	if err != nil {
		return api.Backfill{}, err
	}
	return api.Backfill{
		ID: b.ID, Pipeline: b.Pipeline, From: b.From, To: b.To, Parallel: b.Parallel, State: b.State,
		Actor: b.Actor, CreatedAt: b.CreatedAt, Runs: b.Runs, Counts: api.RunCounts(counts), FinishedAt: api.TimePtr(b.FinishedAt),
	}, nil
}

func (v *service) Backfills(ctx context.Context, pipeline string, cursor string, limit int) (api.Page[api.Backfill], error) {
	before, err := parseCursor(cursor)
	if err != nil {
		return api.Page[api.Backfill]{}, err
	}
	if limit <= 0 {
		limit = store.DefaultBackfillsLimit
	}
	limit = min(limit, store.MaxBackfillsLimit-1)
	bs, err := v.s.store.ListBackfills(ctx, pipeline, before, limit+1)
	if err != nil {
		return api.Page[api.Backfill]{}, err
	}
	page := api.Page[api.Backfill]{Items: []api.Backfill{}}
	for i, b := range bs {
		if i == limit {
			page.Next = strconv.FormatInt(bs[limit-1].ID, 10)
			break
		}
		ab, err := v.backfill(ctx, b)
		if err != nil {
			return page, err
		}
		page.Items = append(page.Items, ab)
	}
	return page, nil
}

func (v *service) Backfill(ctx context.Context, id int64) (api.Backfill, error) {
	b, err := v.s.store.Backfill(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return api.Backfill{}, api.NotFound("no backfill %d", id)
	}
	if err != nil {
		return api.Backfill{}, err
	}
	return v.backfill(ctx, b)
}

// CancelBackfill cancels every run of the backfill that has not ended; the
// backfill ends cancelled once they have.
func (v *service) CancelBackfill(ctx context.Context, id int64, actor string) (api.Backfill, error) {
	if _, err := v.Backfill(ctx, id); err != nil {
		return api.Backfill{}, err
	}
	// Walk every unfinished run of the backfill, oldest first, with a cursor:
	// runs already cancelling are skipped, however many there are.
	for after := int64(0); ; {
		runs, err := v.s.store.ListRuns(ctx, store.RunFilter{BackfillID: id, States: []engine.RunState{engine.RunQueued, engine.RunRunning}, Ascending: true, AfterID: after, Limit: store.MaxRunsLimit})
		if err != nil {
			return api.Backfill{}, err
		}
		for _, r := range runs {
			after = r.ID
			if r.Cancelling {
				continue
			}
			_, _, err := v.s.runner.Act(ctx, r.ID, engine.Event{Kind: engine.EvCancel, Task: -1, Actor: actor, Message: fmt.Sprintf("backfill %d cancelled", id)})
			if err != nil && !errors.Is(err, engine.ErrRejected) {
				return api.Backfill{}, err
			}
		}
		if len(runs) < store.MaxRunsLimit {
			break
		}
	}
	v.s.log.Info("backfill cancelled", "backfill", id, "actor", actor)
	v.s.wakeLeader(ctx)
	return v.Backfill(ctx, id)
}

func (v *service) LogKey(ctx context.Context, runID int64, task string, attempt int) (logs.Key, error) {
	if name, item, ok := api.ParseItemLogName(task); ok {
		// An item of a map task: its attempts are its own.
		info, err := v.mapOf(ctx, runID, name)
		if err != nil {
			return logs.Key{}, err
		}
		return api.ItemLogKey(ctx, v.s.store, v.s.logs, info, name, item, attempt)
	}
	t, err := v.task(ctx, runID, task)
	if err != nil {
		return logs.Key{}, err
	}
	if attempt == 0 {
		attempt = t.Attempt
	}
	if attempt < 1 || attempt > t.Attempt {
		if t.Attempt == 0 {
			return logs.Key{}, api.NotFound("task %q of run %d has not started yet", task, runID)
		}
		return logs.Key{}, api.NotFound("task %q of run %d has no attempt %d (latest is %d)", task, runID, attempt, t.Attempt)
	}
	return logs.Key{RunID: runID, TaskID: t.TaskID, Attempt: attempt}, nil
}

func (v *service) Ready(ctx context.Context) error {
	if !v.s.ready.Load() {
		return api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "the server is starting or draining")
	}
	if _, err := v.s.store.PipelineStates(ctx); err != nil {
		return api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "store unavailable: %v", err)
	}
	return nil
}

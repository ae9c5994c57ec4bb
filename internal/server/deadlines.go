package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/notify"
	"github.com/tasuki-dev/tasuki/internal/predict"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Deadlines. A run of a pipeline with a deadline gets it when it is created
// (setDeadline). While this server leads, the deadline watcher judges every
// run whose deadline is neither met nor missed, every deadline_interval and
// as soon as a run's progress is observed: on_track or at_risk by the
// predicted finish (package predict), missed once the deadline passed
// unfinished, met once it succeeded in time. Each change of state is
// written to the run with a timeline record and told to notifications.

// historyTTL is how long the durations of a pipeline's tasks are reused
// before they are read again: they change only as tasks succeed, and a
// few seconds of lag move no prediction much.
const historyTTL = 30 * time.Second

// predictionMoved is how far the predicted finish must move, with the
// state and the critical path unchanged, before it is written again: the
// prediction of a run that waits moves with the clock, and rewriting it at
// every pass would be a write per run every few seconds.
const predictionMoved = 5 * time.Second

// maxGraphs bounds the graphs of pipeline versions the watcher keeps.
const maxGraphs = 256

// deadlineWatch is the deadline watcher's state. Its zero value is ready.
type deadlineWatch struct {
	once sync.Once
	wake chan struct{}

	mu      sync.Mutex
	dirty   map[int64]bool // runs whose progress was observed since the last look
	graphs  map[int64]*engine.Graph
	history map[string]durations
}

// durations are the recent durations of a pipeline's tasks, as read at
// a time.
type durations struct {
	at     time.Time
	byTask map[string][]time.Duration
}

func (w *deadlineWatch) init() {
	w.once.Do(func() { w.wake = make(chan struct{}, 1) })
}

// setDeadline fixes the deadline of a run about to be created, by its
// pipeline's rule: from its interval end, or from its creation (which it
// sets now, so the two agree) for a run without an interval.
func (s *Server) setDeadline(p *spec.Pipeline, nr *store.NewRun) {
	if p == nil || p.Deadline == nil {
		return
	}
	if nr.Run.CreatedAt.IsZero() {
		nr.Run.CreatedAt = s.now()
	}
	base := nr.Run.IntervalEnd
	if base.IsZero() {
		base = nr.Run.CreatedAt
	}
	loc, err := p.Deadline.Location(p.Schedule, s.loc)
	if err == nil {
		nr.Run.Deadline, err = p.Deadline.Time(base, loc)
	}
	if err != nil {
		// The checker refuses such a file; a stored version parsed by an
		// older tasuki could still get here.
		s.log.Warn("run gets no deadline", "pipeline", p.Name, "err", err)
	}
}

// setRerunDeadline is setDeadline for a rerun of another run's interval:
// the rule's deadline counts only while it is still ahead, since a rerun
// of an interval whose deadline passed long ago cannot meet it and would
// only alert again.
func (s *Server) setRerunDeadline(p *spec.Pipeline, nr *store.NewRun) {
	s.setDeadline(p, nr)
	if !nr.Run.Deadline.IsZero() && !nr.Run.Deadline.After(nr.Run.CreatedAt) {
		nr.Run.Deadline = time.Time{}
	}
}

// startDeadlines runs the deadline watcher until ctx ends, and returns a
// function that waits for it to stop.
func (s *Server) startDeadlines(ctx context.Context) func() {
	s.deadlines.init()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		every := s.cfg.DeadlineInterval.D()
		if every <= 0 {
			every = DefaultDeadlineInterval
		}
		t := time.NewTicker(every)
		defer t.Stop()
		s.deadlinePass(ctx, nil)
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.deadlinePass(ctx, nil)
			case <-s.deadlines.wake:
				if only := s.deadlines.takeDirty(); len(only) > 0 {
					s.deadlinePass(ctx, only)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// deadlineProgress is told of every committed batch of every run: a run
// with a deadline is judged again soon, not only at the next tick.
func (s *Server) deadlineProgress(p runner.Progress) {
	if p.Run.Deadline.IsZero() || store.DeadlineFinal(p.Run.DeadlineState) {
		return
	}
	w := &s.deadlines
	w.init()
	w.mu.Lock()
	if w.dirty == nil {
		w.dirty = map[int64]bool{}
	}
	w.dirty[p.Run.ID] = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *deadlineWatch) takeDirty() map[int64]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	d := w.dirty
	w.dirty = nil
	return d
}

// deadlinePass judges the runs whose deadline is neither met nor missed
// (only those in only, when it is not nil).
func (s *Server) deadlinePass(ctx context.Context, only map[int64]bool) {
	if !s.leading() {
		return
	}
	if only != nil {
		// The runs that progressed: read each by its id rather than page
		// through every run still judged to find them.
		for id := range only {
			r, err := s.store.Run(ctx, id)
			if err != nil {
				if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
					s.log.Error("read a run to judge its deadline", "run", id, "err", err)
				}
				continue
			}
			if r.Deadline.IsZero() || r.DeadlineState == store.DeadlineMet || r.DeadlineState == store.DeadlineMissed {
				continue
			}
			if err := s.judgeDeadline(ctx, r); err != nil && ctx.Err() == nil {
				s.log.Error("judge a run's deadline", "run", r.ID, "pipeline", r.Pipeline, "err", err)
			}
		}
		return
	}
	for after := int64(0); ctx.Err() == nil; {
		runs, err := s.store.DeadlineRuns(ctx, after, store.MaxRunsLimit)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("list runs with a deadline", "err", err)
			}
			return
		}
		for _, r := range runs {
			after = r.ID
			if only != nil && !only[r.ID] {
				continue
			}
			if err := s.judgeDeadline(ctx, r); err != nil && ctx.Err() == nil {
				s.log.Error("judge a run's deadline", "run", r.ID, "pipeline", r.Pipeline, "err", err)
			}
		}
		if len(runs) < store.MaxRunsLimit {
			return
		}
	}
}

// judgement is what the watcher decides about one run.
type judgement struct {
	state     string
	predicted time.Time // zero for a finished run
	path      []string
	// reason says why, in a sentence, for the record and the alert.
	reason string
	// data is the record's data: times, the critical path, what waits
	// and what failed, for the timeline export.
	data deadlineData
}

// deadlineData is the data of a deadline record.
type deadlineData struct {
	Deadline        time.Time         `json:"deadline"`
	PredictedFinish *time.Time        `json:"predicted_finish,omitempty"`
	CriticalPath    []string          `json:"critical_path,omitempty"`
	Waiting         map[string]string `json:"waiting,omitempty"` // task id: what its last check saw
	Blocked         map[string]string `json:"blocked,omitempty"` // task id: why it ended
	RunState        engine.RunState   `json:"run_state"`
}

// judgeDeadline judges one run and, when its state changed or its
// prediction moved, writes it; a change of state also goes to the
// timeline and, when it is news, to notifications.
func (s *Server) judgeDeadline(ctx context.Context, r store.Run) error {
	now := s.now()
	j, ok, err := s.judge(ctx, r, now)
	if err != nil || !ok {
		return err
	}
	changed := j.state != r.DeadlineState
	if s.metrics != nil {
		s.metrics.DeadlineJudged(r.Pipeline, j.state, changed, r.Deadline.Sub(j.predicted), !j.predicted.IsZero() && !r.Deadline.IsZero())
	}
	if !changed && slices.Equal(j.path, r.CriticalPath) && absDuration(j.predicted.Sub(r.PredictedFinish)) < predictionMoved &&
		j.predicted.IsZero() == r.PredictedFinish.IsZero() {
		return nil
	}
	u := store.DeadlineUpdate{RunID: r.ID, Expect: r.DeadlineState, State: j.state, PredictedFinish: j.predicted, CriticalPath: j.path}
	if changed {
		data, err := json.Marshal(j.data)
		if err != nil {
			return fmt.Errorf("deadline record: %w", err)
		}
		u.Records = []engine.Record{{Time: now, Kind: store.DeadlineRecord(j.state), Task: -1, Message: j.reason, Data: data}}
	}
	var fence *store.Fence
	if s.elector != nil {
		fence = &store.Fence{Holder: s.elector.holder, Term: s.elector.wonTerm()}
	}
	err = s.store.SetRunDeadline(ctx, fence, u)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrFenced) {
		return nil // judged by someone else since; looked at again next pass
	}
	if err != nil || !changed {
		return err
	}
	s.log.Info("deadline "+strings.ReplaceAll(j.state, "_", " "), "run", r.ID, "pipeline", r.Pipeline, "reason", j.reason)
	if kind, ok := deadlineEvent(r.DeadlineState, j.state); ok && !(kind == notify.AtRisk && r.State == engine.RunFailed) {
		// (A run that failed is at risk until it is retried, but its
		// "failed" alert has said so already: one page, not two.)
		s.publish(ctx, notify.Event{
			Kind: kind, Pipeline: r.Pipeline, RunID: r.ID, State: string(r.State),
			Deadline: r.Deadline, PredictedFinish: j.predicted, Reason: j.reason, At: now,
		})
	}
	return nil
}

// deadlineEvent is the notification a change of deadline state makes:
// at_risk and missed open an incident. Nothing here closes one: a run is
// recovered when it succeeds (runEnded publishes it), not when a
// prediction turns good again. A run at risk whose failed task an operator
// retries is predicted on track at once, before anything has worked;
// calling that "recovered" sent an all-clear followed by a second page
// when the retry failed too.
func deadlineEvent(from, to string) (notify.Kind, bool) {
	switch to {
	case store.DeadlineAtRisk:
		return notify.AtRisk, true
	case store.DeadlineMissed:
		return notify.Missed, true
	}
	return "", false
}

// judge decides a run's deadline state at now. ok is false when there is
// nothing to decide yet (a run cancelled before its deadline).
func (s *Server) judge(ctx context.Context, r store.Run, now time.Time) (j judgement, ok bool, err error) {
	var p *spec.Pipeline
	if r.VersionID != 0 {
		if p, err = s.runner.Pipeline(ctx, r.VersionID); err != nil {
			return j, false, err
		}
	}
	loc := s.loc
	if p != nil && p.Deadline != nil {
		if l, err := p.Deadline.Location(p.Schedule, s.loc); err == nil {
			loc = l
		}
	}
	at := func(t time.Time) string { return t.In(loc).Format("2006-01-02 15:04:05 MST") }
	j.data = deadlineData{Deadline: r.Deadline, RunState: r.State}
	switch {
	case r.State == engine.RunSucceeded && !r.FinishedAt.After(r.Deadline):
		j.state = store.DeadlineMet
		j.reason = fmt.Sprintf("met: succeeded at %s, %s before the deadline %s", at(r.FinishedAt), round(r.Deadline.Sub(r.FinishedAt)), at(r.Deadline))
		return j, true, nil
	case r.State == engine.RunSucceeded:
		j.state = store.DeadlineMissed
		j.reason = fmt.Sprintf("missed: succeeded at %s, %s after the deadline %s", at(r.FinishedAt), round(r.FinishedAt.Sub(r.Deadline)), at(r.Deadline))
		return j, true, nil
	case r.State == engine.RunCancelled && !now.After(r.Deadline):
		return j, false, nil // an operator's decision; missed once the deadline passes
	}
	// Unfinished (or failed, which a retry or a repair may still turn
	// around): predict.
	var pr *predict.Prediction
	var g *engine.Graph
	var tasks []store.TaskRow
	if p != nil {
		if g, err = s.deadlineGraph(r.VersionID, p); err != nil {
			return j, false, err
		}
		if tasks, err = s.store.Tasks(ctx, r.ID); err != nil {
			return j, false, err
		}
		hist, err := s.taskHistory(ctx, r.Pipeline, now)
		if err != nil {
			return j, false, err
		}
		in := make([]predict.Task, g.Len())
		var m predict.Model
		for i := range in {
			var expected time.Duration
			if i < len(p.Tasks) {
				expected = p.Tasks[i].ExpectedDuration.D()
			}
			in[i].Estimate = m.Estimate(hist[g.Node(i).ID], expected)
			if i < len(tasks) {
				in[i].State, in[i].StartedAt, in[i].ReadyAt = tasks[i].State, tasks[i].StartedAt, tasks[i].ReadyAt
			} else {
				in[i].State = engine.TaskPending
			}
		}
		pred := m.Predict(g, in, now)
		pr = &pred
	}
	var why []string
	if pr != nil {
		j.predicted = pr.Finish
		j.data.PredictedFinish = &j.predicted
		for _, i := range pr.Path {
			j.path = append(j.path, g.Node(i).ID)
			if i < len(tasks) && tasks[i].State == engine.TaskWaiting {
				seen := tasks[i].Message
				if seen == "" {
					seen = "not checked yet"
				}
				if j.data.Waiting == nil {
					j.data.Waiting = map[string]string{}
				}
				j.data.Waiting[g.Node(i).ID] = seen
				why = append(why, fmt.Sprintf("%s waits: %s", g.Node(i).ID, seen))
			}
		}
		j.data.CriticalPath = j.path
		for _, i := range pr.Blocked {
			if i >= len(tasks) {
				continue
			}
			msg := tasks[i].Message
			if msg == "" {
				msg = string(tasks[i].State)
			}
			if j.data.Blocked == nil {
				j.data.Blocked = map[string]string{}
			}
			j.data.Blocked[g.Node(i).ID] = msg
			why = append(why, fmt.Sprintf("%s %s: %s", g.Node(i).ID, tasks[i].State, msg))
		}
	}
	pathText := ""
	if len(j.path) > 0 {
		pathText = "; critical path: " + strings.Join(j.path, " -> ")
	}
	detail := pathText
	if len(why) > 0 {
		detail += "; " + strings.Join(why, "; ")
	}
	switch {
	case now.After(r.Deadline):
		j.state = store.DeadlineMissed
		j.reason = fmt.Sprintf("missed: the deadline %s passed with the run %s", at(r.Deadline), r.State) + detail
		j.predicted, j.path = time.Time{}, nil
	case pr == nil:
		// No stored version to predict from: on track until the deadline.
		j.state = store.DeadlineOnTrack
		j.reason = fmt.Sprintf("on track: the deadline is %s", at(r.Deadline))
	case len(pr.Blocked) > 0 || r.State == engine.RunFailed:
		j.state = store.DeadlineAtRisk
		j.reason = fmt.Sprintf("at risk: the run cannot finish unless failed tasks are retried (predicted finish %s if retried now, deadline %s)",
			at(pr.Finish), at(r.Deadline)) + detail
	case pr.Finish.After(r.Deadline):
		j.state = store.DeadlineAtRisk
		j.reason = fmt.Sprintf("at risk: predicted finish %s, %s after the deadline %s", at(pr.Finish), round(pr.Finish.Sub(r.Deadline)), at(r.Deadline)) + detail
	default:
		j.state = store.DeadlineOnTrack
		j.reason = fmt.Sprintf("on track: predicted finish %s, %s before the deadline %s", at(pr.Finish), round(r.Deadline.Sub(pr.Finish)), at(r.Deadline)) + detail
	}
	return j, true, nil
}

// deadlineGraph returns the graph of a pipeline version, built once.
func (s *Server) deadlineGraph(version int64, p *spec.Pipeline) (*engine.Graph, error) {
	w := &s.deadlines
	w.mu.Lock()
	g, ok := w.graphs[version]
	w.mu.Unlock()
	if ok {
		return g, nil
	}
	g, err := runner.Graph(p)
	if err != nil {
		return nil, fmt.Errorf("graph of pipeline version %d: %w", version, err)
	}
	w.mu.Lock()
	if w.graphs == nil || len(w.graphs) >= maxGraphs {
		w.graphs = map[int64]*engine.Graph{}
	}
	w.graphs[version] = g
	w.mu.Unlock()
	return g, nil
}

// taskHistory returns the recent durations of a pipeline's tasks, read
// again once they are historyTTL old.
func (s *Server) taskHistory(ctx context.Context, pipeline string, now time.Time) (map[string][]time.Duration, error) {
	w := &s.deadlines
	w.mu.Lock()
	h, ok := w.history[pipeline]
	w.mu.Unlock()
	if ok && now.Sub(h.at) < historyTTL && !now.Before(h.at) {
		return h.byTask, nil
	}
	byTask, err := s.store.TaskDurations(ctx, pipeline)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	if w.history == nil {
		w.history = map[string]durations{}
	}
	w.history[pipeline] = durations{at: now, byTask: byTask}
	w.mu.Unlock()
	return byTask, nil
}

// round shortens a duration for a message: whole seconds, or
// milliseconds below a second.
func round(d time.Duration) time.Duration {
	if d < time.Second && d > -time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// DefaultDeadlineInterval is how often the leader judges the runs with a
// deadline when the configuration does not say.
const DefaultDeadlineInterval = 2 * time.Second

package server

// Freshness objectives on the server. The leader judges every objective of
// the pipelines in use at most every sloEvery (on its scheduler pass, by
// its clock): it reads the dataset's updates (or the pipeline's successful
// runs) since the first window it has not judged yet, records each closed
// window (met or breached, and for max_age the time judged and fresh) and
// each breach with its cause, ends breaches when the data is fresh again,
// and publishes one slo_breach event per breached window. What it records
// is what compliance and the API read, so a restart or a new leader
// neither forgets a breach nor tells it twice: a breach is stored once per
// start, and only the first stored in its window is published.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/notify"
	"github.com/tasuki-dev/tasuki/internal/slo"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

const (
	// sloEvery is how often the leader judges the objectives: a breach
	// is recorded and told at most this long after it begins.
	sloEvery = 10 * time.Second
	// sloHorizon is the longest compliance period; windows before it are
	// not judged after a long stop.
	sloHorizon = 90 * 24 * time.Hour
	// sloKeep is how long windows and ended breaches are kept.
	sloKeep = 100 * 24 * time.Hour
	// sloRunSlack is how long before the judged time a successful run may
	// have been created and still be found (a pipeline's objective reads
	// runs newest first and stops at those created that long before).
	sloRunSlack = 24 * time.Hour
	// sloLastBreaches is how many breaches the API lists per objective.
	sloLastBreaches = 5
	// sloRunPages bounds the pages of runs read to find the run a breach
	// is about.
	sloRunPages = 10
)

// objective is one freshness objective of a pipeline in use.
type objective struct {
	pipeline string
	dataset  string // "" for the pipeline's success
	key      string // store.SLOObjective.Objective
	spec     *spec.SLO
	o        *slo.Objective
}

// name is how the API and events name the objective.
func (ob objective) name() string {
	if ob.dataset != "" {
		return "dataset:" + ob.dataset
	}
	return "pipeline:" + ob.pipeline
}

// id keys the objective in the tracker's maps.
func (ob objective) id() string { return ob.pipeline + "\x00" + ob.key }

// sloTracker is the leader's memory of the objectives between passes;
// everything in it can be read again from the store.
type sloTracker struct {
	mu     sync.Mutex // one judgement at a time
	next   time.Time  // when the next judgement is due
	pruned time.Time  // when old windows and breaches were last deleted
	// declared is each objective as stored (its definition and since).
	declared map[string]store.SLOObjective
	// judgedTo is the end of the newest window recorded of each objective.
	judgedTo map[string]time.Time
}

// objectives lists the objectives of the pipelines in use, by pipeline,
// the pipeline's own before its datasets'.
func (s *Server) objectives() []objective {
	var out []objective
	for _, l := range s.reg.All() {
		if l.Removed || l.Pipeline == nil {
			continue
		}
		p := l.Pipeline
		// An objective without a zone reads its times as the pipeline's
		// schedule does, else in the server's zone.
		def := s.loc
		if p.Schedule != nil && p.Schedule.Timezone != "" {
			if loc, err := slo.LoadZone(p.Schedule.Timezone, s.loc); err == nil {
				def = loc
			}
		}
		add := func(sp *spec.SLO, dataset string) {
			o, err := sp.Objective(def)
			if err != nil {
				// Parse checked it; a zone the server cannot load is the
				// one way left.
				s.log.Warn("freshness objective not judged", "pipeline", p.Name, "dataset", dataset, "err", err)
				return
			}
			key := store.SLOPipelineObjective
			if dataset != "" {
				key = store.SLODatasetObjective(dataset)
			}
			out = append(out, objective{pipeline: p.Name, dataset: dataset, key: key, spec: sp, o: o})
		}
		if p.SLO != nil {
			add(p.SLO, "")
		}
		for _, d := range p.Datasets {
			if d.SLO != nil {
				add(d.SLO, d.Name)
			}
		}
	}
	return out
}

// judgeObjectivesDue judges the objectives when sloEvery has passed since
// the last time (by the server's clock): the scheduler pass calls it.
func (s *Server) judgeObjectivesDue(ctx context.Context) {
	now := s.now()
	s.slos.mu.Lock()
	due := !now.Before(s.slos.next)
	if due {
		s.slos.next = now.Add(sloEvery)
	}
	s.slos.mu.Unlock()
	if due {
		s.judgeObjectives(ctx)
	}
}

// judgeObjectives judges every objective now, and deletes what is older
// than sloKeep once an hour.
func (s *Server) judgeObjectives(ctx context.Context) {
	t := &s.slos
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.declared == nil {
		t.declared, t.judgedTo = map[string]store.SLOObjective{}, map[string]time.Time{}
	}
	now := s.now()
	judged := map[string]bool{}
	for _, ob := range s.objectives() {
		judged[ob.id()] = true
		if err := s.judgeObjective(ctx, ob, now); err != nil && ctx.Err() == nil {
			s.log.Error("judge freshness objective", "objective", ob.name(), "pipeline", ob.pipeline, "err", err)
		}
	}
	// The open breaches of objectives no longer declared (a file removed,
	// an objective taken out) end now: nothing judges them any more.
	open, err := s.store.SLOBreaches(ctx, store.SLOBreachFilter{Open: true, Limit: store.MaxSLOBreachesLimit})
	if err != nil {
		s.log.Error("list open breaches of freshness objectives", "err", err)
	}
	if s.metrics != nil && err == nil {
		state := map[[2]string]bool{}
		for _, ob := range s.objectives() {
			state[[2]string{ob.pipeline, ob.key}] = false
		}
		for _, b := range open {
			if k := [2]string{b.Pipeline, b.Objective}; judged[b.Pipeline+"\x00"+b.Objective] {
				state[k] = true
			}
		}
		s.metrics.SLOs(state)
	}
	for _, b := range open {
		if !judged[b.Pipeline+"\x00"+b.Objective] {
			if err := s.store.EndSLOBreach(ctx, b.ID, now); err != nil {
				s.log.Error("end the breach of an objective no longer declared", "pipeline", b.Pipeline, "objective", b.Objective, "err", err)
			}
		}
	}
	if now.Sub(t.pruned) >= time.Hour {
		t.pruned = now
		if n, err := s.store.PruneSLO(ctx, now.Add(-sloKeep)); err != nil {
			s.log.Error("prune freshness objectives", "err", err)
		} else if n > 0 {
			s.log.Info("pruned old windows and breaches of freshness objectives", "rows", n)
		}
	}
}

// judgeObjective judges the windows of one objective that ended since it
// was last judged, and the one in progress, and the windows of breaches
// still open. The caller holds s.slos.mu.
func (s *Server) judgeObjective(ctx context.Context, ob objective, now time.Time) error {
	t := &s.slos
	id := ob.id()
	decl, ok := t.declared[id]
	if !ok || decl.Definition != ob.o.String() {
		var err error
		decl, err = s.store.DeclareSLO(ctx, store.SLOObjective{Pipeline: ob.pipeline, Objective: ob.key, Definition: ob.o.String()}, now)
		if err != nil {
			return err
		}
		t.declared[id] = decl
		delete(t.judgedTo, id)
	}
	since := decl.Since
	from, ok := t.judgedTo[id]
	if !ok {
		ws, err := s.store.SLOWindows(ctx, ob.pipeline, ob.key, latest(since, now.Add(-sloHorizon)))
		if err != nil {
			return err
		}
		from = since
		if len(ws) > 0 {
			from = ws[len(ws)-1].End
		}
		t.judgedTo[id] = from
	}
	from = latest(from, since, now.Add(-sloHorizon))

	windows := ob.o.Windows(from, now.Add(time.Nanosecond))
	open, err := s.store.SLOBreaches(ctx, store.SLOBreachFilter{Pipeline: ob.pipeline, Objective: ob.key, Open: true, Limit: store.MaxSLOBreachesLimit})
	if err != nil {
		return err
	}
	for _, b := range open {
		w := slo.Window{Start: b.WindowStart, End: b.WindowEnd}
		if !slices.ContainsFunc(windows, func(x slo.Window) bool { return x.Start.Equal(w.Start) }) {
			windows = append(windows, w)
		}
	}
	if len(windows) == 0 {
		return nil
	}
	slices.SortFunc(windows, func(a, b slo.Window) int { return a.Start.Compare(b.Start) })
	readFrom := ob.o.UpdatesFrom(windows[0])
	updates, err := s.freshness(ctx, ob, readFrom, now)
	if err != nil {
		return err
	}
	known, err := s.store.SLOBreaches(ctx, store.SLOBreachFilter{Pipeline: ob.pipeline, Objective: ob.key, Since: windows[0].Start, Limit: store.MaxSLOBreachesLimit})
	if err != nil {
		return err
	}
	byStart := map[int64]store.SLOBreach{}
	perWindow := map[int64]int{}
	for _, b := range append(known, open...) {
		if _, dup := byStart[b.Start.UnixMicro()]; !dup {
			byStart[b.Start.UnixMicro()] = b
			perWindow[b.WindowStart.UnixMicro()]++
		}
	}
	seen := map[int64]bool{} // breaches the judgement still finds
	for _, w := range windows {
		if ob.o.Kind() == slo.FreshBy && !w.End.After(since) {
			continue
		}
		r := ob.o.Judge(w, updates, since, now)
		for _, b := range r.Breaches {
			k := store.NormTime(b.Start).UnixMicro()
			seen[k] = true
			stored, have := byStart[k]
			if !have {
				nb := s.breachCause(ctx, ob, w, b)
				if !b.Open {
					nb.End = b.End
				}
				rec, isNew, err := s.store.RecordSLOBreach(ctx, nb)
				if err != nil {
					return err
				}
				byStart[k] = rec
				if isNew {
					wk := w.Start.UnixMicro()
					if perWindow[wk] == 0 {
						s.breachDecided(ctx, ob, rec)
					}
					perWindow[wk]++
				}
				continue
			}
			if stored.End.IsZero() && !b.Open {
				if err := s.store.EndSLOBreach(ctx, stored.ID, b.End); err != nil {
					return err
				}
				stored.End = b.End
				byStart[k] = stored
			}
		}
		if r.Closed {
			met := r.State == slo.Met
			if _, err := s.store.RecordSLOWindow(ctx, store.SLOWindow{Pipeline: ob.pipeline, Objective: ob.key, Start: w.Start, End: w.End,
				Met: met, Judged: r.Judged, Compliant: r.Compliant}); err != nil {
				return err
			}
			if w.End.After(t.judgedTo[id]) {
				t.judgedTo[id] = w.End
			}
		}
	}
	// An open breach the judgement no longer finds (an update recorded
	// with an earlier time than its writer's clock showed before): it is
	// over.
	for _, b := range open {
		if !seen[b.Start.UnixMicro()] {
			if err := s.store.EndSLOBreach(ctx, b.ID, now); err != nil {
				return err
			}
		}
	}
	return nil
}

func latest(ts ...time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if t.After(m) {
			m = t
		}
	}
	return m
}

// freshness returns, oldest first, the times the objective's data was
// made fresh from from to now: the dataset's updates, or the finishes of
// the pipeline's successful runs.
func (s *Server) freshness(ctx context.Context, ob objective, from, now time.Time) ([]time.Time, error) {
	var out []time.Time
	if ob.dataset != "" {
		for after := int64(0); ; {
			us, err := s.store.DatasetUpdates(ctx, store.DatasetUpdateFilter{Dataset: ob.dataset, Since: from, AfterID: after,
				Ascending: true, Limit: store.MaxDatasetUpdatesLimit})
			if err != nil {
				return nil, fmt.Errorf("read updates of %s: %w", ob.dataset, err)
			}
			for _, u := range us {
				out = append(out, u.At)
				after = u.ID
			}
			if len(us) < store.MaxDatasetUpdatesLimit {
				break
			}
		}
	} else {
		for before := int64(0); ; {
			runs, err := s.store.ListRuns(ctx, store.RunFilter{Pipeline: ob.pipeline, States: []engine.RunState{engine.RunSucceeded},
				BeforeID: before, Limit: store.MaxRunsLimit})
			if err != nil {
				return nil, fmt.Errorf("read successful runs of %s: %w", ob.pipeline, err)
			}
			for _, r := range runs {
				if !r.FinishedAt.Before(from) {
					out = append(out, r.FinishedAt)
				}
				before = r.ID
			}
			if len(runs) < store.MaxRunsLimit || runs[len(runs)-1].CreatedAt.Before(from.Add(-sloRunSlack)) {
				break
			}
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out, nil
}

// breachDecided tells of the first breach of a window: in the log, as a
// slo_breach event, and in the timeline of the run it is about.
func (s *Server) breachDecided(ctx context.Context, ob objective, b store.SLOBreach) {
	s.log.Warn("freshness objective breached", "objective", ob.name(), "pipeline", ob.pipeline,
		"deadline", b.Start, "run", b.RunID, "cause", b.Cause)
	s.publish(ctx, notify.Event{Kind: notify.SLOBreach, Pipeline: ob.pipeline, RunID: b.RunID, State: string(slo.Breached),
		Reason: b.Cause, Objective: ob.name()})
	if b.RunID == 0 {
		return
	}
	rec := engine.Record{Time: s.now(), Kind: store.RecSLOBreached, Task: -1,
		Message: fmt.Sprintf("%s breached at %s (%s): %s", ob.name(), sloClock(b.Start, ob.o.Location()), ob.o, b.Cause)}
	err := s.runner.Store.Apply(ctx, store.Change{RunID: b.RunID, Transition: engine.Transition{Records: []engine.Record{rec}}})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Error("record a breach in the run's timeline", "run", b.RunID, "err", err)
	}
}

// sloClock renders t in loc for causes: "2026-03-09 09:00 JST".
func sloClock(t time.Time, loc *time.Location) string {
	return t.In(loc).Format("2006-01-02 15:04 MST")
}

// breachCause describes breach b of window w: the run that should have
// made the data fresh (the pipeline's newest run by the start of the
// breach) and what it was doing, as it stands now.
func (s *Server) breachCause(ctx context.Context, ob objective, w slo.Window, b slo.Breach) store.SLOBreach {
	out := store.SLOBreach{Pipeline: ob.pipeline, Objective: ob.key, WindowStart: w.Start, WindowEnd: w.End, Start: b.Start}
	loc := ob.o.Location()
	// expected is when the run that was due could start: the window's
	// opening for fresh_by; for max_age, when the last update came.
	expected := w.Start
	if ob.o.Kind() == slo.MaxAge {
		expected = b.Start.Add(-ob.o.MaxAgeLimit())
	}
	run, found, err := s.newestRunBy(ctx, ob.pipeline, b.Start)
	if err != nil {
		s.log.Warn("find the run of a breach", "objective", ob.name(), "err", err)
	}
	if !found {
		out.Cause = fmt.Sprintf("no run of %s had started by %s", ob.pipeline, sloClock(b.Start, loc))
		return out
	}
	out.RunID, out.RunState = run.ID, string(run.State)
	if !run.CreatedAt.After(expected) && run.State.Terminal() {
		out.Cause = fmt.Sprintf("no run of %s started after %s; the last, run %d, %s", ob.pipeline, sloClock(expected, loc), run.ID, ended(run, loc))
		return out
	}
	tasks, err := s.store.Tasks(ctx, run.ID)
	if err != nil {
		s.log.Warn("read the tasks of a breach's run", "run", run.ID, "err", err)
	}
	var producers []string
	if ob.dataset != "" {
		if l, ok := s.reg.Get(ob.pipeline); ok && l.Pipeline != nil {
			for _, t := range l.Pipeline.Tasks {
				if slices.Contains(t.Produces, ob.dataset) {
					producers = append(producers, t.ID)
				}
			}
		}
	}
	task, ok := explainingTask(tasks, run.State, producers)
	if ok {
		out.TaskID, out.TaskState, out.Message = task.TaskID, string(task.State), task.Message
	}
	switch run.State {
	case engine.RunSucceeded:
		late := "after the deadline"
		if ob.o.Kind() == slo.MaxAge {
			late = "after the data became too old"
		}
		if run.FinishedAt.After(b.Start) {
			out.Cause = fmt.Sprintf("run %d succeeded at %s, %s", run.ID, sloClock(run.FinishedAt, loc), late)
		} else if ok && task.State != engine.TaskSucceeded {
			out.Cause = fmt.Sprintf("run %d succeeded without updating %s: task %s was %s", run.ID, ob.dataset, task.TaskID, task.State)
		} else {
			out.Cause = fmt.Sprintf("run %d succeeded at %s", run.ID, sloClock(run.FinishedAt, loc))
		}
	case engine.RunFailed:
		out.Cause = fmt.Sprintf("run %d failed", run.ID)
		if ok {
			out.Cause += ": " + taskSays(task)
		}
	case engine.RunCancelled:
		out.Cause = fmt.Sprintf("run %d was cancelled", run.ID)
	case engine.RunQueued:
		out.Cause = fmt.Sprintf("run %d is queued, not started", run.ID)
	default:
		out.Cause = fmt.Sprintf("run %d is running", run.ID)
		if ok {
			out.Cause += ": " + taskSays(task)
		}
	}
	return out
}

// ended says how a finished run ended, for causes.
func ended(r store.Run, loc *time.Location) string {
	if r.FinishedAt.IsZero() {
		return string(r.State)
	}
	return fmt.Sprintf("%s at %s", r.State, sloClock(r.FinishedAt, loc))
}

// taskSays is what a task's state says about a run: "task load failed:
// exit status 1", "task wait-london is waiting: no file matches ...".
func taskSays(t store.TaskRow) string {
	var what string
	switch t.State {
	case engine.TaskWaiting:
		what = "is waiting"
	case engine.TaskRunning:
		what = "is still running"
		if !t.StartedAt.IsZero() {
			what += fmt.Sprintf(" (started %s)", t.StartedAt.UTC().Format(time.RFC3339))
		}
	case engine.TaskRetryWait:
		what = fmt.Sprintf("is waiting to be retried after attempt %d", t.Attempt)
	case engine.TaskReady:
		what = "is ready, waiting for a free slot"
	case engine.TaskPending:
		what = "has not started: its needs are not done"
	case engine.TaskTimedOut:
		what = "timed out"
	default:
		what = string(t.State)
	}
	s := "task " + t.TaskID + " " + what
	if t.Message != "" {
		s += ": " + t.Message
	}
	return s
}

// explainingTask picks the task that explains a run's state: in a failed
// run the first that failed or timed out; in an unfinished run, by
// preference, one waiting for its condition, one that failed, one waiting
// to be retried, one running, one ready, one pending. Producers of the
// dataset come first among equals. A succeeded run is explained by a
// producer that did not succeed (skipped), if any.
func explainingTask(tasks []store.TaskRow, state engine.RunState, producers []string) (store.TaskRow, bool) {
	rank := map[engine.TaskState]int{}
	switch state {
	case engine.RunFailed, engine.RunCancelled:
		rank = map[engine.TaskState]int{engine.TaskFailed: 1, engine.TaskTimedOut: 1, engine.TaskCancelled: 2}
	case engine.RunSucceeded:
		for i, t := range tasks {
			if slices.Contains(producers, t.TaskID) && t.State != engine.TaskSucceeded {
				return tasks[i], true
			}
		}
		return store.TaskRow{}, false
	default:
		rank = map[engine.TaskState]int{engine.TaskWaiting: 1, engine.TaskFailed: 2, engine.TaskTimedOut: 2, engine.TaskRetryWait: 3,
			engine.TaskRunning: 4, engine.TaskReady: 5, engine.TaskPending: 6}
	}
	best := -1
	score := func(t store.TaskRow) int {
		r := rank[t.State] * 2
		if !slices.Contains(producers, t.TaskID) {
			r++
		}
		return r
	}
	for i, t := range tasks {
		if rank[t.State] == 0 {
			continue
		}
		if best < 0 || score(t) < score(tasks[best]) {
			best = i
		}
	}
	if best < 0 {
		return store.TaskRow{}, false
	}
	return tasks[best], true
}

// newestRunBy finds the newest run of pipeline created at or before t.
func (s *Server) newestRunBy(ctx context.Context, pipeline string, t time.Time) (store.Run, bool, error) {
	before := int64(0)
	for range sloRunPages {
		runs, err := s.store.ListRuns(ctx, store.RunFilter{Pipeline: pipeline, BeforeID: before, Limit: 100})
		if err != nil {
			return store.Run{}, false, err
		}
		for _, r := range runs {
			if !r.CreatedAt.After(t) {
				return r, true, nil
			}
			before = r.ID
		}
		if len(runs) < 100 {
			break
		}
	}
	return store.Run{}, false, nil
}

// sloAPI serves GET /slo: the objectives come from the registry (read at
// each request), their state is judged at the request from the store, so
// any server, leader or not, answers the same.
type sloAPI struct{ s *Server }

var _ api.SLOs = sloAPI{}

func (a sloAPI) ListSLOs(ctx context.Context, pipeline string) ([]api.SLO, error) {
	now := a.s.now()
	declared, err := a.s.store.SLOObjectives(ctx)
	if err != nil {
		return nil, err
	}
	byID := map[string]store.SLOObjective{}
	for _, d := range declared {
		byID[d.Pipeline+"\x00"+d.Objective] = d
	}
	out := []api.SLO{}
	for _, ob := range a.s.objectives() {
		if pipeline != "" && ob.pipeline != pipeline {
			continue
		}
		// Not judged yet in this form (the leader has not seen it): it
		// holds from now.
		since := now
		if d, ok := byID[ob.id()]; ok && d.Definition == ob.o.String() {
			since = d.Since
		}
		v, err := a.describe(ctx, ob, since, now)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// describe is one objective as the API shows it at now.
func (a sloAPI) describe(ctx context.Context, ob objective, since, now time.Time) (api.SLO, error) {
	s := a.s
	o := ob.o
	v := api.SLO{Name: ob.name(), Pipeline: ob.pipeline, Dataset: ob.dataset, Kind: string(o.Kind()), Definition: o.String(),
		Days: o.Days().Names(), Timezone: o.Location().String(), Since: since}
	if o.Kind() == slo.FreshBy {
		v.FreshBy = o.FreshByClock().String()
	} else {
		v.MaxAge, v.During = o.MaxAgeLimit().String(), o.Period().String()
	}
	updates, err := s.freshness(ctx, ob, o.CurrentFrom(now), now)
	if err != nil {
		return api.SLO{}, err
	}
	cur := o.Current(updates, since, now)
	v.State = string(cur.State)
	v.Window = api.SLOWindow{Start: cur.Window.Start, End: cur.Window.End}
	last, err := s.lastFresh(ctx, ob, updates, now)
	if err != nil {
		return api.SLO{}, err
	}
	v.LastUpdate = api.TimePtr(last)

	ws, err := s.store.SLOWindows(ctx, ob.pipeline, ob.key, latest(since, now.Add(-sloHorizon)))
	if err != nil {
		return api.SLO{}, err
	}
	for _, p := range []struct {
		days int
		dst  **float64
	}{{7, &v.Compliance.Days7}, {30, &v.Compliance.Days30}, {90, &v.Compliance.Days90}} {
		var t slo.Tally
		from := now.Add(-time.Duration(p.days) * 24 * time.Hour)
		for _, w := range ws {
			if w.End.After(from) {
				t.Add(w.Met, w.Judged, w.Compliant)
			}
		}
		if pct, ok := t.Percent(o.Kind()); ok {
			*p.dst = &pct
		}
	}

	bs, err := s.store.SLOBreaches(ctx, store.SLOBreachFilter{Pipeline: ob.pipeline, Objective: ob.key, Since: since, Limit: sloLastBreaches})
	if err != nil {
		return api.SLO{}, err
	}
	v.Breaches = make([]api.SLOBreach, 0, len(bs))
	for _, b := range bs {
		end := b.End
		if end.IsZero() {
			end = now
		}
		v.Breaches = append(v.Breaches, api.SLOBreach{Window: api.SLOWindow{Start: b.WindowStart, End: b.WindowEnd}, Start: b.Start,
			End: api.TimePtr(b.End), Open: b.End.IsZero(), Seconds: max(end.Sub(b.Start), 0).Seconds(), RunID: b.RunID, RunState: b.RunState,
			Task: b.TaskID, TaskState: b.TaskState, Message: b.Message, Cause: b.Cause})
	}
	return v, nil
}

// lastFresh is when the objective's data was last made fresh, at or
// before now (zero: never): the newest of updates, or else read.
func (s *Server) lastFresh(ctx context.Context, ob objective, updates []time.Time, now time.Time) (time.Time, error) {
	if i := sort.Search(len(updates), func(i int) bool { return updates[i].After(now) }); i > 0 {
		return updates[i-1], nil
	}
	if ob.dataset != "" {
		latest, err := s.store.LatestDatasetUpdates(ctx, []string{ob.dataset})
		if err != nil {
			return time.Time{}, err
		}
		if u, ok := latest[ob.dataset]; ok && !u.At.After(now) {
			return u.At, nil
		}
		return time.Time{}, nil
	}
	runs, err := s.store.ListRuns(ctx, store.RunFilter{Pipeline: ob.pipeline, States: []engine.RunState{engine.RunSucceeded}, Limit: 20})
	if err != nil {
		return time.Time{}, err
	}
	var last time.Time
	for _, r := range runs {
		if !r.FinishedAt.After(now) {
			last = latest(last, r.FinishedAt)
		}
	}
	return last, nil
}

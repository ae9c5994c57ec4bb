package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/schedule"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// reload reads the pipelines directory and records what changed in the
// store: new versions, file errors, removals, and the next fire time of a
// schedule that appeared, changed or went away.
func (s *Server) reload(ctx context.Context) error {
	changes, err := s.reg.Reload()
	if err != nil {
		return err
	}
	if !s.leading() {
		// Only the leader records pipelines in the store; a follower keeps
		// its registry current for the API, and syncs all of it if it
		// becomes leader.
		return nil
	}
	for _, c := range changes {
		if err := s.sync(ctx, c); err != nil {
			return fmt.Errorf("record pipeline %s: %w", c.Name, err)
		}
	}
	if len(changes) > 0 {
		s.poke()
	}
	return nil
}

// syncAll records every known pipeline in the store, as a new leader does.
func (s *Server) syncAll(ctx context.Context) error {
	for _, l := range s.reg.All() {
		if err := s.sync(ctx, Change{Name: l.Pipeline.Name, Loaded: l, Updated: l.Error == "" && !l.Removed}); err != nil {
			return fmt.Errorf("record pipeline %s: %w", l.Pipeline.Name, err)
		}
	}
	return nil
}

func (s *Server) sync(ctx context.Context, c Change) error {
	l := c.Loaded
	st := store.PipelineState{Name: c.Name, File: l.File, Error: l.Error, Removed: l.Removed, UpdatedAt: s.now()}
	switch {
	case l.Removed:
		s.log.Info("pipeline removed; no longer scheduled", "pipeline", c.Name)
	case l.Error != "":
		// The registry has logged the problem, once per change of the file.
	case c.Updated:
		p := l.Pipeline
		v, err := s.store.PutPipelineVersion(ctx, store.PipelineVersion{Pipeline: p.Name, Hash: p.Source.Hash, File: l.File, Source: p.Source.Data, CreatedAt: s.now()})
		if err != nil {
			return err
		}
		st.VersionID = v.ID
		s.log.Info("pipeline loaded", "pipeline", c.Name, "file", l.File, "version", v.ID)
	}
	if err := s.store.PutPipelineState(ctx, st); err != nil {
		return err
	}
	// The next fire time follows the version now in force.
	var next time.Time
	if sch, err := s.scheduleOf(l.Pipeline); err != nil {
		return err
	} else if sch != nil && !l.Removed {
		next = sch.Next(s.now())
	}
	cur, err := s.store.PipelineState(ctx, c.Name)
	if err != nil {
		return err
	}
	if l.Error != "" && !l.Removed {
		return nil // the last good version keeps its schedule
	}
	if !l.Removed {
		if err := s.initCursor(ctx, l.Pipeline, cur); err != nil {
			return err
		}
	}
	if !next.IsZero() && cur.LastIntervalEnd.IsZero() {
		// First sight of this schedule: nothing to catch up, but remember
		// where it stands, so that a later downtime is measured from here.
		last := s.now()
		if sch, _ := s.scheduleOf(l.Pipeline); sch != nil {
			if prev := sch.Prev(s.now()); !prev.IsZero() {
				last = prev
			}
		}
		return s.store.AdvanceSchedule(ctx, c.Name, cur.NextFire, next, last)
	}
	if !next.IsZero() {
		// The next fire is the first one after the last interval accounted
		// for, which is in the past after a downtime: the scheduler then
		// catches up as the pipeline's policy says.
		sch, _ := s.scheduleOf(l.Pipeline)
		next = sch.Next(cur.LastIntervalEnd)
	}
	if !cur.NextFire.Equal(next) {
		return s.store.SetNextFire(ctx, c.Name, next)
	}
	return nil
}

// scheduleOf parses a pipeline's cron schedule in its zone (the server's
// zone when it names none); nil when it has none (no schedule, or one on
// datasets only).
func (s *Server) scheduleOf(p *spec.Pipeline) (*schedule.Schedule, error) {
	if p == nil || p.Schedule == nil || p.Schedule.Cron == "" {
		return nil, nil
	}
	loc, err := schedule.LoadLocation(p.Schedule.Timezone, s.loc)
	if err != nil {
		return nil, err
	}
	return schedule.Parse(p.Schedule.Cron, loc)
}

// schedule starts the runs of every due interval. Each run is created in
// the same transaction that moves the pipeline's next fire time on, guarded
// by the next fire time read before (compare-and-set), and the store refuses
// a second run of an interval: an interval starts once, across restarts.
func (s *Server) schedule(ctx context.Context) error {
	states, err := s.store.PipelineStates(ctx)
	if err != nil {
		return err
	}
	now := s.now()
	var errs []error
	for _, st := range states {
		if st.Paused || st.Removed {
			continue
		}
		if l, ok := s.reg.Get(st.Name); ok && l.Pipeline != nil && l.Pipeline.Schedule != nil &&
			l.Pipeline.Schedule.Cron == "" && len(l.Pipeline.Schedule.Datasets) > 0 {
			if err := s.scheduleDatasets(ctx, st, l.Pipeline); err != nil {
				errs = append(errs, fmt.Errorf("pipeline %s: %w", st.Name, err))
			}
			continue
		}
		if st.NextFire.IsZero() {
			continue
		}
		if err := s.scheduleOne(ctx, st, now); err != nil {
			errs = append(errs, fmt.Errorf("pipeline %s: %w", st.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Server) scheduleOne(ctx context.Context, st store.PipelineState, now time.Time) error {
	l, ok := s.reg.Get(st.Name)
	if !ok || l.Pipeline == nil || l.Pipeline.Schedule == nil {
		return nil
	}
	p := l.Pipeline
	sch, err := s.scheduleOf(p)
	if err != nil || sch == nil {
		return err
	}
	next := sch.Next(now)
	if now.Before(st.NextFire) {
		return nil
	}
	policy := schedule.Policy{
		CatchUp: schedule.CatchUpLatest,
		Max:     p.Schedule.MaxCatchUp,
		Grace:   2 * s.cfg.TickInterval.D(),
	}
	if p.Schedule.CatchUp != "" {
		policy.CatchUp = schedule.CatchUp(p.Schedule.CatchUp)
	}
	backlog, err := schedule.Due(sch, st.LastIntervalEnd, now, policy)
	if err != nil {
		return err
	}
	if !backlog.Skipped.IsZero() {
		s.log.Warn("missed intervals skipped by the catch-up policy", "pipeline", st.Name, "policy", policy.CatchUp, "from", backlog.Skipped.Start, "to", backlog.Skipped.End)
	}
	expect := st.NextFire
	if backlog.More {
		// More intervals are due than one tick starts: keep the next fire
		// time where it is so the next pass continues the catch-up.
		next = expect
		defer s.poke()
	}
	var datasets *store.DatasetAdvance
	if len(p.Schedule.Datasets) > 0 && len(backlog.Intervals) > 0 {
		// cron and datasets: an interval starts at its cron time once its
		// data is there; until then the schedule holds (NextFire stays
		// due), and each interval consumes its own updates.
		due, cursor, _, err := s.datasetsDue(ctx, p.Schedule, st.DatasetCursor)
		if err != nil || !due {
			return err
		}
		datasets = &store.DatasetAdvance{Expect: st.DatasetCursor, Next: cursor}
		if len(backlog.Intervals) > 1 && !backlog.More {
			// The later intervals wait for updates of their own.
			next = expect
			defer s.poke()
		}
		backlog.Intervals = backlog.Intervals[:1]
	}
	for i, iv := range backlog.Intervals {
		// Only the last run of the batch moves the next fire time on: if the
		// batch is cut short, the next pass sees the rest still due.
		nf := expect
		if i == len(backlog.Intervals)-1 {
			nf = next
		}
		nr, err := s.runner.NewRun(ctx, p, nil, store.TriggerSchedule)
		if err != nil {
			return err
		}
		nr.Run.IntervalStart, nr.Run.IntervalEnd = iv.Start, iv.End
		nr.Actor = "scheduler"
		nr.Schedule = &store.ScheduleAdvance{ExpectNextFire: expect, NextFire: nf, IntervalEnd: iv.End}
		nr.Datasets = datasets
		s.setDeadline(p, &nr)
		run, err := s.store.CreateRun(ctx, nr)
		if err == nil && len(p.Schedule.Datasets) == 0 {
			// Planned at the end of its interval; a run that also waits for
			// datasets starts when they arrive, which is not lateness.
			s.metrics.SchedulerLag(s.now().Sub(iv.End))
		}
		if errors.Is(err, store.ErrConflict) {
			cur, rerr := s.store.PipelineState(ctx, st.Name)
			if rerr != nil {
				return rerr
			}
			if !cur.NextFire.Equal(expect) || cur.Paused {
				return nil // another pass (or server) got there first, or a pause
			}
			if datasets != nil {
				a, _ := store.EncodeCursor(datasets.Expect)
				if b, _ := store.EncodeCursor(cur.DatasetCursor); !bytes.Equal(a, b) {
					// The dataset cursor moved (another server consumed
					// the updates, or set the cursor up): decide again at
					// the next pass; the interval itself is still due.
					return nil
				}
			}
			// The schedule still expects this fire, so the interval itself
			// has a run already (the expression was edited and realigned
			// onto an old interval): step past it rather than stall.
			s.log.Warn("interval already has a scheduled run; skipping it", "pipeline", st.Name, "interval_start", iv.Start, "interval_end", iv.End)
			if err := s.store.AdvanceSchedule(ctx, st.Name, expect, nf, iv.End); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
			expect = nf
			continue
		}
		if err != nil {
			return err
		}
		s.log.Info("scheduled run created", "pipeline", st.Name, "run", run.ID, "interval_start", iv.Start, "interval_end", iv.End)
		expect = nf
	}
	// Account for what was skipped, or move on when nothing was due.
	if len(backlog.Intervals) == 0 || backlog.Through.After(lastEnd(backlog)) {
		if err := s.store.AdvanceSchedule(ctx, st.Name, expect, next, backlog.Through); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return nil
}

func lastEnd(b schedule.Backlog) time.Time {
	if len(b.Intervals) == 0 {
		return time.Time{}
	}
	return b.Intervals[len(b.Intervals)-1].End
}

// admit starts queued runs while their pipeline's max_active_runs and their
// backfill's parallelism allow, oldest first.
func (s *Server) admit(ctx context.Context) error {
	// Backfills created through another server are found by their queued
	// runs (bounded: the oldest hundred).
	queuedBackfill, err := s.store.ListRuns(ctx, store.RunFilter{Trigger: store.TriggerBackfill, States: []engine.RunState{engine.RunQueued}, Ascending: true, Limit: 100})
	if err != nil {
		return err
	}
	s.mu.Lock()
	for _, r := range queuedBackfill {
		s.backfills[r.BackfillID] = true
	}
	s.mu.Unlock()

	active := map[string]int{} // runs executing per pipeline, backfills included
	activeBackfill := map[int64]int{}
	s.mu.Lock()
	for _, e := range s.executing {
		active[e.pipeline]++
		if e.backfill != 0 {
			activeBackfill[e.backfill]++
		}
	}
	backfills := make([]int64, 0, len(s.backfills))
	for id := range s.backfills {
		backfills = append(backfills, id)
	}
	s.mu.Unlock()

	// Runs left running with nobody executing them here (an Execute that
	// failed, a run reopened by an operator) are picked up again.
	running, err := s.store.ListRuns(ctx, store.RunFilter{States: []engine.RunState{engine.RunRunning}, Ascending: true, Limit: 200})
	if err != nil {
		return err
	}
	for _, r := range running {
		if s.execute(r) {
			active[r.Pipeline]++
		}
	}

	room := func(pipeline string) int {
		if l, ok := s.reg.Get(pipeline); ok && l.Pipeline != nil && l.Pipeline.MaxActiveRuns > 0 {
			return l.Pipeline.MaxActiveRuns - active[pipeline]
		}
		return store.MaxRunsLimit
	}
	for _, l := range s.reg.All() {
		name := l.Pipeline.Name
		limit := room(name)
		if limit <= 0 {
			continue
		}
		var queued []store.Run
		for _, trig := range []string{store.TriggerSchedule, store.TriggerManual, triggerRerun, store.TriggerDataset} {
			runs, err := s.store.ListRuns(ctx, store.RunFilter{Pipeline: name, Trigger: trig, States: []engine.RunState{engine.RunQueued}, Ascending: true, Limit: limit})
			if err != nil {
				return err
			}
			queued = append(queued, runs...)
		}
		sort.Slice(queued, func(i, j int) bool { return queued[i].ID < queued[j].ID })
		for i := 0; i < len(queued) && i < limit; i++ {
			if s.execute(queued[i]) {
				active[name]++
			}
		}
	}
	sort.Slice(backfills, func(i, j int) bool { return backfills[i] < backfills[j] })
	for _, id := range backfills {
		b, err := s.store.Backfill(ctx, id)
		if err != nil {
			return err
		}
		// A backfill has its own parallelism, within its pipeline's limit.
		free := min(max(b.Parallel, 1)-activeBackfill[id], room(b.Pipeline))
		if free <= 0 {
			continue
		}
		runs, err := s.store.ListRuns(ctx, store.RunFilter{BackfillID: id, States: []engine.RunState{engine.RunQueued}, Ascending: true, Limit: free})
		if err != nil {
			return err
		}
		for _, r := range runs {
			if s.execute(r) {
				active[b.Pipeline]++
			}
		}
	}
	return nil
}

// settleBackfills marks backfills whose runs have all ended.
func (s *Server) settleBackfills(ctx context.Context) {
	s.mu.Lock()
	ids := make([]int64, 0, len(s.backfills))
	for id := range s.backfills {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		counts, err := s.store.BackfillCounts(ctx, id)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("backfill counts", "backfill", id, "err", err)
			}
			continue
		}
		if counts[engine.RunQueued]+counts[engine.RunRunning] > 0 {
			continue
		}
		state := store.BackfillSucceeded
		switch {
		case counts[engine.RunCancelled] > 0:
			state = store.BackfillCancelled
		case counts[engine.RunFailed] > 0:
			state = store.BackfillFailed
		}
		if err := s.store.SetBackfillState(ctx, id, state, s.now()); err != nil {
			s.log.Error("finish backfill", "backfill", id, "err", err)
			continue
		}
		s.mu.Lock()
		delete(s.backfills, id)
		s.mu.Unlock()
		s.log.Info("backfill finished", "backfill", id, "state", state)
	}
}

// triggerRerun marks runs started by 'rerun'.
const triggerRerun = "rerun"

package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/notify"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// This file is self-healing (repair: {on_data: true}): a run that failed
// because its data was missing (a wait timed out, a task exited with one of
// its data-missing codes) is watched until the data is there, then its
// failed part runs again in the same run, with a record saying why. No
// person is involved, and nothing that succeeded runs again.

// Timeline records of repairs.
const (
	RecRepairWatching engine.EventKind = "repair_watching" // what is watched, until when
	RecRepairStarted  engine.EventKind = "repair_started"  // the data arrived: the failed part runs again
	RecRepairGaveUp   engine.EventKind = "repair_gave_up"  // the data did not arrive in time
)

// repairs holds the failed runs being watched; the leader's passes check
// them. They are kept in memory: a new leader finds them again among the
// recently failed runs (recoverRepairs).
type repairs struct {
	mu      sync.Mutex
	failed  []int64                // runs that ended failed, to consider at the next pass
	watches map[int64]*repairWatch // by run
	// until is, by run, when the first watch of its failure ends: a try
	// that fails again (a task tried as its own check) watches on only
	// until then, not for a new repair.until each time.
	until map[int64]time.Time
}

// repairWatch is one failed run whose missing data is watched for.
type repairWatch struct {
	run    int64
	waits  []int // wait tasks that timed out: their conditions are checked
	probes []int // tasks that exited with a data-missing code: tried again as their own check
	names  []string
	until  time.Time
	poke   time.Duration
	next   time.Time
	busy   bool
}

// runFailed is told of a run that ended failed (from the runner's
// observer: it must not block); the next pass decides whether to watch it.
func (r *repairs) runFailed(id int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, id)
}

// repairPass considers the runs that failed since the last pass and checks
// the watches that are due. Checks run off the pass (a slow HTTP check must
// not hold the scheduler), one per watch at a time.
func (s *Server) repairPass(ctx context.Context) {
	s.repair.mu.Lock()
	failed := s.repair.failed
	s.repair.failed = nil
	s.repair.mu.Unlock()
	for _, id := range failed {
		if err := s.considerRepair(ctx, id, false); err != nil && ctx.Err() == nil {
			s.log.Error("consider repair", "run", id, "err", err)
		}
	}
	now := s.now()
	var gaveUp []*repairWatch
	defer func() {
		for _, w := range gaveUp {
			s.record(ctx, w.run, RecRepairGaveUp, giveUpMessage(w))
		}
	}()
	s.repair.mu.Lock()
	defer s.repair.mu.Unlock()
	for id, w := range s.repair.watches {
		if w.busy || now.Before(w.next) {
			continue
		}
		if !now.Before(w.until) {
			delete(s.repair.watches, id)
			delete(s.repair.until, id)
			gaveUp = append(gaveUp, w)
			continue
		}
		w.busy = true
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.checkRepair(ctx, w)
		}()
	}
}

// considerRepair starts watching a failed run if its pipeline repairs on
// data and the run failed for missing data. again says the server is
// finding a watch it had before (a new leader): the watch's record is not
// written twice.
func (s *Server) considerRepair(ctx context.Context, id int64, again bool) error {
	run, err := s.store.Run(ctx, id)
	if err != nil {
		return err
	}
	if run.State != engine.RunFailed {
		return nil
	}
	p, err := s.runner.Pipeline(ctx, run.VersionID)
	if err != nil {
		return err
	}
	if p.Repair == nil || !p.Repair.OnData {
		return nil
	}
	tasks, err := s.store.Tasks(ctx, id)
	if err != nil {
		return err
	}
	w := &repairWatch{run: id}
	pokes := []time.Duration{}
	for _, t := range tasks {
		st := p.Tasks[t.Index]
		switch {
		case t.State == engine.TaskTimedOut && st.Wait != nil:
			w.waits = append(w.waits, t.Index)
			w.names = append(w.names, fmt.Sprintf("%s (last seen: %s)", t.TaskID, t.Message))
			pokes = append(pokes, st.Wait.PokeEvery())
		case t.State == engine.TaskFailed && t.ExitCode != nil && st.Retry != nil && slices.Contains(st.Retry.DataMissingExitCodes, *t.ExitCode):
			w.probes = append(w.probes, t.Index)
			w.names = append(w.names, fmt.Sprintf("%s (exit status %d: data missing)", t.TaskID, *t.ExitCode))
			pokes = append(pokes, spec.DefaultRepairPoke)
		}
	}
	if len(w.waits)+len(w.probes) == 0 {
		return nil // it failed for another reason: a person looks at it
	}
	w.poke = slices.Min(pokes)
	if p.Repair.Poke > 0 {
		w.poke = p.Repair.Poke.D()
	}
	ended := run.FinishedAt
	if ended.IsZero() {
		ended = s.now()
	}
	// Until repair.until after the failure; without it, until the run's
	// deadline (after that the data is late anyway, and a person is told
	// it was missed), or a day.
	switch {
	case p.Repair.Until > 0:
		w.until = ended.Add(p.Repair.Until.D())
	case !run.Deadline.IsZero():
		w.until = run.Deadline
	default:
		w.until = ended.Add(spec.DefaultRepairUntil)
	}
	s.repair.mu.Lock()
	if first, ok := s.repair.until[id]; ok {
		w.until = first
	} else {
		if s.repair.until == nil {
			s.repair.until = map[int64]time.Time{}
		}
		s.repair.until[id] = w.until
	}
	s.repair.mu.Unlock()
	now := s.now()
	if !now.Before(w.until) {
		if again {
			// A new leader finding an old failure: its time is long over,
			// and said so (or will never be: nothing more to record).
			s.repair.mu.Lock()
			delete(s.repair.until, id)
			s.repair.mu.Unlock()
			return nil
		}
		s.giveUp(ctx, id, w)
		return nil
	}
	w.next = now
	if len(w.waits) == 0 {
		// Tasks tried again as their own check: not at once, they just said
		// the data is missing.
		w.next = now.Add(w.poke)
	}
	s.repair.mu.Lock()
	if s.repair.watches == nil {
		s.repair.watches = map[int64]*repairWatch{}
	}
	_, watched := s.repair.watches[id]
	s.repair.watches[id] = w
	s.repair.mu.Unlock()
	if !watched && !again {
		s.record(ctx, id, RecRepairWatching, fmt.Sprintf("watching for the missing data of %s until %s; the failed part runs again when it is there", strings.Join(w.names, ", "), w.until.Format(time.RFC3339)))
	}
	return nil
}

// checkRepair checks a watch once: every watched wait's condition holds
// (or there are only tasks to try again) → the failed part runs again.
func (s *Server) checkRepair(ctx context.Context, w *repairWatch) {
	var seen []string
	ready := true
	for _, i := range w.waits {
		obs, err := s.runner.CheckWait(ctx, w.run, i)
		switch {
		case err != nil:
			ready = false
			s.log.Warn("repair: check the wait of a failed run", "run", w.run, "task", i, "err", err)
		case !obs.Met:
			ready = false
		default:
			seen = append(seen, obs.Seen)
		}
		if !ready {
			break
		}
	}
	// An operator may have retried the run meanwhile (having put the data
	// in place): it is no longer this repair's to run again, and a
	// repair_started record would tell of a repair that never ran.
	run, err := s.store.Run(ctx, w.run)
	if err != nil {
		ready = false
		s.log.Warn("repair: read the failed run", "run", w.run, "err", err)
	}
	s.repair.mu.Lock()
	w.busy = false
	w.next = s.now().Add(w.poke)
	if err == nil && run.State != engine.RunFailed {
		if s.repair.watches[w.run] == w {
			delete(s.repair.watches, w.run)
			if run.State.Terminal() {
				// Over without this repair; a run still running keeps the
				// first failure's until, should it fail again.
				delete(s.repair.until, w.run)
			}
		}
		s.repair.mu.Unlock()
		return
	}
	if !ready || s.repair.watches[w.run] != w {
		s.repair.mu.Unlock()
		return
	}
	delete(s.repair.watches, w.run)
	s.repair.mu.Unlock()

	why := "the data is there (" + strings.Join(seen, "; ") + ")"
	if len(w.waits) == 0 {
		why = "trying again the tasks that found no data"
	}
	s.record(ctx, w.run, RecRepairStarted, why+": the failed part of the run runs again")
	after, err := (&service{s: s}).act(ctx, w.run, engine.Event{Kind: engine.EvRetryFailed, Task: -1, Actor: "repair"})
	if err != nil {
		s.log.Error("repair: retry the failed part of a run", "run", w.run, "err", err)
		return
	}
	s.log.Info("repair: the failed part of a run runs again", "run", w.run, "why", why)
	s.publish(ctx, notify.Event{Kind: notify.Repaired, Pipeline: after.Pipeline, RunID: w.run, State: string(after.State), Reason: why})
}

// giveUp records that a repair's time ran out before the data came.
func (s *Server) giveUp(ctx context.Context, id int64, w *repairWatch) {
	s.repair.mu.Lock()
	_, watched := s.repair.until[id]
	delete(s.repair.until, id)
	delete(s.repair.watches, id)
	s.repair.mu.Unlock()
	if watched {
		s.record(ctx, id, RecRepairGaveUp, giveUpMessage(w))
	}
}

func giveUpMessage(w *repairWatch) string {
	return fmt.Sprintf("the data did not arrive by %s: %s stays failed", w.until.Format(time.RFC3339), strings.Join(w.names, ", "))
}

// recoverRepairs finds, as a new leader, the recently failed runs a repair
// may still be watching.
func (s *Server) recoverRepairs(ctx context.Context) error {
	runs, err := s.store.ListRuns(ctx, store.RunFilter{States: []engine.RunState{engine.RunFailed}, Limit: 200})
	if err != nil {
		return err
	}
	for _, r := range runs {
		if err := s.considerRepair(ctx, r.ID, true); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

// record adds one record to a run's timeline.
func (s *Server) record(ctx context.Context, runID int64, kind engine.EventKind, msg string) {
	rec := engine.Record{Time: s.now(), Kind: kind, Task: -1, Message: msg}
	// Through the runner's store: fenced, so a deposed leader whose check
	// was still in flight writes nothing.
	if err := s.runner.Store.Apply(ctx, store.Change{RunID: runID, Transition: engine.Transition{Records: []engine.Record{rec}}}); err != nil {
		s.log.Error("record in a run's timeline", "run", runID, "kind", kind, "err", err)
	}
}

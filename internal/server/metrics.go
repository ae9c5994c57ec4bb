package server

import (
	"context"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/lease"
	"github.com/tasuki-dev/tasuki/internal/metrics"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// setupMetrics creates the server's metrics and connects them to what
// they count: the broker's attempts and leases, the logs written, and (in
// observeMetrics, timedStore, the scheduler and the API) the rest.
func (s *Server) setupMetrics() {
	s.metrics = metrics.NewServer(metrics.NewGauges(s.snapshot))
	s.files.Wrote = s.metrics.LogBytes
	s.runner.Dispatcher.Waited = s.metrics.PoolWaited
	s.broker.Observe = func(o lease.Observation) {
		switch {
		case o.Event == "expired":
			s.metrics.LeaseEvent(metrics.LeaseExpired, 1)
		case o.Event == "refused":
			s.metrics.LeaseEvent(metrics.LeaseRefused, 1)
		case o.Ended:
			s.metrics.AttemptEnded(o.Pipeline, string(o.Outcome), o.Ran)
		default:
			if o.Remote {
				s.metrics.LeaseEvent(metrics.LeaseGranted, 1)
			}
			s.metrics.AttemptWaited(strings.Join(o.Labels, ","), o.Waited)
		}
	}
}

// snapshot is what the gauges show, read at each scrape.
func (s *Server) snapshot() metrics.Snapshot {
	st := s.broker.Stats()
	snap := metrics.Snapshot{Leader: s.leading(), Waiting: st.Waiting, Running: st.Running, Workers: st.Workers, OldestHeartbeat: st.OldestHeartbeat,
		PoolWaiting: map[string]int{}, PoolInUse: map[string]int{}}
	for _, p := range s.runner.Dispatcher.Pools() {
		snap.PoolWaiting[p.Name] = p.Waiting
		snap.PoolInUse[p.Name] = p.Used
	}
	return snap
}

// observeMetrics counts the runs and tasks a committed batch started or
// ended. Tasks ended by a record of their own are counted as they end;
// when the run ends, the tasks that ended without one (the pending tasks
// of a cancelled run) are counted from the run's final counts.
func (s *Server) observeMetrics(p runner.Progress) {
	for _, r := range p.Records {
		switch {
		case r.Kind == engine.EvRunStarted:
			s.metrics.RunStarted(p.Run.Pipeline)
		case r.Kind == engine.RecRunFinished:
			s.metrics.RunEnded(p.Run.Pipeline, string(p.Run.State))
			s.log.Info("run ended", "run", p.Run.ID, "pipeline", p.Run.Pipeline, "state", p.Run.State)
			counted := s.tasksCounted(p.Run.ID, "", true)
			for state, n := range p.Counts {
				if state.Terminal() && n > counted[state] {
					s.metrics.TaskEnded(p.Run.Pipeline, string(state), n-counted[state])
				}
			}
		case r.Task >= 0 && p.Task != nil && taskEnding(r.Kind):
			if t := p.Task(r.Task); t.State.Terminal() {
				s.metrics.TaskEnded(p.Run.Pipeline, string(t.State), 1)
				s.tasksCounted(p.Run.ID, t.State, false)
			}
		}
	}
}

// tasksCounted notes a task of run counted in state (when state is not
// empty), and returns (and forgets, with done) what was counted of it.
func (s *Server) tasksCounted(run int64, state engine.TaskState, done bool) map[engine.TaskState]int {
	s.countedMu.Lock()
	defer s.countedMu.Unlock()
	if s.counted == nil {
		s.counted = map[int64]map[engine.TaskState]int{}
	}
	c := s.counted[run]
	if state != "" {
		if c == nil {
			c = map[engine.TaskState]int{}
			s.counted[run] = c
		}
		c[state]++
	}
	if done {
		delete(s.counted, run)
	}
	return c
}

// taskEnding reports whether a record can leave its task in a final state.
func taskEnding(k engine.EventKind) bool {
	switch k {
	case engine.EvTaskSucceeded, engine.EvTaskFailed, engine.EvTaskTimedOut, engine.EvTaskLost, engine.EvTaskCancelled,
		engine.RecTaskUpstreamFailed, engine.EvMarkSucceeded, engine.EvMarkSkipped:
		return true
	}
	return false
}

// timedStore times the runner's transactions (what a run's progress costs
// the database) for the metrics.
type timedStore struct {
	store.Store
	m      *metrics.Server
	tracer trace.Tracer // nil: tracing is off
	// runTrace is the root span of a run executing here.
	runTrace func(run int64) (trace.SpanContext, bool)
}

func (t timedStore) Apply(ctx context.Context, changes ...store.Change) error {
	var span trace.Span
	if t.tracer != nil && len(changes) > 0 {
		// A transaction of one run is a child of the run's root span.
		run := changes[0].RunID
		for _, c := range changes[1:] {
			if c.RunID != run {
				run = 0
			}
		}
		parent := ctx
		if sc, ok := t.runTrace(run); ok && run != 0 {
			parent = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
		_, span = t.tracer.Start(parent, "store apply", trace.WithAttributes(attribute.Int("tasuki.changes", len(changes))))
	}
	began := time.Now()
	err := t.Store.Apply(ctx, changes...)
	t.m.StoreDone("apply", time.Since(began), err)
	if span != nil {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
	return err
}

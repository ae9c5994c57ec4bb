package predict

import (
	"slices"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
)

// Defaults of a zero Model.
const (
	// DefaultPercentile is the percentile of recent durations a task is
	// expected to take: a high one, so that a prediction errs towards
	// warning early.
	DefaultPercentile = 0.9
	// DefaultMinSamples is how many recent durations a task needs before
	// they outweigh its declared expected duration.
	DefaultMinSamples = 3
	// DefaultEstimate is what a task with neither history nor a declared
	// expected duration is expected to take: small, so that such a task
	// does not raise alarms on its own.
	DefaultEstimate = time.Second
	// DefaultMinRemaining is the least a task that has not finished still
	// counts: one past its estimate is still running, so it is not done.
	DefaultMinRemaining = time.Second
)

// Model holds the rules of a prediction. The zero Model uses the defaults.
type Model struct {
	Percentile   float64       // of recent durations, in (0, 1]; 0 means DefaultPercentile
	MinSamples   int           // 0 means DefaultMinSamples
	Default      time.Duration // 0 means DefaultEstimate
	MinRemaining time.Duration // 0 means DefaultMinRemaining
}

func (m Model) percentile() float64 {
	if m.Percentile <= 0 || m.Percentile > 1 {
		return DefaultPercentile
	}
	return m.Percentile
}

func (m Model) minSamples() int {
	if m.MinSamples <= 0 {
		return DefaultMinSamples
	}
	return m.MinSamples
}

func (m Model) defaultEstimate() time.Duration {
	if m.Default <= 0 {
		return DefaultEstimate
	}
	return m.Default
}

func (m Model) minRemaining() time.Duration {
	if m.MinRemaining <= 0 {
		return DefaultMinRemaining
	}
	return m.MinRemaining
}

// Estimate is how long a task is expected to take: the model's percentile
// of its recent successful durations (samples, in any order) once there
// are at least MinSamples of them; before that the declared expected
// duration when there is one (the prior), else the percentile of the few
// samples there are, else the model's small default.
func (m Model) Estimate(samples []time.Duration, expected time.Duration) time.Duration {
	switch {
	case len(samples) >= m.minSamples():
		return Percentile(samples, m.percentile())
	case expected > 0:
		return expected
	case len(samples) > 0:
		return Percentile(samples, m.percentile())
	}
	return m.defaultEstimate()
}

// Percentile returns the p-th percentile (0 < p <= 1) of samples by the
// nearest-rank method: the smallest sample that at least p of all samples
// do not exceed. It returns 0 for no samples and does not modify samples.
func Percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	rank := int(p*float64(len(s)) + 0.999999999) // ceil, forgiving float error
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// Task is what a prediction needs to know of one task of a run.
type Task struct {
	State engine.TaskState
	// StartedAt is when the current attempt started (running or waiting).
	StartedAt time.Time
	// ReadyAt is when a task in retry_wait may start again.
	ReadyAt time.Time
	// Estimate is how long one attempt is expected to take (Model.Estimate).
	Estimate time.Duration
}

// Prediction is when a run is expected to finish and why.
type Prediction struct {
	// Finish is now plus Remaining.
	Finish time.Time
	// Remaining is the length of the critical path.
	Remaining time.Duration
	// Path is the critical path: the unfinished tasks (graph indices) of
	// the longest remaining path, in the order they run. Empty when every
	// task has finished.
	Path []int
	// Left is what each task still counts (0 for a finished task), by
	// graph index.
	Left []time.Duration
	// Blocked lists the tasks that ended without success (failed, timed
	// out, cancelled): the run cannot succeed until they are tried again.
	// The prediction counts them as tried again now.
	Blocked []int
}

// Predict predicts when a run of graph g finishes, given each of its tasks
// (by graph index) at now: now plus the longest remaining path through the
// graph, as if every task started the moment its needs are done (slots and
// pools are not modelled). A task counts
//
//   - finished (succeeded, skipped): nothing;
//   - running: what remains of its estimate, at least MinRemaining;
//   - waiting (a wait between checks): what remains of its estimate, at
//     least its poke interval, since the next check is the earliest it can
//     succeed;
//   - retry_wait: the time until it may start again, plus its estimate;
//   - pending, ready, and ended without success: its whole estimate.
//
// It costs O(tasks + needs).
func (m Model) Predict(g *engine.Graph, tasks []Task, now time.Time) Prediction {
	n := g.Len()
	p := Prediction{Left: make([]time.Duration, n)}
	finished := make([]bool, n)
	for i := range n {
		var t Task
		if i < len(tasks) {
			t = tasks[i]
		}
		left, done := m.left(g.Node(i), t, now)
		p.Left[i], finished[i] = left, done
		switch t.State {
		case engine.TaskFailed, engine.TaskTimedOut, engine.TaskCancelled:
			p.Blocked = append(p.Blocked, i)
		}
	}
	// longest[i]: the longest path starting at task i, through its
	// dependents; next[i] the dependent it continues with (-1: none).
	longest := make([]time.Duration, n)
	next := make([]int, n)
	order := reverseTopological(g)
	for _, i := range order {
		best, via := time.Duration(0), -1
		for _, d := range g.Node(i).Dependents {
			if longest[d] > best || (via < 0 && longest[d] == best && !finished[d]) {
				best, via = longest[d], d
			}
		}
		longest[i], next[i] = p.Left[i]+best, via
	}
	start := -1
	for i := range n {
		if finished[i] {
			continue
		}
		if start < 0 || longest[i] > longest[start] {
			start = i
		}
	}
	if start >= 0 {
		p.Remaining = longest[start]
		for i := start; i >= 0; i = next[i] {
			if !finished[i] {
				p.Path = append(p.Path, i)
			}
		}
	}
	p.Finish = now.Add(p.Remaining)
	return p
}

// left is what task t (node nd) still counts at now, and whether it has
// finished.
func (m Model) left(nd *engine.Node, t Task, now time.Time) (time.Duration, bool) {
	est := max(t.Estimate, 0)
	switch t.State {
	case engine.TaskSucceeded, engine.TaskSkipped:
		return 0, true
	case engine.TaskRunning:
		return max(est-elapsed(t.StartedAt, now), m.minRemaining()), false
	case engine.TaskWaiting:
		floor := m.minRemaining()
		if nd.Wait != nil && nd.Wait.Poke > 0 {
			floor = nd.Wait.Poke
		}
		return max(est-elapsed(t.StartedAt, now), floor), false
	case engine.TaskRetryWait:
		return max(t.ReadyAt.Sub(now), 0) + est, false
	}
	return est, false
}

// elapsed is how long ago start was (0 when unknown or in the future).
func elapsed(start, now time.Time) time.Duration {
	if start.IsZero() || now.Before(start) {
		return 0
	}
	return now.Sub(start)
}

// reverseTopological orders the tasks so that every task comes after all
// its dependents (Kahn's algorithm on the dependents, O(V+E)). The graph is
// acyclic (engine.NewGraph checks it).
func reverseTopological(g *engine.Graph) []int {
	n := g.Len()
	pending := make([]int, n) // dependents not yet ordered
	order := make([]int, 0, n)
	for i := range n {
		pending[i] = len(g.Node(i).Dependents)
		if pending[i] == 0 {
			order = append(order, i)
		}
	}
	for k := 0; k < len(order); k++ {
		for _, j := range g.Node(order[k]).Needs {
			if pending[j]--; pending[j] == 0 {
				order = append(order, j)
			}
		}
	}
	return order
}

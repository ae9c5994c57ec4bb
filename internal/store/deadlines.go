package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
)

// Deadline states of a run (Run.DeadlineState). A run with a deadline has
// none ("") until the server first judges it.
const (
	DeadlineOnTrack = "on_track" // predicted to finish by the deadline
	DeadlineAtRisk  = "at_risk"  // predicted to finish after it, or unable to finish without a retry
	DeadlineMissed  = "missed"   // the deadline passed unfinished, or the run succeeded after it
	DeadlineMet     = "met"      // succeeded by the deadline
)

// DeadlineFinal reports whether a deadline state no longer changes: the
// server stops watching the run.
func DeadlineFinal(state string) bool { return state == DeadlineMet || state == DeadlineMissed }

// CheckDeadlineState rejects a deadline state the store does not know.
func CheckDeadlineState(s string) error {
	switch s {
	case "", DeadlineOnTrack, DeadlineAtRisk, DeadlineMissed, DeadlineMet:
		return nil
	}
	return fmt.Errorf("unknown deadline state %q", s)
}

// DurationSamples is how many of a task's most recent successful attempt
// durations the store keeps per (pipeline, task id): enough for a high
// percentile that forgets a slow week within weeks.
const DurationSamples = 20

// Record kinds of the deadline watcher in a run's timeline, one per
// deadline state it moves the run to.
const (
	RecDeadlineOnTrack engine.EventKind = "deadline_on_track"
	RecDeadlineAtRisk  engine.EventKind = "deadline_at_risk"
	RecDeadlineMissed  engine.EventKind = "deadline_missed"
	RecDeadlineMet     engine.EventKind = "deadline_met"
)

// DeadlineRecord is the record kind of a move to deadline state s.
func DeadlineRecord(s string) engine.EventKind {
	return engine.EventKind("deadline_" + s)
}

// DeadlineUpdate is what the deadline watcher writes about one run: its
// deadline state and prediction, and the timeline records that explain a
// change of state, together.
type DeadlineUpdate struct {
	RunID int64
	// Expect is the DeadlineState the caller judged the run from: the
	// update is a compare-and-set on it, so two judges (a deposed leader
	// and its successor) cannot overwrite each other's decisions.
	Expect          string
	State           string
	PredictedFinish time.Time // zero: none (a finished run)
	CriticalPath    []string  // task ids, in the order they run
	Records         []engine.Record
}

// Deadlines is the part of a Store that keeps what deadlines need: each
// run's deadline state and prediction (the deadline itself is written by
// CreateRun, Run.Deadline), and the durations of recent successful attempts
// per pipeline and task, which Apply records when it writes an attempt
// that succeeded (with its start and end known): one insert and one trim
// to the newest DurationSamples of that task, each an index lookup. A
// driver may record them after the commit of the success, in a later one
// (SQLite gathers a second of them into one statement): TaskDurations of
// the same store still reads every success Apply has returned, and another
// store on the database sees them once their run has ended, once the store
// that wrote them has closed, or a second later; a crash may lose that
// second of samples, which only feed predictions.
type Deadlines interface {
	// DeadlineRuns returns up to limit runs with a deadline that is not
	// yet met or missed (any run state: a finished run is judged once
	// more), with ID > afterID, by ID: what the deadline watcher looks at.
	// It reads a partial index of exactly those runs.
	DeadlineRuns(ctx context.Context, afterID int64, limit int) ([]Run, error)
	// SetRunDeadline writes u: the run's DeadlineState, PredictedFinish
	// and CriticalPath, and u.Records, in one transaction, if the run's
	// DeadlineState is still u.Expect (otherwise ErrConflict and nothing
	// written). With a fence it first checks it as ApplyFenced does
	// (ErrFenced). ErrNotFound for an unknown run.
	SetRunDeadline(ctx context.Context, fence *Fence, u DeadlineUpdate) error
	// TaskDurations returns, per task id of pipeline, the durations of its
	// most recent successful attempts, newest first, at most
	// DurationSamples each (a few more while concurrent writers trim).
	// It reads one range of a (pipeline, task id) index: the cost is the
	// pipeline's tasks times DurationSamples, whatever the history.
	TaskDurations(ctx context.Context, pipeline string) (map[string][]time.Duration, error)
}

// CheckDeadlineUpdate validates u the same for both drivers and returns
// its critical path as the JSON the drivers store (nil for none).
func CheckDeadlineUpdate(u *DeadlineUpdate) (json.RawMessage, error) {
	if u.RunID <= 0 {
		return nil, fmt.Errorf("deadline of run %d: invalid run id", u.RunID)
	}
	if err := CheckDeadlineState(u.Expect); err != nil {
		return nil, fmt.Errorf("deadline of run %d: expected state: %w", u.RunID, err)
	}
	if err := CheckDeadlineState(u.State); err != nil {
		return nil, fmt.Errorf("deadline of run %d: %w", u.RunID, err)
	}
	if u.State == "" {
		return nil, fmt.Errorf("deadline of run %d: empty state", u.RunID)
	}
	for _, id := range u.CriticalPath {
		if err := CheckText("critical path task id", id); err != nil {
			return nil, fmt.Errorf("deadline of run %d: %w", u.RunID, err)
		}
	}
	c := Change{RunID: u.RunID, Transition: engine.Transition{Records: u.Records}}
	if err := CheckChange(&c); err != nil {
		return nil, fmt.Errorf("deadline of run %d: %w", u.RunID, err)
	}
	u.Records = c.Transition.Records
	u.PredictedFinish = NormTime(u.PredictedFinish)
	if len(u.CriticalPath) == 0 {
		return nil, nil
	}
	raw, err := json.Marshal(u.CriticalPath)
	if err != nil {
		return nil, fmt.Errorf("deadline of run %d: critical path: %w", u.RunID, err)
	}
	return raw, nil
}

// DecodeCriticalPath reads a stored critical path (nil for none).
func DecodeCriticalPath(raw []byte) ([]string, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var ids []string
	if err := json.Unmarshal(raw, &ids); err != nil {
		return nil, fmt.Errorf("critical path: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	return ids, nil
}

// GroupDurations turns rows of (task id, duration), ordered by task id
// then oldest first, into TaskDurations' answer: newest first, at most
// DurationSamples per task.
func GroupDurations(taskIDs []string, durations []time.Duration) (map[string][]time.Duration, error) {
	if len(taskIDs) != len(durations) {
		return nil, errors.New("group durations: columns of different lengths")
	}
	out := map[string][]time.Duration{}
	for i, id := range taskIDs {
		out[id] = append(out[id], durations[i])
	}
	for id, ds := range out {
		slices.Reverse(ds)
		if len(ds) > DurationSamples {
			ds = ds[:DurationSamples]
		}
		out[id] = ds
	}
	return out, nil
}

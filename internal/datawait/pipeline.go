package datawait

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// PipelineStore is what the pipeline wait reads of the store.
type PipelineStore interface {
	ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error)
	Tasks(ctx context.Context, runID int64) ([]store.TaskRow, error)
}

// maxTaskRuns bounds the runs of one interval whose tasks a check with a
// task reads (the newest ones): each read is a whole run's tasks, and an
// interval has a run, its reruns and a backfill's, rarely more.
const maxTaskRuns = 20

// Pipeline is the pipeline wait condition ("wait.pipeline"): another
// pipeline's run of the same logical interval succeeded (for a run without
// an interval, that pipeline's newest run), or, with a task, that task of it
// succeeded or was skipped. It implements attempt.Condition.
type Pipeline struct {
	Store PipelineStore
}

var _ attempt.Condition = Pipeline{}

// pipelineBody is the Spec.Body of a pipeline wait.
type pipelineBody struct {
	Pipeline string `json:"pipeline"`
	Task     string `json:"task,omitempty"`
}

// pipelineResult is the task's result when the wait is met: the run (and
// task) that met it.
type pipelineResult struct {
	Run           int64            `json:"run"`
	Pipeline      string           `json:"pipeline"`
	State         engine.RunState  `json:"state"`
	Task          string           `json:"task,omitempty"`
	TaskState     engine.TaskState `json:"task_state,omitempty"`
	IntervalStart time.Time        `json:"interval_start,omitzero"`
	IntervalEnd   time.Time        `json:"interval_end,omitzero"`
}

// Name implements attempt.Condition: spec.Task.Kind of a pipeline wait.
func (Pipeline) Name() string { return "wait.pipeline" }

// Body implements attempt.Condition.
func (Pipeline) Body(t *spec.Task) (json.RawMessage, error) {
	if t.Wait == nil || t.Wait.Pipeline == "" {
		return nil, errors.New("the task has no pipeline to wait for (wait.pipeline)")
	}
	return json.Marshal(pipelineBody{Pipeline: t.Wait.Pipeline, Task: t.Wait.Task})
}

// Check implements attempt.Condition: it reads the pipeline's runs of the
// attempt's interval (one index range), or its newest run, and with a task
// the tasks of those runs. The attempt's own run never counts, so a
// pipeline that waits on itself waits for another of its runs.
func (w Pipeline) Check(ctx context.Context, s *attempt.Spec, _ *attempt.Host, _ json.RawMessage) attempt.Observation {
	var b pipelineBody
	if err := json.Unmarshal(s.Body, &b); err != nil {
		return attempt.Observation{Fail: fmt.Sprintf("read the pipeline wait of the attempt: %v", err)}
	}
	if b.Pipeline == "" {
		return attempt.Observation{Fail: "the pipeline wait names no pipeline"}
	}
	if w.Store == nil {
		return attempt.Observation{Fail: "this executor has no store to check a pipeline wait in"}
	}
	start, end, hasInterval, fail := interval(s)
	if fail != "" {
		return attempt.Observation{Fail: fail}
	}
	self, _ := strconv.ParseInt(s.Env[envRunID], 10, 64)

	var runs []store.Run // newest first, the attempt's own left out
	if hasInterval {
		all, err := w.Store.ListRuns(ctx, store.RunFilter{Pipeline: b.Pipeline, IntervalStart: start, Limit: store.MaxRunsLimit})
		if err != nil {
			return unreadable(ctx, "the runs of "+b.Pipeline, err)
		}
		for _, r := range all {
			if r.ID != self && (end.IsZero() || r.IntervalEnd.Equal(end)) {
				runs = append(runs, r)
			}
		}
	} else {
		all, err := w.Store.ListRuns(ctx, store.RunFilter{Pipeline: b.Pipeline, Limit: 2})
		if err != nil {
			return unreadable(ctx, "the runs of "+b.Pipeline, err)
		}
		for _, r := range all {
			if r.ID != self {
				runs = append(runs, r)
				break // only the newest counts
			}
		}
	}
	if len(runs) == 0 {
		if hasInterval {
			return attempt.Observation{Seen: fmt.Sprintf("no run of %s for %s", b.Pipeline, stamp(start))}
		}
		return attempt.Observation{Seen: "no run of " + b.Pipeline}
	}
	if b.Task == "" {
		for _, r := range runs {
			if r.State == engine.RunSucceeded {
				return met(r, nil, fmt.Sprintf("run %d of %s is %s", r.ID, b.Pipeline, r.State))
			}
		}
		return attempt.Observation{Seen: fmt.Sprintf("run %d of %s is %s", runs[0].ID, b.Pipeline, runs[0].State)}
	}
	return w.checkTask(ctx, b, runs[:min(len(runs), maxTaskRuns)])
}

// checkTask looks for task b.Task succeeded or skipped in runs (newest
// first); what it saw is that of the newest run.
func (w Pipeline) checkTask(ctx context.Context, b pipelineBody, runs []store.Run) attempt.Observation {
	seen := ""
	for _, r := range runs {
		tasks, err := w.Store.Tasks(ctx, r.ID)
		if errors.Is(err, store.ErrNotFound) {
			continue // pruned since it was listed
		}
		if err != nil {
			return unreadable(ctx, fmt.Sprintf("the tasks of run %d", r.ID), err)
		}
		var task *store.TaskRow
		for i := range tasks {
			if tasks[i].TaskID == b.Task {
				task = &tasks[i]
				break
			}
		}
		if task == nil {
			if seen == "" {
				seen = fmt.Sprintf("run %d of %s has no task %s", r.ID, b.Pipeline, b.Task)
			}
			continue
		}
		said := fmt.Sprintf("task %s of run %d is %s", b.Task, r.ID, task.State)
		if task.State == engine.TaskSucceeded || task.State == engine.TaskSkipped {
			return met(r, task, said)
		}
		if seen == "" {
			seen = said
		}
	}
	if seen == "" {
		seen = "no run of " + b.Pipeline
	}
	return attempt.Observation{Seen: seen}
}

// met is the observation of run r (and task t) meeting the wait.
func met(r store.Run, t *store.TaskRow, seen string) attempt.Observation {
	res := pipelineResult{Run: r.ID, Pipeline: r.Pipeline, State: r.State,
		IntervalStart: r.IntervalStart, IntervalEnd: r.IntervalEnd}
	if t != nil {
		res.Task, res.TaskState = t.TaskID, t.State
	}
	out, err := json.Marshal(res)
	if err != nil {
		return attempt.Observation{Fail: fmt.Sprintf("encode the result: %v", err)}
	}
	return attempt.Observation{Met: true, Seen: seen, Result: out}
}

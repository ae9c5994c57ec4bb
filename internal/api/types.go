package api

import (
	"encoding/json"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Run is the JSON shape of a run. `id` and `state` are top-level so scripts
// can rely on them.
type Run struct {
	ID            int64           `json:"id"`
	Pipeline      string          `json:"pipeline"`
	State         engine.RunState `json:"state"`
	Trigger       string          `json:"trigger"`
	Params        json.RawMessage `json:"params,omitempty"`
	IntervalStart *time.Time      `json:"interval_start,omitempty"`
	IntervalEnd   *time.Time      `json:"interval_end,omitempty"`
	BackfillID    int64           `json:"backfill_id,omitempty"`
	CreatedAt     time.Time       `json:"created_at"`
	StartedAt     *time.Time      `json:"started_at,omitempty"`
	FinishedAt    *time.Time      `json:"finished_at,omitempty"`
	TaskCount     int             `json:"task_count"`
	Remaining     int             `json:"remaining"`
	Cancelling    bool            `json:"cancelling,omitempty"`
	// Deadline is when the run should have succeeded by (absent: it has
	// none). DeadlineState is the server's judgement of it (on_track,
	// at_risk, missed, met; absent until first judged), PredictedFinish
	// and CriticalPath the prediction behind it while the run is
	// unfinished.
	Deadline        *time.Time `json:"deadline,omitempty"`
	DeadlineState   string     `json:"deadline_state,omitempty"`
	PredictedFinish *time.Time `json:"predicted_finish,omitempty"`
	CriticalPath    []string   `json:"critical_path,omitempty"`
	// Tasks is filled in only where documented (run detail).
	Tasks []Task `json:"tasks,omitempty"`
}

// Task is the JSON shape of one task of a run.
type Task struct {
	ID         string           `json:"id"`
	Index      int              `json:"index"`
	State      engine.TaskState `json:"state"`
	Attempt    int              `json:"attempt"`
	StartedAt  *time.Time       `json:"started_at,omitempty"`
	FinishedAt *time.Time       `json:"finished_at,omitempty"`
	ReadyAt    *time.Time       `json:"ready_at,omitempty"`
	ExitCode   *int             `json:"exit_code,omitempty"`
	Message    string           `json:"message,omitempty"`
	Result     json.RawMessage  `json:"result,omitempty"`
	// Waiting says why a ready task has not started (for example "pool
	// warehouse: 4 of 4 slots in use"); empty otherwise.
	Waiting string `json:"waiting,omitempty"`
	// NextPoke is when a waiting task's condition is checked next; what
	// the last check saw is in Message.
	NextPoke *time.Time `json:"next_poke,omitempty"`
	Attempts []Attempt  `json:"attempts,omitempty"`
	// Map is, for a map task whose items are known, what its items add
	// up to (see MapState); absent for other tasks and for a map that has
	// not started. Its items are paged by GET .../tasks/{task}/items.
	Map *MapState `json:"map,omitempty"`
}

// Attempt is the JSON shape of one attempt of a task.
type Attempt struct {
	Attempt    int           `json:"attempt"`
	Worker     string        `json:"worker,omitempty"`
	StartedAt  time.Time     `json:"started_at"`
	FinishedAt *time.Time    `json:"finished_at,omitempty"`
	Outcome    store.Outcome `json:"outcome,omitempty"`
	ExitCode   *int          `json:"exit_code,omitempty"`
	Message    string        `json:"message,omitempty"`
}

// Event is the JSON shape of one timeline entry.
type Event struct {
	Seq      int64            `json:"seq"`
	Time     time.Time        `json:"time"`
	Kind     engine.EventKind `json:"kind"`
	Task     string           `json:"task,omitempty"`
	Attempt  int              `json:"attempt,omitempty"`
	ExitCode *int             `json:"exit_code,omitempty"`
	Message  string           `json:"message,omitempty"`
	Actor    string           `json:"actor,omitempty"`
}

// Pipeline is the JSON shape of a loaded pipeline.
type Pipeline struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	File        string `json:"file"`
	// Namespace is the first folder of File under the pipelines directory
	// ("" for a file directly in it): what a namespaced token is confined to.
	Namespace string `json:"namespace"`
	Hash      string `json:"hash"`
	// Error is set when the file on disk is invalid; the last good version
	// (if any) keeps running and being scheduled.
	Error    string `json:"error,omitempty"`
	Removed  bool   `json:"removed,omitempty"` // the file is gone; history stays
	Paused   bool   `json:"paused"`
	Schedule string `json:"schedule,omitempty"` // cron expression
	Timezone string `json:"timezone,omitempty"`
	// Datasets are the datasets whose updates start the pipeline's runs
	// (schedule.datasets); DatasetsAny says one of them suffices.
	Datasets    []string   `json:"datasets,omitempty"`
	DatasetsAny bool       `json:"datasets_any,omitempty"`
	NextRun     *time.Time `json:"next_run,omitempty"`
	Params      []Param    `json:"params,omitempty"`
	Tasks       int        `json:"tasks"`
	LastRuns    []Run      `json:"last_runs,omitempty"`
}

// PipelineList is the answer of GET /pipelines: the pipelines the server
// knows, and the files of its pipelines directory that do not load. A broken
// file is listed, not only logged, so that whoever added it sees why their
// pipeline is missing.
type PipelineList struct {
	Items []Pipeline `json:"items"`
	// Problems are the files that do not load and show on no pipeline: a
	// new file with an error, a second file declaring a name already used.
	// A file whose last good version stays in use shows its errors on that
	// pipeline (Pipeline.Error) instead.
	Problems []FileProblem `json:"problems"`
}

// FileProblem is a pipeline file the server cannot load.
type FileProblem struct {
	File string `json:"file"`
	// Pipeline is the name the file declares, when it could be read.
	Pipeline string `json:"pipeline,omitempty"`
	// Errors are its problems in position order, each as
	// file:line:col: message.
	Errors []string `json:"errors"`
}

// Param is a declared parameter of a pipeline.
type Param struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Default     any    `json:"default,omitempty"`
	Required    bool   `json:"required,omitempty"`
	Description string `json:"description,omitempty"`
	// Secret says the parameter is declared secret: its values (and its
	// default) are shown as "***".
	Secret bool `json:"secret,omitempty"`
}

// Backfill is the JSON shape of a backfill: one run per interval of a range.
type Backfill struct {
	ID         int64      `json:"id"`
	Pipeline   string     `json:"pipeline"`
	From       time.Time  `json:"from"`
	To         time.Time  `json:"to"`
	Parallel   int        `json:"parallel"`
	State      string     `json:"state"` // running, succeeded, failed, cancelled
	Actor      string     `json:"actor,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	Runs       int        `json:"runs"`
	Counts     RunCounts  `json:"counts"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// RunCounts counts runs by state.
type RunCounts map[engine.RunState]int

// Page is a page of a list with the cursor of the next one ("" at the end).
type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

// TriggerRequest is the body of POST /pipelines/{name}/runs. A parameter
// value may be a JSON string, number, bool or array; the API hands it to
// Service.Trigger as text (numbers as written, bools as true/false, arrays
// as JSON), the form `--param name=value` uses too, so both paths check
// values the same way.
type TriggerRequest struct {
	Params map[string]json.RawMessage `json:"params,omitempty"`
}

// MarkRequest is the body of POST /runs/{id}/tasks/{task}/mark.
type MarkRequest struct {
	State engine.TaskState `json:"state"` // succeeded or skipped
}

// Status is the body of the health and readiness answers.
type Status struct {
	Status string `json:"status"` // "ok" (alive) or "ready"
}

// ErrorBody is the JSON of every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail has a stable machine code and a message for people.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Param names the parameter an invalid_params error is about (the
	// first, when it is about several), and Params each parameter's
	// problem, in order: a form shows them beside their fields. Both are
	// absent when the error is about no one parameter (the values together
	// over the size limit, say).
	Param  string         `json:"param,omitempty"`
	Params []ParamProblem `json:"params,omitempty"`
}

// ParamProblem is what is wrong with one parameter of a run.
type ParamProblem struct {
	Param   string `json:"param"`
	Message string `json:"message"`
}

// TimePtr returns nil for the zero time, so JSON leaves it out.
func TimePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// NewRun converts a stored run.
func NewRun(r store.Run) Run {
	return Run{
		ID: r.ID, Pipeline: r.Pipeline, State: r.State, Trigger: r.Trigger, Params: r.Params, BackfillID: r.BackfillID,
		IntervalStart: TimePtr(r.IntervalStart), IntervalEnd: TimePtr(r.IntervalEnd),
		CreatedAt: r.CreatedAt, StartedAt: TimePtr(r.StartedAt), FinishedAt: TimePtr(r.FinishedAt),
		TaskCount: r.TaskCount, Remaining: r.Remaining, Cancelling: r.Cancelling,
		Deadline: TimePtr(r.Deadline), DeadlineState: r.DeadlineState, PredictedFinish: TimePtr(r.PredictedFinish),
		CriticalPath: r.CriticalPath,
	}
}

// NewTask converts a stored task.
func NewTask(t store.TaskRow) Task {
	return Task{
		ID: t.TaskID, Index: t.Index, State: t.State, Attempt: t.Attempt, StartedAt: TimePtr(t.StartedAt),
		FinishedAt: TimePtr(t.FinishedAt), ReadyAt: TimePtr(t.ReadyAt), ExitCode: t.ExitCode,
		Message: t.Message, Result: t.Result,
	}
}

// NewAttempt converts a stored attempt.
func NewAttempt(a store.Attempt) Attempt {
	return Attempt{
		Attempt: a.Attempt, Worker: a.Worker, StartedAt: a.StartedAt, FinishedAt: TimePtr(a.FinishedAt),
		Outcome: a.Outcome, ExitCode: a.ExitCode, Message: a.Message,
	}
}

// NewEvent converts a stored event.
func NewEvent(e store.Event) Event {
	return Event{
		Seq: e.Seq, Time: e.Time, Kind: e.Kind, Task: e.TaskID, Attempt: e.Attempt,
		ExitCode: e.ExitCode, Message: e.Message, Actor: e.Actor,
	}
}

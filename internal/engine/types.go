package engine

import (
	"encoding/json"
	"time"
)

// TaskState is the state of one task of one run.
type TaskState string

// Task states. Terminal states are succeeded, failed, upstream_failed,
// timed_out, cancelled and skipped.
const (
	TaskPending        TaskState = "pending"         // waiting for needs
	TaskReady          TaskState = "ready"           // may start; waiting for a slot
	TaskRunning        TaskState = "running"         // an attempt is in progress
	TaskRetryWait      TaskState = "retry_wait"      // failed an attempt; ready again at ReadyAt
	TaskWaiting        TaskState = "waiting"         // a wait task checks its condition at each poke; holds no slot
	TaskSucceeded      TaskState = "succeeded"       // done
	TaskFailed         TaskState = "failed"          // last attempt failed, retries spent
	TaskUpstreamFailed TaskState = "upstream_failed" // a need ended without success
	TaskTimedOut       TaskState = "timed_out"       // last attempt ran past its timeout, retries spent
	TaskCancelled      TaskState = "cancelled"       // the run was cancelled before the task could finish
	TaskSkipped        TaskState = "skipped"         // an operator skipped it (counts as satisfied downstream)
)

// Terminal reports whether no further event changes the task without an
// operator action.
func (s TaskState) Terminal() bool {
	switch s {
	case TaskSucceeded, TaskFailed, TaskUpstreamFailed, TaskTimedOut, TaskCancelled, TaskSkipped:
		return true
	}
	return false
}

// Satisfies reports whether a task in this state lets its dependents start.
func (s TaskState) Satisfies() bool { return s == TaskSucceeded || s == TaskSkipped }

// RunState is the state of a run.
type RunState string

// Run states.
const (
	RunQueued    RunState = "queued"
	RunRunning   RunState = "running"
	RunSucceeded RunState = "succeeded"
	RunFailed    RunState = "failed"
	RunCancelled RunState = "cancelled"
)

// Terminal reports whether the run has ended.
func (s RunState) Terminal() bool {
	return s == RunSucceeded || s == RunFailed || s == RunCancelled
}

// Task is the mutable state of one task of a run: one row in the store.
type Task struct {
	State TaskState `json:"state"`
	// Attempt is the number of the latest attempt (1-based, 0 before the first
	// start). It only grows, so it names attempts and their logs uniquely.
	Attempt int `json:"attempt"`
	// Spent counts attempts charged to the retry budget. A preempted attempt
	// is handed back and not charged, so Spent can be less than Attempt.
	Spent int `json:"spent"`
	// PendingNeeds counts needs not yet satisfied; the task becomes ready at zero.
	// Keeping the count (rather than re-checking every need) is what makes
	// readiness cost proportional to the edges an event touches.
	PendingNeeds int             `json:"pending_needs"`
	ReadyAt      time.Time       `json:"ready_at,omitzero"` // when a retry_wait task becomes ready
	StartedAt    time.Time       `json:"started_at,omitzero"`
	FinishedAt   time.Time       `json:"finished_at,omitzero"`
	ExitCode     *int            `json:"exit_code,omitempty"` // of the latest finished attempt
	Message      string          `json:"message,omitempty"`   // why it ended as it did
	Result       json.RawMessage `json:"result,omitempty"`    // small JSON published by the task
}

// Run is the mutable state of a run as a whole.
type Run struct {
	State RunState `json:"state"`
	// Remaining counts tasks not yet in a terminal state; the run ends at zero.
	Remaining int `json:"remaining"`
	// Unsuccessful counts terminal tasks that did not satisfy their dependents.
	Unsuccessful int `json:"unsuccessful"`
	// Cancelling is set once a cancel was requested; running tasks are being ended.
	Cancelling bool      `json:"cancelling,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// EventKind names what happened. Events are the engine's input; the same kinds
// (plus a few the engine derives, see Record) make up a run's timeline.
type EventKind string

// Event kinds given to the engine.
const (
	EvRunStarted    EventKind = "run_started"    // a queued run begins
	EvTaskStarted   EventKind = "task_started"   // an executor took a ready task
	EvTaskSucceeded EventKind = "task_succeeded" // the attempt exited 0
	EvTaskFailed    EventKind = "task_failed"    // the attempt exited non-zero or could not start
	EvTaskTimedOut  EventKind = "task_timed_out" // the attempt ran past its timeout and was killed
	EvTaskLost      EventKind = "task_lost"      // the attempt's executor vanished (crash, expired lease)
	EvTaskPreempted EventKind = "task_preempted" // handed back by a draining executor; not charged
	EvTaskCancelled EventKind = "task_cancelled" // the attempt ended because the run was cancelled
	EvRetryDue      EventKind = "retry_due"      // a retry_wait task's backoff elapsed
	EvCancel        EventKind = "cancel"         // someone asked to cancel the run
	// EvWaitPoked: a waiting task's condition was checked and does not hold;
	// Message says what was seen. (A check that finds it holds is
	// EvTaskSucceeded; one that finds it never can is EvTaskFailed.)
	EvWaitPoked EventKind = "wait_poked"

	// Operator actions. They may reopen a finished run.
	EvRetryFailed   EventKind = "retry_failed"   // rerun every unsuccessful task and what follows it, keeping what succeeded
	EvMarkSucceeded EventKind = "mark_succeeded" // treat Task as succeeded; its dependents may start
	EvMarkSkipped   EventKind = "mark_skipped"   // treat Task as skipped; its dependents may start
)

// Record kinds the engine derives and adds to the timeline.
const (
	RecTaskReady          EventKind = "task_ready"
	RecTaskWaiting        EventKind = "task_waiting" // a wait attempt began
	RecRetryScheduled     EventKind = "retry_scheduled"
	RecTaskUpstreamFailed EventKind = "task_upstream_failed"
	RecRunFinished        EventKind = "run_finished"
	// RecTaskPending: a ready task went back to pending, because a need it
	// zips with (Node.Zip) stopped running and will run again.
	RecTaskPending EventKind = "task_pending"
)

// Event is one input to the engine.
type Event struct {
	Kind     EventKind
	Task     int // index in the graph; -1 for run-level events
	Attempt  int // the attempt the event is about (task events other than start)
	ExitCode *int
	Message  string
	Result   json.RawMessage
	Actor    string // who caused it, for operator actions ("" for the system)
	// Hold delays a lost task's next attempt (task_lost only). A server that
	// takes over from a dead one holds the attempts a remote worker may still
	// be running until their lease has surely ended, so that no attempt runs
	// twice at once.
	Hold time.Duration
}

// Record is one entry of a run's timeline, written in the same transaction as
// the state change it explains.
type Record struct {
	Time     time.Time       `json:"time"`
	Kind     EventKind       `json:"kind"`
	Task     int             `json:"task"` // -1 for run-level records
	Attempt  int             `json:"attempt,omitempty"`
	ExitCode *int            `json:"exit_code,omitempty"`
	Message  string          `json:"message,omitempty"`
	Actor    string          `json:"actor,omitempty"`
	Data     json.RawMessage `json:"data,omitempty"`
}

// ActionKind names what the caller must do after a transition.
type ActionKind int

// Action kinds.
const (
	ActReady ActionKind = iota + 1 // Task became ready: queue it for dispatch
	ActWake                        // deliver EvRetryDue for Task at At
	ActKill                        // end Task's running attempt (the run is being cancelled)
	ActDone                        // the run ended in RunState
	ActPoke                        // check the condition of waiting Task's attempt at At (EvWaitPoked or an end)
)

// Action is one thing the caller must do; the engine itself does no I/O.
type Action struct {
	Kind    ActionKind
	Task    int
	Attempt int // ActPoke: the wait attempt to check
	At      time.Time
	State   RunState
}

// TaskChange is the new state of one task after a transition.
type TaskChange struct {
	Index int
	Task  Task
}

// Transition is the outcome of applying an event: what changed, what to record
// in the timeline, and what the caller must do. The store writes Run, Tasks and
// Records in one transaction.
type Transition struct {
	Run     *Run // nil when the run row did not change
	Tasks   []TaskChange
	Records []Record
	Actions []Action
}

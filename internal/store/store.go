// Package store defines how tasuki keeps pipelines, runs, tasks, attempts and
// the event timeline durably. One interface, one driver per database (SQLite in
// internal/store/sqlite, PostgreSQL next), and one conformance suite in
// internal/store/storetest that every driver must pass.
//
// Every state change is written together with the timeline records that
// explain it, in one transaction (Apply), so a run's history is never missing
// the reason for its state.
//
// Times are stored in UTC and truncated to the microsecond (the precision of
// PostgreSQL's timestamptz; SQLite keeps integer microseconds to match), so
// every driver returns the same value. Reads return times in time.UTC; the
// zero time.Time means "not set" and round-trips as the zero time.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
)

// ErrNotFound is returned when the requested row does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a write lost a race (for example a run whose
// state changed under it); callers reload and decide again.
var ErrConflict = errors.New("conflict")

// RecRunCreated is the kind of the timeline record CreateRun writes, so every
// run's timeline starts with its creation.
const RecRunCreated engine.EventKind = "run_created"

// Page sizes: a zero or negative limit means the default, and a larger one is
// capped at the maximum, so no request reads an unbounded number of rows.
const (
	DefaultRunsLimit   = 50
	MaxRunsLimit       = 1000
	DefaultEventsLimit = 1000
	MaxEventsLimit     = 10000
)

// PipelineVersion is one exact pipeline file, kept by content hash so a run
// always knows what it ran, even after the file changed or was removed.
type PipelineVersion struct {
	ID        int64
	Pipeline  string
	Hash      string // hex SHA-256 of Source
	File      string // path the file was loaded from
	Source    []byte
	CreatedAt time.Time
}

// Run is one execution of a pipeline version.
type Run struct {
	ID        int64
	Pipeline  string
	VersionID int64
	// Trigger says what started the run: "manual", "schedule", "backfill", ...
	Trigger string
	// Params are the resolved parameter values, as a JSON object.
	Params json.RawMessage
	// IntervalStart and IntervalEnd are the logical interval of a scheduled
	// run; zero for runs without one.
	IntervalStart time.Time
	IntervalEnd   time.Time
	CreatedAt     time.Time
	TaskCount     int
	engine.Run
}

// TaskRow is one task of one run.
type TaskRow struct {
	RunID  int64
	Index  int    // position in the run's graph
	TaskID string // the id from the pipeline file
	engine.Task
}

// Outcome is how an attempt ended.
type Outcome string

// Attempt outcomes. An attempt still running has the empty outcome.
const (
	OutcomeSucceeded Outcome = "succeeded"
	OutcomeFailed    Outcome = "failed"
	OutcomeTimedOut  Outcome = "timed_out"
	OutcomeLost      Outcome = "lost"
	OutcomePreempted Outcome = "preempted"
	OutcomeCancelled Outcome = "cancelled"
)

// Attempt is one try of one task.
type Attempt struct {
	RunID      int64
	Index      int
	Attempt    int
	Worker     string // who ran it
	StartedAt  time.Time
	FinishedAt time.Time // zero while running
	Outcome    Outcome   // empty while running
	ExitCode   *int
	Message    string
	Log        string // where its log is, as the log store names it
}

// Event is one stored timeline record of a run, in the order it was written.
type Event struct {
	Seq    int64 // increasing within the whole store; orders a run's events
	RunID  int64
	TaskID string // empty for run-level events
	engine.Record
}

// NewRun is what CreateRun writes: the run and all its task rows.
//
// The store sets Run.ID and Run.TaskCount (= len(Tasks)); a zero CreatedAt
// becomes the current time, an empty Run.State becomes queued and an empty
// task State becomes pending. Everything else is written as given.
type NewRun struct {
	Run   Run
	Tasks []TaskRow // Index must be 0..len-1; RunID is filled in by the store
	// Actor is who asked for the run ("" for the system, e.g. the scheduler);
	// it is kept on the run_created record.
	Actor string
}

// Change is one run's state change: the engine's transition plus the attempt
// rows it implies. Apply writes a batch of changes in one transaction.
type Change struct {
	RunID      int64
	Transition engine.Transition
	// Attempts are inserted or, when (RunID, Index, Attempt) exists, updated.
	// An update only sets the fields that are not zero (empty string, zero
	// time, nil exit code), so the end of an attempt can be written without
	// repeating its worker, start time and log. RunID may be left 0.
	Attempts []Attempt
}

// RunFilter selects runs for ListRuns. Results are newest first (by ID).
type RunFilter struct {
	Pipeline string            // empty for all
	States   []engine.RunState // empty for all
	BeforeID int64             // cursor: only runs with ID < BeforeID (0 for no cursor)
	Limit    int               // at most this many (default 50, at most 1000)
}

// Store is the durable state of tasuki. Implementations are safe for
// concurrent use.
type Store interface {
	// PutPipelineVersion stores a pipeline file by hash and returns the stored
	// version; storing the same hash again returns the existing row.
	PutPipelineVersion(ctx context.Context, v PipelineVersion) (PipelineVersion, error)
	// PipelineVersion returns one stored version.
	PipelineVersion(ctx context.Context, id int64) (PipelineVersion, error)

	// CreateRun writes a run, all its tasks and a "run_created" record in one
	// transaction and returns the run with its ID, as Run would read it back.
	// A second scheduled run (Trigger "schedule") for the same pipeline and
	// IntervalStart fails with ErrConflict. A VersionID of 0 means none; a
	// VersionID that does not exist fails with ErrNotFound.
	CreateRun(ctx context.Context, nr NewRun) (Run, error)
	// Run returns one run.
	Run(ctx context.Context, id int64) (Run, error)
	// ListRuns returns runs newest first; the cost does not depend on how
	// many runs exist beyond the page.
	ListRuns(ctx context.Context, f RunFilter) ([]Run, error)
	// Tasks returns every task of a run in index order. Tasks, Attempts and
	// Events return ErrNotFound when the run does not exist.
	Tasks(ctx context.Context, runID int64) ([]TaskRow, error)
	// Attempts returns the attempts of a run (of one task when index >= 0),
	// ordered by task index then attempt.
	Attempts(ctx context.Context, runID int64, index int) ([]Attempt, error)
	// Events returns up to limit timeline events of a run with Seq > afterSeq,
	// in order (limit as DefaultEventsLimit / MaxEventsLimit describe).
	Events(ctx context.Context, runID int64, afterSeq int64, limit int) ([]Event, error)

	// Apply writes a batch of changes (run rows, task rows, records, attempts)
	// in one transaction: all of it or none of it. A change for a run or task
	// that does not exist fails the whole batch with ErrNotFound.
	Apply(ctx context.Context, changes ...Change) error

	// Close releases the store.
	Close() error
}

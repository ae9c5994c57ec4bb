package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
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
	// ListBackfills pages like ListRuns.
	DefaultBackfillsLimit = 50
	MaxBackfillsLimit     = 1000
	// DatasetUpdates pages like ListRuns.
	DefaultDatasetUpdatesLimit = 50
	MaxDatasetUpdatesLimit     = 1000
	// PruneRuns deletes at most this many runs per call: each run takes its
	// tasks, attempts and events with it, and the writer is blocked meanwhile.
	DefaultPruneLimit = 100
	MaxPruneLimit     = 1000
)

// Triggers: what started a run (Run.Trigger). The store gives meaning to two
// of them: TriggerSchedule runs are unique per (pipeline, interval), and
// CreateBackfill writes TriggerBackfill runs. Others may be used freely.
const (
	TriggerManual   = "manual"
	TriggerSchedule = "schedule"
	TriggerBackfill = "backfill"
	TriggerDataset  = "dataset"
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

// Sizes of a page of PipelineVersions.
const (
	DefaultVersionsLimit = 50
	MaxVersionsLimit     = 1000
)

// RunDay counts the runs of a pipeline created on one day, by how they
// stand: what a calendar of the pipeline shows.
type RunDay struct {
	// Day is the midnight that starts the day, in the location asked for.
	Day time.Time
	// Met counts the runs that succeeded on time: by their deadline, or
	// with none. Late counts those that succeeded after it (their deadline
	// state is missed, or they finished after the deadline).
	Met, Late int
	Failed    int
	Cancelled int
	// Running counts the runs queued or running.
	Running int
}

// Total is the number of runs of the day.
func (d RunDay) Total() int { return d.Met + d.Late + d.Failed + d.Cancelled + d.Running }

// MaxRunDays bounds the days of one RunDays call.
const MaxRunDays = 400

// DayBounds returns the midnights, in loc, that bound each day from the one
// holding from to the one holding to: n+1 instants for n days, each day
// [b[i], b[i+1]). Days are calendar days, so one may be 23 or 25 hours
// long across a change of daylight saving time. More than MaxRunDays days,
// or to before from, is an error.
func DayBounds(from, to time.Time, loc *time.Location) ([]time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	if to.Before(from) {
		return nil, fmt.Errorf("days from %s to %s: the end is before the start", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	midnight := func(t time.Time) time.Time {
		t = t.In(loc)
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
	}
	d, last := midnight(from), midnight(to)
	var out []time.Time
	for !d.After(last) {
		if len(out) == MaxRunDays {
			return nil, fmt.Errorf("days from %s to %s: more than %d days", from.Format(time.DateOnly), to.Format(time.DateOnly), MaxRunDays)
		}
		out = append(out, d)
		d = time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc)
	}
	return append(out, d), nil
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
	// BackfillID is the backfill the run belongs to; 0 for none.
	BackfillID int64
	// Deadline is when the run should have succeeded by, fixed when it is
	// created (zero: it has none). DeadlineState, PredictedFinish and
	// CriticalPath are the deadline watcher's latest judgement of it (see
	// Deadlines); CreateRun does not write them.
	Deadline        time.Time
	DeadlineState   string
	PredictedFinish time.Time
	CriticalPath    []string
	engine.Run
}

// TaskRow is one task of one run.
type TaskRow struct {
	RunID  int64
	Index  int    // position in the run's graph
	TaskID string // the id from the pipeline file
	engine.Task
}

// Outcome is how an attempt ended: attempt.Outcome, the one vocabulary the
// executors, the API and the engine share. Its string values are what the
// attempts table holds.
type Outcome = attempt.Outcome

// Attempt outcomes, under the names store code has always used. An attempt
// still running has the empty outcome.
const (
	OutcomeSucceeded = attempt.Succeeded
	OutcomeFailed    = attempt.Failed
	OutcomeTimedOut  = attempt.TimedOut
	OutcomeLost      = attempt.Lost
	OutcomePreempted = attempt.Preempted
	OutcomeCancelled = attempt.Cancelled
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
	// Schedule, when set, makes the run a scheduled run that moves its
	// pipeline's schedule on, in the same transaction: see ScheduleAdvance.
	Schedule *ScheduleAdvance
	// Datasets, when set, makes the run a dataset-started run that moves its
	// pipeline's DatasetCursor on, in the same transaction: see
	// DatasetAdvance. It combines with Schedule (both compare-and-sets must
	// hold).
	Datasets *DatasetAdvance
}

// ScheduleAdvance ties the creation of a scheduled run to its pipeline's
// schedule state, so each interval starts exactly once even when a server
// crashes between creating the run and recording the next fire time, or when
// two servers fire the same tick.
//
// CreateRun checks that the pipeline's NextFire still equals ExpectNextFire (a
// compare-and-set: the zero time matches an unset NextFire) and that the
// pipeline is not paused. When NextFire moved, someone else (another server,
// an earlier attempt that did commit) already fired this tick; when it is
// paused, an operator paused it after the scheduler looked. Either way
// CreateRun fails with ErrConflict and writes nothing: reload and decide
// again. Otherwise CreateRun inserts the run and sets NextFire and
// LastIntervalEnd. (AdvanceSchedule does not look at Paused: what a paused
// pipeline does with the intervals it misses is the scheduler's choice.)
// A run with a Schedule must have Trigger TriggerSchedule (empty becomes it),
// so the unique (pipeline, interval) index backs the compare-and-set up.
type ScheduleAdvance struct {
	ExpectNextFire time.Time
	NextFire       time.Time // the fire time after this one; zero when the schedule has ended
	IntervalEnd    time.Time // becomes LastIntervalEnd; zero means the run's IntervalEnd
}

// DatasetAdvance ties the creation of a dataset-started run to its
// pipeline's DatasetCursor, as ScheduleAdvance ties a scheduled run to
// NextFire: each set of dataset updates starts exactly one run, even when two
// servers see the same updates at once, or a server crashes between creating
// the run and recording what it consumed.
//
// CreateRun checks that the pipeline's DatasetCursor still equals Expect and
// that the pipeline is not paused, and sets the cursor to Next; otherwise it
// fails with ErrConflict and writes nothing (reload and decide again). The
// cursors are compared as values, whatever the order their keys were given
// in; a nil or empty map, and an entry of 0, mean "nothing consumed" (an
// unset cursor). A run with Datasets and no Schedule must have Trigger
// TriggerDataset (empty becomes it); with a Schedule too, it is a scheduled
// run (TriggerSchedule).
type DatasetAdvance struct {
	Expect map[string]int64 // the cursor the caller decided on
	Next   map[string]int64 // the cursor after this run: the newest update ID of each dataset it consumes
}

// PipelineState is one pipeline name's row in the registry: which version of
// its file is current, whether the file on disk is usable, and its schedule.
// There is one row per name ever loaded; a removed file keeps its row (and its
// runs) with Removed set.
type PipelineState struct {
	Name string
	// VersionID is the current good version (0: none yet). It is kept while
	// the file on disk is broken, so the pipeline runs its last good version.
	VersionID int64
	File      string // path the file was loaded from
	Error     string // what is wrong with the file on disk; "" when it loaded
	Removed   bool   // the file is gone; the history stays
	// Paused stops new scheduled runs; it survives reloads and restarts.
	Paused bool
	// NextFire is when the scheduler starts the next interval; zero when
	// nothing is scheduled.
	NextFire time.Time
	// LastIntervalEnd is the end of the newest scheduled interval already
	// started (or deliberately skipped): catch-up after downtime starts there.
	LastIntervalEnd time.Time
	// DatasetCursor is, per dataset, the ID of the newest update already
	// consumed by a dataset-started run of the pipeline (nil: none yet), so
	// the scheduler starts a run for the updates after it only. It is
	// changed only by CreateRun with Datasets and SetDatasetCursor, both
	// compare-and-sets.
	DatasetCursor map[string]int64
	UpdatedAt     time.Time // when the row last changed
}

// DatasetUpdate is one recorded update of a dataset: a producing task's
// success, or an external update (API/CLI). Updates start the pipelines
// scheduled on the dataset and satisfy dataset waits; they are never changed
// and outlive the runs that produced them.
type DatasetUpdate struct {
	// ID is assigned by the store: it increases across all datasets, in the
	// order the updates were recorded, and the updates of one dataset
	// become visible in ID order (a reader that saw ID n of a dataset never
	// later finds a smaller one of it), so it is the cursor of consumers.
	ID      int64
	Dataset string
	At      time.Time // when the dataset was updated; zero: now
	// RunID is the producing run (0 for an external update). It is not a
	// reference the store keeps up: the run may since have been pruned.
	RunID    int64
	Pipeline string // of the producing run ("" external)
	TaskID   string // the producing task ("" external)
	// IntervalStart and IntervalEnd are the producing run's interval; zero
	// if it has none.
	IntervalStart, IntervalEnd time.Time
	Actor                      string          // who recorded an external update ("" for a task's)
	Metadata                   json.RawMessage // a JSON object, or empty
}

// DatasetUpdateFilter selects the updates of one dataset for DatasetUpdates.
// Results are newest first (by ID), or oldest first with Ascending; the
// filters combine with AND.
type DatasetUpdateFilter struct {
	Dataset   string    // required
	Since     time.Time // only updates with At >= Since, to the microsecond (zero: all)
	AfterID   int64     // cursor: only updates with ID > AfterID (0: no cursor)
	BeforeID  int64     // cursor: only updates with ID < BeforeID (0: no cursor)
	Ascending bool      // oldest first
	Limit     int       // at most this many (DefaultDatasetUpdatesLimit, MaxDatasetUpdatesLimit)
}

// Backfill states. A backfill is created running; the server finishes it.
const (
	BackfillRunning   = "running"
	BackfillSucceeded = "succeeded"
	BackfillFailed    = "failed"
	BackfillCancelled = "cancelled"
)

// Backfill is one request to run a pipeline over a past range: one run per
// interval, created together (CreateBackfill), run with their own limit.
type Backfill struct {
	ID       int64
	Pipeline string
	From, To time.Time // the requested range
	// Parallel is how many of its runs may be active at once (0: no limit of
	// its own; the pipeline's limits still apply).
	Parallel   int
	State      string // BackfillRunning, BackfillSucceeded, ...
	Actor      string // who asked for it
	CreatedAt  time.Time
	FinishedAt time.Time // zero while running
	// Runs is how many runs the backfill was given (CreateBackfill's runs
	// plus runs later created with its BackfillID). Pruning old runs does not
	// lower it; BackfillCounts counts the runs that are still kept.
	Runs int
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
	// DatasetUpdates are recorded with the change, so a producing task's
	// success and the updates of what it produced are one commit: neither
	// is ever seen without the other. RunID may be left 0 (it becomes the
	// change's); the store assigns the IDs, in the order given.
	DatasetUpdates []DatasetUpdate
	// Maps are the changes of the run's map tasks (expansions, counts,
	// item rows), written with the rest.
	Maps []MapChange
	// Artifacts are the output files of tasks (or items) that succeeded,
	// recorded with their success. RunID may be left 0.
	Artifacts []ArtifactRef
}

// RunFilter selects runs for ListRuns. Results are newest first (by ID), or
// oldest first with Ascending. The filters combine with AND.
type RunFilter struct {
	Pipeline   string            // empty for all
	States     []engine.RunState // empty for all
	BackfillID int64             // only the runs of this backfill (0 for all)
	Trigger    string            // only runs with this trigger (empty for all)
	BeforeID   int64             // cursor: only runs with ID < BeforeID (0 for no cursor)
	AfterID    int64             // cursor: only runs with ID > AfterID (0 for no cursor)
	// Ascending lists oldest first: a scheduler takes the oldest queued runs
	// of a pipeline or backfill, and pages on with AfterID.
	Ascending bool
	// IntervalStart, when not zero, selects the runs whose IntervalStart is
	// this instant: a pipeline's runs of one interval (a wait on another
	// pipeline's run of the same interval). It needs Pipeline.
	IntervalStart time.Time
	// CreatedFrom and CreatedBefore, when not zero, select the runs
	// created in [CreatedFrom, CreatedBefore): a pipeline's runs of one day
	// (the web UI's calendar links to them). They need Pipeline: the runs
	// are read from a (pipeline, created_at) index, so the cost follows the
	// runs of the range, not the history.
	CreatedFrom   time.Time
	CreatedBefore time.Time
	Limit         int // at most this many (default 50, at most 1000)
}

// CreatedRange reports whether f selects by creation time.
func (f RunFilter) CreatedRange() bool { return !f.CreatedFrom.IsZero() || !f.CreatedBefore.IsZero() }

// ErrFenced is returned by ApplyFenced when the caller's Fence no longer
// matches the leadership: another server has led since (or the caller
// resigned), so the caller is a deposed leader and nothing of its batch was
// written. It must stop acting as leader and call AcquireLeadership again.
var ErrFenced = errors.New("fenced: no longer the leader")

// Leadership is the one leadership row: which server runs the scheduler and
// maintenance, until when, and in which term.
//
// Leadership is a lease with compare-and-set semantics, decided by the
// database (see Store.AcquireLeadership). Expiry is judged with the caller's
// clock (the now argument), not the database's, so tests can inject time:
// servers must keep their clocks roughly synchronised (NTP), and the lease
// TTL must dwarf the skew between them (a TTL of 15 s against the
// milliseconds NTP keeps). A server that leads renews well before expiry
// (every TTL/3, say), and when renewals keep failing it stops leading on its
// own before ExpiresAt by its own clock, less a margin for the skew.
type Leadership struct {
	// Holder is the server that leads, or led last while its lease has not
	// been taken over; "" when nobody holds it (never acquired, or resigned).
	// A holder must name one process incarnation (host, pid and a random
	// part): a restarted server must not inherit its predecessor's term.
	Holder string
	// Address is what the holder advertises (its API URL), so the other
	// servers can forward requests that only the leader serves.
	Address string
	// Term increases by one every time the holder changes (renewals and an
	// expired lease taken back by the same holder keep it); 0 before the first
	// leader. Writes that only the leader may make are fenced with it.
	Term int64
	// ExpiresAt is when the lease ends unless renewed; the zero time when
	// nobody holds it.
	ExpiresAt time.Time
}

// HeldBy reports whether holder holds the leadership at time now (by the
// caller's clock): it is the holder and the lease has not expired.
func (l Leadership) HeldBy(holder string, now time.Time) bool {
	return holder != "" && l.Holder == holder && now.Before(l.ExpiresAt)
}

// Fence is what ApplyFenced checks against the leadership row.
func (l Leadership) Fence() Fence { return Fence{Holder: l.Holder, Term: l.Term} }

// Fence names the leadership a write is made under: the holder and the term
// it acquired (Leadership.Fence). ApplyFenced writes only while the
// leadership row still has this holder and term.
type Fence struct {
	Holder string
	Term   int64
}

// Token is a worker token: a credential a remote worker presents to a server.
// The store never sees the secret itself, only a hash the caller computes
// (SHA-256 of a random 32-byte secret): a leaked database does not leak
// working tokens, and lookups are by hash.
type Token struct {
	ID         int64
	Name       string // unique among tokens that are not revoked, of both kinds
	Kind       TokenKind
	Role       string // of an API token: "viewer", "operator" or "admin"; "" for a worker or agent token
	Namespace  string // of an API token: the namespace it is confined to; "" for all
	CreatedAt  time.Time
	ExpiresAt  time.Time // zero: never; the caller refuses a token past it
	RevokedAt  time.Time // zero while the token is valid
	LastUsedAt time.Time // zero when never used (see TouchToken)
}

// TokenKind says what a token may be used for. The kinds share one table
// and one name space, so a name in the audit log is one credential; a worker
// token cannot call the API, an API token cannot lease work, and an agent
// token can only report its host.
type TokenKind string

// The kinds of token.
const (
	// TokenWorker authenticates a remote worker on the worker protocol.
	TokenWorker TokenKind = "worker"
	// TokenAPI authenticates a person or a script on the API, with a role.
	TokenAPI TokenKind = "api"
	// TokenAgent authenticates a host's 'tasuki agent': it may only send
	// host reports (POST /worker/hosts), never lease work (migration 0015).
	TokenAgent TokenKind = "agent"
)

// NewToken is what IssueToken stores besides the hash.
type NewToken struct {
	Name      string
	Kind      TokenKind // "" is TokenWorker
	Role      string    // required for TokenAPI, empty for TokenWorker and TokenAgent
	Namespace string
	ExpiresAt time.Time // zero: never
}

// AuditEntry is one request that asked to change something: who (the
// credential's name, "" when none was valid), from where, what, and how the
// server answered.
type AuditEntry struct {
	ID     int64 // assigned by AppendAudit, increasing
	At     time.Time
	Actor  string
	Remote string // the client's address as the server saw it
	Method string
	Route  string // the route pattern, e.g. "POST /api/v1/runs/{id}/cancel"
	Target string // the ids the request named, e.g. "run=7 task=load"
	Status int    // the HTTP status of the answer
}

// Store is the durable state of tasuki. Implementations are safe for
// concurrent use.
type Store interface {
	// Secrets keeps the sealed secrets of the secret store.
	Secrets
	// Users keeps the local users and the sessions of the web UI.
	Users
	// SLOs keeps what freshness objectives decided.
	SLOs
	// Notifications keeps the outbox of notifications and the incidents
	// of runs.
	Notifications
	// Deadlines keeps runs' deadline states and predictions, and the
	// durations of recent successful attempts they are predicted from.
	Deadlines
	// Maps keeps the items of map tasks (written through Apply).
	Maps
	// MapLeases keeps which remote workers were handed which items of
	// running maps.
	MapLeases
	// Cache keeps the content cache's entries.
	Cache
	// Artifacts keeps which runs' tasks produced which artifact files
	// (written through Apply).
	Artifacts
	// Inventory keeps what hosts report of themselves, and its history.
	Inventory
	// Logs keeps attempt logs as chunks, for servers that share the store.
	Logs

	// PutPipelineVersion stores a pipeline file by hash and returns the stored
	// version; storing the same hash again returns the existing row.
	PutPipelineVersion(ctx context.Context, v PipelineVersion) (PipelineVersion, error)
	// PipelineVersion returns one stored version.
	PipelineVersion(ctx context.Context, id int64) (PipelineVersion, error)
	// PipelineVersions returns up to limit (DefaultVersionsLimit when 0 or
	// less, at most MaxVersionsLimit) stored versions of a pipeline, newest
	// first, those with an ID below beforeID when beforeID > 0: its file's
	// history. Their Source is left nil (read one with PipelineVersion), so
	// a page costs the same for large files.
	PipelineVersions(ctx context.Context, pipeline string, beforeID int64, limit int) ([]PipelineVersion, error)
	// RunDays counts a pipeline's runs by the day they were created, in
	// loc, one RunDay for each day from the one holding from to the one
	// holding to (both included; at most MaxRunDays), days without runs
	// included. It is one aggregate over the runs of the range, read from
	// the (pipeline, created_at) index.
	RunDays(ctx context.Context, pipeline string, from, to time.Time, loc *time.Location) ([]RunDay, error)

	// CreateRun writes a run, all its tasks and a "run_created" record in one
	// transaction and returns the run with its ID, as Run would read it back.
	// A second scheduled run (Trigger "schedule") for the same pipeline and
	// IntervalStart fails with ErrConflict. A VersionID of 0 means none; a
	// VersionID that does not exist fails with ErrNotFound. So does a
	// BackfillID that does not exist (a run added to a backfill later, such as
	// a rerun of one of its intervals; the backfill's Runs counts it).
	//
	// With nr.Schedule set, CreateRun also moves the pipeline's schedule on,
	// in the same transaction, or fails with ErrConflict and writes nothing;
	// see ScheduleAdvance. With nr.Datasets set, likewise for the pipeline's
	// DatasetCursor (see DatasetAdvance); with both, both compare-and-sets
	// must hold. Either fails with ErrNotFound when the pipeline has no
	// PipelineState.
	CreateRun(ctx context.Context, nr NewRun) (Run, error)
	// Run returns one run.
	Run(ctx context.Context, id int64) (Run, error)
	// ListRuns returns one page of runs, newest first (oldest first with
	// f.Ascending). Every filter is served by an index read from the cursor,
	// so the cost does not depend on how many runs exist beyond the page.
	// (The exception: Trigger combined with States reads one of them from an
	// index and filters on the other.) f.IntervalStart reads the runs of
	// that pipeline and interval from a (pipeline, interval start) index and
	// filters on the others: there are few of them (reruns, backfills).
	// f.IntervalStart without f.Pipeline is an error; so is a created range
	// (f.CreatedFrom, f.CreatedBefore) without it, which is read from the
	// (pipeline, created_at) index and filters on the others.
	ListRuns(ctx context.Context, f RunFilter) ([]Run, error)
	// CountRuns counts the runs of a pipeline ("" for all pipelines) in any of
	// states (empty for all). It is meant for active states (how many runs
	// are queued or running, for a max-active-runs limit): the cost is the
	// number of runs counted, read from an index.
	CountRuns(ctx context.Context, pipeline string, states []engine.RunState) (int, error)
	// Tasks returns every task of a run in index order. Tasks, Attempts and
	// Events return ErrNotFound when the run does not exist.
	Tasks(ctx context.Context, runID int64) ([]TaskRow, error)
	// Attempts returns the attempts of a run (of one task when index >= 0),
	// ordered by task index then attempt.
	Attempts(ctx context.Context, runID int64, index int) ([]Attempt, error)
	// Events returns up to limit timeline events of a run with Seq > afterSeq,
	// in order (limit as DefaultEventsLimit / MaxEventsLimit describe).
	Events(ctx context.Context, runID int64, afterSeq int64, limit int) ([]Event, error)

	// Apply writes a batch of changes (run rows, task rows, records, attempts,
	// dataset updates) in one transaction: all of it or none of it. A change
	// for a run or task that does not exist fails the whole batch with
	// ErrNotFound. A dataset update that RecordDatasetUpdate would refuse
	// (metadata that is not a JSON object, say) fails the whole batch before
	// anything is written; callers check what a task produced with
	// PrepareDatasetUpdate first, so a bad file cannot lose a task's end.
	Apply(ctx context.Context, changes ...Change) error

	// PutPipelineState creates or updates the registry row of ps.Name: its
	// VersionID, File, Error, Removed and UpdatedAt (zero: now). It never
	// changes Paused, NextFire, LastIntervalEnd or DatasetCursor (a reload
	// must not reset a schedule; use SetPaused, SetNextFire, AdvanceSchedule
	// and SetDatasetCursor): a new row starts unpaused with nothing
	// scheduled and nothing consumed. A VersionID of 0 keeps the
	// stored one, so recording a broken or removed file keeps the last good
	// version. A VersionID that does not exist fails with ErrNotFound, one of
	// another pipeline with an error.
	PutPipelineState(ctx context.Context, ps PipelineState) error
	// PipelineState returns the registry row of a pipeline (ErrNotFound when
	// it was never put).
	PipelineState(ctx context.Context, name string) (PipelineState, error)
	// PipelineStates returns every registry row, by name. There is one per
	// pipeline file ever loaded, so the list is not paginated.
	PipelineStates(ctx context.Context) ([]PipelineState, error)
	// SetPaused pauses or unpauses a pipeline's schedule (ErrNotFound for an
	// unknown pipeline).
	SetPaused(ctx context.Context, name string, paused bool) error
	// SetNextFire sets a pipeline's next fire time unconditionally (zero:
	// nothing scheduled), keeping LastIntervalEnd: for a schedule that was
	// added, changed or removed. Firing a tick uses CreateRun with a Schedule
	// or AdvanceSchedule, which compare and set.
	SetNextFire(ctx context.Context, name string, next time.Time) error
	// AdvanceSchedule moves a pipeline's schedule on without creating a run:
	// for intervals that catch-up skips. Like CreateRun with a Schedule, it
	// sets NextFire to next only if NextFire still equals expect (otherwise
	// ErrConflict, nothing written), and sets LastIntervalEnd to lastEnd
	// (zero keeps it). ErrNotFound for an unknown pipeline.
	AdvanceSchedule(ctx context.Context, name string, expect, next, lastEnd time.Time) error
	// SetDatasetCursor is the compare-and-set of CreateRun with Datasets
	// without a run: it sets the pipeline's DatasetCursor to next only if it
	// still equals expect (compared as DatasetAdvance says), otherwise
	// ErrConflict and nothing written. It is how a pipeline that first gets
	// a dataset schedule starts from the updates that exist then, rather
	// than from every update ever recorded. It does not look at Paused.
	// ErrNotFound for an unknown pipeline.
	SetDatasetCursor(ctx context.Context, pipeline string, expect, next map[string]int64) error

	// RecordDatasetUpdate records an update of a dataset with one insert
	// and returns it as DatasetUpdates reads it back, with its ID and At
	// (zero: now). It is for external updates (the API, the CLI); a task's
	// updates go with its success through Change.DatasetUpdates. The
	// dataset name must be non-empty text (CheckText), the metadata empty
	// or a JSON object (CheckJSON). Concurrent writers of one dataset are
	// serialised until they commit, so its IDs become visible in order.
	RecordDatasetUpdate(ctx context.Context, u DatasetUpdate) (DatasetUpdate, error)
	// DatasetUpdates returns one page of the updates of f.Dataset, newest
	// first (oldest first with f.Ascending), read from a (dataset, id)
	// index from the cursor: the cost does not depend on how many updates
	// exist beyond the page. With f.Since, it reads the (dataset, at)
	// index from Since instead, and orders what it finds by ID: At is the
	// writer's time and need not grow with the ID, so the updates since a
	// time are not a range of IDs. That costs the number of updates at or
	// after Since, which is small for what it is meant for (has the dataset
	// been updated in this interval?). An empty f.Dataset is an error.
	DatasetUpdates(ctx context.Context, f DatasetUpdateFilter) ([]DatasetUpdate, error)
	// LatestDatasetUpdates returns the newest update (highest ID) of each
	// named dataset, by name; datasets without updates are absent. With no
	// names it returns that of every dataset that has one, found by
	// skipping through the (dataset, id) index one dataset at a time. Each
	// dataset costs an index lookup or two, whatever its number of updates:
	// it is what the scheduler reads at every tick.
	LatestDatasetUpdates(ctx context.Context, names []string) (map[string]DatasetUpdate, error)

	// CreateBackfill writes a backfill and all its runs in one transaction:
	// all of them or none. Each run is created as CreateRun would (its tasks,
	// its run_created record) with Trigger TriggerBackfill (empty becomes it;
	// another is an error), BackfillID set, Pipeline b.Pipeline (empty becomes
	// it) and Actor b.Actor when empty; a run may not carry a Schedule. The
	// store sets b.ID, b.Runs, an empty State (running) and a zero CreatedAt
	// (now). It returns the backfill as Backfill reads it back; the runs are
	// found with ListRuns (RunFilter.BackfillID), in the order given.
	CreateBackfill(ctx context.Context, b Backfill, runs []NewRun) (Backfill, error)
	// Backfill returns one backfill.
	Backfill(ctx context.Context, id int64) (Backfill, error)
	// ListBackfills returns backfills newest first, of one pipeline ("" for
	// all), with ID < beforeID (0: no cursor); limit as DefaultBackfillsLimit
	// and MaxBackfillsLimit describe.
	ListBackfills(ctx context.Context, pipeline string, beforeID int64, limit int) ([]Backfill, error)
	// SetBackfillState records a backfill's state and when it finished (zero
	// while running). Any state may follow any other (retrying a failed
	// backfill's runs may make it running again). ErrNotFound for an unknown
	// backfill.
	SetBackfillState(ctx context.Context, id int64, state string, finishedAt time.Time) error
	// BackfillCounts counts a backfill's runs by state, from an index,
	// without reading the runs. States without runs are absent.
	BackfillCounts(ctx context.Context, id int64) (map[engine.RunState]int, error)

	// PruneRuns deletes up to limit finished runs (succeeded, failed or
	// cancelled) created before createdBefore, oldest first, with their tasks,
	// attempts and events, in one transaction, and returns their IDs (so the
	// caller can delete their logs). Unfinished runs are never deleted, however
	// old. limit as DefaultPruneLimit and MaxPruneLimit describe: callers loop
	// until fewer than limit come back, so the writer is never blocked for
	// long. Pipeline versions and backfills are kept.
	PruneRuns(ctx context.Context, createdBefore time.Time, limit int) ([]int64, error)

	// AcquireLeadership is one compare-and-set of the leadership row, in one
	// statement or transaction: when the row has no holder, or its lease has
	// expired (ExpiresAt <= now), or holder already holds it, holder becomes
	// or stays the leader with ExpiresAt = now+ttl and Address = address; the
	// Term increases by one when the holder changes. Otherwise the row is left
	// alone. Either way it returns the leadership as it now stands and no
	// error: the caller leads when the result's Holder is holder. Of several
	// servers racing for a free or expired lease, exactly one wins.
	//
	// now is the caller's clock (see Leadership for the clock rules); holder
	// must not be empty, ttl must be positive and now must be set.
	AcquireLeadership(ctx context.Context, holder, address string, ttl time.Duration, now time.Time) (Leadership, error)
	// ResignLeadership gives the leadership up at once when holder still
	// holds it in term (expired or not): the row is left with no holder and
	// no expiry, keeping the term, so the next AcquireLeadership by anyone
	// (holder included) starts a new term, and ApplyFenced with the old
	// fence fails. When holder no longer holds it in term, it does nothing
	// and returns nil.
	ResignLeadership(ctx context.Context, holder string, term int64) error
	// Leader returns the leadership row as it stands. Its lease may have
	// expired: compare ExpiresAt with the caller's clock (Leadership.HeldBy).
	Leader(ctx context.Context) (Leadership, error)
	// ApplyFenced is Apply for writes only the leader may make: in the same
	// transaction it first checks that the leadership row still has
	// fence.Holder and fence.Term, and otherwise fails with ErrFenced and
	// writes nothing. (It checks holder and term, not expiry: a leader whose
	// lease ran out but was not taken over is still the only one that led
	// since, so its writes are safe; a leader must stop on its own when its
	// lease ends, see Leadership.) A concurrent AcquireLeadership by another
	// holder is ordered before or after the whole batch, never in between.
	// With no changes it only checks the fence.
	ApplyFenced(ctx context.Context, fence Fence, changes ...Change) error

	// CreateToken stores a new worker token by the hash of its secret (the
	// store keeps only these bytes; a zero now means the current time) and
	// returns it. The name must be non-empty valid UTF-8 without NUL bytes
	// and unique among tokens that are not revoked, and the hash must be
	// non-empty and never stored before (revoked tokens included): otherwise
	// ErrConflict.
	CreateToken(ctx context.Context, name string, hash []byte, now time.Time) (Token, error)
	// IssueToken is CreateToken for a token of any kind: an API token
	// carries a role (viewer, operator or admin) and may be confined to a
	// namespace and given an expiry; a worker token has neither role nor
	// namespace. Invalid combinations are errors (not ErrConflict).
	IssueToken(ctx context.Context, nt NewToken, hash []byte, now time.Time) (Token, error)
	// RevokeToken revokes the valid token called name at now (zero: the
	// current time); ErrNotFound when there is none. A revoked token stays
	// listed, and its name may be given to a new token.
	RevokeToken(ctx context.Context, name string, now time.Time) error
	// TokenByHash returns the valid (not revoked) token with this hash, or
	// ErrNotFound: how a server authenticates a worker's request. It is one
	// index lookup.
	TokenByHash(ctx context.Context, hash []byte) (Token, error)
	// ListTokens returns every token ever created, revoked ones included, by
	// ID. Tokens are created by operators, so the list is not paginated.
	ListTokens(ctx context.Context) ([]Token, error)
	// TouchToken records that token id was used at now: LastUsedAt becomes
	// now unless it is already later (it never moves back). ErrNotFound for
	// an unknown id. It is a write: callers throttle it (at most once a
	// minute per token, say), not call it on every request.
	TouchToken(ctx context.Context, id int64, now time.Time) error

	// AppendAudit adds an entry to the audit log (a zero At means the
	// current time) and returns it with its ID. Text fields must be valid
	// UTF-8 without NUL bytes.
	AppendAudit(ctx context.Context, e AuditEntry) (AuditEntry, error)
	// ListAudit returns up to limit entries newest first, those with an ID
	// below before (0: from the newest), so a page's last ID is the next
	// page's before. limit <= 0 means 50.
	ListAudit(ctx context.Context, before int64, limit int) ([]AuditEntry, error)

	// Close releases the store.
	Close() error
}

package timeline

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Source is what a timeline is read from: the four reads of a run that a
// store.Store has. Events are read in pages, so a run with many records
// costs memory for one page only.
type Source interface {
	Run(ctx context.Context, id int64) (store.Run, error)
	Tasks(ctx context.Context, runID int64) ([]store.TaskRow, error)
	Attempts(ctx context.Context, runID int64, index int) ([]store.Attempt, error)
	Events(ctx context.Context, runID int64, afterSeq int64, limit int) ([]store.Event, error)
}

// Record kinds written outside the engine that the timeline words
// specially. The parts of tasuki that decide them own the names; they are
// repeated here by value so that reading a timeline depends on none of
// those parts, and a kind nobody here knows is still shown (generically).
const (
	KindDeadlineOnTrack engine.EventKind = "deadline_on_track"
	KindDeadlineAtRisk  engine.EventKind = "deadline_at_risk"
	KindDeadlineMissed  engine.EventKind = "deadline_missed"
	KindDeadlineMet     engine.EventKind = "deadline_met"
	KindAlertSent       engine.EventKind = "alert_sent"
	KindAlertFailed     engine.EventKind = "alert_failed"
	KindRepairWatching  engine.EventKind = "repair_watching"
	KindRepairStarted   engine.EventKind = "repair_started"
	KindRepairGaveUp    engine.EventKind = "repair_gave_up"
)

// Defaults of Options.
const (
	DefaultLogLines = 20   // lines of each failed attempt's log
	DefaultLogTails = 20   // failed attempts whose log is shown
	DefaultMaxRows  = 1000 // Markdown event rows before only what matters is listed
)

// Bounds that keep an export readable and its reading cheap, whatever the
// run holds.
const (
	maxLogBytes    = 64 << 10 // read from the end of a log for its tail
	maxLineBytes   = 1000     // a log line in a tail is cut here
	maxResultBytes = 4 << 10  // a result larger than this is shown cut, as text
	maxListed      = 100      // failed tasks and operator actions named in the summary
)

// Options tunes a timeline. The zero value is usable.
type Options struct {
	// Logs is where attempt logs are read, for the tails of failed
	// attempts; nil shows none.
	Logs logs.Store
	// Location is the time zone of the Markdown's times (default UTC).
	// JSON times are always UTC.
	Location *time.Location
	// Now is the clock, for how long an unfinished run has been going
	// (default time.Now).
	Now func() time.Time
	// LogLines is how many of the last lines of each failed attempt's log
	// are shown (default DefaultLogLines).
	LogLines int
	// LogTails is how many failed attempts get their log's tail, the
	// first ones in task and attempt order (default DefaultLogTails).
	LogTails int
	// MaxRows is the Markdown's row budget for its table of events
	// (default DefaultMaxRows). A run with more records than this has its
	// stretches of routine records counted on one line each, and past
	// MaxRows rows only failures, operator actions, deadlines, alerts,
	// repairs and the end are listed (up to twice as many rows again), the
	// rest counted.
	MaxRows int
	// PageSize is how many records are read from the store at once
	// (default store.MaxEventsLimit).
	PageSize int
}

func (o Options) withDefaults() Options {
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LogLines <= 0 {
		o.LogLines = DefaultLogLines
	}
	if o.LogTails <= 0 {
		o.LogTails = DefaultLogTails
	}
	if o.MaxRows <= 0 {
		o.MaxRows = DefaultMaxRows
	}
	if o.PageSize <= 0 || o.PageSize > store.MaxEventsLimit {
		o.PageSize = store.MaxEventsLimit
	}
	return o
}

// Timeline is one run read for export: the run, its tasks and attempts,
// and what a first pass over its records found (counts, the deadline,
// operator actions). The records themselves are read again, a page at a
// time, by WriteMarkdown and WriteJSON, up to the last one the first pass
// saw, so both parts of an export agree even while the run goes on.
type Timeline struct {
	src      Source
	opts     Options
	run      store.Run
	tasks    []store.TaskRow
	attempts []store.Attempt
	byKey    map[attemptKey]int // index into attempts
	scan     scan
}

type attemptKey struct{ task, attempt int }

// scan is what the first pass over a run's records found.
type scan struct {
	lastSeq     int64
	events      int64
	kinds       map[engine.EventKind]int64
	creator     string       // actor of run_created
	waits       map[int]bool // tasks with a task_waiting record: waits
	deadline    *store.Event // the newest deadline record
	firstAtRisk time.Time
	actions     []store.Event // operator actions, the first maxListed
	moreActions int
}

// Load reads run runID from src and makes a first pass over its records.
// A run that does not exist is an error matching store.ErrNotFound.
func Load(ctx context.Context, src Source, runID int64, opts Options) (*Timeline, error) {
	t := &Timeline{src: src, opts: opts.withDefaults(), byKey: map[attemptKey]int{}}
	var err error
	if t.run, err = src.Run(ctx, runID); err != nil {
		return nil, fmt.Errorf("timeline of run %d: %w", runID, err)
	}
	// The records first: attempts and tasks read after them are at least
	// as new, so every attempt a record names is found.
	if err := t.firstPass(ctx); err != nil {
		return nil, err
	}
	if t.tasks, err = src.Tasks(ctx, runID); err != nil {
		return nil, fmt.Errorf("timeline of run %d: %w", runID, err)
	}
	if t.attempts, err = src.Attempts(ctx, runID, -1); err != nil {
		return nil, fmt.Errorf("timeline of run %d: %w", runID, err)
	}
	for i, a := range t.attempts {
		t.byKey[attemptKey{a.Index, a.Attempt}] = i
	}
	return t, nil
}

// each calls fn with every record of the run the first pass saw, in order,
// reading them a page at a time.
func (t *Timeline) each(ctx context.Context, upTo int64, fn func(e store.Event) error) error {
	after := int64(0)
	for {
		page, err := t.src.Events(ctx, t.run.ID, after, t.opts.PageSize)
		if err != nil {
			return fmt.Errorf("timeline of run %d: %w", t.run.ID, err)
		}
		for _, e := range page {
			if upTo > 0 && e.Seq > upTo {
				return nil
			}
			if err := fn(e); err != nil {
				return err
			}
			after = e.Seq
		}
		if len(page) < t.opts.PageSize {
			return nil
		}
	}
}

func (t *Timeline) firstPass(ctx context.Context) error {
	s := &t.scan
	s.kinds = map[engine.EventKind]int64{}
	s.waits = map[int]bool{}
	err := t.each(ctx, 0, func(e store.Event) error {
		s.lastSeq = e.Seq
		s.events++
		s.kinds[e.Kind]++
		switch {
		case e.Kind == store.RecRunCreated && s.creator == "":
			s.creator = e.Actor
		case e.Kind == engine.RecTaskWaiting:
			s.waits[e.Task] = true
		case isDeadline(e.Kind):
			d := e
			s.deadline = &d
			if e.Kind == KindDeadlineAtRisk && s.firstAtRisk.IsZero() {
				s.firstAtRisk = e.Time
			}
		case isOperatorAction(e.Kind):
			if len(s.actions) < maxListed {
				s.actions = append(s.actions, e)
			} else {
				s.moreActions++
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if s.events == 0 {
		// An empty page does not say whether the run exists; Run did.
		s.lastSeq = -1
	}
	return nil
}

// isDeadline reports whether kind is one of the deadline records.
func isDeadline(kind engine.EventKind) bool {
	switch kind {
	case KindDeadlineOnTrack, KindDeadlineAtRisk, KindDeadlineMissed, KindDeadlineMet:
		return true
	}
	return false
}

// isOperatorAction reports whether kind is something a person asked for.
func isOperatorAction(kind engine.EventKind) bool {
	switch kind {
	case engine.EvCancel, engine.EvRetryFailed, engine.EvMarkSucceeded, engine.EvMarkSkipped:
		return true
	}
	return false
}

// records calls fn with each record the first pass saw, and how long after
// the previous record it came (0 for the first).
func (t *Timeline) records(ctx context.Context, fn func(e store.Event, sincePrev time.Duration) error) error {
	if t.scan.lastSeq < 0 {
		return nil
	}
	var prev time.Time
	return t.each(ctx, t.scan.lastSeq, func(e store.Event) error {
		var gap time.Duration
		if !prev.IsZero() {
			gap = e.Time.Sub(prev)
		}
		prev = e.Time
		return fn(e, gap)
	})
}

// origin is what "since the start" counts from: the run's start, or its
// creation while it has not started.
func (t *Timeline) origin() time.Time {
	if !t.run.StartedAt.IsZero() {
		return t.run.StartedAt
	}
	return t.run.CreatedAt
}

// attemptOf returns the attempt a record is about, if it names one.
func (t *Timeline) attemptOf(e store.Event) (store.Attempt, bool) {
	if e.Task < 0 || e.Attempt == 0 {
		return store.Attempt{}, false
	}
	i, ok := t.byKey[attemptKey{e.Task, e.Attempt}]
	if !ok {
		return store.Attempt{}, false
	}
	return t.attempts[i], true
}

// attemptDuration is how long an attempt took, from its start to its end;
// false while it has not ended.
func attemptDuration(a store.Attempt) (time.Duration, bool) {
	if a.StartedAt.IsZero() || a.FinishedAt.IsZero() {
		return 0, false
	}
	return a.FinishedAt.Sub(a.StartedAt), true
}

// arrived is what a task's attempt published (a wait: what arrived), when
// it is the task's latest attempt and it succeeded: the store keeps the
// result of the latest attempt only.
func (t *Timeline) arrived(task, attemptNo int) json.RawMessage {
	if task < 0 || task >= len(t.tasks) {
		return nil
	}
	row := t.tasks[task]
	if row.Attempt != attemptNo || row.State != engine.TaskSucceeded || len(row.Result) == 0 {
		return nil
	}
	return row.Result
}

// failedAttempt reports whether an attempt's outcome is a failure whose
// log tells why.
func failedAttempt(a store.Attempt) bool {
	switch a.Outcome {
	case attempt.Failed, attempt.TimedOut, attempt.Lost:
		return true
	}
	return false
}

// tailed is the set of attempts whose log's tail is shown: the failed
// attempts that have a log (waits and attempts that never started have
// none), the first LogTails of them in task and attempt order.
func (t *Timeline) tailed() map[attemptKey]bool {
	out := map[attemptKey]bool{}
	for _, a := range t.attempts {
		if len(out) == t.opts.LogTails {
			break
		}
		if t.hasTail(a) {
			out[attemptKey{a.Index, a.Attempt}] = true
		}
	}
	return out
}

// hasTail reports whether attempt a is one whose log's tail is worth
// showing: it failed, and it has a log to read.
func (t *Timeline) hasTail(a store.Attempt) bool {
	return t.opts.Logs != nil && failedAttempt(a) && a.Log != "" && !t.scan.waits[a.Index]
}

// tailCandidates counts the attempts that would get a log tail without the
// LogTails bound.
func (t *Timeline) tailCandidates() int {
	n := 0
	for _, a := range t.attempts {
		if t.hasTail(a) {
			n++
		}
	}
	return n
}

// taskID names task i of the run.
func (t *Timeline) taskID(i int) string {
	if i < 0 || i >= len(t.tasks) {
		return ""
	}
	return t.tasks[i].TaskID
}

// logTail reads the tail of attempt a's log.
func (t *Timeline) logTail(ctx context.Context, a store.Attempt) LogTail {
	lines, cut, err := readTail(ctx, t.opts.Logs, logs.Key{RunID: t.run.ID, TaskID: t.taskID(a.Index), Attempt: a.Attempt}, t.opts.LogLines)
	if err != nil {
		// The cause may name server paths; a reader needs only to know.
		return LogTail{Lines: []string{}, Error: "the log could not be read"}
	}
	if lines == nil {
		lines = []string{}
	}
	return LogTail{Lines: lines, Truncated: cut}
}

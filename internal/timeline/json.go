package timeline

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Document is the JSON form of a run's timeline, what GET
// /api/v1/runs/{id}/timeline answers and 'tasuki timeline RUN --format
// json' prints. WriteJSON writes its fields in this order, the events last,
// as they are read: a client can act on the run, its summary and its
// attempts before the events have all arrived. Times are UTC; durations
// are whole milliseconds.
type Document struct {
	Run Run `json:"run"`
	// Deadline is the run's standing against its deadline, from its
	// deadline records; absent when it has none.
	Deadline *Deadline `json:"deadline,omitempty"`
	Summary  Summary   `json:"summary"`
	// Attempts are every attempt of the run, by task then attempt number.
	Attempts []Attempt `json:"attempts"`
	// Events are every record of the run's timeline, oldest first.
	Events []Event `json:"events"`
}

// Run is the run a timeline tells of.
type Run struct {
	ID       int64           `json:"id"`
	Pipeline string          `json:"pipeline"`
	State    engine.RunState `json:"state"`
	Trigger  string          `json:"trigger"`
	// Actor is who asked for the run (absent for the scheduler).
	Actor         string     `json:"actor,omitempty"`
	BackfillID    int64      `json:"backfill_id,omitempty"`
	IntervalStart *time.Time `json:"interval_start,omitempty"`
	IntervalEnd   *time.Time `json:"interval_end,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	StartedAt     *time.Time `json:"started_at,omitempty"`
	FinishedAt    *time.Time `json:"finished_at,omitempty"`
	// DurationMS is how long it ran, from its start to its end (to the
	// export while it runs); absent before it started.
	DurationMS *int64 `json:"duration_ms,omitempty"`
}

// Deadline is a run's standing against its deadline: the deadline the run
// was given, the deadline watcher's latest judgement of it, and its newest
// deadline record (deadline_on_track, deadline_at_risk, deadline_missed,
// deadline_met).
type Deadline struct {
	// Deadline is when the run should have succeeded by; from the run, or
	// else from the newest deadline record's data ("deadline").
	Deadline *time.Time `json:"deadline,omitempty"`
	// State is on_track, at_risk, missed or met; absent until the run is
	// first judged.
	State string `json:"state,omitempty"`
	// Since is when the newest deadline record was written, Message what
	// it says (the predicted finish, the critical path, what it waits on).
	Since   *time.Time `json:"since,omitempty"`
	Message string     `json:"message,omitempty"`
	// PredictedFinish and CriticalPath are the latest prediction: when the
	// run will finish and the task ids that decide it, in the order they
	// run (none once it finished).
	PredictedFinish *time.Time `json:"predicted_finish,omitempty"`
	CriticalPath    []string   `json:"critical_path,omitempty"`
	// FirstAtRisk is when the run was first found at risk, if ever.
	FirstAtRisk *time.Time `json:"first_at_risk,omitempty"`
}

// Summary counts what happened in a run.
type Summary struct {
	// Tasks is how many tasks the run has; TaskStates counts them by state.
	Tasks      int                      `json:"tasks"`
	TaskStates map[engine.TaskState]int `json:"task_states"`
	// Attempts counts every attempt, FailedAttempts those that failed,
	// timed out or were lost (retried or not).
	Attempts       int `json:"attempts"`
	FailedAttempts int `json:"failed_attempts"`
	// Retries counts the retries the tasks' retry policies scheduled
	// (retry_scheduled records).
	Retries int `json:"retries"`
	// Failed are the tasks that ended failed or timed out, in task
	// order: the first 100 (FailedOmitted counts the others).
	Failed        []Failure `json:"failed"`
	FailedOmitted int       `json:"failed_omitted,omitempty"`
	// OperatorActions are what people asked of the run (cancel,
	// retry_failed, mark_succeeded, mark_skipped), oldest first: the first
	// 100 (OperatorActionsOmitted counts the others).
	OperatorActions        []Action `json:"operator_actions"`
	OperatorActionsOmitted int      `json:"operator_actions_omitted,omitempty"`
	// AlertsSent and AlertsFailed count the alert_sent and alert_failed
	// records.
	AlertsSent   int64 `json:"alerts_sent"`
	AlertsFailed int64 `json:"alerts_failed"`
	// Events counts the records of the timeline, Kinds each kind of them.
	Events int64                      `json:"events"`
	Kinds  map[engine.EventKind]int64 `json:"kinds"`
	// LogTailsOmitted counts the failed attempts past the first 20 whose
	// log is not included.
	LogTailsOmitted int `json:"log_tails_omitted,omitempty"`
}

// Failure is a task that ended without success.
type Failure struct {
	Task     string           `json:"task"`
	State    engine.TaskState `json:"state"`
	Attempt  int              `json:"attempt"`
	ExitCode *int             `json:"exit_code,omitempty"`
	Message  string           `json:"message,omitempty"`
}

// Action is something a person asked of the run.
type Action struct {
	Time    time.Time        `json:"time"`
	Kind    engine.EventKind `json:"kind"`
	Task    string           `json:"task,omitempty"`
	Actor   string           `json:"actor,omitempty"`
	Message string           `json:"message,omitempty"`
}

// Attempt is one attempt of one task.
type Attempt struct {
	Task    string `json:"task"`
	Attempt int    `json:"attempt"`
	// Wait is set for an attempt of a wait task: a series of checks, with
	// no process and no log.
	Wait       bool          `json:"wait,omitempty"`
	Worker     string        `json:"worker,omitempty"`
	StartedAt  time.Time     `json:"started_at"`
	FinishedAt *time.Time    `json:"finished_at,omitempty"`
	DurationMS *int64        `json:"duration_ms,omitempty"` // from its start to its end
	Outcome    store.Outcome `json:"outcome,omitempty"`     // absent while it runs
	ExitCode   *int          `json:"exit_code,omitempty"`
	Message    string        `json:"message,omitempty"`
	// Result is what the task published (for a wait, what arrived: the
	// files, the body, the row), for the task's latest attempt when it
	// succeeded, up to 4 KiB; a larger one is in ResultPreview instead,
	// as text cut at 4 KiB.
	Result        json.RawMessage `json:"result,omitempty"`
	ResultPreview string          `json:"result_preview,omitempty"`
	// LogTail is the end of the log of a failed attempt (the first 20
	// failed attempts of the run).
	LogTail *LogTail `json:"log_tail,omitempty"`
}

// LogTail is the last lines of an attempt's log, as stored: each
// `<RFC 3339 time> <out|err|log> <text>`, secrets masked.
type LogTail struct {
	Lines []string `json:"lines"`
	// Truncated says earlier lines of the log are not shown.
	Truncated bool `json:"truncated"`
	// Error says the log could not be read.
	Error string `json:"error,omitempty"`
}

// Event is one record of the run's timeline.
type Event struct {
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"`
	// SinceStartMS is the time since the run started (negative before it
	// did: while it was queued); SincePreviousMS since the record before
	// (0 for the first).
	SinceStartMS    int64            `json:"since_start_ms"`
	SincePreviousMS int64            `json:"since_previous_ms"`
	Kind            engine.EventKind `json:"kind"`
	Task            string           `json:"task,omitempty"`
	Attempt         int              `json:"attempt,omitempty"`
	ExitCode        *int             `json:"exit_code,omitempty"`
	Message         string           `json:"message,omitempty"`
	Actor           string           `json:"actor,omitempty"`
	Data            json.RawMessage  `json:"data,omitempty"`
	// AttemptDurationMS is, on the record of an attempt's end, how long
	// the attempt took.
	AttemptDurationMS *int64 `json:"attempt_duration_ms,omitempty"`
	// Text says what the record means in words, as the Markdown has it.
	Text string `json:"text"`
}

// WriteJSON writes the timeline as one Document, reading the records from
// the store as it goes.
func (t *Timeline) WriteJSON(ctx context.Context, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := func(prefix string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode timeline of run %d: %w", t.run.ID, err)
		}
		bw.WriteString(prefix)
		_, err = bw.Write(b)
		return err
	}
	if err := enc(`{"run":`, t.runJSON()); err != nil {
		return err
	}
	if d := t.deadlineJSON(); d != nil {
		if err := enc(`,"deadline":`, d); err != nil {
			return err
		}
	}
	if err := enc(`,"summary":`, t.summary()); err != nil {
		return err
	}
	bw.WriteString(`,"attempts":[`)
	tails := t.tailed()
	for i, a := range t.attempts {
		if err := ctx.Err(); err != nil {
			return err
		}
		ja := t.attemptJSON(a)
		if tails[attemptKey{a.Index, a.Attempt}] {
			tail := t.logTail(ctx, a)
			ja.LogTail = &tail
		}
		sep := ","
		if i == 0 {
			sep = ""
		}
		if err := enc(sep, ja); err != nil {
			return err
		}
	}
	bw.WriteString(`],"events":[`)
	first := true
	origin := t.origin()
	err := t.records(ctx, func(e store.Event, gap time.Duration) error {
		je := Event{
			Seq: e.Seq, Time: e.Time.UTC(), SinceStartMS: e.Time.Sub(origin).Milliseconds(), SincePreviousMS: gap.Milliseconds(),
			Kind: e.Kind, Task: e.TaskID, Attempt: e.Attempt, ExitCode: e.ExitCode, Message: e.Message, Actor: e.Actor,
			Data: e.Data, Text: t.words(e),
		}
		if ends(e.Kind) {
			if a, ok := t.attemptOf(e); ok {
				if d, ok := attemptDuration(a); ok {
					je.AttemptDurationMS = ms(d)
				}
			}
		}
		sep := ","
		if first {
			sep, first = "", false
		}
		if err := enc(sep, je); err != nil {
			return err
		}
		// Let a slow reader see progress rather than a long silence.
		if bw.Buffered() > 16<<10 {
			return bw.Flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	bw.WriteString("]}\n")
	return bw.Flush()
}

// ends reports whether a record ends an attempt.
func ends(kind engine.EventKind) bool {
	switch kind {
	case engine.EvTaskSucceeded, engine.EvTaskFailed, engine.EvTaskTimedOut, engine.EvTaskLost,
		engine.EvTaskPreempted, engine.EvTaskCancelled:
		return true
	}
	return false
}

func ms(d time.Duration) *int64 {
	n := d.Milliseconds()
	return &n
}

func utcPtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func (t *Timeline) runJSON() Run {
	r := t.run
	out := Run{
		ID: r.ID, Pipeline: r.Pipeline, State: r.State, Trigger: r.Trigger, Actor: t.scan.creator, BackfillID: r.BackfillID,
		IntervalStart: utcPtr(r.IntervalStart), IntervalEnd: utcPtr(r.IntervalEnd), CreatedAt: r.CreatedAt.UTC(),
		StartedAt: utcPtr(r.StartedAt), FinishedAt: utcPtr(r.FinishedAt),
	}
	if d, ok := t.runDuration(); ok {
		out.DurationMS = ms(d)
	}
	return out
}

// runDuration is how long the run ran: from its start to its end, or to
// now while it runs.
func (t *Timeline) runDuration() (time.Duration, bool) {
	r := t.run
	switch {
	case r.StartedAt.IsZero():
		return 0, false
	case !r.FinishedAt.IsZero():
		return r.FinishedAt.Sub(r.StartedAt), true
	case r.State.Terminal():
		return 0, false
	}
	return t.opts.Now().Sub(r.StartedAt), true
}

// deadlineJSON is the run's standing against its deadline, or nil when it
// has none.
func (t *Timeline) deadlineJSON() *Deadline {
	r, e := t.run, t.scan.deadline
	if r.Deadline.IsZero() && r.DeadlineState == "" && e == nil {
		return nil
	}
	d := &Deadline{
		Deadline: utcPtr(r.Deadline), State: r.DeadlineState, PredictedFinish: utcPtr(r.PredictedFinish),
		CriticalPath: r.CriticalPath, FirstAtRisk: utcPtr(t.scan.firstAtRisk),
	}
	if e == nil {
		return d
	}
	if d.State == "" {
		d.State = deadlineState(e.Kind)
	}
	d.Since, d.Message = utcPtr(e.Time), e.Message
	// What the run does not say, the record's data may: each time read on
	// its own, so one of another shape does not hide the other.
	var data map[string]json.RawMessage
	if json.Unmarshal(e.Data, &data) == nil {
		if d.Deadline == nil {
			d.Deadline = dataTime(data["deadline"])
		}
		if d.PredictedFinish == nil {
			d.PredictedFinish = dataTime(data["predicted_finish"])
		}
	}
	return d
}

// dataTime reads an RFC 3339 time from a record's data; nil for anything
// else.
func dataTime(raw json.RawMessage) *time.Time {
	var at time.Time
	if json.Unmarshal(raw, &at) != nil {
		return nil
	}
	return utcPtr(at)
}

// deadlineState is the state a deadline record kind stands for.
func deadlineState(kind engine.EventKind) string {
	switch kind {
	case KindDeadlineOnTrack:
		return "on_track"
	case KindDeadlineAtRisk:
		return "at_risk"
	case KindDeadlineMissed:
		return "missed"
	case KindDeadlineMet:
		return "met"
	}
	return string(kind)
}

func (t *Timeline) summary() Summary {
	s := Summary{
		Tasks: len(t.tasks), TaskStates: map[engine.TaskState]int{}, Attempts: len(t.attempts),
		Retries: int(t.scan.kinds[engine.RecRetryScheduled]), Failed: []Failure{}, OperatorActions: []Action{},
		OperatorActionsOmitted: t.scan.moreActions, AlertsSent: t.scan.kinds[KindAlertSent], AlertsFailed: t.scan.kinds[KindAlertFailed],
		Events: t.scan.events, Kinds: t.scan.kinds,
	}
	for _, row := range t.tasks {
		s.TaskStates[row.State]++
		if row.State != engine.TaskFailed && row.State != engine.TaskTimedOut {
			continue
		}
		if len(s.Failed) == maxListed {
			s.FailedOmitted++
			continue
		}
		s.Failed = append(s.Failed, Failure{Task: row.TaskID, State: row.State, Attempt: row.Attempt, ExitCode: row.ExitCode, Message: row.Message})
	}
	for _, a := range t.attempts {
		if failedAttempt(a) {
			s.FailedAttempts++
		}
	}
	for _, e := range t.scan.actions {
		s.OperatorActions = append(s.OperatorActions, Action{Time: e.Time.UTC(), Kind: e.Kind, Task: e.TaskID, Actor: e.Actor, Message: e.Message})
	}
	s.LogTailsOmitted = t.tailCandidates() - len(t.tailed())
	return s
}

func (t *Timeline) attemptJSON(a store.Attempt) Attempt {
	out := Attempt{
		Task: t.taskID(a.Index), Attempt: a.Attempt, Wait: t.scan.waits[a.Index], Worker: a.Worker, StartedAt: a.StartedAt.UTC(),
		FinishedAt: utcPtr(a.FinishedAt), Outcome: a.Outcome, ExitCode: a.ExitCode, Message: a.Message,
	}
	if d, ok := attemptDuration(a); ok {
		out.DurationMS = ms(d)
	}
	if res := t.arrived(a.Index, a.Attempt); res != nil {
		if len(res) <= maxResultBytes && json.Valid(res) {
			out.Result = res
		} else {
			out.ResultPreview = cutBytes(compactJSON(res), maxResultBytes)
		}
	}
	return out
}

// cutBytes cuts s to at most n bytes on a character boundary, marking the
// cut with "…".
func cutBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	end := n
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return s[:end] + "…"
}

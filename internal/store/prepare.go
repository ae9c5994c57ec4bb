package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tasuki-dev/tasuki/internal/engine"
)

// The checks and normalisations every driver applies before it writes. They
// live here, not in the drivers, so that a value one driver accepts the other
// accepts too, and reads back the same: the rules are those of the strictest
// database (PostgreSQL's text and jsonb), applied to every driver.

// NormTime is t as every driver reads it back: UTC, truncated to the
// microsecond, the zero time unchanged.
func NormTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.UnixMicro(t.UnixMicro()).UTC()
}

// NormJSON is raw as every driver reads it back: nil when empty.
func NormJSON(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return nil
	}
	return raw
}

// CheckJSON rejects JSON a driver could not store, with a message that names
// the field (what): malformed JSON, and the escape \u0000, which PostgreSQL's
// jsonb cannot hold. Empty raw means "no value" and is accepted.
func CheckJSON(what string, raw json.RawMessage) error {
	if len(raw) == 0 {
		return nil
	}
	if !json.Valid(raw) {
		return fmt.Errorf("%s is not valid JSON", what)
	}
	if bytes.Contains(raw, []byte(`\u0000`)) && hasNulEscape(raw) {
		return fmt.Errorf("%s contains the escape \\u0000, which the store cannot keep (PostgreSQL's jsonb refuses it)", what)
	}
	return nil
}

// hasNulEscape reports whether raw (valid JSON) has a \u0000 escape, as
// opposed to an escaped backslash followed by "u0000".
func hasNulEscape(raw []byte) bool {
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' || i+1 >= len(raw) {
			continue
		}
		if raw[i+1] == 'u' && i+6 <= len(raw) && string(raw[i+2:i+6]) == "0000" {
			return true
		}
		i++ // skip the escaped character
	}
	return false
}

// CheckText rejects a name that a driver could not store exactly: names
// (pipelines, triggers, leadership holders, token names) are compared, so
// they must round-trip byte for byte, and PostgreSQL's text holds neither NUL
// bytes nor invalid UTF-8.
func CheckText(what, s string) error {
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s %q is not valid UTF-8 text without NUL bytes", what, s)
	}
	return nil
}

// Text makes free text that comes from outside (an actor, a message)
// storable by every driver: NUL bytes and invalid UTF-8 become U+FFFD.
// Free text is replaced rather than refused because failing the write would
// lose what came with it (a state change, a backfill).
func Text(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// PrepareRun validates a run CreateRun is about to write and fills in what
// the store decides (ID 0, TaskCount, an empty State queued, a zero CreatedAt
// now, normalised times and JSON), so the run CreateRun returns equals what
// Run reads back. tasks must have indexes 0..len-1 in order.
func PrepareRun(r *Run, tasks []TaskRow) error {
	if r.Pipeline == "" {
		return errors.New("empty pipeline name")
	}
	if err := CheckText("pipeline name", r.Pipeline); err != nil {
		return err
	}
	if err := CheckText("trigger", r.Trigger); err != nil {
		return err
	}
	if err := CheckJSON("params", r.Params); err != nil {
		return err
	}
	for i := range tasks {
		t := &tasks[i]
		if t.Index != i {
			return fmt.Errorf("task %d (%q) has index %d; indexes must be 0..%d in order", i, t.TaskID, t.Index, len(tasks)-1)
		}
		if err := CheckJSON(fmt.Sprintf("result of task %d", i), t.Result); err != nil {
			return err
		}
	}
	if r.BackfillID < 0 {
		return fmt.Errorf("invalid backfill id %d", r.BackfillID)
	}
	r.ID = 0
	r.TaskCount = len(tasks)
	if r.State == "" {
		r.State = engine.RunQueued
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now()
	}
	r.Params = NormJSON(r.Params)
	r.CreatedAt = NormTime(r.CreatedAt)
	r.IntervalStart = NormTime(r.IntervalStart)
	r.IntervalEnd = NormTime(r.IntervalEnd)
	r.StartedAt = NormTime(r.StartedAt)
	r.FinishedAt = NormTime(r.FinishedAt)
	// Only the deadline is written with a new run; the watcher judges it.
	r.Deadline = NormTime(r.Deadline)
	r.DeadlineState, r.PredictedFinish, r.CriticalPath = "", time.Time{}, nil
	return nil
}

// RunAdvance is what CreateRun compares and sets on the pipeline's row
// besides inserting the run, as PrepareCreateRun works it out.
type RunAdvance struct {
	// Schedule is the run's ScheduleAdvance with IntervalEnd filled in
	// (nil: the run moves no schedule).
	Schedule *ScheduleAdvance
	// Datasets says the run moves the dataset cursor from ExpectCursor to
	// NextCursor (EncodeCursor of DatasetAdvance.Expect and Next).
	Datasets                 bool
	ExpectCursor, NextCursor []byte
}

// PrepareCreateRun is PrepareRun for CreateRun: it also applies the trigger
// rules of ScheduleAdvance and DatasetAdvance (an empty trigger becomes
// TriggerSchedule or TriggerDataset, another is an error) and encodes the
// cursors. It returns the run to write; nr is left as given.
func PrepareCreateRun(nr *NewRun) (Run, RunAdvance, error) {
	r := nr.Run
	var adv RunAdvance
	want := ""
	switch {
	case nr.Schedule != nil:
		want = TriggerSchedule
	case nr.Datasets != nil:
		want = TriggerDataset
	}
	if want != "" {
		if r.Trigger == "" {
			r.Trigger = want
		}
		if r.Trigger != want {
			what := "advances the schedule"
			if nr.Schedule == nil {
				what = "consumes dataset updates"
			}
			return Run{}, adv, fmt.Errorf("a run that %s must have trigger %q, not %q", what, want, r.Trigger)
		}
	}
	if err := PrepareRun(&r, nr.Tasks); err != nil {
		return Run{}, adv, err
	}
	if nr.Schedule != nil {
		s := *nr.Schedule
		if s.IntervalEnd.IsZero() {
			s.IntervalEnd = r.IntervalEnd
		}
		adv.Schedule = &s
	}
	if nr.Datasets != nil {
		var err error
		adv.Datasets = true
		if adv.ExpectCursor, err = EncodeCursor(nr.Datasets.Expect); err != nil {
			return Run{}, adv, fmt.Errorf("expected cursor: %w", err)
		}
		if adv.NextCursor, err = EncodeCursor(nr.Datasets.Next); err != nil {
			return Run{}, adv, fmt.Errorf("next cursor: %w", err)
		}
	}
	return r, adv, nil
}

// CheckBackfillState rejects a backfill state the store does not know.
func CheckBackfillState(s string) error {
	switch s {
	case BackfillRunning, BackfillSucceeded, BackfillFailed, BackfillCancelled:
		return nil
	}
	return fmt.Errorf("unknown backfill state %q (want %s, %s, %s or %s)", s,
		BackfillRunning, BackfillSucceeded, BackfillFailed, BackfillCancelled)
}

// PrepareBackfill validates a backfill CreateBackfill is about to write and
// its runs, fills in what the store decides (as the Store documentation of
// CreateBackfill says), and returns the runs to write: normalised copies, the
// caller's runs left as given, with BackfillID 0 for the driver to set.
// The returned backfill equals what Backfill reads back; its Actor is free
// text (see Text).
func PrepareBackfill(b *Backfill, runs []NewRun) ([]Run, error) {
	if b.Pipeline == "" {
		return nil, errors.New("empty pipeline name")
	}
	if err := CheckText("pipeline name", b.Pipeline); err != nil {
		return nil, err
	}
	if b.Parallel < 0 {
		return nil, fmt.Errorf("parallel is %d; want 0 (no limit of its own) or more", b.Parallel)
	}
	if b.State == "" {
		b.State = BackfillRunning
	}
	if err := CheckBackfillState(b.State); err != nil {
		return nil, err
	}
	if b.From.IsZero() || b.To.IsZero() {
		return nil, errors.New("the range needs both a start and an end")
	}
	if b.To.Before(b.From) {
		return nil, fmt.Errorf("the range ends (%s) before it starts (%s)", b.To.Format(time.RFC3339), b.From.Format(time.RFC3339))
	}
	if b.CreatedAt.IsZero() {
		b.CreatedAt = time.Now()
	}
	b.ID = 0
	b.Runs = len(runs)
	b.Actor = Text(b.Actor)
	b.From, b.To = NormTime(b.From), NormTime(b.To)
	b.CreatedAt, b.FinishedAt = NormTime(b.CreatedAt), NormTime(b.FinishedAt)

	rs := make([]Run, len(runs))
	for i := range runs {
		nr := &runs[i]
		r := &rs[i]
		*r = nr.Run
		if nr.Schedule != nil {
			return nil, fmt.Errorf("run %d advances a schedule; backfill runs may not", i)
		}
		if nr.Datasets != nil {
			return nil, fmt.Errorf("run %d consumes dataset updates; backfill runs may not", i)
		}
		if r.Pipeline == "" {
			r.Pipeline = b.Pipeline
		}
		if r.Pipeline != b.Pipeline {
			return nil, fmt.Errorf("run %d is a run of pipeline %q", i, r.Pipeline)
		}
		if r.Trigger == "" {
			r.Trigger = TriggerBackfill
		}
		if r.Trigger != TriggerBackfill {
			return nil, fmt.Errorf("run %d has trigger %q, want %q", i, r.Trigger, TriggerBackfill)
		}
		r.BackfillID = 0
		if err := PrepareRun(r, nr.Tasks); err != nil {
			return nil, fmt.Errorf("run %d: %w", i, err)
		}
	}
	return rs, nil
}

// CheckChange rejects what would fail inside Apply's transaction anyway,
// before the transaction starts (and before SQLite's write lock is taken),
// with messages that name the field.
func CheckChange(c *Change) error {
	for _, t := range c.Transition.Tasks {
		if err := CheckJSON(fmt.Sprintf("result of task %d", t.Index), t.Task.Result); err != nil {
			return err
		}
	}
	for _, r := range c.Transition.Records {
		if err := CheckJSON(fmt.Sprintf("data of %s record", r.Kind), r.Data); err != nil {
			return err
		}
	}
	for _, a := range c.Attempts {
		if a.RunID != 0 && a.RunID != c.RunID {
			return fmt.Errorf("attempt %d of task %d names run %d", a.Attempt, a.Index, a.RunID)
		}
	}
	_, err := ChangeDatasetUpdates(c)
	return err
}

// ChangeDatasetUpdates returns the dataset updates of change c as Apply
// writes them: checked and filled in by PrepareDatasetUpdate, with RunID the
// change's. They are copies; c is left as given.
func ChangeDatasetUpdates(c *Change) ([]DatasetUpdate, error) {
	if len(c.DatasetUpdates) == 0 {
		return nil, nil
	}
	out := make([]DatasetUpdate, len(c.DatasetUpdates))
	for i, u := range c.DatasetUpdates {
		if u.RunID != 0 && u.RunID != c.RunID {
			return nil, fmt.Errorf("update %d of dataset %q names run %d", i, u.Dataset, u.RunID)
		}
		u.RunID = c.RunID
		if err := PrepareDatasetUpdate(&u); err != nil {
			return nil, fmt.Errorf("update %d: %w", i, err)
		}
		out[i] = u
	}
	return out, nil
}

// PrepareDatasetUpdate validates a dataset update a driver is about to
// write and fills in what the store decides (ID 0, a zero At now,
// normalised times and JSON, free text made storable), so the update
// RecordDatasetUpdate returns equals what DatasetUpdates reads back. A
// runner calls it on what a task produced before putting it in a Change.
func PrepareDatasetUpdate(u *DatasetUpdate) error {
	if u.Dataset == "" {
		return errors.New("dataset update: empty dataset name")
	}
	if err := CheckText("dataset name", u.Dataset); err != nil {
		return err
	}
	if err := CheckText("pipeline name", u.Pipeline); err != nil {
		return fmt.Errorf("update of dataset %q: %w", u.Dataset, err)
	}
	if err := CheckText("task id", u.TaskID); err != nil {
		return fmt.Errorf("update of dataset %q: %w", u.Dataset, err)
	}
	if u.RunID < 0 {
		return fmt.Errorf("update of dataset %q: invalid run id %d", u.Dataset, u.RunID)
	}
	what := fmt.Sprintf("metadata of the update of dataset %q", u.Dataset)
	if err := CheckJSON(what, u.Metadata); err != nil {
		return err
	}
	if len(u.Metadata) > 0 {
		if t := bytes.TrimLeft(u.Metadata, " \t\r\n"); len(t) == 0 || t[0] != '{' {
			return fmt.Errorf("%s is not a JSON object", what)
		}
	}
	if u.At.IsZero() {
		u.At = time.Now()
	}
	u.ID = 0
	u.At = NormTime(u.At)
	u.IntervalStart = NormTime(u.IntervalStart)
	u.IntervalEnd = NormTime(u.IntervalEnd)
	u.Actor = Text(u.Actor)
	u.Metadata = NormJSON(u.Metadata)
	return nil
}

// DatasetNames are the names LatestDatasetUpdates looks up of names: each
// once, in the order given, without those no dataset can have (empty, or
// not text: see CheckText), which a driver could not even send as given.
func DatasetNames(names []string) []string {
	out := make([]string, 0, len(names))
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if n == "" || seen[n] || CheckText("", n) != nil {
			continue
		}
		seen[n] = true
		out = append(out, n)
	}
	return out
}

// EncodeCursor is a dataset cursor (PipelineState.DatasetCursor,
// DatasetAdvance) as every driver stores and compares it: a JSON object with
// its keys sorted and without entries of 0, so two cursors are equal exactly
// when their encodings are; nil for a cursor with no entries (an unset one).
// Names must be text (CheckText), values not negative.
func EncodeCursor(c map[string]int64) ([]byte, error) {
	var keep map[string]int64
	for k, v := range c {
		if err := CheckText("dataset name", k); err != nil {
			return nil, err
		}
		switch {
		case k == "":
			return nil, errors.New("dataset cursor has an empty dataset name")
		case v < 0:
			return nil, fmt.Errorf("dataset cursor of %q is %d; want an update ID (or 0: none)", k, v)
		case v == 0:
			continue
		}
		if keep == nil {
			keep = make(map[string]int64, len(c))
		}
		keep[k] = v
	}
	if keep == nil {
		return nil, nil
	}
	return json.Marshal(keep) // sorts the keys
}

// DecodeCursor reads a stored dataset cursor (nil for NULL).
func DecodeCursor(raw []byte) (map[string]int64, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var c map[string]int64
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("read dataset cursor: %w", err)
	}
	if len(c) == 0 {
		return nil, nil
	}
	return c, nil
}

// FormatCursor is a dataset cursor for messages: its canonical JSON, or
// "unset".
func FormatCursor(raw []byte) string {
	if len(raw) == 0 {
		return "unset"
	}
	return string(raw)
}

// CheckAcquire validates the arguments of AcquireLeadership: a holder, a
// positive TTL and the caller's clock, and a holder and address that
// round-trip exactly (see CheckText).
func CheckAcquire(holder, address string, ttl time.Duration, now time.Time) error {
	switch {
	case holder == "":
		return errors.New("empty holder")
	case ttl <= 0:
		return fmt.Errorf("lease TTL %v is not positive", ttl)
	case now.IsZero():
		return errors.New("no current time given")
	}
	if err := CheckText("holder", holder); err != nil {
		return err
	}
	return CheckText("address", address)
}

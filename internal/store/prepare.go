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
	return nil
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
	return nil
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

package schedule

import (
	"errors"
	"fmt"
	"time"
)

// Interval is the logical data interval [Start, End) that one scheduled run
// covers. The run fires at End; Start is the schedule's previous fire time.
// Stored with the run, it is the key that makes "one run per interval" a
// database constraint, and what a task reads to know which data to process.
type Interval struct {
	Start time.Time
	End   time.Time
}

// String formats the interval as "[start, end)" in RFC 3339, for logs and
// messages.
func (i Interval) String() string {
	return "[" + i.Start.Format(time.RFC3339) + ", " + i.End.Format(time.RFC3339) + ")"
}

// IsZero reports whether i is the zero Interval ("no interval").
func (i Interval) IsZero() bool { return i.Start.IsZero() && i.End.IsZero() }

// CatchUp says what the scheduler does with the intervals that ended while it
// was not running (a server restart, an outage, a pipeline that was paused).
// Pipelines differ: a ledger must process every day, a dashboard refresh only
// needs the newest data, a notification must not be sent late at all.
type CatchUp string

const (
	// CatchUpAll runs every missed interval, oldest first, at most
	// Policy.Max per call to Due; the rest follow on the next calls, so
	// nothing is skipped silently.
	CatchUpAll CatchUp = "all"
	// CatchUpLatest runs only the most recent missed interval and skips the
	// older ones (Airflow's catchup=False).
	CatchUpLatest CatchUp = "latest"
	// CatchUpNone runs none of the missed intervals; the schedule carries on
	// with its next regular fire.
	CatchUpNone CatchUp = "none"
)

// Validate reports whether c is one of the defined policies, so that a
// pipeline file with a typo fails at load time, not at the first downtime.
func (c CatchUp) Validate() error {
	switch c {
	case CatchUpAll, CatchUpLatest, CatchUpNone:
		return nil
	}
	return fmt.Errorf("catch-up policy %q: want %q, %q or %q", string(c), CatchUpAll, CatchUpLatest, CatchUpNone)
}

// DefaultMaxCatchUp is the number of intervals Due returns per call under
// CatchUpAll when Policy.Max is not set: enough to drain a short outage in
// one tick, small enough that a year-long one does not create thousands of
// runs at once.
const DefaultMaxCatchUp = 100

// Policy is how a pipeline catches up; see Due.
type Policy struct {
	// CatchUp selects what happens to missed intervals.
	CatchUp CatchUp
	// Max is the most intervals Due returns per call under CatchUpAll
	// (DefaultMaxCatchUp if zero or negative).
	Max int
	// Grace is how late an interval's end may be seen and still count as on
	// time rather than missed. It matters for CatchUpNone and for a pipeline
	// that never ran: the scheduler ticks, so it sees a fire a little after
	// it happens, and that fire must not be treated as missed. Set it to a
	// few tick periods; zero means only an interval ending exactly at now is
	// on time.
	Grace time.Duration
}

// Backlog is Due's answer.
type Backlog struct {
	// Intervals are the runs to start now, oldest first.
	Intervals []Interval
	// Skipped spans the intervals that ended in (lastEnd, now] and will never
	// run under this policy: from the start of the first to the end of the
	// last. Zero if none were skipped. It is a span rather than a count so
	// that Due stays cheap after a long outage; the scheduler records it in
	// the pipeline's event timeline.
	Skipped Interval
	// More is set under CatchUpAll when further intervals are already due
	// beyond the Max returned; calling Due again with Through returns them.
	More bool
	// Through is the end of the last interval accounted for (returned or
	// skipped). The scheduler persists it as the new lastEnd in the same
	// transaction that creates the runs.
	Through time.Time
}

// Due decides which intervals to run now. lastEnd is the end of the last
// interval the pipeline's schedule accounted for (Backlog.Through of the
// previous call), or the zero Time if it never ran. The candidates are the
// intervals whose end lies in (lastEnd, now]:
//
//   - CatchUpAll returns them oldest first, at most p.Max of them; More
//     says whether more remain, and they come with the next call.
//   - CatchUpLatest returns only the newest and skips the rest.
//   - CatchUpNone returns the newest only if it is on time (it ended within
//     p.Grace before now) and skips the rest.
//
// A zero lastEnd means there is no history to catch up, whatever the policy:
// only an on-time interval is returned, and nothing counts as skipped.
//
// Intervals are aligned to the schedule: if lastEnd is not a fire time
// (the expression was edited), the first interval starts at the fire time
// before its end, which may be earlier than lastEnd.
//
// The cost is proportional to the number of intervals returned, plus a few
// Prev calls; a year of per-second fires missed costs no more than a day.
func Due(s *Schedule, lastEnd, now time.Time, p Policy) (Backlog, error) {
	if err := p.CatchUp.Validate(); err != nil {
		return Backlog{}, fmt.Errorf("due intervals of %q: %w", s.expr, err)
	}
	if p.Grace < 0 {
		return Backlog{}, fmt.Errorf("due intervals of %q: negative grace %v", s.expr, p.Grace)
	}
	limit := p.Max
	if limit <= 0 {
		limit = DefaultMaxCatchUp
	}
	b := Backlog{Through: lastEnd}
	latest := s.Prev(now.Add(time.Nanosecond)) // last fire at or before now
	if latest.IsZero() {
		return b, nil
	}
	onTime := !latest.Before(now.Add(-p.Grace))

	if lastEnd.IsZero() {
		b.Through = latest
		if onTime {
			if start := s.Prev(latest); !start.IsZero() {
				b.Intervals = []Interval{{Start: start, End: latest}}
			}
		}
		return b, nil
	}
	if !latest.After(lastEnd) {
		return b, nil // nothing ended since lastEnd (or the clock went back)
	}

	first := s.Next(lastEnd) // first end after lastEnd; first <= latest
	firstStart := lastEnd.In(s.loc)
	if !s.Fires(lastEnd) {
		firstStart = s.Prev(first)
	}
	// startOfLatest is the start of the interval ending at latest.
	startOfLatest := func() time.Time {
		if latest.Equal(first) {
			return firstStart
		}
		return s.Prev(latest)
	}

	switch p.CatchUp {
	case CatchUpAll:
		start, end := firstStart, first
		for len(b.Intervals) < limit && !end.IsZero() && !end.After(latest) {
			b.Intervals = append(b.Intervals, Interval{Start: start, End: end})
			start, end = end, s.Next(end)
		}
		b.Through = start
		b.More = !end.IsZero() && !end.After(latest)
	case CatchUpLatest:
		start := startOfLatest()
		b.Intervals = []Interval{{Start: start, End: latest}}
		if first.Before(latest) {
			b.Skipped = Interval{Start: firstStart, End: start}
		}
		b.Through = latest
	case CatchUpNone:
		if onTime {
			start := startOfLatest()
			b.Intervals = []Interval{{Start: start, End: latest}}
			if first.Before(latest) {
				b.Skipped = Interval{Start: firstStart, End: start}
			}
		} else {
			b.Skipped = Interval{Start: firstStart, End: latest}
		}
		b.Through = latest
	}
	return b, nil
}

// ErrTooManyIntervals is returned (wrapped) by Intervals when a range holds
// more intervals than the caller allowed.
var ErrTooManyIntervals = errors.New("too many intervals")

// Intervals lists the intervals that lie entirely inside [from, to] (start
// >= from, end <= to), oldest first: the runs a backfill over that range
// creates. It fails with ErrTooManyIntervals rather than return more than
// limit, so that a mistyped range ("every second for a year") is caught
// before it becomes millions of runs; it stops computing as soon as the limit
// is passed.
func Intervals(s *Schedule, from, to time.Time, limit int) ([]Interval, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("intervals of %q: limit must be positive, got %d", s.expr, limit)
	}
	if from.IsZero() || to.IsZero() {
		return nil, fmt.Errorf("intervals of %q: both ends of the range must be set", s.expr)
	}
	if to.Before(from) {
		return nil, fmt.Errorf("intervals of %q: range end %s is before its start %s", s.expr, to.Format(time.RFC3339), from.Format(time.RFC3339))
	}
	start := s.Next(from.Add(-time.Nanosecond)) // first fire at or after from
	if start.IsZero() {
		return nil, nil
	}
	out := make([]Interval, 0, min(limit, 64))
	for {
		end := s.Next(start)
		if end.IsZero() || end.After(to) {
			return out, nil
		}
		if len(out) == limit {
			return nil, fmt.Errorf("intervals of %q from %s to %s: more than %d: %w",
				s.expr, from.Format(time.RFC3339), to.Format(time.RFC3339), limit, ErrTooManyIntervals)
		}
		out = append(out, Interval{Start: start, End: end})
		start = end
	}
}

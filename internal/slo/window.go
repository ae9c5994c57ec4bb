package slo

import "time"

// Window is one stretch of time an objective is judged over.
//
// For fresh_by it is (Start, End]: End is a deadline (fresh_by on a
// selected day) and Start the deadline before it, so the windows of an
// objective follow each other without gap or overlap, and an update counts
// for the first deadline at or after it. For max_age it is [Start, End): a
// selected day's period, during which the data must never be older than
// the maximum age.
type Window struct {
	Start, End time.Time
}

// Contains reports whether t lies in the window.
func (w Window) Contains(kind Kind, t time.Time) bool {
	if kind == FreshBy {
		return t.After(w.Start) && !t.After(w.End)
	}
	return !t.Before(w.Start) && t.Before(w.End)
}

// maxGapDays bounds the search for the previous or next selected day: one
// selected day is at most seven days from another, and one more on each
// side covers a deadline that falls on another calendar day in UTC.
const maxGapDays = 9

// date is a calendar day, as a time at midnight UTC (a naive date: UTC has
// no daylight saving, so AddDate walks days).
func date(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// wallTime is the instant at which the clock in loc shows c on the
// calendar day day. A time the clock skips (spring forward) is the instant
// of the jump, the first after the gap; a time it shows twice (fall back)
// is its first occurrence.
func wallTime(loc *time.Location, day time.Time, c Clock) time.Time {
	naive := day.Add(time.Duration(c) * time.Minute)
	var offsets [3]int
	for i, probe := range []time.Duration{-24 * time.Hour, 0, 24 * time.Hour} {
		_, offsets[i] = naive.Add(probe).In(loc).Zone()
	}
	var best time.Time
	for _, off := range offsets {
		cand := naive.Add(-time.Duration(off) * time.Second)
		if _, got := cand.In(loc).Zone(); got == off && (best.IsZero() || cand.Before(best)) {
			best = cand
		}
	}
	if !best.IsZero() {
		return best.In(loc)
	}
	// In a gap: read with the offset before the jump, c lands after it,
	// in the stretch of time that starts with the jump.
	cand := naive.Add(-time.Duration(offsets[0]) * time.Second).In(loc)
	if start, _ := cand.ZoneBounds(); !start.IsZero() && start.Before(cand) {
		return start.In(loc)
	}
	return cand
}

// deadline is the fresh_by deadline of the calendar day day.
func (o *Objective) deadline(day time.Time) time.Time { return wallTime(o.loc, day, o.freshBy) }

// nextDeadline is the first deadline strictly after t.
func (o *Objective) nextDeadline(t time.Time) time.Time {
	day := date(t, o.loc).AddDate(0, 0, -1)
	for i := range maxGapDays {
		d := day.AddDate(0, 0, i)
		if dl := o.deadline(d); o.days[d.Weekday()] && dl.After(t) {
			return dl
		}
	}
	return time.Time{} // unreachable: a selected day is within a week
}

// prevDeadline is the last deadline at or before t.
func (o *Objective) prevDeadline(t time.Time) time.Time {
	day := date(t, o.loc).AddDate(0, 0, 1)
	for i := range maxGapDays {
		d := day.AddDate(0, 0, -i)
		if dl := o.deadline(d); o.days[d.Weekday()] && !dl.After(t) {
			return dl
		}
	}
	return time.Time{}
}

// period is the max_age period that starts on the calendar day day.
func (o *Objective) period(day time.Time) Window {
	endDay := day
	if o.during.To <= o.during.From {
		endDay = day.AddDate(0, 0, 1)
	}
	return Window{Start: wallTime(o.loc, day, o.during.From), End: wallTime(o.loc, endDay, o.during.To)}
}

// Windows lists, oldest first, the windows that overlap the time from
// from to to: those that end after from and start before to. Periods a
// daylight saving change leaves empty (02:00-03:00 on a spring-forward
// day) are left out.
func (o *Objective) Windows(from, to time.Time) []Window {
	var out []Window
	if !to.After(from) {
		return nil
	}
	if o.kind == FreshBy {
		start, end := o.prevDeadline(from), o.nextDeadline(from)
		for start.Before(to) && !end.IsZero() {
			out = append(out, Window{Start: start, End: end})
			start, end = end, o.nextDeadline(end)
		}
		return out
	}
	last := date(to, o.loc).AddDate(0, 0, 1)
	for d := date(from, o.loc).AddDate(0, 0, -1); !d.After(last); d = d.AddDate(0, 0, 1) {
		if !o.days[d.Weekday()] {
			continue
		}
		w := o.period(d)
		if w.End.After(w.Start) && w.End.After(from) && w.Start.Before(to) {
			out = append(out, w)
		}
	}
	return out
}

// WindowAt is the window that holds t: for fresh_by the one whose
// deadline is the first at or after t; for max_age the period t lies in,
// or else the next one to start.
func (o *Objective) WindowAt(t time.Time) Window {
	if o.kind == FreshBy {
		end := o.nextDeadline(t.Add(-time.Nanosecond))
		return Window{Start: o.prevDeadline(end.Add(-time.Nanosecond)), End: end}
	}
	for _, w := range o.Windows(t, t.Add(8*24*time.Hour)) {
		if w.End.After(t) {
			return w
		}
	}
	return Window{}
}

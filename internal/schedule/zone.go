package schedule

import (
	"math"
	"time"
)

// This file maps between instants and local wall-clock times. A wall-clock
// time is represented as a time.Time in UTC whose fields are the local
// reading (a "naive" time); UTC has no daylight saving time, so go-cron can
// walk it as a plain calendar.

// zoneSpan is more than the largest distance between an instant and its
// local wall-clock reading (UTC offsets stay within -12h..+14h), so every
// instant showing a given wall-clock time lies within zoneSpan of it.
const zoneSpan = 30 * time.Hour

// maxSegments bounds the walks over zone segments (stretches of constant UTC
// offset) so that no zone data, however odd, can make them loop for long.
const maxSegments = 256

// wallClock returns the local reading of t (which must be in the schedule's
// zone) as a naive time, and the UTC offset in effect at t.
func wallClock(t time.Time) (time.Time, time.Duration) {
	_, off := t.Zone()
	d := time.Duration(off) * time.Second
	return t.UTC().Add(d), d
}

// wallNext returns the first wall-clock time strictly after w that the cron
// fields match, or the zero Time. go-cron is called behind recover: a panic in
// the library must not take the scheduler down, and "no next fire" is the
// safe answer.
func (s *Schedule) wallNext(w time.Time) (next time.Time) {
	defer func() {
		if recover() != nil {
			next = time.Time{}
		}
	}()
	return s.spec.Next(w)
}

// nextEvery is Next for "@every": the next multiple of the period since the
// Unix epoch, in whole seconds.
func (s *Schedule) nextEvery(after time.Time) time.Time {
	p := int64(s.every / time.Second)
	k := floorDiv(after.Unix(), p)
	if k >= math.MaxInt64/p-1 {
		return time.Time{}
	}
	return time.Unix((k+1)*p, 0).In(s.loc)
}

// prevEvery is Prev for "@every": the last multiple of the period strictly
// before before.
func (s *Schedule) prevEvery(before time.Time) time.Time {
	p := int64(s.every / time.Second)
	sec := before.Unix()
	k := floorDiv(sec, p)
	if k*p == sec && before.Nanosecond() == 0 {
		k-- // before is itself a fire; the previous one is a period earlier
	}
	if k <= math.MinInt64/p+1 {
		return time.Time{}
	}
	return time.Unix(k*p, 0).In(s.loc)
}

// floorDiv divides rounding towards negative infinity (b > 0), so that times
// before 1970 land on the same grid.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// nextAbsolute is Next for schedules whose hour field covers every hour: the
// first instant after after whose local reading matches. Within a zone
// segment (a stretch of constant UTC offset) the reading grows with the
// instant, so the search runs segment by segment: a match that lies past the
// segment's end is retried in the next segment, from that segment's first
// reading. A repeated hour is thus visited twice and a skipped hour never.
func (s *Schedule) nextAbsolute(after time.Time) time.Time {
	t := after.In(s.loc)
	from, off := wallClock(t)
	w := s.wallNext(from)
	for range maxSegments {
		if w.IsZero() {
			return time.Time{}
		}
		c := w.Add(-off)
		change := nextChange(t, c)
		if change.IsZero() {
			return c.In(s.loc)
		}
		t = change
		next, nextOff := wallClock(t)
		next = next.Add(-time.Nanosecond) // the segment's first instant may fire
		// Nothing in (from, w) matches, so w is still the first match after
		// next unless the clocks went back before from or past w.
		if next.Before(from) || !w.After(next) {
			w = s.wallNext(next)
		}
		from, off = next, nextOff
	}
	return time.Time{}
}

// nextWall is Next for the other cron schedules: the first matching
// wall-clock time whose instant (see resolve) is after after. resolve never
// reorders wall-clock times, so the answer is resolve of the first match after
// after's own reading, except when after lies in the second occurrence of a
// repeated hour: the matches still inside that hour already fired at their
// first occurrence, so the search starts where the repetition ends.
func (s *Schedule) nextWall(after time.Time) time.Time {
	t := after.In(s.loc)
	from, off := wallClock(t)
	if change := lastChange(t.Add(-zoneSpan), t); !change.IsZero() {
		// t's segment began at change; was that the clocks going back?
		if prevOff := offsetAt(change.Add(-time.Nanosecond)); prevOff > off {
			if foldEnd := change.UTC().Add(prevOff); from.Before(foldEnd) {
				from = foldEnd.Add(-time.Nanosecond)
			}
		}
	}
	w := s.wallNext(from)
	if w.IsZero() {
		return time.Time{}
	}
	return s.resolve(w)
}

// resolve maps a wall-clock time to the instant a fixed-time schedule fires
// for it: the instant itself when the reading occurs once, the first
// occurrence when it occurs twice, and the first instant after the gap when
// the clocks skip it. It walks the zone segments that could show the reading,
// oldest first.
func (s *Schedule) resolve(w time.Time) time.Time {
	if s.loc == time.UTC {
		return w
	}
	t := w.Add(-zoneSpan).In(s.loc) // shows a reading well before w
	limit := w.Add(zoneSpan)        // shows a reading well after w
	for range maxSegments {
		start, off := wallClock(t)
		if start.After(w) {
			// This segment begins with a reading later than w, and w was not
			// shown by the segment before: w falls into the gap ending at t.
			return t
		}
		end := nextChange(t, limit)
		if c := w.Add(-off); !c.Before(t) && (end.IsZero() || c.Before(end)) {
			return c.In(s.loc)
		}
		if end.IsZero() {
			break
		}
		t = end
	}
	// Unreachable with real zone data; keep the answer close to correct.
	return time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), w.Nanosecond(), s.loc)
}

// offsetAt is the UTC offset in effect at t in t's location.
func offsetAt(t time.Time) time.Duration {
	_, off := t.Zone()
	return time.Duration(off) * time.Second
}

// nextChange returns the first instant in (t, limit] at which the UTC offset
// of t's location differs from the offset at t, or the zero Time if there is
// none. It uses time.Time.ZoneBounds to skip quickly over constant stretches
// but does not trust it blindly: past a zone's last explicit transition Go
// derives bounds from the zone's rule string and reports the start or end of
// the year as a bound (harmless, the walk continues), and in leap years a
// year end one day early, which does not advance (then it probes a day ahead
// and bisects). Real zones never change offset twice within a day.
func nextChange(t, limit time.Time) time.Time {
	off := offsetAt(t)
	x := t
	for range maxSegments {
		if !x.Before(limit) {
			return time.Time{}
		}
		_, end := x.ZoneBounds()
		switch {
		case end.IsZero() || end.After(limit):
			// The zone in effect at x lasts past limit.
			return time.Time{}
		case !end.After(x):
			// A stale bound: probe instead.
			y := x.Add(24 * time.Hour)
			if offsetAt(y) != off {
				if c := bisectChange(x, y, off); !c.After(limit) {
					return c
				}
				return time.Time{}
			}
			x = y
		case offsetAt(end) != off:
			return end
		default:
			x = end // a bound without an offset change
		}
	}
	return time.Time{}
}

// bisectChange finds the first whole second in (x, y] whose offset is not
// off, given that x has offset off and y does not. Zone transitions happen on
// whole seconds.
func bisectChange(x, y time.Time, off time.Duration) time.Time {
	lo, hi := x.Unix(), y.Unix()
	if y.Nanosecond() != 0 {
		hi++
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if offsetAt(time.Unix(mid, 0).In(x.Location())) == off {
			lo = mid
		} else {
			hi = mid
		}
	}
	return time.Unix(hi, 0).In(x.Location())
}

// lastChange returns the last instant in (a, t] at which the UTC offset
// changes, or the zero Time if it does not change there.
func lastChange(a, t time.Time) time.Time {
	var last time.Time
	for c := nextChange(a, t); !c.IsZero(); c = nextChange(c, t) {
		last = c
	}
	return last
}

package slo

import (
	"sort"
	"time"
)

// State is how an objective (or one window of it) stands.
type State string

// The states.
const (
	// Met: the window's promise was kept (fresh_by: updated in time;
	// max_age: never too old during the period, or not now for the
	// window in progress).
	Met State = "met"
	// Breached: the promise was broken (fresh_by: the deadline passed
	// without an update; max_age: the data was too old for a while, or
	// is now for the window in progress).
	Breached State = "breached"
	// Pending: nothing to judge yet: a fresh_by window whose deadline is
	// ahead and which has no update yet, or a max_age period not begun.
	Pending State = "pending"
)

// Breach is one stretch of time an objective was broken.
//
// A fresh_by breach starts at the missed deadline and ends with the first
// update after it, or at the next deadline, where the next window's own
// breach takes over. A max_age breach starts when the newest update became
// older than the maximum age (or when the period starts, if it already
// was) and ends with the next update or at the end of the period.
type Breach struct {
	Start time.Time
	End   time.Time // when it ended; now while Open
	Open  bool      // still going on at now
}

// Length is how long the breach lasted (so far, while open).
func (b Breach) Length() time.Duration { return b.End.Sub(b.Start) }

// Result is the judgement of one window at a time now.
type Result struct {
	Window Window
	State  State
	// Closed: the window is over (its end is at or before now), so the
	// judgement is final.
	Closed bool
	// Judged and Compliant are, for max_age, how much of the window was
	// judged (after the objective was first seen, and up to now) and how
	// much of that the data was fresh. Zero for fresh_by.
	Judged, Compliant time.Duration
	Breaches          []Breach
}

// Judge judges window w as of now from the times the data was updated
// (ascending; updates after now are not looked at). since is when the
// objective was first seen: max_age time before it is not judged (a
// fresh_by window is judged whole; the caller decides which windows to
// judge).
func (o *Objective) Judge(w Window, updates []time.Time, since, now time.Time) Result {
	updates = updates[:sort.Search(len(updates), func(i int) bool { return updates[i].After(now) })]
	r := Result{Window: w, Closed: !now.Before(w.End)}
	if o.kind == FreshBy {
		o.judgeFreshBy(&r, updates, now)
	} else {
		o.judgeMaxAge(&r, updates, since, now)
	}
	return r
}

// after is the index of the first update after t.
func after(updates []time.Time, t time.Time) int {
	return sort.Search(len(updates), func(i int) bool { return updates[i].After(t) })
}

func (o *Objective) judgeFreshBy(r *Result, updates []time.Time, now time.Time) {
	w := r.Window
	if i := after(updates, w.Start); i < len(updates) && !updates[i].After(w.End) {
		r.State = Met
		return
	}
	if !r.Closed {
		r.State = Pending
		return
	}
	r.State = Breached
	b := Breach{Start: w.End, End: o.nextDeadline(w.End)}
	if i := after(updates, w.End); i < len(updates) && updates[i].Before(b.End) {
		b.End = updates[i]
	}
	if b.End.After(now) {
		b.End, b.Open = now, true
	}
	r.Breaches = []Breach{b}
}

func (o *Objective) judgeMaxAge(r *Result, updates []time.Time, since, now time.Time) {
	w := r.Window
	lo, hi := w.Start, w.End
	if since.After(lo) {
		lo = since
	}
	if now.Before(hi) {
		hi = now
	}
	if !hi.After(lo) {
		switch {
		case r.Closed: // wholly before the objective was seen
			r.State = Met
		case now.Before(w.Start): // not begun
			r.State = Pending
		default:
			// Begun, but the objective was seen only now: nothing to
			// measure yet, the state is how fresh the data is.
			r.State = Breached
			if i := after(updates, now); i > 0 && !now.After(updates[i-1].Add(o.maxAge)) {
				r.State = Met
			}
		}
		return
	}
	r.Judged = hi.Sub(lo)
	// staleFrom is when data last updated at last (none: zero) becomes
	// too old, within what is judged.
	staleFrom := func(last time.Time) time.Time {
		if last.IsZero() {
			return lo
		}
		if s := last.Add(o.maxAge); s.After(lo) {
			return s
		}
		return lo
	}
	var last time.Time
	i := after(updates, lo)
	if i > 0 {
		last = updates[i-1]
	}
	stale := time.Duration(0)
	for ; i < len(updates) && !updates[i].After(hi); i++ {
		if s := staleFrom(last); s.Before(updates[i]) {
			r.Breaches = append(r.Breaches, Breach{Start: s, End: updates[i]})
			stale += updates[i].Sub(s)
		}
		last = updates[i]
	}
	if s := staleFrom(last); s.Before(hi) {
		r.Breaches = append(r.Breaches, Breach{Start: s, End: hi, Open: !r.Closed})
		stale += hi.Sub(s)
	}
	r.Compliant = r.Judged - stale
	switch {
	case r.Closed && len(r.Breaches) > 0:
		r.State = Breached
	case r.Closed:
		r.State = Met
	case len(r.Breaches) > 0 && r.Breaches[len(r.Breaches)-1].Open:
		r.State = Breached
	default:
		r.State = Met
	}
}

// Current judges the objective as it stands at now. For fresh_by that is
// the window whose deadline last passed, while its breach is still open
// (no update since, and the next deadline not reached), and otherwise the
// window in progress: met once updated, pending before. For max_age it is
// the period in progress (breached while the data is too old, met while it
// is not), or the next period (pending). A window that ended before since
// is never judged.
func (o *Objective) Current(updates []time.Time, since, now time.Time) Result {
	if o.kind == FreshBy {
		if end := o.prevDeadline(now); end.After(since) {
			w := Window{Start: o.prevDeadline(end.Add(-time.Nanosecond)), End: end}
			if r := o.Judge(w, updates, since, now); r.State == Breached && r.Breaches[0].Open {
				return r
			}
		}
		w := Window{Start: o.prevDeadline(now), End: o.nextDeadline(now)}
		return o.Judge(w, updates, since, now)
	}
	return o.Judge(o.WindowAt(now), updates, since, now)
}

// Tally sums judged windows into compliance.
type Tally struct {
	Windows, Met      int
	Judged, Compliant time.Duration
}

// Add counts one closed window.
func (t *Tally) Add(met bool, judged, compliant time.Duration) {
	t.Windows++
	if met {
		t.Met++
	}
	t.Judged += judged
	t.Compliant += compliant
}

// Percent is the compliance of the tally for an objective of kind k:
// fresh_by counts windows (the share met); max_age counts time (the share
// of the judged time the data was fresh). ok is false when nothing was
// judged.
func (t Tally) Percent(k Kind) (pct float64, ok bool) {
	if k == FreshBy {
		if t.Windows == 0 {
			return 0, false
		}
		return 100 * float64(t.Met) / float64(t.Windows), true
	}
	if t.Judged <= 0 {
		return 0, false
	}
	return 100 * float64(t.Compliant) / float64(t.Judged), true
}

// UpdatesFrom is the earliest time whose updates matter to judge w: its
// start for fresh_by; for max_age, max_age before its start (an older
// update leaves the data too old at the start anyway).
func (o *Objective) UpdatesFrom(w Window) time.Time {
	if o.kind == FreshBy {
		return w.Start
	}
	return w.Start.Add(-o.maxAge)
}

// CurrentFrom is the earliest time whose updates Current at now looks at.
func (o *Objective) CurrentFrom(now time.Time) time.Time {
	if o.kind == FreshBy {
		end := o.prevDeadline(now)
		return o.prevDeadline(end.Add(-time.Nanosecond))
	}
	return o.UpdatesFrom(o.WindowAt(now))
}

package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	// The scheduler cannot work without zone data, and the minimal container
	// images tasuki runs in often lack /usr/share/zoneinfo. The embedded copy
	// is only used when the system has none.
	_ "time/tzdata"

	cron "github.com/netresearch/go-cron"
)

// maxExprLen bounds the length of an expression so that hostile input cannot
// make parsing expensive; real expressions are a few dozen bytes.
const maxExprLen = 1024

// searchYears is how far Next looks ahead for a matching calendar time. Any
// expression without a year field that matches at all matches at least once
// in every 9 years (the rarest is 29 February, 8 years apart around 2100), so
// a zero Next means "never" and Parse can reject expressions that never fire.
const searchYears = 9

// maxLookback bounds how far back Prev searches. It is longer than the gap
// between two fires of any schedule Parse accepts.
const maxLookback = 12 * 366 * 24 * time.Hour

// Schedule is a parsed cron expression bound to a time zone. It is immutable
// and safe for concurrent use, so the scheduler can parse a pipeline's
// schedule once per pipeline version and share it.
type Schedule struct {
	expr string
	loc  *time.Location

	// spec matches wall-clock times. It is evaluated in UTC, used here as a
	// calendar without daylight saving time, and the matching wall-clock times
	// are mapped to instants in loc by this package. Nil for "@every".
	spec *cron.SpecSchedule
	// absolute is set when the hour field covers all 24 hours: such schedules
	// follow absolute time through DST changes (see the package doc).
	absolute bool
	// every is the period of an "@every" schedule, zero otherwise.
	every time.Duration
	// step is the finest spacing between two fires, the first window Prev
	// tries when it searches backwards.
	step time.Duration
}

// ParseError reports an expression that cannot be used, naming the field at
// fault so that the pipeline spec can point its author at the exact spot.
type ParseError struct {
	// Expr is the expression as written.
	Expr string
	// Field names the offending cron field ("minute", "day-of-week", ...);
	// empty when the problem is the expression as a whole.
	Field string
	// Value is the text of the offending field, if Field is set.
	Value string
	// Err is the underlying problem.
	Err error
}

// Error implements error.
func (e *ParseError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("cron expression %q: %s field %q: %v", e.Expr, e.Field, e.Value, e.Err)
	}
	return fmt.Sprintf("cron expression %q: %v", e.Expr, e.Err)
}

// Unwrap returns the underlying problem, for errors.Is and errors.As.
func (e *ParseError) Unwrap() error { return e.Err }

// descriptor returns the cron expression an "@" shorthand stands for, so
// that shorthands get exactly the same treatment (including the DST rules) as
// the expressions written out.
func descriptor(name string) (string, bool) {
	switch name {
	case "@yearly", "@annually":
		return "0 0 1 1 *", true
	case "@monthly":
		return "0 0 1 * *", true
	case "@weekly":
		return "0 0 * * 0", true
	case "@daily", "@midnight":
		return "0 0 * * *", true
	case "@hourly":
		return "0 * * * *", true
	}
	return "", false
}

// fullOptions is the go-cron configuration for a whole expression: five
// fields or six with leading seconds, the Quartz-style extensions (L, W, #n),
// and POSIX day matching (when both day-of-month and day-of-week are
// restricted, either may match), which is what crontab, Kubernetes and
// Airflow do and therefore what pipeline authors expect.
const fullOptions = cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom |
	cron.Month | cron.Dow | cron.Extended | cron.DowOrDom

// LoadLocation resolves an IANA time zone name such as "Asia/Tokyo" for
// Parse. An empty name means def, the default the caller configured (for
// example the server's default zone), so that pipelines without a zone get a
// deliberate one rather than the machine's. "Local" is rejected because a
// schedule must not change meaning with the host it happens to run on.
func LoadLocation(name string, def *time.Location) (*time.Location, error) {
	if name == "" {
		if def == nil {
			return nil, errors.New("time zone: no zone given and no default configured")
		}
		return def, nil
	}
	if name == "Local" {
		return nil, errors.New(`time zone "Local": name an IANA zone such as "Asia/Tokyo" instead; the machine's local zone differs between hosts`)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w", name, err)
	}
	return loc, nil
}

// Parse parses a cron expression to be evaluated in loc. It accepts
//
//   - five fields: minute hour day-of-month month day-of-week;
//   - six fields, the first being seconds;
//   - @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly;
//   - @every <duration> (a Go duration of at least one second, in whole
//     seconds, such as "@every 15m"), firing at multiples of the duration
//     since the Unix epoch.
//
// Fields take numbers, names (JAN, MON), ranges, steps, lists, "*" and "?",
// and the extensions L and W (day-of-month) and #n and #L (day-of-week).
// When both day fields are restricted, a day matches if either matches.
//
// The zone is always given separately: "TZ=" and "CRON_TZ=" prefixes are
// rejected, so that a pipeline has one place that says which zone it is in.
// Errors are *ParseError values that name the offending field. Parse never
// panics, whatever the input.
func Parse(expr string, loc *time.Location) (s *Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			s = nil
			err = &ParseError{Expr: expr, Err: fmt.Errorf("internal error in the cron parser: %v", r)}
		}
	}()
	fail := func(field, value string, err error) (*Schedule, error) {
		return nil, &ParseError{Expr: expr, Field: field, Value: value, Err: err}
	}
	if loc == nil {
		return fail("", "", errors.New("no time zone given"))
	}
	e := strings.TrimSpace(expr)
	switch {
	case e == "":
		return fail("", "", errors.New("empty expression"))
	case len(e) > maxExprLen:
		return fail("", "", fmt.Errorf("longer than %d bytes", maxExprLen))
	case hasPrefixFold(e, "TZ=") || hasPrefixFold(e, "CRON_TZ="):
		return fail("", "", errors.New(`"TZ=" and "CRON_TZ=" prefixes are not accepted; set the schedule's time zone setting instead`))
	}
	if strings.HasPrefix(e, "@") {
		fields := strings.Fields(e)
		name := strings.ToLower(fields[0])
		if name == "@every" {
			return parseEvery(expr, fields, loc)
		}
		std, ok := descriptor(name)
		if !ok {
			return fail("", "", fmt.Errorf("unknown descriptor %q (want @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>)", fields[0]))
		}
		if len(fields) != 1 {
			return fail("", "", fmt.Errorf("unexpected text after %s", fields[0]))
		}
		e = std
	}

	fields := strings.Fields(e)
	names := []string{"second", "minute", "hour", "day-of-month", "month", "day-of-week"}
	opts := []cron.ParseOption{
		cron.Second,
		cron.Minute,
		cron.Hour,
		cron.Dom | cron.DomL | cron.DomW,
		cron.Month,
		cron.Dow | cron.DowNth | cron.DowLast,
	}
	switch len(fields) {
	case 5:
		names, opts = names[1:], opts[1:]
	case 6:
	default:
		return fail("", "", fmt.Errorf("want 5 fields (minute hour day-of-month month day-of-week) or 6 with leading seconds, got %d", len(fields)))
	}
	// Check each field alone first: go-cron's errors do not say which field
	// they are about, and the author needs to know. Names and the L, W and #
	// extensions are case-insensitive; go-cron is given lower case because it
	// mistakes any "H" (as in "THU") for its hash syntax.
	for i, f := range fields {
		if err := checkField(strings.ToLower(f), opts[i]); err != nil {
			return fail(names[i], f, err)
		}
	}
	p, err := cron.TryNewParser(fullOptions)
	if err != nil {
		return fail("", "", fmt.Errorf("configuring the cron parser: %w", err))
	}
	parsed, err := p.Parse(strings.ToLower(strings.Join(fields, " ")))
	if err != nil {
		return fail("", "", err)
	}
	spec, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return fail("", "", fmt.Errorf("unexpected schedule type %T from the cron parser", parsed))
	}
	// Evaluate on the DST-free UTC calendar; resolve() maps to loc.
	spec.Location = time.UTC
	spec.MaxSearchYears = searchYears

	const allHours = 1<<24 - 1
	s = &Schedule{
		expr:     expr,
		loc:      loc,
		spec:     spec,
		absolute: spec.Hour&allHours == allHours,
		step:     time.Minute,
	}
	if spec.Second&(1<<60-1) != 1 { // anything but "second 0 only"
		s.step = time.Second
	}
	if s.wallNext(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return fail("", "", errors.New("never matches a calendar date (such as 30 February)"))
	}
	return s, nil
}

// parseEvery handles "@every <duration>".
func parseEvery(expr string, fields []string, loc *time.Location) (*Schedule, error) {
	fail := func(err error) (*Schedule, error) {
		return nil, &ParseError{Expr: expr, Err: err}
	}
	if len(fields) != 2 {
		return fail(errors.New(`want "@every <duration>", such as "@every 15m"`))
	}
	d, err := time.ParseDuration(fields[1])
	if err != nil {
		return fail(fmt.Errorf("@every: %w", err))
	}
	if d < time.Second {
		return fail(fmt.Errorf("@every %s: the period must be at least 1s", fields[1]))
	}
	if d%time.Second != 0 {
		return fail(fmt.Errorf("@every %s: the period must be a whole number of seconds", fields[1]))
	}
	return &Schedule{expr: expr, loc: loc, every: d, step: d}, nil
}

// checkField validates one lower-cased cron field with a go-cron parser
// configured for that field alone, adding the checks go-cron does not make.
func checkField(f string, opt cron.ParseOption) error {
	for part := range strings.SplitSeq(f, ",") {
		if part == "" {
			return errors.New("empty element in list")
		}
		if part == "h" || strings.HasPrefix(part, "h/") || strings.HasPrefix(part, "h(") {
			return errors.New("H (hashed) values are not supported; write the value out")
		}
	}
	p, err := cron.TryNewParser(opt)
	if err != nil {
		return fmt.Errorf("configuring the cron parser: %w", err)
	}
	if _, err := p.Parse(f); err != nil {
		return err
	}
	return nil
}

// hasPrefixFold is strings.HasPrefix ignoring ASCII case.
func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// String returns the expression as it was given to Parse, for messages and
// the UI.
func (s *Schedule) String() string { return s.expr }

// Location returns the zone the schedule is evaluated in; the times it
// returns are in this zone, ready to display.
func (s *Schedule) Location() *time.Location { return s.loc }

// Next returns the first fire time strictly after after, in the schedule's
// zone. The scheduler stores it as the pipeline's next fire time. It returns
// the zero Time only if there is none within the search horizon, which cannot
// happen for a schedule Parse accepted except near the ends of time.Time's
// range.
func (s *Schedule) Next(after time.Time) time.Time {
	switch {
	case s.every > 0:
		return s.nextEvery(after)
	case s.absolute:
		return s.nextAbsolute(after)
	default:
		return s.nextWall(after)
	}
}

// Prev returns the last fire time strictly before before, in the schedule's
// zone, or the zero Time if there is none in the last twelve years. Cron
// libraries cannot go backwards reliably, so Prev is built on Next: it widens
// a window backwards until the window contains a fire, then bisects for the
// last one. That costs a few hundred calls of Next at most, whatever the
// schedule (a yearly schedule included) and however dense it is.
func (s *Schedule) Prev(before time.Time) time.Time {
	if s.every > 0 {
		return s.prevEvery(before)
	}
	// Gallop: find a window [before-w, before) that holds a fire.
	var a time.Time // a fire < before
	for w := s.step; ; w *= 2 {
		if f := s.Next(before.Add(-w)); !f.IsZero() && f.Before(before) {
			a = f
			break
		}
		if w > maxLookback {
			return time.Time{}
		}
	}
	// Bisect: a is a fire, and there is no fire in (b, before). Every round
	// halves b-a at least, so 64 rounds reach nanoseconds; the bound and the
	// progress checks only guard against a Next that misbehaves.
	b := before.Add(-time.Nanosecond)
	for range 128 {
		n := s.Next(a)
		if n.IsZero() || !n.After(a) || n.After(b) {
			return a
		}
		a = n
		if !a.Before(b) {
			return a
		}
		mid := a.Add(b.Sub(a) / 2)
		if m := s.Next(mid); !m.IsZero() && m.After(a) && !m.After(b) {
			a = m
		} else {
			b = mid
		}
	}
	return a
}

// Fires reports whether t is one of the schedule's fire times, for checking
// an interval end that came from outside (an API call, an old row).
func (s *Schedule) Fires(t time.Time) bool {
	return s.Next(t.Add(-time.Nanosecond)).Equal(t)
}

// IntervalEndingAt returns the data interval of the run that fires at end:
// [Prev(end), end). end must be a fire time of the schedule; anything else is
// an error wrapping ErrNotFireTime, because an unaligned interval would break
// the one-run-per-interval rule.
func (s *Schedule) IntervalEndingAt(end time.Time) (Interval, error) {
	if !s.Fires(end) {
		return Interval{}, fmt.Errorf("interval ending at %s for schedule %q: %w", end.Format(time.RFC3339Nano), s.expr, ErrNotFireTime)
	}
	start := s.Prev(end)
	if start.IsZero() {
		return Interval{}, fmt.Errorf("interval ending at %s for schedule %q: no earlier fire time within %v", end.Format(time.RFC3339Nano), s.expr, maxLookback)
	}
	return Interval{Start: start, End: end.In(s.loc)}, nil
}

// ErrNotFireTime is returned (wrapped) when a time that should be a fire time
// of a schedule is not one.
var ErrNotFireTime = errors.New("not a fire time of the schedule")

package spec

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/schedule"
)

// Deadline is when each run of a pipeline should have finished
// successfully: at a wall-clock time (At, read in Timezone), or a duration
// after the run's start of reckoning (After). Exactly one of At and After is
// given. The start of reckoning is the run's interval end when it has an
// interval, its creation otherwise; the deadline is fixed once, when the
// run is created (see Time).
type Deadline struct {
	At       string   `yaml:"at,omitempty" doc:"A time of day, HH:MM or HH:MM:SS (24-hour clock), read in timezone: the deadline is the first such time at or after the run's interval end (after its creation for a run without an interval). Daylight saving: a time in a skipped hour is the first instant after the gap; a time in a repeated hour its first occurrence." aka:"time,by,until"`
	Timezone string   `yaml:"timezone,omitempty" doc:"IANA time zone at is read in, such as Asia/Tokyo. Default: the schedule's timezone, then the server's timezone setting." aka:"tz,zone,time_zone"`
	After    Duration `yaml:"after,omitempty" doc:"The deadline is this long after the run's interval end (after its creation for a run without an interval), such as 90m." aka:"within,in,duration"`
}

// ClockTime parses At (HH:MM or HH:MM:SS) into its hour, minute and second.
func (d *Deadline) ClockTime() (hour, min, sec int, err error) {
	parts := strings.Split(d.At, ":")
	if len(parts) != 2 && len(parts) != 3 {
		return 0, 0, 0, errors.New("expected a time of day as HH:MM or HH:MM:SS")
	}
	var v [3]int
	limits := [3]int{23, 59, 59}
	names := [3]string{"hour", "minute", "second"}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || len(p) == 0 || len(p) > 2 || p[0] == '+' || p[0] == '-' {
			return 0, 0, 0, errors.New("expected a time of day as HH:MM or HH:MM:SS")
		}
		if n > limits[i] {
			return 0, 0, 0, fmt.Errorf("the %s %d is out of range (0 to %d)", names[i], n, limits[i])
		}
		v[i] = n
	}
	return v[0], v[1], v[2], nil
}

// Location returns the zone At is read in: the deadline's timezone, else
// the schedule's (sched may be nil), else def.
func (d *Deadline) Location(sched *Schedule, def *time.Location) (*time.Location, error) {
	name := d.Timezone
	if name == "" && sched != nil {
		name = sched.Timezone
	}
	loc, err := schedule.LoadLocation(name, def)
	if err != nil {
		return nil, fmt.Errorf("deadline: %w", err)
	}
	return loc, nil
}

// Time returns the deadline of a run whose start of reckoning is base (its
// interval end, or its creation when it has no interval): base + After, or
// the first time At in loc at or after base. A wall-clock time the clocks
// skip (a spring-forward gap) is the first instant after the gap; one they
// repeat is its first occurrence, as schedules fire.
func (d *Deadline) Time(base time.Time, loc *time.Location) (time.Time, error) {
	if d.After > 0 {
		return base.Add(d.After.D()), nil
	}
	h, m, s, err := d.ClockTime()
	if err != nil {
		return time.Time{}, fmt.Errorf("deadline.at %q: %w", d.At, err)
	}
	// A daily schedule at that time of day: its next fire at or after base
	// is the deadline, with the schedules' handling of daylight saving.
	sch, err := schedule.Parse(fmt.Sprintf("%d %d %d * * *", s, m, h), loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("deadline.at %q: %w", d.At, err)
	}
	next := sch.Next(base.Add(-time.Nanosecond))
	if next.IsZero() {
		return time.Time{}, fmt.Errorf("deadline.at %q: no such time after %s", d.At, base.Format(time.RFC3339))
	}
	return next, nil
}

// deadline checks a pipeline's deadline: exactly one of at and after, a
// time of day that parses, a known time zone, and a timezone only with at.
func (c *checker) deadline(p *Pipeline) {
	d := p.Deadline
	if d == nil {
		return
	}
	at, ok := c.at(d)
	if !ok {
		return
	}
	switch {
	case d.At == "" && d.After == 0:
		if _, given := c.locs.at(&d.After); given {
			aat, _ := c.at(&d.After)
			c.errorf(aat, "deadline.after: expected a duration greater than 0s")
			return
		}
		c.errorf(at, "deadline: expected at (a time of day such as \"20:00\") or after (a duration such as 90m)")
		return
	case d.At != "" && d.After != 0:
		c.errorf(at, "deadline: has at and after: give one of them")
		return
	}
	if d.At != "" {
		if _, _, _, err := d.ClockTime(); err != nil {
			aat, _ := c.at(&d.At)
			c.errorf(aat, "deadline.at: %v, got %s", err, quoteShort(d.At))
		}
	}
	if d.Timezone != "" {
		zat, _ := c.at(&d.Timezone)
		if d.At == "" {
			c.errorf(zat, "deadline.timezone: applies to at; a deadline given by after needs no time zone")
		} else if _, err := schedule.LoadLocation(d.Timezone, time.UTC); err != nil {
			c.errorf(zat, "deadline.timezone: unknown time zone %q: expected an IANA name such as Asia/Tokyo or Europe/Berlin", d.Timezone)
		}
	}
}

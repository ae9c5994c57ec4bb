package slo

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kind says which promise an objective makes.
type Kind string

// The kinds of objective.
const (
	// FreshBy: on each selected day, the data was updated since the
	// previous deadline and by this one.
	FreshBy Kind = "fresh_by"
	// MaxAge: during each selected day's period, the newest update is
	// never older than the maximum age.
	MaxAge Kind = "max_age"
)

// Spec is an objective as a pipeline file writes it.
type Spec struct {
	FreshBy  string        // "09:00"
	MaxAge   time.Duration // 15m
	During   string        // "09:00-15:00" or "09:00-15:00 Asia/Tokyo"
	Days     []string      // daily, weekdays, weekends, mon..sun; empty: daily
	Timezone string        // IANA name; empty: the default zone given to New
}

// Clock is a time of day, in minutes after midnight (0 to 1439).
type Clock int

// String renders the time of day as HH:MM.
func (c Clock) String() string { return fmt.Sprintf("%02d:%02d", int(c)/60, int(c)%60) }

// ParseClock reads a time of day written HH:MM (24-hour; H:MM too).
func ParseClock(s string) (Clock, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(h) < 1 || len(h) > 2 || len(m) != 2 || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("expected a time of day as HH:MM from 00:00 to 23:59, such as \"09:00\", got %q", s)
	}
	return Clock(hh*60 + mm), nil
}

// Days is the set of days an objective judges, by time.Weekday.
type Days [7]bool

// dayNames are the names a day may be given by, to its weekday.
var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
	"sunday": time.Sunday, "monday": time.Monday, "tuesday": time.Tuesday, "wednesday": time.Wednesday,
	"thursday": time.Thursday, "friday": time.Friday, "saturday": time.Saturday,
}

// ParseDays reads the days of an objective: one of daily, weekdays
// (Monday to Friday) and weekends (Saturday and Sunday), or a list of day
// names (mon..sun, or monday..sunday). No names means daily.
func ParseDays(names []string) (Days, error) {
	var d Days
	if len(names) == 0 {
		return allDays(), nil
	}
	if len(names) == 1 {
		switch strings.ToLower(names[0]) {
		case "daily", "every day", "everyday":
			return allDays(), nil
		case "weekdays":
			for w := time.Monday; w <= time.Friday; w++ {
				d[w] = true
			}
			return d, nil
		case "weekends", "weekend":
			d[time.Saturday], d[time.Sunday] = true, true
			return d, nil
		}
	}
	for _, n := range names {
		w, ok := dayNames[strings.ToLower(strings.TrimSpace(n))]
		if !ok {
			if len(names) > 1 && slices.Contains([]string{"daily", "weekdays", "weekends"}, strings.ToLower(n)) {
				return Days{}, fmt.Errorf("%q stands alone (days: %s); a list names days: mon, tue, wed, thu, fri, sat, sun", n, n)
			}
			return Days{}, fmt.Errorf("unknown day %q: expected daily, weekdays, weekends, or a list of mon, tue, wed, thu, fri, sat, sun", n)
		}
		if d[w] {
			return Days{}, fmt.Errorf("day %q is listed twice", n)
		}
		d[w] = true
	}
	return d, nil
}

func allDays() Days { return Days{true, true, true, true, true, true, true} }

// String names the days as ParseDays reads them: daily, weekdays, weekends
// or "mon,wed,fri".
func (d Days) String() string {
	switch d {
	case allDays():
		return "daily"
	case Days{false, true, true, true, true, true, false}:
		return "weekdays"
	case Days{true, false, false, false, false, false, true}:
		return "weekends"
	}
	return strings.Join(d.Names(), ",")
}

// Names lists the selected days, Monday first, as mon..sun.
func (d Days) Names() []string {
	var out []string
	for i := 1; i <= 7; i++ {
		w := time.Weekday(i % 7)
		if d[w] {
			out = append(out, strings.ToLower(w.String()[:3]))
		}
	}
	return out
}

// During is the daily period of a max_age objective: From until To, the
// next day's To when To is not after From (22:00-02:00 spans midnight;
// 00:00-00:00 is the whole day). Zone is the zone the string names, or
// "" for the objective's.
type During struct {
	From, To Clock
	Zone     string
}

// ParseDuring reads a period written "HH:MM-HH:MM", optionally followed by
// an IANA time zone: "09:00-15:00 Asia/Tokyo". It does not load the zone.
func ParseDuring(s string) (During, error) {
	fields := strings.Fields(s)
	bad := fmt.Errorf("expected a daily period such as \"09:00-15:00\" or \"09:00-15:00 Asia/Tokyo\", got %q", s)
	var span, zone string
	switch {
	case len(fields) == 2 && strings.Contains(fields[0], "-"):
		span, zone = fields[0], fields[1]
	case len(fields) == 1:
		span = fields[0]
	case len(fields) == 3 && fields[1] == "-":
		span = fields[0] + "-" + fields[2]
	case len(fields) == 4 && fields[1] == "-":
		span, zone = fields[0]+"-"+fields[2], fields[3]
	default:
		return During{}, bad
	}
	from, to, ok := strings.Cut(span, "-")
	if !ok {
		return During{}, bad
	}
	f, err := ParseClock(from)
	if err != nil {
		return During{}, fmt.Errorf("%w (the start)", bad)
	}
	t, err := ParseClock(to)
	if err != nil {
		return During{}, fmt.Errorf("%w (the end)", bad)
	}
	return During{From: f, To: t, Zone: zone}, nil
}

// String renders the period as ParseDuring reads it, without the zone.
func (d During) String() string {
	if d.From == d.To && d.From.String() == "00:00" {
		return "00:00-24:00" // the whole day (no period given): midnight to midnight
	}
	return d.From.String() + "-" + d.To.String()
}

// LoadZone loads an IANA time zone for an objective; "" is def. "Local"
// is refused: it differs between hosts.
func LoadZone(name string, def *time.Location) (*time.Location, error) {
	switch name {
	case "":
		if def == nil {
			return nil, errors.New("no time zone given and no default")
		}
		return def, nil
	case "Local":
		return nil, errors.New(`time zone "Local": name an IANA zone such as Asia/Tokyo instead; the machine's local zone differs between hosts`)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q: expected an IANA name such as Asia/Tokyo or Europe/Berlin", name)
	}
	return loc, nil
}

// Objective is a parsed objective, ready to be judged.
type Objective struct {
	kind    Kind
	loc     *time.Location
	days    Days
	freshBy Clock
	maxAge  time.Duration
	during  During
}

// New parses an objective; def is the time zone when the spec names none
// (the server's). Exactly one of FreshBy and MaxAge must be given; During
// goes with MaxAge only (without it the period is the whole day).
func New(s Spec, def *time.Location) (*Objective, error) {
	o := &Objective{}
	switch {
	case s.FreshBy != "" && s.MaxAge != 0:
		return nil, errors.New("fresh_by and max_age are two kinds of objective: give one")
	case s.FreshBy != "":
		o.kind = FreshBy
		c, err := ParseClock(s.FreshBy)
		if err != nil {
			return nil, fmt.Errorf("fresh_by: %w", err)
		}
		o.freshBy = c
		if s.During != "" {
			return nil, errors.New("during goes with max_age; a fresh_by objective is judged at its time of day")
		}
	case s.MaxAge > 0:
		o.kind = MaxAge
		o.maxAge = s.MaxAge
	case s.MaxAge < 0:
		return nil, fmt.Errorf("max_age: expected a positive duration, got %s", s.MaxAge)
	default:
		return nil, errors.New("expected fresh_by (a time of day) or max_age (a duration)")
	}
	zone := s.Timezone
	if o.kind == MaxAge && s.During != "" {
		d, err := ParseDuring(s.During)
		if err != nil {
			return nil, fmt.Errorf("during: %w", err)
		}
		if d.Zone != "" && s.Timezone != "" && d.Zone != s.Timezone {
			return nil, fmt.Errorf("during names the time zone %s and timezone %s: give one", d.Zone, s.Timezone)
		}
		if d.Zone != "" {
			zone = d.Zone
		}
		o.during = d
	}
	loc, err := LoadZone(zone, def)
	if err != nil {
		return nil, err
	}
	o.loc = loc
	if o.days, err = ParseDays(s.Days); err != nil {
		return nil, fmt.Errorf("days: %w", err)
	}
	return o, nil
}

// Kind says which promise the objective makes.
func (o *Objective) Kind() Kind { return o.kind }

// Location is the time zone the objective's times of day are read in.
func (o *Objective) Location() *time.Location { return o.loc }

// Days are the days judged.
func (o *Objective) Days() Days { return o.days }

// FreshByClock is the deadline's time of day (fresh_by objectives).
func (o *Objective) FreshByClock() Clock { return o.freshBy }

// MaxAgeLimit is the longest the data may go without an update (max_age
// objectives).
func (o *Objective) MaxAgeLimit() time.Duration { return o.maxAge }

// Period is the daily period of a max_age objective.
func (o *Objective) Period() During { return o.during }

// String describes the objective in one canonical line, such as "fresh by
// 09:00 Asia/Tokyo, weekdays" or "max age 15m during 09:00-15:00
// Asia/Tokyo, daily": two objectives that judge the same way read the
// same.
func (o *Objective) String() string {
	if o.kind == FreshBy {
		return fmt.Sprintf("fresh by %s %s, %s", o.freshBy, o.loc, o.days)
	}
	return fmt.Sprintf("max age %s during %s %s, %s", o.maxAge, o.during, o.loc, o.days)
}

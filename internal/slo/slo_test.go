package slo

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func mustNew(t *testing.T, s Spec) *Objective {
	t.Helper()
	o, err := New(s, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// ts parses an RFC 3339 time.
func ts(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func times(t *testing.T, ss ...string) []time.Time {
	t.Helper()
	out := make([]time.Time, len(ss))
	for i, s := range ss {
		out[i] = ts(t, s)
	}
	return out
}

// TestWallTime reads times of day on daylight saving days: a skipped
// time is the instant of the jump, a repeated one its first occurrence.
func TestWallTime(t *testing.T) {
	for _, c := range []struct {
		zone, day, clock, want string
	}{
		{"Asia/Tokyo", "2026-03-09", "09:00", "2026-03-09T00:00:00Z"},
		{"Europe/Berlin", "2026-03-29", "02:30", "2026-03-29T01:00:00Z"}, // skipped: 03:00 CEST
		{"Europe/Berlin", "2026-03-29", "03:00", "2026-03-29T01:00:00Z"},
		{"Europe/Berlin", "2026-03-29", "01:59", "2026-03-29T00:59:00Z"},
		{"Europe/Berlin", "2026-10-25", "02:30", "2026-10-25T00:30:00Z"}, // twice: the first, CEST
		{"Europe/Berlin", "2026-10-25", "03:00", "2026-10-25T02:00:00Z"},
		{"America/New_York", "2026-03-08", "02:15", "2026-03-08T07:00:00Z"}, // skipped: 03:00 EDT
		{"America/New_York", "2026-03-08", "09:00", "2026-03-08T13:00:00Z"},
		{"America/New_York", "2026-03-07", "09:00", "2026-03-07T14:00:00Z"},
		{"America/New_York", "2026-11-01", "01:30", "2026-11-01T05:30:00Z"}, // twice: the first, EDT
		{"America/New_York", "2026-11-01", "00:00", "2026-11-01T04:00:00Z"},
	} {
		day, _ := time.Parse(time.DateOnly, c.day)
		clk, err := ParseClock(c.clock)
		if err != nil {
			t.Fatal(err)
		}
		got := wallTime(mustZone(t, c.zone), day, clk)
		if !got.Equal(ts(t, c.want)) {
			t.Errorf("%s %s %s = %s, want %s", c.zone, c.day, c.clock, got.UTC().Format(time.RFC3339), c.want)
		}
	}
}

// fmtWindows renders windows in loc, compactly.
func fmtWindows(ws []Window, loc *time.Location) string {
	var b strings.Builder
	for _, w := range ws {
		fmt.Fprintf(&b, "%s..%s (%s)\n", w.Start.In(loc).Format("Mon 01-02 15:04 MST"), w.End.In(loc).Format("Mon 01-02 15:04 MST"), w.End.Sub(w.Start))
	}
	return b.String()
}

// TestWindows lists windows across weekends and daylight saving changes.
func TestWindows(t *testing.T) {
	for _, c := range []struct {
		name     string
		spec     Spec
		from, to string
		want     string
	}{
		{"weekdays: Monday's window opens at Friday's deadline",
			Spec{FreshBy: "09:00", Timezone: "Asia/Tokyo", Days: []string{"weekdays"}}, "2026-03-05T12:00:00+09:00", "2026-03-10T10:00:00+09:00", `
Thu 03-05 09:00 JST..Fri 03-06 09:00 JST (24h0m0s)
Fri 03-06 09:00 JST..Mon 03-09 09:00 JST (72h0m0s)
Mon 03-09 09:00 JST..Tue 03-10 09:00 JST (24h0m0s)
Tue 03-10 09:00 JST..Wed 03-11 09:00 JST (24h0m0s)
`},
		{"weekends", Spec{FreshBy: "07:30", Timezone: "Asia/Tokyo", Days: []string{"weekends"}}, "2026-03-07T00:00:00+09:00", "2026-03-15T00:00:00+09:00", `
Sun 03-01 07:30 JST..Sat 03-07 07:30 JST (144h0m0s)
Sat 03-07 07:30 JST..Sun 03-08 07:30 JST (24h0m0s)
Sun 03-08 07:30 JST..Sat 03-14 07:30 JST (144h0m0s)
Sat 03-14 07:30 JST..Sun 03-15 07:30 JST (24h0m0s)
`},
		{"spring forward in Berlin: a 23 hour window",
			Spec{FreshBy: "09:00", Timezone: "Europe/Berlin"}, "2026-03-28T10:00:00+01:00", "2026-03-30T08:00:00+02:00", `
Sat 03-28 09:00 CET..Sun 03-29 09:00 CEST (23h0m0s)
Sun 03-29 09:00 CEST..Mon 03-30 09:00 CEST (24h0m0s)
`},
		{"fall back in Berlin: a 25 hour window",
			Spec{FreshBy: "09:00", Timezone: "Europe/Berlin"}, "2026-10-24T10:00:00+02:00", "2026-10-25T10:00:00+01:00", `
Sat 10-24 09:00 CEST..Sun 10-25 09:00 CET (25h0m0s)
Sun 10-25 09:00 CET..Mon 10-26 09:00 CET (24h0m0s)
`},
		{"a deadline in the skipped hour is the jump",
			Spec{FreshBy: "02:30", Timezone: "America/New_York"}, "2026-03-07T12:00:00-05:00", "2026-03-09T00:00:00-04:00", `
Sat 03-07 02:30 EST..Sun 03-08 03:00 EDT (23h30m0s)
Sun 03-08 03:00 EDT..Mon 03-09 02:30 EDT (23h30m0s)
`},
		{"max_age periods on weekdays",
			Spec{MaxAge: 15 * time.Minute, During: "09:00-15:00 Asia/Tokyo", Days: []string{"weekdays"}}, "2026-03-06T10:00:00+09:00", "2026-03-10T00:00:00+09:00", `
Fri 03-06 09:00 JST..Fri 03-06 15:00 JST (6h0m0s)
Mon 03-09 09:00 JST..Mon 03-09 15:00 JST (6h0m0s)
`},
		{"a period across the change to summer time is an hour shorter",
			Spec{MaxAge: time.Hour, During: "00:00-06:00", Timezone: "America/New_York", Days: []string{"sun"}}, "2026-03-08T00:00:00-05:00", "2026-03-08T12:00:00-04:00", `
Sun 03-08 00:00 EST..Sun 03-08 06:00 EDT (5h0m0s)
`},
		{"and across the change back an hour longer",
			Spec{MaxAge: time.Hour, During: "22:00-06:00", Timezone: "America/New_York", Days: []string{"sat"}}, "2026-10-31T00:00:00-04:00", "2026-11-02T00:00:00-05:00", `
Sat 10-31 22:00 EDT..Sun 11-01 06:00 EST (9h0m0s)
`},
		{"a period the clock skips is left out",
			Spec{MaxAge: time.Hour, During: "02:00-03:00", Timezone: "Europe/Berlin"}, "2026-03-28T00:00:00+01:00", "2026-03-31T00:00:00+02:00", `
Sat 03-28 02:00 CET..Sat 03-28 03:00 CET (1h0m0s)
Mon 03-30 02:00 CEST..Mon 03-30 03:00 CEST (1h0m0s)
`},
		{"no during: the whole day",
			Spec{MaxAge: time.Hour, Timezone: "Asia/Tokyo"}, "2026-03-06T10:00:00+09:00", "2026-03-07T01:00:00+09:00", `
Fri 03-06 00:00 JST..Sat 03-07 00:00 JST (24h0m0s)
Sat 03-07 00:00 JST..Sun 03-08 00:00 JST (24h0m0s)
`},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := mustNew(t, c.spec)
			got := fmtWindows(o.Windows(ts(t, c.from), ts(t, c.to)), o.Location())
			if want := strings.TrimPrefix(c.want, "\n"); got != want {
				t.Errorf("windows:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// fmtResult renders a judgement compactly in loc.
func fmtResult(r Result, loc *time.Location) string {
	s := string(r.State)
	if r.Judged > 0 {
		s += fmt.Sprintf(" %s/%s", r.Compliant, r.Judged)
	}
	for _, b := range r.Breaches {
		s += fmt.Sprintf(" [%s %s", b.Start.In(loc).Format("01-02 15:04"), b.Length())
		if b.Open {
			s += " open"
		}
		s += "]"
	}
	return s
}

// TestJudge judges windows from histories of updates.
func TestJudge(t *testing.T) {
	tokyo := "Asia/Tokyo"
	daily := Spec{FreshBy: "09:00", Timezone: tokyo}
	for _, c := range []struct {
		name    string
		spec    Spec
		window  string // the window holding this time
		updates []string
		since   string // default: long before
		now     string
		want    string
	}{
		{"updated before the deadline", daily, "2026-03-09T09:00:00+09:00",
			[]string{"2026-03-09T02:10:00+09:00"}, "", "2026-03-09T12:00:00+09:00", "met"},
		{"an update at the deadline counts", daily, "2026-03-09T09:00:00+09:00",
			[]string{"2026-03-09T09:00:00+09:00"}, "", "2026-03-09T12:00:00+09:00", "met"},
		{"an update at the previous deadline counts for that one", daily, "2026-03-09T09:00:00+09:00",
			[]string{"2026-03-08T09:00:00+09:00", "2026-03-09T10:30:00+09:00"}, "", "2026-03-09T12:00:00+09:00", "breached [03-09 09:00 1h30m0s]"},
		{"no update yet, deadline ahead", daily, "2026-03-09T09:00:00+09:00",
			[]string{"2026-03-08T08:00:00+09:00"}, "", "2026-03-09T08:59:00+09:00", "pending"},
		{"missed, still open", daily, "2026-03-09T09:00:00+09:00",
			nil, "", "2026-03-09T09:20:00+09:00", "breached [03-09 09:00 20m0s open]"},
		{"missed, ends at the next deadline without data", daily, "2026-03-09T09:00:00+09:00",
			nil, "", "2026-03-11T00:00:00+09:00", "breached [03-09 09:00 24h0m0s]"},
		{"an update after now is not seen", daily, "2026-03-09T09:00:00+09:00",
			[]string{"2026-03-09T08:00:00+09:00"}, "", "2026-03-09T07:00:00+09:00", "pending"},
		{"weekdays: a Saturday update counts for Monday",
			Spec{FreshBy: "09:00", Timezone: tokyo, Days: []string{"weekdays"}}, "2026-03-09T09:00:00+09:00",
			[]string{"2026-03-07T02:00:00+09:00"}, "", "2026-03-09T12:00:00+09:00", "met"},
		{"weekdays: a Friday breach lasts until the weekend's update",
			Spec{FreshBy: "09:00", Timezone: tokyo, Days: []string{"weekdays"}}, "2026-03-06T09:00:00+09:00",
			[]string{"2026-03-07T02:00:00+09:00"}, "", "2026-03-09T12:00:00+09:00", "breached [03-06 09:00 17h0m0s]"},
		{"Berlin, spring forward: 09:00 CEST is an hour earlier in UTC",
			Spec{FreshBy: "09:00", Timezone: "Europe/Berlin"}, "2026-03-29T09:00:00+02:00",
			[]string{"2026-03-29T07:30:00Z"}, "", "2026-03-29T12:00:00+02:00", "breached [03-29 09:00 30m0s]"},
		{"Berlin, fall back: the update at 08:30 CET is in time",
			Spec{FreshBy: "09:00", Timezone: "Europe/Berlin"}, "2026-10-25T09:00:00+01:00",
			[]string{"2026-10-25T07:30:00Z"}, "", "2026-10-25T12:00:00+01:00", "met"},

		{"max_age: fresh all day", Spec{MaxAge: 15 * time.Minute, During: "09:00-10:00 Asia/Tokyo"}, "2026-03-09T09:00:00+09:00",
			[]string{"2026-03-09T08:50:00+09:00", "2026-03-09T09:05:00+09:00", "2026-03-09T09:20:00+09:00", "2026-03-09T09:35:00+09:00", "2026-03-09T09:50:00+09:00"},
			"", "2026-03-09T11:00:00+09:00", "met 1h0m0s/1h0m0s"},
		{"max_age: stale at the start, and a gap", Spec{MaxAge: 15 * time.Minute, During: "09:00-10:00 Asia/Tokyo"}, "2026-03-09T09:00:00+09:00",
			[]string{"2026-03-09T08:30:00+09:00", "2026-03-09T09:10:00+09:00", "2026-03-09T09:40:00+09:00"},
			"", "2026-03-09T11:00:00+09:00", "breached 30m0s/1h0m0s [03-09 09:00 10m0s] [03-09 09:25 15m0s] [03-09 09:55 5m0s]"},
		{"max_age: stale at the end", Spec{MaxAge: 15 * time.Minute, During: "09:00-10:00 Asia/Tokyo"}, "2026-03-09T09:00:00+09:00",
			[]string{"2026-03-09T09:00:00+09:00", "2026-03-09T09:30:00+09:00"},
			"", "2026-03-09T11:00:00+09:00", "breached 30m0s/1h0m0s [03-09 09:15 15m0s] [03-09 09:45 15m0s]"},
		{"max_age: in progress and stale now", Spec{MaxAge: 15 * time.Minute, During: "09:00-10:00 Asia/Tokyo"}, "2026-03-09T09:00:00+09:00",
			[]string{"2026-03-09T09:00:00+09:00"},
			"", "2026-03-09T09:25:00+09:00", "breached 15m0s/25m0s [03-09 09:15 10m0s open]"},
		{"max_age: in progress, a breach over, fresh now", Spec{MaxAge: 15 * time.Minute, During: "09:00-10:00 Asia/Tokyo"}, "2026-03-09T09:00:00+09:00",
			[]string{"2026-03-09T09:00:00+09:00", "2026-03-09T09:20:00+09:00"},
			"", "2026-03-09T09:25:00+09:00", "met 20m0s/25m0s [03-09 09:15 5m0s]"},
		{"max_age: seen only now, fresh", Spec{MaxAge: 15 * time.Minute, During: "09:00-10:00 Asia/Tokyo"}, "2026-03-09T09:00:00+09:00",
			[]string{"2026-03-09T09:25:00+09:00"}, "2026-03-09T09:30:00+09:00", "2026-03-09T09:30:00+09:00", "met"},
		{"max_age: seen only now, stale", Spec{MaxAge: 15 * time.Minute, During: "09:00-10:00 Asia/Tokyo"}, "2026-03-09T09:00:00+09:00",
			[]string{"2026-03-09T09:05:00+09:00"}, "2026-03-09T09:30:00+09:00", "2026-03-09T09:30:00+09:00", "breached"},
		{"max_age: not begun", Spec{MaxAge: 15 * time.Minute, During: "09:00-10:00 Asia/Tokyo"}, "2026-03-09T09:00:00+09:00",
			nil, "", "2026-03-09T08:00:00+09:00", "pending"},
		{"max_age: only the time after since is judged", Spec{MaxAge: 15 * time.Minute, During: "09:00-10:00 Asia/Tokyo"}, "2026-03-09T09:00:00+09:00",
			[]string{"2026-03-09T09:40:00+09:00"}, "2026-03-09T09:30:00+09:00", "2026-03-09T11:00:00+09:00", "breached 15m0s/30m0s [03-09 09:30 10m0s] [03-09 09:55 5m0s]"},
		{"max_age across the change to summer time: 5 hours judged", Spec{MaxAge: time.Hour, During: "00:00-06:00", Timezone: "America/New_York"}, "2026-03-08T01:00:00-05:00",
			[]string{"2026-03-08T05:30:00Z", "2026-03-08T06:30:00Z", "2026-03-08T08:00:00Z", "2026-03-08T09:30:00Z"},
			"", "2026-03-08T12:00:00-04:00", "breached 3h30m0s/5h0m0s [03-08 05:00 30m0s] [03-08 07:30 30m0s] [03-08 09:00 30m0s]"},
		{"max_age across the change back: 7 hours judged", Spec{MaxAge: 2 * time.Hour, During: "00:00-06:00", Timezone: "America/New_York"}, "2026-11-01T01:00:00-04:00",
			[]string{"2026-11-01T03:00:00Z", "2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z", "2026-11-01T08:00:00Z"},
			"", "2026-11-01T12:00:00-05:00", "breached 6h0m0s/7h0m0s [11-01 10:00 1h0m0s]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := mustNew(t, c.spec)
			since := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
			if c.since != "" {
				since = ts(t, c.since)
			}
			r := o.Judge(o.WindowAt(ts(t, c.window)), times(t, c.updates...), since, ts(t, c.now))
			if got := fmtResult(r, time.UTC); got != c.want {
				// Breach starts are shown in UTC for the New York rows.
				if got2 := fmtResult(r, o.Location()); got2 != c.want {
					t.Errorf("judged %s, want %s", got2, c.want)
				}
			}
		})
	}
}

// TestCurrent follows an objective's state through a day.
func TestCurrent(t *testing.T) {
	fresh := mustNew(t, Spec{FreshBy: "09:00", Timezone: "Asia/Tokyo"})
	maxAge := mustNew(t, Spec{MaxAge: 15 * time.Minute, During: "09:00-15:00 Asia/Tokyo"})
	since := ts(t, "2026-03-01T00:00:00Z")
	updates := times(t, "2026-03-08T08:00:00+09:00", "2026-03-09T09:40:00+09:00", "2026-03-09T09:50:00+09:00", "2026-03-09T10:20:00+09:00")
	for _, c := range []struct {
		o    *Objective
		now  string
		want string
	}{
		{fresh, "2026-03-09T08:00:00+09:00", "pending"},
		{fresh, "2026-03-09T09:00:00+09:00", "breached [03-09 00:00 0s open]"},
		{fresh, "2026-03-09T09:30:00+09:00", "breached [03-09 00:00 30m0s open]"},
		{fresh, "2026-03-09T09:40:00+09:00", "met"}, // the update counts for tomorrow
		{fresh, "2026-03-10T08:00:00+09:00", "met"},
		{fresh, "2026-03-10T09:00:00+09:00", "pending"}, // met at its deadline; the next window begins
		{fresh, "2026-03-11T09:00:01+09:00", "breached [03-11 00:00 1s open]"},
		{maxAge, "2026-03-09T08:00:00+09:00", "pending"},
		{maxAge, "2026-03-09T09:30:00+09:00", "breached 0s/30m0s [03-09 00:00 30m0s open]"},
		{maxAge, "2026-03-09T09:45:00+09:00", "met 5m0s/45m0s [03-09 00:00 40m0s]"},
		{maxAge, "2026-03-09T10:10:00+09:00", "breached 25m0s/1h10m0s [03-09 00:00 40m0s] [03-09 01:05 5m0s open]"},
		{maxAge, "2026-03-09T16:00:00+09:00", "pending"},
	} {
		if got := fmtResult(c.o.Current(updates, since, ts(t, c.now)), time.UTC); got != c.want {
			t.Errorf("%s at %s: %s, want %s", c.o, c.now, got, c.want)
		}
	}
	if got := fmtResult(fresh.Current(nil, ts(t, "2026-03-09T09:10:00+09:00"), ts(t, "2026-03-09T09:20:00+09:00")), time.UTC); got != "pending" {
		t.Errorf("a deadline before the objective was seen is not judged: %s", got)
	}
}

// TestCompliance sums histories of windows into percentages over 7, 30
// and 90 days, as the server does.
func TestCompliance(t *testing.T) {
	loc := mustZone(t, "Europe/Berlin")
	day := func(s string) time.Time {
		d, _ := time.ParseInLocation(time.DateOnly, s, loc)
		return d
	}
	at := func(d time.Time, hhmm string) time.Time {
		c, _ := ParseClock(hhmm)
		return wallTime(loc, date(d, loc), c)
	}
	for _, c := range []struct {
		name string
		spec Spec
		// history makes the update times over the 90 days before now.
		history func(now time.Time) []time.Time
		want    string // compliance over 7, 30 and 90 days
	}{
		{"every day on time", Spec{FreshBy: "09:00", Timezone: "Europe/Berlin"}, func(now time.Time) []time.Time {
			var out []time.Time
			for d := now.AddDate(0, 0, -100); !d.After(now); d = d.AddDate(0, 0, 1) {
				out = append(out, at(d, "06:00"))
			}
			return out
		}, "100.0 100.0 100.0"},
		{"late every Monday (weekdays)", Spec{FreshBy: "09:00", Timezone: "Europe/Berlin", Days: []string{"weekdays"}}, func(now time.Time) []time.Time {
			var out []time.Time
			for d := now.AddDate(0, 0, -100); !d.After(now); d = d.AddDate(0, 0, 1) {
				switch d.Weekday() {
				case time.Monday:
					out = append(out, at(d, "10:00"))
				case time.Tuesday, time.Wednesday, time.Thursday, time.Friday:
					out = append(out, at(d, "06:00"))
				}
			}
			return out
		}, "80.0 81.8 79.7"},
		{"nothing after the first month", Spec{FreshBy: "09:00", Timezone: "Europe/Berlin"}, func(now time.Time) []time.Time {
			var out []time.Time
			for d := now.AddDate(0, 0, -100); d.Before(now.AddDate(0, 0, -60)); d = d.AddDate(0, 0, 1) {
				out = append(out, at(d, "06:00"))
			}
			return out
		}, "0.0 0.0 32.2"}, // 29 of 90 deadlines met: Jan 16 to Feb 13
		{"max_age: stale the first hour of each period", Spec{MaxAge: time.Hour, During: "08:00-12:00 Europe/Berlin"}, func(now time.Time) []time.Time {
			var out []time.Time
			for d := now.AddDate(0, 0, -100); !d.After(now); d = d.AddDate(0, 0, 1) {
				for _, hm := range []string{"09:00", "09:30", "10:00", "10:30", "11:00", "11:30"} {
					out = append(out, at(d, hm))
				}
			}
			return out
		}, "75.0 75.0 75.0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := mustNew(t, c.spec)
			// Now is after the change to summer time, so the 30 and 90
			// day sums cross it.
			now := at(day("2026-04-15"), "13:00")
			updates := c.history(now)
			since := now.AddDate(0, 0, -95)
			var out []string
			for _, days := range []int{7, 30, 90} {
				var tally Tally
				for _, w := range o.Windows(now.AddDate(0, 0, -days), now) {
					r := o.Judge(w, updates, since, now)
					if !r.Closed || !w.End.After(now.AddDate(0, 0, -days)) {
						continue
					}
					tally.Add(r.State == Met, r.Judged, r.Compliant)
				}
				pct, ok := tally.Percent(o.Kind())
				if !ok {
					out = append(out, "-")
					continue
				}
				out = append(out, fmt.Sprintf("%.1f", pct))
			}
			if got := strings.Join(out, " "); got != c.want {
				t.Errorf("compliance 7/30/90 = %s, want %s", got, c.want)
			}
		})
	}
}

// TestParse checks what objectives are refused, and why.
func TestParse(t *testing.T) {
	for _, c := range []struct {
		spec Spec
		want string // an error, or the canonical form
	}{
		{Spec{FreshBy: "09:00", Timezone: "Asia/Tokyo", Days: []string{"weekdays"}}, "fresh by 09:00 Asia/Tokyo, weekdays"},
		{Spec{FreshBy: "9:05"}, "fresh by 09:05 UTC, daily"},
		{Spec{FreshBy: "09:00", Days: []string{"Mon", "wed", "friday"}}, "fresh by 09:00 UTC, mon,wed,fri"},
		{Spec{FreshBy: "09:00", Days: []string{"sat", "sun"}}, "fresh by 09:00 UTC, weekends"},
		{Spec{MaxAge: 15 * time.Minute, During: "09:00-15:00 Asia/Tokyo"}, "max age 15m0s during 09:00-15:00 Asia/Tokyo, daily"},
		{Spec{MaxAge: 15 * time.Minute, During: "09:00 - 15:00", Timezone: "Asia/Tokyo"}, "max age 15m0s during 09:00-15:00 Asia/Tokyo, daily"},
		{Spec{MaxAge: time.Hour}, "max age 1h0m0s during 00:00-24:00 UTC, daily"},
		{Spec{}, "expected fresh_by (a time of day) or max_age (a duration)"},
		{Spec{FreshBy: "09:00", MaxAge: time.Hour}, "give one"},
		{Spec{FreshBy: "9am"}, `fresh_by: expected a time of day as HH:MM`},
		{Spec{FreshBy: "24:00"}, `got "24:00"`},
		{Spec{FreshBy: "09:60"}, `got "09:60"`},
		{Spec{FreshBy: "09:00", During: "09:00-10:00"}, "during goes with max_age"},
		{Spec{MaxAge: -time.Minute}, "expected a positive duration"},
		{Spec{MaxAge: time.Hour, During: "9-15"}, `expected a daily period such as "09:00-15:00"`},
		{Spec{MaxAge: time.Hour, During: "09:00-15:00 Asia/Tokyo extra"}, "expected a daily period"},
		{Spec{MaxAge: time.Hour, During: "09:00-15:00 Mars/Olympus"}, `unknown time zone "Mars/Olympus"`},
		{Spec{MaxAge: time.Hour, During: "09:00-15:00 Asia/Tokyo", Timezone: "Europe/Berlin"}, "give one"},
		{Spec{FreshBy: "09:00", Timezone: "Local"}, `name an IANA zone`},
		{Spec{FreshBy: "09:00", Days: []string{"weekday"}}, `unknown day "weekday"`},
		{Spec{FreshBy: "09:00", Days: []string{"mon", "weekends"}}, `"weekends" stands alone`},
		{Spec{FreshBy: "09:00", Days: []string{"mon", "Monday"}}, `day "Monday" is listed twice`},
	} {
		o, err := New(c.spec, time.UTC)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = o.String()
		}
		if !strings.Contains(got, c.want) {
			t.Errorf("New(%+v) = %q, want %q", c.spec, got, c.want)
		}
	}
}

// BenchmarkJudge90Days judges 90 days of a max_age objective whose data is
// updated every 5 minutes (25,920 updates): what recomputing compliance
// from history would cost per objective, against reading 90 stored
// windows.
func BenchmarkJudge90Days(b *testing.B) {
	o, err := New(Spec{MaxAge: 15 * time.Minute, During: "09:00-15:00 Asia/Tokyo"}, time.UTC)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	from := now.Add(-90 * 24 * time.Hour)
	var updates []time.Time
	for t := from; t.Before(now); t = t.Add(5 * time.Minute) {
		updates = append(updates, t)
	}
	b.ResetTimer()
	for b.Loop() {
		var tally Tally
		for _, w := range o.Windows(from, now) {
			r := o.Judge(w, updates, from, now)
			tally.Add(r.State == Met, r.Judged, r.Compliant)
		}
	}
}

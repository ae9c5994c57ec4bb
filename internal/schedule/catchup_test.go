package schedule

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// iv builds the expected intervals from "start/end" literal pairs.
func iv(t testing.TB, pairs ...string) []Interval {
	t.Helper()
	var out []Interval
	for _, p := range pairs {
		a, b, ok := strings.Cut(p, "/")
		if !ok {
			t.Fatalf("bad pair %q", p)
		}
		out = append(out, Interval{Start: ts(t, a), End: ts(t, b)})
	}
	return out
}

func sameIntervals(got, want []Interval) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if !got[i].Start.Equal(want[i].Start) || !got[i].End.Equal(want[i].End) {
			return false
		}
	}
	return true
}

func sameInterval(a, b Interval) bool {
	return a.Start.Equal(b.Start) && a.End.Equal(b.End)
}

func TestDue(t *testing.T) {
	const h = "0 * * * *"
	tests := []struct {
		name         string
		expr, zone   string
		lastEnd, now string // lastEnd "" means never ran
		policy       Policy
		want         []string
		wantSkipped  string // "start/end" or ""
		wantMore     bool
		wantThrough  string
	}{
		{name: "all", expr: h, zone: "UTC", lastEnd: "2025-01-01T00:00:00Z", now: "2025-01-01T05:30:00Z",
			policy: Policy{CatchUp: CatchUpAll, Max: 10},
			want: []string{
				"2025-01-01T00:00:00Z/2025-01-01T01:00:00Z",
				"2025-01-01T01:00:00Z/2025-01-01T02:00:00Z",
				"2025-01-01T02:00:00Z/2025-01-01T03:00:00Z",
				"2025-01-01T03:00:00Z/2025-01-01T04:00:00Z",
				"2025-01-01T04:00:00Z/2025-01-01T05:00:00Z",
			},
			wantThrough: "2025-01-01T05:00:00Z"},
		{name: "all bounded keeps the oldest", expr: h, zone: "UTC", lastEnd: "2025-01-01T00:00:00Z", now: "2025-01-01T05:30:00Z",
			policy: Policy{CatchUp: CatchUpAll, Max: 2},
			want: []string{
				"2025-01-01T00:00:00Z/2025-01-01T01:00:00Z",
				"2025-01-01T01:00:00Z/2025-01-01T02:00:00Z",
			},
			wantMore: true, wantThrough: "2025-01-01T02:00:00Z"},
		{name: "all exactly max", expr: h, zone: "UTC", lastEnd: "2025-01-01T03:00:00Z", now: "2025-01-01T05:00:00Z",
			policy: Policy{CatchUp: CatchUpAll, Max: 2},
			want: []string{
				"2025-01-01T03:00:00Z/2025-01-01T04:00:00Z",
				"2025-01-01T04:00:00Z/2025-01-01T05:00:00Z",
			},
			wantThrough: "2025-01-01T05:00:00Z"},
		{name: "all default max", expr: "@daily", zone: "UTC", lastEnd: "2025-01-01T00:00:00Z", now: "2025-06-01T00:00:00Z",
			policy:   Policy{CatchUp: CatchUpAll},
			want:     nil, // checked by count below
			wantMore: true, wantThrough: "2025-04-11T00:00:00Z"},
		{name: "latest", expr: h, zone: "UTC", lastEnd: "2025-01-01T00:00:00Z", now: "2025-01-01T05:30:00Z",
			policy:      Policy{CatchUp: CatchUpLatest},
			want:        []string{"2025-01-01T04:00:00Z/2025-01-01T05:00:00Z"},
			wantSkipped: "2025-01-01T00:00:00Z/2025-01-01T04:00:00Z", wantThrough: "2025-01-01T05:00:00Z"},
		{name: "latest nothing skipped", expr: h, zone: "UTC", lastEnd: "2025-01-01T04:00:00Z", now: "2025-01-01T05:30:00Z",
			policy: Policy{CatchUp: CatchUpLatest},
			want:   []string{"2025-01-01T04:00:00Z/2025-01-01T05:00:00Z"}, wantThrough: "2025-01-01T05:00:00Z"},
		{name: "none after downtime", expr: h, zone: "UTC", lastEnd: "2025-01-01T00:00:00Z", now: "2025-01-01T05:30:00Z",
			policy:      Policy{CatchUp: CatchUpNone, Grace: time.Minute},
			wantSkipped: "2025-01-01T00:00:00Z/2025-01-01T05:00:00Z", wantThrough: "2025-01-01T05:00:00Z"},
		{name: "none on time after downtime", expr: h, zone: "UTC", lastEnd: "2025-01-01T00:00:00Z", now: "2025-01-01T05:00:30Z",
			policy:      Policy{CatchUp: CatchUpNone, Grace: time.Minute},
			want:        []string{"2025-01-01T04:00:00Z/2025-01-01T05:00:00Z"},
			wantSkipped: "2025-01-01T00:00:00Z/2025-01-01T04:00:00Z", wantThrough: "2025-01-01T05:00:00Z"},
		{name: "none regular tick", expr: h, zone: "UTC", lastEnd: "2025-01-01T04:00:00Z", now: "2025-01-01T05:00:30Z",
			policy:      Policy{CatchUp: CatchUpNone, Grace: time.Minute},
			want:        []string{"2025-01-01T04:00:00Z/2025-01-01T05:00:00Z"},
			wantThrough: "2025-01-01T05:00:00Z"},
		{name: "none regular tick exactly on time, zero grace", expr: h, zone: "UTC", lastEnd: "2025-01-01T04:00:00Z", now: "2025-01-01T05:00:00Z",
			policy:      Policy{CatchUp: CatchUpNone},
			want:        []string{"2025-01-01T04:00:00Z/2025-01-01T05:00:00Z"},
			wantThrough: "2025-01-01T05:00:00Z"},
		{name: "none late tick, zero grace", expr: h, zone: "UTC", lastEnd: "2025-01-01T04:00:00Z", now: "2025-01-01T05:00:01Z",
			policy:      Policy{CatchUp: CatchUpNone},
			wantSkipped: "2025-01-01T04:00:00Z/2025-01-01T05:00:00Z", wantThrough: "2025-01-01T05:00:00Z"},
		{name: "nothing due yet", expr: h, zone: "UTC", lastEnd: "2025-01-01T05:00:00Z", now: "2025-01-01T05:59:59Z",
			policy: Policy{CatchUp: CatchUpAll}, wantThrough: "2025-01-01T05:00:00Z"},
		{name: "now equals lastEnd", expr: h, zone: "UTC", lastEnd: "2025-01-01T05:00:00Z", now: "2025-01-01T05:00:00Z",
			policy: Policy{CatchUp: CatchUpAll}, wantThrough: "2025-01-01T05:00:00Z"},
		{name: "clock went back", expr: h, zone: "UTC", lastEnd: "2025-01-01T05:00:00Z", now: "2025-01-01T03:30:00Z",
			policy: Policy{CatchUp: CatchUpLatest}, wantThrough: "2025-01-01T05:00:00Z"},
		{name: "never ran, between fires", expr: h, zone: "UTC", now: "2025-01-01T05:30:00Z",
			policy: Policy{CatchUp: CatchUpAll}, wantThrough: "2025-01-01T05:00:00Z"},
		{name: "never ran, exactly at a fire", expr: h, zone: "UTC", now: "2025-01-01T05:00:00Z",
			policy: Policy{CatchUp: CatchUpAll},
			want:   []string{"2025-01-01T04:00:00Z/2025-01-01T05:00:00Z"}, wantThrough: "2025-01-01T05:00:00Z"},
		{name: "never ran, within grace", expr: h, zone: "UTC", now: "2025-01-01T05:00:20Z",
			policy: Policy{CatchUp: CatchUpLatest, Grace: 30 * time.Second},
			want:   []string{"2025-01-01T04:00:00Z/2025-01-01T05:00:00Z"}, wantThrough: "2025-01-01T05:00:00Z"},
		{name: "lastEnd not a fire time (schedule edited)", expr: h, zone: "UTC", lastEnd: "2025-01-01T00:30:00Z", now: "2025-01-01T02:10:00Z",
			policy: Policy{CatchUp: CatchUpAll},
			want: []string{
				"2025-01-01T00:00:00Z/2025-01-01T01:00:00Z",
				"2025-01-01T01:00:00Z/2025-01-01T02:00:00Z",
			},
			wantThrough: "2025-01-01T02:00:00Z"},
		{name: "ny daily 02:30 over spring forward", expr: "30 2 * * *", zone: "America/New_York",
			lastEnd: "2025-03-08T02:30:00-05:00", now: "2025-03-10T12:00:00-04:00",
			policy: Policy{CatchUp: CatchUpAll},
			want: []string{
				"2025-03-08T02:30:00-05:00/2025-03-09T03:00:00-04:00",
				"2025-03-09T03:00:00-04:00/2025-03-10T02:30:00-04:00",
			},
			wantThrough: "2025-03-10T02:30:00-04:00"},
		{name: "ny hourly latest over fall back", expr: h, zone: "America/New_York",
			lastEnd: "2025-11-02T00:00:00-04:00", now: "2025-11-02T01:30:00-05:00",
			policy:      Policy{CatchUp: CatchUpLatest},
			want:        []string{"2025-11-02T01:00:00-04:00/2025-11-02T01:00:00-05:00"},
			wantSkipped: "2025-11-02T00:00:00-04:00/2025-11-02T01:00:00-04:00", wantThrough: "2025-11-02T01:00:00-05:00"},
		// A decade of per-second fires missed: the cost must not depend on it.
		{name: "latest after ten years of seconds", expr: "* * * * * *", zone: "UTC",
			lastEnd: "2015-01-01T00:00:00Z", now: "2025-01-01T00:00:00.5Z",
			policy:      Policy{CatchUp: CatchUpLatest},
			want:        []string{"2024-12-31T23:59:59Z/2025-01-01T00:00:00Z"},
			wantSkipped: "2015-01-01T00:00:00Z/2024-12-31T23:59:59Z", wantThrough: "2025-01-01T00:00:00Z"},
		{name: "all after ten years of seconds", expr: "* * * * * *", zone: "UTC",
			lastEnd: "2015-01-01T00:00:00Z", now: "2025-01-01T00:00:00Z",
			policy: Policy{CatchUp: CatchUpAll, Max: 2},
			want: []string{
				"2015-01-01T00:00:00Z/2015-01-01T00:00:01Z",
				"2015-01-01T00:00:01Z/2015-01-01T00:00:02Z",
			},
			wantMore: true, wantThrough: "2015-01-01T00:00:02Z"},
		{name: "none after ten years of seconds", expr: "* * * * * *", zone: "UTC",
			lastEnd: "2015-01-01T00:00:00Z", now: "2025-01-01T00:00:00.5Z",
			policy:      Policy{CatchUp: CatchUpNone},
			wantSkipped: "2015-01-01T00:00:00Z/2025-01-01T00:00:00Z", wantThrough: "2025-01-01T00:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.expr, tt.zone)
			var lastEnd time.Time
			if tt.lastEnd != "" {
				lastEnd = ts(t, tt.lastEnd)
			}
			start := time.Now()
			got, err := Due(s, lastEnd, ts(t, tt.now), tt.policy)
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("Due took %v", d)
			}
			if tt.name == "all default max" {
				if len(got.Intervals) != DefaultMaxCatchUp {
					t.Errorf("got %d intervals, want %d", len(got.Intervals), DefaultMaxCatchUp)
				}
			} else if want := iv(t, tt.want...); !sameIntervals(got.Intervals, want) {
				t.Errorf("Intervals = %v, want %v", got.Intervals, want)
			}
			var wantSkipped Interval
			if tt.wantSkipped != "" {
				wantSkipped = iv(t, tt.wantSkipped)[0]
			}
			if !sameInterval(got.Skipped, wantSkipped) {
				t.Errorf("Skipped = %v, want %v", got.Skipped, wantSkipped)
			}
			if got.More != tt.wantMore {
				t.Errorf("More = %v, want %v", got.More, tt.wantMore)
			}
			if want := ts(t, tt.wantThrough); !got.Through.Equal(want) {
				t.Errorf("Through = %s, want %s", got.Through.Format(time.RFC3339Nano), tt.wantThrough)
			}
		})
	}
}

// TestDueDrains checks that calling Due again from Through, as the scheduler
// does, eventually returns every interval exactly once under CatchUpAll.
func TestDueDrains(t *testing.T) {
	s := mustParse(t, "*/15 * * * *", "America/New_York")
	lastEnd := ts(t, "2025-11-01T23:00:00-04:00")
	now := ts(t, "2025-11-02T03:00:00-05:00")
	var all []Interval
	for range 100 {
		b, err := Due(s, lastEnd, now, Policy{CatchUp: CatchUpAll, Max: 7})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b.Intervals...)
		lastEnd = b.Through
		if !b.More {
			break
		}
	}
	// 23:00 EDT to 03:00 EST is 5 hours of absolute time: 20 quarters.
	if len(all) != 20 {
		t.Fatalf("got %d intervals, want 20: %v", len(all), all)
	}
	for i, x := range all {
		if x.End.Sub(x.Start) != 15*time.Minute {
			t.Errorf("interval %d %v is not 15 minutes long", i, x)
		}
		if i > 0 && !all[i-1].End.Equal(x.Start) {
			t.Errorf("interval %d %v does not follow %v", i, x, all[i-1])
		}
	}
	if !lastEnd.Equal(now) {
		t.Errorf("drained through %s, want %s", lastEnd, now)
	}
}

func TestDueErrors(t *testing.T) {
	s := mustParse(t, "0 * * * *", "UTC")
	now := ts(t, "2025-01-01T00:00:00Z")
	_, err := Due(s, time.Time{}, now, Policy{CatchUp: "sometimes"})
	if want := `due intervals of "0 * * * *": catch-up policy "sometimes": want "all", "latest" or "none"`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
	_, err = Due(s, time.Time{}, now, Policy{CatchUp: CatchUpNone, Grace: -time.Second})
	if want := `due intervals of "0 * * * *": negative grace -1s`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

func TestCatchUpValidate(t *testing.T) {
	for _, c := range []CatchUp{CatchUpAll, CatchUpLatest, CatchUpNone} {
		if err := c.Validate(); err != nil {
			t.Errorf("%q: %v", c, err)
		}
	}
	if err := CatchUp("").Validate(); err == nil || err.Error() != `catch-up policy "": want "all", "latest" or "none"` {
		t.Errorf("empty policy: %v", err)
	}
}

func TestIntervals(t *testing.T) {
	tests := []struct {
		name, expr, zone, from, to string
		limit                      int
		want                       []string
	}{
		{"ny hourly fall back", "0 * * * *", "America/New_York", "2025-11-02T00:00:00-04:00", "2025-11-02T03:00:00-05:00", 10, []string{
			"2025-11-02T00:00:00-04:00/2025-11-02T01:00:00-04:00",
			"2025-11-02T01:00:00-04:00/2025-11-02T01:00:00-05:00",
			"2025-11-02T01:00:00-05:00/2025-11-02T02:00:00-05:00",
			"2025-11-02T02:00:00-05:00/2025-11-02T03:00:00-05:00",
		}},
		{"ny hourly spring forward", "0 * * * *", "America/New_York", "2025-03-09T00:00:00-05:00", "2025-03-09T05:00:00-04:00", 10, []string{
			"2025-03-09T00:00:00-05:00/2025-03-09T01:00:00-05:00",
			"2025-03-09T01:00:00-05:00/2025-03-09T03:00:00-04:00",
			"2025-03-09T03:00:00-04:00/2025-03-09T04:00:00-04:00",
			"2025-03-09T04:00:00-04:00/2025-03-09T05:00:00-04:00",
		}},
		{"ny */15 through the repeated hour", "*/15 * * * *", "America/New_York", "2025-11-02T01:30:00-04:00", "2025-11-02T01:30:00-05:00", 10, []string{
			"2025-11-02T01:30:00-04:00/2025-11-02T01:45:00-04:00",
			"2025-11-02T01:45:00-04:00/2025-11-02T01:00:00-05:00",
			"2025-11-02T01:00:00-05:00/2025-11-02T01:15:00-05:00",
			"2025-11-02T01:15:00-05:00/2025-11-02T01:30:00-05:00",
		}},
		{"ny */15 over the gap", "*/15 * * * *", "America/New_York", "2025-03-09T01:30:00-05:00", "2025-03-09T03:30:00-04:00", 10, []string{
			"2025-03-09T01:30:00-05:00/2025-03-09T01:45:00-05:00",
			"2025-03-09T01:45:00-05:00/2025-03-09T03:00:00-04:00",
			"2025-03-09T03:00:00-04:00/2025-03-09T03:15:00-04:00",
			"2025-03-09T03:15:00-04:00/2025-03-09T03:30:00-04:00",
		}},
		{"ny daily 02:30 spring", "30 2 * * *", "America/New_York", "2025-03-08T00:00:00-05:00", "2025-03-11T00:00:00-04:00", 10, []string{
			"2025-03-08T02:30:00-05:00/2025-03-09T03:00:00-04:00",
			"2025-03-09T03:00:00-04:00/2025-03-10T02:30:00-04:00",
		}},
		{"ny daily 01:30 fall", "30 1 * * *", "America/New_York", "2025-11-01T00:00:00-04:00", "2025-11-04T00:00:00-05:00", 10, []string{
			"2025-11-01T01:30:00-04:00/2025-11-02T01:30:00-04:00",
			"2025-11-02T01:30:00-04:00/2025-11-03T01:30:00-05:00",
		}},
		{"berlin @daily", "@daily", "Europe/Berlin", "2025-03-29T00:00:00+01:00", "2025-03-31T00:00:00+02:00", 10, []string{
			"2025-03-29T00:00:00+01:00/2025-03-30T00:00:00+01:00",
			"2025-03-30T00:00:00+01:00/2025-03-31T00:00:00+02:00",
		}},
		{"tokyo weekdays", "0 20 * * MON-FRI", "Asia/Tokyo", "2025-03-06T00:00:00+09:00", "2025-03-11T00:00:00+09:00", 10, []string{
			"2025-03-06T20:00:00+09:00/2025-03-07T20:00:00+09:00",
			"2025-03-07T20:00:00+09:00/2025-03-10T20:00:00+09:00",
		}},
		{"unaligned range", "0 * * * *", "UTC", "2025-01-01T00:30:00Z", "2025-01-01T03:10:00Z", 10, []string{
			"2025-01-01T01:00:00Z/2025-01-01T02:00:00Z",
			"2025-01-01T02:00:00Z/2025-01-01T03:00:00Z",
		}},
		{"exactly the limit", "0 * * * *", "UTC", "2025-01-01T00:00:00Z", "2025-01-01T02:00:00Z", 2, []string{
			"2025-01-01T00:00:00Z/2025-01-01T01:00:00Z",
			"2025-01-01T01:00:00Z/2025-01-01T02:00:00Z",
		}},
		{"seconds", "*/20 * * * * *", "UTC", "2025-01-01T00:00:00Z", "2025-01-01T00:01:00Z", 10, []string{
			"2025-01-01T00:00:00Z/2025-01-01T00:00:20Z",
			"2025-01-01T00:00:20Z/2025-01-01T00:00:40Z",
			"2025-01-01T00:00:40Z/2025-01-01T00:01:00Z",
		}},
		{"empty range", "0 * * * *", "UTC", "2025-01-01T00:10:00Z", "2025-01-01T00:50:00Z", 10, nil},
		{"range shorter than one interval", "@daily", "UTC", "2025-01-01T00:00:00Z", "2025-01-01T12:00:00Z", 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.expr, tt.zone)
			got, err := Intervals(s, ts(t, tt.from), ts(t, tt.to), tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if want := iv(t, tt.want...); !sameIntervals(got, want) {
				t.Fatalf("got %v\nwant %v", got, want)
			}
		})
	}
}

func TestIntervalsErrors(t *testing.T) {
	s := mustParse(t, "0 * * * *", "UTC")
	from, to := ts(t, "2025-01-01T00:00:00Z"), ts(t, "2025-01-02T00:00:00Z")
	tests := []struct {
		name     string
		from, to time.Time
		limit    int
		want     string
	}{
		{"over the limit", from, to, 23, `intervals of "0 * * * *" from 2025-01-01T00:00:00Z to 2025-01-02T00:00:00Z: more than 23: too many intervals`},
		{"zero limit", from, to, 0, `intervals of "0 * * * *": limit must be positive, got 0`},
		{"reversed", to, from, 10, `intervals of "0 * * * *": range end 2025-01-01T00:00:00Z is before its start 2025-01-02T00:00:00Z`},
		{"zero from", time.Time{}, to, 10, `intervals of "0 * * * *": both ends of the range must be set`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Intervals(s, tt.from, tt.to, tt.limit)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got %v, %v; want error %q", got, err, tt.want)
			}
		})
	}
	if _, err := Intervals(s, from, to, 23); !errors.Is(err, ErrTooManyIntervals) {
		t.Errorf("%v does not wrap ErrTooManyIntervals", err)
	}
	// A year of seconds must fail fast, not compute 31 million intervals.
	sec := mustParse(t, "* * * * * *", "UTC")
	start := time.Now()
	if _, err := Intervals(sec, from, ts(t, "2026-01-01T00:00:00Z"), 1000); !errors.Is(err, ErrTooManyIntervals) {
		t.Errorf("year of seconds: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("rejecting a year of seconds took %v", d)
	}
}

func TestIntervals10k(t *testing.T) {
	s := mustParse(t, "0 * * * *", "America/New_York")
	from := ts(t, "2025-01-01T00:00:00-05:00")
	got, err := Intervals(s, from, from.Add(10000*time.Hour), 10000)
	if err != nil {
		t.Fatal(err)
	}
	// Hourly follows absolute time, so 10,000 hours hold exactly 10,000
	// intervals even though both 2025 transitions fall inside the range.
	if len(got) != 10000 {
		t.Fatalf("got %d intervals, want 10000", len(got))
	}
	for i, x := range got {
		if x.End.Sub(x.Start) != time.Hour {
			t.Fatalf("interval %d %v is not an hour long", i, x)
		}
	}
}

func TestIntervalString(t *testing.T) {
	x := Interval{Start: ts(t, "2025-03-30T00:00:00+01:00"), End: ts(t, "2025-03-31T00:00:00+02:00")}
	if got, want := x.String(), "[2025-03-30T00:00:00+01:00, 2025-03-31T00:00:00+02:00)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if x.IsZero() || !(Interval{}).IsZero() {
		t.Error("IsZero is wrong")
	}
}

func BenchmarkIntervals10k(b *testing.B) {
	for _, c := range []struct{ name, expr, zone string }{
		{"hourly_new_york", "0 * * * *", "America/New_York"},
		{"every15m_berlin", "*/15 * * * *", "Europe/Berlin"},
		{"daily0230_new_york", "30 2 * * *", "America/New_York"},
		{"weekdays_tokyo", "0 20 * * 1-5", "Asia/Tokyo"},
		{"every15m_descriptor", "@every 15m", "UTC"},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := mustParse(b, c.expr, c.zone)
			// Start at a fire and find the end of the 10,000th interval
			// once, outside the timing.
			from := s.Next(ts(b, "2025-01-01T00:00:00Z"))
			to := from
			for range 10000 {
				to = s.Next(to)
			}
			b.ReportAllocs()
			for b.Loop() {
				got, err := Intervals(s, from, to, 10000)
				if err != nil || len(got) != 10000 {
					b.Fatalf("got %d intervals, %v", len(got), err)
				}
			}
		})
	}
}

package schedule

import (
	"errors"
	"testing"
	"time"
)

// Transitions used below (all checked against the tz database):
//
//	America/New_York 2025-03-09 02:00 EST -> 03:00 EDT (07:00Z); 02:00-02:59 never happens.
//	America/New_York 2025-11-02 02:00 EDT -> 01:00 EST (06:00Z); 01:00-01:59 happens twice.
//	Europe/Berlin    2025-03-30 02:00 CET -> 03:00 CEST (01:00Z); 02:00-02:59 never happens.
//	Europe/Berlin    2025-10-26 03:00 CEST -> 02:00 CET (01:00Z); 02:00-02:59 happens twice.
//	Asia/Tokyo       always +09:00.

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return loc
}

func mustParse(t testing.TB, expr, zone string) *Schedule {
	t.Helper()
	s, err := Parse(expr, mustLoc(t, zone))
	if err != nil {
		t.Fatalf("Parse(%q, %s): %v", expr, zone, err)
	}
	return s
}

// ts parses an RFC 3339 literal; the offsets in the literals say which
// occurrence of a repeated local time is meant.
func ts(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("bad literal %q: %v", s, err)
	}
	return v
}

func TestNext(t *testing.T) {
	const (
		ny     = "America/New_York"
		berlin = "Europe/Berlin"
		tokyo  = "Asia/Tokyo"
		utc    = "UTC"
	)
	tests := []struct {
		name, expr, zone, after, want string
	}{
		// Daily 02:30 in New York: the spring-forward day has no 02:30, so it
		// fires once, at 03:00 EDT, the first instant after the gap.
		{"ny daily 02:30 day before spring", "30 2 * * *", ny, "2025-03-07T02:30:00-05:00", "2025-03-08T02:30:00-05:00"},
		{"ny daily 02:30 spring gap", "30 2 * * *", ny, "2025-03-08T02:30:00-05:00", "2025-03-09T03:00:00-04:00"},
		{"ny daily 02:30 just before gap", "30 2 * * *", ny, "2025-03-09T01:59:59-05:00", "2025-03-09T03:00:00-04:00"},
		{"ny daily 02:30 at gap end", "30 2 * * *", ny, "2025-03-09T03:00:00-04:00", "2025-03-10T02:30:00-04:00"},
		{"ny daily 02:30 after gap", "30 2 * * *", ny, "2025-03-09T03:10:00-04:00", "2025-03-10T02:30:00-04:00"},
		{"ny daily 02:00 spring gap", "0 2 * * *", ny, "2025-03-08T12:00:00-05:00", "2025-03-09T03:00:00-04:00"},
		{"ny 02:00 and 02:30 merge in gap", "0,30 2 * * *", ny, "2025-03-08T02:30:00-05:00", "2025-03-09T03:00:00-04:00"},
		{"ny 02:00 and 02:30 merged once", "0,30 2 * * *", ny, "2025-03-09T03:00:00-04:00", "2025-03-10T02:00:00-04:00"},
		{"ny daily 02:30 fall back day", "30 2 * * *", ny, "2025-11-01T02:30:00-04:00", "2025-11-02T02:30:00-05:00"},
		{"ny daily 02:30 after fall back", "30 2 * * *", ny, "2025-11-02T02:30:00-05:00", "2025-11-03T02:30:00-05:00"},

		// Daily 01:30 in New York: 01:30 happens twice on 2025-11-02 and fires
		// at the first occurrence only.
		{"ny daily 01:30 first occurrence", "30 1 * * *", ny, "2025-11-01T01:30:00-04:00", "2025-11-02T01:30:00-04:00"},
		{"ny daily 01:30 not again in EST", "30 1 * * *", ny, "2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"},
		{"ny daily 01:30 from second occurrence", "30 1 * * *", ny, "2025-11-02T01:10:00-05:00", "2025-11-03T01:30:00-05:00"},
		{"ny daily 01:30 from first occurrence", "30 1 * * *", ny, "2025-11-02T01:10:00-04:00", "2025-11-02T01:30:00-04:00"},
		{"ny daily 01:30 spring day unaffected", "30 1 * * *", ny, "2025-03-08T01:30:00-05:00", "2025-03-09T01:30:00-05:00"},
		{"ny 01:30 then 02:30 on fall day", "30 1,2 * * *", ny, "2025-11-02T01:30:00-04:00", "2025-11-02T02:30:00-05:00"},

		// Hourly in New York follows absolute time: nothing in the skipped
		// hour, both occurrences of the repeated hour, always one hour apart.
		{"ny hourly before gap", "0 * * * *", ny, "2025-03-09T00:30:00-05:00", "2025-03-09T01:00:00-05:00"},
		{"ny hourly over gap", "0 * * * *", ny, "2025-03-09T01:00:00-05:00", "2025-03-09T03:00:00-04:00"},
		{"ny hourly after gap", "0 * * * *", ny, "2025-03-09T03:00:00-04:00", "2025-03-09T04:00:00-04:00"},
		{"ny hourly into fold", "0 * * * *", ny, "2025-11-02T00:00:00-04:00", "2025-11-02T01:00:00-04:00"},
		{"ny hourly fold second occurrence", "0 * * * *", ny, "2025-11-02T01:00:00-04:00", "2025-11-02T01:00:00-05:00"},
		{"ny hourly fold late first occurrence", "0 * * * *", ny, "2025-11-02T01:59:59-04:00", "2025-11-02T01:00:00-05:00"},
		{"ny hourly out of fold", "0 * * * *", ny, "2025-11-02T01:00:00-05:00", "2025-11-02T02:00:00-05:00"},
		{"ny @hourly over gap", "@hourly", ny, "2025-03-09T01:00:00-05:00", "2025-03-09T03:00:00-04:00"},
		{"ny hourly :30 over gap", "30 * * * *", ny, "2025-03-09T01:30:00-05:00", "2025-03-09T03:30:00-04:00"},
		{"ny hourly :30 in fold", "30 * * * *", ny, "2025-11-02T01:30:00-04:00", "2025-11-02T01:30:00-05:00"},

		// Every 15 minutes in New York, across both transitions.
		{"ny */15 over gap", "*/15 * * * *", ny, "2025-03-09T01:45:00-05:00", "2025-03-09T03:00:00-04:00"},
		{"ny */15 over gap mid-slot", "*/15 * * * *", ny, "2025-03-09T01:50:00-05:00", "2025-03-09T03:00:00-04:00"},
		{"ny */15 after gap", "*/15 * * * *", ny, "2025-03-09T03:00:00-04:00", "2025-03-09T03:15:00-04:00"},
		{"ny */15 into second occurrence", "*/15 * * * *", ny, "2025-11-02T01:45:00-04:00", "2025-11-02T01:00:00-05:00"},
		{"ny */15 within second occurrence", "*/15 * * * *", ny, "2025-11-02T01:00:00-05:00", "2025-11-02T01:15:00-05:00"},
		{"ny */15 out of fold", "*/15 * * * *", ny, "2025-11-02T01:45:00-05:00", "2025-11-02T02:00:00-05:00"},
		{"ny @every 15m over gap", "@every 15m", ny, "2025-03-09T01:50:00-05:00", "2025-03-09T03:00:00-04:00"},
		{"ny @every 15m in fold", "@every 15m", ny, "2025-11-02T01:45:00-04:00", "2025-11-02T01:00:00-05:00"},

		// Berlin: the gap and the repeated hour are both 02:00-02:59.
		{"berlin daily 02:30 spring gap", "30 2 * * *", berlin, "2025-03-29T02:30:00+01:00", "2025-03-30T03:00:00+02:00"},
		{"berlin daily 02:30 after spring", "30 2 * * *", berlin, "2025-03-30T03:00:00+02:00", "2025-03-31T02:30:00+02:00"},
		{"berlin daily 02:30 fall first occurrence", "30 2 * * *", berlin, "2025-10-25T02:30:00+02:00", "2025-10-26T02:30:00+02:00"},
		{"berlin daily 02:30 fall not repeated", "30 2 * * *", berlin, "2025-10-26T02:30:00+02:00", "2025-10-27T02:30:00+01:00"},
		{"berlin daily 02:30 from second occurrence", "30 2 * * *", berlin, "2025-10-26T02:10:00+01:00", "2025-10-27T02:30:00+01:00"},
		{"berlin @daily spring day", "@daily", berlin, "2025-03-29T00:00:00+01:00", "2025-03-30T00:00:00+01:00"},
		{"berlin @daily after spring", "@daily", berlin, "2025-03-30T00:00:00+01:00", "2025-03-31T00:00:00+02:00"},
		{"berlin @daily fall day", "@daily", berlin, "2025-10-26T00:00:00+02:00", "2025-10-27T00:00:00+01:00"},
		{"berlin hourly over gap", "0 * * * *", berlin, "2025-03-30T01:00:00+01:00", "2025-03-30T03:00:00+02:00"},
		{"berlin hourly fold", "0 * * * *", berlin, "2025-10-26T02:00:00+02:00", "2025-10-26T02:00:00+01:00"},
		{"berlin */15 fold", "*/15 * * * *", berlin, "2025-10-26T02:45:00+02:00", "2025-10-26T02:00:00+01:00"},

		// Tokyo, the common case: no DST, nothing special on US/EU DST days.
		{"tokyo daily 09:00", "0 9 * * *", tokyo, "2025-03-09T09:00:00+09:00", "2025-03-10T09:00:00+09:00"},
		{"tokyo daily 02:30 on US DST day", "30 2 * * *", tokyo, "2025-03-08T03:00:00+09:00", "2025-03-09T02:30:00+09:00"},
		{"tokyo daily 01:30 on US fall day", "30 1 * * *", tokyo, "2025-11-02T01:30:00+09:00", "2025-11-03T01:30:00+09:00"},
		{"tokyo weekdays 20:00 over weekend", "0 20 * * 1-5", tokyo, "2025-03-07T20:00:00+09:00", "2025-03-10T20:00:00+09:00"},
		{"tokyo weekdays names", "0 20 * * MON-FRI", tokyo, "2025-03-07T20:00:00+09:00", "2025-03-10T20:00:00+09:00"},
		{"tokyo thursday by name", "0 0 * * THU", tokyo, "2025-03-07T00:00:00+09:00", "2025-03-13T00:00:00+09:00"},
		{"tokyo @monthly", "@monthly", tokyo, "2025-01-31T12:00:00+09:00", "2025-02-01T00:00:00+09:00"},
		{"tokyo last day of month", "0 0 L * *", tokyo, "2024-02-01T00:00:00+09:00", "2024-02-29T00:00:00+09:00"},
		{"tokyo last friday", "0 18 * * FRI#L", tokyo, "2025-03-01T00:00:00+09:00", "2025-03-28T18:00:00+09:00"},
		{"tokyo nearest weekday to 15th", "0 0 15W * *", tokyo, "2025-03-01T00:00:00+09:00", "2025-03-14T00:00:00+09:00"},
		{"tokyo from UTC input", "0 9 * * *", tokyo, "2025-03-09T00:00:00Z", "2025-03-10T09:00:00+09:00"},

		// UTC.
		{"utc every 5 minutes", "*/5 * * * *", utc, "2025-01-01T00:02:30Z", "2025-01-01T00:05:00Z"},
		{"utc strictly after", "*/5 * * * *", utc, "2025-01-01T00:05:00Z", "2025-01-01T00:10:00Z"},
		{"utc nanoseconds before", "*/5 * * * *", utc, "2025-01-01T00:04:59.999999999Z", "2025-01-01T00:05:00Z"},
		{"utc @yearly", "@yearly", utc, "2025-06-15T00:00:00Z", "2026-01-01T00:00:00Z"},
		{"utc @annually", "@annually", utc, "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"},
		{"utc @weekly", "@weekly", utc, "2025-03-05T00:00:00Z", "2025-03-09T00:00:00Z"},
		{"utc @midnight", "@midnight", utc, "2025-03-05T23:59:59Z", "2025-03-06T00:00:00Z"},
		{"utc leap day", "0 0 29 2 *", utc, "2025-01-01T00:00:00Z", "2028-02-29T00:00:00Z"},
		{"utc leap day over 2100", "0 0 29 2 *", utc, "2096-02-29T00:00:00Z", "2104-02-29T00:00:00Z"},
		{"utc dom or dow: monday", "0 0 1 * MON", utc, "2025-03-01T00:00:00Z", "2025-03-03T00:00:00Z"},
		{"utc dom or dow: first", "0 0 1 * MON", utc, "2025-03-31T00:00:00Z", "2025-04-01T00:00:00Z"},
		{"utc sunday as 7", "0 0 * * 7", utc, "2025-03-05T00:00:00Z", "2025-03-09T00:00:00Z"},
		{"utc hour wraparound range", "0 22-2 * * *", utc, "2025-03-05T02:00:00Z", "2025-03-05T22:00:00Z"},

		// Six fields: seconds first.
		{"seconds every 10", "*/10 * * * * *", utc, "2025-01-01T00:00:05Z", "2025-01-01T00:00:10Z"},
		{"seconds fixed", "30 0 12 * * *", utc, "2025-01-01T12:00:30Z", "2025-01-02T12:00:30Z"},
		{"seconds fixed same day", "30 0 12 * * *", utc, "2025-01-01T12:00:29.5Z", "2025-01-01T12:00:30Z"},
		{"seconds in spring gap", "30 30 2 * * *", ny, "2025-03-09T00:00:00-05:00", "2025-03-09T03:00:00-04:00"},
		{"seconds hourly in fold", "15 0 * * * *", ny, "2025-11-02T01:00:15-04:00", "2025-11-02T01:00:15-05:00"},

		// Past the tz database's explicit transitions (2037), where the zone's
		// rule string applies. 2088 is a leap year: 2088-11-07 01:00-01:59
		// repeats, 2089-03-13 02:00-02:59 is skipped, and Go's ZoneBounds
		// reports a stale bound at 2088-12-31T00:00Z.
		{"2088 ny hourly fold", "0 * * * *", ny, "2088-11-07T01:00:00-04:00", "2088-11-07T01:00:00-05:00"},
		{"2088 ny daily 01:30 from second occurrence", "30 1 * * *", ny, "2088-11-07T01:10:00-05:00", "2088-11-08T01:30:00-05:00"},
		{"2088 ny hourly over stale bound", "0 * * * *", ny, "2088-12-30T19:30:00-05:00", "2088-12-30T20:00:00-05:00"},
		{"2088 ny daily over stale bound", "30 2 * * *", ny, "2088-12-30T19:30:00-05:00", "2088-12-31T02:30:00-05:00"},
		{"2089 ny daily 02:30 spring gap", "30 2 * * *", ny, "2089-03-12T02:30:00-05:00", "2089-03-13T03:00:00-04:00"},
		{"2089 ny seconds in january", "* * * 1 1 0", ny, "2089-01-30T23:59:59-05:00", "2090-01-01T00:00:00-05:00"},

		// @every: multiples of the period since the Unix epoch.
		{"every 15m", "@every 15m", utc, "2025-01-01T00:07:00Z", "2025-01-01T00:15:00Z"},
		{"every 90m", "@every 1h30m", utc, "2025-01-01T00:00:00Z", "2025-01-01T01:30:00Z"},
		{"every 7m", "@every 7m", utc, "2025-01-01T00:00:00Z", "2025-01-01T00:05:00Z"},
		{"every 15m in tokyo", "@every 15m", tokyo, "2025-01-01T09:07:00+09:00", "2025-01-01T09:15:00+09:00"},
		{"every before 1970", "@every 1h", utc, "1969-12-31T22:30:00Z", "1969-12-31T23:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.expr, tt.zone)
			got := s.Next(ts(t, tt.after))
			want := ts(t, tt.want)
			if !got.Equal(want) {
				t.Fatalf("Next(%s) = %s, want %s", tt.after, got.Format(time.RFC3339Nano), tt.want)
			}
			if got.Location() != s.Location() {
				t.Errorf("Next returned a time in %v, want the schedule's zone %v", got.Location(), s.Location())
			}
		})
	}
}

func TestPrev(t *testing.T) {
	tests := []struct {
		name, expr, zone, before, want string
	}{
		{"yearly mid-year", "@yearly", "UTC", "2025-06-15T00:00:00Z", "2025-01-01T00:00:00Z"},
		{"yearly strictly before", "@yearly", "UTC", "2025-01-01T00:00:00Z", "2024-01-01T00:00:00Z"},
		{"yearly one ns after", "@yearly", "UTC", "2025-01-01T00:00:00.000000001Z", "2025-01-01T00:00:00Z"},
		{"yearly new york", "@yearly", "America/New_York", "2025-01-01T00:00:00-05:00", "2024-01-01T00:00:00-05:00"},
		{"yearly july 4th noon", "0 12 4 7 *", "America/New_York", "2025-07-04T11:00:00-04:00", "2024-07-04T12:00:00-04:00"},
		{"leap day", "0 0 29 2 *", "UTC", "2024-02-29T00:00:00Z", "2020-02-29T00:00:00Z"},
		{"leap day over 2100", "0 0 29 2 *", "UTC", "2104-01-01T00:00:00Z", "2096-02-29T00:00:00Z"},
		{"every second", "* * * * * *", "UTC", "2025-01-01T00:00:00.5Z", "2025-01-01T00:00:00Z"},
		{"every second exact", "* * * * * *", "UTC", "2025-01-01T00:00:00Z", "2024-12-31T23:59:59Z"},
		{"seconds during one hour only", "* * 3 * * *", "UTC", "2025-01-01T05:00:00Z", "2025-01-01T03:59:59Z"},
		{"ny daily 02:30 over gap", "30 2 * * *", "America/New_York", "2025-03-10T00:00:00-04:00", "2025-03-09T03:00:00-04:00"},
		{"ny daily 02:30 before gap fire", "30 2 * * *", "America/New_York", "2025-03-09T03:00:00-04:00", "2025-03-08T02:30:00-05:00"},
		{"ny daily 01:30 in fold", "30 1 * * *", "America/New_York", "2025-11-02T01:40:00-05:00", "2025-11-02T01:30:00-04:00"},
		{"ny hourly out of fold", "0 * * * *", "America/New_York", "2025-11-02T02:00:00-05:00", "2025-11-02T01:00:00-05:00"},
		{"ny hourly into fold", "0 * * * *", "America/New_York", "2025-11-02T01:00:00-05:00", "2025-11-02T01:00:00-04:00"},
		{"ny hourly over gap", "0 * * * *", "America/New_York", "2025-03-09T03:00:00-04:00", "2025-03-09T01:00:00-05:00"},
		{"berlin daily 02:30 fall", "30 2 * * *", "Europe/Berlin", "2025-10-27T00:00:00+01:00", "2025-10-26T02:30:00+02:00"},
		{"berlin @daily spring", "@daily", "Europe/Berlin", "2025-03-31T00:00:00+02:00", "2025-03-30T00:00:00+01:00"},
		{"tokyo weekdays", "0 20 * * 1-5", "Asia/Tokyo", "2025-03-10T20:00:00+09:00", "2025-03-07T20:00:00+09:00"},
		{"every 15m", "@every 15m", "UTC", "2025-01-01T00:15:00Z", "2025-01-01T00:00:00Z"},
		{"every 15m ns after", "@every 15m", "UTC", "2025-01-01T00:15:00.000000001Z", "2025-01-01T00:15:00Z"},
		{"every 7m", "@every 7m", "UTC", "2025-01-01T00:05:00Z", "2024-12-31T23:58:00Z"},
		{"2090 seconds in january", "* * * 1 1 0", "America/New_York", "2090-01-01T00:00:00-05:00", "2089-01-30T23:59:59-05:00"},
		{"2088 ny hourly over stale bound", "0 * * * *", "America/New_York", "2088-12-30T20:00:00-05:00", "2088-12-30T19:00:00-05:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.expr, tt.zone)
			got := s.Prev(ts(t, tt.before))
			if want := ts(t, tt.want); !got.Equal(want) {
				t.Fatalf("Prev(%s) = %s, want %s", tt.before, got.Format(time.RFC3339Nano), tt.want)
			}
		})
	}
}

func TestIntervalEndingAt(t *testing.T) {
	tests := []struct {
		name, expr, zone, end, wantStart, wantErr string
	}{
		{"berlin @daily 23h day", "@daily", "Europe/Berlin", "2025-03-31T00:00:00+02:00", "2025-03-30T00:00:00+01:00", ""},
		{"berlin @daily 25h day", "@daily", "Europe/Berlin", "2025-10-27T00:00:00+01:00", "2025-10-26T00:00:00+02:00", ""},
		{"ny hourly second 01:00", "@hourly", "America/New_York", "2025-11-02T01:00:00-05:00", "2025-11-02T01:00:00-04:00", ""},
		{"ny daily 02:30 gap fire", "30 2 * * *", "America/New_York", "2025-03-09T03:00:00-04:00", "2025-03-08T02:30:00-05:00", ""},
		{"yearly", "@yearly", "Asia/Tokyo", "2025-01-01T00:00:00+09:00", "2024-01-01T00:00:00+09:00", ""},
		{"end in another zone", "@daily", "Asia/Tokyo", "2025-01-01T15:00:00Z", "2025-01-01T00:00:00+09:00", ""},
		{"not a fire time", "@daily", "Europe/Berlin", "2025-03-31T00:00:01+02:00", "",
			`interval ending at 2025-03-31T00:00:01+02:00 for schedule "@daily": not a fire time of the schedule`},
		{"skipped wall time is not a fire time", "30 2 * * *", "America/New_York", "2025-03-09T03:30:00-04:00", "",
			`interval ending at 2025-03-09T03:30:00-04:00 for schedule "30 2 * * *": not a fire time of the schedule`},
		{"repeated occurrence is not a fire time", "30 1 * * *", "America/New_York", "2025-11-02T01:30:00-05:00", "",
			`interval ending at 2025-11-02T01:30:00-05:00 for schedule "30 1 * * *": not a fire time of the schedule`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.expr, tt.zone)
			got, err := s.IntervalEndingAt(ts(t, tt.end))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				if !errors.Is(err, ErrNotFireTime) {
					t.Errorf("error %v does not wrap ErrNotFireTime", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Start.Equal(ts(t, tt.wantStart)) || !got.End.Equal(ts(t, tt.end)) {
				t.Fatalf("got %s, want [%s, %s)", got, tt.wantStart, tt.end)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		expr, want, field string
	}{
		{"", `cron expression "": empty expression`, ""},
		{"   ", `cron expression "   ": empty expression`, ""},
		{"* * * *", `cron expression "* * * *": want 5 fields (minute hour day-of-month month day-of-week) or 6 with leading seconds, got 4`, ""},
		{"0 0 0 1 1 * 2030", `cron expression "0 0 0 1 1 * 2030": want 5 fields (minute hour day-of-month month day-of-week) or 6 with leading seconds, got 7`, ""},
		{"61 * * * *", `cron expression "61 * * * *": minute field "61": end of range (61) above maximum (59): "61"`, "minute"},
		{"* 24 * * *", `cron expression "* 24 * * *": hour field "24": end of range (24) above maximum (23): "24"`, "hour"},
		{"* * 32 * *", `cron expression "* * 32 * *": day-of-month field "32": end of range (32) above maximum (31): "32"`, "day-of-month"},
		{"* * 0 * *", `cron expression "* * 0 * *": day-of-month field "0": beginning of range (0) below minimum (1): "0"`, "day-of-month"},
		{"* * * 13 *", `cron expression "* * * 13 *": month field "13": end of range (13) above maximum (12): "13"`, "month"},
		{"* * * * 8", `cron expression "* * * * 8": day-of-week field "8": end of range (8) above maximum (7): "8"`, "day-of-week"},
		{"60 * * * * *", `cron expression "60 * * * * *": second field "60": end of range (60) above maximum (59): "60"`, "second"},
		{"*/0 * * * *", `cron expression "*/0 * * * *": minute field "*/0": step of range must be a positive number: "*/0"`, "minute"},
		{"1,,2 * * * *", `cron expression "1,,2 * * * *": minute field "1,,2": empty element in list`, "minute"},
		{"H * * * *", `cron expression "H * * * *": minute field "H": H (hashed) values are not supported; write the value out`, "minute"},
		{"0 0 * * FOO", `cron expression "0 0 * * FOO": day-of-week field "FOO": failed to parse int from "foo": strconv.Atoi: parsing "foo": invalid syntax`, "day-of-week"},
		{"0 0 * * 1#6", `cron expression "0 0 * * 1#6": day-of-week field "1#6": occurrence must be 1-5, got 6 in "1#6"`, "day-of-week"},
		{"0 0 30 2 *", `cron expression "0 0 30 2 *": never matches a calendar date (such as 30 February)`, ""},
		{"0 0 31 4,6,9,11 *", `cron expression "0 0 31 4,6,9,11 *": never matches a calendar date (such as 30 February)`, ""},
		{"TZ=Asia/Tokyo 0 9 * * *", `cron expression "TZ=Asia/Tokyo 0 9 * * *": "TZ=" and "CRON_TZ=" prefixes are not accepted; set the schedule's time zone setting instead`, ""},
		{"CRON_TZ=Asia/Tokyo 0 9 * * *", `cron expression "CRON_TZ=Asia/Tokyo 0 9 * * *": "TZ=" and "CRON_TZ=" prefixes are not accepted; set the schedule's time zone setting instead`, ""},
		{"tz=Bad/Zone *", `cron expression "tz=Bad/Zone *": "TZ=" and "CRON_TZ=" prefixes are not accepted; set the schedule's time zone setting instead`, ""},
		{"@reboot", `cron expression "@reboot": unknown descriptor "@reboot" (want @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>)`, ""},
		{"@daily 5", `cron expression "@daily 5": unexpected text after @daily`, ""},
		{"@every", `cron expression "@every": want "@every <duration>", such as "@every 15m"`, ""},
		{"@every 1h 2h", `cron expression "@every 1h 2h": want "@every <duration>", such as "@every 15m"`, ""},
		{"@every banana", `cron expression "@every banana": @every: time: invalid duration "banana"`, ""},
		{"@every 0s", `cron expression "@every 0s": @every 0s: the period must be at least 1s`, ""},
		{"@every -5m", `cron expression "@every -5m": @every -5m: the period must be at least 1s`, ""},
		{"@every 1.5s", `cron expression "@every 1.5s": @every 1.5s: the period must be a whole number of seconds`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			s, err := Parse(tt.expr, time.UTC)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want error", tt.expr, s)
			}
			if err.Error() != tt.want {
				t.Fatalf("error\n got: %s\nwant: %s", err, tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *ParseError", err)
			}
			if pe.Field != tt.field {
				t.Errorf("Field = %q, want %q", pe.Field, tt.field)
			}
		})
	}

	t.Run("nil location", func(t *testing.T) {
		_, err := Parse("@daily", nil)
		if err == nil || err.Error() != `cron expression "@daily": no time zone given` {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("too long", func(t *testing.T) {
		long := "0 0 * * " + string(make([]byte, 1100))
		if _, err := Parse(long, time.UTC); err == nil {
			t.Fatal("no error for an over-long expression")
		}
	})
}

func TestParseAccepts(t *testing.T) {
	for _, expr := range []string{
		"* * * * *", "*/15 * * * *", "0 9 * * MON-FRI", "0 9 * * mon-fri", "0 0 1 JAN *",
		"0 0 L * *", "0 0 LW * *", "0 0 l * *", "0 0 15W * *", "0 18 * * FRI#L", "0 18 * * 5#3",
		"0 0 ? * *", "0 22-2 * * *", "0 0 * * 0,7", "  0 0 * * *  ", "0 0 * * THU,SAT",
		"0 30 2 * * *", "*/10 * * * * *",
		"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly", "@DAILY",
		"@every 15m", "@every 1h30m", "@every 1s", "@every 36h",
	} {
		if _, err := Parse(expr, time.UTC); err != nil {
			t.Errorf("Parse(%q): %v", expr, err)
		}
	}
}

func TestString(t *testing.T) {
	s := mustParse(t, "@every 15m", "Asia/Tokyo")
	if s.String() != "@every 15m" || s.Location().String() != "Asia/Tokyo" {
		t.Fatalf("String() = %q, Location() = %v", s.String(), s.Location())
	}
}

func TestLoadLocation(t *testing.T) {
	tokyo := mustLoc(t, "Asia/Tokyo")
	tests := []struct {
		name    string
		def     *time.Location
		want    string
		wantErr string
	}{
		{"America/New_York", nil, "America/New_York", ""},
		{"UTC", nil, "UTC", ""},
		{"", tokyo, "Asia/Tokyo", ""},
		{"", nil, "", "time zone: no zone given and no default configured"},
		{"Mars/Olympus_Mons", tokyo, "", `time zone "Mars/Olympus_Mons": unknown time zone Mars/Olympus_Mons`},
		{"Local", tokyo, "", `time zone "Local": name an IANA zone such as "Asia/Tokyo" instead; the machine's local zone differs between hosts`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc, err := LoadLocation(tt.name, tt.def)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if loc.String() != tt.want {
				t.Fatalf("got %v, want %s", loc, tt.want)
			}
		})
	}
}

func TestFires(t *testing.T) {
	s := mustParse(t, "30 2 * * *", "America/New_York")
	for _, c := range []struct {
		at   string
		want bool
	}{
		{"2025-03-08T02:30:00-05:00", true},
		{"2025-03-09T03:00:00-04:00", true},
		{"2025-03-09T03:30:00-04:00", false},
		{"2025-03-10T02:30:00-04:00", true},
		{"2025-03-10T02:30:00.000000001-04:00", false},
	} {
		if got := s.Fires(ts(t, c.at)); got != c.want {
			t.Errorf("Fires(%s) = %v, want %v", c.at, got, c.want)
		}
	}
}

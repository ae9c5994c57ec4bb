package schedule

import (
	"slices"
	"testing"
	"time"
)

// This file checks Next and Prev against a deliberately naive model of the
// rules in the package doc, computed by brute force minute by minute, on the
// DST transitions of zones with unusual ones: 30-minute shifts (Lord Howe),
// transitions at midnight (Sao Paulo, Santiago) and a skipped calendar day
// (Apia, December 2011).

// naiveOf is the wall-clock reading of instant i in loc, as a UTC time.
func naiveOf(i time.Time, loc *time.Location) time.Time {
	l := i.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), 0, time.UTC)
}

// offsetNear is the UTC offset at instant i, computed from the reading.
func offsetNear(i time.Time, loc *time.Location) time.Duration {
	return naiveOf(i, loc).Sub(i.UTC().Truncate(time.Second))
}

// refResolve is the first instant whose reading is at least w: the reading
// itself at its first occurrence, or the end of the gap that skips it. It
// scans minute by minute over the instants that can show w.
func refResolve(w time.Time, loc *time.Location) time.Time {
	o1, o2 := offsetNear(w.Add(-16*time.Hour), loc), offsetNear(w.Add(16*time.Hour), loc)
	for i := w.Add(-max(o1, o2) - 3*time.Hour); i.Before(w.Add(-min(o1, o2) + 3*time.Hour)); i = i.Add(time.Minute) {
		if !naiveOf(i, loc).Before(w) {
			return i
		}
	}
	panic("no instant shows " + w.String())
}

// refMatch matches a reading against the parsed cron fields directly, with
// POSIX day matching, for the plain expressions used here (no L, W or #).
func refMatch(s *Schedule, w time.Time) bool {
	sp := s.spec
	bit := func(v int, bits uint64) bool { return bits&(1<<uint(v)) != 0 }
	if !bit(w.Second(), sp.Second) || !bit(w.Minute(), sp.Minute) || !bit(w.Hour(), sp.Hour) || !bit(int(w.Month()), sp.Month) {
		return false
	}
	dom, dow := bit(w.Day(), sp.Dom), bit(int(w.Weekday()), sp.Dow)
	const star = 1 << 63
	if sp.Dom&star != 0 || sp.Dow&star != 0 {
		return dom && dow
	}
	return dom || dow
}

// refFires lists the fire times in (a, b] by brute force.
func refFires(s *Schedule, a, b time.Time) []time.Time {
	var out []time.Time
	if s.absolute {
		for i := a.Truncate(time.Minute); !i.After(b); i = i.Add(time.Minute) {
			if i.After(a) && refMatch(s, naiveOf(i, s.loc)) {
				out = append(out, i)
			}
		}
		return out
	}
	for w := naiveOf(a, s.loc).Add(-48 * time.Hour); w.Before(naiveOf(b, s.loc).Add(48 * time.Hour)); w = w.Add(time.Minute) {
		if !refMatch(s, w) {
			continue
		}
		if i := refResolve(w, s.loc); i.After(a) && !i.After(b) {
			out = append(out, i)
		}
	}
	slices.SortFunc(out, func(x, y time.Time) int { return x.Compare(y) })
	return slices.CompactFunc(out, time.Time.Equal)
}

func TestAgainstReference(t *testing.T) {
	windows := []struct{ zone, from, to string }{
		{"America/New_York", "2025-03-07T00:00:00Z", "2025-03-12T00:00:00Z"},
		{"America/New_York", "2025-10-31T00:00:00Z", "2025-11-05T00:00:00Z"},
		{"Europe/Berlin", "2025-03-28T00:00:00Z", "2025-04-02T00:00:00Z"},
		{"Europe/Berlin", "2025-10-24T00:00:00Z", "2025-10-29T00:00:00Z"},
		{"Australia/Lord_Howe", "2025-04-03T00:00:00Z", "2025-04-08T00:00:00Z"},
		{"Australia/Lord_Howe", "2025-10-02T00:00:00Z", "2025-10-07T00:00:00Z"},
		{"America/Sao_Paulo", "2018-11-02T00:00:00Z", "2018-11-06T00:00:00Z"},
		{"America/Sao_Paulo", "2019-02-15T00:00:00Z", "2019-02-19T00:00:00Z"},
		{"America/Santiago", "2025-04-04T00:00:00Z", "2025-04-08T00:00:00Z"},
		{"America/Santiago", "2025-09-05T00:00:00Z", "2025-09-09T00:00:00Z"},
		{"America/New_York", "2088-11-05T00:00:00Z", "2088-11-10T00:00:00Z"},
		{"America/New_York", "2088-12-29T00:00:00Z", "2089-01-03T00:00:00Z"},
		{"America/New_York", "2089-03-11T00:00:00Z", "2089-03-15T00:00:00Z"},
		{"Europe/Berlin", "2088-10-29T00:00:00Z", "2088-11-02T00:00:00Z"},
		{"Australia/Lord_Howe", "2088-12-29T00:00:00Z", "2089-01-03T00:00:00Z"},
		{"Pacific/Apia", "2011-12-27T00:00:00Z", "2012-01-02T00:00:00Z"},
		{"Asia/Tokyo", "2025-03-07T00:00:00Z", "2025-03-12T00:00:00Z"},
		{"UTC", "2025-03-07T00:00:00Z", "2025-03-10T00:00:00Z"},
	}
	exprs := []string{
		"30 2 * * *", "0 0 * * *", "*/15 * * * *", "0 * * * *", "45 1 * * *",
		"0,30 2 * * *", "10 * * * *", "0 1-3 * * *", "15 0 * * *", "30 23 * * *",
		"*/20 1,2 * * *", "0 0 * * 0", "59 * * * *", "0 0,12 * * *", "30 0 * * *",
	}
	for _, w := range windows {
		loc := mustLoc(t, w.zone)
		a, b := ts(t, w.from), ts(t, w.to)
		for _, expr := range exprs {
			s, err := Parse(expr, loc)
			if err != nil {
				t.Fatal(err)
			}
			want := refFires(s, a, b)
			var got []time.Time
			for f := s.Next(a); !f.IsZero() && !f.After(b); f = s.Next(f) {
				got = append(got, f)
			}
			if !slices.EqualFunc(got, want, time.Time.Equal) {
				t.Errorf("%s in %s from %s:\n got %v\nwant %v", expr, w.zone, w.from, got, want)
				continue
			}
			// Next and Prev from instants between fires, at an odd step so
			// that they land everywhere, repeated hours included.
			for x := a.Add(time.Second); x.Before(b); x = x.Add(17*time.Minute + 13*time.Second) {
				k, _ := slices.BinarySearchFunc(want, x, func(f, x time.Time) int {
					if !f.After(x) {
						return -1
					}
					return 1
				})
				if k < len(want) {
					if n := s.Next(x); !n.Equal(want[k]) {
						t.Errorf("%s in %s: Next(%s) = %s, want %s", expr, w.zone, x, n, want[k])
					}
				}
				j := k // want[j-1] is the last fire strictly before x
				if j > 0 && want[j-1].Equal(x) {
					j--
				}
				if j > 0 {
					if p := s.Prev(x); !p.Equal(want[j-1]) {
						t.Errorf("%s in %s: Prev(%s) = %s, want %s", expr, w.zone, x, p, want[j-1])
					}
				}
			}
			for k, f := range got {
				p := s.Prev(f)
				if k > 0 && !p.Equal(got[k-1]) {
					t.Errorf("%s in %s: Prev(%s) = %s, want %s", expr, w.zone, f, p, got[k-1])
				}
				if k == 0 && (!p.Before(f) || !s.Next(p).Equal(f)) {
					t.Errorf("%s in %s: Prev(%s) = %s is not the fire before", expr, w.zone, f, p)
				}
			}
		}
	}
}

func FuzzParseNext(f *testing.F) {
	for _, s := range []string{
		"* * * * *", "30 2 * * *", "30 1 * * *", "*/15 * * * *", "@hourly", "@daily",
		"@every 15m", "@every 7m", "0 0 L * *", "0 0 15W * *", "0 0 * * FRI#L",
		"0 0 29 2 *", "0 22-2 * * *", "5-1 * * * *", "* * * * * *", "0 30 2 * * *",
		"TZ=UTC * * * * *", "*/0 * * * *", "1,,2 * * * *", "60 * * * * *", "H H * * *",
		"@", "@every", "0-59/61 * * * *", "0 0 31 2 *", "L L L L L", "# # # # #",
		"0 0 * * 5#5", "0 0 LW * *", "0 0 L-40 * *", "*/7 */5 */3 */2 *",
	} {
		f.Add(s, int64(0), uint8(0))
		f.Add(s, int64(1_000_000_007), uint8(1))
	}
	zones := []*time.Location{
		mustLoc(f, "America/New_York"), mustLoc(f, "Europe/Berlin"), mustLoc(f, "Asia/Tokyo"),
		time.UTC, mustLoc(f, "Australia/Lord_Howe"), mustLoc(f, "America/Sao_Paulo"),
	}
	const (
		base = 631152000                // 1990-01-01T00:00:00Z
		span = 100 * 365 * 24 * 60 * 60 // about a century
	)
	f.Fuzz(func(t *testing.T, expr string, sec int64, z uint8) {
		loc := zones[int(z)%len(zones)]
		s, err := Parse(expr, loc)
		if err != nil {
			if s != nil {
				t.Fatalf("Parse(%q) returned both a schedule and %v", expr, err)
			}
			return
		}
		off := sec % span
		if off < 0 {
			off += span
		}
		at := time.Unix(base+off, int64(uint64(sec)%1_000_000_000))
		n1 := s.Next(at)
		if n1.IsZero() {
			return
		}
		if !n1.After(at) {
			t.Fatalf("%q: Next(%s) = %s, not after", expr, at, n1)
		}
		if !s.Fires(n1) {
			t.Fatalf("%q: Next(%s) = %s is not a fire time", expr, at, n1)
		}
		n2 := s.Next(n1)
		if n2.IsZero() {
			return
		}
		if !n2.After(n1) {
			t.Fatalf("%q: Next(%s) = %s, not strictly increasing", expr, n1, n2)
		}
		if p := s.Prev(n2); !p.Equal(n1) {
			t.Fatalf("%q: Prev(%s) = %s, want %s", expr, n2, p, n1)
		}
		if p := s.Prev(n1); p.IsZero() || !p.Before(n1) || !s.Next(p).Equal(n1) {
			t.Fatalf("%q: Prev(%s) = %s is not the fire before", expr, n1, p)
		}
		// The fire after Prev(at) is at itself or Next(at).
		if p := s.Prev(at); !p.IsZero() {
			if q := s.Next(p); !p.Before(at) || !(q.Equal(n1) || q.Equal(at)) {
				t.Fatalf("%q: Prev(%s) = %s, Next of that = %s, but Next(at) = %s", expr, at, p, q, n1)
			}
		}
	})
}

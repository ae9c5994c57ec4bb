package spec

import (
	"strings"
	"testing"
	"time"
)

// TestDeadlineParse covers the deadline and expected_duration keys: what is
// accepted and every error, with its position.
func TestDeadlineParse(t *testing.T) {
	const tasks = "tasks: [{id: a, run: x, expected_duration: 8s}]\n"
	tests := []struct {
		name string
		src  string
		want []string // "line:col: fragment"; empty when valid
	}{
		{"at", "name: p\ndeadline: {at: \"20:00\", timezone: Asia/Tokyo}\n" + tasks, nil},
		{"at with seconds", "name: p\ndeadline: {at: \"07:05:30\"}\n" + tasks, nil},
		{"after", "name: p\ndeadline: {after: 90m}\n" + tasks, nil},
		{"neither", "name: p\ndeadline: {timezone: Asia/Tokyo}\n" + tasks,
			[]string{"2:12: deadline: expected at (a time of day such as \"20:00\") or after"}},
		{"both", "name: p\ndeadline: {at: \"20:00\", after: 1h}\n" + tasks,
			[]string{"2:12: deadline: has at and after: give one of them"}},
		{"zero after", "name: p\ndeadline: {after: 0s}\n" + tasks,
			[]string{"2:19: deadline.after: expected a duration greater than 0s"}},
		{"negative after", "name: p\ndeadline: {after: -5m}\n" + tasks,
			[]string{"2:19: deadline.after: expected a duration that is not negative"}},
		{"bad at", "name: p\ndeadline:\n  at: \"8pm\"\n" + tasks,
			[]string{"3:7: deadline.at: expected a time of day as HH:MM or HH:MM:SS, got \"8pm\""}},
		{"hour out of range", "name: p\ndeadline:\n  at: \"24:00\"\n" + tasks,
			[]string{"3:7: deadline.at: the hour 24 is out of range (0 to 23)"}},
		{"minute out of range", "name: p\ndeadline:\n  at: \"20:60\"\n" + tasks,
			[]string{"3:7: deadline.at: the minute 60 is out of range (0 to 59)"}},
		{"signed", "name: p\ndeadline:\n  at: \"+1:00\"\n" + tasks,
			[]string{"3:7: deadline.at: expected a time of day"}},
		{"unknown zone", "name: p\ndeadline:\n  at: \"20:00\"\n  timezone: Mars/Olympus\n" + tasks,
			[]string{"4:13: deadline.timezone: unknown time zone \"Mars/Olympus\""}},
		{"zone with after", "name: p\ndeadline:\n  after: 1h\n  timezone: Asia/Tokyo\n" + tasks,
			[]string{"4:13: deadline.timezone: applies to at"}},
		{"a string", "name: p\ndeadline: \"20:00\"\n" + tasks,
			[]string{"2:11: deadline: expected a mapping (deadline), got the string \"20:00\""}},
		{"unknown key", "name: p\ndeadline: {at: \"20:00\", zone: UTC}\n" + tasks,
			[]string{"2:27: unknown key \"zone\" in deadline; did you mean \"timezone\"?"}},
		{"alias of deadline", "name: p\nsla: {after: 1h}\n" + tasks,
			[]string{"2:1: unknown key \"sla\" in pipeline; did you mean \"deadline\"?"}},
		{"bad expected_duration", "name: p\ntasks: [{id: a, run: x, expected_duration: 8}]\n",
			[]string{"2:45: expected_duration: expected a Go duration such as 90s, 5m or 1h30m, got the integer 8 (a duration needs a unit, e.g. 8s)"}},
		{"negative expected_duration", "name: p\ntasks: [{id: a, run: x, expected_duration: -8s}]\n",
			[]string{"2:45: expected_duration: expected a duration that is not negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseErrors(t, tt.src)
			if len(got) != len(tt.want) {
				t.Fatalf("errors %q, want %q", got, tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i][:strings.Index(tt.want[i], ":")+1]) || !strings.Contains(got[i], tt.want[i][strings.Index(tt.want[i], " ")+1:]) {
					t.Errorf("error %q, want %q", got[i], tt.want[i])
				}
			}
		})
	}
	p, err := Parse("p.yaml", []byte("name: p\ndeadline: {at: \"20:00\", timezone: Asia/Tokyo}\n"+tasks))
	if err != nil {
		t.Fatal(err)
	}
	if p.Deadline == nil || p.Deadline.At != "20:00" || p.Deadline.Timezone != "Asia/Tokyo" {
		t.Errorf("deadline %+v", p.Deadline)
	}
	if p.Tasks[0].ExpectedDuration.D() != 8*time.Second {
		t.Errorf("expected_duration %s, want 8s", p.Tasks[0].ExpectedDuration)
	}
}

// TestDeadlineTime computes deadlines: at the first such time at or after
// the base, in the zone, through daylight saving changes; after a duration
// later.
func TestDeadlineTime(t *testing.T) {
	tokyo := mustZone(t, "Asia/Tokyo")
	ny := mustZone(t, "America/New_York")
	tests := []struct {
		name string
		d    Deadline
		loc  *time.Location
		base time.Time
		want time.Time
	}{
		{"later the same day", Deadline{At: "20:00"}, tokyo,
			time.Date(2026, 3, 2, 9, 0, 0, 0, tokyo), time.Date(2026, 3, 2, 20, 0, 0, 0, tokyo)},
		{"at the base itself", Deadline{At: "20:00"}, tokyo,
			time.Date(2026, 3, 2, 20, 0, 0, 0, tokyo), time.Date(2026, 3, 2, 20, 0, 0, 0, tokyo)},
		{"just past: the next day", Deadline{At: "20:00"}, tokyo,
			time.Date(2026, 3, 2, 20, 0, 0, 1, tokyo), time.Date(2026, 3, 3, 20, 0, 0, 0, tokyo)},
		{"seconds", Deadline{At: "06:00:30"}, tokyo,
			time.Date(2026, 3, 2, 6, 0, 0, 0, tokyo), time.Date(2026, 3, 2, 6, 0, 30, 0, tokyo)},
		{"read in the zone, not UTC", Deadline{At: "08:00"}, tokyo,
			time.Date(2026, 3, 1, 22, 0, 0, 0, time.UTC), time.Date(2026, 3, 2, 8, 0, 0, 0, tokyo)},
		{"skipped hour: after the gap", Deadline{At: "02:30"}, ny,
			time.Date(2026, 3, 8, 0, 0, 0, 0, ny), time.Date(2026, 3, 8, 3, 0, 0, 0, ny)},
		{"repeated hour: the first", Deadline{At: "01:30"}, ny,
			time.Date(2026, 11, 1, 0, 0, 0, 0, ny), time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC)},
		{"across spring forward", Deadline{At: "20:00"}, ny,
			time.Date(2026, 3, 7, 21, 0, 0, 0, ny), time.Date(2026, 3, 8, 20, 0, 0, 0, ny)},
		{"after", Deadline{After: Duration(90 * time.Minute)}, tokyo,
			time.Date(2026, 3, 2, 9, 0, 0, 0, tokyo), time.Date(2026, 3, 2, 10, 30, 0, 0, tokyo)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.d.Time(tt.base, tt.loc)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("Time(%s) = %s, want %s", tt.base, got, tt.want.In(tt.loc))
			}
		})
	}
}

// TestDeadlineLocation: the deadline's zone, else the schedule's, else the
// default.
func TestDeadlineLocation(t *testing.T) {
	def := mustZone(t, "Europe/Berlin")
	for _, tt := range []struct {
		d     Deadline
		sched *Schedule
		want  string
	}{
		{Deadline{At: "20:00", Timezone: "Asia/Tokyo"}, &Schedule{Timezone: "America/New_York"}, "Asia/Tokyo"},
		{Deadline{At: "20:00"}, &Schedule{Timezone: "America/New_York"}, "America/New_York"},
		{Deadline{At: "20:00"}, &Schedule{}, "Europe/Berlin"},
		{Deadline{At: "20:00"}, nil, "Europe/Berlin"},
	} {
		loc, err := tt.d.Location(tt.sched, def)
		if err != nil {
			t.Fatal(err)
		}
		if loc.String() != tt.want {
			t.Errorf("Location(%+v, %+v) = %s, want %s", tt.d, tt.sched, loc, tt.want)
		}
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

package spec

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestParseObjectives reads the objective forms of the issue: on the
// pipeline's success and on datasets its tasks produce.
func TestParseObjectives(t *testing.T) {
	src := `name: sales-mart
slo: {fresh_by: "09:00", timezone: Asia/Tokyo, days: weekdays}
datasets:
  - name: warehouse.sales_mart
    slo: {max_age: 15m, during: "09:00-15:00 Asia/Tokyo"}
  - name: warehouse.sales_daily
    slo:
      fresh_by: "07:30"
      days: [mon, wed, fri]
tasks:
  - id: build
    run: ./build.sh
    produces: [warehouse.sales_mart, warehouse.sales_daily]
`
	p, err := Parse("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if p.SLO == nil || p.SLO.FreshBy != "09:00" || p.SLO.Timezone != "Asia/Tokyo" || p.SLO.Days != "weekdays" {
		t.Fatalf("slo = %+v", p.SLO)
	}
	if len(p.Datasets) != 2 || p.Datasets[0].Name != "warehouse.sales_mart" || p.Datasets[0].SLO.MaxAge.D() != 15*time.Minute {
		t.Fatalf("datasets = %+v", p.Datasets)
	}
	for _, c := range []struct {
		slo  *SLO
		want string
	}{
		{p.SLO, "fresh by 09:00 Asia/Tokyo, weekdays"},
		{p.Datasets[0].SLO, "max age 15m0s during 09:00-15:00 Asia/Tokyo, daily"},
		{p.Datasets[1].SLO, "fresh by 07:30 Europe/Berlin, mon,wed,fri"},
	} {
		o, err := c.slo.Objective(mustLocation(t, "Europe/Berlin"))
		if err != nil {
			t.Fatal(err)
		}
		if o.String() != c.want {
			t.Errorf("objective %s, want %s", o, c.want)
		}
	}
	days, err := p.Datasets[1].SLO.DayNames()
	if err != nil || !slices.Equal(days, []string{"mon", "wed", "fri"}) {
		t.Errorf("days = %v, %v", days, err)
	}
}

func mustLocation(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestObjectiveErrors: every mistake in an objective is reported at the
// key it is about, as line:col.
func TestObjectiveErrors(t *testing.T) {
	const task = "tasks:\n  - id: build\n    run: b\n    produces: [mart]\n"
	for _, c := range []struct {
		name string
		src  string
		want []string
	}{
		{"neither kind", "name: x\nslo: {timezone: Asia/Tokyo}\n" + task,
			[]string{`2:7: slo: expected fresh_by (a time of day such as "09:00") or max_age (a duration such as 15m)`}},
		{"both kinds", "name: x\nslo: {fresh_by: \"09:00\", max_age: 1h}\n" + task,
			[]string{`2:35: slo: fresh_by and max_age are two kinds of objective: give one`}},
		{"bad time of day", "name: x\nslo:\n  fresh_by: \"9am\"\n" + task,
			[]string{`3:13: slo.fresh_by: expected a time of day as HH:MM from 00:00 to 23:59, such as "09:00", got "9am"`}},
		{"hour out of range", "name: x\nslo:\n  fresh_by: \"25:00\"\n" + task,
			[]string{`3:13: slo.fresh_by: expected a time of day as HH:MM`}},
		{"zero max_age", "name: x\nslo:\n  max_age: 0s\n" + task,
			[]string{`3:12: slo.max_age: expected a positive duration such as 15m, got 0s`}},
		{"negative max_age", "name: x\nslo:\n  max_age: -5m\n" + task,
			[]string{`3:12: slo.max_age: expected a duration that is not negative, got -5m0s`}},
		{"max_age without unit", "name: x\nslo:\n  max_age: 15\n" + task,
			[]string{`3:12: slo.max_age: expected a Go duration such as 90s, 5m or 1h30m, got the integer 15 (a duration needs a unit, e.g. 15s)`}},
		{"unknown zone", "name: x\nslo:\n  fresh_by: \"09:00\"\n  timezone: Mars/Olympus\n" + task,
			[]string{`4:13: slo.timezone: unknown time zone "Mars/Olympus": expected an IANA name such as Asia/Tokyo or Europe/Berlin`}},
		{"Local zone", "name: x\nslo:\n  fresh_by: \"09:00\"\n  timezone: Local\n" + task,
			[]string{`4:13: slo.timezone: time zone "Local": name an IANA zone`}},
		{"during with fresh_by", "name: x\nslo:\n  fresh_by: \"09:00\"\n  during: \"09:00-10:00\"\n" + task,
			[]string{`4:11: slo.during: goes with max_age`}},
		{"bad during", "name: x\nslo:\n  max_age: 15m\n  during: 9-15\n" + task,
			[]string{`4:11: slo.during: expected a daily period such as "09:00-15:00" or "09:00-15:00 Asia/Tokyo", got "9-15"`}},
		{"during's zone unknown", "name: x\nslo:\n  max_age: 15m\n  during: \"09:00-15:00 Asia/Tokio\"\n" + task,
			[]string{`4:11: slo.during: unknown time zone "Asia/Tokio"`}},
		{"two zones", "name: x\nslo:\n  max_age: 15m\n  during: \"09:00-15:00 Asia/Tokyo\"\n  timezone: Europe/Berlin\n" + task,
			[]string{`4:11: slo.during: names the time zone Asia/Tokyo and timezone is Europe/Berlin: give one`}},
		{"unknown day", "name: x\nslo:\n  fresh_by: \"09:00\"\n  days: workdays\n" + task,
			[]string{`4:9: slo.days: unknown day "workdays": expected daily, weekdays, weekends, or a list of mon, tue, wed, thu, fri, sat, sun`}},
		{"day twice", "name: x\nslo:\n  fresh_by: \"09:00\"\n  days: [mon, tue, mon]\n" + task,
			[]string{`4:9: slo.days: day "mon" is listed twice`}},
		{"a number for days", "name: x\nslo:\n  fresh_by: \"09:00\"\n  days: [1, 2]\n" + task,
			[]string{`4:9: slo.days: expected day names, got 1`}},
		{"unknown key", "name: x\nslo:\n  fresh_by: \"09:00\"\n  maxage: 1h\n" + task,
			[]string{`4:3: unknown key "maxage" in slo; did you mean "max_age"?`}},
		{"dataset not produced here", "name: x\ndatasets:\n  - name: raw.orders\n    slo: {fresh_by: \"09:00\"}\n" + task,
			[]string{`3:11: datasets: no task of this pipeline produces "raw.orders"; an objective goes with the pipeline that produces the dataset (a task's produces)`}},
		{"dataset twice", "name: x\ndatasets:\n  - name: mart\n    slo: {fresh_by: \"09:00\"}\n  - name: mart\n    slo: {max_age: 1h}\n" + task,
			[]string{`5:11: datasets: "mart" is given twice (first at line 3)`}},
		{"dataset without slo", "name: x\ndatasets:\n  - name: mart\n" + task,
			[]string{`3:5: missing required key "slo" in dataset "mart"`}},
		{"dataset's objective", "name: x\ndatasets:\n  - name: mart\n    slo: {fresh_by: \"9\"}\n" + task,
			[]string{`4:21: datasets "mart": slo.fresh_by: expected a time of day as HH:MM`}},
		{"dataset name", "name: x\ndatasets:\n  - name: ../mart\n    slo: {fresh_by: \"09:00\"}\n" + task,
			[]string{`3:11: invalid dataset name "../mart": expected letters, digits, '-', '_' and '.', starting with a letter, digit or '_'`}},
		{"a list of names instead", "name: x\ndatasets: [mart]\n" + task,
			[]string{`2:12: datasets: expected a mapping (dataset), got the string "mart"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := parseErrors(t, c.src)
			if len(got) != len(c.want) {
				t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], c.want[i]) {
					t.Errorf("error %d:\n%s\nwant prefix:\n%s", i, got[i], c.want[i])
				}
			}
		})
	}
}

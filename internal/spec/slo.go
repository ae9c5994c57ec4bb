package spec

import (
	"fmt"
	"reflect"
	"time"

	"github.com/tasuki-dev/tasuki/internal/slo"
)

// SLO is a freshness objective: the promise that data is fresh by a time
// of day, or never older than a maximum age during a daily period. On the
// pipeline it is about the pipeline's success (a run of it succeeded); in
// datasets, about a dataset its tasks produce. The server judges it
// (package slo) and 'tasuki slo' shows how it stands.
type SLO struct {
	FreshBy  string   `yaml:"fresh_by,omitempty" doc:"A time of day, HH:MM such as \"09:00\": on each of days, the data was updated (for the pipeline's own slo: a run of it succeeded) after the previous such deadline and by this one. Give fresh_by or max_age." aka:"by,ready_by,fresh_at,at"`
	MaxAge   Duration `yaml:"max_age,omitempty" doc:"A duration such as 15m: during the daily period (during) of each of days, the newest update is never older than this. Give fresh_by or max_age." aka:"max_staleness,staleness,age,after"`
	During   string   `yaml:"during,omitempty" doc:"max_age: the daily period it holds in, HH:MM-HH:MM, optionally followed by an IANA time zone (\"09:00-15:00 Asia/Tokyo\"); an end not after the start is the next day's. Default: the whole day." aka:"between,hours,period"`
	Days     any      `yaml:"days,omitempty" doc:"The days it holds on: daily (the default), weekdays, weekends, or a list of mon, tue, wed, thu, fri, sat, sun. For max_age, the days its period starts on." aka:"on,day,weekdays"`
	Timezone string   `yaml:"timezone,omitempty" doc:"IANA time zone fresh_by and during are read in, such as Asia/Tokyo. Default: the schedule's timezone, then the server's timezone setting." aka:"tz,zone,time_zone"`
}

// Dataset is what a pipeline declares about a dataset one of its tasks
// produces: its freshness objective.
type Dataset struct {
	Name string `yaml:"name" doc:"The dataset, as a task of this pipeline names it in produces." required:"true" pattern:"name" aka:"dataset,id"`
	SLO  *SLO   `yaml:"slo" doc:"The dataset's freshness objective: {fresh_by: \"09:00\", timezone: Asia/Tokyo, days: weekdays} or {max_age: 15m, during: \"09:00-15:00 Asia/Tokyo\"}." required:"true" aka:"objective,sla,freshness"`
}

// DayNames returns the days of the objective as names (nil: daily).
func (s *SLO) DayNames() ([]string, error) {
	switch v := s.Days.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []string:
		return v, nil
	case []any:
		out := make([]string, len(v))
		for i, x := range v {
			name, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("expected day names, got %v", x)
			}
			out[i] = name
		}
		return out, nil
	}
	return nil, fmt.Errorf("expected daily, weekdays, weekends or a list of day names, got %v", s.Days)
}

// Objective parses the objective; def is the time zone when it names
// none (the schedule's, else the server's).
func (s *SLO) Objective(def *time.Location) (*slo.Objective, error) {
	days, err := s.DayNames()
	if err != nil {
		return nil, fmt.Errorf("days: %w", err)
	}
	return slo.New(slo.Spec{FreshBy: s.FreshBy, MaxAge: s.MaxAge.D(), During: s.During, Days: days, Timezone: s.Timezone}, def)
}

// objectives checks the pipeline's slo and its datasets' objectives: each
// dataset is one a task of the pipeline produces, named once, and each
// objective is one whole promise.
func (c *checker) objectives(p *Pipeline) {
	if p.SLO != nil {
		c.objective(p.SLO, "slo")
	}
	produced := map[string]bool{}
	for _, t := range p.Tasks {
		for _, d := range t.Produces {
			produced[d] = true
		}
	}
	seen := map[string]int{}
	for i := range p.Datasets {
		d := &p.Datasets[i]
		label := "datasets " + quoteShort(d.Name)
		if at, ok := c.at(&d.Name); ok && d.Name != "" && c.f.namePattern("name").re.MatchString(d.Name) {
			switch j, dup := seen[d.Name]; {
			case dup:
				c.errorf(at, "datasets: %s is given twice (first at %s)", quoteShort(d.Name), c.line(&p.Datasets[j].Name, j, "dataset"))
			case !produced[d.Name]:
				c.errorf(at, "datasets: no task of this pipeline produces %s; an objective goes with the pipeline that produces the dataset (a task's produces)", quoteShort(d.Name))
			}
			seen[d.Name] = i
		}
		if d.SLO != nil {
			c.objective(d.SLO, label+": slo")
		}
	}
}

// objective checks one objective, each problem at the key it is about.
func (c *checker) objective(s *SLO, label string) {
	objAt, ok := c.at(s)
	if !ok {
		return
	}
	maxAgeGiven := c.given(&s.MaxAge, reflect.ValueOf(s.MaxAge))
	switch {
	case s.FreshBy != "" && maxAgeGiven:
		at, _ := c.at(&s.MaxAge)
		c.errorf(at, "%s: fresh_by and max_age are two kinds of objective: give one", label)
	case s.FreshBy == "" && !maxAgeGiven:
		c.errorf(objAt, "%s: expected fresh_by (a time of day such as \"09:00\") or max_age (a duration such as 15m)", label)
	}
	if at, ok := c.at(&s.FreshBy); ok && s.FreshBy != "" {
		if _, err := slo.ParseClock(s.FreshBy); err != nil {
			c.errorf(at, "%s.fresh_by: %v", label, err)
		}
	}
	if at, ok := c.at(&s.MaxAge); ok && maxAgeGiven && s.MaxAge == 0 {
		c.errorf(at, "%s.max_age: expected a positive duration such as 15m, got 0s", label)
	}
	zone := s.Timezone
	if at, ok := c.at(&s.Timezone); ok && s.Timezone != "" {
		if _, err := slo.LoadZone(s.Timezone, nil); err != nil {
			c.errorf(at, "%s.timezone: %v", label, err)
		}
	}
	if at, ok := c.at(&s.During); ok && s.During != "" {
		d, err := slo.ParseDuring(s.During)
		switch {
		case s.FreshBy != "":
			c.errorf(at, "%s.during: goes with max_age; a fresh_by objective is judged at its time of day", label)
		case err != nil:
			c.errorf(at, "%s.during: %v", label, err)
		case d.Zone != "":
			if _, err := slo.LoadZone(d.Zone, nil); err != nil {
				c.errorf(at, "%s.during: %v", label, err)
			} else if zone != "" && zone != d.Zone {
				c.errorf(at, "%s.during: names the time zone %s and timezone is %s: give one", label, d.Zone, zone)
			}
		}
	}
	if at, ok := c.at(&s.Days); ok && s.Days != nil {
		names, err := s.DayNames()
		if err == nil {
			_, err = slo.ParseDays(names)
		}
		if err != nil {
			c.errorf(at, "%s.days: %v", label, err)
		}
	}
}

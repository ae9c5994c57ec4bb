package web

// The pipeline page (/pipelines/{name}): its runs, paged by the store; a
// calendar of its runs per day in the pipeline's time zone; its file and
// the file's history; and the forms that act on it (trigger with its
// parameters, pause, backfill), which send to the JSON API.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

func pipelineRoutes() []page {
	return []page{
		{"GET /pipelines/{name}", viewer, (*UI).pipeline},
		{"GET /pipelines/{name}/runs", viewer, (*UI).pipelineRuns},
		{"GET /pipelines/{name}/versions/{id}", viewer, (*UI).pipelineVersion},
	}
}

// History is what the pipeline page reads from the store beyond
// api.Service: the pipeline file's stored versions and the count of its
// runs per day. A store.Store is one.
type History interface {
	// PipelineVersions lists versions newest first, without their source.
	PipelineVersions(ctx context.Context, pipeline string, beforeID int64, limit int) ([]store.PipelineVersion, error)
	// PipelineVersion returns one version with its source.
	PipelineVersion(ctx context.Context, id int64) (store.PipelineVersion, error)
	// RunDays counts the pipeline's runs per day in loc.
	RunDays(ctx context.Context, pipeline string, from, to time.Time, loc *time.Location) ([]store.RunDay, error)
}

// Sizes of the pipeline page.
const (
	pipelineRunsPage = 50 // runs per page
	versionsShown    = 20 // versions of the file listed
	calendarWeeks    = 5  // weeks of the calendar, the current one last
)

// runQuery is what the query string of the pipeline page selects: the
// runs' state, one day, and the page.
type runQuery struct {
	State  engine.RunState // "" for all
	Day    string          // YYYY-MM-DD in the pipeline's zone; "" for all
	Cursor string
}

// parseRunQuery reads the query string; anything it does not know is a 400.
func parseRunQuery(r *http.Request) (runQuery, error) {
	var q runQuery
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return q, badRequest("the query string does not parse: %v", err)
	}
	for k, vs := range vals {
		if len(vs) != 1 {
			return q, badRequest("query parameter %q given %d times", k, len(vs))
		}
		v := vs[0]
		switch k {
		case "state":
			if v != "" && !slices.Contains(runStates, engine.RunState(v)) {
				return q, badRequest("state %q: expected one of queued, running, succeeded, failed, cancelled", v)
			}
			q.State = engine.RunState(v)
		case "day":
			if v != "" {
				if _, err := time.Parse(time.DateOnly, v); err != nil {
					return q, badRequest("day %q: expected a date like 2026-03-14", v)
				}
			}
			q.Day = v
		case "cursor":
			q.Cursor = v
		default:
			return q, badRequest("unknown query parameter %q", k)
		}
	}
	return q, nil
}

// encode writes q back as a query string, with another cursor.
func (q runQuery) encode(cursor string) string {
	v := url.Values{}
	if q.State != "" {
		v.Set("state", string(q.State))
	}
	if q.Day != "" {
		v.Set("day", q.Day)
	}
	if cursor != "" {
		v.Set("cursor", cursor)
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// zone is the pipeline's time zone (its schedule's; UTC without one).
func zone(p api.Pipeline) *time.Location {
	if p.Timezone != "" {
		if loc, err := time.LoadLocation(p.Timezone); err == nil {
			return loc
		}
	}
	return time.UTC
}

// visiblePipeline returns the pipeline if the viewer may see it: a user
// confined to a namespace gets 404 for another's, as for one that does not
// exist, so the page tells nothing about what exists elsewhere.
func (u *UI) visiblePipeline(ctx context.Context, name string) (api.Pipeline, error) {
	p, err := u.o.Service.Pipeline(ctx, name)
	if err != nil {
		return api.Pipeline{}, err
	}
	if v := viewerFrom(ctx).P; !v.Sees(p.Namespace) {
		return api.Pipeline{}, api.NotFound("no pipeline %q", name)
	}
	return p, nil
}

// runsOf reads a page of the pipeline's runs for q.
func (u *UI) runsOf(ctx context.Context, p api.Pipeline, q runQuery) (api.Page[api.Run], error) {
	f := api.RunFilter{Pipeline: p.Name, Cursor: q.Cursor, Limit: pipelineRunsPage}
	if q.State != "" {
		f.States = []engine.RunState{q.State}
	}
	if q.Day != "" {
		d, _ := time.ParseInLocation(time.DateOnly, q.Day, zone(p)) // checked by parseRunQuery
		f.CreatedFrom, f.CreatedBefore = d, time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, d.Location())
	}
	return u.o.Service.Runs(ctx, f)
}

// runsView is the runs table of the page and of its "more" fragment.
type runsView struct {
	Pipeline api.Pipeline
	Runs     api.Page[api.Run]
	Query    runQuery
	Zone     string
	// More is the page's URL of the next page, Fragment the fragment's.
	More, Fragment string
	Now            time.Time
}

func (u *UI) newRunsView(p api.Pipeline, q runQuery, runs api.Page[api.Run]) runsView {
	v := runsView{Pipeline: p, Runs: runs, Query: q, Zone: zone(p).String(), Now: u.o.Now()}
	if runs.Next != "" {
		base := "/pipelines/" + url.PathEscape(p.Name)
		v.More = base + q.encode(runs.Next)
		v.Fragment = base + "/runs" + q.encode(runs.Next)
	}
	return v
}

// calendarDay is one cell of the calendar.
type calendarDay struct {
	store.RunDay
	Date   string // YYYY-MM-DD
	Future bool   // after today: no cell content
	Today  bool
	// Worst is the state the cell is coloured by: failed before late
	// before running before met; "none" for a day without runs.
	Worst string
	// Label says the day and its counts in words; Marks are the counts
	// that are not zero, each with its glyph.
	Label string
	Marks []dayMark
}

// dayMark is one count of a calendar day.
type dayMark struct {
	Glyph, Word, Class string
	N                  int
}

// calendarView is the calendar: weeks of days, Monday first.
type calendarView struct {
	Weeks [][]calendarDay
	Zone  string
}

// calendar counts the runs of the last weeks per day, in the pipeline's
// zone, from the store's aggregate.
func (u *UI) calendar(ctx context.Context, p api.Pipeline) (*calendarView, error) {
	if u.o.History == nil {
		return nil, nil
	}
	loc := zone(p)
	now := u.o.Now().In(loc)
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
	monday := today.AddDate(0, 0, -((int(today.Weekday()) + 6) % 7))
	from := monday.AddDate(0, 0, -7*(calendarWeeks-1))
	days, err := u.o.History.RunDays(ctx, p.Name, from, today, loc)
	if err != nil {
		return nil, fmt.Errorf("calendar of %s: %w", p.Name, err)
	}
	cv := &calendarView{Zone: loc.String()}
	var week []calendarDay
	for i := range 7 * calendarWeeks {
		d := time.Date(from.Year(), from.Month(), from.Day()+i, 0, 0, 0, 0, loc)
		c := calendarDay{Date: d.Format(time.DateOnly), Future: d.After(today), Today: d.Equal(today)}
		if i < len(days) {
			c.RunDay = days[i]
		}
		c.RunDay.Day = d
		switch {
		case c.Failed > 0:
			c.Worst = "failed"
		case c.Late > 0:
			c.Worst = "late"
		case c.Running > 0:
			c.Worst = "running"
		case c.Met > 0:
			c.Worst = "met"
		case c.Cancelled > 0:
			c.Worst = "cancelled"
		default:
			c.Worst = "none"
		}
		var words []string
		for _, m := range []dayMark{
			{"✗", "failed", "failed", c.Failed}, {"◷", "late", "late", c.Late}, {"◐", "running or queued", "running", c.Running},
			{"✓", "met", "met", c.Met}, {"■", "cancelled", "cancelled", c.Cancelled},
		} {
			if m.N > 0 {
				c.Marks = append(c.Marks, m)
				words = append(words, fmt.Sprintf("%d %s", m.N, m.Word))
			}
		}
		if len(words) == 0 {
			words = []string{"no runs"}
		}
		c.Label = d.Format("Monday 2 January 2006") + ": " + strings.Join(words, ", ")
		week = append(week, c)
		if len(week) == 7 {
			cv.Weeks = append(cv.Weeks, week)
			week = nil
		}
	}
	return cv, nil
}

// versionView is one stored version of the file.
type versionView struct {
	store.PipelineVersion
	Current bool
}

// pipelinePage is the data of the page.
type pipelinePage struct {
	P        api.Pipeline
	Zone     string
	Runs     runsView
	States   []engine.RunState
	Calendar *calendarView
	Versions []versionView
	// Source is the stored source of the version in use ("" when it is
	// not stored: no History, or not yet).
	Source  string
	Current *versionView
	SLOs    []api.SLO
	// TriggerParams and BackfillParams are the parameters' fields of the
	// two forms (the same, with ids of their own).
	TriggerParams, BackfillParams []paramField
	// CanBackfill: the pipeline has a cron schedule, so intervals.
	CanBackfill bool
}

func (u *UI) pipeline(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	q, err := parseRunQuery(r)
	if err != nil {
		return err
	}
	p, err := u.visiblePipeline(ctx, r.PathValue("name"))
	if err != nil {
		return err
	}
	runs, err := u.runsOf(ctx, p, q)
	if err != nil {
		return err
	}
	d := pipelinePage{P: p, Zone: zone(p).String(), Runs: u.newRunsView(p, q, runs), States: runStates, CanBackfill: p.Schedule != ""}
	for _, prm := range p.Params {
		f := paramField{Param: prm, Input: paramInput(prm), Hint: paramHint(prm), Default: defaultText(prm)}
		f.ID = "trigger-param-" + prm.Name
		d.TriggerParams = append(d.TriggerParams, f)
		f.ID = "backfill-param-" + prm.Name
		d.BackfillParams = append(d.BackfillParams, f)
	}
	if d.Calendar, err = u.calendar(ctx, p); err != nil {
		return err
	}
	if u.o.History != nil {
		vs, err := u.o.History.PipelineVersions(ctx, p.Name, 0, versionsShown)
		if err != nil {
			return fmt.Errorf("versions of %s: %w", p.Name, err)
		}
		for _, v := range vs {
			vv := versionView{PipelineVersion: v, Current: p.Hash != "" && v.Hash == p.Hash}
			d.Versions = append(d.Versions, vv)
			if vv.Current && d.Current == nil {
				cur, err := u.o.History.PipelineVersion(ctx, v.ID)
				if err != nil {
					return fmt.Errorf("version %d of %s: %w", v.ID, p.Name, err)
				}
				d.Source = shownSource(cur)
				d.Current = &vv
			}
		}
	}
	if d.SLOs, err = u.slosOf(ctx, p.Name); err != nil {
		return err
	}
	return u.render(w, r, http.StatusOK, "pipeline", viewData{Title: p.Name, Nav: "pipelines", Data: d})
}

// slosOf lists the freshness objectives of a pipeline. A viewer confined
// to a namespace sees only the pipeline's own objective: a dataset's may
// concern pipelines of other namespaces (the API's /slo is for global
// tokens for that reason).
func (u *UI) slosOf(ctx context.Context, pipeline string) ([]api.SLO, error) {
	if u.o.SLOs == nil {
		return nil, nil
	}
	list, err := u.o.SLOs.ListSLOs(ctx, pipeline)
	if err != nil {
		return nil, fmt.Errorf("objectives of %q: %w", pipeline, err)
	}
	if viewerFrom(ctx).P.Namespace != "" {
		list = slices.DeleteFunc(list, func(s api.SLO) bool { return s.Dataset != "" })
	}
	return list, nil
}

// pipelineRuns answers the "more" fragment of the runs table: the rows of
// the next page and, past them, the next "more" row. Opened as a page (not
// by htmx), it sends the browser to the page it belongs to.
func (u *UI) pipelineRuns(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	q, err := parseRunQuery(r)
	if err != nil {
		return err
	}
	p, err := u.visiblePipeline(ctx, r.PathValue("name"))
	if err != nil {
		return err
	}
	if r.Header.Get("HX-Request") == "" {
		http.Redirect(w, r, "/pipelines/"+url.PathEscape(p.Name)+q.encode(q.Cursor), http.StatusSeeOther)
		return nil
	}
	runs, err := u.runsOf(ctx, p, q)
	if err != nil {
		return err
	}
	return u.render(w, r, http.StatusOK, "pipeline_runs", viewData{Data: u.newRunsView(p, q, runs)})
}

// pipelineVersion shows one stored version of the pipeline's file: only a
// version of this pipeline (another's id is not found here, so the page
// cannot show a file of a namespace the viewer does not see).
func (u *UI) pipelineVersion(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if len(r.URL.RawQuery) > 0 {
		return badRequest("this page takes no query parameters")
	}
	p, err := u.visiblePipeline(ctx, r.PathValue("name"))
	if err != nil {
		return err
	}
	id, err := pathID(r, "id", "version")
	if err != nil {
		return err
	}
	if u.o.History == nil {
		return api.NotFound("this server keeps no versions of pipeline files")
	}
	v, err := u.o.History.PipelineVersion(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && v.Pipeline != p.Name {
		return api.NotFound("pipeline %q has no version %d", p.Name, id)
	}
	if err != nil {
		return fmt.Errorf("version %d of %s: %w", id, p.Name, err)
	}
	return u.render(w, r, http.StatusOK, "pipeline_version", viewData{Title: fmt.Sprintf("%s · version %d", p.Name, id), Nav: "pipelines", Data: struct {
		P       api.Pipeline
		V       store.PipelineVersion
		Source  string
		Current bool
		Lines   int
	}{p, v, shownSource(v), v.Hash == p.Hash, strings.Count(string(v.Source), "\n")}})
}

// shownSource is a stored pipeline file as its page shows it: the file as
// written, unless it gives a default value to a secret parameter, which the
// API shows only as ***: then a note saying why it is not shown. A file that
// no longer parses is shown (it held no secret the parser could find).
func shownSource(v store.PipelineVersion) string {
	p, err := spec.Parse(v.File, v.Source)
	if err == nil {
		for _, prm := range p.Params {
			if prm.Secret && prm.Default != nil {
				return fmt.Sprintf("# This file is not shown: it gives a default value to the secret parameter %q,\n"+
					"# which the server shows to no one. Keep such values in secrets ({secret: NAME}) instead.\n", prm.Name)
			}
		}
	}
	return string(v.Source)
}

// paramField is one declared parameter as a form asks for it.
type paramField struct {
	api.Param
	ID      string // of its input
	Input   string // the input's type: text, number, date, password, or select (bool)
	Hint    string // what a value looks like
	Default string // the default as text ("" for none; "***" for a secret's)
}

func defaultText(p api.Param) string {
	if p.Default == nil {
		return ""
	}
	return fmt.Sprint(p.Default)
}

// paramInput is how a declared parameter is asked for in a form.
func paramInput(p api.Param) string {
	if p.Secret {
		return "password"
	}
	switch p.Type {
	case "int", "float":
		return "number"
	case "date":
		return "date"
	case "bool":
		return "select"
	}
	return "text"
}

// paramHint is the example shown under a parameter's field.
func paramHint(p api.Param) string {
	switch p.Type {
	case "int":
		return "an integer"
	case "float":
		return "a number"
	case "bool":
		return "true or false"
	case "date":
		return "a date"
	case "datetime":
		return "a date and time like 2026-01-31T09:00:00Z"
	case "list":
		return `comma-separated values like a,b, or a JSON array like ["a","b"]`
	}
	return "text"
}

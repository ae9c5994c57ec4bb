package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/web"
)

// history is a fake web.History: versions by id, and the day counts it
// was given (whatever the range asked).
type history struct {
	versions []store.PipelineVersion // oldest first
	days     map[string]store.RunDay // by YYYY-MM-DD
	asked    []string                // the zones RunDays was asked for
}

func (h *history) PipelineVersions(_ context.Context, pipeline string, before int64, limit int) ([]store.PipelineVersion, error) {
	var out []store.PipelineVersion
	for _, v := range slices.Backward(h.versions) {
		if v.Pipeline == pipeline && (before <= 0 || v.ID < before) && len(out) < limit {
			v.Source = nil
			out = append(out, v)
		}
	}
	return out, nil
}

func (h *history) PipelineVersion(_ context.Context, id int64) (store.PipelineVersion, error) {
	for _, v := range h.versions {
		if v.ID == id {
			return v, nil
		}
	}
	return store.PipelineVersion{}, fmt.Errorf("version %d: %w", id, store.ErrNotFound)
}

func (h *history) RunDays(_ context.Context, _ string, from, to time.Time, loc *time.Location) ([]store.RunDay, error) {
	h.asked = append(h.asked, loc.String())
	bounds, err := store.DayBounds(from, to, loc)
	if err != nil {
		return nil, err
	}
	var out []store.RunDay
	for _, b := range bounds[:len(bounds)-1] {
		d := h.days[b.Format(time.DateOnly)]
		d.Day = b
		out = append(out, d)
	}
	return out, nil
}

// pipelineFixture is a UI with pipeline "rates" (namespace finance,
// Tokyo, two parameters, 120 runs) and "other" (no namespace).
func pipelineFixture(t *testing.T) (*apitest.Fake, *history, *httptest.Server, func(as, path string) (int, string)) {
	t.Helper()
	f := apitest.New()
	now := time.Date(2026, 3, 14, 3, 0, 0, 0, time.UTC) // a Saturday, noon in Tokyo
	f.Now = func() time.Time { return now }
	f.AddPipeline(api.Pipeline{Name: "rates", Namespace: "finance", File: "finance/rates.yaml", Hash: "bbbb", Schedule: "0 9 * * *", Timezone: "Asia/Tokyo",
		Tasks: 3, Params: []api.Param{
			{Name: "day", Type: "date", Required: true, Description: "the day to fetch"},
			{Name: "n", Type: "int", Default: "10"},
			{Name: "token", Type: "string", Secret: true, Default: "***"},
			{Name: "dry", Type: "bool"},
		}})
	f.AddPipeline(api.Pipeline{Name: "other", File: "other.yaml"})
	for i := range 120 {
		st := engine.RunSucceeded
		if i%10 == 3 {
			st = engine.RunFailed
		}
		f.AddRun(api.Run{Pipeline: "rates", State: st, Trigger: "schedule", CreatedAt: now.Add(-time.Duration(120-i) * time.Hour), TaskCount: 3})
	}
	f.AddRun(api.Run{Pipeline: "other", State: engine.RunSucceeded, Trigger: "manual"})
	h := &history{
		versions: []store.PipelineVersion{
			{ID: 1, Pipeline: "rates", Hash: "aaaa", File: "/p/finance/rates.yaml", Source: []byte("name: rates\n# old\n"), CreatedAt: now.Add(-48 * time.Hour)},
			{ID: 2, Pipeline: "other", Hash: "cccc", File: "/p/other.yaml", Source: []byte("name: other\n"), CreatedAt: now.Add(-47 * time.Hour)},
			{ID: 3, Pipeline: "rates", Hash: "bbbb", File: "/p/finance/rates.yaml", Source: []byte("name: rates\ndescription: <script>alert(1)</script>\n"), CreatedAt: now.Add(-time.Hour)},
		},
		days: map[string]store.RunDay{
			"2026-03-13": {Met: 20, Late: 1, Failed: 3},
			"2026-03-12": {Met: 24},
		},
	}
	srv := newUI(t, f, func(o *web.Options) {
		o.History = h
		o.Now = func() time.Time { return now }
	})
	return f, h, srv, func(as, path string) (int, string) {
		t.Helper()
		status, body, _ := get(t, srv, as, path)
		return status, body
	}
}

func TestPipelinePage(t *testing.T) {
	f, h, srv, open := pipelineFixture(t)
	status, body := open("viewer", "/pipelines/rates")
	if status != http.StatusOK {
		t.Fatalf("got %d: %s", status, body)
	}
	for _, want := range []string{
		`<h1 id="pipeline-h">rates`, `id="pipeline-facts"`, "Asia/Tokyo",
		// Runs: the newest first, 50 of 120, and the next page both as a
		// link (back works) and as an htmx fragment.
		`id="runs"`, `href="/runs/120"`, `href="/runs/71"`,
		`<a href="/pipelines/rates?cursor=71" hx-get="/pipelines/rates/runs?cursor=71"`,
		// The calendar, from the store's counts, days linking to their runs.
		`id="calendar"`, `href="/pipelines/rates?day=2026-03-13"`, "Friday 13 March 2026: 3 failed, 1 late, 20 met",
		`class="s-failed" href="/pipelines/rates?day=2026-03-13"`, `class="s-met" href="/pipelines/rates?day=2026-03-12"`,
		// The trigger form: a field per parameter, typed.
		`id="trigger-form"`, `id="trigger-param-day" name="day" type="date"`, `id="trigger-param-n" name="n" type="number" data-param="n" data-type="int" step="1" placeholder="10"`,
		`id="trigger-param-token" name="token" type="password"`, `<select id="trigger-param-dry"`, `data-error-for="day"`,
		// Backfill, pause, the file and its versions.
		`id="backfill-form"`, `id="backfill-param-day"`, `data-zone="Asia/Tokyo"`,
		`data-action="POST /pipelines/rates/pause"`,
		`id="pipeline-source"`, "description: &lt;script&gt;alert(1)&lt;/script&gt;",
		`href="/pipelines/rates/versions/3"`, `href="/pipelines/rates/versions/1"`,
		`<script src="/static/pipeline.js" defer></script>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for _, not := range []string{`href="/runs/70"`, "<script>alert", `versions/2"`, `href="/runs/121"`} {
		if strings.Contains(body, not) {
			t.Errorf("the page has %q", not)
		}
	}
	if strings.Count(body, `class="run-row"`) != 50 {
		t.Errorf("%d runs shown, want a page of 50", strings.Count(body, `class="run-row"`))
	}
	// Five weeks, Monday first: from Monday 9 February (Tokyo) to today.
	if !slices.Equal(h.asked, []string{"Asia/Tokyo"}) || !strings.Contains(body, `data-day="2026-02-09"`) || strings.Contains(body, `data-day="2026-02-08"`) || strings.Contains(body, `data-day="2026-03-15"`) {
		t.Errorf("calendar asked in %v; days from 2026-02-09 to 2026-03-14 wanted", h.asked)
	}

	// The next page, as the fragment htmx loads and as the page.
	status, frag := getHX(t, srv, "viewer", "/pipelines/rates/runs?cursor=71")
	if status != http.StatusOK || strings.Contains(frag, "<html") || !strings.Contains(frag, `href="/runs/70"`) || !strings.Contains(frag, `hx-get="/pipelines/rates/runs?cursor=21"`) {
		t.Errorf("fragment: %d %.300s", status, frag)
	}
	_, body = open("viewer", "/pipelines/rates?cursor=71")
	if !strings.Contains(body, `href="/runs/70"`) || strings.Contains(body, `href="/runs/71"`) {
		t.Error("the second page as a page does not start after the cursor")
	}

	// Filters: a state, a day (in the pipeline's zone).
	_, body = open("viewer", "/pipelines/rates?state=failed")
	if n := strings.Count(body, `class="run-row"`); n != 12 || !strings.Contains(body, `<option value="failed" selected>`) {
		t.Errorf("state=failed: %d runs, want 12", n)
	}
	f.AddRun(api.Run{Pipeline: "rates", State: engine.RunRunning, CreatedAt: time.Date(2026, 3, 12, 14, 59, 0, 0, time.UTC)}) // 23:59 on the 12th in Tokyo
	_, body = open("viewer", "/pipelines/rates?day=2026-03-12")
	c, _ := f.LastCall("Runs")
	flt := c.Args[0].(api.RunFilter)
	if !flt.CreatedFrom.Equal(time.Date(2026, 3, 11, 15, 0, 0, 0, time.UTC)) || !flt.CreatedBefore.Equal(time.Date(2026, 3, 12, 15, 0, 0, 0, time.UTC)) {
		t.Errorf("day=2026-03-12 asked for runs created in [%v, %v), want the day in Tokyo", flt.CreatedFrom, flt.CreatedBefore)
	}
	if !strings.Contains(body, `href="/runs/122"`) || !strings.Contains(body, "created on 2026-03-12") || !strings.Contains(body, `aria-current="date"`) {
		t.Error("the runs of a day lack the run created at its last minute in Tokyo")
	}
}

func TestPipelinePageRoles(t *testing.T) {
	_, _, _, open := pipelineFixture(t)
	_, body := open("viewer", "/pipelines/rates")
	for _, want := range []string{
		`id="pause" data-action="POST /pipelines/rates/pause"`, `disabled aria-describedby="role-reason"`,
		"your role is viewer; this needs operator", `<fieldset disabled>`, `id="trigger-reason"`, `id="backfill-reason"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("as viewer, the page lacks %q", want)
		}
	}
	if n := len(regexp.MustCompile(`<fieldset disabled>`).FindAllString(body, -1)); n != 2 {
		t.Errorf("as viewer, %d forms disabled, want trigger and backfill", n)
	}
	for _, as := range []string{"operator", "admin"} {
		_, body := open(as, "/pipelines/rates")
		if strings.Contains(body, " disabled") || strings.Contains(body, "role-reason") {
			t.Errorf("as %s, a control is disabled", as)
		}
	}
}

func TestPipelinePageNotFound(t *testing.T) {
	_, _, _, open := pipelineFixture(t)
	for _, c := range []struct{ as, path string }{
		{"viewer", "/pipelines/nope"},
		{"viewer", "/pipelines/nope/runs"},
		{"viewer", "/pipelines/nope/versions/1"},
		{"ns-viewer", "/pipelines/other"}, // another namespace: as if it did not exist
		{"ns-viewer", "/pipelines/other/runs?cursor=5"},
		{"ns-viewer", "/pipelines/other/versions/2"},
		{"viewer", "/pipelines/rates/versions/2"}, // other's version through rates
		{"viewer", "/pipelines/rates/versions/99"},
		{"viewer", "/pipelines/rates/versions/x"},
	} {
		if status, body := open(c.as, c.path); status != http.StatusNotFound || strings.Contains(body, "name: other") {
			t.Errorf("%s as %s: %d, want 404", c.path, c.as, status)
		}
	}
	if status, body := open("ns-viewer", "/pipelines/rates"); status != http.StatusOK || !strings.Contains(body, `id="trigger-form"`) {
		t.Errorf("a viewer confined to finance opening its pipeline: %d", status)
	}
}

func TestPipelinePageBadQuery(t *testing.T) {
	_, _, _, open := pipelineFixture(t)
	for _, path := range []string{
		"/pipelines/rates?cursor=zz", "/pipelines/rates?state=done", "/pipelines/rates?day=yesterday",
		"/pipelines/rates?pipline=x", "/pipelines/rates?state=failed&state=queued", "/pipelines/rates/runs?state=nope",
		"/pipelines/rates/versions/3?raw=1",
	} {
		if status, body := open("viewer", path); status != http.StatusBadRequest || !strings.Contains(body, "<h1>400") {
			t.Errorf("%s: %d, want a 400 page", path, status)
		}
	}
}

func TestPipelineVersionPage(t *testing.T) {
	_, _, _, open := pipelineFixture(t)
	status, body := open("ns-viewer", "/pipelines/rates/versions/1")
	if status != http.StatusOK {
		t.Fatalf("got %d", status)
	}
	for _, want := range []string{`id="version-source"`, "name: rates\n# old\n", `href="/pipelines/rates"`, "aaaa"} {
		if !strings.Contains(body, want) {
			t.Errorf("the version page lacks %q", want)
		}
	}
	if strings.Contains(body, "in use") {
		t.Error("an old version is marked in use")
	}
	_, body = open("viewer", "/pipelines/rates/versions/3")
	if !strings.Contains(body, "in use") || !strings.Contains(body, "&lt;script&gt;") || strings.Contains(body, "<script>alert") {
		t.Error("the current version is not marked in use, or its source is not escaped")
	}
}

// TestPipelinePageWithoutHistory: a UI without History shows runs and
// forms, and says the file is not stored.
func TestPipelinePageWithoutHistory(t *testing.T) {
	f := apitest.New()
	f.AddPipeline(api.Pipeline{Name: "p"})
	srv := newUI(t, f)
	status, body, _ := get(t, srv, "operator", "/pipelines/p")
	if status != http.StatusOK || strings.Contains(body, `id="calendar"`) || !strings.Contains(body, `id="no-source"`) ||
		!strings.Contains(body, "takes no parameters") || strings.Contains(body, `id="backfill-form"`) || !strings.Contains(body, `id="no-runs"`) {
		t.Errorf("got %d", status)
	}
	if status, _, _ := get(t, srv, "operator", "/pipelines/p/versions/1"); status != http.StatusNotFound {
		t.Errorf("a version without History: %d, want 404", status)
	}
}

// TestPipelineSourceHidesSecretDefaults: a file that gives a secret
// parameter a default is not shown (the API shows that default as ***),
// on the pipeline's page nor as a version.
func TestPipelineSourceHidesSecretDefaults(t *testing.T) {
	_, h, _, open := pipelineFixture(t)
	src := "name: rates\nparams:\n  - {name: key, type: string, secret: true, default: s3cr3t-value}\ntasks:\n  - id: a\n    run: echo\n"
	h.versions = append(h.versions, store.PipelineVersion{ID: 4, Pipeline: "rates", Hash: "bbbb", File: "/p/finance/rates.yaml", Source: []byte(src)})
	h.versions[2].Hash = "old" // version 4 is now the one in use
	for _, path := range []string{"/pipelines/rates", "/pipelines/rates/versions/4"} {
		status, body := open("admin", path)
		if status != http.StatusOK || strings.Contains(body, "s3cr3t-value") || !strings.Contains(body, "secret parameter") {
			t.Errorf("%s: %d, shows the secret's default or no note about it", path, status)
		}
	}
	if status, body := open("admin", "/pipelines/rates/versions/1"); status != http.StatusOK || !strings.Contains(body, "# old") {
		t.Errorf("a file without secret defaults is shown: %d", status)
	}
}

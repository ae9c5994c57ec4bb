package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/web"
)

// graphs is a fake web.Graphs from a fixed list of tasks per run; the page
// reads attempts through api.Service.Task.
type graphs struct {
	tasks map[int64][]web.GraphTask
}

// graphsAttempts is graphs that is also a web.RunAttempts.
type graphsAttempts struct {
	graphs
	attempts map[int64]map[int][]api.Attempt
}

func (g graphs) RunGraph(_ context.Context, runID int64) ([]web.GraphTask, error) {
	ts, ok := g.tasks[runID]
	if !ok {
		return nil, api.NotFound("no run %d", runID)
	}
	return ts, nil
}

func (g graphsAttempts) RunAttempts(_ context.Context, runID int64, indexes []int) (map[int][]api.Attempt, error) {
	out := map[int][]api.Attempt{}
	for _, i := range indexes {
		out[i] = g.attempts[runID][i]
	}
	return out, nil
}

func seededGraphs() graphs {
	return graphs{tasks: map[int64][]web.GraphTask{
		1: {{ID: "greet", Kind: "run"}, {ID: "after", Kind: "run", Needs: []string{"greet"}}},
		2: {{ID: "load", Kind: "run"}},
		3: {{ID: "greet", Kind: "run"}, {ID: "after", Kind: "run", Needs: []string{"greet"}}},
	}}
}

func TestRunPage(t *testing.T) {
	f := apitest.NewSeeded()
	srv := newUI(t, f, func(o *web.Options) { o.Graphs = seededGraphs() })

	// A running run: its graph, tasks, chart, timeline and live stream.
	status, body, _ := get(t, srv, "viewer", "/runs/3")
	if status != http.StatusOK {
		t.Fatalf("GET /runs/3: %d\n%s", status, body)
	}
	for _, want := range []string{
		`id="node-greet"`, `id="node-after"`, `class="node s-running"`, `class="node s-pending"`, // graph nodes by state
		`href="/runs/3/tasks/greet"`, `<path class="edge"`, // links and an edge
		`id="task-greet"`, `id="task-list"`, // the task list
		`id="gantt"`, `class="bar s-running"`, // the chart
		`data-live-url="/runs/3/live?after=`, `/static/run.js`, // live
		`id="act-cancel"`, `disabled aria-describedby="why-cancel"`, "your role is viewer; this needs operator", // role
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the running run's page lacks %q", want)
		}
	}
	// Edges go left to right: the need's right side is left of the task.
	if m := regexp.MustCompile(`class="edge" marker-end="url\(#arrow\)" d="M(\d+) \d+ C\d+ \d+ \d+ \d+ (\d+) \d+"`).FindStringSubmatch(body); m == nil || m[1] >= m[2] && len(m[1]) >= len(m[2]) {
		t.Errorf("edge %v does not go left to right", m)
	}

	// An operator may act: cancel a running run, not retry it (nothing failed).
	_, body, _ = get(t, srv, "operator", "/runs/3")
	if !regexp.MustCompile(`id="act-cancel" class="danger" data-action="POST /runs/3/cancel" data-confirm="[^"]+" data-done="[^"]+">`).MatchString(body) {
		t.Errorf("an operator's cancel button is not enabled")
	}
	if !strings.Contains(body, `id="act-retry"`) || !strings.Contains(body, "no task has failed") {
		t.Errorf("retry is not disabled with its reason on a run without failures")
	}
	if !strings.Contains(body, `data-action="POST /runs/3/rerun" data-then="run"`) {
		t.Errorf("no rerun button")
	}

	// A failed run: its failed attempts in the chart, retry enabled, no live stream.
	_, body, _ = get(t, srv, "operator", "/runs/2")
	for _, want := range []string{`class="bar s-failed"`, `attempt 2: failed`, `data-action="POST /runs/2/retry"`, "the run has ended", `<td class="tstate"><span class="badge s-failed">`} {
		if !strings.Contains(body, want) {
			t.Errorf("the failed run's page lacks %q", want)
		}
	}
	if strings.Contains(body, "data-live-url") {
		t.Errorf("a finished run's page follows it")
	}

	// The timeline of run 1.
	_, body, _ = get(t, srv, "viewer", "/runs/1")
	for _, want := range []string{`id="timeline"`, `id="event-1"`, "run started", `<span class="badge s-succeeded">`} {
		if !strings.Contains(body, want) {
			t.Errorf("run 1's page lacks %q", want)
		}
	}
}

func TestRunPageNotFound(t *testing.T) {
	f := apitest.NewSeeded()
	f.AddPipeline(api.Pipeline{Name: "books", Namespace: "finance"})
	f.AddRun(api.Run{ID: 9, Pipeline: "books", State: engine.RunSucceeded, Tasks: []api.Task{{ID: "x", State: engine.TaskSucceeded}}})
	srv := newUI(t, f)
	for _, c := range []struct {
		as, path string
		want     int
	}{
		{"viewer", "/runs/99", 404},
		{"viewer", "/runs/abc", 404},
		{"viewer", "/runs/99/live", 404},
		{"viewer", "/runs/99/events", 404},
		{"ns-viewer", "/runs/1", 404}, // hello is in no namespace
		{"ns-viewer", "/runs/1/live", 404},
		{"ns-viewer", "/runs/1/events?after=1", 404},
		{"ns-viewer", "/runs/1/failed-items?task=greet", 404},
		{"ns-viewer", "/runs/9", 200},
		{"viewer", "/runs/9", 200},
	} {
		if status, body, _ := get(t, srv, c.as, c.path); status != c.want {
			t.Errorf("%s as %s: %d, want %d\n%.300s", c.path, c.as, status, c.want, body)
		}
	}
	if status, _, h := get(t, srv, "", "/runs/1"); status != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/login") {
		t.Errorf("without a session: %d", status)
	}
}

func TestRunPageBadQuery(t *testing.T) {
	srv := newUI(t, apitest.NewSeeded(), func(o *web.Options) { o.Graphs = seededGraphs() })
	for _, q := range []string{"from=-1", "from=x", "state=bogus", "gantt=x", "gantt=5", "group=g0-0"} {
		if status, body, _ := get(t, srv, "viewer", "/runs/3?"+q); status != http.StatusBadRequest || !strings.Contains(body, "query parameter") {
			t.Errorf("?%s: %d, want 400 naming the parameter", q, status)
		}
	}
	for _, p := range []string{"/runs/3/events?after=x", "/runs/3/failed-items", "/runs/3/live?after=x"} {
		if status, _, _ := get(t, srv, "viewer", p); status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", p, status)
		}
	}
}

// bigRun adds a run of n tasks: a root, then tasks in layers of 100
// needing one task of the layer before; every 97th task failed.
func bigRun(f *apitest.Fake, g graphsAttempts, id int64, n int) {
	t0 := f.Now().Add(-time.Hour)
	tasks := make([]api.Task, n)
	shape := make([]web.GraphTask, n)
	g.attempts[id] = map[int][]api.Attempt{}
	for i := range n {
		st := engine.TaskSucceeded
		switch {
		case i%97 == 5:
			st = engine.TaskFailed
		case i > n-50:
			st = engine.TaskRunning
		case i > n-300:
			st = engine.TaskPending
		}
		name := fmt.Sprintf("load-%05d", i)
		if i%3 == 0 {
			name = fmt.Sprintf("check_%05d", i)
		}
		s := t0.Add(time.Duration(i) * time.Second)
		e := s.Add(30 * time.Second)
		tasks[i] = api.Task{ID: name, Index: i, State: st, Attempt: 1}
		if st != engine.TaskPending {
			tasks[i].StartedAt = &s
			out := "succeeded"
			if st == engine.TaskFailed {
				out = "failed"
			}
			a := api.Attempt{Attempt: 1, StartedAt: s}
			if st != engine.TaskRunning {
				tasks[i].FinishedAt = &e
				a.FinishedAt, a.Outcome = &e, store.Outcome(out)
			}
			g.attempts[id][i] = []api.Attempt{a}
		}
		shape[i] = web.GraphTask{ID: name, Kind: "run"}
		if i > 0 {
			shape[i].Needs = []string{shape[max(0, (i/100-1)*100+i%7)].ID}
		}
	}
	g.tasks[id] = shape
	f.AddRun(api.Run{ID: id, Pipeline: "hello", State: engine.RunRunning, Trigger: "manual", CreatedAt: t0, StartedAt: &t0, TaskCount: n, Remaining: 300, Tasks: tasks})
}

func TestRunPageBigRun(t *testing.T) {
	f := apitest.NewSeeded()
	g := graphsAttempts{graphs{tasks: map[int64][]web.GraphTask{}}, map[int64]map[int][]api.Attempt{}}
	bigRun(f, g, 50, 10000)
	srv := newUI(t, f, func(o *web.Options) { o.Graphs = g })
	status, body, _ := get(t, srv, "viewer", "/runs/50")
	if status != http.StatusOK {
		t.Fatalf("%d\n%.500s", status, body)
	}
	if n := strings.Count(body, `id="node-`); n != 0 {
		t.Errorf("a 10,000-task run draws %d tasks one by one; want groups", n)
	}
	groups := strings.Count(body, `class="node group`)
	if groups == 0 || groups > 240 {
		t.Errorf("%d groups drawn", groups)
	}
	if n := strings.Count(body, `<tr id="task-`); n != 100 {
		t.Errorf("%d task rows on the first page, want 100", n)
	}
	if n := strings.Count(body, `<g class="grow">`); n != 50 {
		t.Errorf("%d chart rows, want 50", n)
	}
	if len(body) > 1<<20 {
		t.Errorf("the page is %d bytes", len(body))
	}
	// Failures first.
	if i, j := strings.Index(body, `<tr id="task-`), strings.Index(body, `<span class="badge s-failed">`); j < 0 || j < i {
		t.Errorf("the first task row is not a failed one")
	}
	if !strings.Contains(body, `href="/runs/50?from=100#tasks"`) || !strings.Contains(body, `href="/runs/50?gantt=50#gantt-section"`) {
		t.Errorf("no links to the next pages")
	}

	// The next page of tasks, and a group opened.
	_, body, _ = get(t, srv, "viewer", "/runs/50?from=9900")
	if n := strings.Count(body, `<tr id="task-`); n != 100 || !strings.Contains(body, "Tasks 9901–10000 of 10000") || strings.Contains(body, `rel="next">Next tasks`) {
		t.Errorf("the last page: %d rows", n)
	}
	m := regexp.MustCompile(`href="(/runs/50\?group=(g[0-9]+-[0-9]+)#tasks)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no group link")
	}
	status, body, _ = get(t, srv, "viewer", m[1])
	if status != http.StatusOK || !strings.Contains(body, `id="tasks-filter"`) || strings.Count(body, `<tr id="task-`) == 0 {
		t.Errorf("group %s: %d", m[2], status)
	}
	status, body, _ = get(t, srv, "viewer", "/runs/50?state=failed")
	if n := strings.Count(body, `<tr id="task-`); status != 200 || n != 100 || strings.Contains(body, `<td class="tstate"><span class="badge s-succeeded">`) {
		t.Errorf("state=failed: %d, %d rows", status, n)
	}
	if status, _, _ := get(t, srv, "viewer", "/runs/50?group=g999-0"); status != http.StatusBadRequest {
		t.Errorf("an unknown group: %d", status)
	}
}

func TestRunEventsFragment(t *testing.T) {
	f := apitest.NewSeeded()
	for i := range 120 {
		f.AddEvents(3, api.Event{Kind: engine.EvWaitPoked, Task: "greet", Message: fmt.Sprintf("poke %d", i)})
	}
	srv := newUI(t, f)
	_, body, _ := get(t, srv, "viewer", "/runs/3")
	if n := strings.Count(body, `<tr id="event-`); n != 50 || !strings.Contains(body, `hx-get="/runs/3/events?after=50"`) {
		t.Fatalf("%d events on the page", n)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/runs/3/events?after=100", nil)
	req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: "viewer"})
	req.Header.Set("HX-Request", "true")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b := readAll(t, res)
	if res.StatusCode != 200 || strings.Contains(b, "<html") || strings.Count(b, `<tr id="event-`) != 20 || strings.Contains(b, "More of the timeline") {
		t.Errorf("the fragment: %d\n%.400s", res.StatusCode, b)
	}
	// Without htmx the same route is a page of its own.
	_, body, _ = get(t, srv, "viewer", "/runs/3/events?after=50")
	if !strings.Contains(body, "<h1>Timeline of run 3</h1>") || strings.Count(body, `<tr id="event-`) != 50 {
		t.Errorf("the timeline page")
	}
}

func TestRunMapFailedItems(t *testing.T) {
	f := apitest.NewSeeded()
	m := apitest.NewMaps(f)
	f.AddRun(api.Run{ID: 20, Pipeline: "hello", State: engine.RunRunning, Tasks: []api.Task{{ID: "fan", State: engine.TaskRunning}}})
	values := make([]json.RawMessage, 40)
	var rows []store.MapItem
	for i := range values {
		values[i] = json.RawMessage(fmt.Sprintf(`"v%d"`, i))
		st := engine.TaskSucceeded
		if i%2 == 1 {
			st = engine.TaskFailed
		}
		rows = append(rows, store.MapItem{Item: i, State: st, Attempt: 1, Message: fmt.Sprintf("item %d", i)})
	}
	m.AddMap(20, "fan", values, 40, rows...)
	srv := newUIService(t, m)
	_, body, _ := get(t, srv, "viewer", "/runs/20")
	for _, want := range []string{`id="map-fan"`, "20 failed", "20 succeeded", "fan[1]", `hx-get="/runs/20/failed-items?task=fan&amp;from=`} {
		if !strings.Contains(body, want) {
			t.Errorf("the map's section lacks %q", want)
		}
	}
	if strings.Contains(body, "fan[0]<") {
		t.Errorf("a succeeded item is listed as failed")
	}
	_, body, _ = get(t, srv, "viewer", "/runs/20/failed-items?task=fan&from=20")
	if !strings.Contains(body, "fan[21]") || strings.Contains(body, "fan[19]") {
		t.Errorf("the next page of failed items:\n%.600s", body)
	}
}

func readAll(t *testing.T, res *http.Response) string {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// newUIService is newUI over any service (a Fake with maps, say).
func newUIService(t *testing.T, svc api.Service, change ...func(*web.Options)) *httptest.Server {
	t.Helper()
	o := web.Options{Service: svc, Sessions: sessions{}}
	for _, c := range change {
		c(&o)
	}
	ui, err := web.New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ui)
	t.Cleanup(srv.Close)
	return srv
}

// TestRunPageEndedCancel: a cancelled run that has ended says cancelled,
// not "cancelling" (the run keeps its Cancelling mark).
func TestRunPageEndedCancel(t *testing.T) {
	f := apitest.New()
	f.AddPipeline(api.Pipeline{Name: "p"})
	ended := f.AddRun(api.Run{Pipeline: "p", State: engine.RunCancelled, Cancelling: true})
	going := f.AddRun(api.Run{Pipeline: "p", State: engine.RunRunning, Cancelling: true})
	srv := newUI(t, f)
	if _, body, _ := get(t, srv, "viewer", fmt.Sprintf("/runs/%d", ended.ID)); strings.Contains(body, `id="run-cancelling"`) {
		t.Error("an ended run says cancelling")
	}
	if _, body, _ := get(t, srv, "viewer", fmt.Sprintf("/runs/%d", going.ID)); !strings.Contains(body, `id="run-cancelling"`) {
		t.Error("a running run being cancelled does not say so")
	}
}

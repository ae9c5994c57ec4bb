package web

// The task page: one task of a run, its attempts, and the log of the
// attempt chosen; for a map task, its items.
//
// The log is never read whole. The page is rendered with the last
// logTail bytes of the log (or the bytes around ?at=OFFSET, where a search
// match is), read by offset through the logs.Store, so a 1 GB log opens as
// fast as a small one. The page's script (static/log.js) reads earlier
// parts with Range requests to the API's log route, follows a running
// attempt over the same route's Server-Sent Events, and searches through
// the logsearch fragment, which reads a bounded number of bytes per request
// (logsearch.go). Without the script the page still shows the log's tail,
// links to earlier parts and to each match, and searches by reloading.

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
)

func taskRoutes() []page {
	return []page{
		{"GET /runs/{id}/tasks/{task}", viewer, (*UI).task},
		{"GET /runs/{id}/tasks/{task}/items", viewer, (*UI).taskItems},
		{"GET /runs/{id}/tasks/{task}/logsearch", viewer, (*UI).logSearch},
	}
}

// taskPage is what the task page's template gets.
type taskPage struct {
	Run   api.Run
	Task  api.Task
	Zone  string // the pipeline's time zone, for times on hover
	Path  string // /runs/ID/tasks/TASK
	Item  *api.Item
	Sel   int   // the attempt whose log is shown; 0: none
	Known []int // the attempts to choose from (an item's have no rows)
	Log   *logView
	// LogNote says why there is no log to show ("" when there is one).
	LogNote string
	Search  *searchView
	Map     *mapView
	// CanMark says the task may be marked (it is not running and has not
	// succeeded); MapRunning says its items may be acted on.
	CanMark    bool
	MapRunning bool
	Viewer     viewerInfo
}

// ItemRows is what the item rows' template gets.
func (p taskPage) ItemRows() itemRows { return itemRows{Map: p.Map, Viewer: p.Viewer} }

type itemRows struct {
	Map    *mapView
	Viewer viewerInfo
}

// SearchQ is the text of the search shown, for the search box.
func (p taskPage) SearchQ() string {
	if p.Search == nil {
		return ""
	}
	return p.Search.Q
}

// Attempt returns the attempt of the task numbered n, if it has a row.
func (p taskPage) Attempt(n int) *api.Attempt {
	for i := range p.Task.Attempts {
		if p.Task.Attempts[i].Attempt == n {
			return &p.Task.Attempts[i]
		}
	}
	return nil
}

// AttemptsNewest lists the task's attempts newest first.
func (p taskPage) AttemptsNewest() []api.Attempt {
	out := slices.Clone(p.Task.Attempts)
	slices.SortStableFunc(out, func(a, b api.Attempt) int { return b.Attempt - a.Attempt })
	return out
}

// LogQuery is the query naming the log shown: attempt=N[&item=M]. It is
// a template.URL so that templates put it in links as it is.
func (p taskPage) LogQuery() template.URL {
	v := url.Values{}
	v.Set("attempt", strconv.Itoa(p.Sel))
	if p.Item != nil {
		v.Set("item", strconv.Itoa(p.Item.Item))
	}
	return template.URL(v.Encode())
}

// pageQuery reads the task page's query parameters; a malformed one is a
// 400 page.
type pageQuery struct {
	attempt int   // 0: the latest
	item    int   // -1: the task's own log
	at      int64 // -1: the tail
	q       string
	errors  bool  // search for errorWords
	after   int64 // search from
	line    int64
	states  []engine.TaskState
	from    int // first item of the item browser
}

// queryNum reads a whole number query parameter in [lo, hi]; def when
// absent.
func queryNum(r *http.Request, name string, lo, hi, def int64) (int64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, badRequest("query parameter %s=%q: expected a whole number from %d to %d", name, clip(s, 40), lo, hi)
	}
	return n, nil
}

func readPageQuery(r *http.Request) (pageQuery, error) {
	var q pageQuery
	var err error
	n, err := queryNum(r, "attempt", 1, 1<<31-1, 0)
	if err != nil {
		return q, err
	}
	q.attempt = int(n)
	if n, err = queryNum(r, "item", 0, 1<<31-1, -1); err != nil {
		return q, err
	}
	q.item = int(n)
	if q.at, err = queryNum(r, "at", 0, 1<<62, -1); err != nil {
		return q, err
	}
	if q.after, err = queryNum(r, "after", 0, 1<<62, 0); err != nil {
		return q, err
	}
	def := int64(0)
	if q.after == 0 {
		def = 1
	}
	if q.line, err = queryNum(r, "line", 1, 1<<62, def); err != nil {
		return q, err
	}
	q.q = r.URL.Query().Get("q")
	if len(q.q) > maxQuery {
		return q, badRequest("query parameter q: at most %d bytes", maxQuery)
	}
	switch f := r.URL.Query().Get("find"); f {
	case "":
	case "errors":
		q.errors = true
	default:
		return q, badRequest("query parameter find=%q: expected errors", clip(f, 40))
	}
	if q.states, err = api.ParseItemStates(r.URL.Query()["state"]); err != nil {
		return q, badRequest("query parameter %s", api.AsError(err).Message)
	}
	if n, err = queryNum(r, "from", 0, 1<<31-1, 0); err != nil {
		return q, err
	}
	q.from = int(n)
	return q, nil
}

// loadTask reads the run and task of a request's path, as the viewer may
// see them: a run of a pipeline outside the viewer's namespace is not
// found, as in the API.
func (u *UI) loadTask(ctx context.Context, r *http.Request) (api.Run, api.Task, error) {
	id, err := pathID(r, "id", "run")
	if err != nil {
		return api.Run{}, api.Task{}, err
	}
	name := r.PathValue("task")
	run, err := u.o.Service.Run(ctx, id)
	if err != nil {
		return api.Run{}, api.Task{}, err
	}
	if !u.sees(ctx, run.Pipeline) {
		return api.Run{}, api.Task{}, api.NotFound("there is no run %d", id)
	}
	run.Tasks = nil // the page shows one task; the run's list is not needed
	t, err := u.o.Service.Task(ctx, id, name)
	if err != nil {
		return api.Run{}, api.Task{}, err
	}
	return run, t, nil
}

func (u *UI) task(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	q, err := readPageQuery(r)
	if err != nil {
		return err
	}
	run, t, err := u.loadTask(ctx, r)
	if err != nil {
		return err
	}
	p := taskPage{Run: run, Task: t, Path: taskPath(run.ID, t.ID), Viewer: viewerFrom(ctx)}
	if pl, err := u.o.Service.Pipeline(ctx, run.Pipeline); err == nil {
		p.Zone = pl.Timezone
	}
	p.CanMark = !slices.Contains([]engine.TaskState{engine.TaskRunning, engine.TaskSucceeded, engine.TaskSkipped}, t.State)
	p.MapRunning = t.Map != nil && t.State == engine.TaskRunning
	if t.Map != nil {
		if p.Map, err = u.mapItems(ctx, run.ID, t, q.states, q.from); err != nil {
			return err
		}
	}
	if q.item >= 0 {
		if t.Map == nil {
			return api.NotAMap(run.ID, t.ID)
		}
		page, err := u.o.Service.Items(ctx, run.ID, t.ID, api.ItemQuery{From: q.item, Limit: 1})
		if err != nil {
			return err
		}
		if len(page.Items) == 0 || page.Items[0].Item != q.item {
			return api.NotFound("map task %q of run %d has no item %d", t.ID, run.ID, q.item)
		}
		p.Item = &page.Items[0]
	}
	if err := u.chooseLog(ctx, &p, q); err != nil {
		return err
	}
	title := fmt.Sprintf("%s · run %d", t.ID, run.ID)
	if p.Item != nil {
		title = fmt.Sprintf("%s item %d · run %d", t.ID, p.Item.Item, run.ID)
	}
	return u.render(w, r, http.StatusOK, "task", viewData{Title: title, Nav: "pipelines", Data: p})
}

func taskPath(run int64, task string) string {
	return "/runs/" + strconv.FormatInt(run, 10) + "/tasks/" + url.PathEscape(task)
}

// chooseLog picks the attempt whose log the page shows and reads the part
// of it to show, and the search the query asks for.
func (u *UI) chooseLog(ctx context.Context, p *taskPage, q pageQuery) error {
	name, latest := p.Task.ID, p.Task.Attempt
	if p.Item != nil {
		name, latest = api.ItemLogName(p.Task.ID, p.Item.Item), p.Item.Attempt
		if p.Item.State == engine.TaskRunning || (p.Item.State == engine.TaskRetryWait && q.attempt > latest) {
			latest++ // the attempt under way
		}
	} else if p.Task.Map != nil && len(p.Task.Attempts) == 0 {
		p.LogNote = "A map task's output is in its items' logs: choose an item below."
		return nil
	}
	if q.attempt > latest {
		return api.NotFound("%s has no attempt %d (the latest is %d)", what(p), q.attempt, latest)
	}
	if latest == 0 {
		p.LogNote = "No attempt has started yet, so there is no log."
		return nil
	}
	p.Sel = latest
	if q.attempt > 0 {
		p.Sel = q.attempt
	}
	for n := latest; n >= 1; n-- {
		p.Known = append(p.Known, n)
	}
	if u.o.Logs == nil {
		p.LogNote = "This server keeps no logs it can show here."
		return nil
	}
	key, err := u.o.Service.LogKey(ctx, p.Run.ID, name, p.Sel)
	if err != nil {
		if e := api.AsError(err); e.Status == http.StatusNotFound {
			p.LogNote = e.Message
			return nil
		}
		return err
	}
	running := p.Item != nil && p.Item.State == engine.TaskRunning && p.Sel == latest
	if a := p.Attempt(p.Sel); p.Item == nil && a != nil {
		running = a.FinishedAt == nil && a.Outcome == ""
	}
	lv, err := readLogWindow(ctx, u.o.Logs, key, q.at)
	if err != nil {
		return err
	}
	lv.API = template.URL(api.Prefix + p.Path + "/logs?" + string(p.LogQuery()))
	lv.Live = running && lv.End == lv.Size
	lv.File = fmt.Sprintf("run-%d-%s-attempt-%d.log", p.Run.ID, strings.ReplaceAll(name, ".", "-item-"), p.Sel)
	p.Log = lv
	if q.q != "" || q.errors {
		sq := searchQuery{After: q.after, Line: q.line}
		if q.errors {
			sq.Needles = errorWords
		} else {
			sq.Needles = []string{foldNeedle(q.q)}
		}
		res, err := searchLog(ctx, u.o.Logs, key, sq)
		if err != nil {
			return err
		}
		p.Search = newSearchView(p, q, res)
	}
	return nil
}

func what(p *taskPage) string {
	if p.Item != nil {
		return fmt.Sprintf("item %d of task %q", p.Item.Item, p.Task.ID)
	}
	return fmt.Sprintf("task %q", p.Task.ID)
}

// searchView is one page of a search's matches, with the links around it.
type searchView struct {
	searchResult
	Q      string
	Errors bool
	Base   template.URL // the task page's path with the log's query
	Frag   template.URL // the logsearch fragment's path with the log's query
	// More is the query of the next page of the search ("" when done).
	More template.URL
}

func newSearchView(p *taskPage, q pageQuery, res searchResult) *searchView {
	v := &searchView{searchResult: res, Q: q.q, Errors: q.errors, Base: template.URL(p.Path + "?" + string(p.LogQuery())), Frag: template.URL(p.Path + "/logsearch?" + string(p.LogQuery()))}
	if !res.Done {
		m := url.Values{}
		if q.errors {
			m.Set("find", "errors")
		} else {
			m.Set("q", q.q)
		}
		m.Set("after", strconv.FormatInt(res.Next, 10))
		if res.NextLine > 0 {
			m.Set("line", strconv.FormatInt(res.NextLine, 10))
		}
		v.More = template.URL(m.Encode())
	}
	return v
}

// Pct is how far into the log the search has come, in percent.
func (s *searchView) Pct() string {
	return pct(int(s.Next>>10), int(s.Size>>10))
}

// logSearch serves GET /runs/{id}/tasks/{task}/logsearch?attempt=N
// [&item=M]&q=TEXT|find=errors[&after=OFFSET&line=L]: one page of a
// search of the log, as a fragment (see logsearch.go). Without htmx it is
// the task page with the same query.
func (u *UI) logSearch(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	q, err := readPageQuery(r)
	if err != nil {
		return err
	}
	if q.q == "" && !q.errors {
		return badRequest("give the text to search for (q=TEXT), or find=errors")
	}
	run, t, err := u.loadTask(ctx, r)
	if err != nil {
		return err
	}
	if r.Header.Get("HX-Request") == "" {
		http.Redirect(w, r, taskPath(run.ID, t.ID)+"?"+r.URL.RawQuery+"#log-search", http.StatusSeeOther)
		return nil
	}
	p := taskPage{Run: run, Task: t, Path: taskPath(run.ID, t.ID)}
	if q.item >= 0 {
		if t.Map == nil {
			return api.NotAMap(run.ID, t.ID)
		}
		page, err := u.o.Service.Items(ctx, run.ID, t.ID, api.ItemQuery{From: q.item, Limit: 1})
		if err != nil {
			return err
		}
		if len(page.Items) == 0 || page.Items[0].Item != q.item {
			return api.NotFound("map task %q of run %d has no item %d", t.ID, run.ID, q.item)
		}
		p.Item = &page.Items[0]
	}
	if u.o.Logs == nil {
		return api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "this server keeps no logs it can search")
	}
	name := t.ID
	if p.Item != nil {
		name = api.ItemLogName(t.ID, p.Item.Item)
	}
	key, err := u.o.Service.LogKey(ctx, run.ID, name, q.attempt)
	if err != nil {
		return err
	}
	p.Sel = key.Attempt
	sq := searchQuery{After: q.after, Line: q.line, Needles: errorWords}
	if !q.errors {
		sq.Needles = []string{foldNeedle(q.q)}
	}
	res, err := searchLog(ctx, u.o.Logs, key, sq)
	if err != nil {
		return err
	}
	return u.renderFragment(w, r, "task", "task-search-page", newSearchView(&p, q, res))
}

// renderFragment writes one named template of a page's set as a fragment.
func (u *UI) renderFragment(w http.ResponseWriter, r *http.Request, page, name string, data any) error {
	t, ok := u.pages[page]
	if !ok {
		return fmt.Errorf("web: no template %q", page)
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, name, data); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(b.String()))
	}
	return nil
}

// mapView is the item browser of a map task.
type mapView struct {
	Path    string
	Counts  []stateCount // failures first
	Items   []api.Item
	States  []engine.TaskState // the filter
	Filter  string             // the filter as a query value
	Choices []engine.TaskState // api.ItemStates
	// More is the query of the next page ("" at the end).
	More template.URL
	// Running says the map's items may be acted on now.
	Running bool
	Run     int64
	Task    string
}

type stateCount struct {
	State string
	N     int
}

// countOrder lists states failures first, as the person on call reads.
var countOrder = []string{"failed", "timed_out", "cancelled", "retry_wait", "running", "ready", "pending", "succeeded", "cached", "skipped"}

func (u *UI) mapItems(ctx context.Context, runID int64, t api.Task, states []engine.TaskState, from int) (*mapView, error) {
	m := &mapView{Path: taskPath(runID, t.ID), States: states, Choices: api.ItemStates, Running: t.State == engine.TaskRunning, Run: runID, Task: t.ID}
	filter := make([]string, len(states))
	for i, s := range states {
		filter[i] = string(s)
	}
	m.Filter = strings.Join(filter, ",")
	seen := map[string]bool{}
	for _, s := range countOrder {
		if n := t.Map.Counts[s]; n > 0 {
			m.Counts = append(m.Counts, stateCount{s, n})
		}
		seen[s] = true
	}
	for s, n := range t.Map.Counts {
		if !seen[s] && n > 0 {
			m.Counts = append(m.Counts, stateCount{s, n})
		}
	}
	page, err := u.o.Service.Items(ctx, runID, t.ID, api.ItemQuery{States: states, From: from, Limit: 50})
	if err != nil {
		if e := api.AsError(err); e.Status == http.StatusNotFound {
			return m, nil // not expanded yet: counts only
		}
		return nil, err
	}
	m.Items = page.Items
	if page.Next != "" {
		next, err := strconv.Atoi(page.Next)
		if err == nil {
			v := url.Values{}
			if m.Filter != "" {
				v.Set("state", m.Filter)
			}
			v.Set("from", strconv.Itoa(next+1))
			m.More = template.URL(v.Encode())
		}
	}
	return m, nil
}

// ItemActions says which actions apply to an item in its state now.
func (m *mapView) ItemActions(it api.Item) []itemAction {
	var out []itemAction
	switch it.State {
	case engine.TaskRunning, engine.TaskPending, engine.TaskReady, engine.TaskRetryWait:
		out = append(out, itemAction{"cancel", "Cancel", "", "Cancel item %d? It counts as failed against the map's tolerance."})
	case engine.TaskFailed, engine.TaskTimedOut, engine.TaskCancelled:
		out = append(out, itemAction{"retry", "Retry", "", "Run item %d again, with a fresh retry budget?"})
	}
	if it.State != engine.TaskRunning && it.State != engine.TaskSucceeded && it.State != engine.TaskSkipped {
		out = append(out,
			itemAction{"mark", "Mark succeeded", `{"state":"succeeded"}`, "Mark item %d succeeded without running it?"},
			itemAction{"mark", "Mark skipped", `{"state":"skipped"}`, "Mark item %d skipped?"})
	}
	for i := range out {
		out[i].Confirm = fmt.Sprintf(out[i].Confirm, it.Item)
	}
	return out
}

// ValueText is an item's value as shown in the list: clipped.
func (m *mapView) ValueText(v []byte) string {
	s := strings.ToValidUTF8(string(v), "\uFFFD")
	if len(s) > 120 {
		cut := 120
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

type itemAction struct {
	Kind, Label, Body, Confirm string
}

// taskItems serves GET /runs/{id}/tasks/{task}/items?state=S&from=N: a
// page of a map's items as table rows for htmx, or the task page at that
// page without it.
func (u *UI) taskItems(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	q, err := readPageQuery(r)
	if err != nil {
		return err
	}
	run, t, err := u.loadTask(ctx, r)
	if err != nil {
		return err
	}
	if r.Header.Get("HX-Request") == "" {
		http.Redirect(w, r, taskPath(run.ID, t.ID)+"?"+r.URL.RawQuery+"#items", http.StatusSeeOther)
		return nil
	}
	if t.Map == nil {
		return api.NotAMap(run.ID, t.ID)
	}
	m, err := u.mapItems(ctx, run.ID, t, q.states, q.from)
	if err != nil {
		return err
	}
	return u.renderFragment(w, r, "task", "task-item-rows", itemRows{m, viewerFrom(ctx)})
}

package web

// The run page (/runs/{id}): the run's facts and actions, its graph, its
// tasks (failures first, paged), a Gantt chart of its attempts, its map
// tasks' counts and failed items, and its timeline. A running run's page
// follows it over Server-Sent Events (live.go). However big the run, the
// page draws a bounded amount: the graph collapses past maxGraphNodes,
// tasks come runTaskPage at a time, the chart ganttPage rows at a time, maps
// mapsShown at a time with failedPage failed items each.

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
)

func runRoutes() []page {
	return []page{
		{"GET /runs/{id}", viewer, (*UI).run},
		{"GET /runs/{id}/live", viewer, (*UI).live},
		{"GET /runs/{id}/events", viewer, (*UI).runEvents},
		{"GET /runs/{id}/failed-items", viewer, (*UI).runFailedItems},
	}
}

// Page sizes of the run page.
const (
	runTaskPage = 100 // tasks in the list
	eventPage   = 50  // timeline entries
	mapsShown   = 10  // map tasks with their failed items
	failedPage  = 10  // failed items of one map
)

// runView is what run.html gets.
type runView struct {
	Run      api.Run
	Now      time.Time
	Zone     string // the pipeline's schedule's time zone
	Seq      int64  // the newest timeline entry when the page was read
	Live     bool   // the run has not ended: the page follows it
	Counts   []stateCount
	Graph    graphView
	Tasks    taskList
	Gantt    ganttView
	Events   api.Page[api.Event]
	Maps     []runMapView
	MoreMaps int // map tasks not shown
	Actions  runActions
	// Query is the page's query without the parameter a link changes,
	// for links that page one part and keep the rest.
	Query url.Values
}

// taskList is one page of the run's tasks, failures first.
type taskList struct {
	Rows     []taskRow
	From     int
	Total    int // tasks the filter selects
	Prev     int // From of the previous page; -1 for none
	Next     int // From of the next page; -1 for none
	State    string
	Group    string
	GroupOf  string // the group's name
	Filtered bool
}

type taskRow struct {
	api.Task
	Kind string
}

// runMapView is a map task's counts and its first failed items.
type runMapView struct {
	Task   api.Task
	Counts []stateCount
	Failed []api.Item
	Next   int // the From of the next page of failed items; -1 for none
	Err    string
}

// eventsData is a page of the timeline.
type eventsData struct {
	Run    api.Run
	Events api.Page[api.Event]
}

// EventsPage is the timeline's first page.
func (v runView) EventsPage() eventsData { return eventsData{v.Run, v.Events} }

// NextAfter is the ?after of the timeline's next page; -1 for none.
func (d eventsData) NextAfter() int64 {
	if d.Events.Next == "" {
		return -1
	}
	n, err := strconv.ParseInt(d.Events.Next, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// eventRow is a timeline entry as shown: by the state it put a task in
// (with its glyph) when it did, else by its kind in words.
type eventRow struct {
	api.Event
	State string
	Words string
}

// eventStates are the task states timeline kinds put a task in.
var eventStates = map[engine.EventKind]string{
	engine.EvTaskStarted: "running", engine.EvTaskSucceeded: "succeeded", engine.EvTaskFailed: "failed",
	engine.EvTaskTimedOut: "timed_out", engine.EvTaskLost: "lost", engine.EvTaskPreempted: "preempted",
	engine.EvTaskCancelled: "cancelled", engine.RecTaskReady: "ready", engine.RecTaskWaiting: "waiting",
	engine.RecRetryScheduled: "retry_wait", engine.RecTaskUpstreamFailed: "upstream_failed", engine.RecTaskPending: "pending",
	engine.EvMarkSucceeded: "succeeded", engine.EvMarkSkipped: "skipped",
}

// Rows are the page's entries as shown.
func (d eventsData) Rows() []eventRow {
	out := make([]eventRow, len(d.Events.Items))
	for i, e := range d.Events.Items {
		out[i] = eventRow{Event: e, State: eventStates[e.Kind]}
		switch {
		case e.Kind == engine.EvMarkSucceeded || e.Kind == engine.EvMarkSkipped:
			out[i].Words = "marked"
		case e.Kind == engine.EvTaskStarted:
			out[i].Words = "started"
		case out[i].State == "":
			out[i].Words = words(string(e.Kind))
		}
	}
	return out
}

// failedData is a page of a map task's failed items.
type failedData struct {
	Run    api.Run
	Task   string
	Failed []api.Item
	Next   int // From of the next page; -1 for none
}

// FailedPage is a map's first page of failed items.
func (v runView) FailedPage(m runMapView) failedData {
	return failedData{Run: v.Run, Task: m.Task.ID, Failed: m.Failed, Next: m.Next}
}

// runActions are the run's buttons: each enabled or disabled with why.
type runActions struct {
	Cancel, Retry, Rerun             bool
	CancelWhy, RetryWhy, RerunWhy    string
	CancelPath, RetryPath, RerunPath string
}

// loadRun reads the run a request names, as the viewer may see it: a run
// of a pipeline outside a confined viewer's namespace is not found.
func (u *UI) loadRun(ctx context.Context, r *http.Request) (api.Run, api.Pipeline, error) {
	id, err := pathID(r, "id", "run")
	if err != nil {
		return api.Run{}, api.Pipeline{}, err
	}
	run, err := u.o.Service.Run(ctx, id)
	if err != nil {
		return api.Run{}, api.Pipeline{}, err
	}
	pl, err := u.seeRun(ctx, run)
	return run, pl, err
}

// seeRun checks that the viewer may see a run and returns its pipeline
// (empty when it is gone).
func (u *UI) seeRun(ctx context.Context, run api.Run) (api.Pipeline, error) {
	pl, err := u.o.Service.Pipeline(ctx, run.Pipeline)
	p := viewerFrom(ctx).P
	if p.Namespace != "" && (err != nil || !p.Sees(pl.Namespace)) {
		return api.Pipeline{}, api.NotFound("no run %d", run.ID)
	}
	if err != nil {
		if e, ok := errors.AsType[*api.Error](err); ok && e.Status == http.StatusNotFound {
			return api.Pipeline{Name: run.Pipeline}, nil // a removed pipeline's runs stay
		}
		return api.Pipeline{}, err
	}
	return pl, nil
}

// lastSeq finds the newest timeline entry of a run with the only reader
// the service has (entries after a number, in order): an exponential then
// a binary search over sequence numbers, each probe one entry long, so
// tens of probes whatever the length of the timeline.
func lastSeq(ctx context.Context, svc api.Service, runID int64) (int64, error) {
	probe := func(after int64) (int64, error) {
		p, err := svc.Events(ctx, runID, after, 1)
		if err != nil || len(p.Items) == 0 {
			return 0, err
		}
		return p.Items[0].Seq, nil
	}
	lo, err := probe(0)
	if err != nil || lo == 0 {
		return 0, err
	}
	hi, step := lo, int64(1024)
	for {
		n, err := probe(hi)
		if err != nil {
			return 0, err
		}
		if n == 0 {
			break
		}
		lo, hi, step = n, n+step, step*2
	}
	for lo < hi { // lo is an entry; none is after hi
		mid := lo + (hi-lo)/2
		n, err := probe(mid)
		if err != nil {
			return 0, err
		}
		if n == 0 {
			hi = mid
		} else {
			lo = n
		}
	}
	return lo, nil
}

// badQuery is a 400 for a query parameter the page cannot use.
func badQuery(name, value, want string) error {
	return badRequest("query parameter %s=%q: %s", name, clip(value, 80), want)
}

// queryInt reads a non-negative integer query parameter (def when absent).
func queryInt(r *http.Request, name string, def int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, badQuery(name, s, "expected a number from 0")
	}
	return n, nil
}

func (u *UI) run(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, err := pathID(r, "id", "run")
	if err != nil {
		return err
	}
	// The newest timeline entry is read before the run, so the live
	// stream, resuming after it, misses nothing the page did not show.
	seq, err := lastSeq(ctx, u.o.Service, id)
	if err != nil {
		return err
	}
	run, pl, err := u.loadRun(ctx, r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	from, err := queryInt(r, "from", 0)
	if err != nil {
		return err
	}
	ganttFrom, err := queryInt(r, "gantt", 0)
	if err != nil {
		return err
	}
	state := q.Get("state")
	if state != "" && rankOf(state) == len(stateRank) {
		return badQuery("state", state, "expected a task state such as failed or running")
	}

	var shapeTasks []GraphTask
	if u.o.Graphs != nil {
		shapeTasks, err = u.o.Graphs.RunGraph(ctx, run.ID)
		if err != nil {
			u.log.WarnContext(ctx, "web: the run's graph is not known; drawing its tasks without edges", "run", run.ID, "err", err)
			shapeTasks = nil
		}
	}
	shape := shapeOf(run.Tasks, shapeTasks)

	v := runView{Run: run, Now: u.o.Now(), Zone: pl.Timezone, Seq: seq, Live: !run.State.Terminal(), Query: q}
	counts := map[string]int{}
	for _, t := range run.Tasks {
		counts[string(t.State)]++
	}
	v.Counts = sortedCounts(counts)
	v.Graph = layoutGraph(run.ID, run.Tasks, shape)

	// The task list, failures first, filtered by state or by a group of
	// the collapsed graph.
	sel := make([]int, 0, len(run.Tasks))
	v.Tasks.State = state
	if g := q.Get("group"); g != "" {
		if !v.Graph.Collapsed {
			return badQuery("group", g, "the graph of this run is not grouped")
		}
		needs := shape.needs
		if !shape.known {
			needs = make([][]int, len(run.Tasks))
		}
		tg, ok := groupTasks(run.Tasks, layerOf(len(run.Tasks), needs), needs).group(g)
		if !ok {
			return badQuery("group", g, "no such group in this run's graph")
		}
		sel = append(sel, tg.Members...)
		v.Tasks.Group, v.Tasks.GroupOf = g, tg.name()
	} else {
		for i := range run.Tasks {
			sel = append(sel, i)
		}
	}
	if state != "" {
		sel = slices.DeleteFunc(sel, func(i int) bool { return string(run.Tasks[i].State) != state })
	}
	v.Tasks.Filtered = state != "" || v.Tasks.Group != ""
	slices.SortStableFunc(sel, func(a, b int) int {
		return cmp.Or(cmp.Compare(rankOf(string(run.Tasks[a].State)), rankOf(string(run.Tasks[b].State))), cmp.Compare(a, b))
	})
	v.Tasks.Total, v.Tasks.From, v.Tasks.Prev, v.Tasks.Next = len(sel), from, -1, -1
	if from > 0 {
		v.Tasks.Prev = max(0, from-runTaskPage)
	}
	if from+runTaskPage < len(sel) {
		v.Tasks.Next = from + runTaskPage
	}
	for _, i := range sel[min(from, len(sel)):min(from+runTaskPage, len(sel))] {
		v.Tasks.Rows = append(v.Tasks.Rows, taskRow{Task: run.Tasks[i], Kind: shape.kinds[i]})
	}

	// The Gantt chart's page of rows, with their attempts.
	rows := ganttRows(run.Tasks)
	if ganttFrom > 0 && ganttFrom >= len(rows) {
		return badQuery("gantt", strconv.Itoa(ganttFrom), fmt.Sprintf("the chart has %d rows", len(rows)))
	}
	shown := rows[min(ganttFrom, len(rows)):min(ganttFrom+ganttPage, len(rows))]
	atts, err := u.attempts(ctx, run, shown)
	if err != nil {
		return err
	}
	v.Gantt = buildGantt(run.ID, run, rows, ganttFrom, atts, u.o.Now())

	if v.Events, err = u.o.Service.Events(ctx, run.ID, 0, eventPage); err != nil {
		return err
	}
	v.Maps, v.MoreMaps = u.maps(ctx, run)
	v.Actions = actionsFor(viewerFrom(ctx), run)
	return u.render(w, r, http.StatusOK, "run", viewData{Title: fmt.Sprintf("Run %d of %s", run.ID, run.Pipeline), Nav: "pipelines", Data: v})
}

// attempts reads the attempts of the chart's rows.
func (u *UI) attempts(ctx context.Context, run api.Run, rows []int) (map[int][]api.Attempt, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	if ra, ok := u.o.Graphs.(RunAttempts); ok {
		idx := make([]int, len(rows))
		for k, i := range rows {
			idx[k] = run.Tasks[i].Index
		}
		return ra.RunAttempts(ctx, run.ID, idx)
	}
	out := map[int][]api.Attempt{}
	for _, i := range rows {
		t, err := u.o.Service.Task(ctx, run.ID, run.Tasks[i].ID)
		if err != nil {
			return nil, err
		}
		out[run.Tasks[i].Index] = t.Attempts
	}
	return out, nil
}

// failedStates are the states of a failed item.
var failedStates = []engine.TaskState{engine.TaskFailed, engine.TaskTimedOut}

// maps reads the counts and first failed items of the run's map tasks,
// the most failed first.
func (u *UI) maps(ctx context.Context, run api.Run) ([]runMapView, int) {
	var ms []api.Task
	for _, t := range run.Tasks {
		if t.Map != nil {
			ms = append(ms, t)
		}
	}
	failed := func(t api.Task) int { return t.Map.Counts["failed"] + t.Map.Counts["timed_out"] }
	slices.SortStableFunc(ms, func(a, b api.Task) int { return cmp.Compare(failed(b), failed(a)) })
	more := max(0, len(ms)-mapsShown)
	ms = ms[:min(len(ms), mapsShown)]
	out := make([]runMapView, 0, len(ms))
	for _, t := range ms {
		mv := runMapView{Task: t, Counts: sortedCounts(t.Map.Counts), Next: -1}
		if failed(t) > 0 {
			p, err := u.o.Service.Items(ctx, run.ID, t.ID, api.ItemQuery{States: failedStates, Limit: failedPage})
			if err != nil {
				mv.Err = api.AsError(err).Message
			} else {
				mv.Failed = p.Items
				mv.Next = nextFrom(p.Next)
			}
		}
		out = append(out, mv)
	}
	return out, more
}

// nextFrom turns an items page's Next into the From of the page after.
func nextFrom(next string) int {
	if next == "" {
		return -1
	}
	n, err := strconv.Atoi(next)
	if err != nil {
		return -1
	}
	return n + 1
}

// actionsFor says which of the run's actions the viewer may take now.
func actionsFor(v viewerInfo, run api.Run) runActions {
	a := runActions{
		CancelPath: fmt.Sprintf("/runs/%d/cancel", run.ID),
		RetryPath:  fmt.Sprintf("/runs/%d/retry", run.ID),
		RerunPath:  fmt.Sprintf("/runs/%d/rerun", run.ID),
	}
	unsuccessful := 0
	for _, t := range run.Tasks {
		if t.State.Terminal() && !t.State.Satisfies() {
			unsuccessful++
		}
	}
	switch {
	case run.State.Terminal():
		a.CancelWhy = "the run has ended"
	case run.Cancelling:
		a.CancelWhy = "the run is being cancelled"
	default:
		a.Cancel = true
	}
	switch {
	case run.State == engine.RunQueued:
		a.RetryWhy = "the run has not started"
	case run.Cancelling && !run.State.Terminal():
		a.RetryWhy = "the run is being cancelled; wait for it to end"
	case unsuccessful == 0:
		a.RetryWhy = "no task has failed"
	default:
		a.Retry = true
	}
	a.Rerun = true
	if why := v.OperateReason(); why != "" {
		a.Cancel, a.Retry, a.Rerun = false, false, false
		a.CancelWhy, a.RetryWhy, a.RerunWhy = why, why, why
	}
	return a
}

// runEvents answers a page of the timeline after ?after: the rows and the
// next "more" control for htmx, a page of its own otherwise.
func (u *UI) runEvents(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, err := pathID(r, "id", "run")
	if err != nil {
		return err
	}
	after, err := queryInt(r, "after", 0)
	if err != nil {
		return err
	}
	run, err := u.o.Service.Run(ctx, id) // for the namespace check
	if err != nil {
		return err
	}
	if _, err := u.seeRun(ctx, run); err != nil {
		return err
	}
	evs, err := u.o.Service.Events(ctx, id, int64(after), eventPage)
	if err != nil {
		return err
	}
	d := eventsData{run, evs}
	if r.Header.Get("HX-Request") != "" {
		return u.renderPart(w, r, "run_events_rows", d)
	}
	return u.renderPage(w, r, "run_events_page", viewData{Title: fmt.Sprintf("Timeline of run %d", id), Nav: "pipelines", Data: d})
}

// runFailedItems answers a page of a map task's failed items from ?from.
func (u *UI) runFailedItems(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, err := pathID(r, "id", "run")
	if err != nil {
		return err
	}
	task := r.URL.Query().Get("task")
	if task == "" {
		return badQuery("task", task, "expected a map task's id")
	}
	from, err := queryInt(r, "from", 0)
	if err != nil {
		return err
	}
	run, err := u.o.Service.Run(ctx, id)
	if err != nil {
		return err
	}
	if _, err := u.seeRun(ctx, run); err != nil {
		return err
	}
	p, err := u.o.Service.Items(ctx, id, task, api.ItemQuery{States: failedStates, From: from, Limit: failedPage * 5})
	if err != nil {
		return err
	}
	d := failedData{Run: run, Task: task, Failed: p.Items, Next: nextFrom(p.Next)}
	if r.Header.Get("HX-Request") != "" {
		return u.renderPart(w, r, "run_failed_rows", d)
	}
	return u.renderPage(w, r, "run_failed_page", viewData{Title: fmt.Sprintf("Failed items of %s in run %d", task, id), Nav: "pipelines", Data: d})
}

// renderPage writes a whole page defined in the run page's templates.
func (u *UI) renderPage(w http.ResponseWriter, r *http.Request, name string, d viewData) error {
	d.Viewer = viewerFrom(r.Context())
	d.Now = u.o.Now()
	return u.renderPart(w, r, name, d)
}

// renderPart writes a template of the run page's file: a fragment for
// htmx, or a page of its own.
func (u *UI) renderPart(w http.ResponseWriter, r *http.Request, name string, d any) error {
	var buf bytes.Buffer
	if err := u.pages["run"].ExecuteTemplate(&buf, name, d); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
	return nil
}

// runPageLink is the run page's URL with one query parameter set (removed
// when value is "" or "0"), keeping the others: paging one part keeps the
// rest.
func runPageLink(runID int64, q url.Values, name, value, fragment string) string {
	c := url.Values{}
	for k, vs := range q {
		c[k] = slices.Clone(vs)
	}
	if value == "" || value == "0" {
		c.Del(name)
	} else {
		c.Set(name, value)
	}
	s := fmt.Sprintf("/runs/%d", runID)
	if e := c.Encode(); e != "" {
		s += "?" + e
	}
	if fragment != "" {
		s += "#" + fragment
	}
	return s
}

// Link is the page with query parameter name set to value (for paging).
func (v runView) Link(name string, value int, fragment string) string {
	return runPageLink(v.Run.ID, v.Query, name, strconv.Itoa(value), fragment)
}

// StateLink is the task list filtered to a state ("": unfiltered); the
// group filter and the paging are dropped.
func (v runView) StateLink(state string) string {
	if state == "" {
		return fmt.Sprintf("/runs/%d#tasks", v.Run.ID)
	}
	return fmt.Sprintf("/runs/%d?state=%s#tasks", v.Run.ID, url.QueryEscape(state))
}

// Until says how long until (or since) t, for the deadline.
func (v runView) Until(t *time.Time, now time.Time) string {
	if t == nil {
		return ""
	}
	d := t.Sub(now)
	if d >= 0 {
		return "in " + humanDuration(d)
	}
	return humanDuration(-d) + " ago"
}

// CriticalPath writes the run's critical path as "a → b → c".
func (v runView) CriticalPath() string { return strings.Join(v.Run.CriticalPath, " → ") }

// Shown is the range of the task list's page, as people count ("101–200").
func (l taskList) Shown() string {
	if len(l.Rows) == 0 {
		return "0"
	}
	return fmt.Sprintf("%d–%d", l.From+1, l.From+len(l.Rows))
}

// Shown is the range of the chart's rows.
func (g ganttView) Shown() string {
	if len(g.Rows) == 0 {
		return "0"
	}
	return fmt.Sprintf("%d–%d", g.From+1, g.From+len(g.Rows))
}

// MapText writes a map task's counts.
func (r taskRow) MapText() string {
	if r.Map == nil {
		return ""
	}
	return countsText(sortedCounts(r.Map.Counts))
}

package web

// The list pages: the workers and what they run, the backfills and one
// backfill's progress and runs, and the audit log (admins). The hosts of
// the inventory are in hosts.go.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
)

func listRoutes() []page {
	return append([]page{
		{"GET /workers", viewer, (*UI).workers},
		{"GET /backfills", viewer, (*UI).backfills},
		{"GET /backfills/{id}", viewer, (*UI).backfill},
		{"GET /audit", admin, (*UI).audit},
	}, hostRoutes()...)
}

// Page sizes of the lists.
const (
	backfillsPage = 50
	backfillRuns  = 50
	auditPage     = 100
)

// cursorParam reads the cursor of a paged list: opaque, from the page
// before, so only its size is checked here; the store refuses one it did
// not make (a 400 page).
func cursorParam(r *http.Request) (string, error) {
	c := r.URL.Query().Get("cursor")
	if len(c) > 200 || strings.ContainsAny(c, "\x00\r\n") {
		return "", api.Errorf(http.StatusBadRequest, api.CodeInvalid, "cursor %q: expected the next of an earlier page", clip(c, 40))
	}
	return c, nil
}

// seer answers u.sees for one request, asking the service once per
// pipeline.
type seer struct {
	u     *UI
	ctx   context.Context
	cache map[string]bool
}

func (u *UI) seer(ctx context.Context) *seer { return &seer{u: u, ctx: ctx, cache: map[string]bool{}} }

func (s *seer) sees(pipeline string) bool {
	if viewerFrom(s.ctx).P.Namespace == "" {
		return true
	}
	v, ok := s.cache[pipeline]
	if !ok {
		v = s.u.sees(s.ctx, pipeline)
		s.cache[pipeline] = v
	}
	return v
}

// global refuses a page about things in no namespace (hosts, the audit
// log) to a viewer confined to one, as the API refuses such a token.
func global(ctx context.Context, what string) error {
	if ns := viewerFrom(ctx).P.Namespace; ns != "" {
		return &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden,
			Message: fmt.Sprintf("you see only namespace %q; %s are for users of no namespace", ns, what)}
	}
	return nil
}

// ---- workers ----

// workerRow is one executor of the workers page.
type workerRow struct {
	api.WorkerInfo
}

func (u *UI) workers(w http.ResponseWriter, r *http.Request) error {
	d := struct {
		Rows    []workerRow
		Notice  string // why there is no list
		Running int
		Slots   int
	}{}
	status := http.StatusOK
	if u.o.Workers == nil {
		d.Notice = "This server lists no workers."
	} else {
		list, err := u.o.Workers.Workers(r.Context())
		if e, ok := errors.AsType[*api.Error](err); ok && e.Status == http.StatusServiceUnavailable {
			d.Notice, status = e.Message, e.Status
		} else if err != nil {
			return err
		}
		s := u.seer(r.Context())
		for _, wk := range list {
			wk.Running = slices.DeleteFunc(slices.Clone(wk.Running), func(a api.WorkerAttempt) bool { return !s.sees(a.Pipeline) })
			d.Rows = append(d.Rows, workerRow{WorkerInfo: wk})
			d.Running += wk.InUse
			d.Slots += wk.Slots
		}
		slices.SortStableFunc(d.Rows, func(a, b workerRow) int {
			if a.Local != b.Local {
				if a.Local {
					return -1
				}
				return 1
			}
			return cmp.Compare(a.Name, b.Name)
		})
	}
	return u.render(w, r, status, "workers", viewData{Title: "Workers", Nav: "workers", Data: d})
}

// ---- backfills ----

// backfillRow is a backfill with its progress.
type backfillRow struct {
	api.Backfill
	Done   int // runs finished (succeeded, failed, cancelled)
	Failed int
	Bar    []barPart
}

// barPart is one state's part of a progress bar, in a 0-100 wide SVG.
type barPart struct {
	State string
	N     int
	X, W  float64
}

// runStates are the run states in the order bars and counts show them:
// failures first.
var runStates = []engine.RunState{engine.RunFailed, engine.RunRunning, engine.RunQueued, engine.RunSucceeded, engine.RunCancelled}

func newBackfillRow(b api.Backfill) backfillRow {
	row := backfillRow{Backfill: b, Failed: b.Counts[engine.RunFailed]}
	sum := 0
	for _, n := range b.Counts {
		sum += n
	}
	total := max(b.Runs, sum)
	x := 0.0
	for _, s := range runStates {
		n := b.Counts[s]
		if s == engine.RunSucceeded || s == engine.RunFailed || s == engine.RunCancelled {
			row.Done += n
		}
		if n == 0 || total == 0 {
			continue
		}
		wd := 100 * float64(n) / float64(total)
		row.Bar = append(row.Bar, barPart{State: string(s), N: n, X: x, W: wd})
		x += wd
	}
	return row
}

func (u *UI) backfills(w http.ResponseWriter, r *http.Request) error {
	cursor, err := cursorParam(r)
	if err != nil {
		return err
	}
	pipeline := r.URL.Query().Get("pipeline")
	s := u.seer(r.Context())
	if pipeline != "" && !s.sees(pipeline) {
		return api.NotFound("no pipeline named %q", pipeline)
	}
	page, err := u.o.Service.Backfills(r.Context(), pipeline, cursor, backfillsPage)
	if err != nil {
		return err
	}
	var rows []backfillRow
	for _, b := range page.Items {
		if s.sees(b.Pipeline) {
			rows = append(rows, newBackfillRow(b))
		}
	}
	return u.render(w, r, http.StatusOK, "backfills", viewData{Title: "Backfills", Nav: "backfills", Data: struct {
		Rows     []backfillRow
		Pipeline string
		Pager    pager
	}{rows, pipeline, newPager(r, cursor, page.Next)}})
}

func (u *UI) backfill(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", "backfill")
	if err != nil {
		return err
	}
	cursor, err := cursorParam(r)
	if err != nil {
		return err
	}
	var states []engine.RunState
	state := r.URL.Query().Get("state")
	if state != "" {
		if !slices.Contains(runStates, engine.RunState(state)) {
			return api.Errorf(http.StatusBadRequest, api.CodeInvalid, "state %q: expected one of failed, running, queued, succeeded, cancelled", clip(state, 40))
		}
		states = []engine.RunState{engine.RunState(state)}
	}
	b, err := u.o.Service.Backfill(r.Context(), id)
	if err != nil {
		return err
	}
	if !u.sees(r.Context(), b.Pipeline) {
		return api.NotFound("no backfill %d", id)
	}
	runs, err := u.o.Service.Runs(r.Context(), api.RunFilter{BackfillID: id, States: states, Cursor: cursor, Limit: backfillRuns})
	if err != nil {
		return err
	}
	return u.render(w, r, http.StatusOK, "backfill", viewData{Title: fmt.Sprintf("Backfill %d", id), Nav: "backfills", Data: struct {
		B      backfillRow
		States []engine.RunState
		State  string
		Runs   []api.Run
		Pager  pager
	}{newBackfillRow(b), runStates, state, runs.Items, newPager(r, cursor, runs.Next)}})
}

// ---- audit log ----

// auditRow is an audit entry as the page shows it.
type auditRow struct {
	api.AuditEntry
	Action string // the route without the API's prefix: "POST /runs/{id}/cancel"
	Class  string // the state class of its status
}

func (u *UI) audit(w http.ResponseWriter, r *http.Request) error {
	if err := global(r.Context(), "the audit log's entries"); err != nil {
		return err
	}
	cursor, err := cursorParam(r)
	if err != nil {
		return err
	}
	d := struct {
		Rows  []auditRow
		Pager pager
		None  bool // the server keeps no audit log
	}{}
	if u.o.Audit == nil {
		d.None = true
	} else {
		page, err := u.o.Audit.ListAudit(r.Context(), cursor, auditPage)
		if err != nil {
			return err
		}
		d.Pager = newPager(r, cursor, page.Next)
		for _, e := range page.Items {
			method, route, _ := strings.Cut(e.Route, " ")
			row := auditRow{AuditEntry: e, Action: strings.TrimSpace(method + " " + strings.TrimPrefix(route, api.Prefix)), Class: "succeeded"}
			if e.Status >= 400 {
				row.Class = "failed"
			}
			d.Rows = append(d.Rows, row)
		}
	}
	return u.render(w, r, http.StatusOK, "audit", viewData{Title: "Audit log", Nav: "audit", Data: d})
}

// pager links a paged list's first and next pages (empty when there is
// none), keeping the page's other query parameters.
type pager struct {
	First, Next template.URL
}

func newPager(r *http.Request, cursor, next string) pager {
	var p pager
	if cursor != "" {
		p.First = pageLink(r, "")
	}
	if next != "" {
		p.Next = pageLink(r, next)
	}
	return p
}

// pageLink is the URL of the page of path at cursor, keeping the other
// query parameters.
func pageLink(r *http.Request, cursor string) template.URL {
	q := r.URL.Query()
	q.Del("cursor")
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if len(q) == 0 {
		return template.URL(r.URL.Path)
	}
	return template.URL(r.URL.Path + "?" + q.Encode())
}

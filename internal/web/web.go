package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/logs"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Sessions authenticates a request by the secret of its session cookie
// (api.Users does).
type Sessions interface {
	AuthenticateSession(ctx context.Context, secret string) (api.Principal, error)
}

// Graphs gives the shape of a run's graph: its tasks with what each needs,
// from the pipeline version the run was created with.
type Graphs interface {
	RunGraph(ctx context.Context, runID int64) ([]GraphTask, error)
}

// GraphTask is one task of a run's graph.
type GraphTask struct {
	ID    string
	Kind  string // "run", "http", "wait", ...: shown under the name
	Needs []string
}

// Live wakes the live view of a run when the run may have changed. Watch
// returns a channel that receives (without blocking the sender: it has a
// buffer of one) after changes of runID, and a function that stops the
// watch. A server implements it for the runs it executes; a page falls
// back to checking every PollEvery.
type Live interface {
	Watch(runID int64) (<-chan struct{}, func())
}

// Workers lists the executors a server knows.
type Workers interface {
	Workers(ctx context.Context) ([]api.WorkerInfo, error)
}

// Options configure the UI.
type Options struct {
	Service  api.Service
	Sessions Sessions // nil: nobody can log in, every page redirects to /login
	Graphs   Graphs   // nil: a run's tasks are drawn without edges
	Live     Live     // nil: live views check every PollEvery
	Workers  Workers  // nil: the workers page says the server has none to show
	History  History  // nil: the pipeline page shows no calendar and no file history
	SLOs     api.SLOs // nil: pages show no freshness objectives
	Audit    api.AuditLog
	// Logs is where the task page reads attempts' logs (the store the
	// API's log route reads); nil: the page shows no logs.
	Logs   logs.Store
	Logger *slog.Logger
	Now    func() time.Time
	// PollEvery is how often a live view checks a run that no Live wakes
	// (a run another server executes); default 2s.
	PollEvery time.Duration
	// StreamFor is how long a live stream lasts before it ends and the
	// browser reconnects through the session check again, so that a logout
	// or a changed role reaches open streams (default 5 minutes; the
	// browser resumes where the stream stopped).
	StreamFor time.Duration
	// OIDC is true when single sign-on is configured: the login page
	// offers it (/auth/oidc/login).
	OIDC bool

	// Inventory is the host inventory (nil: the hosts pages say the
	// server keeps none).
	Inventory api.Inventory
}

// access is who may open a page.
type access int

const (
	public access = iota
	viewer
	operator
	admin
)

func (a access) role() api.Role {
	switch a {
	case viewer:
		return api.RoleViewer
	case operator:
		return api.RoleOperator
	case admin:
		return api.RoleAdmin
	}
	return ""
}

// page is one route of the UI and its access rule.
type page struct {
	pattern string
	access  access
	serve   func(*UI, http.ResponseWriter, *http.Request) error
}

// routes is every route of the UI: each says who may open it, as the API's
// route table does. A test opens each with every role.
func routes() []page {
	r := []page{
		{"GET /login", public, (*UI).login},
		{"GET /static/{file}", public, (*UI).static},
		{"GET /{$}", viewer, (*UI).pipelines},
	}
	// Each page's file lists its own routes.
	r = append(r, pipelineRoutes()...)
	r = append(r, runRoutes()...)
	r = append(r, taskRoutes()...)
	r = append(r, listRoutes()...)
	return r
}

// Routes returns the patterns of every route with the role it needs ("" for
// none), for tests and docs.
func Routes() map[string]api.Role {
	m := map[string]api.Role{}
	for _, p := range routes() {
		m[p.pattern] = p.access.role()
	}
	return m
}

// UI is the web UI's handler.
type UI struct {
	o     Options
	mux   *http.ServeMux
	pages map[string]*template.Template
	log   *slog.Logger
}

// New returns the UI's handler. It serves every path it is given; mount it
// beside the API (everything but /api/ and /auth/).
func New(o Options) (*UI, error) {
	if o.Service == nil {
		return nil, errors.New("web: no service")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PollEvery <= 0 {
		o.PollEvery = 2 * time.Second
	}
	if o.StreamFor <= 0 {
		o.StreamFor = 5 * time.Minute
	}
	u := &UI{o: o, mux: http.NewServeMux(), log: o.Logger}
	if err := u.parse(); err != nil {
		return nil, err
	}
	for _, p := range routes() {
		u.mux.Handle(p.pattern, u.wrap(p))
	}
	return u, nil
}

// parse parses each page's template with the layout and the partials.
func (u *UI) parse() error {
	u.pages = map[string]*template.Template{}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	base := template.New("").Funcs(funcs())
	var pageFiles []string
	for _, n := range names {
		if strings.HasPrefix(n, "templates/_") {
			if _, err := base.ParseFS(templateFS, n); err != nil {
				return fmt.Errorf("web: parse %s: %w", n, err)
			}
			continue
		}
		pageFiles = append(pageFiles, n)
	}
	for _, n := range pageFiles {
		t, err := base.Clone()
		if err != nil {
			return err
		}
		if _, err := t.ParseFS(templateFS, n); err != nil {
			return fmt.Errorf("web: parse %s: %w", n, err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		u.pages[name] = t
	}
	return nil
}

func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := u.mux.Handler(r); pattern == "" {
		// An unknown path or method: the same page for everyone, signed in
		// or not, so it tells nothing about what exists.
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			u.errorPage(w, r, viewData{}, &api.Error{Status: http.StatusMethodNotAllowed, Code: api.CodeMethodNotAllowed, Message: "the web UI only shows pages; actions go to the API"})
			return
		}
		u.errorPage(w, r, viewData{}, api.NotFound("there is no page at %s", r.URL.Path))
		return
	}
	u.mux.ServeHTTP(w, r)
}

// viewerInfo is who looks at a page.
type viewerInfo struct {
	P    api.Principal
	CSRF string
}

// Name is the viewer's name as people read it: a user's name without the
// "user:" of its actor name.
func (v viewerInfo) Name() string { return strings.TrimPrefix(v.P.Name, api.UserActorPrefix) }

// CanOperate reports whether the viewer's role may act on runs.
func (v viewerInfo) CanOperate() bool { return v.P.Role.Rank() >= api.RoleOperator.Rank() }

// IsAdmin reports whether the viewer is an admin.
func (v viewerInfo) IsAdmin() bool { return v.P.Role.Rank() >= api.RoleAdmin.Rank() }

// OperateReason says why an action is disabled for the viewer ("" when it
// is not).
func (v viewerInfo) OperateReason() string {
	if v.CanOperate() {
		return ""
	}
	return fmt.Sprintf("your role is %s; this needs operator", v.P.Role)
}

type viewerKey struct{}

func viewerFrom(ctx context.Context) viewerInfo {
	v, _ := ctx.Value(viewerKey{}).(viewerInfo)
	return v
}

// wrap authenticates and authorizes a page before it is served, and turns
// its error into an error page.
func (u *UI) wrap(p page) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &startedWriter{ResponseWriter: w}
		w = tw
		defer func() {
			if rec := recover(); rec != nil {
				if rec == http.ErrAbortHandler {
					panic(rec)
				}
				u.log.ErrorContext(r.Context(), "web: panic serving a page", "path", r.URL.Path, "panic", fmt.Sprint(rec))
				if !tw.started {
					u.errorPage(w, r, viewData{}, errors.New("panic"))
				}
			}
		}()
		if p.access != public {
			v, err := u.authenticate(r)
			if err != nil {
				if e, ok := errors.AsType[*api.Error](err); ok && e.Status == http.StatusUnauthorized {
					u.toLogin(w, r)
					return
				}
				u.errorPage(w, r, viewData{}, err)
				return
			}
			if v.P.Role.Rank() < p.access.role().Rank() {
				u.errorPage(w, r, viewData{Viewer: v}, &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden,
					Message: fmt.Sprintf("your role is %s; this page needs %s", v.P.Role, p.access.role())})
				return
			}
			ctx := api.WithPrincipal(r.Context(), v.P)
			ctx = context.WithValue(ctx, viewerKey{}, v)
			r = r.WithContext(ctx)
		}
		if err := p.serve(u, w, r); err != nil {
			if r.Context().Err() != nil && errors.Is(err, r.Context().Err()) {
				return // the browser went away
			}
			u.errorPage(w, r, viewData{Viewer: viewerFrom(r.Context())}, err)
		}
	})
}

// startedWriter remembers whether the answer has started, so a panic in the
// middle of one (an event stream) is not followed by an error page written
// into it.
type startedWriter struct {
	http.ResponseWriter
	started bool
}

func (w *startedWriter) WriteHeader(status int) {
	w.started = true
	w.ResponseWriter.WriteHeader(status)
}

func (w *startedWriter) Write(b []byte) (int, error) {
	w.started = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushes and
// write deadlines of event streams).
func (w *startedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// authenticate finds the session of a request. No cookie, or one that
// opens no session, is a 401 *api.Error.
func (u *UI) authenticate(r *http.Request) (viewerInfo, error) {
	c, err := r.Cookie(api.SessionCookie)
	if err != nil || c.Value == "" || u.o.Sessions == nil {
		return viewerInfo{}, &api.Error{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized, Message: "log in"}
	}
	p, err := u.o.Sessions.AuthenticateSession(r.Context(), c.Value)
	if err != nil {
		if e, ok := errors.AsType[*api.Error](err); ok && e.Status == http.StatusUnauthorized {
			return viewerInfo{}, e
		}
		return viewerInfo{}, fmt.Errorf("authenticate session: %w", redact(err, c.Value))
	}
	return viewerInfo{P: p, CSRF: api.CSRFToken(c.Value)}, nil
}

// redact removes a secret from an error's text.
func redact(err error, secret string) error {
	return errors.New(strings.ReplaceAll(err.Error(), secret, "***"))
}

// toLogin sends a browser without a session to the login page, which
// brings it back here after.
func (u *UI) toLogin(w http.ResponseWriter, r *http.Request) {
	next := r.URL.Path
	if run, ok := strings.CutSuffix(next, "/live"); ok && strings.HasPrefix(run, "/runs/") {
		next = run // come back to the run's page, not to its event stream
	} else if r.URL.RawQuery != "" {
		next += "?" + r.URL.RawQuery
	}
	w.Header().Set("Cache-Control", "no-store")
	if r.Header.Get("HX-Request") != "" || strings.HasSuffix(r.URL.Path, "/live") {
		// A fragment or an event stream cannot be redirected to a page.
		w.Header().Set("HX-Redirect", "/login?next="+url.QueryEscape(next))
		http.Error(w, "log in again", http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, "/login?next="+url.QueryEscape(next), http.StatusSeeOther)
}

// viewData is what every page's template gets.
type viewData struct {
	Title  string
	Nav    string // which top-level section is current
	Viewer viewerInfo
	Now    time.Time
	Data   any
	Error  *api.Error
}

// render writes a page.
func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, name string, d viewData) error {
	t, ok := u.pages[name]
	if !ok {
		return fmt.Errorf("web: no template %q", name)
	}
	if d.Viewer.P.Name == "" {
		d.Viewer = viewerFrom(r.Context())
	}
	d.Now = u.o.Now()
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, d); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
	return nil
}

// errorPage answers err as a page: its status and message for an
// *api.Error, "internal error" (logged with its cause) otherwise.
func (u *UI) errorPage(w http.ResponseWriter, r *http.Request, d viewData, err error) {
	e := api.AsError(err)
	if e.Status >= 500 {
		u.log.ErrorContext(r.Context(), "web: page failed", "path", r.URL.Path, "err", err)
	}
	if r.Header.Get("HX-Request") != "" {
		// A fragment's error shows where the fragment would.
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(e.Status)
		_, _ = fmt.Fprintf(w, `<p class="error" role="alert">%s</p>`, template.HTMLEscapeString(e.Message))
		return
	}
	d.Title = http.StatusText(e.Status)
	d.Error = e
	if rerr := u.render(w, r, e.Status, "error", d); rerr != nil {
		u.log.ErrorContext(r.Context(), "web: render error page", "err", rerr)
		http.Error(w, e.Message, e.Status)
	}
}

// pathID reads a numeric path value.
func pathID(r *http.Request, name, what string) (int64, error) {
	v := r.PathValue(name)
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, api.NotFound("there is no %s %q", what, v)
	}
	return id, nil
}

// sees reports whether the viewer may see pipeline name: a user confined
// to a namespace sees only its pipelines, as the API's tokens do.
func (u *UI) sees(ctx context.Context, name string) bool {
	p := viewerFrom(ctx).P
	if p.Namespace == "" {
		return true
	}
	pl, err := u.o.Service.Pipeline(ctx, name)
	return err == nil && p.Sees(pl.Namespace)
}

package api

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/timeline"
)

// Prefix is where the API lives; every route is under it.
const Prefix = "/api/v1"

// MaxBodyBytes bounds a request body, so a client cannot make the server
// buffer without limit. Every body the API takes is a few hundred bytes.
const MaxBodyBytes = 1 << 20

// DefaultHeartbeat is how often a log follow sends a comment while the log
// is quiet, so proxies and load balancers do not close an idle stream.
const DefaultHeartbeat = 15 * time.Second

//go:embed openapi.json
var openAPIDocument []byte

// Option configures NewHandler.
type Option func(*handler)

// WithLogger sets where the handler logs internal errors and panics
// (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(h *handler) {
		if l != nil {
			h.log = l
		}
	}
}

// WithHeartbeat sets the interval of keep-alive comments on log follows
// (default DefaultHeartbeat). Tests shorten it.
func WithHeartbeat(d time.Duration) Option {
	return func(h *handler) {
		if d > 0 {
			h.heartbeat = d
		}
	}
}

// WithWorkers serves the worker protocol over w and token management over
// t (see Workers and Tokens). Without it, those routes answer 503
// unavailable: a server that runs every task in-process has no remote
// workers to authenticate.
func WithWorkers(w Workers, t Tokens) Option {
	return func(h *handler) {
		h.workers, h.tokens = w, t
	}
}

// handler serves the API over a Service and a log store.
type handler struct {
	svc       Service
	logs      logs.Store
	log       *slog.Logger
	heartbeat time.Duration
	mux       *http.ServeMux
	workers   Workers         // nil: the worker routes answer 503
	tokens    Tokens          // nil: no credential is valid (every route but /health and /ready answers 401)
	auditLog  AuditLog        // nil: nothing is recorded, and GET /audit answers 503
	secrets   Secrets         // nil: the /secrets routes answer 503
	users     Users           // nil: the user, session and login routes answer 503, and no cookie is a credential
	datasets  Datasets        // nil: the /datasets and /lineage routes answer 503
	slos      SLOs            // nil: GET /slo answers 503
	alerts    Alerts          // nil: GET /runs/{id}/alerts answers 503
	cache     Cache           // nil: the /cache routes answer 503
	artifacts WorkerArtifacts // nil: the /worker/artifacts routes answer 503
	inventory Inventory       // nil: the /hosts, /advisories and /worker/hosts routes answer 503

	workerList WorkerList // nil: GET /workers answers 503 (workerlist.go)
	// timelines is where GET /runs/{id}/timeline reads runs (nil: it
	// answers 503), timelineNow its clock (nil: time.Now).
	timelines   timeline.Source
	timelineNow func() time.Time
	// metrics serves GET /metrics (nil: it answers 503), and observe is
	// told of every request the routes answer (nil: nothing is).
	metrics http.Handler
	observe func(route string, status int, took time.Duration)
}

// WithMetrics serves the Prometheus metrics m at GET /metrics, to viewers
// (Prometheus sends a token: authorization.credentials_file), and tells
// observe of every request the API answers: its route (the pattern, never
// the path, so ids do not become labels), status and duration.
func WithMetrics(m http.Handler, observe func(route string, status int, took time.Duration)) Option {
	return func(h *handler) { h.metrics, h.observe = m, observe }
}

// NewHandler returns the HTTP handler of the API under Prefix. It only
// translates HTTP to Service calls and back: every answer, errors included,
// is JSON (logs are text or Server-Sent Events), nothing the client sends
// can make it panic, and what it serves is exactly what the OpenAPI
// document at /api/v1/openapi.json describes. Logs are read from store,
// under the keys Service.LogKey names.
func NewHandler(svc Service, store logs.Store, opts ...Option) http.Handler {
	h := &handler{svc: svc, logs: store, log: slog.Default(), heartbeat: DefaultHeartbeat, mux: http.NewServeMux()}
	for _, o := range opts {
		o(h)
	}
	for _, rt := range routeTable() {
		h.mux.Handle(rt.pattern(), h.wrap(rt))
	}
	return h
}

// route is one operation of the API. The table of routes is the single
// place that says what the API serves and who may call it: NewHandler
// registers it, a test checks it against the OpenAPI document both ways,
// and another calls every route with every role (see auth.go).
type route struct {
	method string
	path   string   // under Prefix, with {wildcards}
	query  []string // the query parameters it reads; others are rejected
	access access   // who may call it
	scope  scope    // how a token confined to a namespace is confined on it
	serve  func(h *handler, w http.ResponseWriter, r *http.Request) error
}

// pattern is the ServeMux pattern of the route.
func (rt route) pattern() string { return rt.method + " " + Prefix + rt.path }

// routeTable lists every route of the API.
func routeTable() []route {
	get, post, del := http.MethodGet, http.MethodPost, http.MethodDelete
	return []route{
		{get, "/health", nil, public, global, (*handler).health},
		{get, "/ready", nil, public, global, (*handler).ready},
		{get, "/openapi.json", nil, public, global, (*handler).openAPI},
		{get, "/metrics", nil, viewer, global, (*handler).serveMetrics},

		{get, "/pipelines", nil, viewer, listed, (*handler).pipelines},
		{get, "/pipelines/{name}", nil, viewer, byPipeline, (*handler).pipeline},
		{post, "/pipelines/{name}/pause", nil, operator, byPipeline, (*handler).pause},
		{post, "/pipelines/{name}/unpause", nil, operator, byPipeline, (*handler).unpause},
		{post, "/pipelines/{name}/runs", nil, operator, byPipeline, (*handler).trigger},

		{get, "/runs", []string{"pipeline", "state", "backfill", "created_from", "created_before", "cursor", "limit"}, viewer, listed, (*handler).runs},
		{get, "/runs/{id}", nil, viewer, byRun, (*handler).run},
		{get, "/runs/{id}/events", []string{"after", "limit"}, viewer, byRun, (*handler).events},
		{get, "/runs/{id}/alerts", nil, viewer, byRun, (*handler).runAlerts},
		{get, "/runs/{id}/timeline", []string{"format", "tz"}, viewer, byRun, (*handler).timeline},
		{get, "/runs/{id}/tasks/{task}", nil, viewer, byRun, (*handler).task},
		{get, "/runs/{id}/tasks/{task}/logs", []string{"attempt", "offset", "follow", "item"}, viewer, byRun, (*handler).taskLogRoute},
		{get, "/runs/{id}/tasks/{task}/items", []string{"state", "after", "limit"}, viewer, byRun, (*handler).items},
		{post, "/runs/{id}/cancel", nil, operator, byRun, (*handler).cancel},
		{post, "/runs/{id}/retry", nil, operator, byRun, (*handler).retry},
		{post, "/runs/{id}/rerun", nil, operator, byRun, (*handler).rerun},
		{post, "/runs/{id}/tasks/{task}/mark", nil, operator, byRun, (*handler).mark},
		// A running map and its items (see mapact.go).
		{post, "/runs/{id}/tasks/{task}/cancel", nil, operator, byRun, (*handler).cancelMap},
		{post, "/runs/{id}/tasks/{task}/items/{item}/cancel", nil, operator, byRun, (*handler).cancelItem},
		{post, "/runs/{id}/tasks/{task}/items/{item}/retry", nil, operator, byRun, (*handler).retryItem},
		{post, "/runs/{id}/tasks/{task}/items/{item}/mark", nil, operator, byRun, (*handler).markItem},

		{post, "/backfills", nil, operator, listed, (*handler).createBackfill},
		{get, "/backfills", []string{"pipeline", "cursor", "limit"}, viewer, listed, (*handler).backfills},
		{get, "/backfills/{id}", nil, viewer, byBackfill, (*handler).backfill},
		{post, "/backfills/{id}/cancel", nil, operator, byBackfill, (*handler).cancelBackfill},

		// The executors and what they run (see workerlist.go): listed,
		// since a confined token sees only its namespace's attempts.
		{get, "/workers", nil, viewer, listed, (*handler).listWorkers},

		{post, "/worker/lease", nil, worker, global, (*handler).workerLease},
		{post, "/worker/heartbeat", nil, worker, global, (*handler).workerHeartbeat},
		{post, "/worker/leases/{lease}/log", []string{"offset"}, worker, global, (*handler).workerLog},
		{post, "/worker/leases/{lease}/complete", nil, worker, global, (*handler).workerComplete},
		{post, "/worker/complete", nil, worker, global, (*handler).workerCompleteBatch},
		// A worker's files: what its leases' needs kept, and what its
		// attempts' outputs matched (see workerartifacts.go).
		{get, "/worker/artifacts/{digest}", nil, worker, global, (*handler).downloadArtifact},
		{http.MethodHead, "/worker/artifacts/{digest}", nil, worker, global, (*handler).statArtifact},
		{http.MethodPut, "/worker/artifacts/{digest}", nil, worker, global, (*handler).uploadArtifact},

		{post, "/tokens", nil, admin, global, (*handler).createToken},
		{get, "/tokens", nil, admin, global, (*handler).listTokens},
		{del, "/tokens/{name}", nil, admin, global, (*handler).revokeToken},

		{get, "/audit", []string{"cursor", "limit"}, admin, global, (*handler).auditList},

		{get, "/secrets", nil, admin, global, (*handler).listSecrets},
		{http.MethodPut, "/secrets/{name}", nil, admin, global, (*handler).putSecret},
		{del, "/secrets/{name}", nil, admin, global, (*handler).deleteSecret},
		{post, "/secrets/rotate-key", nil, admin, global, (*handler).rotateSecretKey},

		{post, "/login", nil, public, global, (*handler).login},
		{post, "/logout", nil, public, global, (*handler).logout},
		{post, "/users", nil, admin, global, (*handler).createUser},
		{get, "/users", nil, admin, global, (*handler).listUsers},
		{del, "/users/{name}", nil, admin, global, (*handler).removeUser},
		{http.MethodPut, "/users/{name}/password", nil, admin, global, (*handler).setPassword},
		{get, "/sessions", nil, admin, global, (*handler).listSessions},
		{del, "/sessions/{id}", nil, admin, global, (*handler).revokeSession},

		// Datasets are global: their producers and consumers may be in
		// several namespaces (see datasets.go).
		{get, "/datasets", nil, viewer, global, (*handler).listDatasets},
		{get, "/datasets/{name}", []string{"cursor", "limit"}, viewer, global, (*handler).dataset},
		{post, "/datasets/{name}/updates", nil, operator, global, (*handler).recordDatasetUpdate},
		{get, "/lineage/{name}", []string{"direction", "depth"}, viewer, global, (*handler).lineage},

		// Objectives are global, like the datasets they are about (see
		// slo.go).
		{get, "/slo", []string{"pipeline"}, viewer, global, (*handler).listSLOs},

		// The cache is global: an entry is reused by any pipeline whose
		// task has its key (see cache.go).
		{get, "/cache", []string{"pipeline", "task", "after", "limit"}, viewer, global, (*handler).listCache},
		{del, "/cache/{key}", nil, operator, global, (*handler).deleteCacheEntry},
		{post, "/cache/purge", nil, operator, global, (*handler).purgeCache},

		// The host inventory is global: hosts are in no namespace (see
		// hosts.go). Workers and agents report with their worker token.
		{post, "/worker/hosts", nil, report, global, (*handler).reportHost},
		{get, "/hosts", []string{"package", "version_lt", "version_le", "version_eq", "service", "active", "port", "os", "stale",
			"advisory", "cursor", "limit"}, viewer, global, (*handler).searchHosts},
		{get, "/hosts/{name}", nil, viewer, global, (*handler).host},
		{get, "/hosts/{name}/events", []string{"cursor", "limit"}, viewer, global, (*handler).hostEvents},
		{get, "/advisories", []string{"id"}, viewer, global, (*handler).advisories},
	}
}

// ServeHTTP answers routes through the mux, and what the mux does not
// route with JSON errors instead of its text ones. A panic in a handler
// becomes a 500 JSON answer (when nothing was written yet) and a log entry.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tw := &trackingWriter{ResponseWriter: w}
	defer h.recoverPanic(tw, r)
	if _, pattern := h.mux.Handler(r); pattern == "" {
		h.unrouted(tw, r)
		return
	}
	h.mux.ServeHTTP(tw, r)
}

// unrouted answers a request the mux has no route for: 405 with the
// methods the path allows, or 404.
func (h *handler) unrouted(w http.ResponseWriter, r *http.Request) {
	// Ask the mux what it would answer, then say it in JSON.
	inner, _ := h.mux.Handler(r)
	probe := &probeWriter{header: http.Header{}}
	inner.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		allow := probe.header.Get("Allow")
		w.Header().Set("Allow", allow)
		writeError(w, Errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed,
			"%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow))
		return
	}
	writeError(w, Errorf(http.StatusNotFound, CodeNotFound,
		"no such route: %s %s (the routes are described at %s/openapi.json)", r.Method, r.URL.Path, Prefix))
}

// recoverPanic turns a panic into a 500 answer and a log entry.
// http.ErrAbortHandler is passed on: it is how a handler asks the server to
// drop the connection.
func (h *handler) recoverPanic(w *trackingWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	h.log.ErrorContext(r.Context(), "api: handler panicked",
		"method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
	if !w.wroteHeader {
		writeError(w, Errorf(http.StatusInternalServerError, CodeInternal, "internal error"))
	}
}

// wrap authorizes a request for a route (see authorize), checks its query
// parameters, runs it, writes the error it returns, and records it in the
// audit log when it asked to change something.
func (h *handler) wrap(rt route) http.Handler {
	name := rt.method + " " + rt.path
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.observe != nil {
			began := time.Now()
			defer func() {
				status := http.StatusOK
				if tw, ok := w.(*trackingWriter); ok && tw.status != 0 {
					status = tw.status
				}
				if p := recover(); p != nil {
					// Answered 500 by the recovery further out.
					h.observe(name, http.StatusInternalServerError, time.Since(began))
					panic(p)
				}
				h.observe(name, status, time.Since(began))
			}()
		}
		ar, err := h.authorize(w, r, rt)
		if ar != nil {
			r = ar
		}
		if err == nil {
			err = checkQuery(r, rt.query)
		}
		if err == nil && audited(rt) {
			r = withAuditTarget(r)
		}
		if err == nil {
			err = rt.serve(h, w, r)
		}
		if err != nil {
			h.fail(w, r, err)
		}
		if tw, ok := w.(*trackingWriter); ok {
			h.audit(r, rt, tw.status)
		}
	})
}

// fail writes err as an ErrorBody. Internal errors are logged with their
// cause and shown to the client only as "internal error". When the answer
// has already started (a log stream), the error can only be logged.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil && errors.Is(err, r.Context().Err()) {
		return // the client went away; nobody to answer
	}
	e := AsError(err)
	if e.Code == CodeInternal {
		h.log.ErrorContext(r.Context(), "api: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else if e.Status == http.StatusServiceUnavailable && storeDown(err) {
		h.log.WarnContext(r.Context(), "api: the store is unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if tw, ok := w.(*trackingWriter); ok && tw.wroteHeader {
		if e.Code != CodeInternal {
			h.log.WarnContext(r.Context(), "api: error after the answer started", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		return
	}
	writeError(w, e)
}

// writeJSON writes v as the JSON answer with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a bug can get here (a type json cannot encode); say so in JSON.
		status = http.StatusInternalServerError
		b, _ = json.Marshal(ErrorBody{Error: ErrorDetail{Code: CodeInternal, Message: "internal error: encode answer"}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// writeError writes e as an ErrorBody with its status.
func writeError(w http.ResponseWriter, e *Error) {
	status := e.Status
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	d := ErrorDetail{Code: e.Code, Message: e.Message}
	if e.Code == CodeInvalidParams && len(e.Params) > 0 {
		d.Param, d.Params = e.Params[0].Param, e.Params
	}
	writeJSON(w, status, ErrorBody{Error: d})
}

// invalid returns a 400 invalid_request error.
func invalid(format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, CodeInvalid, format, args...)
}

// checkQuery rejects query parameters the route does not read, so a typo
// (?pipline=) is an error instead of a silently ignored filter.
func checkQuery(r *http.Request, allowed []string) error {
	q, err := parseQuery(r)
	if err != nil {
		return err
	}
	for name := range q {
		known := false
		for _, a := range allowed {
			known = known || a == name
		}
		if known {
			continue
		}
		if len(allowed) == 0 {
			return invalid("unknown query parameter %q: this route takes none", name)
		}
		return invalid("unknown query parameter %q: this route takes %s", name, strings.Join(allowed, ", "))
	}
	return nil
}

// parseQuery parses the query string strictly (url.Query drops what it
// cannot parse).
func parseQuery(r *http.Request) (map[string][]string, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, invalid("malformed query string: %v", err)
	}
	return q, nil
}

// queryValue returns the single value of a query parameter ("" if absent);
// a parameter given twice is an error, as only one would be used.
func queryValue(r *http.Request, name string) (string, error) {
	q, err := parseQuery(r)
	if err != nil {
		return "", err
	}
	vs := q[name]
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	}
	return "", invalid("query parameter %q given %d times: expected once", name, len(vs))
}

// queryInt reads an integer query parameter within [min, max]; def when
// absent.
func queryInt(r *http.Request, name string, minV, maxV, def int64) (int64, error) {
	s, err := queryValue(r, name)
	if err != nil || s == "" {
		return def, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < minV || n > maxV {
		if maxV == maxInt64 {
			return 0, invalid("query parameter %s=%q: expected an integer of at least %d", name, s, minV)
		}
		return 0, invalid("query parameter %s=%q: expected an integer from %d to %d", name, s, minV, maxV)
	}
	return n, nil
}

// queryTime reads an RFC 3339 time query parameter; the zero time when
// absent.
func queryTime(r *http.Request, name string) (time.Time, error) {
	s, err := queryValue(r, name)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, invalid("query parameter %s=%q: expected an RFC 3339 time like 2026-03-14T00:00:00+09:00", name, s)
	}
	return t, nil
}

// maxInt64 is the upper bound of unbounded integer parameters.
const maxInt64 = int64(^uint64(0) >> 1)

// maxLimit is the largest page a list answers.
const maxLimit = 1000

// queryLimit reads the page size: 0 (the service's default) when absent.
func queryLimit(r *http.Request) (int, error) {
	n, err := queryInt(r, "limit", 1, maxLimit, 0)
	return int(n), err
}

// pathID reads a positive integer id from the path.
func pathID(r *http.Request, name, what string) (int64, error) {
	s := r.PathValue(name)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, invalid("%s %q: expected a positive integer", what, s)
	}
	return n, nil
}

// runAndTask reads the run id and task id of a task route.
func runAndTask(r *http.Request) (int64, string, error) {
	id, err := pathID(r, "id", "run id")
	if err != nil {
		return 0, "", err
	}
	task := r.PathValue("task")
	if task == "" || strings.ContainsAny(task, "/\\\x00") {
		return 0, "", invalid("task id %q: expected a task id from the pipeline file", task)
	}
	return id, task, nil
}

// decodeBody reads a JSON body into v. Unknown fields, trailing data and
// bodies over MaxBodyBytes are errors; an empty body leaves v as it is
// when emptyOK.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, emptyOK bool) error {
	return decodeBodyLimit(w, r, v, emptyOK, MaxBodyBytes)
}

// decodeBodyLimit is decodeBody with a bound of limit bytes, for the few
// bodies that may be larger than MaxBodyBytes.
func decodeBodyLimit(w http.ResponseWriter, r *http.Request, v any, emptyOK bool, limit int64) error {
	return decodeJSON(w, r, v, emptyOK, limit, true)
}

// decodeWorkerBody is decodeBodyLimit for the worker protocol, whose bodies
// a tasuki worker writes many times a second: keys are not checked for
// duplicates and case (checkKeys), which guards what people and policy
// proxies read, not what a worker token may do.
func decodeWorkerBody(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	return decodeJSON(w, r, v, false, limit, false)
}

// decodeJSON reads one JSON value of at most limit bytes into v; strict
// also refuses keys given twice or in another case than the field's.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any, emptyOK bool, limit int64, strict bool) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err == nil && strict {
		err = checkKeys(data, v)
		if e := (*Error)(nil); errors.As(err, &e) {
			return err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err == nil {
		err = dec.Decode(v)
	}
	if errors.Is(err, io.EOF) {
		if emptyOK {
			return nil
		}
		return invalid("missing JSON request body")
	}
	if err == nil {
		// Exactly one JSON value: anything after it is a mistake.
		var extra json.RawMessage
		if err2 := dec.Decode(&extra); !errors.Is(err2, io.EOF) {
			if err2 == nil {
				return invalid("malformed JSON body: unexpected data after the JSON value")
			}
			err = err2
		}
	}
	if err == nil {
		return nil
	}
	var (
		tooBig *http.MaxBytesError
		syn    *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &tooBig):
		return Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body over %d bytes", tooBig.Limit)
	case errors.As(err, &syn):
		return invalid("malformed JSON body at byte %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ):
		if typ.Field != "" {
			return invalid("field %q: expected %s, got JSON %s", typ.Field, jsonTypeName(typ.Type.Kind().String()), typ.Value)
		}
		return invalid("expected a JSON object, got JSON %s", typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("malformed JSON body: it ends in the middle of a value")
	}
	return invalid("invalid JSON body: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// jsonTypeName says a Go kind as a JSON type.
func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	}
	return "a " + kind
}

// paramText turns a JSON parameter value into the text Service.Trigger
// takes: a string as is, a number as written, true/false, an array as
// compact JSON. Other values name the parameter in the error.
func paramText(name string, raw json.RawMessage) (string, error) {
	bad := func(got string) error {
		return ParamError(name, "param %q: expected a string, number, true/false or array, got %s", name, got)
	}
	s := strings.TrimSpace(string(raw))
	if s == "" {
		return "", bad("nothing")
	}
	switch s[0] {
	case '"':
		var v string
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return "", bad("a malformed string")
		}
		return v, nil
	case '[':
		var b bytes.Buffer
		if err := json.Compact(&b, []byte(s)); err != nil {
			return "", bad("a malformed array")
		}
		return b.String(), nil
	case '{':
		return "", bad("an object")
	case 'n':
		return "", bad("null")
	case 't', 'f':
		return s, nil // the decoder has checked it is true or false
	}
	return s, nil // a number, as written
}

// ---- handlers ----

func (h *handler) serveMetrics(w http.ResponseWriter, r *http.Request) error {
	if h.metrics == nil {
		return Errorf(http.StatusServiceUnavailable, CodeUnavailable, "this server exports no metrics")
	}
	h.metrics.ServeHTTP(w, r)
	return nil
}

func (h *handler) health(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, Status{Status: "ok"})
	return nil
}

func (h *handler) ready(w http.ResponseWriter, r *http.Request) error {
	if err := h.svc.Ready(r.Context()); err != nil {
		h.log.WarnContext(r.Context(), "api: not ready", "err", err)
		return Errorf(http.StatusServiceUnavailable, CodeUnavailable, "not ready: %v", err)
	}
	writeJSON(w, http.StatusOK, Status{Status: "ready"})
	return nil
}

func (h *handler) openAPI(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(openAPIDocument)))
	_, _ = w.Write(openAPIDocument)
	return nil
}

func (h *handler) pipelines(w http.ResponseWriter, r *http.Request) error {
	list, err := h.svc.Pipelines(r.Context())
	if err != nil {
		return err
	}
	if p, _ := PrincipalFrom(r.Context()); p.Namespace != "" {
		list.Items = filter(list.Items, func(pl Pipeline) bool { return p.Sees(pl.Namespace) })
		list.Problems = nil // a broken file's namespace may be unreadable; problems are for global tokens
	}
	list.Items, list.Problems = nonNil(list.Items), nonNil(list.Problems)
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (h *handler) pipeline(w http.ResponseWriter, r *http.Request) error {
	p, err := h.svc.Pipeline(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (h *handler) pause(w http.ResponseWriter, r *http.Request) error { return h.setPaused(w, r, true) }
func (h *handler) unpause(w http.ResponseWriter, r *http.Request) error {
	return h.setPaused(w, r, false)
}

func (h *handler) setPaused(w http.ResponseWriter, r *http.Request, paused bool) error {
	who := who(r)
	p, err := h.svc.SetPaused(r.Context(), r.PathValue("name"), paused, who)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (h *handler) trigger(w http.ResponseWriter, r *http.Request) error {
	who := who(r)
	var req TriggerRequest
	if err := decodeBody(w, r, &req, true); err != nil {
		return err
	}
	params := make(map[string]string, len(req.Params))
	var err error
	for name, raw := range req.Params {
		if params[name], err = paramTextChecked(name, raw); err != nil {
			return err
		}
	}
	run, err := h.svc.Trigger(r.Context(), r.PathValue("name"), params, who)
	if err != nil {
		return err
	}
	w.Header().Set("Location", fmt.Sprintf("%s/runs/%d", Prefix, run.ID))
	writeJSON(w, http.StatusCreated, run)
	return nil
}

// runStates are the states a run list can filter on.
var runStates = []engine.RunState{engine.RunQueued, engine.RunRunning, engine.RunSucceeded, engine.RunFailed, engine.RunCancelled}

func (h *handler) runs(w http.ResponseWriter, r *http.Request) error {
	var f RunFilter
	var err error
	if f.Pipeline, err = queryValue(r, "pipeline"); err != nil {
		return err
	}
	q, _ := parseQuery(r) // checked by checkQuery
	for _, v := range q["state"] {
		for s := range strings.SplitSeq(v, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			st := engine.RunState(s)
			if !containsState(runStates, st) {
				return invalid("query parameter state=%q: expected one of %s", s, joinStates(runStates))
			}
			f.States = append(f.States, st)
		}
	}
	if f.BackfillID, err = queryInt(r, "backfill", 1, maxInt64, 0); err != nil {
		return err
	}
	if f.CreatedFrom, err = queryTime(r, "created_from"); err != nil {
		return err
	}
	if f.CreatedBefore, err = queryTime(r, "created_before"); err != nil {
		return err
	}
	if (!f.CreatedFrom.IsZero() || !f.CreatedBefore.IsZero()) && f.Pipeline == "" {
		return invalid("query parameters created_from and created_before need pipeline")
	}
	if f.Cursor, err = queryValue(r, "cursor"); err != nil {
		return err
	}
	if f.Limit, err = queryLimit(r); err != nil {
		return err
	}
	sees, err := h.visible(r.Context())
	if err != nil {
		return err
	}
	if f.Pipeline != "" && !sees(f.Pipeline) {
		return NotFound("no pipeline named %q", f.Pipeline)
	}
	page, err := h.svc.Runs(r.Context(), f)
	if err != nil {
		return err
	}
	page.Items = nonNil(filter(page.Items, func(run Run) bool { return sees(run.Pipeline) }))
	writeJSON(w, http.StatusOK, page)
	return nil
}

func (h *handler) run(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", "run id")
	if err != nil {
		return err
	}
	run, err := h.svc.Run(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, run)
	return nil
}

func (h *handler) events(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", "run id")
	if err != nil {
		return err
	}
	after, err := queryInt(r, "after", 0, maxInt64, 0)
	if err != nil {
		return err
	}
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	page, err := h.svc.Events(r.Context(), id, after, limit)
	if err != nil {
		return err
	}
	page.Items = nonNil(page.Items)
	writeJSON(w, http.StatusOK, page)
	return nil
}

func (h *handler) task(w http.ResponseWriter, r *http.Request) error {
	id, task, err := runAndTask(r)
	if err != nil {
		return err
	}
	t, err := h.svc.Task(r.Context(), id, task)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

// runAction is an operator action on a run.
type runAction func(ctx context.Context, runID int64, actor string) (Run, error)

func (h *handler) runActionRoute(w http.ResponseWriter, r *http.Request, act runAction, status int) error {
	id, err := pathID(r, "id", "run id")
	if err != nil {
		return err
	}
	who := who(r)
	run, err := act(r.Context(), id, who)
	if err != nil {
		return err
	}
	if status == http.StatusCreated {
		w.Header().Set("Location", fmt.Sprintf("%s/runs/%d", Prefix, run.ID))
	}
	writeJSON(w, status, run)
	return nil
}

func (h *handler) cancel(w http.ResponseWriter, r *http.Request) error {
	return h.runActionRoute(w, r, h.svc.Cancel, http.StatusOK)
}

func (h *handler) retry(w http.ResponseWriter, r *http.Request) error {
	return h.runActionRoute(w, r, h.svc.RetryFailed, http.StatusOK)
}

func (h *handler) rerun(w http.ResponseWriter, r *http.Request) error {
	return h.runActionRoute(w, r, h.svc.Rerun, http.StatusCreated)
}

func (h *handler) mark(w http.ResponseWriter, r *http.Request) error {
	id, task, err := runAndTask(r)
	if err != nil {
		return err
	}
	who := who(r)
	var req MarkRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if req.State != engine.TaskSucceeded && req.State != engine.TaskSkipped {
		return invalid("field \"state\": expected %q or %q, got %q", engine.TaskSucceeded, engine.TaskSkipped, req.State)
	}
	run, err := h.svc.MarkTask(r.Context(), id, task, req.State, who)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, run)
	return nil
}

func (h *handler) createBackfill(w http.ResponseWriter, r *http.Request) error {
	who := who(r)
	var req BackfillRequest
	if err := decodeText(w, r, &req, false); err != nil {
		return err
	}
	switch {
	case req.Pipeline == "":
		return invalid("field \"pipeline\": expected the name of a pipeline")
	case req.From.IsZero():
		return invalid("field \"from\": expected the start of the range as an RFC 3339 time")
	case req.To.IsZero():
		return invalid("field \"to\": expected the end of the range as an RFC 3339 time")
	case !req.To.After(req.From):
		return invalid("field \"to\" (%s) must be after \"from\" (%s)", req.To.Format(time.RFC3339), req.From.Format(time.RFC3339))
	case req.Parallel < 0:
		return invalid("field \"parallel\": expected a positive number of runs, got %d", req.Parallel)
	}
	setAuditTarget(r, "pipeline", req.Pipeline)
	if p, _ := PrincipalFrom(r.Context()); !h.seesPipeline(r.Context(), p, req.Pipeline) {
		return NotFound("no pipeline named %q", req.Pipeline)
	}
	b, err := h.svc.CreateBackfill(r.Context(), req, who)
	if err != nil {
		return err
	}
	w.Header().Set("Location", fmt.Sprintf("%s/backfills/%d", Prefix, b.ID))
	writeJSON(w, http.StatusCreated, b)
	return nil
}

func (h *handler) backfills(w http.ResponseWriter, r *http.Request) error {
	pipeline, err := queryValue(r, "pipeline")
	if err != nil {
		return err
	}
	cursor, err := queryValue(r, "cursor")
	if err != nil {
		return err
	}
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	sees, err := h.visible(r.Context())
	if err != nil {
		return err
	}
	if pipeline != "" && !sees(pipeline) {
		return NotFound("no pipeline named %q", pipeline)
	}
	page, err := h.svc.Backfills(r.Context(), pipeline, cursor, limit)
	if err != nil {
		return err
	}
	page.Items = nonNil(filter(page.Items, func(b Backfill) bool { return sees(b.Pipeline) }))
	writeJSON(w, http.StatusOK, page)
	return nil
}

func (h *handler) backfill(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", "backfill id")
	if err != nil {
		return err
	}
	b, err := h.svc.Backfill(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

func (h *handler) cancelBackfill(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id", "backfill id")
	if err != nil {
		return err
	}
	who := who(r)
	b, err := h.svc.CancelBackfill(r.Context(), id, who)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// ---- helpers ----

// nonNil makes an empty list encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func containsState(states []engine.RunState, s engine.RunState) bool {
	for _, x := range states {
		if x == s {
			return true
		}
	}
	return false
}

func joinStates(states []engine.RunState) string {
	parts := make([]string, len(states))
	for i, s := range states {
		parts[i] = string(s)
	}
	return strings.Join(parts, ", ")
}

// trackingWriter remembers whether the answer has started, so an error
// that comes later is not written into the middle of it.
type trackingWriter struct {
	http.ResponseWriter
	wroteHeader bool
	status      int // of the answer, for the audit log
}

func (w *trackingWriter) WriteHeader(status int) {
	if status >= 200 && !w.wroteHeader { // 1xx answers are informational; the real one follows
		w.wroteHeader, w.status = true, status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *trackingWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.wroteHeader, w.status = true, http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the server's writer (to flush
// log streams and lift their write deadline).
func (w *trackingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// probeWriter records what the mux would answer to an unrouted request.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header { return p.header }
func (p *probeWriter) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}
func (p *probeWriter) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}

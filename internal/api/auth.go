package api

// Authentication and authorization of API requests. Every route of
// routeTable says who may call it (its access) and how a namespaced token is
// confined on it (its scope); wrap applies both before the route runs and
// records every request that asks to change something in the audit log.
// Nothing else in the package decides who may do what.

import (
	"context"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"
)

// Role is what an API token may do. Each role may do everything the roles
// below it may.
type Role string

// The roles, from least to most powerful.
const (
	// RoleViewer reads: pipelines, runs, timelines, logs, backfills.
	RoleViewer Role = "viewer"
	// RoleOperator also acts on runs: trigger, cancel, retry, rerun, mark,
	// pause and unpause, backfill.
	RoleOperator Role = "operator"
	// RoleAdmin also manages credentials and reads the audit log.
	RoleAdmin Role = "admin"
)

// Roles lists the roles from least to most powerful.
func Roles() []Role { return []Role{RoleViewer, RoleOperator, RoleAdmin} }

// Rank orders roles (viewer 1, operator 2, admin 3); 0 is no role.
func (r Role) Rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return r.Rank() > 0 }

// Kinds of credential.
const (
	// KindWorker is a worker token: the worker protocol only.
	KindWorker = "worker"
	// KindAPI is an API token: the API, as its role allows.
	KindAPI = "api"
	// KindAgent is an agent token: host reports (POST /worker/hosts) only,
	// for 'tasuki agent' on hosts that run no worker; it cannot lease work.
	KindAgent = "agent"
)

// Principal is who a request acts as: the credential it carried.
type Principal struct {
	Name      string // the token's name: the actor of what it does
	Kind      string // KindWorker, KindAPI, KindAgent or KindUser
	Role      Role   // of an API token
	Namespace string // of an API token confined to a namespace; "" for all
}

// Sees reports whether p may see pipelines of namespace ns.
func (p Principal) Sees(ns string) bool { return p.Namespace == "" || p.Namespace == ns }

// principalKey is the context key of the request's Principal.
type principalKey struct{}

// WithPrincipal returns ctx carrying p, as the handler passes it to the
// Service; tests of Service implementations use it.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the Principal of an authenticated request, and
// false outside one.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Namespace returns the namespace of a pipeline file: the first folder of
// its path under the pipelines directory dir, "" for a file directly in it
// (or outside it).
func Namespace(dir, file string) string {
	dir, file = path.Clean(strings.ReplaceAll(dir, "\\", "/")), path.Clean(strings.ReplaceAll(file, "\\", "/"))
	rel := file
	if dir != "." {
		var ok bool
		if rel, ok = strings.CutPrefix(file, dir+"/"); !ok {
			return ""
		}
	}
	ns, _, ok := strings.Cut(rel, "/")
	if !ok {
		return ""
	}
	return ns
}

// access is who may call a route.
type access int

const (
	public access = iota // anyone: /health, /ready, /openapi.json
	worker               // a worker token
	report               // a worker token or an agent token: host reports
	viewer               // an API token of at least this role
	operator
	admin
)

// role is the least role of an API token that may call a route of access a.
func (a access) role() Role {
	switch a {
	case viewer:
		return RoleViewer
	case operator:
		return RoleOperator
	case admin:
		return RoleAdmin
	}
	return ""
}

// scope says how a token confined to a namespace is confined on a route.
type scope int

const (
	// global routes are not about one namespace: a namespaced token gets 403.
	global scope = iota
	// listed routes answer lists the handler filters to the namespace (or
	// name a pipeline in their body, which the handler checks).
	listed
	// byPipeline routes name a pipeline in {name}.
	byPipeline
	// byRun routes name a run in {id}.
	byRun
	// byBackfill routes name a backfill in {id}.
	byBackfill
)

// changes reports whether a route of this method changes something, so
// its requests go to the audit log.
func changes(method string) bool {
	return method != http.MethodGet && method != http.MethodHead
}

// errUnauthenticated is the answer to a request without a valid credential.
// It is the same whatever was wrong (no header, a malformed one, an
// unknown, expired or revoked token), so it tells a prober nothing.
func errUnauthenticated(a access) *Error {
	if a == worker || a == report {
		return errNoToken()
	}
	return Errorf(http.StatusUnauthorized, CodeUnauthorized,
		"a valid API token is required (Authorization: Bearer <token>); on the server's host the admin token is in $TASUKI_HOME/admin.token")
}

// authorize authenticates r for rt and checks that its credential may call
// rt, returning r with the Principal in its context (also when refused
// after authentication, so the audit log names who was refused). A namespaced token
// asking for something outside its namespace gets the 404 a missing thing
// would, so it learns nothing of what exists there.
func (h *handler) authorize(w http.ResponseWriter, r *http.Request, rt route) (*http.Request, error) {
	if rt.access == public {
		return r, nil
	}
	if rt.access == worker && (h.workers == nil || h.tokens == nil) {
		return nil, Errorf(http.StatusServiceUnavailable, CodeUnavailable, "this server does not serve remote workers")
	}
	if h.tokens == nil {
		return nil, errUnauthenticated(rt.access) // nothing can be valid
	}
	p, err := h.authenticate(w, r, rt.access)
	if err != nil {
		return nil, err
	}
	r = r.WithContext(WithPrincipal(r.Context(), p))
	switch {
	case rt.access == report && (p.Kind == KindWorker || p.Kind == KindAgent):
		return r, nil
	case rt.access == report:
		return r, Errorf(http.StatusForbidden, CodeForbidden, "host reports need a worker or agent token ('tasuki token create NAME --kind agent'), not an API token")
	case rt.access == worker && p.Kind == KindAgent:
		return r, Errorf(http.StatusForbidden, CodeForbidden, "agent token %q may only report its host (POST %s/worker/hosts): give a worker a worker token", p.Name, Prefix)
	case rt.access == worker && p.Kind != KindWorker:
		return r, Errorf(http.StatusForbidden, CodeForbidden, "an API token cannot use the worker protocol: give the worker a worker token ('tasuki token create NAME')")
	case rt.access == worker:
		return r, nil
	case p.Kind == KindAgent:
		return r, Errorf(http.StatusForbidden, CodeForbidden, "agent token %q may only report its host (POST %s/worker/hosts): use an API token", p.Name, Prefix)
	case p.Kind != KindAPI && p.Kind != KindUser:
		return r, Errorf(http.StatusForbidden, CodeForbidden, "a worker token can use only the worker protocol: use an API token")
	case p.Role.Rank() < rt.access.role().Rank():
		return r, Errorf(http.StatusForbidden, CodeForbidden, "token %q has role %s; %s %s needs %s", p.Name, p.Role, r.Method, Prefix+rt.path, rt.access.role())
	case p.Namespace == "":
		return r, nil
	}
	return r, h.confine(r, rt, p)
}

// confine checks that the pipeline, run or backfill rt names is in the
// namespace p is confined to.
func (h *handler) confine(r *http.Request, rt route, p Principal) error {
	ctx := r.Context()
	switch rt.scope {
	case global:
		return Errorf(http.StatusForbidden, CodeForbidden, "token %q is confined to namespace %q; %s %s is for global tokens", p.Name, p.Namespace, r.Method, Prefix+rt.path)
	case listed:
		return nil
	case byPipeline:
		name := r.PathValue("name")
		if !h.seesPipeline(ctx, p, name) {
			return NotFound("no pipeline named %q", name)
		}
	case byRun:
		id, err := pathID(r, "id", "run id")
		if err != nil {
			return err
		}
		run, err := h.svc.Run(ctx, id)
		if err != nil {
			return err
		}
		if !h.seesPipeline(ctx, p, run.Pipeline) {
			return NotFound("no run %d", id)
		}
	case byBackfill:
		id, err := pathID(r, "id", "backfill id")
		if err != nil {
			return err
		}
		b, err := h.svc.Backfill(ctx, id)
		if err != nil {
			return err
		}
		if !h.seesPipeline(ctx, p, b.Pipeline) {
			return NotFound("no backfill %d", id)
		}
	}
	return nil
}

// seesPipeline reports whether p may see the pipeline called name. A
// pipeline the server no longer knows has no namespace a confined token
// could see it in.
func (h *handler) seesPipeline(ctx context.Context, p Principal, name string) bool {
	if p.Namespace == "" {
		return true
	}
	pl, err := h.svc.Pipeline(ctx, name)
	return err == nil && p.Sees(pl.Namespace)
}

// visible returns the predicate a list handler filters with: every pipeline
// name for a global token, those of its namespace for a confined one.
func (h *handler) visible(ctx context.Context) (func(pipeline string) bool, error) {
	p, _ := PrincipalFrom(ctx)
	if p.Namespace == "" {
		return func(string) bool { return true }, nil
	}
	list, err := h.svc.Pipelines(ctx)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, pl := range list.Items {
		if p.Sees(pl.Namespace) {
			names[pl.Name] = true
		}
	}
	return func(name string) bool { return names[name] }, nil
}

// filter keeps the items of s for which keep is true.
func filter[T any](s []T, keep func(T) bool) []T {
	out := s[:0:0]
	for _, x := range s {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

// who is the actor of an action: the name of the credential that asked.
// X-Tasuki-Actor is ignored: a header anyone can set is no evidence of who
// acted.
func who(r *http.Request) string {
	if p, ok := PrincipalFrom(r.Context()); ok {
		return p.Name
	}
	return DefaultActor
}

// audited reports whether requests of rt go to the audit log: those that
// ask to change something, but for the worker protocol and host reports, which change
// attempts on a worker's behalf many times a second (its effects are in the
// runs' timelines) and must stay cheap.
func audited(rt route) bool { return changes(rt.method) && rt.access != worker && rt.access != report }

// audit records a request of rt that asked to change something.
func (h *handler) audit(r *http.Request, rt route, status int) {
	if h.auditLog == nil || !audited(rt) {
		return
	}
	if status == http.StatusUnauthorized {
		// Not written: a flood of requests without a credential must not
		// become a flood of writes. A log line says it happened (authenticate
		// already logged a bad token).
		if r.Header.Get("Authorization") != "" {
			return
		}
		h.log.WarnContext(r.Context(), "api: request without a valid credential refused",
			"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
		return
	}
	e := AuditEntry{At: time.Now(), Remote: remoteOf(r), Method: r.Method, Route: rt.pattern(), Status: status}
	if p, ok := PrincipalFrom(r.Context()); ok {
		e.Actor = p.Name
	}
	var targets []string
	for _, name := range []string{"name", "id", "task"} {
		if v := r.PathValue(name); v != "" {
			targets = append(targets, fmt.Sprintf("%s=%s", name, v))
		}
	}
	if t, ok := r.Context().Value(auditTargetKey{}).(*string); ok && *t != "" {
		targets = append(targets, *t)
	}
	e.Target = strings.Join(targets, " ")
	// The request's context may be cancelled (the client hung up after
	// asking): the record is still owed.
	if err := h.auditLog.RecordAudit(context.WithoutCancel(r.Context()), e); err != nil {
		h.log.ErrorContext(r.Context(), "api: audit log write failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
}

// maxForwardedFor bounds the X-Forwarded-For kept in an audit entry.
const maxForwardedFor = 200

// remoteOf says where a request came from: the address of the connection
// and, when it came through a proxy (a reverse proxy, or another tasuki
// server forwarding to the leader), the X-Forwarded-For the proxy sent,
// marked as such since anyone can send that header.
func remoteOf(r *http.Request) string {
	xff := strings.Join(r.Header.Values("X-Forwarded-For"), ", ")
	if xff == "" {
		return r.RemoteAddr
	}
	if len(xff) > maxForwardedFor {
		xff = xff[:maxForwardedFor] + "..."
	}
	return r.RemoteAddr + " (X-Forwarded-For: " + xff + ")"
}

// auditTargetKey is the context key of what a route names in its body
// (a new token's name, a backfill's pipeline), for its audit entry.
type auditTargetKey struct{}

// withAuditTarget returns r with room for the target its route names in
// its body; setAuditTarget fills it in.
func withAuditTarget(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), auditTargetKey{}, new(string)))
}

// setAuditTarget records what a request names in its body, as "key=value".
func setAuditTarget(r *http.Request, key, value string) {
	if t, ok := r.Context().Value(auditTargetKey{}).(*string); ok {
		*t = key + "=" + value
	}
}

// AuditLog keeps and reads the audit log.
type AuditLog interface {
	// RecordAudit appends an entry.
	RecordAudit(ctx context.Context, e AuditEntry) error
	// ListAudit returns a page of entries newest first.
	ListAudit(ctx context.Context, cursor string, limit int) (Page[AuditEntry], error)
}

// AuditEntry is the JSON shape of an audit log entry.
type AuditEntry struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`  // the credential's name; "" when none was valid
	Remote string    `json:"remote"` // the client's address
	Method string    `json:"method"`
	Route  string    `json:"route"`  // the route pattern
	Target string    `json:"target"` // the ids the request named
	Status int       `json:"status"` // the answer's HTTP status
}

// WithAuditLog records every request that asks to change something in a,
// and serves GET /audit from it.
func WithAuditLog(a AuditLog) Option {
	return func(h *handler) { h.auditLog = a }
}

// WithTokens authenticates requests with t and serves token management
// over it, without the worker protocol (see WithWorkers).
func WithTokens(t Tokens) Option {
	return func(h *handler) { h.tokens = t }
}

func (h *handler) auditList(w http.ResponseWriter, r *http.Request) error {
	if h.auditLog == nil {
		return Errorf(http.StatusServiceUnavailable, CodeUnavailable, "this server keeps no audit log")
	}
	cursor, err := queryValue(r, "cursor")
	if err != nil {
		return err
	}
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	page, err := h.auditLog.ListAudit(r.Context(), cursor, limit)
	if err != nil {
		return err
	}
	page.Items = nonNil(page.Items)
	writeJSON(w, http.StatusOK, page)
	return nil
}

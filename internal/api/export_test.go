package api

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// RouteInfo describes one route of the table, for the external tests.
type RouteInfo struct {
	Method, Path string
	Query        []string
	Access       string // "public", "worker", "report" (worker or agent), or the least role of an API token
	Scope        string // how a namespaced token is confined: global, listed, pipeline, run, backfill
}

// Routes returns the route table.
func Routes() []RouteInfo {
	var out []RouteInfo
	for _, rt := range routeTable() {
		access := string(rt.access.role())
		switch rt.access {
		case public:
			access = "public"
		case worker:
			access = "worker"
		case report:
			access = "report"
		}
		scope := [...]string{global: "global", listed: "listed", byPipeline: "pipeline", byRun: "run", byBackfill: "backfill"}[rt.scope]
		out = append(out, RouteInfo{Method: rt.method, Path: rt.path, Query: rt.query, Access: access, Scope: scope})
	}
	return out
}

// MatchedPattern is the pattern the handler's mux routes r to ("" for none).
func MatchedPattern(h http.Handler, r *http.Request) string {
	_, p := h.(*handler).mux.Handler(r)
	return p
}

// SetFollowRetry shortens a client's reconnection policy.
func SetFollowRetry(c *Client, retries int, backoff time.Duration) {
	c.followRetries, c.followBackoff = retries, backoff
}

// ParamText exposes paramText.
var ParamText = paramText

// RoleTable renders the route table as the Markdown table of
// docs/security.md: each route, who may call it, and what a token confined
// to a namespace may do with it.
func RoleTable() string {
	var b strings.Builder
	b.WriteString("| Route | Who may call it | A token confined to a namespace |\n|---|---|---|\n")
	for _, rt := range routeTable() {
		who := "anyone, without a credential"
		switch rt.access {
		case worker:
			who = "a worker token"
		case report:
			who = "a worker token or an agent token"
		case viewer, operator, admin:
			who = string(rt.access.role())
			if rt.access != admin {
				who += " or above"
			}
		}
		confined := map[scope]string{
			global:     "refused (403)",
			listed:     "lists only its namespace's pipelines, runs or backfills; a filter naming another's pipeline: 404",
			byPipeline: "its namespace's pipelines; others 404",
			byRun:      "runs of its namespace's pipelines; others 404",
			byBackfill: "backfills of its namespace's pipelines; others 404",
		}[rt.scope]
		switch rt.access {
		case public:
			confined = "allowed"
		case worker, report:
			confined = "not an API token's route (403)"
		}
		switch {
		case rt.scope == listed && rt.method != http.MethodGet:
			confined = "only for its namespace's pipelines; others 404"
		case rt.path == "/workers":
			confined = "every worker, with only its namespace's running attempts"
		}
		fmt.Fprintf(&b, "| `%s %s` | %s | %s |\n", rt.method, Prefix+rt.path, who, confined)
	}
	return b.String()
}

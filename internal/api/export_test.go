package api

import (
	"net/http"
	"time"
)

// RouteInfo describes one route of the table, for the external tests.
type RouteInfo struct {
	Method, Path string
	Query        []string
}

// Routes returns the route table.
func Routes() []RouteInfo {
	var out []RouteInfo
	for _, rt := range routeTable() {
		out = append(out, RouteInfo{Method: rt.method, Path: rt.path, Query: rt.query})
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

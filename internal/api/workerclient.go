package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// The worker protocol and token management, client side. The worker
// methods implement Workers, so the worker runs the same code against a
// remote server as it would against an in-process one; they need a client
// made with WithToken.

func leasePath(lease string) string { return "/worker/leases/" + seg(lease) }

// Lease implements Workers. The server may hold the request for up to
// req.WaitSeconds, so ctx (and the http.Client) must allow that long.
func (c *Client) Lease(ctx context.Context, req LeaseRequest) (LeaseResponse, error) {
	var resp LeaseResponse
	err := c.do(ctx, request{method: http.MethodPost, path: "/worker/lease", body: req}, &resp)
	return resp, err
}

// Heartbeat implements Workers.
func (c *Client) Heartbeat(ctx context.Context, req HeartbeatRequest) (HeartbeatResponse, error) {
	if req.Leases == nil {
		req.Leases = []string{}
	}
	var resp HeartbeatResponse
	err := c.do(ctx, request{method: http.MethodPost, path: "/worker/heartbeat", body: req}, &resp)
	return resp, err
}

// AppendLog implements Workers: it sends data (at most MaxLogChunk bytes)
// as the log of lease from offset.
func (c *Client) AppendLog(ctx context.Context, lease string, offset int64, data []byte) error {
	if data == nil {
		data = []byte{}
	}
	q := url.Values{"offset": {strconv.FormatInt(offset, 10)}}
	return c.do(ctx, request{method: http.MethodPost, path: leasePath(lease) + "/log", query: q, raw: data}, nil)
}

// Complete implements Workers. A lease the server no longer holds comes
// back as a 409 *Error with code CodeLeaseLost.
func (c *Client) Complete(ctx context.Context, lease string, req CompleteRequest) error {
	return c.do(ctx, request{method: http.MethodPost, path: leasePath(lease) + "/complete", body: req}, nil)
}

// CompleteBatch reports several leases in one request and returns the
// reports the server refused. A server without the route (older than the
// worker) answers 404: the caller reports one by one then.
func (c *Client) CompleteBatch(ctx context.Context, reports []LeaseReport) ([]ReportRefusal, error) {
	var resp CompleteBatchResponse
	err := c.do(ctx, request{method: http.MethodPost, path: "/worker/complete", body: CompleteBatch{Reports: reports}}, &resp)
	return resp.Refused, err
}

// CreateToken creates a token (an API token when req.Role is set, else a
// worker token) and returns its secret, which the server shows only this
// once. Token management needs an admin token.
func (c *Client) CreateToken(ctx context.Context, req CreateTokenRequest, actor string) (string, TokenInfo, error) {
	var created CreatedToken
	err := c.do(ctx, request{method: http.MethodPost, path: "/tokens", actor: actor, body: req}, &created)
	if err != nil {
		return "", TokenInfo{}, err
	}
	return created.Token, TokenInfo{Name: created.Name, Kind: created.Kind, Role: created.Role, Namespace: created.Namespace,
		CreatedAt: created.CreatedAt, ExpiresAt: created.ExpiresAt}, nil
}

// RevokeToken revokes the token named name.
func (c *Client) RevokeToken(ctx context.Context, name, actor string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: "/tokens/" + seg(name), actor: actor}, nil)
}

// ListTokens lists the tokens, revoked ones included.
func (c *Client) ListTokens(ctx context.Context) ([]TokenInfo, error) {
	var p Page[TokenInfo]
	err := c.do(ctx, request{method: http.MethodGet, path: "/tokens"}, &p)
	return p.Items, err
}

// ListAudit reads a page of the server's audit log, newest first (cursor ""
// for the first page; Page.Next for the following ones).
func (c *Client) ListAudit(ctx context.Context, cursor string, limit int) (Page[AuditEntry], error) {
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var p Page[AuditEntry]
	err := c.do(ctx, request{method: http.MethodGet, path: "/audit", query: q}, &p)
	return p, err
}

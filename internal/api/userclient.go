package api

import (
	"context"
	"net/http"
	"strconv"
)

// CreateUser adds a user who logs in to the web UI with a password.
func (c *Client) CreateUser(ctx context.Context, req CreateUserRequest) (UserInfo, error) {
	var info UserInfo
	err := c.do(ctx, request{method: http.MethodPost, path: "/users", body: req}, &info)
	return info, err
}

// ListUsers lists the server's users.
func (c *Client) ListUsers(ctx context.Context) ([]UserInfo, error) {
	var p Page[UserInfo]
	err := c.do(ctx, request{method: http.MethodGet, path: "/users"}, &p)
	return p.Items, err
}

// RemoveUser removes a user, closing their sessions.
func (c *Client) RemoveUser(ctx context.Context, name string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: "/users/" + seg(name)}, nil)
}

// SetPassword changes a user's password, closing their sessions.
func (c *Client) SetPassword(ctx context.Context, name, password string) error {
	return c.do(ctx, request{method: http.MethodPut, path: "/users/" + seg(name) + "/password", body: PasswordRequest{Password: password}}, nil)
}

// ListSessions lists the open web UI sessions.
func (c *Client) ListSessions(ctx context.Context) ([]SessionInfo, error) {
	var p Page[SessionInfo]
	err := c.do(ctx, request{method: http.MethodGet, path: "/sessions"}, &p)
	return p.Items, err
}

// RevokeSession closes a web UI session.
func (c *Client) RevokeSession(ctx context.Context, id int64) error {
	return c.do(ctx, request{method: http.MethodDelete, path: "/sessions/" + strconv.FormatInt(id, 10)}, nil)
}

package api

// People: local users, the sessions of the web UI, and the CSRF token bound
// to each session. A session is a random secret in the tasuki_session
// cookie (HttpOnly, SameSite=Strict, Secure on TLS); the server keeps only
// its SHA-256. Its CSRF token is derived from the secret, so checking it
// needs no lookup, and a page of another site, which can neither read the
// cookie nor add a header without a preflight the server refuses, cannot
// produce it. See docs/security.md, "People".

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"
)

// SessionCookie is the name of the cookie that carries a web UI session.
const SessionCookie = "tasuki_session"

// CSRFCookie carries a session's CSRF token beside it, readable by the web
// UI's scripts (same origin only), for sessions opened by single sign-on,
// whose last step is a redirect with no answer to read the token from.
const CSRFCookie = "tasuki_csrf"

// KindUser is the kind of a Principal authenticated by a session cookie:
// a person, with their user's role and namespace.
const KindUser = "user"

// UserActorPrefix starts the actor name of what a user does ("user:alice"),
// so the audit log and run histories tell a person from a token of the
// same name.
const UserActorPrefix = "user:"

// CodeTooManyRequests is the code of a 429 answer: too many failed logins
// from one address or for one user; wait and try again.
const CodeTooManyRequests = "too_many_requests"

// MinPassword is the shortest password a user may be given.
const MinPassword = 8

// Users manages local users and the sessions of people logged in to the
// web UI, and authenticates requests by session.
type Users interface {
	// Login checks a user's password and opens a session. A wrong password
	// and an unknown user get the same 401 *Error; too many failures from
	// remote (the client's address) or for the user get a 429 *Error.
	Login(ctx context.Context, req LoginRequest, remote string) (OpenedSession, error)
	// Logout revokes the session whose secret this is; a secret that opens
	// no session is no error (there is nothing left to close).
	Logout(ctx context.Context, secret string) error
	// AuthenticateSession returns whom the valid session with this secret
	// acts as, or a 401 *Error (unknown, revoked or expired).
	AuthenticateSession(ctx context.Context, secret string) (Principal, error)

	// CreateUser adds a user with a password.
	CreateUser(ctx context.Context, req CreateUserRequest) (UserInfo, error)
	// ListUsers lists every user.
	ListUsers(ctx context.Context) ([]UserInfo, error)
	// RemoveUser removes a user, closing every session of theirs.
	RemoveUser(ctx context.Context, name string) error
	// SetPassword changes a user's password, closing every session of
	// theirs.
	SetPassword(ctx context.Context, name, password string) error
	// ListSessions lists the sessions that are open.
	ListSessions(ctx context.Context) ([]SessionInfo, error)
	// RevokeSession closes one session.
	RevokeSession(ctx context.Context, id int64) error
}

// LoginRequest is the body of POST /login.
type LoginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

// LoginResponse answers a login: who is logged in, until when, and the CSRF
// token every request that changes something must carry in X-Tasuki-Csrf.
type LoginResponse struct {
	User      string    `json:"user"`
	Role      Role      `json:"role"`
	Namespace string    `json:"namespace,omitempty"`
	CSRFToken string    `json:"csrf_token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// OpenedSession is a session just opened: its secret, which goes into the
// cookie and nowhere else, and what the login answer says.
type OpenedSession struct {
	Secret    string
	User      string
	Role      Role
	Namespace string
	ExpiresAt time.Time
}

// CreateUserRequest is the body of POST /users.
type CreateUserRequest struct {
	Name      string `json:"name"`
	Password  string `json:"password"`
	Role      Role   `json:"role"`
	Namespace string `json:"namespace,omitempty"`
}

// PasswordRequest is the body of PUT /users/{name}/password.
type PasswordRequest struct {
	Password string `json:"password"`
}

// UserInfo describes a user without their password.
type UserInfo struct {
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	Namespace string    `json:"namespace,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// SessionInfo describes an open session without its secret.
type SessionInfo struct {
	ID        int64     `json:"id"`
	User      string    `json:"user"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// WithUsers serves the user, session, login and logout routes over u and
// accepts its session cookies as credentials. Without it those routes
// answer 503 and no cookie authenticates anything.
func WithUsers(u Users) Option {
	return func(h *handler) { h.users = u }
}

// CSRFToken is the CSRF token bound to the session whose secret this is:
// a hash of it under a label of its own, so the token reveals nothing of
// the secret and no other hash of it is the token.
func CSRFToken(secret string) string {
	sum := sha256.Sum256([]byte("tasuki-csrf\x00" + secret))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// CheckCSRF is the CSRF rule of GuardOptions.CSRF for session cookies: a
// request that changes something and carries a session cookie must carry
// that session's token in CSRFHeader, compared in constant time. A request
// with a bearer token is authenticated by it, not by the cookie, and
// logging in opens a session rather than using one, so neither needs the
// token.
func CheckCSRF(r *http.Request) error {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return nil // no session cookie: no cookie authenticates this request
	}
	if _, ok := bearerToken(r); ok || r.URL.Path == Prefix+"/login" {
		return nil
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" {
		return errors.New("the request carries a session cookie but no CSRF token")
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(CSRFToken(c.Value))) != 1 {
		return errors.New("the CSRF token is not the session's")
	}
	return nil
}

// sessionSecret returns the session cookie's value of a request that
// carries no bearer token (which authenticates first), and false when there
// is none.
func sessionSecret(r *http.Request) (string, bool) {
	if len(r.Header.Values("Authorization")) > 0 {
		return "", false
	}
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return "", false
	}
	return c.Value, true
}

// authenticateSession authenticates a request by its session cookie; ok is
// false when it has none to try (or the server keeps no users), so the
// bearer token rules apply.
func (h *handler) authenticateSession(w http.ResponseWriter, r *http.Request) (p Principal, ok bool, err error) {
	secret, has := sessionSecret(r)
	if !has || h.users == nil {
		return Principal{}, false, nil
	}
	p, err = h.users.AuthenticateSession(r.Context(), secret)
	if err != nil {
		if e, isErr := errors.AsType[*Error](err); isErr && e.Status == http.StatusUnauthorized {
			h.log.WarnContext(r.Context(), "api: request refused: invalid, expired or revoked session",
				"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="tasuki"`)
			return Principal{}, true, Errorf(http.StatusUnauthorized, CodeUnauthorized,
				"your session has ended (expired, logged out or revoked): log in again")
		}
		return Principal{}, true, errors.New("authenticate session: " + strings.ReplaceAll(err.Error(), secret, "***"))
	}
	return p, true, nil
}

// remoteHost is the address of the client without its port, what failed
// logins are counted by.
func remoteHost(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

func (h *handler) needUsers() error {
	if h.users == nil {
		return Errorf(http.StatusServiceUnavailable, CodeUnavailable, "this server has no users")
	}
	return nil
}

// sessionCookie is the cookie of a session: HttpOnly (no script reads
// it), SameSite=Strict (no other site's page sends it), Secure on TLS,
// expiring with the session.
func sessionCookie(r *http.Request, value string, expires time.Time) *http.Cookie {
	c := &http.Cookie{Name: SessionCookie, Value: value, Path: "/", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode}
	if value == "" {
		c.MaxAge = -1
	} else {
		c.Expires = expires
		c.MaxAge = max(1, int(time.Until(expires).Seconds()))
	}
	return c
}

// SetSessionCookie answers r with the cookie of a session just opened, as
// login does; the single sign-on callback, served beside the API, uses it
// too.
func SetSessionCookie(w http.ResponseWriter, r *http.Request, s OpenedSession) {
	w.Header().Set("Cache-Control", "no-store")
	http.SetCookie(w, sessionCookie(r, s.Secret, s.ExpiresAt))
	http.SetCookie(w, csrfCookie(r, CSRFToken(s.Secret), s.ExpiresAt))
}

// csrfCookie is the CSRF token's cookie: like the session's, but readable
// by scripts.
func csrfCookie(r *http.Request, token string, expires time.Time) *http.Cookie {
	c := sessionCookie(r, token, expires)
	c.Name, c.HttpOnly = CSRFCookie, false
	return c
}

func (h *handler) login(w http.ResponseWriter, r *http.Request) error {
	if err := h.needUsers(); err != nil {
		return err
	}
	var req LoginRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if req.User == "" || req.Password == "" {
		return invalid("fields \"user\" and \"password\" are required")
	}
	if err := checkName("field \"user\"", req.User, maxTokenName); err != nil {
		return err
	}
	setAuditTarget(r, "user", req.User)
	s, err := h.users.Login(r.Context(), req, remoteHost(r))
	if err != nil {
		return err
	}
	SetSessionCookie(w, r, s)
	writeJSON(w, http.StatusOK, LoginResponse{User: s.User, Role: s.Role, Namespace: s.Namespace, CSRFToken: CSRFToken(s.Secret), ExpiresAt: s.ExpiresAt})
	return nil
}

func (h *handler) logout(w http.ResponseWriter, r *http.Request) error {
	if err := h.needUsers(); err != nil {
		return err
	}
	if secret, ok := sessionSecret(r); ok {
		if err := h.users.Logout(r.Context(), secret); err != nil {
			return errors.New("log out: " + strings.ReplaceAll(err.Error(), secret, "***"))
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	http.SetCookie(w, sessionCookie(r, "", time.Time{}))
	http.SetCookie(w, csrfCookie(r, "", time.Time{}))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// CheckUserName checks a user name, which travels in URL paths; single
// sign-on checks the names it makes with it too.
func CheckUserName(name string) error { return checkUserName(name) }

// checkUserName checks a user name, which travels in URL paths.
func checkUserName(name string) error {
	if err := checkName("user name", name, maxTokenName); err != nil {
		return err
	}
	if strings.ContainsAny(name, "/\\ ") {
		return invalid("user name %q: expected no slashes or spaces", name)
	}
	return nil
}

// checkPassword checks a new password.
func checkPassword(pw string) error {
	if len(pw) < MinPassword {
		return invalid("field \"password\": expected at least %d characters", MinPassword)
	}
	if len(pw) > 1024 {
		return invalid("field \"password\": expected at most 1024 bytes")
	}
	return nil
}

func (h *handler) createUser(w http.ResponseWriter, r *http.Request) error {
	if err := h.needUsers(); err != nil {
		return err
	}
	var req CreateUserRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if err := checkUserName(req.Name); err != nil {
		return err
	}
	setAuditTarget(r, "user", req.Name)
	if !req.Role.Valid() {
		return invalid("field \"role\": expected viewer, operator or admin, got %q", req.Role)
	}
	if req.Namespace != "" {
		if err := checkName("field \"namespace\"", req.Namespace, maxTokenName); err != nil {
			return err
		}
		if strings.ContainsAny(req.Namespace, "/\\") || req.Namespace == "." || req.Namespace == ".." {
			return invalid("field \"namespace\" %q: expected the name of a folder of the pipelines directory, without slashes", req.Namespace)
		}
	}
	if err := checkPassword(req.Password); err != nil {
		return err
	}
	u, err := h.users.CreateUser(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, u)
	return nil
}

func (h *handler) listUsers(w http.ResponseWriter, r *http.Request) error {
	if err := h.needUsers(); err != nil {
		return err
	}
	list, err := h.users.ListUsers(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Page[UserInfo]{Items: nonNil(list)})
	return nil
}

func (h *handler) removeUser(w http.ResponseWriter, r *http.Request) error {
	if err := h.needUsers(); err != nil {
		return err
	}
	name := r.PathValue("name")
	if err := checkUserName(name); err != nil {
		return err
	}
	if err := h.users.RemoveUser(r.Context(), name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) setPassword(w http.ResponseWriter, r *http.Request) error {
	if err := h.needUsers(); err != nil {
		return err
	}
	name := r.PathValue("name")
	if err := checkUserName(name); err != nil {
		return err
	}
	var req PasswordRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if err := checkPassword(req.Password); err != nil {
		return err
	}
	if err := h.users.SetPassword(r.Context(), name, req.Password); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) listSessions(w http.ResponseWriter, r *http.Request) error {
	if err := h.needUsers(); err != nil {
		return err
	}
	list, err := h.users.ListSessions(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Page[SessionInfo]{Items: nonNil(list)})
	return nil
}

func (h *handler) revokeSession(w http.ResponseWriter, r *http.Request) error {
	if err := h.needUsers(); err != nil {
		return err
	}
	id, err := pathID(r, "id", "session id")
	if err != nil {
		return err
	}
	if err := h.users.RevokeSession(r.Context(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

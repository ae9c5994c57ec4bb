package api_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/logs"
)

// sessionEnv is a guarded handler with users, served on loopback, and a
// browser-like client with a cookie jar.
type sessionEnv struct {
	srv    *httptest.Server
	client *http.Client
	fake   *apitest.Fake
	audit  *apitest.AuditLog
	admin  string // an admin API token
}

func newSessionEnv(t *testing.T, tls bool) *sessionEnv {
	t.Helper()
	users := apitest.NewUsers()
	users.Add("olga", "operator-password", api.RoleOperator, "")
	users.Add("vera", "viewer-password", api.RoleViewer, "")
	tokens := apitest.NewTokens()
	e := &sessionEnv{fake: apitest.NewSeeded(), audit: &apitest.AuditLog{}, admin: tokens.AddAPI("admin", api.RoleAdmin, "")}
	h := api.Guard(api.NewHandler(e.fake, logs.NewFiles(t.TempDir()), api.WithTokens(tokens), api.WithUsers(users), api.WithAuditLog(e.audit),
		api.WithLogger(slog.New(slog.DiscardHandler))), api.GuardOptions{CSRF: api.CheckCSRF})
	if tls {
		e.srv = httptest.NewTLSServer(h)
	} else {
		e.srv = httptest.NewServer(h)
	}
	t.Cleanup(e.srv.Close)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	e.client = e.srv.Client()
	e.client.Jar = jar
	return e
}

// do sends a request through the client (and its cookies) with headers.
func (e *sessionEnv) do(t *testing.T, method, path, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.srv.URL+api.Prefix+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func (e *sessionEnv) login(t *testing.T, user, password string) (api.LoginResponse, *http.Cookie) {
	t.Helper()
	lr, c, _ := e.loginResp(t, user, password)
	return lr, c
}

func (e *sessionEnv) loginResp(t *testing.T, user, password string) (api.LoginResponse, *http.Cookie, *http.Response) {
	t.Helper()
	resp, b := e.do(t, "POST", "/login", `{"user":"`+user+`","password":"`+password+`"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("login as %s: %d %s", user, resp.StatusCode, b)
	}
	var lr api.LoginResponse
	mustJSON(t, b, &lr)
	for _, c := range resp.Cookies() {
		if c.Name == api.SessionCookie {
			return lr, c, resp
		}
	}
	t.Fatalf("login answered no %s cookie: %v", api.SessionCookie, resp.Header["Set-Cookie"])
	return lr, nil, nil
}

// TestSessionCookieAttributes checks the cookie a login sets: HttpOnly,
// SameSite=Strict, Path=/, expiring with the session, and Secure exactly
// when the server is on TLS; the answer holds a CSRF token that is not the
// cookie's secret.
func TestSessionCookieAttributes(t *testing.T) {
	for _, tls := range []bool{false, true} {
		e := newSessionEnv(t, tls)
		lr, c, resp := e.loginResp(t, "vera", "viewer-password")
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure != tls || c.MaxAge <= 0 || c.Expires.IsZero() {
			t.Errorf("tls=%v: cookie %s", tls, c)
		}
		var csrf *http.Cookie
		for _, ck := range resp.Cookies() {
			if ck.Name == api.CSRFCookie {
				csrf = ck
			}
		}
		if csrf == nil || csrf.HttpOnly || csrf.Value != lr.CSRFToken || csrf.SameSite != http.SameSiteStrictMode || csrf.Secure != tls {
			t.Errorf("tls=%v: CSRF cookie %v, want the token, readable by scripts", tls, csrf)
		}
		if lr.User != "vera" || lr.Role != api.RoleViewer || lr.CSRFToken == "" || lr.CSRFToken == c.Value || lr.CSRFToken != api.CSRFToken(c.Value) {
			t.Errorf("tls=%v: login answer %+v", tls, lr)
		}
	}
}

// TestSessionActsAsItsUser checks that the cookie is a credential with the
// user's role: a viewer reads and is refused an operator's action and an
// admin route; an operator's action is recorded as done by the user.
func TestSessionActsAsItsUser(t *testing.T) {
	e := newSessionEnv(t, false)
	if resp, b := e.do(t, "GET", "/runs", ""); resp.StatusCode != 401 {
		t.Fatalf("runs before login: %d %s", resp.StatusCode, b)
	}
	lr, _ := e.login(t, "vera", "viewer-password")
	if resp, b := e.do(t, "GET", "/runs", ""); resp.StatusCode != 200 {
		t.Errorf("a viewer's session reading runs: %d %s", resp.StatusCode, b)
	}
	if resp, b := e.do(t, "GET", "/tokens", ""); resp.StatusCode != 403 {
		t.Errorf("a viewer's session on an admin route: %d %s", resp.StatusCode, b)
	}
	if resp, b := e.do(t, "POST", "/runs/3/cancel", "", api.CSRFHeader, lr.CSRFToken); resp.StatusCode != 403 {
		t.Errorf("a viewer's session cancelling a run: %d %s", resp.StatusCode, b)
	}

	lr, _ = e.login(t, "olga", "operator-password")
	if resp, b := e.do(t, "POST", "/runs/3/cancel", "", api.CSRFHeader, lr.CSRFToken, api.ActorHeader, "someone-else"); resp.StatusCode != 200 {
		t.Fatalf("an operator's session cancelling a run: %d %s", resp.StatusCode, b)
	}
	wantArgs(t, e.fake, "Cancel", int64(3), "user:olga")
	entries := e.audit.Entries()
	last := entries[len(entries)-1]
	if last.Actor != "user:olga" || last.Route != "POST /api/v1/runs/{id}/cancel" || last.Status != 200 {
		t.Errorf("audit entry %+v, want the cancel by user:olga", last)
	}
}

// TestSessionCSRF checks that a request carrying the session cookie that
// changes something needs the session's CSRF token: none, another
// session's and a made-up one are refused with 403 before the route runs.
func TestSessionCSRF(t *testing.T) {
	e := newSessionEnv(t, false)
	other, _ := e.login(t, "vera", "viewer-password")
	lr, _ := e.login(t, "olga", "operator-password") // the jar now holds olga's session
	for _, c := range []struct {
		name  string
		token string
		want  int
	}{
		{"no token", "", 403},
		{"another session's token", other.CSRFToken, 403},
		{"a made-up token", strings.Repeat("A", len(lr.CSRFToken)), 403},
		{"the session's token", lr.CSRFToken, 200},
	} {
		var header []string
		if c.token != "" {
			header = []string{api.CSRFHeader, c.token}
		}
		resp, b := e.do(t, "POST", "/runs/3/cancel", "", header...)
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, b, c.want)
		}
		if c.want == 403 && !strings.Contains(string(b), "CSRF") {
			t.Errorf("%s: refusal does not say why: %s", c.name, b)
		}
	}
	if calls := e.fake.Calls(); len(calls) != 1 {
		t.Errorf("the route ran %d times, want once (refused requests must not reach it): %v", len(calls), calls)
	}
}

// TestCheckCSRF is the rule of CheckCSRF case by case.
func TestCheckCSRF(t *testing.T) {
	const secret = "the-session-secret"
	good := api.CSRFToken(secret)
	for _, c := range []struct {
		name    string
		path    string
		cookie  string // the session cookie's value; "" none
		other   bool   // an unrelated cookie
		header  string
		bearer  bool
		wantErr bool
	}{
		{name: "no cookie", path: "/runs/1/cancel"},
		{name: "another site's cookie only", path: "/runs/1/cancel", other: true},
		{name: "session without token", path: "/runs/1/cancel", cookie: secret, wantErr: true},
		{name: "session with a wrong token", path: "/runs/1/cancel", cookie: secret, header: "x" + good[1:], wantErr: true},
		{name: "session with the secret as token", path: "/runs/1/cancel", cookie: secret, header: secret, wantErr: true},
		{name: "session with its token", path: "/runs/1/cancel", cookie: secret, header: good},
		{name: "bearer token beside a cookie", path: "/runs/1/cancel", cookie: secret, bearer: true},
		{name: "login with a stale cookie", path: "/login", cookie: secret},
		{name: "logout needs the token", path: "/logout", cookie: secret, wantErr: true},
	} {
		r := httptest.NewRequest("POST", api.Prefix+c.path, nil)
		if c.cookie != "" {
			r.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: c.cookie})
		}
		if c.other {
			r.AddCookie(&http.Cookie{Name: "theme", Value: "dark"})
		}
		if c.header != "" {
			r.Header.Set(api.CSRFHeader, c.header)
		}
		if c.bearer {
			r.Header.Set("Authorization", "Bearer tsk_x")
		}
		if err := api.CheckCSRF(r); (err != nil) != c.wantErr {
			t.Errorf("%s: CheckCSRF = %v, want error %v", c.name, err, c.wantErr)
		}
	}
}

// TestLogout checks that logging out closes the session on the server
// (the old cookie no longer works even if a copy was kept) and clears it in
// the browser.
func TestLogout(t *testing.T) {
	e := newSessionEnv(t, false)
	lr, c := e.login(t, "vera", "viewer-password")
	resp, b := e.do(t, "POST", "/logout", "", api.CSRFHeader, lr.CSRFToken)
	if resp.StatusCode != 204 {
		t.Fatalf("logout: %d %s", resp.StatusCode, b)
	}
	u, _ := url.Parse(e.srv.URL)
	for _, jc := range e.client.Jar.Cookies(u) {
		if jc.Name == api.SessionCookie {
			t.Errorf("the cookie is still in the browser after logout: %s", jc)
		}
	}
	e.client.Jar.SetCookies(u, []*http.Cookie{c}) // a copy kept aside
	resp, b = e.do(t, "GET", "/runs", "")
	if resp.StatusCode != 401 {
		t.Errorf("a logged-out session's cookie read runs: %d %s", resp.StatusCode, b)
	}
	var eb api.ErrorBody
	if err := json.Unmarshal(b, &eb); err != nil || !strings.Contains(eb.Error.Message, "log in again") {
		t.Errorf("401 of an ended session: %s", b)
	}
}

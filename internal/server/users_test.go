package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// browser is an HTTP client with a cookie jar, as a web UI's page has.
type browser struct {
	t    *testing.T
	url  string
	c    *http.Client
	csrf string // from the last login
}

func newBrowser(t *testing.T, url string) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, url: url, c: &http.Client{Jar: jar}}
}

// do sends a request with the browser's cookies, and its CSRF token when
// withCSRF.
func (b *browser) do(method, path, body string, withCSRF bool) (int, string) {
	b.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(b.t.Context(), method, b.url+api.Prefix+path, r)
	if err != nil {
		b.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if withCSRF {
		req.Header.Set(api.CSRFHeader, b.csrf)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func (b *browser) login(user, password string) (int, string) {
	b.t.Helper()
	code, out := b.do("POST", "/login", `{"user":"`+user+`","password":"`+password+`"}`, false)
	if code == 200 {
		var lr api.LoginResponse
		if err := json.Unmarshal([]byte(out), &lr); err != nil {
			b.t.Fatal(err)
		}
		b.csrf = lr.CSRFToken
	}
	return code, out
}

// TestProcessUsers drives users and sessions through a real server
// process: users added with the CLI (passwords on stdin), logins from a
// browser-like client, the session acting with its user's role and CSRF
// token, the audit log naming the user, and sessions closed by logout, a
// password change, an admin and the user's removal. Neither a password nor
// a session secret reaches the server's log.
func TestProcessUsers(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	writeFile(t, dir, "p.yaml", "name: p\ntasks: [{id: a, run: 'true'}]\n")
	s := startServer(t, home, dir, nil)

	for _, u := range []struct{ name, role, pw string }{{"olga", "operator", "operator-password"}, {"vera", "viewer", "viewer-password"}} {
		if r := secretCLI(t, s, u.pw+"\n", "user", "add", u.name, "--role", u.role); r.code != 0 {
			t.Fatalf("user add %s: exit %d: %s", u.name, r.code, r.errOut)
		}
	}
	if r := secretCLI(t, s, "short\n", "user", "add", "x", "--role", "viewer"); r.code != 2 || !strings.Contains(r.errOut, "shorter than 8") {
		t.Errorf("user add with a short password: exit %d: %s", r.code, r.errOut)
	}
	if r := secretCLI(t, s, "", "user", "add", "x", "--role", "viewer"); r.code != 2 || !strings.Contains(r.errOut, "standard input is empty") {
		t.Errorf("user add without a password: exit %d: %s", r.code, r.errOut)
	}
	r := secretCLI(t, s, "", "user", "list")
	if r.code != 0 || !strings.Contains(r.out, "olga") || !strings.Contains(r.out, "operator") || !strings.Contains(r.out, "vera") || strings.Contains(r.out, "argon2") {
		t.Errorf("user list: exit %d\n%s%s", r.code, r.out, r.errOut)
	}

	// A viewer reads and may not act.
	vera := newBrowser(t, s.url)
	if code, out := vera.login("vera", "viewer-password"); code != 200 {
		t.Fatalf("login: %d %s", code, out)
	}
	if code, out := vera.do("GET", "/runs", "", false); code != 200 {
		t.Errorf("a viewer's session reading runs: %d %s", code, out)
	}
	if code, out := vera.do("GET", "/users", "", false); code != 403 {
		t.Errorf("a viewer's session on an admin route: %d %s", code, out)
	}
	if code, out := vera.do("POST", "/pipelines/p/runs", "{}", true); code != 403 {
		t.Errorf("a viewer's session triggering: %d %s", code, out)
	}

	// An operator acts, with the CSRF token only.
	olga := newBrowser(t, s.url)
	if code, out := olga.login("olga", "operator-password"); code != 200 {
		t.Fatalf("login: %d %s", code, out)
	}
	if code, out := olga.do("POST", "/pipelines/p/runs", "{}", false); code != 403 || !strings.Contains(out, "CSRF") {
		t.Errorf("trigger without the CSRF token: %d %s", code, out)
	}
	if code, out := olga.do("POST", "/pipelines/p/runs", "{}", true); code != 201 {
		t.Fatalf("trigger with the CSRF token: %d %s", code, out)
	}
	audit, err := s.c.ListAudit(t.Context(), "", 5)
	if err != nil {
		t.Fatal(err)
	}
	if e := audit.Items[0]; e.Actor != "user:olga" || e.Route != "POST /api/v1/pipelines/{name}/runs" || e.Status != 201 {
		t.Errorf("newest audit entry %+v, want olga's trigger", e)
	}

	// Wrong password and unknown user: one answer.
	_, wrong := newBrowser(t, s.url).login("olga", "not-her-password")
	_, unknown := newBrowser(t, s.url).login("nobody", "not-her-password")
	if wrong != unknown || !strings.Contains(wrong, "wrong user name or password") {
		t.Errorf("wrong password answers %s, unknown user %s", wrong, unknown)
	}

	// An admin closes a session.
	sessions, err := s.c.ListSessions(t.Context())
	if err != nil || len(sessions) != 2 || sessions[0].User != "vera" || sessions[1].User != "olga" {
		t.Fatalf("sessions: %+v, %v", sessions, err)
	}
	if r := secretCLI(t, s, "", "user", "logout", "1"); r.code != 0 {
		t.Errorf("user logout 1: exit %d: %s", r.code, r.errOut)
	}
	if code, out := vera.do("GET", "/runs", "", false); code != 401 {
		t.Errorf("a session an admin closed: %d %s", code, out)
	}

	// A password change closes the user's sessions; the new one works.
	if r := secretCLI(t, s, "new-operator-password\n", "user", "passwd", "olga"); r.code != 0 {
		t.Fatalf("user passwd: exit %d: %s", r.code, r.errOut)
	}
	if code, out := olga.do("GET", "/runs", "", false); code != 401 {
		t.Errorf("a session after its user's password changed: %d %s", code, out)
	}
	if code, out := olga.login("olga", "operator-password"); code != 401 {
		t.Errorf("login with the old password: %d %s", code, out)
	}
	if code, out := olga.login("olga", "new-operator-password"); code != 200 {
		t.Fatalf("login with the new password: %d %s", code, out)
	}

	// Logout.
	if code, out := olga.do("POST", "/logout", "", true); code != 204 {
		t.Errorf("logout: %d %s", code, out)
	}
	if code, out := olga.do("GET", "/runs", "", false); code != 401 {
		t.Errorf("after logout: %d %s", code, out)
	}

	// Removing a user closes their sessions.
	if code, out := vera.login("vera", "viewer-password"); code != 200 {
		t.Fatalf("login: %d %s", code, out)
	}
	if r := secretCLI(t, s, "", "user", "rm", "vera"); r.code != 0 {
		t.Fatalf("user rm: exit %d: %s", r.code, r.errOut)
	}
	if code, out := vera.do("GET", "/runs", "", false); code != 401 {
		t.Errorf("a removed user's session: %d %s", code, out)
	}
	if code, out := vera.login("vera", "viewer-password"); code != 401 {
		t.Errorf("a removed user's login: %d %s", code, out)
	}

	logs := s.logs()
	secrets := []string{"operator-password", "viewer-password", olga.csrf, vera.csrf}
	for _, b := range []*browser{olga, vera} {
		u, _ := url.Parse(s.url)
		for _, c := range b.c.Jar.Cookies(u) {
			secrets = append(secrets, c.Value)
		}
	}
	for _, secret := range secrets {
		if strings.Contains(logs, secret) {
			t.Errorf("the server's log holds %q", secret)
		}
	}
	if !strings.Contains(logs, "login failed") {
		t.Errorf("failed logins are not logged:\n%s", logs)
	}
}

package server

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc/oidctest"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// provider is an OpenID provider in the test: discovery and keys from
// oidctest, and an authorization endpoint that logs the configured person
// in at once, a token endpoint that checks the PKCE verifier and signs an
// ID token with the nonce of the authorization request (or another, when
// the test asks for a wrong one).
type provider struct {
	t      *testing.T
	srv    *httptest.Server
	key    *rsa.PrivateKey
	now    func() time.Time
	client string

	mu        sync.Mutex
	user      string
	groups    []string
	badNonce  bool
	codes     map[string][2]string // code -> nonce, PKCE challenge
	exchanges int
}

func newProvider(t *testing.T, now func() time.Time) *provider {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &provider{t: t, key: key, now: now, client: "tasuki", codes: map[string][2]string{}}
	keys := &oidctest.Server{PublicKeys: []oidctest.PublicKey{{PublicKey: key.Public(), KeyID: "k1", Algorithm: "RS256"}}}
	mux := http.NewServeMux()
	mux.HandleFunc("/auth", p.authorize)
	mux.HandleFunc("/token", p.token)
	mux.Handle("/", keys)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	keys.SetIssuer(p.srv.URL)
	return p
}

func (p *provider) as(user string, groups ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.user, p.groups = user, groups
}

func (p *provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != p.client || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" {
		http.Error(w, "bad authorization request: "+r.URL.RawQuery, http.StatusBadRequest)
		return
	}
	code := rand.Text()
	p.mu.Lock()
	p.codes[code] = [2]string{q.Get("nonce"), q.Get("code_challenge")}
	p.mu.Unlock()
	back, _ := url.Parse(q.Get("redirect_uri"))
	v := url.Values{"code": {code}, "state": {q.Get("state")}}
	back.RawQuery = v.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (p *provider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.exchanges++
	got, ok := p.codes[r.PostForm.Get("code")]
	delete(p.codes, r.PostForm.Get("code"))
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != got[1] {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_grant"}`)
		return
	}
	nonce := got[0]
	if p.badNonce {
		nonce = "not-the-nonce"
	}
	groups, _ := json.Marshal(p.groups)
	now := p.now()
	claims := fmt.Sprintf(`{"iss":%q,"aud":%q,"sub":%q,"preferred_username":%q,"groups":%s,"nonce":%q,"iat":%d,"exp":%d}`,
		p.srv.URL, p.client, p.user, p.user, groups, nonce, now.Unix(), now.Add(time.Hour).Unix())
	idToken := oidctest.SignIDToken(p.key, "k1", "RS256", claims)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 3600, "id_token": idToken})
}

// oidcEnv is a test server's API and OIDC routes behind the guard, as Run
// serves them, over loopback, with a provider.
type oidcEnv struct {
	ts  *testServer
	p   *provider
	url string
}

func newOIDCEnv(t *testing.T) *oidcEnv {
	t.Helper()
	ts := newTestServer(t, t.TempDir(), pipelineDir(t, map[string]string{"p.yaml": "name: p\ntasks: [{id: a, run: 'true'}]\n"}),
		time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	p := newProvider(t, ts.clock.Now)
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	ts.cfg.OIDC = OIDCConfig{Issuer: p.srv.URL, ClientID: p.client, ClientSecret: "client-secret", RedirectURL: base + OIDCCallbackPath,
		Roles: map[string]string{"readers": "viewer", "ops": "operator"}}
	people := newUsers(ts.Server, time.Hour)
	h, err := ts.withOIDC(api.NewHandler(&service{s: ts.Server}, ts.logs, api.WithTokens(&tokens{s: ts.Server}), api.WithUsers(people)), people)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = api.Guard(h, api.GuardOptions{CSRF: api.CheckCSRF})
	srv.Start()
	t.Cleanup(srv.Close)
	return &oidcEnv{ts: ts, p: p, url: base}
}

func newJarClient(t *testing.T, follow bool) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Jar: jar, Transport: tr}
	if !follow {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return c
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestOIDCLogin signs in through the provider with a browser-like client
// that follows the redirects: it ends at / with a session that reads runs
// as a viewer and is refused an admin route and an operator's action.
func TestOIDCLogin(t *testing.T) {
	e := newOIDCEnv(t)
	e.p.as("alice", "readers", "unrelated")
	c := newJarClient(t, true)
	resp, body := get(t, c, e.url+OIDCLoginPath)
	if resp.Request.URL.Path != "/" {
		t.Fatalf("the login ended at %s (%d %s), want /", resp.Request.URL, resp.StatusCode, body)
	}
	base, _ := url.Parse(e.url)
	var session *http.Cookie
	for _, ck := range c.Jar.Cookies(base) {
		if ck.Name == api.SessionCookie {
			session = ck
		}
	}
	if session == nil {
		t.Fatal("no session cookie after the login")
	}
	// The web UI reads the CSRF token from its cookie: the redirect had no
	// answer to carry it.
	csrf := ""
	for _, ck := range c.Jar.Cookies(base) {
		if ck.Name == api.CSRFCookie {
			csrf = ck.Value
		}
	}
	if csrf != api.CSRFToken(session.Value) {
		t.Errorf("CSRF cookie %q, want the session's token", csrf)
	}
	if resp, body := get(t, c, e.url+api.Prefix+"/runs"); resp.StatusCode != 200 {
		t.Errorf("a viewer's session reading runs: %d %s", resp.StatusCode, body)
	}
	if resp, body := get(t, c, e.url+api.Prefix+"/users"); resp.StatusCode != 403 {
		t.Errorf("a viewer's session on an admin route: %d %s", resp.StatusCode, body)
	}
	req, _ := http.NewRequest("POST", e.url+api.Prefix+"/pipelines/p/runs", strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.CSRFHeader, api.CSRFToken(session.Value))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("a viewer's session triggering: %d", resp.StatusCode)
	}
	u, err := e.ts.store.User(t.Context(), "oidc:alice")
	if err != nil || u.Role != "viewer" || u.PasswordHash != "" {
		t.Errorf("the single sign-on user: %+v, %v", u, err)
	}
	// Without a password, the user cannot log in with one.
	if _, err := newUsers(e.ts.Server, time.Hour).Login(t.Context(), api.LoginRequest{User: "oidc:alice", Password: ""}, "127.0.0.1"); err == nil {
		t.Error("a single sign-on user logged in with an empty password")
	}

	// Moved to another group: the next login has the new role.
	e.p.as("alice", "ops")
	get(t, c, e.url+OIDCLoginPath)
	if u, _ := e.ts.store.User(t.Context(), "oidc:alice"); u.Role != "operator" {
		t.Errorf("after the groups changed: role %s, want operator", u.Role)
	}
}

// TestOIDCRefusals checks that the callback refuses a forged state, an ID
// token with another nonce, a person none of whose groups has a role, and
// a callback without the login's cookie; none of them opens a session.
func TestOIDCRefusals(t *testing.T) {
	e := newOIDCEnv(t)
	// begin starts a login and returns the callback URL the provider
	// answered, with the client holding the flow cookie.
	begin := func(c *http.Client) *url.URL {
		t.Helper()
		resp, body := get(t, c, e.url+OIDCLoginPath)
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("login: %d %s", resp.StatusCode, body)
		}
		resp, body = get(t, c, resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("provider: %d %s", resp.StatusCode, body)
		}
		back, err := url.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		return back
	}
	noSession := func(name string, c *http.Client) {
		t.Helper()
		base, _ := url.Parse(e.url)
		for _, ck := range c.Jar.Cookies(base) {
			if ck.Name == api.SessionCookie {
				t.Errorf("%s: a session cookie was set", name)
			}
		}
	}

	e.p.as("mallory", "readers")
	c := newJarClient(t, false)
	back := begin(c)
	q := back.Query()
	q.Set("state", "forged")
	back.RawQuery = q.Encode()
	if resp, body := get(t, c, back.String()); resp.StatusCode != 403 || !strings.Contains(body, "state does not match") {
		t.Errorf("forged state: %d %s", resp.StatusCode, body)
	}
	noSession("forged state", c)

	e.p.mu.Lock()
	e.p.badNonce = true
	e.p.mu.Unlock()
	c = newJarClient(t, false)
	if resp, body := get(t, c, begin(c).String()); resp.StatusCode != 403 || !strings.Contains(body, "nonce") {
		t.Errorf("wrong nonce: %d %s", resp.StatusCode, body)
	}
	noSession("wrong nonce", c)
	e.p.mu.Lock()
	e.p.badNonce = false
	e.p.mu.Unlock()

	e.p.as("nobody", "guests")
	c = newJarClient(t, false)
	if resp, body := get(t, c, begin(c).String()); resp.StatusCode != 403 || !strings.Contains(body, "no role") {
		t.Errorf("no mapped group: %d %s", resp.StatusCode, body)
	}
	noSession("no mapped group", c)
	if _, err := e.ts.store.User(t.Context(), "oidc:nobody"); err == nil {
		t.Error("a person without a role was made a user")
	}

	// Another browser cannot finish a login it did not start.
	e.p.as("alice", "readers")
	back = begin(newJarClient(t, false))
	c = newJarClient(t, false)
	if resp, body := get(t, c, back.String()); resp.StatusCode != 403 || !strings.Contains(body, "no login in progress") {
		t.Errorf("callback without the flow cookie: %d %s", resp.StatusCode, body)
	}
	noSession("no flow cookie", c)

	// An expired login.
	c = newJarClient(t, false)
	back = begin(c)
	e.ts.clock.Set(e.ts.clock.Now().Add(oidcFlowTTL + time.Second))
	if resp, body := get(t, c, back.String()); resp.StatusCode != 403 || !strings.Contains(body, "expired") {
		t.Errorf("expired login: %d %s", resp.StatusCode, body)
	}
}

// TestOIDCConfig reads the single sign-on settings from a configuration
// file and the client secret from its file, and refuses incomplete or
// wrong settings at start.
func TestOIDCConfig(t *testing.T) {
	dir := t.TempDir()
	secretFile := dir + "/oidc-secret"
	write(t, secretFile, "s3cret-from-file\n")
	cfgFile := dir + "/server.yaml"
	write(t, cfgFile, "oidc_issuer: https://id.example.com\noidc_client_id: tasuki\noidc_client_secret_file: "+secretFile+
		"\noidc_redirect_url: https://tasuki.example.com/auth/oidc/callback\noidc_role_claim: roles\noidc_roles: {data-eng: operator, sre: admin}\nsession_ttl: 8h\n")
	cfg := DefaultConfig()
	if err := LoadConfigFile(&cfg, cfgFile); err != nil {
		t.Fatal(err)
	}
	want := OIDCConfig{Issuer: "https://id.example.com", ClientID: "tasuki", ClientSecretFile: secretFile,
		RedirectURL: "https://tasuki.example.com/auth/oidc/callback", RoleClaim: "roles", Roles: map[string]string{"data-eng": "operator", "sre": "admin"}}
	if fmt.Sprint(cfg.OIDC) != fmt.Sprint(want) || cfg.SessionTTL.D() != 8*time.Hour {
		t.Errorf("read %+v, session_ttl %s; want %+v, 8h", cfg.OIDC, cfg.SessionTTL.D(), want)
	}
	if err := ApplyEnv(&cfg, func(k string) (string, bool) {
		v, ok := map[string]string{"TASUKI_OIDC_CLIENT_SECRET": "from-env"}[k]
		return v, ok
	}); err != nil || cfg.OIDC.ClientSecret != "from-env" {
		t.Errorf("TASUKI_OIDC_CLIENT_SECRET: %q, %v", cfg.OIDC.ClientSecret, err)
	}

	ts := newTestServer(t, t.TempDir(), t.TempDir(), time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	u := newUsers(ts.Server, 0)
	ts.cfg.OIDC = want
	h, err := ts.withOIDC(http.NotFoundHandler(), u)
	if err != nil {
		t.Fatal(err)
	}
	if o := h.(*http.ServeMux); o == nil {
		t.Fatal("no OIDC routes")
	}
	for _, bad := range []OIDCConfig{
		{Issuer: "https://id.example.com", RedirectURL: "https://x/cb"},
		{Issuer: "https://id.example.com", ClientID: "c"},
		{Issuer: "https://id.example.com", ClientID: "c", RedirectURL: "https://x/cb", Roles: map[string]string{"g": "root"}},
		{Issuer: "https://id.example.com", ClientID: "c", RedirectURL: "https://x/cb", ClientSecretFile: dir + "/missing"},
	} {
		ts.cfg.OIDC = bad
		if _, err := ts.withOIDC(http.NotFoundHandler(), u); err == nil {
			t.Errorf("withOIDC(%+v) accepted", bad)
		}
	}
	ts.cfg.OIDC = OIDCConfig{}
	if h, err := ts.withOIDC(http.NotFoundHandler(), u); err != nil || fmt.Sprintf("%T", h) == "*http.ServeMux" {
		t.Errorf("without oidc_issuer: %T, %v; want the API handler alone", h, err)
	}
}

// TestOIDCUserIsTheSubject: the user a single sign-on acts as is named after
// the token's subject, never after preferred_username or email, which a
// person may set to someone else's name at many providers.
func TestOIDCUserIsTheSubject(t *testing.T) {
	o := &oidcLogin{cfg: OIDCConfig{RoleClaim: "groups", Roles: map[string]string{"ops": "operator"}}}
	name, role, err := o.identifyClaims("248289761001", map[string]any{"preferred_username": "alice", "email": "alice@example.com", "groups": []any{"ops"}})
	if err != nil || name != OIDCUserPrefix+"248289761001" || role != api.RoleOperator {
		t.Errorf("identify = %q %q %v, want %q operator", name, role, err, OIDCUserPrefix+"248289761001")
	}
	if _, _, err := o.identifyClaims("", map[string]any{"preferred_username": "alice", "groups": []any{"ops"}}); err == nil {
		t.Error("a token without a subject was accepted")
	}
}

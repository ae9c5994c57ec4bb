package api_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
)

// created answers 201 to whatever reaches it, as the token route did to the
// cross-site request of issue 8: the guard alone must refuse what it
// refuses.
var created = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/missing" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, `{"ok":true}`)
})

type guardCase struct {
	name   string
	method string
	path   string
	host   string // "" is the address the test server listens on
	header map[string]string
	body   string
	want   int
	code   string // the error code of a refusal
}

// checkSecurityHeaders fails unless resp carries every security header
// exactly once.
func checkSecurityHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	for k, v := range api.SecurityHeaders {
		if got := resp.Header.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s %s: header %s = %q, want %q once", resp.Request.Method, resp.Request.URL.Path, k, got, v)
		}
	}
}

func doGuard(t *testing.T, base string, c guardCase) (*http.Response, []byte) {
	t.Helper()
	method := c.method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(method, base+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.host != "" {
		req.Host = c.host
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestGuard sends requests a browser could be made to send (cross-site
// forms and fetches, DNS rebinding) and those the CLI and workers send,
// over real HTTP, and checks who gets through.
func TestGuard(t *testing.T) {
	srv := httptest.NewServer(api.Guard(created, api.GuardOptions{
		AllowedHosts: []string{"tasuki.example.com", "pinned.example.com:9443"},
		CORSOrigins:  []string{"https://ui.example.com"},
	}))
	defer srv.Close()
	self := srv.URL // http://127.0.0.1:PORT
	port := strings.TrimPrefix(self, "http://127.0.0.1:")
	jsonCT := map[string]string{"Content-Type": "application/json"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []guardCase{
		// Issue 8's request: text/plain from another site.
		{name: "csrf text/plain from evil", method: "POST", path: "/api/v1/tokens", body: `{"name":"x"}`,
			header: with("Content-Type", "text/plain", "Origin", "http://evil.example"), want: 403, code: api.CodeForbidden},
		{name: "csrf json from evil", method: "POST", path: "/api/v1/tokens", body: `{"name":"x"}`,
			header: with("Content-Type", "application/json", "Origin", "http://evil.example"), want: 403, code: api.CodeForbidden},
		{name: "csrf body-less no-cors fetch", method: "POST", path: "/api/v1/runs/1/cancel",
			header: with("Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site"), want: 403, code: api.CodeForbidden},
		{name: "csrf delete from a sandboxed page", method: "DELETE", path: "/api/v1/tokens/w1",
			header: with("Origin", "null"), want: 403, code: api.CodeForbidden},
		{name: "same-site is not same-origin", method: "POST", path: "/api/v1/runs/1/cancel",
			header: with("Sec-Fetch-Site", "same-site"), want: 403, code: api.CodeForbidden},
		{name: "another port of localhost is another origin", method: "POST", path: "/api/v1/runs/1/cancel",
			header: with("Origin", "http://127.0.0.1:3000"), want: 403, code: api.CodeForbidden},
		{name: "a form post", method: "POST", path: "/api/v1/pipelines/p/runs", body: "a=1",
			header: with("Content-Type", "application/x-www-form-urlencoded"), want: 415, code: api.CodeUnsupportedMediaType},
		{name: "text/plain without origin", method: "POST", path: "/api/v1/tokens", body: `{"name":"x"}`,
			header: with("Content-Type", "text/plain"), want: 415, code: api.CodeUnsupportedMediaType},
		{name: "a body without a type", method: "POST", path: "/api/v1/tokens", body: `{"name":"x"}`, want: 415, code: api.CodeUnsupportedMediaType},
		{name: "octet-stream off the log route", method: "POST", path: "/api/v1/tokens", body: `{}`,
			header: with("Content-Type", "application/octet-stream"), want: 415, code: api.CodeUnsupportedMediaType},
		// DNS rebinding: evil.example now resolves to 127.0.0.1.
		{name: "rebinding read", path: "/api/v1/runs", host: "evil.example:" + port, want: 403, code: api.CodeForbidden},
		{name: "rebinding same-origin post", method: "POST", path: "/api/v1/tokens", host: "evil.example:" + port, body: `{}`,
			header: with("Content-Type", "application/json", "Origin", "http://evil.example:"+port, "Sec-Fetch-Site", "same-origin"), want: 403, code: api.CodeForbidden},
		{name: "a subdomain of an allowed host", path: "/api/v1/runs", host: "evil.tasuki.example.com", want: 403, code: api.CodeForbidden},
		{name: "an allowed host on another port", path: "/api/v1/runs", host: "pinned.example.com:8080", want: 403, code: api.CodeForbidden},

		// What the CLI, workers, probes and the server's own pages send.
		{name: "the Go client", method: "POST", path: "/api/v1/tokens", body: `{"name":"x"}`, header: jsonCT, want: 201},
		{name: "a body-less post", method: "POST", path: "/api/v1/runs/1/cancel", want: 201},
		{name: "json with charset", method: "POST", path: "/api/v1/tokens", body: `{}`,
			header: with("Content-Type", "application/json; charset=utf-8"), want: 201},
		{name: "a worker's log upload", method: "POST", path: "/api/v1/worker/leases/l1/log", body: "hello\n",
			header: with("Content-Type", "application/octet-stream"), want: 201},
		{name: "same-origin page", method: "POST", path: "/api/v1/tokens", body: `{}`,
			header: with("Content-Type", "application/json", "Origin", self, "Sec-Fetch-Site", "same-origin"), want: 201},
		{name: "typed by the user", method: "DELETE", path: "/api/v1/tokens/w1", header: with("Sec-Fetch-Site", "none"), want: 201},
		{name: "localhost", path: "/api/v1/runs", host: "localhost:" + port, want: 201},
		{name: "LOCALHOST.", path: "/api/v1/runs", host: "LOCALHOST.:" + port, want: 201},
		{name: "ipv6 loopback", path: "/api/v1/runs", host: "[::1]:" + port, want: 201},
		{name: "a LAN address", path: "/api/v1/runs", host: "10.0.0.5:8080", want: 201},
		{name: "an allowed host", path: "/api/v1/runs", host: "Tasuki.Example.COM", want: 201},
		{name: "an allowed host behind a TLS proxy", method: "POST", path: "/api/v1/tokens", host: "tasuki.example.com", body: `{}`,
			header: with("Content-Type", "application/json", "Origin", "https://tasuki.example.com"), want: 201},
		{name: "an allowed host on its port", path: "/api/v1/runs", host: "pinned.example.com:9443", want: 201},
		{name: "a configured CORS origin", method: "POST", path: "/api/v1/tokens", body: `{}`,
			header: with("Content-Type", "application/json", "Origin", "https://ui.example.com", "Sec-Fetch-Site", "cross-site"), want: 201},
		{name: "a cross-site read (the browser keeps the answer from the page)", path: "/api/v1/runs",
			header: with("Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site"), want: 201},
		{name: "a 404 passes through", path: "/missing", want: 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := doGuard(t, self, c)
			if resp.StatusCode != c.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.want, body)
			}
			checkSecurityHeaders(t, resp)
			if c.code != "" {
				var eb api.ErrorBody
				if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Code != c.code {
					t.Errorf("answer %s: want error code %s", body, c.code)
				}
			}
			if acao := resp.Header.Get("Access-Control-Allow-Origin"); acao != "" && acao != "https://ui.example.com" {
				t.Errorf("Access-Control-Allow-Origin %q for origin %q", acao, c.header["Origin"])
			}
		})
	}
}

// TestGuardCORS checks preflights: answered for a configured origin,
// refused for others, and CORS off entirely without configuration.
func TestGuardCORS(t *testing.T) {
	preflight := func(origin string) map[string]string {
		return map[string]string{"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
	}
	t.Run("configured", func(t *testing.T) {
		srv := httptest.NewServer(api.Guard(created, api.GuardOptions{CORSOrigins: []string{"https://ui.example.com:443"}}))
		defer srv.Close()
		resp, body := doGuard(t, srv.URL, guardCase{method: "OPTIONS", path: "/api/v1/tokens", header: preflight("https://ui.example.com")})
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("preflight: %d %s", resp.StatusCode, body)
		}
		h := resp.Header
		if h.Get("Access-Control-Allow-Origin") != "https://ui.example.com" || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
			!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") || !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Content-Type") ||
			h.Get("Vary") != "Origin" || h.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("preflight headers: %v", h)
		}
		checkSecurityHeaders(t, resp)
		resp, body = doGuard(t, srv.URL, guardCase{method: "OPTIONS", path: "/api/v1/tokens", header: preflight("https://evil.example")})
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from another origin: %d %v %s", resp.StatusCode, resp.Header, body)
		}
		// A read from another origin: no CORS headers, and an answer that
		// caches keep apart from the listed origin's.
		resp, _ = doGuard(t, srv.URL, guardCase{path: "/api/v1/runs", header: map[string]string{"Origin": "https://evil.example"}})
		if resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Vary") != "Origin" {
			t.Errorf("read from another origin: %v", resp.Header)
		}
	})
	t.Run("off", func(t *testing.T) {
		srv := httptest.NewServer(api.Guard(created, api.GuardOptions{}))
		defer srv.Close()
		resp, body := doGuard(t, srv.URL, guardCase{method: "OPTIONS", path: "/api/v1/tokens", header: preflight("https://ui.example.com")})
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight without CORS configured: %d %v %s", resp.StatusCode, resp.Header, body)
		}
		resp, _ = doGuard(t, srv.URL, guardCase{path: "/api/v1/runs", header: map[string]string{"Origin": "https://ui.example.com"}})
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("a read answered with CORS headers while CORS is off: %v", resp.Header)
		}
	})
}

// TestGuardCSRFHook checks the rule left for cookie sessions: a
// state-changing request with cookies goes through opts.CSRF, one without
// does not, and reads never do.
func TestGuardCSRFHook(t *testing.T) {
	var checked []string
	srv := httptest.NewServer(api.Guard(created, api.GuardOptions{CSRF: func(r *http.Request) error {
		checked = append(checked, r.Method)
		if r.Header.Get(api.CSRFHeader) != "good" {
			return errors.New("token missing or wrong")
		}
		return nil
	}}))
	defer srv.Close()
	cookie := func(kv ...string) map[string]string {
		m := map[string]string{"Cookie": "tasuki_session=s1"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, c := range []guardCase{
		{name: "cookie without token", method: "POST", path: "/api/v1/runs/1/cancel", header: cookie(), want: 403},
		{name: "cookie with token", method: "POST", path: "/api/v1/runs/1/cancel", header: cookie(api.CSRFHeader, "good"), want: 201},
		{name: "no cookie", method: "POST", path: "/api/v1/runs/1/cancel", want: 201},
		{name: "a read with a cookie", path: "/api/v1/runs", header: cookie(), want: 201},
	} {
		resp, body := doGuard(t, srv.URL, c)
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d: %s", c.name, resp.StatusCode, c.want, body)
		}
	}
	if strings.Join(checked, ",") != "POST,POST" {
		t.Errorf("CSRF hook called for %v, want the two cookie POSTs", checked)
	}
}

// TestGuardWorkerClientCert runs the guard on TLS with a private CA: with
// WorkerClientCert the worker routes need a verified client certificate,
// the other routes do not.
func TestGuardWorkerClientCert(t *testing.T) {
	pki := apitest.NewPKI(t)
	cert, key, _ := pki.Server("server")
	ccert, ckey, _ := pki.Client("worker")
	pool, err := api.LoadCAFile(pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(api.Guard(created, api.GuardOptions{WorkerClientCert: true}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	defer srv.Close()

	lease := guardCase{method: "POST", path: "/api/v1/worker/lease", body: `{}`, header: map[string]string{"Content-Type": "application/json"}}
	for _, c := range []struct {
		name      string
		tls       api.ClientTLS
		path      string
		want      int
		wantError bool
	}{
		{name: "worker with a client certificate", tls: api.ClientTLS{CAFile: pki.CAFile, CertFile: ccert, KeyFile: ckey}, path: lease.path, want: 201},
		{name: "worker without one", tls: api.ClientTLS{CAFile: pki.CAFile}, path: lease.path, want: 403},
		{name: "a read without one", tls: api.ClientTLS{CAFile: pki.CAFile}, path: "/api/v1/runs", want: 201},
		{name: "a client that does not trust the CA", tls: api.ClientTLS{}, path: "/api/v1/runs", wantError: true},
	} {
		hc, err := c.tls.HTTPClient(nil)
		if err != nil {
			t.Fatal(err)
		}
		method := http.MethodGet
		if c.path == lease.path {
			method = http.MethodPost
		}
		req, _ := http.NewRequest(method, srv.URL+c.path, strings.NewReader(lease.body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if c.wantError {
			var unknown x509.UnknownAuthorityError
			if err == nil || !errors.As(err, &unknown) {
				t.Errorf("%s: %v, want an unknown-authority error", c.name, err)
			}
			if resp != nil {
				resp.Body.Close()
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d: %s", c.name, resp.StatusCode, c.want, body)
		}
		checkSecurityHeaders(t, resp)
	}
}

// TestGuardHeadersThroughProxy checks that a guarded follower forwarding to
// a guarded leader (httputil.ReverseProxy, as internal/server does) answers
// each security header once, and that the leader accepts the Host and
// Origin the follower passes on.
func TestGuardHeadersThroughProxy(t *testing.T) {
	leader := httptest.NewServer(api.Guard(created, api.GuardOptions{AllowedHosts: []string{"tasuki.example.com"}}))
	defer leader.Close()
	u, _ := url.Parse(leader.URL)
	follower := httptest.NewServer(api.Guard(httputil.NewSingleHostReverseProxy(u), api.GuardOptions{AllowedHosts: []string{"tasuki.example.com"}}))
	defer follower.Close()
	resp, body := doGuard(t, follower.URL, guardCase{method: "POST", path: "/api/v1/runs/1/cancel", host: "tasuki.example.com",
		header: map[string]string{"Origin": "http://tasuki.example.com", "Content-Type": "application/json"}, body: "{}"})
	if resp.StatusCode != 201 {
		t.Fatalf("through the follower: %d %s", resp.StatusCode, body)
	}
	checkSecurityHeaders(t, resp)
}

// TestGuardCodeDocumented checks that the OpenAPI document lists the error
// code the guard adds.
func TestGuardCodeDocumented(t *testing.T) {
	rec := httptest.NewRecorder()
	newEnv(t).handler.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/openapi.json", nil))
	if !strings.Contains(rec.Body.String(), `"`+api.CodeUnsupportedMediaType+`"`) {
		t.Errorf("openapi.json does not list the error code %s", api.CodeUnsupportedMediaType)
	}
}

// TestGuardLogsRefusals checks that a request the guard refuses leaves a
// trace in the server's log: it never reaches authentication, so the audit
// log cannot hold it, and a CSRF or DNS-rebinding attempt must not go
// unnoticed.
func TestGuardLogsRefusals(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	srv := httptest.NewServer(api.Guard(created, api.GuardOptions{Logger: logger}))
	defer srv.Close()
	resp, body := doGuard(t, srv.URL, guardCase{name: "cross-site", method: "POST", path: "/api/v1/tokens",
		header: map[string]string{"Origin": "http://evil.example", "Content-Type": "application/json"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site POST: %d %s", resp.StatusCode, body)
	}
	got := buf.String()
	for _, want := range []string{"level=WARN", "request refused before authentication", "path=/api/v1/tokens", "origin=http://evil.example", "status=403"} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
	buf.Reset()
	if resp, body := doGuard(t, srv.URL, guardCase{name: "a read", path: "/api/v1/runs"}); resp.StatusCode != 201 {
		t.Fatalf("allowed read: %d %s", resp.StatusCode, body)
	}
	if buf.Len() != 0 {
		t.Errorf("an allowed request was logged:\n%s", buf.String())
	}
}

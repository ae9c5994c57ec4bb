package server_test

// Tests of a real server process on the network: what a browser can be
// made to send to it (issue 8), TLS with a private CA, mutual TLS for
// workers, certificate reloads, and the refusal to serve a network in
// clear.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/server"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
)

// rawRequest sends one request as a browser or curl would, and returns the
// answer with its body read.
func rawRequest(t *testing.T, hc *http.Client, method, url, host, body string, header map[string]string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestNetworkBrowserCannotDriveServer sends a real server the requests of
// issue 8: the cross-site token request that answered 201, a DNS-rebinding
// read and write, and a text/plain body; and checks the security headers on
// every kind of answer.
func TestNetworkBrowserCannotDriveServer(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "hello.yaml", "name: hello\ntasks:\n  - {id: greet, run: 'echo hi'}\n")
	s := startServer(t, t.TempDir(), dir, nil)
	port := s.url[strings.LastIndexByte(s.url, ':')+1:]
	hc := &http.Client{}
	cases := []struct {
		name, method, path, host, body string
		header                         map[string]string
		want                           int
		code                           string
	}{
		{name: "issue 8: cross-site token request", method: "POST", path: "/api/v1/tokens", body: `{"name":"x"}`,
			header: map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}, want: 403, code: api.CodeForbidden},
		{name: "rebinding: read the runs", method: "GET", path: "/api/v1/runs", host: "evil.example:" + port, want: 403, code: api.CodeForbidden},
		{name: "rebinding: trigger from the rebound page", method: "POST", path: "/api/v1/pipelines/hello/runs", host: "evil.example:" + port, body: `{}`,
			header: map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example:" + port, "Sec-Fetch-Site": "same-origin"}, want: 403, code: api.CodeForbidden},
		{name: "text/plain without an origin", method: "POST", path: "/api/v1/pipelines/hello/runs", body: `{}`,
			header: map[string]string{"Content-Type": "text/plain"}, want: 415, code: api.CodeUnsupportedMediaType},
		{name: "no such route", method: "GET", path: "/api/v1/nothing", want: 404, code: api.CodeNotFound},
		{name: "health", method: "GET", path: "/api/v1/health", want: 200},
		{name: "health by name", method: "GET", path: "/api/v1/health", host: "localhost:" + port, want: 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := rawRequest(t, hc, c.method, s.url+c.path, c.host, c.body, c.header)
			if resp.StatusCode != c.want {
				t.Fatalf("%d, want %d: %s", resp.StatusCode, c.want, body)
			}
			for k, v := range api.SecurityHeaders {
				if got := resp.Header.Values(k); len(got) != 1 || got[0] != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if c.code != "" {
				var eb api.ErrorBody
				if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Error.Code != c.code {
					t.Errorf("answer %s: want code %s", body, c.code)
				}
			}
		})
	}
	// The CLI still drives the server (no Origin; Host 127.0.0.1:PORT).
	run, err := s.c.Trigger(context.Background(), "hello", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if got := waitRunEnd(t, s.c, run.ID); got.State != engine.RunSucceeded {
		t.Fatalf("run %d: %s", run.ID, got.State)
	}
}

// startTLSServer starts a server with extra arguments and waits until it
// says it listens on https://127.0.0.1:PORT.
func startTLSServer(t *testing.T, pipelines string, args ...string) (*proc, string) {
	t.Helper()
	home := t.TempDir()
	argv := append([]string{"server", "--home", home, "--pipelines", pipelines, "--addr", "127.0.0.1:0"}, args...)
	p := spawn(t, "tls server "+filepath.Base(home), home, nil, argv...)
	line := p.waitLine("tasuki server listening on ", 30*time.Second)
	u, _, _ := strings.Cut(strings.TrimPrefix(line, "tasuki server listening on "), " ")
	if !strings.HasPrefix(u, "https://127.0.0.1:") {
		t.Fatalf("listening on %q: want https://127.0.0.1:PORT", u)
	}
	// The first server of a store leaves its admin token in its data
	// directory; cliAt sends it. Servers sharing that store share it.
	if b, err := os.ReadFile(filepath.Join(home, "admin.token")); err == nil {
		serverTokens.Store(u, strings.TrimSpace(string(b)))
	}
	return p, u
}

// TestNetworkTLSWorkerMutual runs a server with TLS from a private CA that
// requires client certificates of workers: a worker trusting the CA with a
// client certificate runs a task; a client with a valid token but no
// certificate is refused on the worker routes; a client that does not
// trust the CA cannot talk to the server at all.
func TestNetworkTLSWorkerMutual(t *testing.T) {
	pki := apitest.NewPKI(t)
	cert, key, _ := pki.Server("server")
	wcert, wkey, _ := pki.Client("worker")
	dir := t.TempDir()
	writeFile(t, dir, "env.yaml", "name: env\ntasks:\n  - {id: show, run: 'echo \"ran on $W\"'}\n")
	_, url := startTLSServer(t, dir, "--workers", "0", "--tls-cert", cert, "--tls-key", key, "--client-ca", pki.CAFile)

	// Without the CA, the CLI cannot verify the server.
	r := cliAt(t, url, "runs")
	if r.code == 0 || !strings.Contains(r.errOut, "certificate") {
		t.Errorf("tasuki runs without --ca: exit %d\n%s", r.code, r.errOut)
	}
	if r := cliAt(t, url, "runs", "--ca", pki.CAFile); r.code != 0 {
		t.Errorf("tasuki runs --ca: exit %d\n%s", r.code, r.errOut)
	}
	// The in-process CLI reads $TASUKI_CA; the processes started here do
	// not inherit it (serverEnv) and are given --ca.
	t.Setenv("TASUKI_CA", pki.CAFile)
	token, tokenFile := createToken(t, url, "w1")
	startWorker(t, url, tokenFile, "mtls", nil, "--ca", pki.CAFile, "--cert", wcert, "--key", wkey)
	hc, err := api.ClientTLS{CAFile: pki.CAFile}.HTTPClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := api.NewClient(url, hc)
	if err != nil {
		t.Fatal(err)
	}
	admin, _ := serverTokens.Load(url)
	c = c.WithToken(admin.(string))
	run, err := c.Trigger(context.Background(), "env", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if got := waitRunEnd(t, c, run.ID); got.State != engine.RunSucceeded {
		t.Fatalf("run %d on the worker: %s", run.ID, got.State)
	}
	if log := runLog(t, c, run.ID, "show"); !strings.Contains(log, "ran on mtls") {
		t.Errorf("log of the task: %q", log)
	}

	// The token alone is not enough on the worker routes.
	_, err = c.WithToken(token).Lease(context.Background(), api.LeaseRequest{Worker: "thief", Free: 1})
	var e *api.Error
	if !errors.As(err, &e) || e.Status != http.StatusForbidden || !strings.Contains(e.Message, "client certificate") {
		t.Errorf("lease without a client certificate: %v, want 403 asking for one", err)
	}
}

// serverSerial connects to the server at url as a new TLS client and
// returns the serial number of the certificate it presents.
func serverSerial(t *testing.T, url string, roots *x509.CertPool) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(url, "https://"), &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestNetworkCertificateReload replaces the server's certificate files
// while it runs: the next connection gets the new certificate, and a
// replacement that does not load leaves the previous one in use.
func TestNetworkCertificateReload(t *testing.T) {
	pki := apitest.NewPKI(t)
	cert, key, first := pki.Server("server")
	p, url := startTLSServer(t, t.TempDir(), "--tls-cert", cert, "--tls-key", key)
	roots, err := api.LoadCAFile(pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := serverSerial(t, url, roots); got != first {
		t.Fatalf("serial %d, want %d", got, first)
	}
	_, _, second := pki.Server("server") // renames new files into place
	if got := serverSerial(t, url, roots); got != second {
		t.Fatalf("after the files were replaced: serial %d, want %d", got, second)
	}
	p.waitLine("TLS certificate reloaded", 10*time.Second)

	// A certificate that is not one: the server keeps the last good pair.
	if err := os.WriteFile(cert+".tmp", []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(cert+".tmp", cert); err != nil {
		t.Fatal(err)
	}
	if got := serverSerial(t, url, roots); got != second {
		t.Fatalf("after a broken replacement: serial %d, want %d", got, second)
	}
	p.waitLine("TLS certificate changed but does not load", 10*time.Second)
}

// TestNetworkRefusesCleartext checks that a server asked to listen beyond
// loopback without TLS refuses to start unless --insecure-network accepts
// the risk, in which case it warns; and that wrong TLS settings are usage
// errors.
func TestNetworkRefusesCleartext(t *testing.T) {
	dir := t.TempDir()
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		home := t.TempDir()
		code, _, stderr := runCLI(t, nil, "server", "--home", home, "--pipelines", dir, "--addr", addr)
		if code == 0 || !strings.Contains(stderr, "refusing to listen on "+addr) || !strings.Contains(stderr, "without TLS") || !strings.Contains(stderr, "--insecure-network") {
			t.Errorf("server on %s without TLS: exit %d\n%s", addr, code, stderr)
		}
		// Refused before anything was made: no store, no admin token.
		if entries, _ := os.ReadDir(home); len(entries) != 0 {
			t.Errorf("a start refused for %s left %v in the data directory", addr, entries)
		}
	}
	p := spawn(t, "insecure server", dir, nil, "server", "--home", t.TempDir(), "--pipelines", dir, "--addr", "0.0.0.0:0", "--insecure-network")
	p.waitLine("INSECURE: listening on a network address without TLS", 30*time.Second)
	p.waitLine("tasuki server listening on http://", 30*time.Second)

	pki := apitest.NewPKI(t)
	cert, key, _ := pki.Server("server")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", cert}, "tls_cert and tls_key: give both"},
		{[]string{"--client-ca", pki.CAFile}, "client_ca: client certificates need TLS"},
		{[]string{"--tls-cert", cert, "--tls-key", cert}, "load TLS certificate"},
		{[]string{"--tls-cert", cert, "--tls-key", key, "--client-ca", key}, "no PEM certificate"},
		{[]string{"--tls-cert", cert, "--tls-key", key, "--client-ca", pki.CAFile, "--client-auth", "some"}, `client_auth "some"`},
		{[]string{"--cors-origins", "ui.example.com"}, "cors_origins \"ui.example.com\": expected an origin"},
		{[]string{"--allowed-hosts", "*.example.com"}, "allowed_hosts \"*.example.com\""},
	} {
		args := append([]string{"server", "--home", t.TempDir(), "--pipelines", dir, "--addr", "127.0.0.1:0"}, c.args...)
		code, _, stderr := runCLI(t, nil, args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, want 2 saying %q\n%s", c.args, code, c.want, stderr)
		}
	}
	// The same settings from the environment.
	code, _, stderr := runCLI(t, []string{"TASUKI_TLS_CERT=" + cert, "TASUKI_INSECURE_NETWORK=maybe"}, "server", "--home", t.TempDir(), "--pipelines", dir)
	if code != 2 || !strings.Contains(stderr, "TASUKI_INSECURE_NETWORK") {
		t.Errorf("bad environment: exit %d\n%s", code, stderr)
	}
}

// TestNetworkFollowerForwardsOverMutualTLS runs two servers on one
// PostgreSQL store, both with TLS from a private CA and client
// certificates required of workers. A worker talks to the follower, which
// forwards the worker protocol to the leader over TLS, trusting the CA
// (--ca) and presenting its own certificate; the leader accepts the Host
// the worker used.
func TestNetworkFollowerForwardsOverMutualTLS(t *testing.T) {
	dsn := pgtest.DSN(t)
	pki := apitest.NewPKI(t)
	dir := t.TempDir()
	writeFile(t, dir, "env.yaml", "name: env\ntasks:\n  - {id: show, run: 'echo \"ran on $W\"'}\n")
	tlsArgs := func(name string) []string {
		cert, key, _ := pki.Server(name)
		return []string{"--db", dsn, "--workers", "0", "--tls-cert", cert, "--tls-key", key, "--client-ca", pki.CAFile, "--ca", pki.CAFile}
	}
	leader, leaderURL := startTLSServer(t, dir, tlsArgs("leader")...)
	leader.waitLine("leading:", 10*time.Second)
	follower, url := startTLSServer(t, dir, tlsArgs("follower")...)
	follower.waitLine("following:", 10*time.Second)
	admin, ok := serverTokens.Load(leaderURL)
	if !ok {
		t.Fatal("the first server of the store left no admin token")
	}
	serverTokens.Store(url, admin)

	t.Setenv("TASUKI_CA", pki.CAFile)
	_, tokenFile := createToken(t, url, "w1")
	wcert, wkey, _ := pki.Client("worker")
	startWorker(t, url, tokenFile, "via-follower", nil, "--ca", pki.CAFile, "--cert", wcert, "--key", wkey)
	hc, err := api.ClientTLS{CAFile: pki.CAFile}.HTTPClient(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := api.NewClient(url, hc)
	if err != nil {
		t.Fatal(err)
	}
	c = c.WithToken(admin.(string))
	run, err := c.Trigger(context.Background(), "env", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if got := waitRunEnd(t, c, run.ID); got.State != engine.RunSucceeded {
		t.Fatalf("run %d through the follower: %s", run.ID, got.State)
	}
	if log := runLog(t, c, run.ID, "show"); !strings.Contains(log, "ran on via-follower") {
		t.Errorf("log of the task, read through the follower: %q", log)
	}
}

// TestConfigTransportEnv reads the transport settings from the
// environment and checks them together.
func TestConfigTransportEnv(t *testing.T) {
	env := map[string]string{
		"TASUKI_TLS_CERT": "/c.pem", "TASUKI_TLS_KEY": "/k.pem", "TASUKI_CLIENT_CA": "/ca.pem", "TASUKI_CLIENT_AUTH": "all",
		"TASUKI_CA": "/lead-ca.pem", "TASUKI_ALLOWED_HOSTS": " tasuki.internal, ,tasuki:8443", "TASUKI_CORS_ORIGINS": "https://ui.example.com",
		"TASUKI_INSECURE_NETWORK": "true",
	}
	cfg := server.DefaultConfig()
	if err := server.ApplyEnv(&cfg, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if cfg.TLSCert != "/c.pem" || cfg.TLSKey != "/k.pem" || cfg.ClientCA != "/ca.pem" || cfg.ClientAuth != "all" || cfg.CA != "/lead-ca.pem" ||
		strings.Join(cfg.AllowedHosts, "|") != "tasuki.internal|tasuki:8443" || strings.Join(cfg.CORSOrigins, "|") != "https://ui.example.com" || !cfg.InsecureNetwork {
		t.Errorf("config from the environment: %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid settings: %v", err)
	}
	cfg.ClientAuth, cfg.ClientCA = "workers", ""
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "client_auth: needs client_ca") {
		t.Errorf("client_auth without client_ca: %v", err)
	}
}

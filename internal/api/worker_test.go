package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/shell"
)

// workerEnv is a handler with the worker routes over fakes, one valid
// token and one revoked one.
type workerEnv struct {
	workers *apitest.Workers
	tokens  *apitest.Tokens
	handler http.Handler
	logged  *syncBuffer
	secret  string // valid, named w1
	revoked string // the secret of a revoked token
	admin   string // an admin API token, for token management
}

func newWorkerEnv(t *testing.T) *workerEnv {
	t.Helper()
	e := &workerEnv{workers: apitest.NewWorkers(), tokens: apitest.NewTokens(), logged: &syncBuffer{}}
	e.secret = e.tokens.Add("w1")
	e.revoked = e.tokens.Add("old")
	e.admin = e.tokens.AddAPI("root", api.RoleAdmin, "")
	if err := e.tokens.RevokeToken(context.Background(), "old", "test"); err != nil {
		t.Fatal(err)
	}
	e.handler = api.NewHandler(apitest.NewSeeded(), logs.NewFiles(t.TempDir()),
		api.WithLogger(slog.New(slog.NewTextHandler(e.logged, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		api.WithWorkers(e.workers, e.tokens))
	return e
}

// request is one request to the handler in process.
type request struct {
	method, path, body string
	header             map[string]string
	remote             string // RemoteAddr; default 192.0.2.1:1234 (not loopback)
}

func serve(h http.Handler, rq request) (*http.Response, []byte) {
	var rd io.Reader
	if rq.body != "" {
		rd = strings.NewReader(rq.body)
	}
	req := httptest.NewRequest(rq.method, api.Prefix+rq.path, rd)
	if rq.remote != "" {
		req.RemoteAddr = rq.remote
	}
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func bearer(secret string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + secret}
}

// errorCode reads the code of an error answer ("" if it is not one).
func errorCode(b []byte) string {
	var eb api.ErrorBody
	_ = json.Unmarshal(b, &eb)
	return eb.Error.Code
}

const localhost = "127.0.0.1:40000"

// TestWorkerRoutesUnavailable checks that a handler without WithWorkers
// answers the worker routes with 503 JSON, whatever is sent, and everything
// else but /health and /ready with 401.
func TestWorkerRoutesUnavailable(t *testing.T) {
	h := api.NewHandler(apitest.NewSeeded(), nil, api.WithLogger(slog.New(slog.DiscardHandler)))
	for _, rq := range []request{
		{method: "POST", path: "/worker/lease", body: `{"worker":"w","free":1}`},
		{method: "POST", path: "/worker/heartbeat", body: `{}`, header: bearer("x")},
		{method: "POST", path: "/worker/leases/1.a.1/log?offset=0"},
		{method: "POST", path: "/worker/leases/1.a.1/complete"},
	} {
		resp, b := serve(h, rq)
		if resp.StatusCode != 503 || errorCode(b) != api.CodeUnavailable || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %s", rq.method, rq.path, resp.StatusCode, b)
		}
	}
	// Without Tokens no credential is valid: the rest of the API is closed.
	for _, rq := range []request{
		{method: "POST", path: "/tokens", body: `{"name":"w1"}`, remote: localhost},
		{method: "GET", path: "/runs", remote: localhost, header: bearer("x")},
	} {
		resp, b := serve(h, rq)
		if resp.StatusCode != 401 || errorCode(b) != api.CodeUnauthorized {
			t.Errorf("%s %s: %d %s", rq.method, rq.path, resp.StatusCode, b)
		}
	}
}

// TestWorkerRoutes sends the worker routes good and bad requests and checks
// status, error code, and what the Workers fake was given.
func TestWorkerRoutes(t *testing.T) {
	lease := api.Lease{ID: "7.load.2", RunID: 7, Pipeline: "p", Task: "load", Attempt: 2,
		Spec:           attempt.Spec{Kind: "shell", Body: json.RawMessage(`{"shell":"echo hi"}`), Env: map[string]string{"A": "1"}, Timeout: attempt.Duration(time.Minute)},
		HeartbeatEvery: api.Duration(time.Second), LeaseTimeout: api.Duration(5 * time.Second)}
	type tc struct {
		name   string
		rq     request
		setup  func(e *workerEnv)
		status int
		code   string
		check  func(t *testing.T, e *workerEnv, b []byte)
	}
	leaseBody := `{"worker":"host:1","labels":["gpu"],"free":2}`
	held := func(e *workerEnv) {
		e.workers.Add(lease)
		if _, err := e.workers.Lease(context.Background(), api.LeaseRequest{Worker: "host:1", Free: 1}); err != nil {
			panic(err)
		}
	}
	cases := []tc{
		// Authentication.
		{name: "no token", rq: request{method: "POST", path: "/worker/lease", body: leaseBody}, status: 401, code: api.CodeUnauthorized},
		{name: "basic auth", rq: request{method: "POST", path: "/worker/lease", body: leaseBody, header: map[string]string{"Authorization": "Basic dzE6eA=="}},
			status: 401, code: api.CodeUnauthorized},
		{name: "empty bearer", rq: request{method: "POST", path: "/worker/lease", body: leaseBody, header: map[string]string{"Authorization": "Bearer "}},
			status: 401, code: api.CodeUnauthorized},
		{name: "wrong token", rq: request{method: "POST", path: "/worker/lease", body: leaseBody, header: bearer("tsk_wrong-secret")},
			status: 401, code: api.CodeUnauthorized},
		{name: "token on the log route", rq: request{method: "POST", path: "/worker/leases/7.load.2/log?offset=0", body: "x", header: bearer("nope")},
			status: 401, code: api.CodeUnauthorized},
		{name: "token on complete", rq: request{method: "POST", path: "/worker/leases/7.load.2/complete", body: `{"outcome":"succeeded"}`},
			status: 401, code: api.CodeUnauthorized},
		{name: "token on heartbeat", rq: request{method: "POST", path: "/worker/heartbeat", body: `{"worker":"w","leases":[]}`},
			status: 401, code: api.CodeUnauthorized},

		// Lease.
		{name: "lease", rq: request{method: "POST", path: "/worker/lease", body: leaseBody}, setup: func(e *workerEnv) { e.workers.Add(lease) },
			status: 200, check: func(t *testing.T, e *workerEnv, b []byte) {
				var resp api.LeaseResponse
				mustJSON(t, b, &resp)
				if !reflect.DeepEqual(resp.Leases, []api.Lease{lease}) {
					t.Errorf("leases %+v", resp.Leases)
				}
				reqs := e.workers.LeaseRequests()
				if len(reqs) != 1 || !reflect.DeepEqual(reqs[0], api.LeaseRequest{Worker: "host:1", Labels: []string{"gpu"}, Free: 2}) {
					t.Errorf("lease requests %+v", reqs)
				}
				if names := e.workers.TokenNames(); !reflect.DeepEqual(names, []string{"w1"}) {
					t.Errorf("token names seen by Workers: %v", names)
				}
			}},
		{name: "lease none", rq: request{method: "POST", path: "/worker/lease", body: leaseBody}, status: 200,
			check: func(t *testing.T, _ *workerEnv, b []byte) {
				if !strings.Contains(string(b), `"leases":[]`) {
					t.Errorf("body %s", b)
				}
			}},
		{name: "lease malformed", rq: request{method: "POST", path: "/worker/lease", body: `{"worker":`}, status: 400, code: api.CodeInvalid},
		{name: "lease unknown field", rq: request{method: "POST", path: "/worker/lease", body: `{"worker":"w","free":1,"slots":3}`}, status: 400, code: api.CodeInvalid},
		{name: "lease no body", rq: request{method: "POST", path: "/worker/lease"}, status: 400, code: api.CodeInvalid},
		{name: "lease no worker", rq: request{method: "POST", path: "/worker/lease", body: `{"free":1}`}, status: 400, code: api.CodeInvalid},
		{name: "lease free 0", rq: request{method: "POST", path: "/worker/lease", body: `{"worker":"w","free":0}`}, status: 400, code: api.CodeInvalid},
		{name: "lease wait too long", rq: request{method: "POST", path: "/worker/lease", body: `{"worker":"w","free":1,"wait_seconds":31}`}, status: 400, code: api.CodeInvalid},
		{name: "lease bundle too large", rq: request{method: "POST", path: "/worker/lease", body: `{"worker":"w","free":1,"bundle":257}`}, status: 400, code: api.CodeInvalid},
		{name: "lease bundle negative", rq: request{method: "POST", path: "/worker/lease", body: `{"worker":"w","free":1,"bundle":-1}`}, status: 400, code: api.CodeInvalid},
		{name: "heartbeat bad bundle id", rq: request{method: "POST", path: "/worker/heartbeat", body: `{"worker":"w","leases":[],"bundles":["nope"]}`}, status: 400, code: api.CodeInvalid},
		{name: "lease empty label", rq: request{method: "POST", path: "/worker/lease", body: `{"worker":"w","free":1,"labels":[""]}`}, status: 400, code: api.CodeInvalid},
		{name: "lease query", rq: request{method: "POST", path: "/worker/lease?wait=1", body: leaseBody}, status: 400, code: api.CodeInvalid},
		{name: "lease failing", rq: request{method: "POST", path: "/worker/lease", body: leaseBody},
			setup:  func(e *workerEnv) { e.workers.LeaseErr = func(api.LeaseRequest) error { return apitest.ErrBoom } },
			status: 500, code: api.CodeInternal},
		{name: "lease wrong method", rq: request{method: "GET", path: "/worker/lease"}, status: 405, code: api.CodeMethodNotAllowed},

		// Heartbeat.
		{name: "heartbeat", rq: request{method: "POST", path: "/worker/heartbeat", body: `{"worker":"host:1","leases":["7.load.2","8.x.1"]}`},
			setup: func(e *workerEnv) { held(e); e.workers.Cancel("7.load.2") }, status: 200,
			check: func(t *testing.T, _ *workerEnv, b []byte) {
				var resp api.HeartbeatResponse
				mustJSON(t, b, &resp)
				if !reflect.DeepEqual(resp, api.HeartbeatResponse{Cancel: []string{"7.load.2"}, Unknown: []string{"8.x.1"}}) {
					t.Errorf("heartbeat %+v", resp)
				}
			}},
		{name: "heartbeat bad lease id", rq: request{method: "POST", path: "/worker/heartbeat", body: `{"worker":"w","leases":["nope"]}`}, status: 400, code: api.CodeInvalid},

		// Log.
		{name: "log", rq: request{method: "POST", path: "/worker/leases/7.load.2/log?offset=0", body: "line 1\n"}, setup: held, status: 204,
			check: func(t *testing.T, e *workerEnv, _ []byte) {
				if got := string(e.workers.Log("7.load.2")); got != "line 1\n" {
					t.Errorf("log %q", got)
				}
			}},
		{name: "log without offset", rq: request{method: "POST", path: "/worker/leases/7.load.2/log", body: "x"}, setup: held, status: 400, code: api.CodeInvalid},
		{name: "log negative offset", rq: request{method: "POST", path: "/worker/leases/7.load.2/log?offset=-1", body: "x"}, setup: held, status: 400, code: api.CodeInvalid},
		{name: "log bad lease id", rq: request{method: "POST", path: "/worker/leases/7.load/log?offset=0", body: "x"}, status: 400, code: api.CodeInvalid},
		{name: "log too big", rq: request{method: "POST", path: "/worker/leases/7.load.2/log?offset=0", body: strings.Repeat("x", api.MaxLogChunk+1)},
			setup: held, status: 413, code: api.CodeTooLarge},
		{name: "log of a lost lease", rq: request{method: "POST", path: "/worker/leases/7.load.2/log?offset=0", body: "x"},
			status: 409, code: api.CodeLeaseLost},

		// Complete.
		{name: "complete", rq: request{method: "POST", path: "/worker/leases/7.load.2/complete",
			body: `{"outcome":"succeeded","exit_code":0,"result":{"rows":3},"log_size":7}`}, setup: held, status: 204,
			check: func(t *testing.T, e *workerEnv, _ []byte) {
				c, ok := e.workers.Completion("7.load.2")
				if !ok || c.Outcome != api.OutcomeSucceeded || c.ExitCode == nil || *c.ExitCode != 0 || string(c.Result) != `{"rows":3}` || c.LogSize != 7 {
					t.Errorf("completion %+v", c)
				}
			}},
		{name: "complete lost", rq: request{method: "POST", path: "/worker/leases/7.load.2/complete", body: `{"outcome":"failed","log_size":0}`},
			setup: func(e *workerEnv) { held(e); e.workers.Forget("7.load.2") }, status: 409, code: api.CodeLeaseLost},
		{name: "complete bad outcome", rq: request{method: "POST", path: "/worker/leases/7.load.2/complete", body: `{"outcome":"lost"}`},
			setup: held, status: 400, code: api.CodeInvalid},
		{name: "complete negative log size", rq: request{method: "POST", path: "/worker/leases/7.load.2/complete", body: `{"outcome":"failed","log_size":-1}`},
			setup: held, status: 400, code: api.CodeInvalid},
		{name: "complete bad result", rq: request{method: "POST", path: "/worker/leases/7.load.2/complete", body: `{"outcome":"succeeded","result":{x}}`},
			setup: held, status: 400, code: api.CodeInvalid},
		{name: "complete with a big result", rq: request{method: "POST", path: "/worker/leases/7.load.2/complete",
			body: `{"outcome":"succeeded","result":"` + strings.Repeat("r", shell.MaxResultSize-2) + `"}`}, setup: held, status: 204},
		{name: "complete too big", rq: request{method: "POST", path: "/worker/leases/7.load.2/complete",
			body: `{"outcome":"succeeded","result":"` + strings.Repeat("r", api.MaxCompleteBytes) + `"}`}, setup: held, status: 413, code: api.CodeTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newWorkerEnv(t)
			if c.setup != nil {
				c.setup(e)
			}
			rq := c.rq
			if rq.header == nil && !strings.HasPrefix(c.name, "no token") && !strings.HasPrefix(c.name, "token on") {
				rq.header = bearer(e.secret)
			}
			resp, b := serve(e.handler, rq)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, b)
			}
			if c.status != 204 && resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
			if got := errorCode(b); got != c.code {
				t.Errorf("code %q, want %q: %s", got, c.code, b)
			}
			if c.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
			if c.check != nil {
				c.check(t, e, b)
			}
		})
	}
}

// TestTokenRoutes checks token management: loopback only, and the secret
// shown once.
func TestTokenRoutes(t *testing.T) {
	type tc struct {
		name   string
		rq     request
		status int
		code   string
		check  func(t *testing.T, e *workerEnv, resp *http.Response, b []byte)
	}
	cases := []tc{
		{name: "create", rq: request{method: "POST", path: "/tokens", body: `{"name":"w2"}`, remote: localhost,
			header: map[string]string{api.ActorHeader: "alice@host"}}, status: 201, // the header is ignored
			check: func(t *testing.T, e *workerEnv, resp *http.Response, b []byte) {
				var ct api.CreatedToken
				mustJSON(t, b, &ct)
				if ct.Name != "w2" || !strings.HasPrefix(ct.Token, "tsk_") || ct.CreatedAt.IsZero() {
					t.Errorf("created %+v", ct)
				}
				if resp.Header.Get("Cache-Control") != "no-store" {
					t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
				}
				calls := e.tokens.Calls()
				if last := calls[len(calls)-1]; !reflect.DeepEqual(last.Args, []any{"w2", "root"}) {
					t.Errorf("CreateToken%v", last.Args)
				}
				// The new token works.
				r, _ := serve(e.handler, request{method: "POST", path: "/worker/heartbeat", body: `{"worker":"w","leases":[]}`, header: bearer(ct.Token)})
				if r.StatusCode != 200 {
					t.Errorf("heartbeat with the new token: %d", r.StatusCode)
				}
			}},
		{name: "create from another host", rq: request{method: "POST", path: "/tokens", body: `{"name":"w2"}`}, status: 201}, // an admin token is enough
		{name: "create an API token", rq: request{method: "POST", path: "/tokens", body: `{"name":"ci","role":"operator","namespace":"finance","expires_at":"2999-01-01T00:00:00Z"}`}, status: 201,
			check: func(t *testing.T, e *workerEnv, _ *http.Response, b []byte) {
				var ct api.CreatedToken
				mustJSON(t, b, &ct)
				if ct.Kind != api.KindAPI || ct.Role != api.RoleOperator || ct.Namespace != "finance" || ct.ExpiresAt == nil {
					t.Errorf("created %+v", ct)
				}
				// An API token cannot lease work.
				r, _ := serve(e.handler, request{method: "POST", path: "/worker/heartbeat", body: `{"worker":"w","leases":[]}`, header: bearer(ct.Token)})
				if r.StatusCode != 403 {
					t.Errorf("heartbeat with an API token: %d, want 403", r.StatusCode)
				}
			}},
		{name: "create an agent token", rq: request{method: "POST", path: "/tokens", body: `{"name":"agent-dns1","kind":"agent"}`}, status: 201,
			check: func(t *testing.T, e *workerEnv, _ *http.Response, b []byte) {
				var ct api.CreatedToken
				mustJSON(t, b, &ct)
				if ct.Kind != api.KindAgent || ct.Role != "" {
					t.Errorf("created %+v", ct)
				}
				// An agent token cannot lease work, nor read the API.
				r, body := serve(e.handler, request{method: "POST", path: "/worker/lease", body: `{"worker":"w","free":1}`, header: bearer(ct.Token)})
				if r.StatusCode != 403 || !strings.Contains(string(body), "may only report its host") {
					t.Errorf("lease with an agent token: %d %s, want 403", r.StatusCode, body)
				}
				if r, _ := serve(e.handler, request{method: "GET", path: "/runs", header: bearer(ct.Token)}); r.StatusCode != 403 {
					t.Errorf("GET /runs with an agent token: %d, want 403", r.StatusCode)
				}
			}},
		{name: "create an agent token with a role", rq: request{method: "POST", path: "/tokens", body: `{"name":"x","kind":"agent","role":"viewer"}`}, status: 400, code: api.CodeInvalid},
		{name: "create an api token without a role", rq: request{method: "POST", path: "/tokens", body: `{"name":"x","kind":"api"}`}, status: 400, code: api.CodeInvalid},
		{name: "create a token of an unknown kind", rq: request{method: "POST", path: "/tokens", body: `{"name":"x","kind":"robot"}`}, status: 400, code: api.CodeInvalid},
		{name: "create with an unknown role", rq: request{method: "POST", path: "/tokens", body: `{"name":"x","role":"root"}`}, status: 400, code: api.CodeInvalid},
		{name: "create a worker token with a namespace", rq: request{method: "POST", path: "/tokens", body: `{"name":"x","namespace":"finance"}`}, status: 400, code: api.CodeInvalid},
		{name: "create with a namespace path", rq: request{method: "POST", path: "/tokens", body: `{"name":"x","role":"viewer","namespace":"a/b"}`}, status: 400, code: api.CodeInvalid},
		{name: "create expired", rq: request{method: "POST", path: "/tokens", body: `{"name":"x","role":"viewer","expires_at":"2001-01-01T00:00:00Z"}`}, status: 400, code: api.CodeInvalid},
		{name: "create without a token", rq: request{method: "POST", path: "/tokens", body: `{"name":"w2"}`, header: map[string]string{}}, status: 401, code: api.CodeUnauthorized},
		{name: "create as an operator", rq: request{method: "POST", path: "/tokens", body: `{"name":"w2"}`,
			header: map[string]string{"Authorization": "Bearer operator"}}, status: 403, code: api.CodeForbidden},
		{name: "create with a worker token", rq: request{method: "POST", path: "/tokens", body: `{"name":"w2"}`,
			header: map[string]string{"Authorization": "Bearer set-below"}}, status: 403, code: api.CodeForbidden},
		{name: "create duplicate", rq: request{method: "POST", path: "/tokens", body: `{"name":"w1"}`, remote: localhost}, status: 409, code: api.CodeConflict},
		{name: "create reusing a revoked name", rq: request{method: "POST", path: "/tokens", body: `{"name":"old"}`, remote: localhost}, status: 201},
		{name: "create no name", rq: request{method: "POST", path: "/tokens", body: `{}`, remote: localhost}, status: 400, code: api.CodeInvalid},
		{name: "create name with slash", rq: request{method: "POST", path: "/tokens", body: `{"name":"a/b"}`, remote: localhost}, status: 400, code: api.CodeInvalid},
		{name: "create name that passes for a user", rq: request{method: "POST", path: "/tokens", body: `{"name":"user:bob","role":"operator"}`, remote: localhost}, status: 400, code: api.CodeInvalid},
		// encoding/json alone lets the last of two keys win and matches keys
		// in any case: a proxy reading the body would see another role.
		{name: "create with a key twice", rq: request{method: "POST", path: "/tokens", body: `{"name":"x","role":"viewer","role":"admin"}`, remote: localhost}, status: 400, code: api.CodeInvalid},
		{name: "create with a key in another case", rq: request{method: "POST", path: "/tokens", body: `{"name":"x","ROLE":"admin"}`, remote: localhost}, status: 400, code: api.CodeInvalid},
		{name: "create with a key twice in other cases", rq: request{method: "POST", path: "/tokens", body: `{"name":"x","Name":"y"}`, remote: localhost}, status: 400, code: api.CodeInvalid},
		{name: "create malformed", rq: request{method: "POST", path: "/tokens", body: `{"name":1}`, remote: localhost}, status: 400, code: api.CodeInvalid},
		{name: "list", rq: request{method: "GET", path: "/tokens", remote: localhost}, status: 200,
			check: func(t *testing.T, e *workerEnv, _ *http.Response, b []byte) {
				var p api.Page[api.TokenInfo]
				mustJSON(t, b, &p)
				if len(p.Items) != 3 || p.Items[0].Name != "w1" || p.Items[0].RevokedAt != nil || p.Items[1].RevokedAt == nil {
					t.Errorf("tokens %+v", p.Items)
				}
				if strings.Contains(string(b), e.secret) || strings.Contains(string(b), "tsk_") {
					t.Errorf("the list shows a secret: %s", b)
				}
			}},
		{name: "list without a token", rq: request{method: "GET", path: "/tokens", header: map[string]string{}}, status: 401, code: api.CodeUnauthorized},
		{name: "revoke", rq: request{method: "DELETE", path: "/tokens/w1", remote: localhost}, status: 204,
			check: func(t *testing.T, e *workerEnv, _ *http.Response, _ []byte) {
				r, b := serve(e.handler, request{method: "POST", path: "/worker/heartbeat", body: `{"worker":"w","leases":[]}`, header: bearer(e.secret)})
				if r.StatusCode != 401 {
					t.Errorf("a revoked token still works: %d %s", r.StatusCode, b)
				}
			}},
		{name: "revoke unknown", rq: request{method: "DELETE", path: "/tokens/nope", remote: localhost}, status: 404, code: api.CodeNotFound},
		{name: "revoke as an operator", rq: request{method: "DELETE", path: "/tokens/w1", header: map[string]string{"Authorization": "Bearer operator"}}, status: 403, code: api.CodeForbidden},
		{name: "revoke wrong method", rq: request{method: "POST", path: "/tokens/w1", remote: localhost}, status: 405, code: api.CodeMethodNotAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newWorkerEnv(t)
			switch {
			case c.rq.header == nil:
				c.rq.header = bearer(e.admin)
			case c.rq.header["Authorization"] == "Bearer set-below":
				c.rq.header = bearer(e.secret)
			case c.rq.header["Authorization"] == "Bearer operator":
				c.rq.header = bearer(e.tokens.AddAPI("op", api.RoleOperator, ""))
			case c.rq.header[api.ActorHeader] != "":
				c.rq.header["Authorization"] = "Bearer " + e.admin
			}
			resp, b := serve(e.handler, c.rq)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, b)
			}
			if got := errorCode(b); got != c.code {
				t.Errorf("code %q, want %q: %s", got, c.code, b)
			}
			if c.check != nil {
				c.check(t, e, resp, b)
			}
		})
	}
}

// leakyTokens is a Tokens whose store fails with an error that quotes the
// secret, as a careless driver might.
type leakyTokens struct{ *apitest.Tokens }

func (l leakyTokens) Authenticate(ctx context.Context, secret string) (api.Principal, error) {
	return api.Principal{}, fmt.Errorf("query token %q: connection refused", secret)
}

// TestTokenNeverLogged sends requests with good, bad and failing tokens
// and creates one, and checks that no secret appears in the handler's log
// or in an error answer, while the refusals are logged.
func TestTokenNeverLogged(t *testing.T) {
	e := newWorkerEnv(t)
	wrong := "tsk_this-is-not-a-valid-token"
	for _, rq := range []request{
		{method: "POST", path: "/worker/lease", body: `{"worker":"w","free":1}`, header: bearer(e.secret)},
		{method: "POST", path: "/worker/heartbeat", body: `{"worker":"w","leases":["1.a.1"]}`, header: bearer(wrong)},
		{method: "POST", path: "/worker/heartbeat", body: `{"worker":"w","leases":[]}`, header: bearer(e.revoked)},
		{method: "POST", path: "/worker/leases/1.a.1/log?offset=0", body: "x", header: bearer(e.secret)},
	} {
		_, b := serve(e.handler, rq)
		if strings.Contains(string(b), wrong) || strings.Contains(string(b), e.secret) || strings.Contains(string(b), e.revoked) {
			t.Errorf("%s: the answer quotes a token: %s", rq.path, b)
		}
	}
	resp, b := serve(e.handler, request{method: "POST", path: "/tokens", body: `{"name":"w9"}`, header: bearer(e.admin)})
	var ct api.CreatedToken
	mustJSON(t, b, &ct)
	if resp.StatusCode != 201 || ct.Token == "" {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}

	// A Tokens implementation failing with an error that quotes the secret.
	leaky := api.NewHandler(apitest.NewSeeded(), nil, api.WithLogger(slog.New(slog.NewTextHandler(e.logged, nil))),
		api.WithWorkers(e.workers, leakyTokens{e.tokens}))
	resp, b = serve(leaky, request{method: "POST", path: "/worker/lease", body: `{"worker":"w","free":1}`, header: bearer(e.secret)})
	if resp.StatusCode != 500 || strings.Contains(string(b), e.secret) {
		t.Errorf("failing Authenticate: %d %s", resp.StatusCode, b)
	}

	logged := e.logged.String()
	for _, s := range []string{e.secret, wrong, e.revoked, ct.Token} {
		if strings.Contains(logged, s) {
			t.Errorf("the log holds a token:\n%s", logged)
		}
	}
	if strings.Count(logged, "invalid, expired or revoked token") != 2 || !strings.Contains(logged, "connection refused") || !strings.Contains(logged, "***") {
		t.Errorf("the refusals and the failure are not logged as expected:\n%s", logged)
	}
}

// TestLeaseLongPoll checks that a lease request waits for work and that a
// worker hanging up ends the wait.
func TestLeaseLongPoll(t *testing.T) {
	e := newWorkerEnv(t)
	srv := httptest.NewServer(e.handler)
	defer srv.Close()
	c, err := api.NewClient(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	c = c.WithToken(e.secret)
	ctx := context.Background()

	got := make(chan api.LeaseResponse, 1)
	go func() {
		resp, err := c.Lease(ctx, api.LeaseRequest{Worker: "w", Free: 1, WaitSeconds: api.MaxLeaseWait})
		if err != nil {
			t.Error(err)
		}
		got <- resp
	}()
	if err := e.workers.Await(ctx, func(s apitest.State) bool { return s.LeaseRequests() == 1 }); err != nil {
		t.Fatal(err)
	}
	e.workers.Add(api.Lease{ID: "1.a.1", RunID: 1, Task: "a", Attempt: 1})
	if resp := <-got; len(resp.Leases) != 1 || resp.Leases[0].ID != "1.a.1" {
		t.Errorf("leases %+v", resp.Leases)
	}

	// Hanging up ends the wait at once.
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Lease(cctx, api.LeaseRequest{Worker: "w", Free: 1, WaitSeconds: api.MaxLeaseWait})
		errc <- err
	}()
	if err := e.workers.Await(ctx, func(s apitest.State) bool { return s.LeaseRequests() == 2 }); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("lease after cancel: %v", err)
	}
}

// TestClientWorkerCalls drives every worker and token call of the client
// through a real HTTP server.
func TestClientWorkerCalls(t *testing.T) {
	e := newWorkerEnv(t)
	srv := httptest.NewServer(e.handler)
	defer srv.Close()
	anon, err := api.NewClient(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	base := anon.WithToken(e.admin)
	ctx := context.Background()

	// Without a token, and with an API token.
	_, err = anon.Lease(ctx, api.LeaseRequest{Worker: "w", Free: 1})
	if e, ok := errors.AsType[*api.Error](err); !ok || e.Status != 401 || e.Code != api.CodeUnauthorized {
		t.Fatalf("lease without a token: %v", err)
	}
	_, err = base.Lease(ctx, api.LeaseRequest{Worker: "w", Free: 1})
	if e, ok := errors.AsType[*api.Error](err); !ok || e.Status != 403 || e.Code != api.CodeForbidden {
		t.Fatalf("lease with an API token: %v", err)
	}

	// Tokens.
	secret, info, err := base.CreateToken(ctx, api.CreateTokenRequest{Name: "w2"}, "alice")
	if err != nil || info.Name != "w2" || secret == "" {
		t.Fatalf("CreateToken: %q %+v %v", secret, info, err)
	}
	toks, err := base.ListTokens(ctx)
	if err != nil || len(toks) != 4 {
		t.Fatalf("ListTokens: %+v %v", toks, err)
	}
	if err := base.RevokeToken(ctx, "old", "alice"); err == nil {
		t.Error("revoking a revoked token succeeded")
	}
	c := base.WithToken(secret)
	if strings.Contains(fmt.Sprint(c), secret) || strings.Contains(fmt.Sprintf("%v %+v", c, c), secret) {
		t.Errorf("printing the client shows its token: %v", c)
	}

	// The protocol.
	e.workers.Add(api.Lease{ID: "3.t.1", RunID: 3, Task: "t", Attempt: 1, Spec: attempt.Spec{Kind: "shell", Body: json.RawMessage(`{"argv":["true"]}`)}})
	resp, err := c.Lease(ctx, api.LeaseRequest{Worker: "w", Free: 4})
	if err != nil || len(resp.Leases) != 1 {
		t.Fatalf("Lease: %+v %v", resp, err)
	}
	if names := e.workers.TokenNames(); names[len(names)-1] != "w2" {
		t.Errorf("token names %v", names)
	}
	if err := c.AppendLog(ctx, "3.t.1", 0, []byte("abc")); err != nil {
		t.Fatal(err)
	}
	if err := c.AppendLog(ctx, "3.t.1", 1, []byte("bcdef")); err != nil { // a retry overlapping what was sent
		t.Fatal(err)
	}
	if err := c.AppendLog(ctx, "3.t.1", 6, nil); err != nil {
		t.Fatal(err)
	}
	if got := string(e.workers.Log("3.t.1")); got != "abcdef" {
		t.Errorf("log %q", got)
	}
	hb, err := c.Heartbeat(ctx, api.HeartbeatRequest{Worker: "w", Leases: []string{"3.t.1", "9.z.1"}})
	if err != nil || !reflect.DeepEqual(hb, api.HeartbeatResponse{Unknown: []string{"9.z.1"}}) {
		t.Errorf("Heartbeat: %+v %v", hb, err)
	}
	code := 0
	if err := c.Complete(ctx, "3.t.1", api.CompleteRequest{Outcome: api.OutcomeSucceeded, ExitCode: &code, LogSize: 6}); err != nil {
		t.Fatal(err)
	}
	// Completing again: the lease is no longer held.
	err = c.Complete(ctx, "3.t.1", api.CompleteRequest{Outcome: api.OutcomeSucceeded, LogSize: 6})
	if e, ok := errors.AsType[*api.Error](err); !ok || e.Status != 409 || e.Code != api.CodeLeaseLost {
		t.Errorf("second Complete: %v", err)
	}
	if err := c.AppendLog(ctx, "3.t.1", 6, []byte("late")); !isLeaseLost(err) {
		t.Errorf("AppendLog after Complete: %v", err)
	}
}

func isLeaseLost(err error) bool {
	e, ok := errors.AsType[*api.Error](err)
	return ok && e.Code == api.CodeLeaseLost
}

// TestLimits keeps the protocol's limits consistent with what they carry.
func TestLimits(t *testing.T) {
	if api.MaxCompleteBytes < shell.MaxResultSize+64<<10 {
		t.Errorf("MaxCompleteBytes %d cannot hold a result of shell.MaxResultSize %d", api.MaxCompleteBytes, shell.MaxResultSize)
	}
	if api.MaxLogChunk < logs.MaxLine {
		t.Errorf("MaxLogChunk %d is smaller than a log line (%d)", api.MaxLogChunk, logs.MaxLine)
	}
}

package api_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/logs"
)

// bodyRoutes are the routes that decode a request body, with their
// wildcards filled in with what the seeded fake knows. The fuzz input picks
// one by index, so the corpus stays valid as long as the order does.
var bodyRoutes = []struct{ method, path, contentType string }{
	{"POST", "/api/v1/pipelines/hello/runs", "application/json"},
	{"POST", "/api/v1/runs/1/cancel", "application/json"},
	{"POST", "/api/v1/runs/1/retry", "application/json"},
	{"POST", "/api/v1/runs/1/rerun", "application/json"},
	{"POST", "/api/v1/runs/1/tasks/greet/mark", "application/json"},
	{"POST", "/api/v1/backfills", "application/json"},
	{"POST", "/api/v1/backfills/1/cancel", "application/json"},
	{"POST", "/api/v1/pipelines/nightly/pause", "application/json"},
	{"POST", "/api/v1/pipelines/nightly/unpause", "application/json"},
	{"POST", "/api/v1/worker/lease", "application/json"},
	{"POST", "/api/v1/worker/heartbeat", "application/json"},
	{"POST", "/api/v1/worker/leases/l1/log?offset=0", "application/octet-stream"},
	{"POST", "/api/v1/worker/leases/l1/complete", "application/json"},
	{"POST", "/api/v1/worker/complete", "application/json"},
	{"POST", "/api/v1/tokens", "application/json"},
	{"PUT", "/api/v1/secrets/warehouse_password", "application/json"},
	{"POST", "/api/v1/secrets/rotate-key", "application/json"},
	{"POST", "/api/v1/login", "application/json"},
	{"POST", "/api/v1/logout", "application/json"},
	{"POST", "/api/v1/users", "application/json"},
	{"PUT", "/api/v1/users/alice/password", "application/json"},
	{"POST", "/api/v1/datasets/raw.orders/updates", "application/json"},
	{"POST", "/api/v1/cache/purge", "application/json"},
	// The content of artifactBody (auth_test.go): testdata's artifact-put
	// uploads it, and any other body is refused as not the digest's.
	{"PUT", "/api/v1/worker/artifacts/sha256:80111269505baadd85d9c05b638a5f3c9450d351c06317474e3533e3cfd7d87c", "application/octet-stream"},
	{"POST", "/api/v1/runs/3/tasks/greet/cancel", "application/json"},
	{"POST", "/api/v1/runs/3/tasks/greet/items/0/cancel", "application/json"},
	{"POST", "/api/v1/runs/3/tasks/greet/items/0/retry", "application/json"},
	{"POST", "/api/v1/runs/3/tasks/greet/items/0/mark", "application/json"},
	{"POST", "/api/v1/worker/hosts", "application/json"},
}

// FuzzRequestBodies sends arbitrary bodies to every route that decodes
// one, through the guard and the handler as the server serves them, and
// checks that nothing the client sends makes the server fail (5xx, a
// panic) or answer anything but JSON with a stable error code. The seed
// corpus is in testdata/fuzz/FuzzRequestBodies, so `go test` runs it;
// `go test -fuzz FuzzRequestBodies ./internal/api/` explores further.
func FuzzRequestBodies(f *testing.F) {
	for i := range bodyRoutes {
		f.Add(uint8(i), []byte(`{}`))
	}
	tokens := apitest.NewTokens()
	secret := tokens.Add("w1")                         // the worker protocol's
	admin := tokens.AddAPI("admin", api.RoleAdmin, "") // every other route's
	workers := apitest.NewWorkers()
	// A lease request may wait for work; with nothing queued the fake
	// would hold it for WaitSeconds. Answer at once instead.
	workers.LeaseErr = func(req api.LeaseRequest) error {
		if req.WaitSeconds > 0 {
			return api.Errorf(http.StatusConflict, api.CodeConflict, "fuzz: no waiting")
		}
		return nil
	}
	h := api.Guard(api.NewHandler(apitest.NewSeeded(), logs.NewFiles(f.TempDir()),
		api.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		api.WithWorkers(workers, tokens), api.WithSecrets(apitest.NewSecrets()), api.WithUsers(apitest.NewUsers()),
		api.WithDatasets(apitest.NewDatasets()), api.WithCache(apitest.NewCache()), api.WithWorkerArtifacts(newArtifactDir(f)),
		api.WithInventory(apitest.NewInventory())), api.GuardOptions{})
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rt := bodyRoutes[int(route)%len(bodyRoutes)]
		req := httptest.NewRequest(rt.method, rt.path, strings.NewReader(string(body)))
		req.RemoteAddr = "127.0.0.1:40000"
		req.Host = "127.0.0.1:8080" // httptest's example.com is not a host the guard lets in
		req.Header.Set("Content-Type", rt.contentType)
		token := admin
		if strings.HasPrefix(rt.path, api.Prefix+"/worker/") {
			token = secret
		}
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		// (A login's 401 is its own answer: a wrong user or password.)
		if rec.Code == http.StatusUnauthorized && rt.path != api.Prefix+"/login" || rec.Code == http.StatusForbidden {
			t.Fatalf("%s %s: %d %s: the body never reached the route", rt.method, rt.path, rec.Code, rec.Body)
		}
		if rec.Code >= 500 {
			t.Fatalf("%s %s with %q: %d %s", rt.method, rt.path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 300 {
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("%s %s: error answered as %q", rt.method, rt.path, ct)
			}
			var eb api.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
				t.Fatalf("%s %s with %q: error answer %q is not an ErrorBody", rt.method, rt.path, body, rec.Body)
			}
		}
		for k := range api.SecurityHeaders {
			if rec.Header().Get(k) == "" {
				t.Fatalf("%s %s: no %s header", rt.method, rt.path, k)
			}
		}
	})
}

// TestFuzzCorpusCoversEveryBodyRoute keeps bodyRoutes in step with the
// route table: a new route that reads a body must be fuzzed too.
func TestFuzzCorpusCoversEveryBodyRoute(t *testing.T) {
	fuzzed := map[string]bool{}
	for _, rt := range bodyRoutes {
		req := httptest.NewRequest(rt.method, rt.path, nil)
		fuzzed[api.MatchedPattern(api.NewHandler(apitest.New(), logs.NewFiles(t.TempDir())), req)] = true
	}
	for _, rt := range api.Routes() {
		if rt.Method == http.MethodPost && !fuzzed[rt.Method+" "+api.Prefix+rt.Path] {
			t.Errorf("%s %s reads a body but is not in bodyRoutes", rt.Method, rt.Path)
		}
	}
}

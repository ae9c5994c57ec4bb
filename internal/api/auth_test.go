package api_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// authRules is who may call each route, written out here a second time on
// purpose: a route added to the table without a rule here fails
// TestAuthorizationMatrix, and so does a rule changed in only one place.
// Values: "public", "worker", "report" (a worker or an agent token), or the least role of an API token, then how a
// token confined to a namespace is confined ("global": refused).
var authRules = map[string][2]string{
	"GET /health":       {"public", "global"},
	"GET /ready":        {"public", "global"},
	"GET /openapi.json": {"public", "global"},
	"GET /metrics":      {"viewer", "global"},

	"GET /pipelines":                 {"viewer", "listed"},
	"GET /pipelines/{name}":          {"viewer", "pipeline"},
	"POST /pipelines/{name}/pause":   {"operator", "pipeline"},
	"POST /pipelines/{name}/unpause": {"operator", "pipeline"},
	"POST /pipelines/{name}/runs":    {"operator", "pipeline"},

	"GET /runs":                         {"viewer", "listed"},
	"GET /runs/{id}":                    {"viewer", "run"},
	"GET /runs/{id}/events":             {"viewer", "run"},
	"GET /runs/{id}/alerts":             {"viewer", "run"},
	"GET /runs/{id}/timeline":           {"viewer", "run"},
	"GET /runs/{id}/tasks/{task}":       {"viewer", "run"},
	"GET /runs/{id}/tasks/{task}/logs":  {"viewer", "run"},
	"GET /runs/{id}/tasks/{task}/items": {"viewer", "run"},
	"POST /runs/{id}/cancel":            {"operator", "run"},
	"POST /runs/{id}/retry":             {"operator", "run"},
	"POST /runs/{id}/rerun":             {"operator", "run"},
	"POST /runs/{id}/tasks/{task}/mark": {"operator", "run"},

	"POST /runs/{id}/tasks/{task}/cancel":              {"operator", "run"},
	"POST /runs/{id}/tasks/{task}/items/{item}/cancel": {"operator", "run"},
	"POST /runs/{id}/tasks/{task}/items/{item}/retry":  {"operator", "run"},
	"POST /runs/{id}/tasks/{task}/items/{item}/mark":   {"operator", "run"},

	"POST /backfills":             {"operator", "listed"},
	"GET /backfills":              {"viewer", "listed"},
	"GET /backfills/{id}":         {"viewer", "backfill"},
	"POST /backfills/{id}/cancel": {"operator", "backfill"},

	"POST /worker/lease":                   {"worker", "global"},
	"POST /worker/heartbeat":               {"worker", "global"},
	"POST /worker/leases/{lease}/log":      {"worker", "global"},
	"POST /worker/leases/{lease}/complete": {"worker", "global"},
	"POST /worker/complete":                {"worker", "global"},
	"GET /worker/artifacts/{digest}":       {"worker", "global"},
	"HEAD /worker/artifacts/{digest}":      {"worker", "global"},
	"PUT /worker/artifacts/{digest}":       {"worker", "global"},
	"POST /tokens":                         {"admin", "global"},
	"GET /tokens":                          {"admin", "global"},
	"DELETE /tokens/{name}":                {"admin", "global"},
	"GET /audit":                           {"admin", "global"},
	"GET /workers":                         {"viewer", "listed"},
	"GET /secrets":                         {"admin", "global"},
	"PUT /secrets/{name}":                  {"admin", "global"},
	"DELETE /secrets/{name}":               {"admin", "global"},
	"POST /secrets/rotate-key":             {"admin", "global"},
	"POST /login":                          {"public", "global"},
	"POST /logout":                         {"public", "global"},
	"POST /users":                          {"admin", "global"},
	"GET /users":                           {"admin", "global"},
	"DELETE /users/{name}":                 {"admin", "global"},
	"PUT /users/{name}/password":           {"admin", "global"},
	"GET /sessions":                        {"admin", "global"},
	"DELETE /sessions/{id}":                {"admin", "global"},
	"GET /datasets":                        {"viewer", "global"},
	"GET /datasets/{name}":                 {"viewer", "global"},
	"POST /datasets/{name}/updates":        {"operator", "global"},
	"GET /lineage/{name}":                  {"viewer", "global"},
	"GET /slo":                             {"viewer", "global"},

	"GET /cache":          {"viewer", "global"},
	"DELETE /cache/{key}": {"operator", "global"},
	"POST /cache/purge":   {"operator", "global"},

	"POST /worker/hosts":       {"report", "global"},
	"GET /hosts":               {"viewer", "global"},
	"GET /hosts/{name}":        {"viewer", "global"},
	"GET /hosts/{name}/events": {"viewer", "global"},
	"GET /advisories":          {"viewer", "global"},
}

// authEnv is a handler over a seeded fake with a namespace "finance" (its
// pipeline ledger, run 4, backfill 2) beside the seeded pipelines of
// namespace "", and a token of every kind.
type authEnv struct {
	handler http.Handler
	fake    *apitest.Fake
	audit   *apitest.AuditLog
	secrets map[string]string // credential name -> secret
	workers *apitest.WorkerList
}

// credentials are the callers of the matrix: none, a token the server does
// not know, a worker token, an agent token, each role globally, and operators and admins
// confined to namespace finance.
var credentials = []string{"none", "unknown", "worker", "agent", "viewer", "operator", "admin", "fin-viewer", "fin-operator", "fin-admin"}

func newAuthEnv(t *testing.T) *authEnv {
	t.Helper()
	e := newEnv(t)
	f := e.fake
	f.AddPipeline(api.Pipeline{Name: "ledger", File: "pipelines/finance/ledger.yaml", Namespace: "finance", Hash: "h3", Tasks: 1,
		Schedule: "0 1 * * *", Timezone: "UTC"})
	now := f.Now()
	f.AddRun(api.Run{ID: 4, Pipeline: "ledger", State: engine.RunFailed, Trigger: "manual", CreatedAt: now, StartedAt: &now, FinishedAt: &now, TaskCount: 1,
		Tasks: []api.Task{{ID: "post", State: engine.TaskFailed, Attempt: 1, StartedAt: &now, FinishedAt: &now,
			Attempts: []api.Attempt{{Attempt: 1, StartedAt: now, FinishedAt: &now, Outcome: "failed"}}}}})
	f.AddBackfill(api.Backfill{ID: 2, Pipeline: "ledger", From: now.Add(-72 * time.Hour), To: now, Parallel: 1, State: "running", CreatedAt: now, Runs: 3})
	a := &authEnv{fake: f, audit: &apitest.AuditLog{}, secrets: map[string]string{"unknown": "tsk_unknown"}, workers: &apitest.WorkerList{}}
	tokens := apitest.NewTokens()
	a.secrets["worker"] = tokens.Add("worker")
	a.secrets["agent"] = tokens.AddAgent("agent")
	for _, r := range api.Roles() {
		a.secrets[string(r)] = tokens.AddAPI(string(r), r, "")
		a.secrets["fin-"+string(r)] = tokens.AddAPI("fin-"+string(r), r, "finance")
	}
	// The tasks the matrix names are maps, so the items route answers.
	maps := apitest.NewMaps(f)
	maps.AddMap(1, "greet", []json.RawMessage{json.RawMessage(`"a"`)}, 1, store.MapItem{Item: 0, State: engine.TaskSucceeded, Attempt: 1})
	maps.AddMap(4, "post", []json.RawMessage{json.RawMessage(`"b"`)}, 1, store.MapItem{Item: 0, State: engine.TaskFailed, Attempt: 1})
	a.handler = api.NewHandler(maps, e.logs, api.WithWorkers(apitest.NewWorkers(), tokens), api.WithAuditLog(a.audit), api.WithSecrets(apitest.NewSecrets("hello", "ledger")),
		api.WithDatasets(apitest.NewDatasets()), api.WithSLOs(apitest.NewSLOs()), api.WithWorkerArtifacts(newArtifactDir(t)), api.WithLogger(slog.New(slog.DiscardHandler)),
		api.WithInventory(apitest.NewInventory()), api.WithWorkerList(a.workers))
	return a
}

func (a *authEnv) do(cred, method, path, body string) (*http.Response, []byte) {
	rq := request{method: method, path: path, body: body, header: map[string]string{}}
	if cred != "none" {
		rq.header["Authorization"] = "Bearer " + a.secrets[cred]
	}
	return serve(a.handler, rq)
}

// concrete fills a route's path in: outside names what namespace finance
// cannot see, inside what it can.
func concrete(path string, inside bool) string {
	vals := map[string][2]string{
		"name": {"hello", "ledger"}, "task": {"greet", "post"}, "lease": {"1.greet.1", "1.greet.1"},
		"key":    {strings.Repeat("ab", 32), strings.Repeat("ab", 32)},
		"digest": {digestOf(artifactBody), digestOf(artifactBody)},
		"item":   {"0", "0"},
	}
	if strings.HasPrefix(path, "/backfills/") {
		vals["id"] = [2]string{"1", "2"}
	} else {
		vals["id"] = [2]string{"1", "4"}
	}
	if strings.HasPrefix(path, "/tokens/") {
		vals["name"] = [2]string{"worker", "worker"}
	}
	if strings.HasPrefix(path, "/datasets/") || strings.HasPrefix(path, "/lineage/") {
		vals["name"] = [2]string{"raw.orders", "raw.orders"}
	}
	i := 0
	if inside {
		i = 1
	}
	return regexp.MustCompile(`\{(\w+)\}`).ReplaceAllStringFunc(path, func(m string) string { return vals[m[1:len(m)-1]][i] })
}

// hostReportBody is a host report the matrix sends (the fuzz corpus's
// host-report, shortened).
const hostReportBody = `{"version":1,"collected_at":"2026-03-14T09:26:53Z","hostname":"dns1","os":{"id":"debian","version_id":"10"},` +
	`"cpu":{"count":1},"memory":{"total":1,"available":1},"disks":[],"scheme":"deb",` +
	`"packages":[{"name":"dnsmasq-base","version":"2.80-1+b1","source":"dnsmasq","source_version":"2.80-1"}],` +
	`"services":[],"listeners":[],"container_runtimes":[]}`

// artifactBody is the content the matrix uploads, under its digest.
const artifactBody = "an output file\n"

// bodies are requests each route accepts, so an allowed call gets past
// authorization into the route.
func body(method, path string, inside bool) string {
	pipeline := "hello"
	if inside {
		pipeline = "ledger"
	}
	switch method + " " + path {
	case "POST /pipelines/{name}/runs":
		return `{}`
	case "POST /runs/{id}/tasks/{task}/mark", "POST /runs/{id}/tasks/{task}/items/{item}/mark":
		return `{"state":"skipped"}`
	case "POST /backfills":
		return `{"pipeline":"` + pipeline + `","from":"2026-01-01T00:00:00Z","to":"2026-01-02T00:00:00Z"}`
	case "POST /worker/lease":
		return `{"worker":"w","free":1}`
	case "POST /worker/heartbeat":
		return `{"worker":"w","leases":[]}`
	case "POST /worker/leases/{lease}/complete":
		return `{"outcome":"succeeded","log_size":0}`
	case "POST /worker/complete":
		return `{"reports":[{"lease":"1.a.1","outcome":"succeeded","log_size":0}]}`
	case "POST /tokens":
		return `{"name":"new","role":"viewer"}`
	case "PUT /secrets/{name}":
		return `{"value":"s3cr3t-value"}`
	case "POST /login":
		return `{"user":"alice","password":"correct horse"}`
	case "POST /users":
		return `{"name":"alice","password":"correct horse","role":"viewer"}`
	case "PUT /users/{name}/password":
		return `{"password":"correct horse"}`
	case "PUT /worker/artifacts/{digest}":
		return artifactBody
	case "POST /worker/hosts":
		return hostReportBody
	}
	return ""
}

// TestAuthorizationMatrix calls every route of the route table with every
// kind of credential and none, and checks the class of the answer: 401
// without a valid credential, 403 for a credential that may not, 404 for a
// confined token asking about another namespace, and otherwise whatever
// the route answers (never 401 or 403).
func TestAuthorizationMatrix(t *testing.T) {
	routes := api.Routes()
	seen := map[string]bool{}
	for _, rt := range routes {
		k := rt.Method + " " + rt.Path
		seen[k] = true
		rule, ok := authRules[k]
		if !ok {
			t.Errorf("route %s has no rule in authRules: say who may call it", k)
			continue
		}
		if rule != [2]string{rt.Access, rt.Scope} {
			t.Errorf("route %s: the table says %s/%s, authRules %s/%s", k, rt.Access, rt.Scope, rule[0], rule[1])
		}
	}
	for k := range authRules {
		if !seen[k] {
			t.Errorf("authRules has %s, which is not a route", k)
		}
	}
	rank := map[string]int{"viewer": 1, "operator": 2, "admin": 3}
	for _, rt := range routes {
		for _, cred := range credentials {
			for _, inside := range []bool{false, true} {
				name := fmt.Sprintf("%s %s as %s", rt.Method, rt.Path, cred)
				if inside {
					name += " inside finance"
				}
				t.Run(name, func(t *testing.T) {
					a := newAuthEnv(t)
					resp, b := a.do(cred, rt.Method, concrete(rt.Path, inside), body(rt.Method, rt.Path, inside))
					role, confined := strings.CutPrefix(cred, "fin-")
					want := "allowed"
					switch {
					case rt.Access == "public":
					case cred == "none" || cred == "unknown":
						want = "401"
					case rt.Access == "worker":
						if cred != "worker" {
							want = "403"
						}
					case rt.Access == "report":
						if cred != "worker" && cred != "agent" {
							want = "403"
						}
					case cred == "worker" || cred == "agent" || rank[role] < rank[rt.Access]:
						want = "403"
					case confined && rt.Scope == "global":
						want = "403"
					case confined && !inside && rt.Scope != "listed":
						want = "404"
					}
					got := resp.StatusCode
					if resp.Header.Get("Content-Type") != "application/json" && got >= 400 {
						t.Errorf("error answer is not JSON: %s", resp.Header.Get("Content-Type"))
					}
					switch want {
					case "allowed":
						if got == 401 || got == 403 {
							t.Errorf("status %d, want the route to run: %s", got, b)
						}
						if !confined && got == 404 && rt.Scope != "global" { // what the path names exists
							t.Errorf("status 404 for a global credential: %s", b)
						}
					case "401", "403", "404":
						if fmt.Sprint(got) != want {
							t.Errorf("status %d, want %s: %s", got, want, b)
						}
						if got == 401 && resp.Header.Get("WWW-Authenticate") == "" {
							t.Error("401 without WWW-Authenticate")
						}
					}
				})
			}
		}
	}
}

// TestNamespaceLists checks that a confined token's lists hold only its
// namespace, and that naming another namespace's pipeline in a filter or a
// backfill answers as if it did not exist.
func TestNamespaceLists(t *testing.T) {
	a := newAuthEnv(t)
	var pl api.PipelineList
	_, b := a.do("fin-viewer", "GET", "/pipelines", "")
	mustJSON(t, b, &pl)
	if len(pl.Items) != 1 || pl.Items[0].Name != "ledger" || pl.Items[0].Namespace != "finance" {
		t.Errorf("pipelines of a finance token: %s", b)
	}
	var runs api.Page[api.Run]
	_, b = a.do("fin-viewer", "GET", "/runs", "")
	mustJSON(t, b, &runs)
	if len(runs.Items) != 1 || runs.Items[0].ID != 4 {
		t.Errorf("runs of a finance token: %s", b)
	}
	_, b = a.do("viewer", "GET", "/runs", "")
	mustJSON(t, b, &runs)
	if len(runs.Items) != 4 {
		t.Errorf("runs of a global token: %s", b)
	}
	var bfs api.Page[api.Backfill]
	_, b = a.do("fin-viewer", "GET", "/backfills", "")
	mustJSON(t, b, &bfs)
	if len(bfs.Items) != 1 || bfs.Items[0].ID != 2 {
		t.Errorf("backfills of a finance token: %s", b)
	}
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/runs?pipeline=hello", ""},
		{"GET", "/backfills?pipeline=nightly", ""},
		{"POST", "/backfills", `{"pipeline":"hello","from":"2026-01-01T00:00:00Z","to":"2026-01-02T00:00:00Z"}`},
		{"GET", "/pipelines/no-such", ""},
	} {
		resp, b := a.do("fin-operator", c.method, c.path, c.body)
		if resp.StatusCode != 404 || errorCode(b) != api.CodeNotFound {
			t.Errorf("%s %s as fin-operator: %d %s", c.method, c.path, resp.StatusCode, b)
		}
	}
	// The answer about another namespace's pipeline is the one about a
	// pipeline that does not exist, but for the name.
	_, hidden := a.do("fin-viewer", "GET", "/pipelines/hello", "")
	_, missing := a.do("fin-viewer", "GET", "/pipelines/nope", "")
	if strings.ReplaceAll(string(hidden), "hello", "nope") != string(missing) {
		t.Errorf("a hidden pipeline answers %s, a missing one %s", hidden, missing)
	}
}

// TestActorIsTheCredential checks that operator actions are recorded as
// done by the credential's name, whatever X-Tasuki-Actor says.
func TestActorIsTheCredential(t *testing.T) {
	a := newAuthEnv(t)
	rq := request{method: "POST", path: "/runs/3/cancel", header: map[string]string{
		"Authorization": "Bearer " + a.secrets["operator"], api.ActorHeader: "somebody-else"}}
	if resp, b := serve(a.handler, rq); resp.StatusCode != 200 {
		t.Fatalf("cancel: %d %s", resp.StatusCode, b)
	}
	wantArgs(t, a.fake, "Cancel", int64(3), "operator")
}

// TestAuditLog checks that every request asking to change something is
// recorded with who, from where, what and the answer, refused ones
// included, and that reads and unauthenticated requests are not.
func TestAuditLog(t *testing.T) {
	a := newAuthEnv(t)
	send := func(cred, method, path, body string) int {
		rq := request{method: method, path: path, body: body, remote: "198.51.100.7:4242", header: map[string]string{}}
		if cred != "none" {
			rq.header["Authorization"] = "Bearer " + a.secrets[cred]
		}
		resp, _ := serve(a.handler, rq)
		return resp.StatusCode
	}
	send("operator", "POST", "/runs/3/cancel", "")
	send("viewer", "POST", "/runs/2/retry", "")                          // 403
	send("operator", "POST", "/runs/2/tasks/load/mark", `{"state":"x"}`) // 400
	send("fin-operator", "POST", "/runs/1/cancel", "")                   // 404: another namespace
	send("none", "POST", "/runs/3/cancel", "")                           // 401: logged, not recorded
	send("admin", "GET", "/runs/3", "")                                  // a read
	send("worker", "POST", "/worker/heartbeat", `{"worker":"w","leases":[]}`)
	send("admin", "DELETE", "/tokens/worker", "")
	send("admin", "POST", "/tokens", `{"name":"ci","role":"viewer"}`)
	send("operator", "POST", "/backfills", `{"pipeline":"nightly","from":"2026-01-01T00:00:00Z","to":"2026-01-02T00:00:00Z"}`)
	proxied := request{method: "POST", path: "/runs/2/rerun", remote: "10.0.0.5:8080", header: map[string]string{
		"Authorization": "Bearer " + a.secrets["operator"], "X-Forwarded-For": "203.0.113.9"}}
	serve(a.handler, proxied)

	got := a.audit.Entries()
	type row struct {
		actor, route, target string
		status               int
	}
	want := []row{
		{"operator", "POST /api/v1/runs/{id}/cancel", "id=3", 200},
		{"viewer", "POST /api/v1/runs/{id}/retry", "id=2", 403},
		{"operator", "POST /api/v1/runs/{id}/tasks/{task}/mark", "id=2 task=load", 400},
		{"fin-operator", "POST /api/v1/runs/{id}/cancel", "id=1", 404},
		{"admin", "DELETE /api/v1/tokens/{name}", "name=worker", 204},
		{"admin", "POST /api/v1/tokens", "token=ci", 201},
		{"operator", "POST /api/v1/backfills", "pipeline=nightly", 201},
		{"operator", "POST /api/v1/runs/{id}/rerun", "id=2", 201},
	}
	if len(got) != len(want) {
		t.Fatalf("audit log has %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		remote := "198.51.100.7:4242"
		if i == len(want)-1 {
			remote = "10.0.0.5:8080 (X-Forwarded-For: 203.0.113.9)"
		}
		if (row{g.Actor, g.Route, g.Target, g.Status}) != w || g.Remote != remote || g.Method != "POST" && g.Method != "DELETE" || g.At.IsZero() {
			t.Errorf("entry %d = %+v, want %+v from %s", i, g, w, remote)
		}
	}

	// GET /audit: admins only, newest first, paginated.
	if s := send("operator", "GET", "/audit", ""); s != 403 {
		t.Errorf("GET /audit as operator: %d", s)
	}
	if s := send("fin-admin", "GET", "/audit", ""); s != 403 {
		t.Errorf("GET /audit as a confined admin: %d", s)
	}
	var page api.Page[api.AuditEntry]
	_, b := a.do("admin", "GET", "/audit?limit=2", "")
	mustJSON(t, b, &page)
	if len(page.Items) != 2 || page.Items[0].Route != "POST /api/v1/runs/{id}/rerun" || page.Next == "" {
		t.Fatalf("first page: %s", b)
	}
	_, b = a.do("admin", "GET", "/audit?limit=10&cursor="+page.Next, "")
	page = api.Page[api.AuditEntry]{}
	mustJSON(t, b, &page)
	if len(page.Items) != 6 || page.Items[5].Target != "id=3" || page.Next != "" {
		t.Errorf("second page: %s", b)
	}
}

// TestSecurityDocRoleTable checks the "Who may do what" table of
// docs/security.md against the route table.
func TestSecurityDocRoleTable(t *testing.T) {
	doc, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- route table: begin -->\n", "<!-- route table: end -->"
	_, rest, ok := strings.Cut(string(doc), begin)
	table, _, ok2 := strings.Cut(rest, end)
	if !ok || !ok2 {
		t.Fatalf("docs/security.md has no %q ... %q section", begin, end)
	}
	if want := api.RoleTable(); table != want {
		t.Errorf("docs/security.md's route table differs from the route table; it should read:\n%s", want)
	}
}

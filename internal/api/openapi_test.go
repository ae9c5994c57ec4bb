package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/hostfacts"
	"github.com/tasuki-dev/tasuki/internal/timeline"
)

// openAPIDoc fetches and parses the served OpenAPI document.
func openAPIDoc(t *testing.T, h http.Handler) map[string]any {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, api.Prefix+"/openapi.json", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("openapi.json: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var doc map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	return doc
}

// resolve follows a local $ref.
func resolve(t *testing.T, doc map[string]any, v any) map[string]any {
	t.Helper()
	m, _ := v.(map[string]any)
	ref, ok := m["$ref"].(string)
	if !ok {
		return m
	}
	var cur any = doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		next, ok := cur.(map[string]any)[part]
		if !ok {
			t.Fatalf("$ref %s does not resolve", ref)
		}
		cur = next
	}
	return cur.(map[string]any)
}

var wildcard = regexp.MustCompile(`\{([^}]+)\}`)

// TestOpenAPIMatchesRoutes checks the served document against the route
// table both ways: every route is documented with exactly its path and
// query parameters, and every documented operation is routed by the mux.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t)
	doc := openAPIDoc(t, e.handler)
	if fmt.Sprint(doc["security"]) != "[map[apiToken:[]]]" {
		t.Errorf("default security = %v, want apiToken", doc["security"])
	}
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi = %v", doc["openapi"])
	}
	paths := doc["paths"].(map[string]any)

	documented := map[string]map[string]any{} // "GET /runs" -> operation
	for path, item := range paths {
		for method, op := range item.(map[string]any) {
			documented[strings.ToUpper(method)+" "+path] = op.(map[string]any)
		}
	}
	routed := map[string]api.RouteInfo{}
	for _, rt := range api.Routes() {
		routed[rt.Method+" "+rt.Path] = rt
	}
	for k := range routed {
		if documented[k] == nil {
			t.Errorf("route %s is not in the OpenAPI document", k)
		}
	}
	for k, op := range documented {
		rt, ok := routed[k]
		if !ok {
			t.Errorf("the OpenAPI document has %s, which is not a route", k)
			continue
		}
		// The mux really serves it.
		concrete := wildcard.ReplaceAllString(rt.Path, "1")
		req := httptest.NewRequest(rt.Method, api.Prefix+concrete, nil)
		if got, want := api.MatchedPattern(e.inner, req), rt.Method+" "+api.Prefix+rt.Path; got != want {
			t.Errorf("%s %s is routed to %q, want %q", rt.Method, concrete, got, want)
		}
		// Parameters.
		var pathParams, queryParams []string
		for _, p := range asList(op["parameters"]) {
			p := resolve(t, doc, p)
			switch p["in"] {
			case "path":
				pathParams = append(pathParams, p["name"].(string))
				if p["required"] != true {
					t.Errorf("%s: path parameter %s not required", k, p["name"])
				}
			case "query":
				queryParams = append(queryParams, p["name"].(string))
			}
		}
		var wantPath []string
		for _, m := range wildcard.FindAllStringSubmatch(rt.Path, -1) {
			wantPath = append(wantPath, m[1])
		}
		if !sameSet(pathParams, wantPath) {
			t.Errorf("%s: documented path parameters %v, route has %v", k, pathParams, wantPath)
		}
		if !sameSet(queryParams, rt.Query) {
			t.Errorf("%s: documented query parameters %v, route takes %v", k, queryParams, rt.Query)
		}
		// Responses: a success and the error shape.
		resps, _ := op["responses"].(map[string]any)
		hasSuccess := false
		for code := range resps {
			hasSuccess = hasSuccess || strings.HasPrefix(code, "2")
		}
		if !hasSuccess || resps["default"] == nil {
			t.Errorf("%s: responses %v lack a 2xx or default", k, keys(resps))
		}
		if op["operationId"] == nil || op["summary"] == nil {
			t.Errorf("%s: no operationId or summary", k)
		}
		// Bodies of the routes that take one: JSON, but for the raw bytes
		// of a worker's log chunk and of the files it uploads.
		if rb, ok := op["requestBody"].(map[string]any); ok {
			content := rb["content"].(map[string]any)
			raw := k == "POST /worker/leases/{lease}/log" || k == "PUT /worker/artifacts/{digest}"
			if content["application/json"] == nil && (!raw || content["application/octet-stream"] == nil) {
				t.Errorf("%s: request body is not JSON", k)
			}
		}
		// The document's security is the route table's: a worker token on
		// worker routes, a worker or agent token on host reports, none on public ones, the API token of the
		// document's default everywhere else.
		sec, declared := op["security"]
		switch got := fmt.Sprint(sec); rt.Access {
		case "worker":
			if got != "[map[workerToken:[]]]" {
				t.Errorf("%s: security %s, want workerToken only", k, got)
			}
		case "report":
			if got != "[map[workerToken:[]] map[agentToken:[]]]" {
				t.Errorf("%s: security %s, want workerToken or agentToken", k, got)
			}
		case "public":
			if got != "[]" {
				t.Errorf("%s: security %s, want none (public)", k, got)
			}
		default:
			if declared {
				t.Errorf("%s: security %s, want the default (apiToken)", k, got)
			}
		}
		if rt.Access != "public" && (resps["401"] == nil || resps["403"] == nil) {
			t.Errorf("%s: needs a credential but documents no 401 and 403", k)
		}
	}
}

// TestOpenAPIRefsResolve walks the document for dangling references.
func TestOpenAPIRefsResolve(t *testing.T) {
	doc := openAPIDoc(t, newEnv(t).handler)
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if _, ok := v["$ref"]; ok {
				resolve(t, doc, v)
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
}

// TestOpenAPISchemasMatchTypes checks that each schema has exactly the JSON
// fields of its Go type, so the document cannot drift from the types.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	doc := openAPIDoc(t, newEnv(t).handler)
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	types := map[string]any{
		"Run": api.Run{}, "Task": api.Task{}, "Attempt": api.Attempt{}, "Event": api.Event{}, "Pipeline": api.Pipeline{},
		"Param": api.Param{}, "Backfill": api.Backfill{}, "BackfillRequest": api.BackfillRequest{}, "TriggerRequest": api.TriggerRequest{},
		"MarkRequest": api.MarkRequest{}, "Status": api.Status{}, "ErrorBody": api.ErrorBody{}, "ErrorDetail": api.ErrorDetail{},
		"RunPage": api.Page[api.Run]{}, "EventPage": api.Page[api.Event]{}, "BackfillPage": api.Page[api.Backfill]{}, "PipelineList": api.PipelineList{}, "FileProblem": api.FileProblem{},
		"LeaseRequest": api.LeaseRequest{}, "LeaseResponse": api.LeaseResponse{}, "Lease": api.Lease{}, "Bundle": api.Bundle{}, "BundleItem": api.BundleItem{}, "AttemptSpec": attempt.Spec{},
		"HeartbeatRequest": api.HeartbeatRequest{}, "HeartbeatResponse": api.HeartbeatResponse{}, "CompleteRequest": api.CompleteRequest{},
		"TokenInfo": api.TokenInfo{}, "TokenPage": api.Page[api.TokenInfo]{}, "CreateTokenRequest": api.CreateTokenRequest{}, "CreatedToken": api.CreatedToken{},
		"AuditEntry": api.AuditEntry{}, "AuditPage": api.Page[api.AuditEntry]{},
		"LoginRequest": api.LoginRequest{}, "LoginResponse": api.LoginResponse{}, "CreateUserRequest": api.CreateUserRequest{},
		"PasswordRequest": api.PasswordRequest{}, "UserInfo": api.UserInfo{}, "UserPage": api.Page[api.UserInfo]{},
		"SessionInfo": api.SessionInfo{}, "SessionPage": api.Page[api.SessionInfo]{},
		"Dataset": api.Dataset{}, "DatasetRef": api.DatasetRef{}, "DatasetUpdate": api.DatasetUpdate{}, "DatasetPage": api.Page[api.Dataset]{},
		"DatasetUpdateRequest": api.DatasetUpdateRequest{}, "Lineage": api.Lineage{}, "LineageNode": api.LineageNode{}, "LineageEdge": api.LineageEdge{},
		"SLO": api.SLO{}, "SLOWindow": api.SLOWindow{}, "SLOCompliance": api.SLOCompliance{}, "SLOBreach": api.SLOBreach{}, "SLOPage": api.Page[api.SLO]{},
		"Alert": api.Alert{}, "AlertPage": api.Page[api.Alert]{},
		"Timeline": timeline.Document{}, "TimelineRun": timeline.Run{}, "TimelineDeadline": timeline.Deadline{}, "TimelineSummary": timeline.Summary{},
		"TimelineFailure": timeline.Failure{}, "TimelineAction": timeline.Action{}, "TimelineAttempt": timeline.Attempt{}, "TimelineLogTail": timeline.LogTail{},
		"TimelineEvent": timeline.Event{}, "HostOS": hostfacts.OS{}, "HostCPU": hostfacts.CPU{}, "HostMemory": hostfacts.Memory{}, "HostDisk": hostfacts.Disk{},
		"HostPackageFacts": hostfacts.Package{}, "HostService": hostfacts.Service{}, "HostListener": hostfacts.Listener{},
		"HostRuntime": hostfacts.Runtime{}, "HostReport": hostfacts.Report{}, "HostReported": api.HostReported{}, "Host": api.Host{},
		"AdvisoryFinding": api.AdvisoryFinding{}, "HostPackage": api.HostPackage{}, "HostMatch": api.HostMatch{},
		"HostPage": api.Page[api.HostMatch]{}, "HostDetail": api.HostDetail{}, "HostEvent": api.HostEvent{},
		"HostEventPage": api.Page[api.HostEvent]{}, "AdvisoryLoadError": api.AdvisoryLoadError{}, "AdvisoryAffected": api.AdvisoryAffected{},
		"Advisory": api.Advisory{}, "AdvisoryStatus": api.AdvisoryStatus{},
		"WorkerList": api.WorkerListBody{}, "WorkerInfo": api.WorkerInfo{}, "WorkerAttempt": api.WorkerAttempt{},
	}
	for name, v := range types {
		s, ok := schemas[name].(map[string]any)
		if !ok {
			t.Errorf("no schema %s", name)
			continue
		}
		props := keys(s["properties"].(map[string]any))
		fields := jsonFields(reflect.TypeOf(v))
		if !sameSet(props, fields) {
			t.Errorf("schema %s has properties %v, type has %v", name, props, fields)
		}
		for _, r := range asList(s["required"]) {
			if !slices.Contains(fields, r.(string)) {
				t.Errorf("schema %s requires %s, which is not a field", name, r)
			}
		}
	}
	// Every error code the server can send is listed.
	detail := schemas["ErrorDetail"].(map[string]any)["properties"].(map[string]any)["code"].(map[string]any)
	listed := asList(detail["examples"])
	for _, c := range []string{api.CodeNotFound, api.CodeInvalid, api.CodeInvalidParams, api.CodeConflict, api.CodeUnauthorized,
		api.CodeInternal, api.CodeUnavailable, api.CodeMethodNotAllowed, api.CodeTooLarge, api.CodeRangeNotSatisfiable,
		api.CodeForbidden, api.CodeLeaseLost, api.CodePipelineInvalid, api.CodeTooManyRequests} {
		if !slices.Contains(listed, any(c)) {
			t.Errorf("error code %s is not documented", c)
		}
	}
}

// TestOpenAPIOutcomes checks the documented outcomes against the one
// vocabulary: an attempt shows any outcome, a worker reports any but lost.
func TestOpenAPIOutcomes(t *testing.T) {
	doc := openAPIDoc(t, newEnv(t).handler)
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	enum := func(schema string) []string {
		var out []string
		for _, v := range asList(schemas[schema].(map[string]any)["properties"].(map[string]any)["outcome"].(map[string]any)["enum"]) {
			out = append(out, v.(string))
		}
		return out
	}
	var all, reportable []string
	for _, o := range attempt.Outcomes() {
		all = append(all, string(o))
		if o.Reportable() {
			reportable = append(reportable, string(o))
		}
	}
	if got := enum("Attempt"); !sameSet(got, all) {
		t.Errorf("Attempt.outcome lists %v, want %v", got, all)
	}
	if got := enum("CompleteRequest"); !sameSet(got, reportable) {
		t.Errorf("CompleteRequest.outcome lists %v, want %v", got, reportable)
	}
}

// jsonFields lists the JSON names of a struct's fields.
func jsonFields(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestOpenAPIServedAsIs checks the document is served whole.
func TestOpenAPIServedAsIs(t *testing.T) {
	srv := httptest.NewServer(newEnv(t).handler)
	defer srv.Close()
	resp, err := http.Get(srv.URL + api.Prefix + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !json.Valid(b) || !strings.Contains(string(b), `"/runs/{id}/tasks/{task}/logs"`) {
		t.Fatalf("served document: %.200s", b)
	}
}

package api_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/hostfacts"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// hostsEnv is a handler with the fake inventory, a worker token and a
// viewer token.
type hostsEnv struct {
	h              http.Handler
	inv            *apitest.Inventory
	worker, viewer string
}

func newHostsEnv(t *testing.T) *hostsEnv {
	tokens := apitest.NewTokens()
	e := &hostsEnv{inv: apitest.NewInventory(), worker: tokens.Add("agent-1"), viewer: tokens.AddAPI("grafana", api.RoleViewer, "")}
	e.h = api.NewHandler(apitest.NewSeeded(), nil, api.WithWorkers(apitest.NewWorkers(), tokens), api.WithInventory(e.inv),
		api.WithLogger(slog.New(slog.DiscardHandler)))
	return e
}

func (e *hostsEnv) report(body string) (*http.Response, []byte) {
	return serve(e.h, request{method: "POST", path: "/worker/hosts", body: body,
		header: map[string]string{"Authorization": "Bearer " + e.worker, "Content-Type": "application/json"}})
}

// TestReportHostBadInput sends reports the server must refuse with a 4xx
// that says what is wrong, and one it takes: unknown fields are ignored
// (newer workers), the token's name is the reporter.
func TestReportHostBadInput(t *testing.T) {
	e := newHostsEnv(t)
	good := hostReportBody
	for _, c := range []struct {
		name, body string
		status     int
		msg        string
	}{
		{"empty", "", 400, "missing JSON request body"},
		{"not JSON", "hello", 400, "host report"},
		{"truncated", good[:40], 400, "host report"},
		{"an array", "[]", 400, "host report"},
		{"two values", good + good, 400, "data after the JSON object"},
		{"a key twice", strings.Replace(good, `"hostname":"dns1"`, `"hostname":"dns1","hostname":"dns2"`, 1), 400, `key "hostname" is given twice`},
		{"a key in another case", strings.Replace(good, `"hostname"`, `"HostName"`, 1), 400, `did you mean "hostname"`},
		{"version 2", strings.Replace(good, `"version":1`, `"version":2`, 1), 400, "this server reads version 1"},
		{"no hostname", strings.Replace(good, `"hostname":"dns1"`, `"hostname":""`, 1), 400, "no hostname"},
		{"a wrong type", strings.Replace(good, `"cpu":{"count":1}`, `"cpu":{"count":"one"}`, 1), 400, "host report"},
		{"NUL in a package name", strings.Replace(good, `"name":"dnsmasq-base"`, `"name":"dns\u0000masq"`, 1), 400, "not valid UTF-8 text without NUL bytes"},
		{"invalid UTF-8", strings.Replace(good, "dns1", "dns\xff", 1), 400, "not UTF-8"},
		{"a lone surrogate", strings.Replace(good, "dns1", `dns\ud800`, 1), 400, "surrogate"},
		{"an unknown scheme", strings.Replace(good, `"scheme":"deb"`, `"scheme":"apk"`, 1), 400, `version scheme "apk"`},
		{"too large", `{"hostname":"` + strings.Repeat("x", hostfacts.MaxReportBytes) + `"}`, 413, "host report over"},
	} {
		resp, b := e.report(c.body)
		if resp.StatusCode != c.status || !strings.Contains(errorMessage(b), c.msg) || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %.300s; want %d with %q", c.name, resp.StatusCode, b, c.status, c.msg)
		}
	}
	if len(e.inv.By) != 0 {
		t.Errorf("refused reports were stored: %v", e.inv.By)
	}
	newer := strings.Replace(good, `"os":{`, `"gpu":{"count":2},"os":{"variant":"cloud",`, 1)
	resp, b := e.report(newer)
	var out api.HostReported
	if resp.StatusCode != 200 {
		t.Fatalf("a report with fields of a newer worker: %d %s", resp.StatusCode, b)
	}
	mustJSON(t, b, &out)
	if out.Host != "dns1" || !out.First || e.inv.By[0] != "agent-1" {
		t.Errorf("answer %+v, reporters %v", out, e.inv.By)
	}
	// A viewer token is not a worker's.
	resp, _ = serve(e.h, request{method: "POST", path: "/worker/hosts", body: good,
		header: map[string]string{"Authorization": "Bearer " + e.viewer, "Content-Type": "application/json"}})
	if resp.StatusCode != 403 {
		t.Errorf("a viewer reporting: %d", resp.StatusCode)
	}
}

// TestSearchHostsBadQueries checks that the search refuses what it cannot
// answer with a 400 naming the parameter, and passes what it can.
func TestSearchHostsBadQueries(t *testing.T) {
	e := newHostsEnv(t)
	get := func(path string) (*http.Response, []byte) {
		return serve(e.h, request{method: "GET", path: path, header: map[string]string{"Authorization": "Bearer " + e.viewer}})
	}
	for path, msg := range map[string]string{
		"/hosts?version_lt=2.83":                           "version_lt needs package",
		"/hosts?package=dnsmasq&version_lt=1&version_eq=2": "give one version bound",
		"/hosts?package=dnsmasq&version_le=a:b:c":          "version_le=\"a:b:c\": not a version",
		"/hosts?active=true":                               "active needs service",
		"/hosts?service=ssh&active=yes":                    "expected true or false",
		"/hosts?port=0":                                    "port=\"0\"",
		"/hosts?port=65536":                                "port=\"65536\"",
		"/hosts?os=:12":                                    "os \":12\"",
		"/hosts?os=debian:12:3":                            "expected a distribution",
		"/hosts?limit=1001":                                "limit=\"1001\"",
		"/hosts?package=a&package=b":                       "given 2 times",
		"/hosts?packages=dnsmasq":                          "unknown query parameter \"packages\"",
		"/hosts?package=" + strings.Repeat("x", 201):       "at most 200 characters",
		"/hosts/dns1/events?limit=0":                       "limit=\"0\"",
		"/advisories?id=" + strings.Repeat("C", 201):       "expected an advisory id",
		"/hosts?package=%ff":                               "",
	} {
		resp, b := get(path)
		if msg == "" { // passed on: the service decides
			if resp.StatusCode != 200 {
				t.Errorf("%s: %d %s", path, resp.StatusCode, b)
			}
			continue
		}
		if resp.StatusCode != 400 || errorCode(b) != api.CodeInvalid || !strings.Contains(errorMessage(b), msg) {
			t.Errorf("%s: %d %s; want 400 with %q", path, resp.StatusCode, b, msg)
		}
	}
	resp, b := get("/hosts?package=dnsmasq&version_lt=2.83&service=dnsmasq&active=true&port=53&os=debian:10&stale=true&limit=5")
	if resp.StatusCode != 200 {
		t.Fatalf("a good search: %d %s", resp.StatusCode, b)
	}
	q := e.inv.Queries[len(e.inv.Queries)-1]
	want := api.HostQuery{Package: "dnsmasq", Op: store.VersionLT, Version: "2.83", Service: "dnsmasq", Active: true, Port: 53,
		OS: "debian:10", Stale: true, Limit: 5}
	if q != want {
		t.Errorf("the service was asked %+v, want %+v", q, want)
	}
	if resp, b := get("/hosts/nowhere"); resp.StatusCode != 404 {
		t.Errorf("an unknown host: %d %s", resp.StatusCode, b)
	}
	// Without an inventory, every route answers 503.
	tokens := apitest.NewTokens()
	viewer := tokens.AddAPI("v", api.RoleViewer, "")
	bare := api.NewHandler(apitest.NewSeeded(), nil, api.WithTokens(tokens), api.WithLogger(slog.New(slog.DiscardHandler)))
	for _, path := range []string{"/hosts", "/hosts/dns1", "/hosts/dns1/events", "/advisories"} {
		resp, b := serve(bare, request{method: "GET", path: path, header: map[string]string{"Authorization": "Bearer " + viewer}})
		if resp.StatusCode != 503 || errorCode(b) != api.CodeUnavailable {
			t.Errorf("%s without an inventory: %d %s", path, resp.StatusCode, b)
		}
	}
}

func errorMessage(b []byte) string {
	var eb api.ErrorBody
	_ = json.Unmarshal(b, &eb)
	return eb.Error.Message
}

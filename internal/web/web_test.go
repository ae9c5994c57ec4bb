package web_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/web"
)

// sessions is a fake web.Sessions: one session secret per role, named by
// the role ("viewer", "operator", "admin"), and "ns-viewer" confined to
// namespace "finance".
type sessions struct{}

func (sessions) AuthenticateSession(_ context.Context, secret string) (api.Principal, error) {
	switch secret {
	case "viewer", "operator", "admin":
		return api.Principal{Name: "user:" + secret, Kind: api.KindUser, Role: api.Role(secret)}, nil
	case "ns-viewer":
		return api.Principal{Name: "user:ns", Kind: api.KindUser, Role: api.RoleViewer, Namespace: "finance"}, nil
	}
	return api.Principal{}, api.Errorf(http.StatusUnauthorized, api.CodeUnauthorized, "no valid session")
}

// newUI serves a UI over a fake service; change opts to give it more.
func newUI(t *testing.T, f *apitest.Fake, change ...func(*web.Options)) *httptest.Server {
	t.Helper()
	o := web.Options{Service: f, Sessions: sessions{}}
	for _, c := range change {
		c(&o)
	}
	ui, err := web.New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ui)
	t.Cleanup(srv.Close)
	return srv
}

// get fetches path as the session named by as ("" for none), not
// following redirects, and returns the status and body.
func get(t *testing.T, srv *httptest.Server, as, path string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if as != "" {
		req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: as})
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b), res.Header
}

func TestLoginRedirect(t *testing.T) {
	srv := newUI(t, apitest.New())
	for _, as := range []string{"", "expired"} {
		status, _, h := get(t, srv, as, "/pipelines/x?a=1")
		if status != http.StatusSeeOther || h.Get("Location") != "/login?next=%2Fpipelines%2Fx%3Fa%3D1" {
			t.Errorf("as %q: got %d to %q, want 303 to the login page", as, status, h.Get("Location"))
		}
	}
	for _, next := range []string{"//evil.example/", "/%09/evil.example/", "/a/..%2F%5Cevil.example/", "/%5Cevil.example", "https://evil.example/",
		"/\\evil.example", "/a/../../evil", "/%0a/evil.example"} {
		status, body, _ := get(t, srv, "", "/login?next="+next)
		if status != http.StatusOK || !strings.Contains(body, `data-next="/"`) {
			t.Errorf("login page with next=%s: %d, want it to return to / after", next, status)
		}
		status, _, h := get(t, srv, "viewer", "/login?next="+next)
		if status != http.StatusSeeOther || h.Get("Location") != "/" {
			t.Errorf("signed in, login with next=%s: %d to %q, want 303 to /", next, status, h.Get("Location"))
		}
	}
	status, _, h := get(t, srv, "viewer", "/login?next=/runs/7%3Fa%3D1")
	if status != http.StatusSeeOther || h.Get("Location") != "/runs/7?a=1" {
		t.Errorf("signed in, login with a good next: %d to %q", status, h.Get("Location"))
	}
	status, _, h = get(t, srv, "", "/runs/7/live")
	if status != http.StatusUnauthorized || h.Get("HX-Redirect") != "/login?next=%2Fruns%2F7" {
		t.Errorf("a live stream without a session: %d, sent to %q; want 401 and the run's page after login", status, h.Get("HX-Redirect"))
	}
}

func TestPipelinesPage(t *testing.T) {
	f := apitest.New()
	f.AddPipeline(api.Pipeline{Name: "good", Namespace: "finance", Schedule: "0 * * * *", Timezone: "Asia/Tokyo"})
	f.AddPipeline(api.Pipeline{Name: "other"})
	f.AddProblem(api.FileProblem{File: "broken.yaml", Errors: []string{"broken.yaml:3:5: unknown key \"nedds\""}})
	srv := newUI(t, f)
	status, body, h := get(t, srv, "viewer", "/")
	if status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("got %d %s", status, h.Get("Content-Type"))
	}
	for _, want := range []string{`href="/pipelines/good"`, `href="/pipelines/other"`, "broken.yaml:3:5", "Asia/Tokyo", `<meta name="csrf-token"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	_, body, _ = get(t, srv, "ns-viewer", "/")
	if !strings.Contains(body, `href="/pipelines/good"`) || strings.Contains(body, `href="/pipelines/other"`) || strings.Contains(body, "broken.yaml") {
		t.Errorf("a viewer confined to finance sees other namespaces' pipelines or the broken files")
	}
}

func TestRouteAccess(t *testing.T) {
	srv := newUI(t, apitest.New())
	for pattern, role := range web.Routes() {
		method, path, _ := strings.Cut(pattern, " ")
		if method != http.MethodGet || strings.Contains(path, "{") {
			continue // pages with path values are checked by their own tests
		}
		path = strings.TrimSuffix(path, "{$}")
		for _, as := range []string{"viewer", "operator", "admin"} {
			status, _, _ := get(t, srv, as, path)
			allowed := role == "" || api.Role(as).Rank() >= role.Rank()
			if allowed && status == http.StatusForbidden || !allowed && status != http.StatusForbidden {
				t.Errorf("%s as %s: %d (rule: %q)", pattern, as, status, role)
			}
		}
	}
}

func TestUnknownPage(t *testing.T) {
	srv := newUI(t, apitest.New())
	status, body, _ := get(t, srv, "viewer", "/no/such/page")
	if status != http.StatusNotFound || !strings.Contains(body, "<h1>404") {
		t.Errorf("got %d", status)
	}
	res, err := http.Post(srv.URL+"/", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", res.StatusCode)
	}
}

func TestStatic(t *testing.T) {
	srv := newUI(t, apitest.New())
	for _, f := range []string{"app.css", "app.js", "htmx.min.js"} {
		status, _, h := get(t, srv, "", "/static/"+f)
		if status != http.StatusOK || h.Get("ETag") == "" {
			t.Errorf("%s: %d, etag %q", f, status, h.Get("ETag"))
		}
	}
}

// slos is a fake api.SLOs.
type slos []api.SLO

func (s slos) ListSLOs(_ context.Context, pipeline string) ([]api.SLO, error) {
	var out []api.SLO
	for _, o := range s {
		if pipeline == "" || o.Pipeline == pipeline {
			out = append(out, o)
		}
	}
	return out, nil
}

func TestPipelinesPageServiceLevels(t *testing.T) {
	f := apitest.New()
	f.AddPipeline(api.Pipeline{Name: "a-calm"})
	f.AddPipeline(api.Pipeline{Name: "b-late"})
	f.AddPipeline(api.Pipeline{Name: "c-none"})
	srv := newUI(t, f, func(o *web.Options) {
		o.SLOs = slos{
			{Name: "pipeline:a-calm", Pipeline: "a-calm", Kind: "fresh_by", FreshBy: "09:00", Definition: "fresh by 09:00 UTC", State: api.SLOMet},
			{Name: "dataset:orders", Pipeline: "b-late", Dataset: "orders", Kind: "max_age", MaxAge: "2h", Definition: "at most 2h old", State: api.SLOBreached},
		}
	})
	_, body, _ := get(t, srv, "viewer", "/")
	for _, want := range []string{"s-met", "fresh by 09:00", "s-breached", "orders", "max age 2h"} {
		if !strings.Contains(body, want) {
			t.Errorf("the pipelines page lacks %q", want)
		}
	}
	// A breached objective puts its pipeline first.
	if i, j := strings.Index(body, `href="/pipelines/b-late"`), strings.Index(body, `href="/pipelines/a-calm"`); i < 0 || j < 0 || i > j {
		t.Errorf("the breached pipeline is not listed before the calm one")
	}
}

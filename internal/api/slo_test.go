package api_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/logs"
)

// sloEnv is a handler over the fake objectives with a token of each role,
// global and confined to namespace finance.
type sloEnv struct {
	h       http.Handler
	fake    *apitest.SLOs
	tokens  *apitest.Tokens
	secrets map[string]string
}

func newSLOEnv(t *testing.T, opts ...api.Option) *sloEnv {
	t.Helper()
	e := &sloEnv{fake: apitest.NewSLOs(), tokens: apitest.NewTokens(), secrets: map[string]string{}}
	for _, r := range api.Roles() {
		e.secrets[string(r)] = e.tokens.AddAPI(string(r), r, "")
		e.secrets["fin-"+string(r)] = e.tokens.AddAPI("fin-"+string(r), r, "finance")
	}
	opts = append([]api.Option{api.WithTokens(e.tokens), api.WithSLOs(e.fake), api.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	e.h = api.NewHandler(apitest.NewSeeded(), logs.NewFiles(t.TempDir()), opts...)
	return e
}

func (e *sloEnv) get(cred, path string) (*http.Response, []byte) {
	return serve(e.h, request{method: "GET", path: path, header: map[string]string{"Authorization": "Bearer " + e.secrets[cred]}})
}

// TestSLOList reads the objectives as a viewer, all of them and one
// pipeline's, and checks the JSON a script reads.
func TestSLOList(t *testing.T) {
	e := newSLOEnv(t)
	resp, b := e.get("viewer", "/slo")
	var page api.Page[api.SLO]
	mustJSON(t, b, &page)
	if resp.StatusCode != 200 || len(page.Items) != 2 {
		t.Fatalf("list: %d %s", resp.StatusCode, b)
	}
	mart := page.Items[1]
	if mart.Name != "dataset:warehouse.sales_mart" || mart.State != api.SLOBreached || len(mart.Breaches) != 2 ||
		mart.Breaches[0].Task != "wait-london" || !mart.Breaches[0].Open || mart.Breaches[0].End != nil || mart.Breaches[1].End == nil {
		t.Errorf("sales mart objective = %+v", mart)
	}
	// The JSON names: compliance by period, absent when nothing was judged.
	for _, want := range []string{`"7d":80`, `"30d":93.33`, `"state":"breached"`, `"cause":"run 12 is running: task wait-london is waiting`,
		`"compliance":{"7d":100}`, `"breaches":[]`, `"days":["mon","tue","wed","thu","fri"]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("answer lacks %s:\n%s", want, b)
		}
	}

	_, b = e.get("viewer", "/slo?pipeline=orders-elt")
	mustJSON(t, b, &page)
	if len(page.Items) != 1 || page.Items[0].Pipeline != "orders-elt" {
		t.Errorf("one pipeline's objectives: %s", b)
	}
	_, b = e.get("viewer", "/slo?pipeline=nothing-here")
	if strings.TrimSpace(string(b)) != `{"items":[]}` {
		t.Errorf("a pipeline without objectives: %s, want no items", b)
	}
	if got := e.fake.Asked(); !slices.Equal(got, []string{"", "orders-elt", "nothing-here"}) {
		t.Errorf("asked for %q", got)
	}
}

// TestSLOErrors checks what GET /slo refuses: confined tokens (its rule
// is the datasets'), bad parameters, a failing service, and a server
// without objectives.
func TestSLOErrors(t *testing.T) {
	e := newSLOEnv(t)
	for _, c := range []struct {
		cred, path string
		status     int
		code, msg  string
	}{
		{"fin-viewer", "/slo", 403, api.CodeForbidden, "global tokens"},
		{"fin-admin", "/slo?pipeline=ledger", 403, api.CodeForbidden, "global tokens"},
		{"viewer", "/slo?pipeline=a$b", 400, api.CodeInvalid, `pipeline name "a$b"`},
		{"viewer", "/slo?pipeline=a&pipeline=b", 400, api.CodeInvalid, "given 2 times"},
		{"viewer", "/slo?state=breached", 400, api.CodeInvalid, `unknown query parameter "state": this route takes pipeline`},
	} {
		resp, b := e.get(c.cred, c.path)
		var eb api.ErrorBody
		_ = json.Unmarshal(b, &eb)
		if resp.StatusCode != c.status || eb.Error.Code != c.code || !strings.Contains(eb.Error.Message, c.msg) {
			t.Errorf("GET %s as %s: %d %s, want %d %s with %q", c.path, c.cred, resp.StatusCode, b, c.status, c.code, c.msg)
		}
	}
	e.fake.Fail(errors.New("store down"))
	if resp, b := e.get("viewer", "/slo"); resp.StatusCode != 500 || strings.Contains(string(b), "store down") {
		t.Errorf("a failing service: %d %s, want 500 without its cause", resp.StatusCode, b)
	}

	bare := newSLOEnv(t, api.WithSLOs(nil))
	if resp, b := bare.get("viewer", "/slo"); resp.StatusCode != 503 || !strings.Contains(string(b), "no freshness objectives") {
		t.Errorf("without objectives: %d %s, want 503", resp.StatusCode, b)
	}
	if resp, _ := bare.get("fin-viewer", "/slo"); resp.StatusCode != 403 {
		t.Errorf("without objectives, a confined token: %d, want 403 first", resp.StatusCode)
	}
}

// TestSLOClient reads the objectives through the Go client over a real
// HTTP server.
func TestSLOClient(t *testing.T) {
	e := newSLOEnv(t)
	srv := httptest.NewServer(e.h)
	t.Cleanup(srv.Close)
	base, err := api.NewClient(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	c := base.WithToken(e.secrets["viewer"])
	list, err := c.ListSLOs(t.Context(), "")
	if err != nil || len(list) != 2 || list[1].Breaches[1].RunID != 9 || *list[1].Compliance.Days90 < 97 {
		t.Fatalf("ListSLOs = %+v, %v", list, err)
	}
	list, err = c.ListSLOs(t.Context(), "sales-mart")
	if err != nil || len(list) != 1 || list[0].Dataset != "warehouse.sales_mart" {
		t.Fatalf("ListSLOs(sales-mart) = %+v, %v", list, err)
	}
	var apiErr *api.Error
	if _, err := base.WithToken(e.secrets["fin-viewer"]).ListSLOs(t.Context(), ""); !errors.As(err, &apiErr) || apiErr.Status != 403 {
		t.Errorf("confined client: %v, want a 403 *api.Error", err)
	}
}

package api_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/logs"
)

// datasetsEnv is a handler over the fake datasets with a token of each
// role, global and confined to namespace finance, and an audit log.
type datasetsEnv struct {
	h       http.Handler
	fake    *apitest.Datasets
	audit   *apitest.AuditLog
	secrets map[string]string
}

func newDatasetsEnv(t *testing.T) *datasetsEnv {
	t.Helper()
	e := &datasetsEnv{fake: apitest.NewDatasets(), audit: &apitest.AuditLog{}, secrets: map[string]string{}}
	tokens := apitest.NewTokens()
	for _, r := range api.Roles() {
		e.secrets[string(r)] = tokens.AddAPI(string(r), r, "")
		e.secrets["fin-"+string(r)] = tokens.AddAPI("fin-"+string(r), r, "finance")
	}
	e.h = api.NewHandler(apitest.NewSeeded(), logs.NewFiles(t.TempDir()), api.WithTokens(tokens), api.WithDatasets(e.fake),
		api.WithAuditLog(e.audit), api.WithLogger(slog.New(slog.DiscardHandler)))
	return e
}

func (e *datasetsEnv) do(cred, method, path, body string) (*http.Response, []byte) {
	h := map[string]string{"Authorization": "Bearer " + e.secrets[cred]}
	if body != "" {
		h["Content-Type"] = "application/json"
	}
	return serve(e.h, request{method: method, path: path, body: body, header: h})
}

// TestDatasetReads checks the listing, one dataset with its pages of
// updates, and the lineage walk's parameters, as a viewer.
func TestDatasetReads(t *testing.T) {
	e := newDatasetsEnv(t)

	resp, b := e.do("viewer", "GET", "/datasets", "")
	var list api.Page[api.Dataset]
	mustJSON(t, b, &list)
	if resp.StatusCode != 200 || len(list.Items) != 2 || list.Items[0].Name != "raw.orders" || list.Items[1].Name != "warehouse.mart" {
		t.Fatalf("list: %d %s", resp.StatusCode, b)
	}
	raw := list.Items[0]
	if raw.LastUpdate == nil || raw.LastUpdate.ID != 2 || raw.LastUpdate.Actor != "ops" || len(raw.Producers) != 1 || len(raw.Consumers) != 2 {
		t.Errorf("raw.orders in the list: %+v", raw)
	}
	if strings.Contains(string(b), `"updates"`) || !strings.Contains(string(b), `"consumers":[`) {
		t.Errorf("the list shows updates or leaves out consumers: %s", b)
	}

	// One dataset, a page of one update at a time, newest first.
	resp, b = e.do("viewer", "GET", "/datasets/raw.orders?limit=1", "")
	var ds api.Dataset
	mustJSON(t, b, &ds)
	if resp.StatusCode != 200 || len(ds.Updates) != 1 || ds.Updates[0].ID != 2 || ds.Next != "2" || ds.LastUpdate.ID != 2 {
		t.Fatalf("first page: %d %s", resp.StatusCode, b)
	}
	_, b = e.do("viewer", "GET", "/datasets/raw.orders?limit=1&cursor="+ds.Next, "")
	ds = api.Dataset{}
	mustJSON(t, b, &ds)
	if len(ds.Updates) != 1 || ds.Updates[0].ID != 1 || ds.Updates[0].RunID != 7 || ds.Updates[0].IntervalStart == nil || ds.Next != "" {
		t.Errorf("second page: %s", b)
	}
	// A declared dataset without updates shows an empty page.
	_, b = e.do("viewer", "GET", "/datasets/warehouse.mart", "")
	if !strings.Contains(string(b), `"updates":[]`) || strings.Contains(string(b), "last_update") {
		t.Errorf("a dataset without updates: %s", b)
	}

	// Lineage: the defaults, then what was asked.
	_, b = e.do("viewer", "GET", "/lineage/raw.orders", "")
	var l api.Lineage
	mustJSON(t, b, &l)
	if l.Root != (api.LineageNode{Kind: api.NodeDataset, Name: "raw.orders"}) || len(l.Nodes) != 5 || len(l.Edges) != 6 {
		t.Errorf("lineage: %s", b)
	}
	e.do("viewer", "GET", "/lineage/mart?direction=upstream&depth=50", "")
	want := []api.LineageQuery{{Direction: "both", Depth: api.DefaultLineageDepth}, {Direction: "upstream", Depth: 50}}
	if got := e.fake.LineageQueries(); !slices.Equal(got, want) {
		t.Errorf("lineage queries %+v, want %+v", got, want)
	}
}

// TestDatasetErrors checks what the routes refuse and with what: bad
// names, bodies and parameters (400), unknown names (404), roles and
// confined tokens (403), and a server without datasets (503).
func TestDatasetErrors(t *testing.T) {
	e := newDatasetsEnv(t)
	long := strings.Repeat("d", 256)
	bigMeta := `{"metadata": {"k": "` + strings.Repeat("x", 64<<10) + `"}}`
	for _, c := range []struct {
		cred, method, path, body string
		status                   int
		code, msg                string
	}{
		{"viewer", "POST", "/datasets/raw.orders/updates", `{}`, 403, api.CodeForbidden, "needs operator"},
		{"fin-viewer", "GET", "/datasets", "", 403, api.CodeForbidden, "confined to namespace"},
		{"fin-admin", "GET", "/datasets/raw.orders", "", 403, api.CodeForbidden, "global tokens"},
		{"fin-operator", "POST", "/datasets/raw.orders/updates", `{}`, 403, api.CodeForbidden, "global tokens"},
		{"fin-viewer", "GET", "/lineage/raw.orders", "", 403, api.CodeForbidden, "global tokens"},

		{"operator", "POST", "/datasets/-raw/updates", `{}`, 400, api.CodeInvalid, `dataset name "-raw": expected letters`},
		{"operator", "POST", "/datasets/.hidden/updates", `{}`, 400, api.CodeInvalid, "starting with a letter, digit or '_'"},
		{"operator", "POST", "/datasets/a%20b/updates", `{}`, 400, api.CodeInvalid, `"a b"`},
		{"operator", "POST", "/datasets/caf%C3%A9/updates", `{}`, 400, api.CodeInvalid, "expected letters"},
		{"operator", "POST", "/datasets/" + long + "/updates", `{}`, 400, api.CodeInvalid, "at most 255 bytes"},
		{"viewer", "GET", "/datasets/a$b", "", 400, api.CodeInvalid, "expected letters"},
		{"viewer", "GET", "/lineage/a$b", "", 400, api.CodeInvalid, "dataset or pipeline name"},

		{"operator", "POST", "/datasets/raw.orders/updates", `{"meta": {}}`, 400, api.CodeInvalid, `unknown field "meta"`},
		{"operator", "POST", "/datasets/raw.orders/updates", `{"Metadata": {}}`, 400, api.CodeInvalid, "Metadata"},
		{"operator", "POST", "/datasets/raw.orders/updates", `{"metadata": {}, "metadata": {}}`, 400, api.CodeInvalid, "metadata"},
		{"operator", "POST", "/datasets/raw.orders/updates", `{"metadata": [1]}`, 400, api.CodeInvalid, `field "metadata": expected a JSON object, got an array`},
		{"operator", "POST", "/datasets/raw.orders/updates", `{"metadata": "rows=3"}`, 400, api.CodeInvalid, "got a string"},
		{"operator", "POST", "/datasets/raw.orders/updates", `{"metadata": {"a": "\u0000"}}`, 400, api.CodeInvalid, `\u0000`},
		{"operator", "POST", "/datasets/raw.orders/updates", `{"metadata": {"a": 1, "a": 2}}`, 400, api.CodeInvalid, `"a"`},
		{"operator", "POST", "/datasets/raw.orders/updates", bigMeta, 400, api.CodeInvalid, "at most 65536 bytes"},
		{"operator", "POST", "/datasets/raw.orders/updates", `{"metadata": {}} {}`, 400, api.CodeInvalid, "after the JSON value"},
		{"operator", "POST", "/datasets/raw.orders/updates?x=1", `{}`, 400, api.CodeInvalid, `unknown query parameter "x"`},

		{"viewer", "GET", "/datasets/nope", "", 404, api.CodeNotFound, `no dataset "nope"`},
		{"viewer", "GET", "/datasets/raw.orders?cursor=abc", "", 400, api.CodeInvalid, "cursor"},
		{"viewer", "GET", "/datasets/raw.orders?limit=0", "", 400, api.CodeInvalid, "limit"},
		{"viewer", "GET", "/lineage/nope", "", 404, api.CodeNotFound, `no dataset or pipeline named "nope"`},
		{"viewer", "GET", "/lineage/raw.orders?direction=sideways", "", 400, api.CodeInvalid, "expected upstream, downstream or both"},
		{"viewer", "GET", "/lineage/raw.orders?depth=0", "", 400, api.CodeInvalid, "from 1 to 50"},
		{"viewer", "GET", "/lineage/raw.orders?depth=51", "", 400, api.CodeInvalid, "from 1 to 50"},
		{"viewer", "GET", "/lineage/raw.orders?direction=up&direction=down", "", 400, api.CodeInvalid, "given 2 times"},
		{"viewer", "GET", "/lineage/raw.orders?upstream=1", "", 400, api.CodeInvalid, "direction, depth"},
	} {
		resp, b := e.do(c.cred, c.method, c.path, c.body)
		var eb api.ErrorBody
		_ = json.Unmarshal(b, &eb)
		if resp.StatusCode != c.status || eb.Error.Code != c.code || !strings.Contains(eb.Error.Message, c.msg) {
			t.Errorf("%s %s as %s: %d %s, want %d %s with %q", c.method, clipPath(c.path), c.cred, resp.StatusCode, b, c.status, c.code, c.msg)
		}
	}
	if n := len(e.fake.Updates()); n != 2 {
		t.Errorf("refused requests recorded updates: %d, want the 2 seeded", n)
	}

	// Without datasets: 503, after authorization.
	tokens := apitest.NewTokens()
	viewer := tokens.AddAPI("viewer", api.RoleViewer, "")
	h := api.NewHandler(apitest.NewSeeded(), logs.NewFiles(t.TempDir()), api.WithTokens(tokens), api.WithLogger(slog.New(slog.DiscardHandler)))
	for _, path := range []string{"/datasets", "/datasets/raw.orders", "/lineage/raw.orders"} {
		resp, b := serve(h, request{method: "GET", path: path, header: bearer(viewer)})
		if resp.StatusCode != 503 || errorCode(b) != api.CodeUnavailable {
			t.Errorf("GET %s without datasets: %d %s", path, resp.StatusCode, b)
		}
	}
}

func clipPath(p string) string {
	if len(p) > 80 {
		return p[:80] + "..."
	}
	return p
}

// TestRecordDatasetUpdate records updates over real HTTP with the Go
// client: the actor is the token's name, metadata is kept as sent (null
// and no body are none), the answer is 201 with a Location, the audit log
// has each, and a failure of the store is a 500 that says nothing of it.
func TestRecordDatasetUpdate(t *testing.T) {
	e := newDatasetsEnv(t)
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	base, err := api.NewClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := base.WithToken(e.secrets["operator"])
	ctx := t.Context()

	u, err := c.RecordDatasetUpdate(ctx, "raw.orders", json.RawMessage(`{"rows": 7, "path": "s3://b/2026-03-01/"}`))
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != 3 || u.Dataset != "raw.orders" || u.Actor != "operator" || !sameJSONText(u.Metadata, `{"rows":7,"path":"s3://b/2026-03-01/"}`) || u.RunID != 0 {
		t.Errorf("recorded %+v (metadata %s)", u, u.Metadata)
	}
	// A dataset nothing declares may be updated, then shows in the list.
	if _, err := c.RecordDatasetUpdate(ctx, "ext_feed-2.v1", nil); err != nil {
		t.Fatal(err)
	}
	list, err := c.ListDatasets(ctx)
	if err != nil || len(list) != 3 || list[0].Name != "ext_feed-2.v1" || list[0].LastUpdate == nil || list[0].LastUpdate.Actor != "operator" {
		t.Errorf("list = %+v, %v", list, err)
	}
	ds, err := c.Dataset(ctx, "raw.orders", "", 0)
	if err != nil || len(ds.Updates) != 3 || ds.Updates[0].ID != 3 || ds.LastUpdate.ID != 3 {
		t.Errorf("dataset = %+v, %v", ds, err)
	}

	// Raw requests: 201 and Location; no body and a null metadata are none.
	for _, body := range []string{"", `{}`, `{"metadata": null}`} {
		req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+api.Prefix+"/datasets/raw.orders/updates", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.secrets["admin"])
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got api.DatasetUpdate
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if resp.StatusCode != 201 || err != nil || got.Metadata != nil || got.Actor != "admin" ||
			resp.Header.Get("Location") != api.Prefix+"/datasets/raw.orders" {
			t.Errorf("body %q: %d %+v %v, Location %q", body, resp.StatusCode, got, err, resp.Header.Get("Location"))
		}
	}

	// Every POST is in the audit log, refused ones too.
	if _, err := base.WithToken(e.secrets["viewer"]).RecordDatasetUpdate(ctx, "raw.orders", nil); err == nil {
		t.Error("a viewer recorded an update")
	}
	var rows []string
	for _, a := range e.audit.Entries() {
		rows = append(rows, a.Actor+" "+a.Route+" "+a.Target+" "+strconv.Itoa(a.Status))
	}
	want := []string{
		"operator POST /api/v1/datasets/{name}/updates name=raw.orders 201",
		"operator POST /api/v1/datasets/{name}/updates name=ext_feed-2.v1 201",
		"admin POST /api/v1/datasets/{name}/updates name=raw.orders 201",
		"admin POST /api/v1/datasets/{name}/updates name=raw.orders 201",
		"admin POST /api/v1/datasets/{name}/updates name=raw.orders 201",
		"viewer POST /api/v1/datasets/{name}/updates name=raw.orders 403",
	}
	if !slices.Equal(rows, want) {
		t.Errorf("audit log:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}

	// A store failure is an internal error whose detail stays in the log.
	e.fake.Fail(apitest.ErrBoom)
	_, err = c.RecordDatasetUpdate(ctx, "raw.orders", nil)
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Status != 500 || strings.Contains(apiErr.Message, "boom") {
		t.Errorf("a failing store: %v", err)
	}
}

// TestLineageClient checks that the client sends what it is asked and
// reads the graph back.
func TestLineageClient(t *testing.T) {
	e := newDatasetsEnv(t)
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	base, _ := api.NewClient(srv.URL, nil)
	c := base.WithToken(e.secrets["viewer"])
	l, err := c.Lineage(t.Context(), "mart", api.LineageQuery{Direction: api.LineageDownstream, Depth: 3})
	if err != nil {
		t.Fatal(err)
	}
	if l.Root.Name != "mart" || l.Root.Kind != api.NodePipeline || l.Direction != "downstream" || l.Depth != 3 || len(l.Edges) != 6 {
		t.Errorf("lineage = %+v", l)
	}
	if _, err := c.Lineage(t.Context(), "mart", api.LineageQuery{}); err != nil {
		t.Fatal(err)
	}
	want := []api.LineageQuery{{Direction: "downstream", Depth: 3}, {Direction: "both", Depth: api.DefaultLineageDepth}}
	if got := e.fake.LineageQueries(); !slices.Equal(got, want) {
		t.Errorf("queries %+v, want %+v", got, want)
	}
	if err := api.CheckDatasetName("raw.orders"); err != nil {
		t.Errorf("CheckDatasetName(raw.orders) = %v", err)
	}
	if err := api.CheckDatasetName("raw orders"); err == nil {
		t.Error("CheckDatasetName accepts a space")
	}
}

func sameJSONText(raw json.RawMessage, want string) bool {
	var a, b any
	return json.Unmarshal(raw, &a) == nil && json.Unmarshal([]byte(want), &b) == nil && reflect.DeepEqual(a, b)
}

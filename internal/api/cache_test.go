package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// cacheKey is the n-th key of a test, in key order.
func cacheKey(n int) string { return fmt.Sprintf("%064x", n) }

// seedCache puts entries of two pipelines: train/fit (a map, items 0 to
// 2), train/eval and report/render.
func seedCache(t *testing.T, c *apitest.Cache) {
	t.Helper()
	at := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	var entries []store.CacheEntry
	for i, e := range []struct {
		pipeline, task string
		item           int
	}{{"train", "fit", 0}, {"train", "fit", 1}, {"train", "fit", 2}, {"train", "eval", -1}, {"report", "render", -1}} {
		entries = append(entries, store.CacheEntry{
			Key: cacheKey(i + 1), Pipeline: e.pipeline, TaskID: e.task, RunID: 7, Item: e.item,
			Result: json.RawMessage(`{"rows":42}`), Size: 100, CreatedAt: at, UsedAt: at,
		})
	}
	entries[3].Outputs = []artifact.File{{Path: "model.bin", Digest: "sha256:" + cacheKey(9), Size: 1000}}
	entries[3].Size = 1011
	entries[3].ExpiresAt = at.Add(30 * 24 * time.Hour)
	if err := c.PutCache(context.Background(), entries...); err != nil {
		t.Fatal(err)
	}
}

// cacheEnv is a handler over a fake cache with a token of each role,
// global and confined to namespace finance.
type cacheEnv struct {
	h       http.Handler
	fake    *apitest.Cache
	secrets map[string]string
}

func newCacheEnv(t *testing.T) *cacheEnv {
	t.Helper()
	e := &cacheEnv{fake: apitest.NewCache(), secrets: map[string]string{}}
	seedCache(t, e.fake)
	tokens := apitest.NewTokens()
	for _, r := range api.Roles() {
		e.secrets[string(r)] = tokens.AddAPI(string(r), r, "")
		e.secrets["fin-"+string(r)] = tokens.AddAPI("fin-"+string(r), r, "finance")
	}
	e.h = api.NewHandler(apitest.NewSeeded(), logs.NewFiles(t.TempDir()), api.WithTokens(tokens), api.WithCache(e.fake),
		api.WithLogger(slog.New(slog.DiscardHandler)))
	return e
}

func (e *cacheEnv) do(cred, method, path, body string) (*http.Response, []byte) {
	h := map[string]string{"Authorization": "Bearer " + e.secrets[cred]}
	if body != "" {
		h["Content-Type"] = "application/json"
	}
	return serve(e.h, request{method: method, path: path, body: body, header: h})
}

// TestCacheList pages through the entries with and without filters.
func TestCacheList(t *testing.T) {
	e := newCacheEnv(t)

	resp, b := e.do("viewer", "GET", "/cache", "")
	var page api.CachePage
	mustJSON(t, b, &page)
	if resp.StatusCode != 200 || len(page.Items) != 5 || page.Next != "" || page.Stats != (api.CacheStats{Entries: 5, Bytes: 1411}) {
		t.Fatalf("list: %d %s", resp.StatusCode, b)
	}
	fit, eval := page.Items[0], page.Items[3]
	if fit.Key != cacheKey(1) || fit.Pipeline != "train" || fit.Task != "fit" || fit.RunID != 7 || fit.Item == nil || *fit.Item != 0 ||
		fit.ExpiresAt != nil || fit.Outputs == nil {
		t.Errorf("a map item's entry: %+v", fit)
	}
	if eval.Item != nil || eval.ExpiresAt == nil || len(eval.Outputs) != 1 || eval.Outputs[0].Path != "model.bin" {
		t.Errorf("a task's entry: %+v", eval)
	}
	if !strings.Contains(string(b), `"outputs":[]`) || strings.Contains(string(b), `"expires_at":null`) || strings.Contains(string(b), `"rows"`) {
		t.Errorf("an entry without outputs or expiry reads: %s", b)
	}

	// Pages of two, by key, each with the stats of the whole cache.
	var keys []string
	for after, pages := "", 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		_, b := e.do("viewer", "GET", "/cache?limit=2&after="+after, "")
		var p api.CachePage
		mustJSON(t, b, &p)
		if p.Stats.Entries != 5 {
			t.Errorf("stats of a page: %+v", p.Stats)
		}
		for _, it := range p.Items {
			keys = append(keys, it.Key)
		}
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	if want := []string{cacheKey(1), cacheKey(2), cacheKey(3), cacheKey(4), cacheKey(5)}; !slices.Equal(keys, want) {
		t.Errorf("paged keys %v", keys)
	}

	for _, c := range []struct {
		query string
		want  int
	}{{"pipeline=train", 4}, {"pipeline=train&task=fit", 3}, {"pipeline=report&task=render", 1}, {"pipeline=nope", 0}} {
		_, b := e.do("viewer", "GET", "/cache?"+c.query, "")
		var p api.CachePage
		mustJSON(t, b, &p)
		if len(p.Items) != c.want || p.Items == nil {
			t.Errorf("?%s: %s", c.query, b)
		}
	}
	if got := e.fake.Lists[len(e.fake.Lists)-1]; got != (store.CacheFilter{Pipeline: "nope", Limit: store.DefaultCacheLimit}) {
		t.Errorf("the store was asked %+v", got)
	}
}

// TestCacheBadRequests: what the routes refuse, with what.
func TestCacheBadRequests(t *testing.T) {
	e := newCacheEnv(t)
	for _, c := range []struct{ method, path, body, want string }{
		{"GET", "/cache?task=fit", "", "name its pipeline too"},
		{"GET", "/cache?pipeline=a/b", "", `pipeline name "a/b"`},
		{"GET", "/cache?after=xyz", "", `query parameter after="xyz": expected a cache key`},
		{"GET", "/cache?after=" + cacheKey(1) + "0", "", "query parameter after"},
		{"GET", "/cache?limit=0", "", "limit"},
		{"GET", "/cache?limit=1001", "", "limit"},
		{"GET", "/cache?pipline=train", "", "pipline"},
		{"DELETE", "/cache/" + strings.ToUpper(cacheKey(10)), "", "64 lowercase hex digits"},
		{"DELETE", "/cache/abc", "", "64 lowercase hex digits"},
		{"POST", "/cache/purge", `{}`, `needs "all": true`},
		{"POST", "/cache/purge", ``, "body"},
		{"POST", "/cache/purge", `{"task":"fit"}`, "name its pipeline too"},
		{"POST", "/cache/purge", `{"pipeline":"train","all":true}`, "without pipeline"},
		{"POST", "/cache/purge", `{"pipeline":"train","al":true}`, "unknown field"},
	} {
		resp, b := e.do("operator", c.method, c.path, c.body)
		var eb api.ErrorBody
		_ = json.Unmarshal(b, &eb)
		if resp.StatusCode != 400 || eb.Error.Code != api.CodeInvalid || !strings.Contains(eb.Error.Message, c.want) {
			t.Errorf("%s %s %s: %d %s; want 400 with %q", c.method, c.path, c.body, resp.StatusCode, b, c.want)
		}
	}
	if n := len(e.fake.Keys()); n != 5 {
		t.Errorf("refused requests deleted entries: %d left", n)
	}
	if len(e.fake.Purges) != 0 {
		t.Errorf("refused purges reached the store: %v", e.fake.Purges)
	}
}

// TestCacheDeletes deletes one entry, then purges a task, a pipeline and
// everything, as an operator; a viewer and a confined token may not.
func TestCacheDeletes(t *testing.T) {
	e := newCacheEnv(t)
	for _, c := range []struct{ cred, method, path, body string }{
		{"viewer", "DELETE", "/cache/" + cacheKey(1), ""},
		{"viewer", "POST", "/cache/purge", `{"all":true}`},
		{"fin-operator", "DELETE", "/cache/" + cacheKey(1), ""},
		{"fin-admin", "POST", "/cache/purge", `{"all":true}`},
		{"fin-viewer", "GET", "/cache", ""},
	} {
		if resp, b := e.do(c.cred, c.method, c.path, c.body); resp.StatusCode != 403 {
			t.Errorf("%s %s as %s: %d %s, want 403", c.method, c.path, c.cred, resp.StatusCode, b)
		}
	}

	if resp, b := e.do("operator", "DELETE", "/cache/"+cacheKey(1), ""); resp.StatusCode != 204 || len(b) != 0 {
		t.Fatalf("delete: %d %s", resp.StatusCode, b)
	}
	if resp, b := e.do("operator", "DELETE", "/cache/"+cacheKey(1), ""); resp.StatusCode != 404 || !strings.Contains(string(b), "no cache entry "+cacheKey(1)) {
		t.Errorf("delete again: %d %s", resp.StatusCode, b)
	}
	purge := func(body string) int {
		t.Helper()
		resp, b := e.do("operator", "POST", "/cache/purge", body)
		var d api.CacheDeleted
		mustJSON(t, b, &d)
		if resp.StatusCode != 200 {
			t.Fatalf("purge %s: %d %s", body, resp.StatusCode, b)
		}
		return d.Deleted
	}
	if n := purge(`{"pipeline":"train","task":"fit"}`); n != 2 {
		t.Errorf("purge train/fit deleted %d, want 2", n)
	}
	if n := purge(`{"pipeline":"train"}`); n != 1 {
		t.Errorf("purge train deleted %d, want 1", n)
	}
	if n := purge(`{"all":true}`); n != 1 {
		t.Errorf("purge all deleted %d, want 1", n)
	}
	if want := [][2]string{{"train", "fit"}, {"train", ""}, {"", ""}}; !slices.Equal(e.fake.Purges, want) {
		t.Errorf("purges %v", e.fake.Purges)
	}
}

// TestCacheUnavailable: without WithCache the routes answer 503, and a
// store's failure is an internal error that names nothing of it.
func TestCacheUnavailable(t *testing.T) {
	tokens := apitest.NewTokens()
	admin := tokens.AddAPI("admin", api.RoleAdmin, "")
	h := api.NewHandler(apitest.NewSeeded(), nil, api.WithTokens(tokens), api.WithLogger(slog.New(slog.DiscardHandler)))
	auth := map[string]string{"Authorization": "Bearer " + admin, "Content-Type": "application/json"}
	for _, rq := range []request{
		{method: "GET", path: "/cache"},
		{method: "DELETE", path: "/cache/" + cacheKey(1)},
		{method: "POST", path: "/cache/purge", body: `{"all":true}`},
	} {
		rq.header = auth
		if resp, b := serve(h, rq); resp.StatusCode != 503 || errorCode(b) != api.CodeUnavailable {
			t.Errorf("%s %s without a cache: %d %s", rq.method, rq.path, resp.StatusCode, b)
		}
	}

	fake := apitest.NewCache()
	fake.Err = errors.New("database is locked: /var/lib/tasuki/tasuki.db")
	h = api.NewHandler(apitest.NewSeeded(), nil, api.WithTokens(tokens), api.WithCache(fake), api.WithLogger(slog.New(slog.DiscardHandler)))
	resp, b := serve(h, request{method: "GET", path: "/cache", header: auth})
	if resp.StatusCode != 500 || strings.Contains(string(b), "tasuki.db") {
		t.Errorf("a failing store: %d %s", resp.StatusCode, b)
	}
}

// TestCacheClient goes through the Go client over real HTTP.
func TestCacheClient(t *testing.T) {
	e := newCacheEnv(t)
	srv := httptest.NewServer(e.h)
	t.Cleanup(srv.Close)
	c, err := api.NewClient(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	c = c.WithToken(e.secrets["operator"])
	ctx := context.Background()

	p, err := c.ListCache(ctx, api.CacheQuery{Pipeline: "train", Task: "fit", Limit: 2})
	if err != nil || len(p.Items) != 2 || p.Next != cacheKey(2) || p.Stats.Entries != 5 {
		t.Fatalf("ListCache = %+v, %v", p, err)
	}
	p, err = c.ListCache(ctx, api.CacheQuery{Pipeline: "train", Task: "fit", Limit: 2, After: p.Next})
	if err != nil || len(p.Items) != 1 || p.Items[0].Key != cacheKey(3) || p.Next != "" {
		t.Fatalf("second page = %+v, %v", p, err)
	}
	if err := c.DeleteCacheEntry(ctx, cacheKey(3)); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteCacheEntry(ctx, cacheKey(3)); api.AsError(err).Code != api.CodeNotFound {
		t.Errorf("deleting a missing entry: %v", err)
	}
	if n, err := c.PurgeCache(ctx, api.CachePurgeRequest{Pipeline: "train"}); err != nil || n != 3 {
		t.Errorf("PurgeCache(train) = %d, %v", n, err)
	}
	if _, err := c.PurgeCache(ctx, api.CachePurgeRequest{}); api.AsError(err).Code != api.CodeInvalid {
		t.Errorf("PurgeCache without a filter: %v", err)
	}
}

// TestCacheSchemas checks the OpenAPI schemas of the cache against their
// Go types, as TestOpenAPISchemasMatchTypes does for the others.
func TestCacheSchemas(t *testing.T) {
	doc := openAPIDoc(t, newEnv(t).handler)
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	for name, v := range map[string]any{
		"CacheEntry": api.CacheEntry{}, "CacheStats": api.CacheStats{}, "CachePage": api.CachePage{},
		"CachePurgeRequest": api.CachePurgeRequest{}, "CacheDeleted": api.CacheDeleted{}, "ArtifactFile": artifact.File{},
	} {
		s, ok := schemas[name].(map[string]any)
		if !ok {
			t.Errorf("no schema %s", name)
			continue
		}
		fields := jsonFields(reflect.TypeOf(v))
		if props := keys(s["properties"].(map[string]any)); !sameSet(props, fields) {
			t.Errorf("schema %s has properties %v, type has %v", name, props, fields)
		}
		for _, r := range asList(s["required"]) {
			if !slices.Contains(fields, r.(string)) {
				t.Errorf("schema %s requires %s, which is not a field", name, r)
			}
		}
	}
}

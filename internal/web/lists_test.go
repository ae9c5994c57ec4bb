package web_test

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/web"
)

// mustHave fails for each of wants the body lacks.
func mustHave(t *testing.T, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("the page lacks %q", w)
		}
	}
}

// mustLack fails for each of nots the body has.
func mustLack(t *testing.T, body string, nots ...string) {
	t.Helper()
	for _, n := range nots {
		if strings.Contains(body, n) {
			t.Errorf("the page has %q", n)
		}
	}
}

// workerList is a fake web.Workers.
type workerList struct {
	list []api.WorkerInfo
	err  error
}

func (l workerList) Workers(context.Context) ([]api.WorkerInfo, error) { return l.list, l.err }

func TestWorkersPage(t *testing.T) {
	f := apitest.New()
	f.AddPipeline(api.Pipeline{Name: "ledger", Namespace: "finance"})
	f.AddPipeline(api.Pipeline{Name: "other"})
	at := f.Now().Add(-3 * time.Second)
	item := 4
	list := []api.WorkerInfo{
		{Name: "w2:88", Labels: []string{"gpu", "linux"}, Slots: 4, InUse: 2, LastHeartbeat: &at, Running: []api.WorkerAttempt{
			{Run: 7, Pipeline: "ledger", Task: "post", Attempt: 2, Item: &item, Since: at},
			{Run: 9, Pipeline: "other", Task: "load", Attempt: 1, Since: at},
		}},
		{Name: "local", Local: true, Slots: 2},
	}
	srv := newUI(t, f, func(o *web.Options) { o.Workers = workerList{list: list} })
	status, body, _ := get(t, srv, "viewer", "/workers")
	if status != http.StatusOK {
		t.Fatalf("%d %s", status, body)
	}
	mustHave(t, body, `id="workers"`, `data-worker="local"`, `data-worker="w2:88"`, "the server's own executor", "<code class=\"label\">gpu</code>",
		"2 / 4", `href="/runs/7/tasks/post"`, "item 4", "attempt 2", `href="/runs/9/tasks/load"`, "2 of 6 slots in use", `aria-current="page">Workers`)
	if strings.Index(body, `data-worker="local"`) > strings.Index(body, `data-worker="w2:88"`) {
		t.Error("the server's own executor is not first")
	}
	// Confined to finance: every worker, only finance's attempts.
	_, body, _ = get(t, srv, "ns-viewer", "/workers")
	mustHave(t, body, `data-worker="w2:88"`, `href="/runs/7/tasks/post"`)
	mustLack(t, body, `href="/runs/9/tasks/load"`, "other ·")

	// No list, and a follower's answer.
	srv = newUI(t, f)
	_, body, _ = get(t, srv, "viewer", "/workers")
	mustHave(t, body, `id="workers-notice"`, "lists no workers")
	srv = newUI(t, f, func(o *web.Options) {
		o.Workers = workerList{err: api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "this server does not lead (http://leader:8080)")}
	})
	status, body, _ = get(t, srv, "viewer", "/workers")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "http://leader:8080") {
		t.Errorf("on a follower: %d", status)
	}
	srv = newUI(t, f, func(o *web.Options) { o.Workers = workerList{} })
	_, body, _ = get(t, srv, "viewer", "/workers")
	mustHave(t, body, "No executor")
}

// pagedBackfills pages the fake's backfills by two, the cursor being the
// index of the page's first.
type pagedBackfills struct{ *apitest.Fake }

func (p pagedBackfills) Backfills(ctx context.Context, pipeline, cursor string, limit int) (api.Page[api.Backfill], error) {
	all, err := p.Fake.Backfills(ctx, pipeline, "", 0)
	if err != nil {
		return all, err
	}
	from := 0
	if cursor != "" {
		if from, err = strconv.Atoi(cursor); err != nil || from < 0 || from > len(all.Items) {
			return all, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "cursor %q: expected the next of an earlier page", cursor)
		}
	}
	to := min(from+2, len(all.Items))
	page := api.Page[api.Backfill]{Items: all.Items[from:to]}
	if to < len(all.Items) {
		page.Next = strconv.Itoa(to)
	}
	return page, nil
}

func backfillFake() *apitest.Fake {
	f := apitest.New()
	f.AddPipeline(api.Pipeline{Name: "ledger", Namespace: "finance", Schedule: "0 1 * * *"})
	f.AddPipeline(api.Pipeline{Name: "nightly", Schedule: "0 2 * * *"})
	now := f.Now()
	for i := range 5 {
		p := "nightly"
		if i%2 == 0 {
			p = "ledger"
		}
		f.AddBackfill(api.Backfill{Pipeline: p, From: now.Add(-96 * time.Hour), To: now, Parallel: 2, State: "running", Actor: "user:op", CreatedAt: now, Runs: 4,
			Counts: api.RunCounts{engine.RunSucceeded: 1, engine.RunFailed: 1, engine.RunRunning: 1, engine.RunQueued: 1}})
	}
	return f
}

func TestBackfillsPage(t *testing.T) {
	f := backfillFake()
	srv := newUI(t, f, func(o *web.Options) { o.Service = pagedBackfills{f} })
	status, body, _ := get(t, srv, "viewer", "/backfills")
	if status != http.StatusOK {
		t.Fatalf("%d %s", status, body)
	}
	mustHave(t, body, `id="backfills"`, `href="/backfills/5"`, `href="/backfills/4"`, "2 of 4 runs finished", "1 failed", `class="s-failed"`,
		`href="/backfills?cursor=2"`, `rel="next"`)
	mustLack(t, body, `href="/backfills/3"`, `rel="first"`)
	_, body, _ = get(t, srv, "viewer", "/backfills?cursor=2")
	mustHave(t, body, `href="/backfills/3"`, `href="/backfills/2"`, `href="/backfills?cursor=4"`, `href="/backfills" rel="first"`)
	_, body, _ = get(t, srv, "viewer", "/backfills?pipeline=nightly")
	mustHave(t, body, `href="/backfills/4"`, `href="/backfills/2"`)
	mustLack(t, body, `href="/backfills/5"`)
	if status, _, _ := get(t, srv, "viewer", "/backfills?cursor=zzz"); status != http.StatusBadRequest {
		t.Errorf("a bad cursor: %d, want 400", status)
	}

	// Confined to finance: ledger's backfills only; nightly's filter is
	// a pipeline that does not exist.
	srv = newUI(t, f)
	_, body, _ = get(t, srv, "ns-viewer", "/backfills")
	mustHave(t, body, `href="/backfills/5"`, `href="/backfills/3"`, `href="/backfills/1"`)
	mustLack(t, body, `href="/backfills/4"`, `href="/backfills/2"`)
	if status, _, _ := get(t, srv, "ns-viewer", "/backfills?pipeline=nightly"); status != http.StatusNotFound {
		t.Errorf("another namespace's pipeline as a filter: %d, want 404", status)
	}
}

func TestBackfillPage(t *testing.T) {
	f := backfillFake()
	now := f.Now()
	start, end := now.Add(-48*time.Hour), now.Add(-24*time.Hour)
	for i, s := range []engine.RunState{engine.RunFailed, engine.RunSucceeded, engine.RunRunning} {
		f.AddRun(api.Run{ID: int64(100 + i), Pipeline: "nightly", State: s, BackfillID: 2, IntervalStart: &start, IntervalEnd: &end, StartedAt: &start})
	}
	f.AddRun(api.Run{ID: 200, Pipeline: "nightly", State: engine.RunFailed})
	done := f.AddBackfill(api.Backfill{Pipeline: "nightly", State: "succeeded", CreatedAt: now, Runs: 1, Counts: api.RunCounts{engine.RunSucceeded: 1}})
	srv := newUI(t, f)

	status, body, _ := get(t, srv, "operator", "/backfills/2")
	if status != http.StatusOK {
		t.Fatalf("%d %s", status, body)
	}
	mustHave(t, body, "Backfill #2", `href="/pipelines/nightly"`, `id="backfill-facts"`, `id="backfill-counts"`, "at most 2 at once",
		`href="/runs/100"`, `href="/runs/101"`, `href="/runs/102"`, `href="/backfills/2?state=failed"`,
		`data-action="POST /backfills/2/cancel"`, `data-confirm="Cancel backfill #2?`)
	mustLack(t, body, `href="/runs/200"`, `id="cancel-reason"`)
	if m := regexp.MustCompile(`<button[^>]*id="cancel-backfill"[^>]*>`).FindString(body); strings.Contains(m, "disabled") {
		t.Errorf("an operator's cancel is disabled: %s", m)
	}
	// A viewer's cancel is disabled, with the reason; so is a finished
	// backfill's.
	_, body, _ = get(t, srv, "viewer", "/backfills/2")
	if m := regexp.MustCompile(`<button[^>]*id="cancel-backfill"[^>]*>`).FindString(body); !strings.Contains(m, "disabled") {
		t.Errorf("a viewer's cancel is not disabled: %s", m)
	}
	mustHave(t, body, `id="cancel-reason">your role is viewer; this needs operator`)
	_, body, _ = get(t, srv, "operator", "/backfills/"+strconv.FormatInt(done.ID, 10))
	mustHave(t, body, `id="cancel-reason">it has succeeded`)

	_, body, _ = get(t, srv, "viewer", "/backfills/2?state=failed")
	mustHave(t, body, `href="/runs/100"`)
	mustLack(t, body, `href="/runs/101"`, `href="/runs/102"`)
	for path, want := range map[string]int{
		"/backfills/99":             http.StatusNotFound,
		"/backfills/x":              http.StatusNotFound,
		"/backfills/2?state=broken": http.StatusBadRequest,
	} {
		if status, _, _ := get(t, srv, "viewer", path); status != want {
			t.Errorf("%s: %d, want %d", path, status, want)
		}
	}
	// Another namespace's backfill is not found; its own is.
	if status, _, _ := get(t, srv, "ns-viewer", "/backfills/2"); status != http.StatusNotFound {
		t.Errorf("another namespace's backfill: %d, want 404", status)
	}
	if status, _, _ := get(t, srv, "ns-viewer", "/backfills/1"); status != http.StatusOK {
		t.Errorf("its namespace's backfill: %d, want 200", status)
	}
}

func TestAuditPage(t *testing.T) {
	audit := &apitest.AuditLog{}
	ctx := context.Background()
	for i := range 120 {
		status := http.StatusOK
		if i == 119 {
			status = http.StatusForbidden
		}
		audit.RecordAudit(ctx, api.AuditEntry{At: time.Date(2026, 3, 1, 9, 0, i, 0, time.UTC), Actor: "user:op", Remote: "192.0.2.7:5000",
			Method: "POST", Route: "POST /api/v1/runs/{id}/cancel", Target: "id=" + strconv.Itoa(i), Status: status})
	}
	srv := newUI(t, apitest.New(), func(o *web.Options) { o.Audit = audit })
	status, body, _ := get(t, srv, "admin", "/audit")
	if status != http.StatusOK {
		t.Fatalf("%d %s", status, body)
	}
	mustHave(t, body, `id="audit"`, "user:op", "192.0.2.7:5000", "POST /runs/{id}/cancel", "id=119", "id=20", `s-failed`, "403", `rel="next"`)
	mustLack(t, body, "id=19<")
	next := regexp.MustCompile(`href="(/audit\?cursor=[^"]+)" rel="next"`).FindStringSubmatch(body)
	if next == nil {
		t.Fatal("no next page")
	}
	_, body, _ = get(t, srv, "admin", strings.ReplaceAll(next[1], "&amp;", "&"))
	mustHave(t, body, "id=19<", "id=0<", `rel="first"`)
	mustLack(t, body, "id=20<", `rel="next"`)

	for _, as := range []string{"viewer", "operator", "ns-viewer"} {
		if status, _, _ := get(t, srv, as, "/audit"); status != http.StatusForbidden {
			t.Errorf("as %s: %d, want 403", as, status)
		}
	}
	_, body, _ = get(t, srv, "viewer", "/")
	mustLack(t, body, `href="/audit"`)
	_, body, _ = get(t, newUI(t, apitest.New()), "admin", "/audit")
	mustHave(t, body, `id="audit-notice"`)
}

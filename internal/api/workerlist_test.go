package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/logs"
)

// TestWorkerList checks GET /workers: the server's executor first, then
// the workers by name, with empty lists as [] and a confined token seeing
// every worker but only its namespace's attempts.
func TestWorkerList(t *testing.T) {
	a := newAuthEnv(t)
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	item := 3
	a.workers.List = []api.WorkerInfo{
		{Name: "w2:77", Labels: []string{"gpu"}, Slots: 4, InUse: 2, LastHeartbeat: &at, Running: []api.WorkerAttempt{
			{Run: 1, Pipeline: "hello", Task: "greet", Attempt: 1, Since: at},
			{Run: 4, Pipeline: "ledger", Task: "post", Attempt: 2, Item: &item, Since: at},
		}},
		{Name: "w1:12", Slots: 1},
		{Name: "local", Local: true, Slots: 2},
	}
	var got api.WorkerListBody
	resp, b := a.do("viewer", "GET", "/workers", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	mustJSON(t, b, &got)
	if len(got.Items) != 3 || got.Items[0].Name != "local" || got.Items[1].Name != "w1:12" || got.Items[2].Name != "w2:77" {
		t.Fatalf("order: %s", b)
	}
	if got.Items[1].Labels == nil || got.Items[1].Running == nil {
		t.Errorf("empty lists are not []: %s", b)
	}
	if w := got.Items[2]; len(w.Running) != 2 || w.Running[1].Item == nil || *w.Running[1].Item != 3 || w.LastHeartbeat == nil || !w.LastHeartbeat.Equal(at) {
		t.Errorf("worker w2: %+v", w)
	}
	_, b = a.do("fin-viewer", "GET", "/workers", "")
	mustJSON(t, b, &got)
	if w := got.Items[2]; len(got.Items) != 3 || len(w.Running) != 1 || w.Running[0].Pipeline != "ledger" || w.InUse != 2 {
		t.Errorf("a token confined to finance: %s", b)
	}

	e := newEnv(t) // no worker list
	resp, b = serve(e.handler, request{method: "GET", path: "/workers"})
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("without a worker list: %d %s", resp.StatusCode, b)
	}
}

// TestClientWorkers reads the list through the Client.
func TestClientWorkers(t *testing.T) {
	tokens := apitest.NewTokens()
	viewer := tokens.AddAPI("v", api.RoleViewer, "")
	list := &apitest.WorkerList{List: []api.WorkerInfo{{Name: "w1:1", Labels: []string{"linux"}, Slots: 2}}}
	h := api.NewHandler(apitest.NewSeeded(), logs.NewFiles(t.TempDir()), api.WithTokens(tokens), api.WithWorkerList(list))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := api.NewClient(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	ws, err := c.WithToken(viewer).Workers(t.Context())
	if err != nil || len(ws) != 1 || ws[0].Name != "w1:1" || ws[0].Slots != 2 || len(ws[0].Labels) != 1 {
		t.Fatalf("%+v %v", ws, err)
	}
}

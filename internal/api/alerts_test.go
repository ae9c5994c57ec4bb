package api_test

import (
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
)

// TestRunAlerts reads a run's alerts over HTTP and with the Go client, and
// checks who may: a viewer, not a token of another namespace.
func TestRunAlerts(t *testing.T) {
	f := apitest.NewSeeded()
	f.AddPipeline(api.Pipeline{Name: "ledger", File: "pipelines/finance/ledger.yaml", Namespace: "finance", Hash: "h3", Tasks: 1})
	now := f.Now()
	f.AddRun(api.Run{ID: 4, Pipeline: "ledger", State: engine.RunFailed, Trigger: "manual", CreatedAt: now, TaskCount: 1})
	alerts := apitest.NewAlerts()
	next := now.Add(20 * time.Second)
	alerts.Set(4,
		api.Alert{ID: 7, Event: "failed", Destination: "slack hooks.slack.com/…", State: api.AlertSent, Attempts: 1, CreatedAt: now, FinishedAt: &now},
		api.Alert{ID: 8, Event: "failed", Destination: "webhook ops.example.com/…", State: api.AlertPending, Attempts: 2, CreatedAt: now,
			NextAt: &next, LastError: "webhook ops.example.com/… answered 503 Service Unavailable"})
	tokens := apitest.NewTokens()
	viewer := tokens.AddAPI("viewer", "viewer", "")
	fin := tokens.AddAPI("fin", "viewer", "finance")
	h := api.NewHandler(f, logs.NewFiles(t.TempDir()), api.WithTokens(tokens), api.WithAlerts(alerts), api.WithLogger(slog.New(slog.DiscardHandler)))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	c, err := api.NewClient(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.WithToken(viewer).RunAlerts(t.Context(), 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Destination != "slack hooks.slack.com/…" || got[1].NextAt == nil || !got[1].NextAt.Equal(next) {
		t.Errorf("alerts = %+v", got)
	}
	resp, b := serve(h, request{method: "GET", path: "/runs/1/alerts", header: map[string]string{"Authorization": "Bearer " + viewer}})
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != `{"items":[]}` {
		t.Errorf("a run without alerts: %d %s", resp.StatusCode, b)
	}
	_, b = serve(h, request{method: "GET", path: "/runs/4/alerts", header: map[string]string{"Authorization": "Bearer " + viewer}})
	for _, want := range []string{`"event":"failed"`, `"state":"pending"`, `"attempts":2`, `"next_at":"`, `"last_error":"webhook ops.example.com/… answered 503`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("answer lacks %s: %s", want, b)
		}
	}
	if strings.Contains(string(b), `"finished_at":null`) {
		t.Errorf("absent times are null rather than left out: %s", b)
	}
	for _, tt := range []struct {
		token, path string
		status      int
	}{
		{fin, "/runs/4/alerts", 200},
		{fin, "/runs/1/alerts", 404},
		{viewer, "/runs/999/alerts", 404},
		{viewer, "/runs/x/alerts", 400},
		{"", "/runs/4/alerts", 401},
	} {
		hdr := map[string]string{}
		if tt.token != "" {
			hdr["Authorization"] = "Bearer " + tt.token
		}
		if resp, b := serve(h, request{method: "GET", path: tt.path, header: hdr}); resp.StatusCode != tt.status {
			t.Errorf("GET %s: %d, want %d: %s", tt.path, resp.StatusCode, tt.status, b)
		}
	}
	// A server that sends no notifications says so.
	plain := api.NewHandler(f, logs.NewFiles(t.TempDir()), api.WithTokens(tokens), api.WithLogger(slog.New(slog.DiscardHandler)))
	if resp, b := serve(plain, request{method: "GET", path: "/runs/4/alerts", header: map[string]string{"Authorization": "Bearer " + viewer}}); resp.StatusCode != 503 {
		t.Errorf("without alerts: %d %s", resp.StatusCode, b)
	}
}

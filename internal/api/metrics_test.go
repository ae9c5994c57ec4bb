package api_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// TestRequestObserver: every answered request reaches the observer with
// its route's pattern (never the path) and status, a handler that
// panicked as 500; GET /metrics serves the metrics handler given.
func TestRequestObserver(t *testing.T) {
	type seen struct {
		route  string
		status int
	}
	var mu sync.Mutex
	var got []seen
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("tasuki_up 1\n")) })
	e := newEnv(t, api.WithMetrics(metrics, func(route string, status int, _ time.Duration) {
		mu.Lock()
		got = append(got, seen{route, status})
		mu.Unlock()
	}))
	e.fake.Panic("Pipelines")
	for _, path := range []string{"/api/v1/runs/1", "/api/v1/pipelines", "/api/v1/metrics"} {
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if path == "/api/v1/metrics" && rec.Body.String() != "tasuki_up 1\n" {
			t.Errorf("GET /metrics: %d %q", rec.Code, rec.Body.String())
		}
	}
	want := []seen{{"GET /runs/{id}", 200}, {"GET /pipelines", 500}, {"GET /metrics", 200}}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("observed %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d observed as %v, want %v", i, got[i], want[i])
		}
	}
}

package api_test

import (
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
)

// BenchmarkWorkerHeartbeat is the cost of one authenticated worker request
// through the handler (authentication, routing, decoding), the path every
// remote worker takes several times a second.
func BenchmarkWorkerHeartbeat(b *testing.B) {
	tokens := apitest.NewTokens()
	secret := tokens.Add("w1")
	h := api.NewHandler(apitest.NewSeeded(), nil, api.WithLogger(slog.New(slog.DiscardHandler)), api.WithWorkers(apitest.NewWorkers(), tokens))
	body := `{"worker":"w","leases":[]}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", api.Prefix+"/worker/heartbeat", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}

package server

import (
	"net/http/httptest"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// TestWorkersGoToTheLeader: only the leader's broker hands out work and
// knows the workers, so a follower forwards GET /workers (and not the web
// UI's page, which says which server leads).
func TestWorkersGoToTheLeader(t *testing.T) {
	for path, want := range map[string]bool{api.Prefix + "/workers": true, "/workers": false, api.Prefix + "/workers/x": false} {
		if got := leaderOnly(httptest.NewRequest("GET", path, nil)); got != want {
			t.Errorf("GET %s: leaderOnly = %v, want %v", path, got, want)
		}
	}
}

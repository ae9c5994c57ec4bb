package api_test

import (
	"fmt"
	"net/http"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// TestStoreDownIs503: a store that is restarting or unreachable is
// answered with 503 unavailable, which clients retry, not 500.
func TestStoreDownIs503(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("list runs: %w", syscall.ECONNREFUSED),
		fmt.Errorf("list runs: %w", &pgconn.PgError{Code: "57P01"}),
		&store.OutcomeUnknownError{Err: syscall.ECONNRESET},
	} {
		e := api.AsError(err)
		if e.Status != http.StatusServiceUnavailable || e.Code != api.CodeUnavailable {
			t.Errorf("AsError(%v) = %d %s, want 503 %s", err, e.Status, e.Code, api.CodeUnavailable)
		}
	}
	if e := api.AsError(fmt.Errorf("bug")); e.Status != http.StatusInternalServerError {
		t.Errorf("a plain error = %d, want 500", e.Status)
	}
}

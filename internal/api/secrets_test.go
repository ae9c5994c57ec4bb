package api_test

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/logs"
)

// TestSecretsRoutes drives the /secrets routes over real HTTP with the Go
// client: a value goes in and never comes out (not in the answer of the
// PUT, not in the list), names are checked, and only admins get in.
func TestSecretsRoutes(t *testing.T) {
	const value = "v@lue-that-never-comes-out"
	store := apitest.NewSecrets()
	tokens := apitest.NewTokens()
	admin := tokens.AddAPI("admin", api.RoleAdmin, "")
	operator := tokens.AddAPI("operator", api.RoleOperator, "")
	h := api.NewHandler(apitest.NewSeeded(), logs.NewFiles(t.TempDir()),
		api.WithWorkers(apitest.NewWorkers(), tokens), api.WithSecrets(store),
		api.WithLogger(slog.New(slog.DiscardHandler)))
	srv := httptest.NewServer(h)
	defer srv.Close()
	base, err := api.NewClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := base.WithToken(admin)
	ctx := t.Context()

	info, err := c.SetSecret(ctx, "warehouse_password", value)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := store.Value("warehouse_password"); v != value || info.Name != "warehouse_password" {
		t.Fatalf("set: store has %q, answer %+v", v, info)
	}
	list, err := c.ListSecrets(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "warehouse_password" {
		t.Fatalf("list = %+v, %v", list, err)
	}
	// The raw answers hold no value.
	for _, rq := range []struct{ method, path, body string }{
		{"PUT", "/api/v1/secrets/other", `{"value": "` + value + `"}`},
		{"GET", "/api/v1/secrets", ""},
	} {
		req, _ := http.NewRequestWithContext(ctx, rq.method, srv.URL+rq.path, strings.NewReader(rq.body))
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.Contains(string(body), value) || strings.Contains(string(body), `"value"`) {
			t.Errorf("%s %s: %d %s", rq.method, rq.path, resp.StatusCode, body)
		}
	}

	var apiErr *api.Error
	for _, bad := range []string{"9lives", "a-b", strings.Repeat("x", 201)} {
		if _, err := c.SetSecret(ctx, bad, "x"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
			t.Errorf("SetSecret(%.20q) = %v, want 400", bad, err)
		}
	}
	if _, err := c.SetSecret(ctx, "empty", ""); !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
		t.Errorf("an empty value: %v, want 400", err)
	}
	rot, err := c.RotateSecretKey(ctx)
	if err != nil || !rot.NewKey || rot.Resealed != 2 || store.Rotations != 1 {
		t.Errorf("rotate = %+v, %v", rot, err)
	}
	if err := c.DeleteSecret(ctx, "warehouse_password"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSecret(ctx, "warehouse_password"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Errorf("delete twice = %v, want 404", err)
	}

	// Only admins.
	for name, cl := range map[string]*api.Client{"no token": base, "operator": base.WithToken(operator)} {
		if _, err := cl.ListSecrets(ctx); !errors.As(err, &apiErr) || (apiErr.Status != http.StatusUnauthorized && apiErr.Status != http.StatusForbidden) {
			t.Errorf("%s: list = %v, want 401 or 403", name, err)
		}
		if _, err := cl.SetSecret(ctx, "x", "y"); !errors.As(err, &apiErr) || (apiErr.Status != http.StatusUnauthorized && apiErr.Status != http.StatusForbidden) {
			t.Errorf("%s: set = %v, want 401 or 403", name, err)
		}
	}

	// A server without a secret store says so.
	h2 := httptest.NewServer(api.NewHandler(apitest.NewSeeded(), logs.NewFiles(t.TempDir()), api.WithWorkers(apitest.NewWorkers(), tokens)))
	defer h2.Close()
	c2, _ := api.NewClient(h2.URL, nil)
	if _, err := c2.WithToken(admin).ListSecrets(ctx); !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable {
		t.Errorf("without a secret store: %v, want 503", err)
	}
}

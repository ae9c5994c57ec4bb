package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// TestFirstAdminToken checks that a server on a new data directory makes
// one admin API token, writes it to admin.token (0600) and prints it once,
// and that a later start on the same store makes none, even once the
// first is revoked.
func TestFirstAdminToken(t *testing.T) {
	home, dir := t.TempDir(), pipelineDir(t, map[string]string{"p.yaml": "name: p\ntasks: [{id: a, run: 'true'}]\n"})
	cfg := DefaultConfig()
	cfg.Home, cfg.Pipelines = home, dir
	var notice bytes.Buffer
	s, err := New(t.Context(), cfg, Options{Logger: slog.New(slog.DiscardHandler), Notice: &notice})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(home, AdminTokenFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no admin token file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("admin.token has mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	secret := strings.TrimSpace(string(b))
	if !strings.HasPrefix(secret, tokenPrefix) || strings.Count(notice.String(), secret) != 1 || !strings.Contains(notice.String(), path) {
		t.Errorf("printed %q, file holds %q: want the token once and where it is kept", notice.String(), secret)
	}
	who, err := (&tokens{s: s}).Authenticate(t.Context(), secret)
	if err != nil || who != (api.Principal{Name: "admin", Kind: api.KindAPI, Role: api.RoleAdmin}) {
		t.Errorf("the admin token authenticates as %+v, %v", who, err)
	}
	entries, _ := os.ReadDir(home)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), AdminTokenFile+".") {
			t.Errorf("a temporary file is left: %s", e.Name())
		}
	}
	if err := s.store.RevokeToken(t.Context(), "admin", time.Time{}); err != nil {
		t.Fatal(err)
	}
	s.store.Close()

	// Again on the same data directory: nothing new.
	notice.Reset()
	s, err = New(t.Context(), cfg, Options{Logger: slog.New(slog.DiscardHandler), Notice: &notice})
	if err != nil {
		t.Fatal(err)
	}
	defer s.store.Close()
	if notice.Len() != 0 {
		t.Errorf("a second start printed %q", notice.String())
	}
	if b2, _ := os.ReadFile(path); string(b2) != string(b) {
		t.Error("a second start rewrote admin.token")
	}
	toks, _ := s.store.ListTokens(t.Context())
	if len(toks) != 1 {
		t.Errorf("tokens after a second start: %+v", toks)
	}
}

// TestFirstAdminTokenUnwritable checks that a server that cannot write
// admin.token fails to start and stores no token nobody could find.
func TestFirstAdminTokenUnwritable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes anywhere")
	}
	home, dir := t.TempDir(), pipelineDir(t, map[string]string{"p.yaml": "name: p\ntasks: [{id: a, run: 'true'}]\n"})
	cfg := DefaultConfig()
	cfg.Home, cfg.Pipelines = home, dir
	s, err := New(t.Context(), cfg, Options{Logger: slog.New(slog.DiscardHandler), Notice: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	// Make the store tokenless again and the directory read-only.
	if err := s.store.RevokeToken(t.Context(), "admin", time.Time{}); err != nil {
		t.Fatal(err)
	}
	fresh := &Server{cfg: s.cfg, store: &noAPITokens{Store: s.store}, log: slog.New(slog.DiscardHandler), now: time.Now}
	if err := os.Chmod(home, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(home, 0o700)
	if err := fresh.ensureAdminToken(t.Context(), io.Discard); err == nil {
		t.Fatal("ensureAdminToken succeeded in a read-only data directory")
	}
	toks, _ := s.store.ListTokens(t.Context())
	if len(toks) != 1 {
		t.Errorf("a token was stored although it could not be written down: %+v", toks)
	}
	s.store.Close()
}

// noAPITokens hides API tokens from ListTokens, as a new store would.
type noAPITokens struct{ store.Store }

func (n *noAPITokens) ListTokens(ctx context.Context) ([]store.Token, error) { return nil, nil }

// TestTokenExpiry checks that an API token is refused once it expires,
// even while a recent success is cached, and that the kind, role and
// namespace reach the Principal.
func TestTokenExpiry(t *testing.T) {
	start := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	ts := newTestServer(t, t.TempDir(), pipelineDir(t, map[string]string{"p.yaml": "name: p\ntasks: [{id: a, run: 'true'}]\n"}), start)
	tk := &tokens{s: ts.Server}
	ctx := t.Context()
	end := start.Add(time.Hour)
	secret, info, err := tk.CreateToken(ctx, api.CreateTokenRequest{Name: "ci", Role: api.RoleOperator, Namespace: "finance", ExpiresAt: &end}, "test")
	if err != nil || info.Kind != api.KindAPI || info.ExpiresAt == nil || !info.ExpiresAt.Equal(end) {
		t.Fatalf("CreateToken: %+v %v", info, err)
	}
	who, err := tk.Authenticate(ctx, secret)
	if err != nil || who != (api.Principal{Name: "ci", Kind: api.KindAPI, Role: api.RoleOperator, Namespace: "finance"}) {
		t.Fatalf("Authenticate: %+v %v", who, err)
	}
	ts.clock.Set(end) // cached a moment ago, expired now
	if _, err := tk.Authenticate(ctx, secret); !isUnauthorized(err) {
		t.Errorf("an expired cached token: %v, want 401", err)
	}
	tk2 := &tokens{s: ts.Server} // no cache: from the store
	if _, err := tk2.Authenticate(ctx, secret); !isUnauthorized(err) {
		t.Errorf("an expired token: %v, want 401", err)
	}
	wsecret, winfo, err := tk.CreateToken(ctx, api.CreateTokenRequest{Name: "w"}, "test")
	if err != nil || winfo.Kind != api.KindWorker || winfo.Role != "" {
		t.Fatalf("worker token: %+v %v", winfo, err)
	}
	if who, err := tk.Authenticate(ctx, wsecret); err != nil || who.Kind != api.KindWorker || who.Role != "" {
		t.Errorf("worker token authenticates as %+v, %v", who, err)
	}
	list, err := tk.ListTokens(ctx)
	if err != nil || len(list) != 3 || list[1].Name != "ci" || list[1].Role != api.RoleOperator || list[1].Namespace != "finance" {
		t.Errorf("ListTokens: %+v %v", list, err)
	}
}

func isUnauthorized(err error) bool {
	e, ok := errors.AsType[*api.Error](err)
	return ok && e.Status == http.StatusUnauthorized
}

// TestPipelineNamespaces checks that a pipeline's namespace is the first
// folder of its file under the pipelines directory.
func TestPipelineNamespaces(t *testing.T) {
	dir := pipelineDir(t, map[string]string{"top.yaml": "name: top\ntasks: [{id: a, run: 'true'}]\n"})
	for _, sub := range []string{"finance", "ml/deep"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(dir, "finance", "ledger.yaml"), "name: ledger\ntasks: [{id: a, run: 'true'}]\n")
	write(t, filepath.Join(dir, "ml", "deep", "train.yaml"), "name: train\ntasks: [{id: a, run: 'true'}]\n")
	ts := newTestServer(t, t.TempDir(), dir, time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC))
	list, err := (&service{s: ts.Server}).Pipelines(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range list.Items {
		got[p.Name] = p.Namespace
	}
	if want := map[string]string{"top": "", "ledger": "finance", "train": "ml"}; len(got) != 3 || got["top"] != "" || got["ledger"] != "finance" || got["train"] != "ml" {
		t.Errorf("namespaces %v, want %v", got, want)
	}
}

// TestAuditLogPages checks the server's audit log over its store: entries
// come back newest first, a page at a time, with a cursor that ends.
func TestAuditLogPages(t *testing.T) {
	ts := newTestServer(t, t.TempDir(), pipelineDir(t, map[string]string{"p.yaml": "name: p\ntasks: [{id: a, run: 'true'}]\n"}), time.Now())
	a := auditLog{ts.Server}
	ctx := t.Context()
	for i, target := range []string{"id=1", "id=2", "id=3"} {
		if err := a.RecordAudit(ctx, api.AuditEntry{At: time.Now(), Actor: "ops\x00", Remote: "127.0.0.1:1", Method: "POST",
			Route: "POST /api/v1/runs/{id}/cancel", Target: target, Status: 200 + i}); err != nil {
			t.Fatal(err)
		}
	}
	p1, err := a.ListAudit(ctx, "", 2)
	if err != nil || len(p1.Items) != 2 || p1.Items[0].Target != "id=3" || p1.Next == "" || p1.Items[0].Actor != "ops\uFFFD" {
		t.Fatalf("first page %+v %v", p1, err)
	}
	p2, err := a.ListAudit(ctx, p1.Next, 2)
	if err != nil || len(p2.Items) != 1 || p2.Items[0].Target != "id=1" || p2.Next != "" {
		t.Errorf("second page %+v %v", p2, err)
	}
	if _, err := a.ListAudit(ctx, "x", 2); err == nil {
		t.Error("a bad cursor was accepted")
	}
}

package storetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// testAPITokens checks tokens of the API kind: role, namespace and expiry
// round-trip; they share the name space of worker tokens; bad combinations
// are refused without being stored.
func testAPITokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	exp := t0.Add(30 * 24 * time.Hour).In(jst)
	ops, err := s.IssueToken(ctx, store.NewToken{Name: "ci-ops", Kind: store.TokenAPI, Role: "operator", Namespace: "finance", ExpiresAt: exp}, hash("api-1"), t0)
	if err != nil {
		t.Fatalf("IssueToken: %v", err)
	}
	want := store.Token{ID: ops.ID, Name: "ci-ops", Kind: store.TokenAPI, Role: "operator", Namespace: "finance", CreatedAt: us(t0), ExpiresAt: us(exp)}
	check(t, "issued token", ops, want)
	got, err := s.TokenByHash(ctx, hash("api-1"))
	if err != nil {
		t.Fatalf("TokenByHash: %v", err)
	}
	check(t, "api token by hash", got, want)

	w, err := s.IssueToken(ctx, store.NewToken{Name: "w"}, hash("worker"), t0)
	if err != nil || w.Kind != store.TokenWorker || w.Role != "" {
		t.Fatalf("IssueToken of a kindless token = %+v, %v; want a worker token", w, err)
	}
	// One name space for both kinds.
	if _, err := s.IssueToken(ctx, store.NewToken{Name: "w", Kind: store.TokenAPI, Role: "admin"}, hash("other"), t0); !errors.Is(err, store.ErrConflict) {
		t.Errorf("API token named like a valid worker token: %v, want ErrConflict", err)
	}
	// An agent token: a kind of its own, in the same name space, with no
	// role or namespace.
	ag, err := s.IssueToken(ctx, store.NewToken{Name: "agent-dns1", Kind: store.TokenAgent}, hash("agent"), t0)
	if err != nil {
		t.Fatalf("IssueToken of an agent token: %v", err)
	}
	wantAgent := store.Token{ID: ag.ID, Name: "agent-dns1", Kind: store.TokenAgent, CreatedAt: us(t0)}
	check(t, "agent token", ag, wantAgent)
	if got, err := s.TokenByHash(ctx, hash("agent")); err != nil || got.Kind != store.TokenAgent {
		t.Errorf("agent token by hash = %+v, %v", got, err)
	}
	if _, err := s.IssueToken(ctx, store.NewToken{Name: "agent-dns1"}, hash("other-2"), t0); !errors.Is(err, store.ErrConflict) {
		t.Errorf("worker token named like a valid agent token: %v, want ErrConflict", err)
	}
	for _, bad := range []store.NewToken{
		{Name: "r", Kind: store.TokenAgent, Role: "viewer"},        // agent with a role
		{Name: "r", Kind: store.TokenAgent, Namespace: "finance"},  // agent with a namespace
		{Name: "r", Kind: store.TokenAPI},                          // no role
		{Name: "r", Kind: store.TokenAPI, Role: "root"},            // unknown role
		{Name: "r", Kind: store.TokenWorker, Role: "admin"},        // worker with a role
		{Name: "r", Kind: store.TokenWorker, Namespace: "finance"}, // worker with a namespace
		{Name: "r", Kind: "robot", Role: "admin"},                  // unknown kind
		{Name: "", Kind: store.TokenAPI, Role: "admin"},            // no name
		{Name: "r", Kind: store.TokenAPI, Role: "admin", Namespace: "a\x00b"},
	} {
		if _, err := s.IssueToken(ctx, bad, hash("bad"), t0); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("IssueToken(%+v) = %v, want a validation error", bad, err)
		}
	}
	ts, err := s.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "ListTokens", ts, []store.Token{want, w, wantAgent})
}

// testAudit checks the audit log: entries round-trip, pages run newest
// first by ID, and text that a driver could not store is refused.
func testAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	if es, err := s.ListAudit(ctx, 0, 10); err != nil || len(es) != 0 {
		t.Fatalf("ListAudit of a new store = %v, %v", es, err)
	}
	var all []store.AuditEntry
	for i := range 5 {
		e, err := s.AppendAudit(ctx, store.AuditEntry{
			At: t0.Add(time.Duration(i) * time.Second).In(jst), Actor: "アリス", Remote: "127.0.0.1:5555",
			Method: "POST", Route: "POST /api/v1/runs/{id}/cancel", Target: "run=" + strings.Repeat("7", i+1), Status: 200 + i,
		})
		if err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
		if len(all) > 0 && e.ID <= all[len(all)-1].ID {
			t.Fatalf("AppendAudit IDs do not increase: %d after %d", e.ID, all[len(all)-1].ID)
		}
		want := store.AuditEntry{ID: e.ID, At: us(t0.Add(time.Duration(i) * time.Second)), Actor: "アリス", Remote: "127.0.0.1:5555",
			Method: "POST", Route: "POST /api/v1/runs/{id}/cancel", Target: "run=" + strings.Repeat("7", i+1), Status: 200 + i}
		check(t, "appended entry", e, want)
		all = append(all, want)
	}
	// A zero time is now.
	before := time.Now().Add(-time.Second)
	now, err := s.AppendAudit(ctx, store.AuditEntry{Actor: "", Method: "DELETE", Route: "r", Status: 401})
	if err != nil || now.At.Before(before) {
		t.Fatalf("AppendAudit without a time = %+v, %v; want the current time", now, err)
	}
	page1, err := s.ListAudit(ctx, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "first page", page1, []store.AuditEntry{now, all[4], all[3]})
	page2, err := s.ListAudit(ctx, page1[2].ID, 3)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "second page", page2, []store.AuditEntry{all[2], all[1], all[0]})
	if rest, err := s.ListAudit(ctx, all[0].ID, 3); err != nil || len(rest) != 0 {
		t.Errorf("page after the oldest = %v, %v", rest, err)
	}
	if def, err := s.ListAudit(ctx, 0, 0); err != nil || len(def) != 6 {
		t.Errorf("ListAudit with limit 0 = %d entries, %v; want all 6 (default 50)", len(def), err)
	}
	if _, err := s.AppendAudit(ctx, store.AuditEntry{Actor: "a\x00b", Method: "POST", Route: "r"}); err == nil {
		t.Error("AppendAudit with a NUL in the actor succeeded")
	}
	if es, _ := s.ListAudit(ctx, 0, 100); len(es) != 6 {
		t.Errorf("after a refused entry the log has %d entries, want 6", len(es))
	}
}

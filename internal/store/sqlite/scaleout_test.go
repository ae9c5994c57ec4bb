package sqlite

import (
	"crypto/sha256"
	"database/sql"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/migrate"
)

// TestMigrateFromV2 opens a store written by the second schema: migration 3
// adds a free leadership row and an empty token table, and both work.
func TestMigrateFromV2(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "tasuki.db")
	ms, err := migrate.Load(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	w, err := sql.Open("sqlite", dsn(path, url.Values{"_pragma": {"foreign_keys(1)", "journal_mode(wal)"}, "_txlock": {"immediate"}}))
	if err != nil {
		t.Fatal(err)
	}
	old := &DB{path: path, w: w}
	if err := old.migrate(ctx, ms[:2]); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ExecContext(ctx, `INSERT INTO pipelines (name, updated_at) VALUES ('p', 1)`); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("open a version 2 store: %v", err)
	}
	defer db.Close()
	checkSchemaVersions(t, db)
	if l, err := db.Leader(ctx); err != nil || l != (store.Leadership{}) {
		t.Errorf("Leader after the upgrade = %+v, %v; want nobody, term 0", l, err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if l, err := db.AcquireLeadership(ctx, "s1", "http://s1", time.Minute, now); err != nil || l.Holder != "s1" || l.Term != 1 {
		t.Errorf("AcquireLeadership after the upgrade = %+v, %v", l, err)
	}
	h := sha256.Sum256([]byte("secret"))
	if _, err := db.CreateToken(ctx, "w", h[:], now); err != nil {
		t.Errorf("CreateToken after the upgrade: %v", err)
	}
	if ps, err := db.PipelineState(ctx, "p"); err != nil || ps.Name != "p" {
		t.Errorf("pipeline from version 2 = %+v, %v", ps, err)
	}
}

// TestTokenByHashUsesIndex: a worker's request is one index lookup.
func TestTokenByHashUsesIndex(t *testing.T) {
	db := openTemp(t)
	plan := queryPlan(t, db, `SELECT `+tokenCols+` FROM worker_tokens INDEXED BY worker_tokens_by_hash
		WHERE hash = ? AND revoked_at IS NULL`, []byte{1, 2, 3})
	if !strings.Contains(plan, "SEARCH worker_tokens USING INDEX worker_tokens_by_hash (hash=?)") {
		t.Errorf("plan of TokenByHash:\n%s", plan)
	}
}

// TestMigrateAgentTokens: migration 15 rebuilds the token table to admit
// agent tokens; the tokens of every kind, their ids, their indexes and the
// AUTOINCREMENT high-water mark (an id is never reused) come through.
func TestMigrateAgentTokens(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "tasuki.db")
	ms, err := migrate.Load(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	w, err := sql.Open("sqlite", dsn(path, url.Values{"_pragma": {"foreign_keys(1)", "journal_mode(wal)"}, "_txlock": {"immediate"}}))
	if err != nil {
		t.Fatal(err)
	}
	old := &DB{path: path, w: w}
	if err := old.migrate(ctx, ms[:14]); err != nil {
		t.Fatal(err)
	}
	// Three tokens, the last one gone (as if deleted by hand): the next id
	// must still be 4.
	for _, q := range []string{
		`INSERT INTO worker_tokens (name, hash, created_at, kind) VALUES ('w1', x'01', 1, 'worker')`,
		`INSERT INTO worker_tokens (name, hash, created_at, kind, role, revoked_at) VALUES ('ops', x'02', 2, 'api', 'operator', 5)`,
		`INSERT INTO worker_tokens (name, hash, created_at) VALUES ('gone', x'03', 3)`,
		`DELETE FROM worker_tokens WHERE name = 'gone'`,
	} {
		if _, err := w.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := w.ExecContext(ctx, `INSERT INTO worker_tokens (name, hash, created_at, kind) VALUES ('a', x'09', 1, 'agent')`); err == nil {
		t.Fatal("version 14 took an agent token")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("open a version 14 store: %v", err)
	}
	defer db.Close()
	checkSchemaVersions(t, db)
	toks, err := db.ListTokens(ctx)
	if err != nil || len(toks) != 2 || toks[0].ID != 1 || toks[0].Kind != store.TokenWorker ||
		toks[1].ID != 2 || toks[1].Kind != store.TokenAPI || toks[1].Role != "operator" || toks[1].RevokedAt.IsZero() {
		t.Fatalf("tokens after the migration: %+v, %v", toks, err)
	}
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	ag, err := db.IssueToken(ctx, store.NewToken{Name: "agent-dns1", Kind: store.TokenAgent}, []byte{4}, now)
	if err != nil || ag.ID != 4 {
		t.Fatalf("agent token after the migration: %+v, %v; want id 4", ag, err)
	}
	if _, err := db.IssueToken(ctx, store.NewToken{Name: "w1"}, []byte{5}, now); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a second valid w1: %v, want ErrConflict (the name index)", err)
	}
	if _, err := db.IssueToken(ctx, store.NewToken{Name: "w2"}, []byte{1}, now); err == nil {
		t.Error("a second token with w1's hash was taken (the hash index)")
	}
	plan := queryPlan(t, db, `SELECT `+tokenCols+` FROM worker_tokens INDEXED BY worker_tokens_by_hash
		WHERE hash = ? AND revoked_at IS NULL`, []byte{1, 2, 3})
	if !strings.Contains(plan, "USING INDEX worker_tokens_by_hash") {
		t.Errorf("plan of TokenByHash after the migration:\n%s", plan)
	}
}

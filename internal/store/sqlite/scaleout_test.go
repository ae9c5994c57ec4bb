package sqlite

import (
	"crypto/sha256"
	"database/sql"
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

package postgres

import (
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/migrate"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
)

// TestMigrateFromV2 opens a database at migration 2: migration 3 adds a free
// leadership row and an empty token table, and both work.
func TestMigrateFromV2(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	ms, err := migrate.Load(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	old := &DB{pool: rawPool(t, dsn), target: "v2"}
	if err := old.migrate(ctx, ms[:2]); err != nil {
		t.Fatal(err)
	}
	if _, err := old.pool.Exec(ctx, `INSERT INTO pipelines (name, updated_at) VALUES ('p', now())`); err != nil {
		t.Fatal(err)
	}
	old.pool.Close()

	db := openDSN(t, dsn)
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

// TestTokenByHashUsesIndex: with many tokens (statistics up to date), a
// worker's request is one lookup in worker_tokens_by_hash.
func TestTokenByHashUsesIndex(t *testing.T) {
	db := openTemp(t)
	ctx := t.Context()
	if _, err := db.pool.Exec(ctx, `INSERT INTO worker_tokens (name, hash, created_at, revoked_at)
		SELECT 'w' || i, sha256(i::text::bytea), now(), CASE WHEN i % 2 = 0 THEN now() END
		FROM generate_series(1, 20000) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.pool.Exec(ctx, `ANALYZE worker_tokens`); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("777"))
	tk, err := db.TokenByHash(ctx, h[:])
	if err != nil || tk.Name != "w777" {
		t.Fatalf("TokenByHash = %+v, %v", tk, err)
	}
	rows, err := db.pool.Query(ctx, `EXPLAIN SELECT `+tokenCols+` FROM worker_tokens WHERE hash = $1 AND revoked_at IS NULL`, h[:])
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for rows.Next() {
		var l string
		if err := rows.Scan(&l); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if plan := strings.Join(lines, "\n"); !strings.Contains(plan, "Index Scan using worker_tokens_by_hash") {
		t.Errorf("plan of TokenByHash:\n%s", plan)
	}
}

package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store/migrate"
)

// schemaVersionDDL creates the table that records applied migrations. It is
// not itself a migration: it must exist before the first one can be recorded.
const schemaVersionDDL = `CREATE TABLE IF NOT EXISTS schema_version (
	version    INTEGER PRIMARY KEY,
	name       TEXT    NOT NULL,
	applied_at INTEGER NOT NULL
) STRICT`

// migrate applies the pending migrations, each in its own IMMEDIATE
// transaction that first re-reads the version, so two processes opening the
// same new file at once apply each migration exactly once.
func (db *DB) migrate(ctx context.Context, ms []migrate.Migration) error {
	cur, err := db.schemaVersion(ctx, db.w)
	if err != nil {
		return err
	}
	pending, err := migrate.Pending(ms, cur)
	if err != nil {
		return err
	}
	for _, m := range pending {
		if err := db.apply(ctx, m); err != nil {
			return fmt.Errorf("apply migration %s: %w", m.Name, err)
		}
	}
	return nil
}

func (db *DB) apply(ctx context.Context, m migrate.Migration) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, schemaVersionDDL); err != nil {
		return err
	}
	var cur int
	if err := tx.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_version").Scan(&cur); err != nil {
		return err
	}
	if cur >= m.Version {
		return nil // another process got there first
	}
	if cur != m.Version-1 {
		return fmt.Errorf("database is at schema version %d, expected %d", cur, m.Version-1)
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
		m.Version, m.Name, time.Now().UnixMicro()); err != nil {
		return err
	}
	return tx.Commit()
}

// schemaVersion returns the newest applied migration, 0 for an empty file. A
// database with tables but no schema_version belongs to someone else.
func (db *DB) schemaVersion(ctx context.Context, q *sql.DB) (int, error) {
	var hasTable, others int
	err := q.QueryRowContext(ctx, `SELECT
		count(*) FILTER (WHERE name = 'schema_version'),
		count(*) FILTER (WHERE name <> 'schema_version' AND name NOT LIKE 'sqlite_%')
		FROM sqlite_schema WHERE type = 'table'`).Scan(&hasTable, &others)
	if err != nil {
		return 0, fmt.Errorf("read schema: %w", err)
	}
	if hasTable == 0 {
		if others > 0 {
			return 0, ErrNotTasuki
		}
		return 0, nil
	}
	var v sql.NullInt64
	if err := q.QueryRowContext(ctx, "SELECT max(version) FROM schema_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return int(v.Int64), nil
}

// SchemaVersion reports the schema version of the open store.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	v, err := db.schemaVersion(ctx, db.r)
	if err != nil {
		return 0, fmt.Errorf("schema version of %s: %w", db.path, err)
	}
	return v, nil
}

package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tasuki-dev/tasuki/internal/store/migrate"
)

// schemaVersionDDL creates the table that records applied migrations. It is
// not itself a migration: it must exist before the first one can be recorded.
const schemaVersionDDL = `CREATE TABLE IF NOT EXISTS schema_version (
	version    integer     PRIMARY KEY,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// lockSQL takes the migration lock of the current schema for the rest of the
// transaction. The key is derived from the schema name, so stores in
// different schemas of one database (tests, several installations) do not
// wait for each other.
const lockSQL = `SELECT pg_advisory_xact_lock(hashtext('tasuki.migrate'), hashtext(current_schema()))`

// migrate applies the pending migrations, each in its own transaction that
// first takes the advisory lock and re-reads the version, so several servers
// starting at once apply each migration exactly once: the others wait for the
// lock, then find the version already recorded. A database newer than the
// binary is refused before anything is written.
func (db *DB) migrate(ctx context.Context, ms []migrate.Migration) error {
	cur, err := db.schemaVersion(ctx)
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
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer rollback(tx)
	if _, err := tx.Exec(ctx, lockSQL); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	if _, err := tx.Exec(ctx, schemaVersionDDL); err != nil {
		return fmt.Errorf("create schema_version: %w", err)
	}
	var cur int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_version").Scan(&cur); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if cur >= m.Version {
		return nil // another server got there first
	}
	if cur != m.Version-1 {
		return fmt.Errorf("database is at schema version %d, expected %d", cur, m.Version-1)
	}
	// No arguments: the simple protocol, which runs a script of several
	// statements.
	if _, err := tx.Exec(ctx, m.SQL, pgx.QueryExecModeSimpleProtocol); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "INSERT INTO schema_version (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
		return fmt.Errorf("record version %d: %w", m.Version, err)
	}
	return tx.Commit(ctx)
}

// schemaVersion returns the newest applied migration of the current schema,
// 0 for an empty one. A schema with tables but no schema_version belongs to
// someone else (ErrNotTasuki).
func (db *DB) schemaVersion(ctx context.Context) (int, error) {
	var schema *string
	var hasTable bool
	var others int
	err := db.pool.QueryRow(ctx, `SELECT current_schema(),
		coalesce(bool_or(c.relname = 'schema_version'), false),
		count(*) FILTER (WHERE c.relname <> 'schema_version')
		FROM pg_class c
		WHERE c.relnamespace = to_regnamespace(current_schema()) AND c.relkind IN ('r', 'p')`).Scan(&schema, &hasTable, &others)
	if err != nil {
		return 0, fmt.Errorf("read schema: %w", err)
	}
	if schema == nil {
		return 0, errors.New("no schema to create tables in: the search_path names no existing schema (create it, or fix search_path in the DSN)")
	}
	if !hasTable {
		if others > 0 {
			return 0, fmt.Errorf("schema %q: %w", *schema, ErrNotTasuki)
		}
		return 0, nil
	}
	var v *int
	if err := db.pool.QueryRow(ctx, "SELECT max(version) FROM schema_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if v == nil {
		return 0, nil
	}
	return *v, nil
}

// SchemaVersion reports the schema version of the open store: the number of
// the newest migration applied.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	v, err := db.schemaVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("schema version of %s: %w", db.target, err)
	}
	return v, nil
}

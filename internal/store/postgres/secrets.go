package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// Secrets: the secrets table of migration 0005. Values arrive sealed; the
// store never sees one in clear.

const secretCols = `name, key_id, sealed, created_at, updated_at`

func scanSecret(row pgx.Row) (store.SealedSecret, error) {
	var s store.SealedSecret
	err := row.Scan(&s.Name, &s.KeyID, &s.Sealed, timeCol{&s.CreatedAt}, timeCol{&s.UpdatedAt})
	return s, err
}

// PutSecret inserts or replaces a secret, keeping the created_at of the
// one it replaces.
func (db *DB) PutSecret(ctx context.Context, s store.SealedSecret, now time.Time) (store.SealedSecret, error) {
	if err := store.CheckSealedSecret(s); err != nil {
		return store.SealedSecret{}, fmt.Errorf("put secret: %w", err)
	}
	if now.IsZero() {
		now = time.Now()
	}
	now = store.NormTime(now)
	out, err := scanSecret(db.pool.QueryRow(ctx, `INSERT INTO secrets (name, key_id, sealed, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $4)
		ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed, updated_at = excluded.updated_at
		RETURNING `+secretCols, s.Name, s.KeyID, s.Sealed, now))
	if err != nil {
		return store.SealedSecret{}, fmt.Errorf("put secret %q: %w", s.Name, err)
	}
	return out, nil
}

// Secret reads one secret.
func (db *DB) Secret(ctx context.Context, name string) (store.SealedSecret, error) {
	s, err := scanSecret(db.pool.QueryRow(ctx, `SELECT `+secretCols+` FROM secrets WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.SealedSecret{}, fmt.Errorf("secret %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.SealedSecret{}, fmt.Errorf("secret %q: %w", name, err)
	}
	return s, nil
}

// ListSecrets returns every secret by name.
func (db *DB) ListSecrets(ctx context.Context) ([]store.SealedSecret, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+secretCols+` FROM secrets ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.SealedSecret, error) { return scanSecret(row) })
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return out, nil
}

// DeleteSecret removes a secret.
func (db *DB) DeleteSecret(ctx context.Context, name string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM secrets WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("delete secret %q: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete secret %q: %w", name, store.ErrNotFound)
	}
	return nil
}

// ResealSecret replaces a sealed value still sealed with oldKeyID.
func (db *DB) ResealSecret(ctx context.Context, name, oldKeyID, newKeyID string, sealed []byte) error {
	if newKeyID == "" || len(sealed) == 0 {
		return fmt.Errorf("reseal secret %q: empty key id or sealed value", name)
	}
	tag, err := db.pool.Exec(ctx, `UPDATE secrets SET key_id = $1, sealed = $2 WHERE name = $3 AND key_id = $4`,
		newKeyID, sealed, name, oldKeyID)
	if err != nil {
		return fmt.Errorf("reseal secret %q: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		if _, gone := db.Secret(ctx, name); errors.Is(gone, store.ErrNotFound) {
			return fmt.Errorf("reseal secret %q: %w", name, store.ErrNotFound)
		}
		return fmt.Errorf("reseal secret %q: it is no longer sealed with key %s: %w", name, oldKeyID, store.ErrConflict)
	}
	return nil
}

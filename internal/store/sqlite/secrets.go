package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// Secrets: the secrets table of migration 0005. Values arrive sealed; the
// store never sees one in clear.

const secretCols = `name, key_id, sealed, created_at, updated_at`

func scanSecret(row scanner) (store.SealedSecret, error) {
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
	out, err := scanSecret(db.w.QueryRowContext(ctx, `INSERT INTO secrets (name, key_id, sealed, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id, sealed = excluded.sealed, updated_at = excluded.updated_at
		RETURNING `+secretCols, s.Name, s.KeyID, s.Sealed, timeArg(now), timeArg(now)))
	if err != nil {
		return store.SealedSecret{}, fmt.Errorf("put secret %q: %w", s.Name, err)
	}
	return out, nil
}

// Secret reads one secret.
func (db *DB) Secret(ctx context.Context, name string) (store.SealedSecret, error) {
	s, err := scanSecret(db.r.QueryRowContext(ctx, `SELECT `+secretCols+` FROM secrets WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return store.SealedSecret{}, fmt.Errorf("secret %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.SealedSecret{}, fmt.Errorf("secret %q: %w", name, err)
	}
	return s, nil
}

// ListSecrets returns every secret by name.
func (db *DB) ListSecrets(ctx context.Context) ([]store.SealedSecret, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+secretCols+` FROM secrets ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return collect(rows, "list secrets", scanSecret)
}

// DeleteSecret removes a secret.
func (db *DB) DeleteSecret(ctx context.Context, name string) error {
	res, err := db.w.ExecContext(ctx, `DELETE FROM secrets WHERE name = ?`, name)
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("delete secret %q: %w", name, err)
	}
	return nil
}

// ResealSecret replaces a sealed value still sealed with oldKeyID.
func (db *DB) ResealSecret(ctx context.Context, name, oldKeyID, newKeyID string, sealed []byte) error {
	if newKeyID == "" || len(sealed) == 0 {
		return fmt.Errorf("reseal secret %q: empty key id or sealed value", name)
	}
	res, err := db.w.ExecContext(ctx, `UPDATE secrets SET key_id = ?, sealed = ? WHERE name = ? AND key_id = ?`,
		newKeyID, sealed, name, oldKeyID)
	if err := affectedOne(res, err); errors.Is(err, store.ErrNotFound) {
		if _, gone := db.Secret(ctx, name); errors.Is(gone, store.ErrNotFound) {
			return fmt.Errorf("reseal secret %q: %w", name, store.ErrNotFound)
		}
		return fmt.Errorf("reseal secret %q: it is no longer sealed with key %s: %w", name, oldKeyID, store.ErrConflict)
	} else if err != nil {
		return fmt.Errorf("reseal secret %q: %w", name, err)
	}
	return nil
}

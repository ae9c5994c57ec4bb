package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// Tokens: the worker_tokens table of migrations 0003 and 0004 (kinds). Only hashes of
// the secrets are stored; the unique indexes on the hash and on the name of
// valid tokens decide conflicts.

const tokenCols = `id, name, kind, role, namespace, created_at, expires_at, revoked_at, last_used_at`

func scanToken(row scanner) (store.Token, error) {
	var tk store.Token
	err := row.Scan(&tk.ID, &tk.Name, &tk.Kind, &tk.Role, &tk.Namespace, timeCol{&tk.CreatedAt}, timeCol{&tk.ExpiresAt},
		timeCol{&tk.RevokedAt}, timeCol{&tk.LastUsedAt})
	return tk, err
}

// CreateToken inserts a worker token; a unique index violation is ErrConflict.
func (db *DB) CreateToken(ctx context.Context, name string, hash []byte, now time.Time) (store.Token, error) {
	return db.IssueToken(ctx, store.NewToken{Name: name, Kind: store.TokenWorker}, hash, now)
}

// IssueToken inserts a token of any kind; a unique index violation is
// ErrConflict.
func (db *DB) IssueToken(ctx context.Context, nt store.NewToken, hash []byte, now time.Time) (store.Token, error) {
	nt, err := store.CheckNewToken(nt)
	if err != nil {
		return store.Token{}, fmt.Errorf("create token: %w", err)
	}
	name := nt.Name
	if len(hash) == 0 {
		return store.Token{}, fmt.Errorf("create token %q: empty hash", name)
	}
	if now.IsZero() {
		now = time.Now()
	}
	tk := store.Token{Name: name, Kind: nt.Kind, Role: nt.Role, Namespace: nt.Namespace, ExpiresAt: nt.ExpiresAt, CreatedAt: store.NormTime(now)}
	err = db.w.QueryRowContext(ctx, `INSERT INTO worker_tokens (name, hash, created_at, kind, role, namespace, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		name, hash, timeArg(tk.CreatedAt), string(tk.Kind), tk.Role, tk.Namespace, timeArg(tk.ExpiresAt)).Scan(&tk.ID)
	if code(err) == sqlite3.SQLITE_CONSTRAINT_UNIQUE {
		if strings.Contains(err.Error(), "worker_tokens.hash") {
			return store.Token{}, fmt.Errorf("create token %q: its hash is already stored: %w", name, store.ErrConflict)
		}
		return store.Token{}, fmt.Errorf("create token %q: a valid token has that name: %w", name, store.ErrConflict)
	}
	if err != nil {
		return store.Token{}, fmt.Errorf("create token %q: %w", name, err)
	}
	return tk, nil
}

// RevokeToken marks the valid token called name revoked.
func (db *DB) RevokeToken(ctx context.Context, name string, now time.Time) error {
	if now.IsZero() {
		now = time.Now()
	}
	res, err := db.w.ExecContext(ctx, `UPDATE worker_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL`,
		timeArg(now), name)
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("revoke token %q: %w", name, err)
	}
	return nil
}

// TokenByHash looks a valid token up in worker_tokens_by_hash.
func (db *DB) TokenByHash(ctx context.Context, hash []byte) (store.Token, error) {
	if len(hash) == 0 {
		return store.Token{}, fmt.Errorf("token by hash: empty hash: %w", store.ErrNotFound)
	}
	tk, err := scanToken(db.r.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM worker_tokens INDEXED BY worker_tokens_by_hash
		WHERE hash = ? AND revoked_at IS NULL`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Token{}, fmt.Errorf("token by hash: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Token{}, fmt.Errorf("token by hash: %w", err)
	}
	return tk, nil
}

// ListTokens returns every token by id.
func (db *DB) ListTokens(ctx context.Context) ([]store.Token, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+tokenCols+` FROM worker_tokens ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return collect(rows, "list tokens", scanToken)
}

// TouchToken moves last_used_at forward to now; a row that is already later
// is not written at all.
func (db *DB) TouchToken(ctx context.Context, id int64, now time.Time) error {
	if now.IsZero() {
		now = time.Now()
	}
	res, err := db.w.ExecContext(ctx, `UPDATE worker_tokens SET last_used_at = ?1
		WHERE id = ?2 AND (last_used_at IS NULL OR last_used_at < ?1)`, timeArg(now), id)
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil && n == 0 {
			var one int
			err = db.r.QueryRowContext(ctx, `SELECT 1 FROM worker_tokens WHERE id = ?`, id).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				err = store.ErrNotFound
			}
		}
	}
	if err != nil {
		return fmt.Errorf("touch token %d: %w", id, err)
	}
	return nil
}

// AppendAudit inserts an audit entry.
func (db *DB) AppendAudit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error) {
	e, err := store.CheckAuditEntry(e)
	if err != nil {
		return store.AuditEntry{}, fmt.Errorf("append audit entry: %w", err)
	}
	err = db.w.QueryRowContext(ctx, `INSERT INTO audit_log (at, actor, remote, method, route, target, status)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		timeArg(e.At), e.Actor, e.Remote, e.Method, e.Route, e.Target, e.Status).Scan(&e.ID)
	if err != nil {
		return store.AuditEntry{}, fmt.Errorf("append audit entry: %w", err)
	}
	return e, nil
}

// ListAudit reads a page of the audit log newest first, by the primary key.
func (db *DB) ListAudit(ctx context.Context, before int64, limit int) ([]store.AuditEntry, error) {
	if before <= 0 {
		before = math.MaxInt64
	}
	rows, err := db.r.QueryContext(ctx, `SELECT id, at, actor, remote, method, route, target, status FROM audit_log
		WHERE id < ? ORDER BY id DESC LIMIT ?`, before, store.AuditLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list audit log: %w", err)
	}
	return collect(rows, "list audit log", func(r scanner) (store.AuditEntry, error) {
		var e store.AuditEntry
		err := r.Scan(&e.ID, timeCol{&e.At}, &e.Actor, &e.Remote, &e.Method, &e.Route, &e.Target, &e.Status)
		return e, err
	})
}

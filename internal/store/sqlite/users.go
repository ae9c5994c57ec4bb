package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// Users: the users and sessions tables of migration 0006. Passwords arrive
// hashed and session secrets as their SHA-256.

const userCols = `id, name, password_hash, role, namespace, created_at, password_at`

func scanUser(row scanner) (store.User, error) {
	var u store.User
	err := row.Scan(&u.ID, &u.Name, &u.PasswordHash, &u.Role, &u.Namespace, timeCol{&u.CreatedAt}, timeCol{&u.PasswordAt})
	return u, err
}

// CreateUser inserts a user; a taken name is ErrConflict.
func (db *DB) CreateUser(ctx context.Context, nu store.NewUser, now time.Time) (store.User, error) {
	if err := store.CheckNewUser(nu); err != nil {
		return store.User{}, fmt.Errorf("create user: %w", err)
	}
	if now.IsZero() {
		now = time.Now()
	}
	now = store.NormTime(now)
	u, err := scanUser(db.w.QueryRowContext(ctx, `INSERT INTO users (name, password_hash, role, namespace, created_at, password_at)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING `+userCols,
		nu.Name, nu.PasswordHash, nu.Role, nu.Namespace, timeArg(now), timeArg(now)))
	if code(err) == sqlite3.SQLITE_CONSTRAINT_UNIQUE {
		return store.User{}, fmt.Errorf("create user %q: a user has that name: %w", nu.Name, store.ErrConflict)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("create user %q: %w", nu.Name, err)
	}
	return u, nil
}

// User reads one user.
func (db *DB) User(ctx context.Context, name string) (store.User, error) {
	u, err := scanUser(db.r.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return store.User{}, fmt.Errorf("user %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("user %q: %w", name, err)
	}
	return u, nil
}

// ListUsers returns every user by name.
func (db *DB) ListUsers(ctx context.Context) ([]store.User, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+userCols+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return collect(rows, "list users", scanUser)
}

// DeleteUser removes a user and their sessions in one transaction.
func (db *DB) DeleteUser(ctx context.Context, name string) error {
	err := db.usersTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE name = ?)`, name); err != nil {
			return err
		}
		return affectedOne(tx.ExecContext(ctx, `DELETE FROM users WHERE name = ?`, name))
	})
	if err != nil {
		return fmt.Errorf("delete user %q: %w", name, err)
	}
	return nil
}

// SetPassword replaces a password hash and revokes the user's sessions in
// one transaction.
func (db *DB) SetPassword(ctx context.Context, name, hash string, now time.Time) error {
	if err := store.CheckText("password hash", hash); err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	if now.IsZero() {
		now = time.Now()
	}
	err := db.usersTx(ctx, func(tx *sql.Tx) error {
		if err := affectedOne(tx.ExecContext(ctx, `UPDATE users SET password_hash = ?, password_at = ? WHERE name = ?`,
			hash, timeArg(store.NormTime(now)), name)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked_at = ?
			WHERE revoked_at IS NULL AND user_id = (SELECT id FROM users WHERE name = ?)`, timeArg(store.NormTime(now)), name)
		return err
	})
	if err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	return nil
}

// usersTx runs fn in a write transaction, committed when fn returns nil.
func (db *DB) usersTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // the first error is the one to report
		return err
	}
	return tx.Commit()
}

const sessionCols = `s.id, u.name, s.created_at, s.expires_at, s.revoked_at`

func scanSession(row scanner, extra ...any) (store.Session, error) {
	var s store.Session
	err := row.Scan(append([]any{&s.ID, &s.User, timeCol{&s.CreatedAt}, timeCol{&s.ExpiresAt}, timeCol{&s.RevokedAt}}, extra...)...)
	return s, err
}

// CreateSession inserts a session of an existing user.
func (db *DB) CreateSession(ctx context.Context, user string, hash []byte, now, expires time.Time) (store.Session, error) {
	if len(hash) == 0 {
		return store.Session{}, fmt.Errorf("create session of %q: empty hash", user)
	}
	if now.IsZero() {
		now = time.Now()
	}
	s := store.Session{User: user, CreatedAt: store.NormTime(now), ExpiresAt: store.NormTime(expires)}
	err := db.w.QueryRowContext(ctx, `INSERT INTO sessions (hash, user_id, created_at, expires_at)
		SELECT ?, id, ?, ? FROM users WHERE name = ? RETURNING id`,
		hash, timeArg(s.CreatedAt), timeArg(s.ExpiresAt), user).Scan(&s.ID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.Session{}, fmt.Errorf("create session of %q: %w", user, store.ErrNotFound)
	case code(err) == sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return store.Session{}, fmt.Errorf("create session of %q: its hash is already stored: %w", user, store.ErrConflict)
	case err != nil:
		return store.Session{}, fmt.Errorf("create session of %q: %w", user, err)
	}
	return s, nil
}

// SessionByHash looks a valid session and its user up by the session's
// hash.
func (db *DB) SessionByHash(ctx context.Context, hash []byte) (store.Session, store.User, error) {
	var u store.User
	s, err := scanSession(db.r.QueryRowContext(ctx, `SELECT `+sessionCols+`, u.id, u.role, u.namespace, u.created_at, u.password_at
		FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.hash = ? AND s.revoked_at IS NULL`, hash),
		&u.ID, &u.Role, &u.Namespace, timeCol{&u.CreatedAt}, timeCol{&u.PasswordAt})
	if errors.Is(err, sql.ErrNoRows) {
		return store.Session{}, store.User{}, fmt.Errorf("session by hash: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Session{}, store.User{}, fmt.Errorf("session by hash: %w", err)
	}
	u.Name = s.User
	return s, u, nil
}

// ListSessions returns the valid sessions by id.
func (db *DB) ListSessions(ctx context.Context, now time.Time) ([]store.Session, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+sessionCols+` FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.revoked_at IS NULL AND s.expires_at > ? ORDER BY s.id`, timeArg(store.NormTime(now)))
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return collect(rows, "list sessions", func(r scanner) (store.Session, error) { return scanSession(r) })
}

// RevokeSession revokes one valid session.
func (db *DB) RevokeSession(ctx context.Context, id int64, now time.Time) error {
	if now.IsZero() {
		now = time.Now()
	}
	err := affectedOne(db.w.ExecContext(ctx, `UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`,
		timeArg(store.NormTime(now)), id))
	if err != nil {
		return fmt.Errorf("revoke session %d: %w", id, err)
	}
	return nil
}

// RevokeUserSessions revokes every valid session of a user.
func (db *DB) RevokeUserSessions(ctx context.Context, name string, now time.Time) (int, error) {
	if now.IsZero() {
		now = time.Now()
	}
	res, err := db.w.ExecContext(ctx, `UPDATE sessions SET revoked_at = ?
		WHERE revoked_at IS NULL AND user_id = (SELECT id FROM users WHERE name = ?)`, timeArg(store.NormTime(now)), name)
	if err != nil {
		return 0, fmt.Errorf("revoke sessions of %q: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("revoke sessions of %q: %w", name, err)
	}
	return int(n), nil
}

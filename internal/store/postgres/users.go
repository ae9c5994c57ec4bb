package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// Users: the users and sessions tables of migration 0006. Passwords arrive
// hashed and session secrets as their SHA-256.

const userCols = `id, name, password_hash, role, namespace, created_at, password_at`

func scanUser(row pgx.Row) (store.User, error) {
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
	u, err := scanUser(db.pool.QueryRow(ctx, `INSERT INTO users (name, password_hash, role, namespace, created_at, password_at)
		VALUES ($1, $2, $3, $4, $5, $5) RETURNING `+userCols, nu.Name, nu.PasswordHash, nu.Role, nu.Namespace, now))
	switch {
	case isConstraint(err, sqlstateUniqueViolation, "users_name"):
		return store.User{}, fmt.Errorf("create user %q: a user has that name: %w", nu.Name, store.ErrConflict)
	case err != nil:
		return store.User{}, fmt.Errorf("create user %q: %w", nu.Name, err)
	}
	return u, nil
}

// User reads one user.
func (db *DB) User(ctx context.Context, name string) (store.User, error) {
	u, err := scanUser(db.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.User{}, fmt.Errorf("user %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("user %q: %w", name, err)
	}
	return u, nil
}

// ListUsers returns every user by name.
func (db *DB) ListUsers(ctx context.Context) ([]store.User, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+userCols+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.User, error) { return scanUser(row) })
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// DeleteUser removes a user; the foreign key deletes their sessions in
// the same statement.
func (db *DB) DeleteUser(ctx context.Context, name string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM users WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("delete user %q: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete user %q: %w", name, store.ErrNotFound)
	}
	return nil
}

// SetPassword replaces a password hash and revokes the user's sessions in
// one statement.
func (db *DB) SetPassword(ctx context.Context, name, hash string, now time.Time) error {
	if err := store.CheckText("password hash", hash); err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	if now.IsZero() {
		now = time.Now()
	}
	var n int
	err := db.pool.QueryRow(ctx, `WITH u AS (
			UPDATE users SET password_hash = $1, password_at = $2 WHERE name = $3 RETURNING id
		), s AS (
			UPDATE sessions SET revoked_at = $2 WHERE revoked_at IS NULL AND user_id IN (SELECT id FROM u)
		)
		SELECT count(*) FROM u`, hash, store.NormTime(now), name).Scan(&n)
	if err == nil && n == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("set password of %q: %w", name, err)
	}
	return nil
}

const sessionCols = `s.id, u.name, s.created_at, s.expires_at, s.revoked_at`

func scanSession(row pgx.Row, extra ...any) (store.Session, error) {
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
	err := db.pool.QueryRow(ctx, `INSERT INTO sessions (hash, user_id, created_at, expires_at)
		SELECT $1, id, $2, $3 FROM users WHERE name = $4 RETURNING id`,
		hash, s.CreatedAt, s.ExpiresAt, user).Scan(&s.ID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.Session{}, fmt.Errorf("create session of %q: %w", user, store.ErrNotFound)
	case isConstraint(err, sqlstateUniqueViolation, "sessions_hash"):
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
	s, err := scanSession(db.pool.QueryRow(ctx, `SELECT `+sessionCols+`, u.id, u.role, u.namespace, u.created_at, u.password_at
		FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.hash = $1 AND s.revoked_at IS NULL`, hash),
		&u.ID, &u.Role, &u.Namespace, timeCol{&u.CreatedAt}, timeCol{&u.PasswordAt})
	if errors.Is(err, pgx.ErrNoRows) {
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
	rows, err := db.pool.Query(ctx, `SELECT `+sessionCols+` FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.revoked_at IS NULL AND s.expires_at > $1 ORDER BY s.id`, store.NormTime(now))
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Session, error) { return scanSession(row) })
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return out, nil
}

// RevokeSession revokes one valid session.
func (db *DB) RevokeSession(ctx context.Context, id int64, now time.Time) error {
	if now.IsZero() {
		now = time.Now()
	}
	tag, err := db.pool.Exec(ctx, `UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, store.NormTime(now), id)
	if err != nil {
		return fmt.Errorf("revoke session %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoke session %d: %w", id, store.ErrNotFound)
	}
	return nil
}

// RevokeUserSessions revokes every valid session of a user.
func (db *DB) RevokeUserSessions(ctx context.Context, name string, now time.Time) (int, error) {
	if now.IsZero() {
		now = time.Now()
	}
	tag, err := db.pool.Exec(ctx, `UPDATE sessions SET revoked_at = $1
		WHERE revoked_at IS NULL AND user_id = (SELECT id FROM users WHERE name = $2)`, store.NormTime(now), name)
	if err != nil {
		return 0, fmt.Errorf("revoke sessions of %q: %w", name, err)
	}
	return int(tag.RowsAffected()), nil
}

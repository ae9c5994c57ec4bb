-- 0006: local users and the sessions of people logged in to the web UI.
-- Mirrors internal/store/postgres/migrations/0006_users.sql; conventions as
-- in 0001.

-- A user logs in with a password (password_hash: an argon2id PHC string,
-- '' for a user who signs in only through OpenID Connect) and acts with a
-- role and an optional namespace, as an API token does.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    namespace     TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    password_at   INTEGER NOT NULL
) STRICT;

-- A session: only the SHA-256 of its secret (the cookie's value) is kept.
-- Deleting a user deletes their sessions (DeleteUser does it in the same
-- transaction, whatever the foreign_keys pragma says).
CREATE TABLE sessions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    hash       BLOB    NOT NULL UNIQUE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
CREATE INDEX sessions_by_user ON sessions (user_id) WHERE revoked_at IS NULL;

-- 0006: local users and the sessions of people logged in to the web UI.
-- Mirrors internal/store/sqlite/migrations/0006_users.sql; conventions as
-- in 0001.

-- A user logs in with a password (password_hash: an argon2id PHC string,
-- '' for a user who signs in only through OpenID Connect) and acts with a
-- role and an optional namespace, as an API token does.
CREATE TABLE users (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text COLLATE "C" NOT NULL CONSTRAINT users_name UNIQUE,
    password_hash text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    namespace     text COLLATE "C" NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    password_at   timestamptz NOT NULL
);

-- A session: only the SHA-256 of its secret (the cookie's value) is kept.
-- Deleting a user deletes their sessions.
CREATE TABLE sessions (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hash       bytea       NOT NULL CONSTRAINT sessions_hash UNIQUE,
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX sessions_by_user ON sessions (user_id) WHERE revoked_at IS NULL;

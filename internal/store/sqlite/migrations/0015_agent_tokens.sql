-- 0015: agent tokens, a third kind of token beside 'worker' and 'api': one
-- that may only send host reports (POST /worker/hosts), never lease work.
-- Mirrors internal/store/postgres/migrations/0015_agent_tokens.sql;
-- conventions as in 0001.
--
-- SQLite cannot change a column's CHECK in place: the table is rebuilt with
-- the same columns, rows and indexes, and its AUTOINCREMENT high-water mark,
-- so a token id is still never reused.
CREATE TABLE worker_tokens_new (
    id           INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused
    name         TEXT    NOT NULL CHECK (name <> ''),
    hash         BLOB    NOT NULL CHECK (length(hash) > 0),
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    last_used_at INTEGER,
    kind         TEXT    NOT NULL DEFAULT 'worker' CHECK (kind IN ('worker', 'api', 'agent')),
    role         TEXT    NOT NULL DEFAULT '' CHECK (role IN ('', 'viewer', 'operator', 'admin')),
    namespace    TEXT    NOT NULL DEFAULT '',
    expires_at   INTEGER
) STRICT;

INSERT INTO worker_tokens_new (id, name, hash, created_at, revoked_at, last_used_at, kind, role, namespace, expires_at)
    SELECT id, name, hash, created_at, revoked_at, last_used_at, kind, role, namespace, expires_at FROM worker_tokens;

-- The old table's sequence row (at least the largest id) becomes the new one's.
DELETE FROM sqlite_sequence WHERE name = 'worker_tokens_new';
UPDATE sqlite_sequence SET name = 'worker_tokens_new' WHERE name = 'worker_tokens';

DROP TABLE worker_tokens;
ALTER TABLE worker_tokens_new RENAME TO worker_tokens;

CREATE UNIQUE INDEX worker_tokens_by_hash ON worker_tokens (hash);
CREATE UNIQUE INDEX worker_tokens_valid_name ON worker_tokens (name) WHERE revoked_at IS NULL;

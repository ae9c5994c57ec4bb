-- 0003: what several servers and remote workers share: the leadership lease
-- and the worker tokens. Mirrors internal/store/postgres/migrations/0003_scale_out.sql;
-- conventions as in 0001.

-- The one leadership row (id 1, created here so acquiring is always an
-- UPDATE: a compare-and-set on one row). holder is '' when nobody holds it;
-- term increases whenever the holder changes and fences the leader's writes;
-- expires_at is judged by the callers' clocks, NULL when nobody holds it.
CREATE TABLE leadership (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    holder     TEXT    NOT NULL DEFAULT '',
    address    TEXT    NOT NULL DEFAULT '',
    term       INTEGER NOT NULL DEFAULT 0 CHECK (term >= 0),
    expires_at INTEGER
) STRICT;

INSERT INTO leadership (id) VALUES (1);

-- Worker tokens: only a hash of each secret is stored. A name is unique among
-- the tokens that are not revoked (a revoked name may be reused); a hash is
-- unique among all, so TokenByHash is one lookup in worker_tokens_by_hash and a
-- revoked secret never becomes valid again.
CREATE TABLE worker_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused
    name         TEXT    NOT NULL CHECK (name <> ''),
    hash         BLOB    NOT NULL CHECK (length(hash) > 0),
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    last_used_at INTEGER
) STRICT;

CREATE UNIQUE INDEX worker_tokens_by_hash ON worker_tokens (hash);
CREATE UNIQUE INDEX worker_tokens_valid_name ON worker_tokens (name) WHERE revoked_at IS NULL;

-- 0003: what several servers and remote workers share: the leadership lease
-- and the worker tokens. Mirrors internal/store/sqlite/migrations/0003_scale_out.sql;
-- conventions as in 0001.

-- The one leadership row (id 1, created here so acquiring is always an
-- UPDATE: a compare-and-set on one row, which PostgreSQL re-checks on the
-- newest row version after waiting for a concurrent writer). holder is ''
-- when nobody holds it; term increases whenever the holder changes and
-- fences the leader's writes (ApplyFenced locks this row FOR SHARE);
-- expires_at is judged by the callers' clocks, NULL when nobody holds it.
CREATE TABLE leadership (
    id         integer     PRIMARY KEY CHECK (id = 1),
    holder     text        NOT NULL DEFAULT '',
    address    text        NOT NULL DEFAULT '',
    term       bigint      NOT NULL DEFAULT 0 CHECK (term >= 0),
    expires_at timestamptz
);

INSERT INTO leadership (id) VALUES (1);

-- Worker tokens: only a hash of each secret is stored. A name is unique among
-- the tokens that are not revoked (a revoked name may be reused); a hash is
-- unique among all, so TokenByHash is one lookup in worker_tokens_by_hash and a
-- revoked secret never becomes valid again.
CREATE TABLE worker_tokens (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text        COLLATE "C" NOT NULL CHECK (name <> ''),
    hash         bytea       NOT NULL CHECK (length(hash) > 0),
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    last_used_at timestamptz
);

CREATE UNIQUE INDEX worker_tokens_by_hash ON worker_tokens (hash);
CREATE UNIQUE INDEX worker_tokens_valid_name ON worker_tokens (name) WHERE revoked_at IS NULL;

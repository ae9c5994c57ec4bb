-- 0004: API tokens (roles, namespaces, expiry) beside worker tokens, and the
-- audit log. Mirrors internal/store/postgres/migrations/0004_auth.sql;
-- conventions as in 0001.

-- A token is of one kind: 'worker' (the worker protocol only, as every token
-- before this migration) or 'api' (the API, with a role and an optional
-- namespace). Names stay unique among valid tokens of both kinds, so a name
-- in the audit log says which credential acted. expires_at NULL: never.
ALTER TABLE worker_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'worker' CHECK (kind IN ('worker', 'api'));
ALTER TABLE worker_tokens ADD COLUMN role TEXT NOT NULL DEFAULT '' CHECK (role IN ('', 'viewer', 'operator', 'admin'));
ALTER TABLE worker_tokens ADD COLUMN namespace TEXT NOT NULL DEFAULT '';
ALTER TABLE worker_tokens ADD COLUMN expires_at INTEGER;

-- The audit log: one row per request that asked to change something, newest
-- last. actor is the name of the credential ('' when none was valid),
-- remote the client's address, route the route pattern, target the ids the
-- request named (run, task, pipeline, token...), status the HTTP answer.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: the page cursor
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    remote  TEXT    NOT NULL,
    method  TEXT    NOT NULL,
    route   TEXT    NOT NULL,
    target  TEXT    NOT NULL,
    status  INTEGER NOT NULL
) STRICT;

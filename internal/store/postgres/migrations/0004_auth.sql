-- 0004: API tokens (roles, namespaces, expiry) beside worker tokens, and the
-- audit log. Mirrors internal/store/sqlite/migrations/0004_auth.sql;
-- conventions as in 0001.

-- A token is of one kind: 'worker' (the worker protocol only, as every token
-- before this migration) or 'api' (the API, with a role and an optional
-- namespace). Names stay unique among valid tokens of both kinds, so a name
-- in the audit log says which credential acted. expires_at NULL: never.
ALTER TABLE worker_tokens ADD COLUMN kind text NOT NULL DEFAULT 'worker' CHECK (kind IN ('worker', 'api'));
ALTER TABLE worker_tokens ADD COLUMN role text NOT NULL DEFAULT '' CHECK (role IN ('', 'viewer', 'operator', 'admin'));
ALTER TABLE worker_tokens ADD COLUMN namespace text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE worker_tokens ADD COLUMN expires_at timestamptz;

-- The audit log: one row per request that asked to change something, newest
-- last. actor is the name of the credential ('' when none was valid),
-- remote the client's address, route the route pattern, target the ids the
-- request named (run, task, pipeline, token...), status the HTTP answer.
CREATE TABLE audit_log (
    id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- the page cursor
    at      timestamptz NOT NULL,
    actor   text        NOT NULL,
    remote  text        NOT NULL,
    method  text        NOT NULL,
    route   text        NOT NULL,
    target  text        NOT NULL,
    status  integer     NOT NULL
);

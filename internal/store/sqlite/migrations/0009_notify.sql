-- 0009: notifications: the outbox of deliveries and the incidents of runs.
-- Mirrors internal/store/postgres/migrations/0009_notify.sql; conventions as
-- in 0001.

-- One row per event and destination, written with the decision to tell the
-- event (Publish) and sent by the server that claims it: claimed_by and
-- claimed_until are the claim, attempts counts the claims. run_id is NULL
-- for an event about no run (an objective's breach); a pruned run takes its
-- deliveries with it. payload and destination are JSON objects of
-- internal/notify: the destination names secrets, never holds their values.
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id        INTEGER REFERENCES runs (id) ON DELETE CASCADE,
    pipeline      TEXT    NOT NULL,
    kind          TEXT    NOT NULL CHECK (kind <> ''),
    payload       TEXT    NOT NULL CHECK (json_valid(payload)),
    destination   TEXT    NOT NULL CHECK (json_valid(destination)),
    label         TEXT    NOT NULL DEFAULT '',
    state         TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    next_at       INTEGER NOT NULL,
    last_error    TEXT    NOT NULL DEFAULT '',
    finished_at   INTEGER,
    claimed_by    TEXT    NOT NULL DEFAULT '',
    claimed_until INTEGER
) STRICT;

-- The due deliveries, oldest first: what every claim reads. Partial, so
-- the sent and failed rows of the past cost nothing.
CREATE INDEX outbox_due ON outbox (next_at, id) WHERE state = 'pending';
-- A run's deliveries (the alerts of a run; the cascade of a pruned run).
CREATE INDEX outbox_by_run ON outbox (run_id, id);

-- One row per run and problem (the kind of event that opened it: at_risk,
-- missed, failed), open while closed_at is NULL. Opening an open incident
-- or closing a closed one changes nothing, which is how retries do not
-- alert again.
CREATE TABLE incidents (
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    problem     TEXT    NOT NULL CHECK (problem <> ''),
    opened_at   INTEGER NOT NULL,
    closed_at   INTEGER,
    repaired_at INTEGER,
    opened      INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (run_id, problem)
) STRICT;

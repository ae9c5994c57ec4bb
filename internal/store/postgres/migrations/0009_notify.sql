-- 0009: notifications: the outbox of deliveries and the incidents of runs.
-- Mirrors internal/store/sqlite/migrations/0009_notify.sql; conventions as
-- in 0001.

-- One row per event and destination, written with the decision to tell the
-- event (Publish) and sent by the server that claims it: claimed_by and
-- claimed_until are the claim, attempts counts the claims. run_id is NULL
-- for an event about no run (an objective's breach); a pruned run takes its
-- deliveries with it. payload and destination are JSON objects of
-- internal/notify: the destination names secrets, never holds their values.
CREATE TABLE outbox (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id        bigint      REFERENCES runs (id) ON DELETE CASCADE,
    pipeline      text        COLLATE "C" NOT NULL,
    kind          text        COLLATE "C" NOT NULL CHECK (kind <> ''),
    payload       jsonb       NOT NULL,
    destination   jsonb       NOT NULL,
    label         text        NOT NULL DEFAULT '',
    state         text        COLLATE "C" NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts      integer     NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL,
    next_at       timestamptz NOT NULL,
    last_error    text        NOT NULL DEFAULT '',
    finished_at   timestamptz,
    claimed_by    text        NOT NULL DEFAULT '',
    claimed_until timestamptz
);

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
    run_id      bigint      NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    problem     text        COLLATE "C" NOT NULL CHECK (problem <> ''),
    opened_at   timestamptz NOT NULL,
    closed_at   timestamptz,
    repaired_at timestamptz,
    opened      integer     NOT NULL DEFAULT 1,
    PRIMARY KEY (run_id, problem)
);

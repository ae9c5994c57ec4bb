-- 0010: freshness objectives: each objective the leader judges and since
-- when, each closed window as judged, and each breach with its cause.
-- Mirrors internal/store/sqlite/migrations/0010_slo.sql; conventions as in
-- 0001.

-- One row per objective ever judged: objective is 'pipeline' (the
-- pipeline's success) or 'dataset:NAME'; definition is its canonical form,
-- and a changed definition resets since (it starts afresh).
CREATE TABLE slo_objectives (
    pipeline   text        COLLATE "C" NOT NULL CHECK (pipeline <> ''),
    objective  text        COLLATE "C" NOT NULL CHECK (objective <> ''),
    definition text        NOT NULL,
    since      timestamptz NOT NULL,
    PRIMARY KEY (pipeline, objective)
);

-- One row per closed window, written once: met, and for max_age the time
-- judged and the time the data was fresh (microseconds). Compliance over a
-- period sums the windows that end in it.
CREATE TABLE slo_windows (
    pipeline     text        COLLATE "C" NOT NULL,
    objective    text        COLLATE "C" NOT NULL,
    start_at     timestamptz NOT NULL,
    end_at       timestamptz NOT NULL,
    met          boolean     NOT NULL,
    judged_us    bigint      NOT NULL DEFAULT 0 CHECK (judged_us >= 0),
    compliant_us bigint      NOT NULL DEFAULT 0 CHECK (compliant_us >= 0),
    PRIMARY KEY (pipeline, objective, start_at)
);
CREATE INDEX slo_windows_by_end ON slo_windows (pipeline, objective, end_at);
-- Pruning by end across all objectives.
CREATE INDEX slo_windows_end ON slo_windows (end_at);

-- One row per breach, unique by its start: end_at is NULL while it is
-- open. run_id is not a foreign key: pruning the run keeps the breach and
-- its cause as it was seen.
CREATE TABLE slo_breaches (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline     text        COLLATE "C" NOT NULL,
    objective    text        COLLATE "C" NOT NULL,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    start_at     timestamptz NOT NULL,
    end_at       timestamptz,
    run_id       bigint,
    run_state    text        NOT NULL DEFAULT '',
    task_id      text        NOT NULL DEFAULT '',
    task_state   text        NOT NULL DEFAULT '',
    message      text        NOT NULL DEFAULT '',
    cause        text        NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX slo_breaches_by_start ON slo_breaches (pipeline, objective, start_at);
CREATE INDEX slo_breaches_newest ON slo_breaches (start_at, id);
CREATE INDEX slo_breaches_open ON slo_breaches (pipeline, objective) WHERE end_at IS NULL;

-- 0010: freshness objectives: each objective the leader judges and since
-- when, each closed window as judged, and each breach with its cause.
-- Mirrors internal/store/postgres/migrations/0010_slo.sql; conventions as
-- in 0001.

-- One row per objective ever judged: objective is 'pipeline' (the
-- pipeline's success) or 'dataset:NAME'; definition is its canonical form,
-- and a changed definition resets since (it starts afresh).
CREATE TABLE slo_objectives (
    pipeline   TEXT    NOT NULL CHECK (pipeline <> ''),
    objective  TEXT    NOT NULL CHECK (objective <> ''),
    definition TEXT    NOT NULL,
    since      INTEGER NOT NULL,
    PRIMARY KEY (pipeline, objective)
) STRICT;

-- One row per closed window, written once: met, and for max_age the time
-- judged and the time the data was fresh (microseconds). Compliance over a
-- period sums the windows that end in it.
CREATE TABLE slo_windows (
    pipeline     TEXT    NOT NULL,
    objective    TEXT    NOT NULL,
    start_at     INTEGER NOT NULL,
    end_at       INTEGER NOT NULL,
    met          INTEGER NOT NULL CHECK (met IN (0, 1)),
    judged_us    INTEGER NOT NULL DEFAULT 0 CHECK (judged_us >= 0),
    compliant_us INTEGER NOT NULL DEFAULT 0 CHECK (compliant_us >= 0),
    PRIMARY KEY (pipeline, objective, start_at)
) STRICT;
CREATE INDEX slo_windows_by_end ON slo_windows (pipeline, objective, end_at);
-- Pruning by end across all objectives.
CREATE INDEX slo_windows_end ON slo_windows (end_at);

-- One row per breach, unique by its start: end_at is NULL while it is
-- open. run_id is not a foreign key: pruning the run keeps the breach and
-- its cause as it was seen.
CREATE TABLE slo_breaches (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline     TEXT    NOT NULL,
    objective    TEXT    NOT NULL,
    window_start INTEGER NOT NULL,
    window_end   INTEGER NOT NULL,
    start_at     INTEGER NOT NULL,
    end_at       INTEGER,
    run_id       INTEGER,
    run_state    TEXT    NOT NULL DEFAULT '',
    task_id      TEXT    NOT NULL DEFAULT '',
    task_state   TEXT    NOT NULL DEFAULT '',
    message      TEXT    NOT NULL DEFAULT '',
    cause        TEXT    NOT NULL DEFAULT ''
) STRICT;
CREATE UNIQUE INDEX slo_breaches_by_start ON slo_breaches (pipeline, objective, start_at);
CREATE INDEX slo_breaches_newest ON slo_breaches (start_at, id);
CREATE INDEX slo_breaches_open ON slo_breaches (pipeline, objective) WHERE end_at IS NULL;

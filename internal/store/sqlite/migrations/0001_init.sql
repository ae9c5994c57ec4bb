-- 0001: pipeline versions, runs, tasks, attempts and the event timeline.
--
-- Conventions (the PostgreSQL schema mirrors them):
--   * Times are INTEGER microseconds since the Unix epoch, UTC; NULL is "not
--     set" (the zero time.Time). Integers are compact, sort correctly and match
--     the microsecond precision of PostgreSQL's timestamptz.
--   * JSON is TEXT checked with json_valid (jsonb on PostgreSQL); NULL is absent.
--   * STRICT tables, so a wrongly typed value is an error, not a silent cast.
--   * Parent rows are referenced with foreign keys (PRAGMA foreign_keys=ON on
--     every connection); child tables are keyed by the parent first so that
--     per-run reads and cascading deletes are range scans.
--   * Columns for leases, priority, pools and schedules come in later
--     migrations as nullable columns or new tables.

CREATE TABLE pipeline_versions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: runs point here
    pipeline   TEXT    NOT NULL,
    hash       TEXT    NOT NULL UNIQUE,          -- hex SHA-256 of source
    file       TEXT    NOT NULL,
    source     BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX pipeline_versions_by_pipeline ON pipeline_versions (pipeline, id DESC);

CREATE TABLE runs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: it is the pagination cursor and in URLs
    pipeline       TEXT    NOT NULL,
    version_id     INTEGER REFERENCES pipeline_versions (id), -- NULL when the run has no stored version
    trigger        TEXT    NOT NULL,
    params         TEXT    CHECK (params IS NULL OR json_valid(params)),
    interval_start INTEGER,
    interval_end   INTEGER,
    created_at     INTEGER NOT NULL,
    task_count     INTEGER NOT NULL,
    state          TEXT    NOT NULL,
    remaining      INTEGER NOT NULL,
    unsuccessful   INTEGER NOT NULL,
    cancelling     INTEGER NOT NULL DEFAULT 0 CHECK (cancelling IN (0, 1)),
    started_at     INTEGER,
    finished_at    INTEGER
) STRICT;

-- ListRuns: newest first by pipeline, by state(s), by both. Each filter is an
-- index range read backwards from the cursor, so a page costs the same with
-- ten runs or ten million.
CREATE INDEX runs_by_pipeline       ON runs (pipeline, id DESC);
CREATE INDEX runs_by_state          ON runs (state, id);
CREATE INDEX runs_by_pipeline_state ON runs (pipeline, state, id);

-- Exactly one scheduled run per pipeline and interval: the database decides,
-- not the scheduler, even with several servers.
CREATE UNIQUE INDEX runs_schedule_interval ON runs (pipeline, interval_start) WHERE trigger = 'schedule';

-- One row per task of a run, clustered by (run_id, idx): a run's tasks are
-- contiguous on disk, and rows are small.
CREATE TABLE tasks (
    run_id        INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    idx           INTEGER NOT NULL,
    task_id       TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    attempt       INTEGER NOT NULL DEFAULT 0,
    spent         INTEGER NOT NULL DEFAULT 0,
    pending_needs INTEGER NOT NULL DEFAULT 0,
    ready_at      INTEGER,
    started_at    INTEGER,
    finished_at   INTEGER,
    exit_code     INTEGER,
    message       TEXT    NOT NULL DEFAULT '',
    result        TEXT    CHECK (result IS NULL OR json_valid(result)),
    PRIMARY KEY (run_id, idx)
) STRICT, WITHOUT ROWID;

-- Finding a run's ready or running tasks without reading the others.
CREATE INDEX tasks_by_state ON tasks (run_id, state);

CREATE TABLE attempts (
    run_id      INTEGER NOT NULL,
    idx         INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    worker      TEXT    NOT NULL DEFAULT '',
    started_at  INTEGER,
    finished_at INTEGER,
    outcome     TEXT    NOT NULL DEFAULT '', -- '' while running
    exit_code   INTEGER,
    message     TEXT    NOT NULL DEFAULT '',
    log         TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, idx, attempt),
    FOREIGN KEY (run_id, idx) REFERENCES tasks (run_id, idx) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- The timeline: append-only, never rewritten. seq orders the whole store and
-- is never reused (AUTOINCREMENT), so it doubles as a resume cursor for live
-- updates.
CREATE TABLE events (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id    INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    task_idx  INTEGER NOT NULL, -- -1 for run-level events
    time      INTEGER,          -- NULL only if the writer gave no time
    kind      TEXT    NOT NULL,
    attempt   INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER,
    message   TEXT    NOT NULL DEFAULT '',
    actor     TEXT    NOT NULL DEFAULT '',
    data      TEXT    CHECK (data IS NULL OR json_valid(data))
) STRICT;

CREATE INDEX events_by_run ON events (run_id, seq);

-- 0002: what a long-running server keeps besides runs: the pipeline registry
-- with each pipeline's schedule state, backfills, and the indexes that keep the
-- scheduler's queue reads, run counts and history pruning independent of the
-- size of the history. Conventions as in 0001.

-- One row per pipeline name, whether or not its file is still on disk: the
-- registry (current good version, file, load error, removed) and the schedule
-- state (paused, next fire time, end of the newest interval started). The
-- schedule columns are only ever changed by their own statements, so reloading
-- a file never resets a schedule.
CREATE TABLE pipelines (
    name              TEXT    PRIMARY KEY,
    version_id        INTEGER REFERENCES pipeline_versions (id), -- NULL: no good version yet
    file              TEXT    NOT NULL DEFAULT '',
    error             TEXT    NOT NULL DEFAULT '',
    removed           INTEGER NOT NULL DEFAULT 0 CHECK (removed IN (0, 1)),
    paused            INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    next_fire         INTEGER, -- NULL: nothing scheduled
    last_interval_end INTEGER, -- NULL: no scheduled interval started yet
    updated_at        INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- A backfill: one run per interval of a range, created together, run with
-- their own concurrency limit. Rows are kept when their runs are pruned: they
-- are small and they are the record of who backfilled which range.
CREATE TABLE backfills (
    id          INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: in URLs and runs point here
    pipeline    TEXT    NOT NULL,
    range_from  INTEGER NOT NULL,
    range_to    INTEGER NOT NULL,
    parallel    INTEGER NOT NULL CHECK (parallel >= 0),
    state       TEXT    NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled')),
    actor       TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    finished_at INTEGER,
    runs        INTEGER NOT NULL
) STRICT;

CREATE INDEX backfills_by_pipeline ON backfills (pipeline, id);

ALTER TABLE runs ADD COLUMN backfill_id INTEGER REFERENCES backfills (id);

-- A backfill's runs, newest or oldest first, and by state (the scheduler takes
-- the oldest queued ones; BackfillCounts groups this index without reading a
-- run row). Partial: only backfill runs pay for them.
CREATE INDEX runs_by_backfill       ON runs (backfill_id, id)        WHERE backfill_id IS NOT NULL;
CREATE INDEX runs_by_backfill_state ON runs (backfill_id, state, id) WHERE backfill_id IS NOT NULL;

-- ListRuns by trigger ("only scheduled runs of this pipeline").
CREATE INDEX runs_by_trigger          ON runs (trigger, id);
CREATE INDEX runs_by_pipeline_trigger ON runs (pipeline, trigger, id);

-- Pruning takes the oldest finished runs. Only finished runs are in this
-- index, so a prune that finds nothing to do reads nothing, however many
-- recent or unfinished runs there are. The state list must match the one in
-- the pruning query exactly for SQLite to use the index.
CREATE INDEX runs_finished_by_created ON runs (created_at)
    WHERE state IN ('succeeded', 'failed', 'cancelled');

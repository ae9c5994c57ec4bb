-- 0002: what a long-running server keeps besides runs: the pipeline registry
-- with each pipeline's schedule state, backfills, and the indexes that keep the
-- scheduler's queue reads, run counts and history pruning independent of the
-- size of the history. Mirrors internal/store/sqlite/migrations/0002_server.sql;
-- conventions as in 0001.

-- One row per pipeline name, whether or not its file is still on disk: the
-- registry (current good version, file, load error, removed) and the schedule
-- state (paused, next fire time, end of the newest interval started). The
-- schedule columns are only ever changed by their own statements, so reloading
-- a file never resets a schedule.
CREATE TABLE pipelines (
    name              text        COLLATE "C" PRIMARY KEY,
    version_id        bigint      REFERENCES pipeline_versions (id), -- NULL: no good version yet
    file              text        NOT NULL DEFAULT '',
    error             text        NOT NULL DEFAULT '',
    removed           boolean     NOT NULL DEFAULT false,
    paused            boolean     NOT NULL DEFAULT false,
    next_fire         timestamptz, -- NULL: nothing scheduled
    last_interval_end timestamptz, -- NULL: no scheduled interval started yet
    updated_at        timestamptz NOT NULL
);

-- A backfill: one run per interval of a range, created together, run with
-- their own concurrency limit. Rows are kept when their runs are pruned: they
-- are small and they are the record of who backfilled which range.
CREATE TABLE backfills (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline    text        COLLATE "C" NOT NULL,
    range_from  timestamptz NOT NULL,
    range_to    timestamptz NOT NULL,
    parallel    integer     NOT NULL CHECK (parallel >= 0),
    state       text        COLLATE "C" NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'cancelled')),
    actor       text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    finished_at timestamptz,
    runs        integer     NOT NULL
);

CREATE INDEX backfills_by_pipeline ON backfills (pipeline, id);

ALTER TABLE runs ADD COLUMN backfill_id bigint REFERENCES backfills (id);

-- A backfill's runs, newest or oldest first, and by state (the scheduler takes
-- the oldest queued ones; BackfillCounts reads this index). Partial: only
-- backfill runs pay for them.
CREATE INDEX runs_by_backfill       ON runs (backfill_id, id)        WHERE backfill_id IS NOT NULL;
CREATE INDEX runs_by_backfill_state ON runs (backfill_id, state, id) WHERE backfill_id IS NOT NULL;

-- ListRuns by trigger ("only scheduled runs of this pipeline").
CREATE INDEX runs_by_trigger          ON runs (trigger, id);
CREATE INDEX runs_by_pipeline_trigger ON runs (pipeline, trigger, id);

-- Pruning takes the oldest finished runs, by creation time then id. Only
-- finished runs are in this index, so a prune that finds nothing to do reads
-- nothing, however many recent or unfinished runs there are. (SQLite's index
-- is on created_at alone; its rowid is the implicit last column.)
CREATE INDEX runs_finished_by_created ON runs (created_at, id)
    WHERE state IN ('succeeded', 'failed', 'cancelled');

-- 0007: datasets: the record of their updates, each pipeline's cursor of the
-- updates its dataset-started runs consumed, and the index that finds a
-- pipeline's runs of one interval. Mirrors
-- internal/store/sqlite/migrations/0007_datasets.sql; conventions as in 0001.

-- One row per update of a dataset: a producing task's success (run_id,
-- pipeline, task_id and the run's interval set) or an external update (actor
-- set). Never changed, never deleted with runs: run_id is not a foreign key,
-- so pruning a run keeps the record of what it produced. id orders all
-- updates and is never reused: it is what consumers keep as their cursor.
-- (Writers of one dataset hold a transaction-level advisory lock on it from
-- before their id is drawn until they commit, so a dataset's ids become
-- visible in order: see the driver's lockDatasetsSQL.)
CREATE TABLE dataset_updates (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset        text        COLLATE "C" NOT NULL CHECK (dataset <> ''),
    at             timestamptz NOT NULL,
    run_id         bigint,     -- NULL for an external update
    pipeline       text        COLLATE "C" NOT NULL DEFAULT '',
    task_id        text        NOT NULL DEFAULT '',
    interval_start timestamptz,
    interval_end   timestamptz,
    actor          text        NOT NULL DEFAULT '',
    metadata       jsonb       CHECK (metadata IS NULL OR jsonb_typeof(metadata) = 'object')
);

-- A dataset's updates by id (pages, the newest one), and the distinct
-- datasets (a skip through the index).
CREATE INDEX dataset_updates_by_dataset ON dataset_updates (dataset, id);
-- A dataset's updates since a time (at is the writer's and need not grow
-- with id, so "since" is not a range of ids).
CREATE INDEX dataset_updates_by_at ON dataset_updates (dataset, at, id);

-- Per dataset, the id of the newest update already consumed by a
-- dataset-started run of the pipeline; NULL when nothing was consumed.
-- jsonb compares by value, so the compare-and-set does not depend on key
-- order. Changed only by compare-and-set.
ALTER TABLE pipelines ADD COLUMN dataset_cursor jsonb;

-- A pipeline's runs of one interval (a wait on another pipeline's run of the
-- same interval). Partial: runs without an interval are never looked up so.
CREATE INDEX runs_by_pipeline_interval ON runs (pipeline, interval_start, id) WHERE interval_start IS NOT NULL;

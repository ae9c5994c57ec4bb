-- 0007: datasets: the record of their updates, each pipeline's cursor of the
-- updates its dataset-started runs consumed, and the index that finds a
-- pipeline's runs of one interval. Mirrors
-- internal/store/postgres/migrations/0007_datasets.sql; conventions as in 0001.

-- One row per update of a dataset: a producing task's success (run_id,
-- pipeline, task_id and the run's interval set) or an external update (actor
-- set). Never changed, never deleted with runs: run_id is not a foreign key,
-- so pruning a run keeps the record of what it produced. id orders all
-- updates and is never reused: it is what consumers keep as their cursor.
CREATE TABLE dataset_updates (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset        TEXT    NOT NULL CHECK (dataset <> ''),
    at             INTEGER NOT NULL,
    run_id         INTEGER,          -- NULL for an external update
    pipeline       TEXT    NOT NULL DEFAULT '',
    task_id        TEXT    NOT NULL DEFAULT '',
    interval_start INTEGER,
    interval_end   INTEGER,
    actor          TEXT    NOT NULL DEFAULT '',
    metadata       TEXT    CHECK (metadata IS NULL OR (json_valid(metadata) AND json_type(metadata) = 'object'))
) STRICT;

-- A dataset's updates by ID (pages, the newest one: max(id) is one lookup),
-- and the distinct datasets (a skip through the index).
CREATE INDEX dataset_updates_by_dataset ON dataset_updates (dataset, id);
-- A dataset's updates since a time (At is the writer's and need not grow
-- with id, so "since" is not a range of ids).
CREATE INDEX dataset_updates_by_at ON dataset_updates (dataset, at);

-- Per dataset, the id of the newest update already consumed by a
-- dataset-started run of the pipeline: a JSON object with sorted keys and no
-- zero entries (store.EncodeCursor), so equal cursors are equal text; NULL
-- when nothing was consumed. Changed only by compare-and-set.
ALTER TABLE pipelines ADD COLUMN dataset_cursor TEXT CHECK (dataset_cursor IS NULL OR json_valid(dataset_cursor));

-- A pipeline's runs of one interval (a wait on another pipeline's run of the
-- same interval). Partial: runs without an interval are never looked up so.
CREATE INDEX runs_by_pipeline_interval ON runs (pipeline, interval_start, id) WHERE interval_start IS NOT NULL;

-- 0016: a pipeline's runs by creation time, for the web UI's calendar of
-- a pipeline (store.RunDays counts them per day) and the runs of one day
-- (RunFilter.CreatedFrom/CreatedBefore). Mirrors
-- internal/store/sqlite/migrations/0016_runs_by_created.sql. Without it, a
-- calendar would read the pipeline's whole history (runs_by_pipeline is
-- ordered by id, not time).
CREATE INDEX runs_by_pipeline_created ON runs (pipeline, created_at);

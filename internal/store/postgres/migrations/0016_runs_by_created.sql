-- 0016: a pipeline's runs by creation time, for the web UI's calendar of
-- a pipeline (store.RunDays counts them per day) and the runs of one day
-- (RunFilter.CreatedFrom/CreatedBefore). Mirrors
-- internal/store/sqlite/migrations/0016_runs_by_created.sql. Without it, a
-- calendar would read the pipeline's whole history (runs_by_pipeline is
-- ordered by id, not time).
--
-- It carries what RunDays counts by (INCLUDE), so a calendar is an
-- index-only scan; that also makes it wider than runs_by_pipeline_state,
-- which the planner's generic plan of CountRuns would otherwise trade for
-- it (TestQueriesReadLittle). The included columns change only when the
-- state does, so updates that move no indexed column (a run's remaining
-- count) stay heap-only.
CREATE INDEX runs_by_pipeline_created ON runs (pipeline, created_at)
    INCLUDE (state, finished_at, deadline, deadline_state);

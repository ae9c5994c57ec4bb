-- 0008: deadlines: each run's deadline (fixed at creation) and the deadline
-- watcher's latest judgement of it, and the durations of recent successful
-- attempts that predictions are made from. Mirrors
-- internal/store/sqlite/migrations/0008_deadlines.sql; conventions as in
-- 0001.

-- deadline: NULL when the run has none. deadline_state: '' until the
-- watcher first judges the run. critical_path: a JSON array of task ids.
ALTER TABLE runs ADD COLUMN deadline timestamptz;
ALTER TABLE runs ADD COLUMN deadline_state text NOT NULL DEFAULT ''
    CHECK (deadline_state IN ('', 'on_track', 'at_risk', 'missed', 'met'));
ALTER TABLE runs ADD COLUMN predicted_finish timestamptz;
ALTER TABLE runs ADD COLUMN critical_path jsonb CHECK (critical_path IS NULL OR jsonb_typeof(critical_path) = 'array');

-- The runs the watcher still judges: a deadline not yet met or missed. The
-- index holds only those, so its cost follows the runs in flight, not the
-- history.
CREATE INDEX runs_deadline_open ON runs (id)
    WHERE deadline IS NOT NULL AND deadline_state IN ('', 'on_track', 'at_risk');

-- The durations (microseconds) of the most recent successful attempts of
-- each (pipeline, task id): one row per success, written with it by Apply,
-- trimmed to the newest few per task in the same transaction, so the table
-- stays small and a prediction reads one short range of it. Not tied to
-- runs: pruning history keeps what tasks usually take. The key orders a
-- task's rows by finish time and covers what a prediction reads (an
-- index-only scan: a task's rows are spread over the heap as they came);
-- the same attempt's success written twice is the same key, counted once.
-- (The driver's insertDurationsSQL adds the rows; the trigger below trims.)
CREATE TABLE task_durations (
    pipeline    text        COLLATE "C" NOT NULL,
    task_id     text        COLLATE "C" NOT NULL,
    finished_at timestamptz NOT NULL,
    run_id      bigint      NOT NULL,
    idx         integer     NOT NULL,
    attempt     integer     NOT NULL,
    duration    bigint      NOT NULL CHECK (duration >= 0),
    PRIMARY KEY (pipeline, task_id, finished_at, run_id, idx, attempt) INCLUDE (duration)
);

-- Each new duration trims its task's to the newest 20 (store.DurationSamples;
-- a test holds the two equal), and any that finished at the same instant as
-- the 20th: one search of the task's key backwards and, normally, the
-- delete of one row. A row trigger, so the delete is planned for one task
-- (an index search whatever the statistics), not as a join over the table.
CREATE FUNCTION task_durations_trim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM task_durations
    WHERE pipeline = NEW.pipeline AND task_id = NEW.task_id AND finished_at < (
        SELECT finished_at FROM task_durations WHERE pipeline = NEW.pipeline AND task_id = NEW.task_id
        ORDER BY finished_at DESC OFFSET 19 LIMIT 1);
    RETURN NULL;
END
$$;

CREATE TRIGGER task_durations_trim AFTER INSERT ON task_durations
    FOR EACH ROW EXECUTE FUNCTION task_durations_trim();

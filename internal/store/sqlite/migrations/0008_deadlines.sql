-- 0008: deadlines: each run's deadline (fixed at creation) and the deadline
-- watcher's latest judgement of it, and the durations of recent successful
-- attempts that predictions are made from. Mirrors
-- internal/store/postgres/migrations/0008_deadlines.sql; conventions as in
-- 0001.

-- deadline: NULL when the run has none. deadline_state: '' until the
-- watcher first judges the run. critical_path: a JSON array of task ids.
ALTER TABLE runs ADD COLUMN deadline INTEGER;
ALTER TABLE runs ADD COLUMN deadline_state TEXT NOT NULL DEFAULT ''
    CHECK (deadline_state IN ('', 'on_track', 'at_risk', 'missed', 'met'));
ALTER TABLE runs ADD COLUMN predicted_finish INTEGER;
ALTER TABLE runs ADD COLUMN critical_path TEXT CHECK (critical_path IS NULL OR json_valid(critical_path));

-- The runs the watcher still judges: a deadline not yet met or missed. The
-- index holds only those, so its cost follows the runs in flight, not the
-- history. (Queries must repeat the WHERE exactly for SQLite to use it.)
CREATE INDEX runs_deadline_open ON runs (id)
    WHERE deadline IS NOT NULL AND deadline_state IN ('', 'on_track', 'at_risk');

-- The durations (microseconds) of the most recent successful attempts of
-- each (pipeline, task id): one row per success, written with it by Apply,
-- trimmed to the newest few per task in the same transaction, so the table
-- stays small and a prediction reads one short range of it. Not tied to
-- runs: pruning history keeps what tasks usually take. Clustered by task
-- and finish time (WITHOUT ROWID): a success writes one b-tree, and the
-- same attempt's success written twice is the same key, counted once.
-- (The driver's insertDurationSQL adds the rows; the trigger below trims.)
CREATE TABLE task_durations (
    pipeline    TEXT    NOT NULL,
    task_id     TEXT    NOT NULL,
    finished_at INTEGER NOT NULL,
    run_id      INTEGER NOT NULL,
    idx         INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    duration    INTEGER NOT NULL CHECK (duration >= 0),
    PRIMARY KEY (pipeline, task_id, finished_at, run_id, idx, attempt)
) STRICT, WITHOUT ROWID;

-- Each new duration trims its task's to the newest 20 (store.DurationSamples;
-- a test holds the two equal), and any that finished at the same instant as
-- the 20th: one search of the task's rows backwards and, normally, the
-- delete of one row. A trigger, because the statement runs inside SQLite
-- with the insert, at a fraction of the cost of a second statement from Go
-- on every success.
CREATE TRIGGER task_durations_trim AFTER INSERT ON task_durations
BEGIN
    DELETE FROM task_durations
    WHERE pipeline = NEW.pipeline AND task_id = NEW.task_id AND finished_at < (
        SELECT finished_at FROM task_durations WHERE pipeline = NEW.pipeline AND task_id = NEW.task_id
        ORDER BY finished_at DESC LIMIT 1 OFFSET 19);
END;

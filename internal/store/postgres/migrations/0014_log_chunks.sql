-- 0014: attempt logs as chunks in the database, so that every server of a
-- cluster reads every log (store.Logs, logs.Cluster). Mirrors
-- internal/store/sqlite/migrations/0014_log_chunks.sql; conventions as in
-- 0001.
--
-- One row per chunk: the bytes of one attempt's log (a map item's has the
-- task id "task.ITEM") from off on, length bytes once decoded, compressed
-- as codec says (0 none, 1 zstd). The chunk marked final ends the log.
-- No foreign key: chunks are written by the thousand a second on busy
-- servers, and PruneRuns deletes them with their run by the primary key's
-- prefix, like map_items.
CREATE TABLE log_chunks (
    run_id  bigint   NOT NULL,
    task_id text     COLLATE "C" NOT NULL CHECK (task_id <> ''),
    attempt integer  NOT NULL CHECK (attempt >= 0),
    off     bigint   NOT NULL CHECK (off >= 0),
    length  integer  NOT NULL CHECK (length >= 0),
    codec   smallint NOT NULL CHECK (codec IN (0, 1)),
    final   boolean  NOT NULL,
    data    bytea    NOT NULL,
    PRIMARY KEY (run_id, task_id, attempt, off)
);

-- The data is compressed already: TOAST would only try again, in vain.
ALTER TABLE log_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

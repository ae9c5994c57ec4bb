-- 0014: attempt logs as chunks in the database (store.Logs, logs.Cluster).
-- Mirrors internal/store/postgres/migrations/0014_log_chunks.sql, where
-- several servers share the store; a server on SQLite keeps its logs as
-- files and this table stays empty, but the drivers keep one schema and
-- one conformance suite.
CREATE TABLE log_chunks (
    run_id  INTEGER NOT NULL,
    task_id TEXT    NOT NULL CHECK (task_id <> ''),
    attempt INTEGER NOT NULL CHECK (attempt >= 0),
    off     INTEGER NOT NULL CHECK (off >= 0),
    length  INTEGER NOT NULL CHECK (length >= 0),
    codec   INTEGER NOT NULL CHECK (codec IN (0, 1)),
    final   INTEGER NOT NULL CHECK (final IN (0, 1)),
    data    BLOB    NOT NULL,
    PRIMARY KEY (run_id, task_id, attempt, off)
) STRICT, WITHOUT ROWID;

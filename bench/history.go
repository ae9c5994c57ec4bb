package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store/sqlite" // also registers the "sqlite" database/sql driver
)

// historyPipelines is how many pipelines (pipeline-00 … pipeline-19) share
// the generated history.
const historyPipelines = 20

// buildHistory writes a history of finished runs straight into the store at
// path with bulk SQL (one INSERT … SELECT per table, one transaction): runs
// of tasks tasks each, every task with one attempt and two events (started,
// succeeded), in 20 pipelines round-robin, one run every step and the last
// one a step before now; about one run in twenty failed and one in ten was
// triggered by hand. It is how internal/store/sqlite's history benchmark
// builds a million attempts in seconds rather than the minutes that real
// runs would take. The schema is created first by tasuki's own driver, and
// the store is opened and closed by it once more at the end, which refreshes
// the query planner's statistics as every tasuki process does on close.
func buildHistory(ctx context.Context, path string, runs, tasks int, step time.Duration, now time.Time) error {
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return err
	}
	if err := st.Close(); err != nil {
		return err
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+url.Values{"_pragma": {
		"busy_timeout(10000)", "foreign_keys(1)", "journal_mode(wal)", "synchronous(normal)", "temp_store(memory)",
	}}.Encode())
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	stepUS := step.Microseconds()
	c0 := now.Add(-time.Duration(runs) * step).UnixMicro()
	var first int64
	if err := db.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) + 1 FROM runs`).Scan(&first); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	stmts := []struct {
		what string
		sql  string
		args []any
	}{
		{"runs", `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?)
			INSERT INTO runs (pipeline, trigger, interval_start, interval_end, created_at, task_count, state,
				remaining, unsuccessful, started_at, finished_at)
			SELECT printf('pipeline-%02d', (? + i) % ?),
				CASE WHEN i % 10 = 0 THEN 'manual' ELSE 'schedule' END,
				CASE WHEN i % 10 = 0 THEN NULL ELSE ? + (i - 1) * ? END,
				CASE WHEN i % 10 = 0 THEN NULL ELSE ? + i * ? END,
				? + i * ?, ?, CASE WHEN i % 20 = 7 THEN 'failed' ELSE 'succeeded' END,
				0, CASE WHEN i % 20 = 7 THEN 1 ELSE 0 END, ? + i * ?, ? + i * ? + 1000000
			FROM n`,
			[]any{runs, first, historyPipelines, c0, stepUS, c0, stepUS, c0, stepUS, tasks, c0, stepUS, c0, stepUS}},
		{"tasks", `WITH RECURSIVE k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j + 1 < ?)
			INSERT INTO tasks (run_id, idx, task_id, state, attempt, spent, started_at, finished_at, exit_code)
			SELECT r.id, k.j, 'task-' || k.j, 'succeeded', 1, 1, r.started_at, r.finished_at, 0
			FROM runs r, k WHERE r.id >= ? ORDER BY r.id, k.j`,
			[]any{tasks, first}},
		{"attempts", `INSERT INTO attempts (run_id, idx, attempt, worker, started_at, finished_at, outcome, exit_code, log)
			SELECT run_id, idx, 1, 'local:bench', started_at, finished_at, 'succeeded', 0, run_id || '/' || task_id || '/1'
			FROM tasks WHERE run_id >= ? ORDER BY run_id, idx`,
			[]any{first}},
		{"events", `INSERT INTO events (run_id, task_idx, time, kind, attempt, exit_code)
			SELECT run_id, idx, CASE e.k WHEN 0 THEN started_at ELSE finished_at END,
				CASE e.k WHEN 0 THEN 'task_started' ELSE 'task_succeeded' END, 1, CASE e.k WHEN 0 THEN NULL ELSE 0 END
			FROM tasks, (SELECT 0 AS k UNION ALL SELECT 1) e WHERE run_id >= ? ORDER BY run_id, idx, e.k`,
			[]any{first}},
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s.sql, s.args...); err != nil {
			return fmt.Errorf("history: insert %s: %w", s.what, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	if st, err = sqlite.Open(ctx, path); err != nil {
		return err
	}
	return st.Close()
}

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// insertDurationSQL records the duration of one successful attempt, read
// from its row (just written by Apply), its task's and its run's: three
// primary-key lookups, and one insert into the clustered durations, which
// the task_durations_trim trigger (migration 0008) follows by trimming the
// task's durations to the newest store.DurationSamples. An attempt recorded
// before (its success written twice) is the same key and adds nothing.
const insertDurationSQL = `INSERT INTO task_durations (pipeline, task_id, finished_at, run_id, idx, attempt, duration)
	SELECT r.pipeline, t.task_id, a.finished_at, a.run_id, a.idx, a.attempt, max(a.finished_at - a.started_at, 0)
	FROM attempts a
	JOIN tasks t ON t.run_id = a.run_id AND t.idx = a.idx
	JOIN runs r ON r.id = a.run_id
	WHERE a.run_id = ? AND a.idx = ? AND a.attempt = ? AND a.outcome = 'succeeded'
		AND a.started_at IS NOT NULL AND a.finished_at IS NOT NULL
	ON CONFLICT DO NOTHING`

// trimDurationsSQL is what the task_durations_trim trigger runs for a new
// row (pipeline ?1, task ?2), with the number kept as ?3; the plan test
// checks it and that the trigger keeps store.DurationSamples.
const trimDurationsSQL = `DELETE FROM task_durations
	WHERE pipeline = ?1 AND task_id = ?2 AND finished_at < (
		SELECT finished_at FROM task_durations WHERE pipeline = ?1 AND task_id = ?2
		ORDER BY finished_at DESC LIMIT 1 OFFSET ?3 - 1)`

// taskDurationsSQL reads a pipeline's durations in key order (no sort): by
// task, oldest first.
const taskDurationsSQL = `SELECT task_id, duration FROM task_durations WHERE pipeline = ? ORDER BY task_id, finished_at`

// deadlineRunsSQL reads the runs whose deadline is neither met nor missed
// from the partial index of exactly those runs; its WHERE repeats the
// index's, which SQLite needs to prove the index covers the query.
const deadlineRunsSQL = `SELECT ` + runCols + ` FROM runs INDEXED BY runs_deadline_open
	WHERE deadline IS NOT NULL AND deadline_state IN ('', 'on_track', 'at_risk') AND id > ?
	ORDER BY id LIMIT ?`

// durationStmts are the writer's statements that keep task durations.
type durationStmts struct {
	insert *sql.Stmt
}

// in returns the statements bound to transaction tx.
func (s durationStmts) in(ctx context.Context, tx *sql.Tx) durationStmts {
	return durationStmts{insert: tx.StmtContext(ctx, s.insert)}
}

// record adds the duration of attempt (run, idx, attempt), which Apply has
// just written as succeeded (nothing when it has no start time to measure
// from).
func (s durationStmts) record(ctx context.Context, run int64, idx, attempt int) error {
	if _, err := s.insert.ExecContext(ctx, run, idx, attempt); err != nil {
		return fmt.Errorf("record duration: %w", err)
	}
	return nil
}

// DeadlineRuns reads a page of the partial index of runs whose deadline is
// still judged.
func (db *DB) DeadlineRuns(ctx context.Context, afterID int64, limit int) ([]store.Run, error) {
	if limit <= 0 {
		limit = store.DefaultRunsLimit
	}
	limit = min(limit, store.MaxRunsLimit)
	rows, err := db.r.QueryContext(ctx, deadlineRunsSQL, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("runs with a deadline: %w", err)
	}
	return collect(rows, "runs with a deadline", scanRun)
}

// SetRunDeadline writes the judgement and its records in one IMMEDIATE
// transaction on the writer, after the fence when there is one.
func (db *DB) SetRunDeadline(ctx context.Context, fence *store.Fence, u store.DeadlineUpdate) error {
	path, err := store.CheckDeadlineUpdate(&u)
	if err != nil {
		return err
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("deadline of run %d: %w", u.RunID, err)
	}
	defer tx.Rollback()
	if fence != nil {
		if err := checkFence(ctx, tx, *fence); err != nil {
			return fmt.Errorf("deadline of run %d: %w", u.RunID, err)
		}
	}
	res, err := tx.ExecContext(ctx, `UPDATE runs SET deadline_state = ?, predicted_finish = ?, critical_path = ?
		WHERE id = ? AND deadline_state = ?`,
		u.State, timeArg(u.PredictedFinish), jsonArg(path), u.RunID, u.Expect)
	if err := affectedOne(res, err); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("deadline of run %d: %w", u.RunID, err)
		}
		var state string
		switch err := tx.QueryRowContext(ctx, `SELECT deadline_state FROM runs WHERE id = ?`, u.RunID).Scan(&state); {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("deadline of run %d: %w", u.RunID, store.ErrNotFound)
		case err != nil:
			return fmt.Errorf("deadline of run %d: %w", u.RunID, err)
		}
		return fmt.Errorf("deadline of run %d is %q, not %q: %w", u.RunID, state, u.Expect, store.ErrConflict)
	}
	ins := tx.StmtContext(ctx, db.st.insertEvent)
	for _, r := range u.Records {
		if _, err := ins.ExecContext(ctx, u.RunID, r.Task, timeArg(r.Time), string(r.Kind), r.Attempt,
			intPtrArg(r.ExitCode), store.Text(r.Message), store.Text(r.Actor), jsonArg(r.Data)); err != nil {
			return fmt.Errorf("deadline of run %d: record %s: %w", u.RunID, r.Kind, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("deadline of run %d: commit: %w", u.RunID, err)
	}
	return nil
}

// TaskDurations reads one range of the durations index.
func (db *DB) TaskDurations(ctx context.Context, pipeline string) (map[string][]time.Duration, error) {
	rows, err := db.r.QueryContext(ctx, taskDurationsSQL, pipeline)
	if err != nil {
		return nil, fmt.Errorf("durations of pipeline %q: %w", pipeline, err)
	}
	defer rows.Close()
	var ids []string
	var ds []time.Duration
	for rows.Next() {
		var id string
		var us int64
		if err := rows.Scan(&id, &us); err != nil {
			return nil, fmt.Errorf("durations of pipeline %q: %w", pipeline, err)
		}
		ids = append(ids, id)
		ds = append(ds, time.Duration(us)*time.Microsecond)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("durations of pipeline %q: %w", pipeline, err)
	}
	return store.GroupDurations(ids, ds)
}

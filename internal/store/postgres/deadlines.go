package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// insertDurationsSQL records the durations of a batch's successful
// attempts, read from their rows (written by the statement before it in the
// same batch), their tasks' and their runs'. Each is looked up by its whole
// key from the batch's values, in a subquery kept apart (OFFSET 0) so that
// the planner cannot join them by run alone: without statistics it would
// read every attempt of a run for each success. The task_durations_trim
// trigger (migration 0008) follows each new row by trimming its task's
// durations to the newest store.DurationSamples. An attempt recorded before
// (its success written twice) is the same key and adds nothing.
const insertDurationsSQL = `INSERT INTO task_durations (pipeline, task_id, finished_at, run_id, idx, attempt, duration)
	SELECT x.pipeline, x.task_id, x.finished_at, u.run_id, u.idx, u.attempt,
		greatest(floor(extract(epoch FROM x.finished_at - x.started_at) * 1000000)::bigint, 0)
	FROM unnest($1::bigint[], $2::int4[], $3::int4[]) AS u(run_id, idx, attempt)
	CROSS JOIN LATERAL (
		SELECT r.pipeline, t.task_id, a.started_at, a.finished_at
		FROM attempts a, tasks t, runs r
		WHERE a.run_id = u.run_id AND a.idx = u.idx AND a.attempt = u.attempt
			AND t.run_id = u.run_id AND t.idx = u.idx AND r.id = u.run_id
			AND a.outcome = 'succeeded' AND a.started_at IS NOT NULL AND a.finished_at IS NOT NULL
		OFFSET 0) AS x
	ORDER BY x.finished_at
	ON CONFLICT DO NOTHING`

// trimDurationsSQL is the trigger's delete for a new row of task $2 of
// pipeline $1, keeping $3; the plan test checks it, and that the trigger
// keeps store.DurationSamples.
const trimDurationsSQL = `DELETE FROM task_durations
	WHERE pipeline = $1 AND task_id = $2 AND finished_at < (
		SELECT finished_at FROM task_durations WHERE pipeline = $1 AND task_id = $2
		ORDER BY finished_at DESC OFFSET $3 - 1 LIMIT 1)`

// taskDurationsSQL reads a pipeline's durations from the key, in key
// order: by task, oldest first.
const taskDurationsSQL = `SELECT task_id, duration FROM task_durations WHERE pipeline = $1 ORDER BY task_id, finished_at`

// deadlineRunsSQL reads the runs whose deadline is neither met nor missed
// from the partial index of exactly those runs.
const deadlineRunsSQL = `SELECT ` + runCols + ` FROM runs
	WHERE deadline IS NOT NULL AND deadline_state IN ('', 'on_track', 'at_risk') AND id > $1
	ORDER BY id LIMIT $2`

// durationStatements are the statements that record the durations of the
// plan's successful attempts, to send after the attempts are written; none
// when the batch has no success.
func (p *applyPlan) durationStatements() []statement {
	var run []int64
	var idx, att []int32
	for i := range p.attempts {
		a := &p.attempts[i]
		if a.Outcome == store.OutcomeSucceeded {
			run, idx, att = append(run, a.RunID), append(idx, int32(a.Index)), append(att, int32(a.Attempt))
		}
	}
	if len(run) == 0 {
		return nil
	}
	return []statement{{sql: insertDurationsSQL, args: []any{run, idx, att}, kind: stmtDurations}}
}

// DeadlineRuns reads a page of the partial index of runs whose deadline is
// still judged.
func (db *DB) DeadlineRuns(ctx context.Context, afterID int64, limit int) ([]store.Run, error) {
	if limit <= 0 {
		limit = store.DefaultRunsLimit
	}
	limit = min(limit, store.MaxRunsLimit)
	rows, err := db.pool.Query(ctx, deadlineRunsSQL, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("runs with a deadline: %w", err)
	}
	runs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Run, error) { return scanRun(row) })
	if err != nil {
		return nil, fmt.Errorf("runs with a deadline: %w", err)
	}
	return runs, nil
}

// SetRunDeadline writes the judgement and its records in one transaction,
// after the fence when there is one.
func (db *DB) SetRunDeadline(ctx context.Context, fence *store.Fence, u store.DeadlineUpdate) error {
	path, err := store.CheckDeadlineUpdate(&u)
	if err != nil {
		return err
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("deadline of run %d: %w", u.RunID, err)
	}
	defer rollback(tx)
	if fence != nil {
		if err := checkFence(ctx, tx, *fence); err != nil {
			return fmt.Errorf("deadline of run %d: %w", u.RunID, err)
		}
	}
	var state string
	err = tx.QueryRow(ctx, `SELECT deadline_state FROM runs WHERE id = $1 FOR NO KEY UPDATE`, u.RunID).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("deadline of run %d: %w", u.RunID, store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("deadline of run %d: %w", u.RunID, err)
	}
	if state != u.Expect {
		return fmt.Errorf("deadline of run %d is %q, not %q: %w", u.RunID, state, u.Expect, store.ErrConflict)
	}
	b := &pgx.Batch{}
	b.Queue(`UPDATE runs SET deadline_state = $2, predicted_finish = $3, critical_path = $4::text::jsonb WHERE id = $1`,
		u.RunID, u.State, timeArg(u.PredictedFinish), jsonText(path))
	for _, r := range u.Records {
		b.Queue(insertEventSQL, u.RunID, int32(r.Task), tsArg(r.Time), string(r.Kind), int32(r.Attempt),
			int4Arg(r.ExitCode), store.Text(r.Message), store.Text(r.Actor), jsonText(r.Data))
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("deadline of run %d: %w", u.RunID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("deadline of run %d: commit: %w", u.RunID, err)
	}
	return nil
}

// TaskDurations reads one range of the durations index.
func (db *DB) TaskDurations(ctx context.Context, pipeline string) (map[string][]time.Duration, error) {
	rows, err := db.pool.Query(ctx, taskDurationsSQL, pipeline)
	if err != nil {
		return nil, fmt.Errorf("durations of pipeline %q: %w", pipeline, err)
	}
	var ids []string
	var ds []time.Duration
	var id string
	var us int64
	_, err = pgx.ForEachRow(rows, []any{&id, &us}, func() error {
		ids = append(ids, id)
		ds = append(ds, time.Duration(us)*time.Microsecond)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("durations of pipeline %q: %w", pipeline, err)
	}
	return store.GroupDurations(ids, ds)
}

// checkFence fails with ErrFenced unless the leadership row, read FOR
// SHARE in tx (so no takeover commits in between), has the fence's holder
// and term, as ApplyFenced checks it.
func checkFence(ctx context.Context, tx pgx.Tx, f store.Fence) error {
	if f.Holder == "" {
		return fmt.Errorf("fence has no holder: %w", store.ErrFenced)
	}
	l, err := scanLeader(tx.QueryRow(ctx, `SELECT `+leaderCols+` FROM leadership WHERE id = 1 FOR SHARE`))
	if err != nil {
		return fmt.Errorf("check fence: read leadership: %w", err)
	}
	if l.Holder != f.Holder || l.Term != f.Term {
		return fenced(f, l)
	}
	return nil
}

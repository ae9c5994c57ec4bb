package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

const runCols = `id, pipeline, version_id, trigger, params::text, interval_start, interval_end, created_at,
	task_count, backfill_id, state, remaining, unsuccessful, cancelling, started_at, finished_at,
	deadline, deadline_state, predicted_finish, critical_path::text`

func scanRun(row pgx.Row) (store.Run, error) {
	var r store.Run
	var version, backfill *int64
	var state string
	var path json.RawMessage
	err := row.Scan(&r.ID, &r.Pipeline, &version, &r.Trigger, jsonCol{&r.Params},
		timeCol{&r.IntervalStart}, timeCol{&r.IntervalEnd}, timeCol{&r.CreatedAt}, &r.TaskCount, &backfill,
		&state, &r.Remaining, &r.Unsuccessful, &r.Cancelling, timeCol{&r.StartedAt}, timeCol{&r.FinishedAt},
		timeCol{&r.Deadline}, &r.DeadlineState, timeCol{&r.PredictedFinish}, jsonCol{&path})
	if err == nil {
		r.CriticalPath, err = store.DecodeCriticalPath(path)
	}
	if version != nil {
		r.VersionID = *version
	}
	if backfill != nil {
		r.BackfillID = *backfill
	}
	r.State = engine.RunState(state)
	return r, err
}

// Run returns run id.
func (db *DB) Run(ctx context.Context, id int64) (store.Run, error) {
	r, err := scanRun(db.pool.QueryRow(ctx, `SELECT `+runCols+` FROM runs WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Run{}, fmt.Errorf("run %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Run{}, fmt.Errorf("run %d: %w", id, err)
	}
	return r, nil
}

// runMissing turns an empty result into ErrNotFound when the run does not
// exist; it costs a primary-key lookup and only runs for empty results.
func (db *DB) runMissing(ctx context.Context, id int64) error {
	var one int
	err := db.pool.QueryRow(ctx, `SELECT 1 FROM runs WHERE id = $1`, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

const taskSelect = `SELECT run_id, idx, task_id, state, attempt, spent, pending_needs, ready_at, started_at,
	finished_at, exit_code, message, result::text FROM tasks WHERE run_id = $1 ORDER BY idx`

// Tasks returns every task of run runID in index order. One batch reads the
// run's task count (the existence check, and the size of the result, so a
// 100,000-task run is not copied while growing) and the tasks, in one round
// trip.
func (db *DB) Tasks(ctx context.Context, runID int64) ([]store.TaskRow, error) {
	b := &pgx.Batch{}
	b.Queue(`SELECT task_count FROM runs WHERE id = $1`, runID)
	b.Queue(taskSelect, runID)
	br := db.pool.SendBatch(ctx, b)
	defer br.Close()
	var n int
	err := br.QueryRow().Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("tasks of run %d: %w", runID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("tasks of run %d: %w", runID, err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("tasks of run %d: %w", runID, err)
	}
	defer rows.Close()
	tasks := make([]store.TaskRow, 0, n)
	for rows.Next() {
		var t store.TaskRow
		var state string
		if err := rows.Scan(&t.RunID, &t.Index, &t.TaskID, &state, &t.Attempt, &t.Spent, &t.PendingNeeds,
			timeCol{&t.ReadyAt}, timeCol{&t.StartedAt}, timeCol{&t.FinishedAt}, intPtrCol{&t.ExitCode},
			&t.Message, jsonCol{&t.Result}); err != nil {
			return nil, fmt.Errorf("tasks of run %d: %w", runID, err)
		}
		t.State = engine.TaskState(state)
		tasks = append(tasks, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tasks of run %d: %w", runID, err)
	}
	return tasks, nil
}

// Attempts returns the attempts of run runID, of task index only when
// index >= 0, ordered by task index then attempt (the primary key).
func (db *DB) Attempts(ctx context.Context, runID int64, index int) ([]store.Attempt, error) {
	q := `SELECT run_id, idx, attempt, worker, started_at, finished_at, outcome, exit_code, message, log
		FROM attempts WHERE run_id = $1`
	args := []any{runID}
	if index >= 0 {
		q += ` AND idx = $2`
		args = append(args, index)
	}
	rows, err := db.pool.Query(ctx, q+` ORDER BY idx, attempt`, args...)
	if err != nil {
		return nil, fmt.Errorf("attempts of run %d: %w", runID, err)
	}
	defer rows.Close()
	var out []store.Attempt
	for rows.Next() {
		var a store.Attempt
		var outcome string
		if err := rows.Scan(&a.RunID, &a.Index, &a.Attempt, &a.Worker, timeCol{&a.StartedAt}, timeCol{&a.FinishedAt},
			&outcome, intPtrCol{&a.ExitCode}, &a.Message, &a.Log); err != nil {
			return nil, fmt.Errorf("attempts of run %d: %w", runID, err)
		}
		a.Outcome = store.Outcome(outcome)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("attempts of run %d: %w", runID, err)
	}
	if len(out) == 0 {
		if err := db.runMissing(ctx, runID); err != nil {
			return nil, fmt.Errorf("attempts of run %d: %w", runID, err)
		}
	}
	return out, nil
}

// Events returns up to limit events of run runID after seq afterSeq (read
// from the (run_id, seq) index), with the task id of task-level events
// filled in from the tasks table.
func (db *DB) Events(ctx context.Context, runID int64, afterSeq int64, limit int) ([]store.Event, error) {
	if limit <= 0 {
		limit = store.DefaultEventsLimit
	}
	limit = min(limit, store.MaxEventsLimit)
	rows, err := db.pool.Query(ctx, `SELECT e.seq, e.run_id, coalesce(t.task_id, ''), e.time, e.kind, e.task_idx,
		e.attempt, e.exit_code, e.message, e.actor, e.data::text
		FROM events e LEFT JOIN tasks t ON t.run_id = e.run_id AND t.idx = e.task_idx
		WHERE e.run_id = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3`, runID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("events of run %d: %w", runID, err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		var e store.Event
		var kind string
		if err := rows.Scan(&e.Seq, &e.RunID, &e.TaskID, timeCol{&e.Time}, &kind, &e.Task, &e.Attempt,
			intPtrCol{&e.ExitCode}, &e.Message, &e.Actor, jsonCol{&e.Data}); err != nil {
			return nil, fmt.Errorf("events of run %d: %w", runID, err)
		}
		e.Kind = engine.EventKind(kind)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("events of run %d: %w", runID, err)
	}
	if len(out) == 0 {
		if err := db.runMissing(ctx, runID); err != nil {
			return nil, fmt.Errorf("events of run %d: %w", runID, err)
		}
	}
	return out, nil
}

// ListRuns returns one page of runs, newest (or oldest) first.
//
// Unlike the driver's other statements, the page query is not prepared and
// cached: it runs as an unnamed statement (pgx.QueryExecModeExec), which
// PostgreSQL plans for the values given every time. A cached statement gets
// a generic plan after a few runs, planned for an average state, and for a
// rare one (the few queued runs among a million finished) that plan reads
// the primary key backwards through the whole history. Planning these small
// queries costs far less than one such read.
func (db *DB) ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error) {
	if !f.IntervalStart.IsZero() && f.Pipeline == "" {
		return nil, errors.New("list runs: a filter on the interval start needs a pipeline")
	}
	if f.CreatedRange() && f.Pipeline == "" {
		return nil, errors.New("list runs: a filter on the creation time needs a pipeline")
	}
	query, args := listRunsQuery(f)
	rows, err := db.pool.Query(ctx, query, append([]any{pgx.QueryExecModeExec}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	defer rows.Close()
	var runs []store.Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		runs = append(runs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return runs, nil
}

// params numbers query parameters as they are added.
type params struct{ args []any }

func (p *params) add(v any) string {
	p.args = append(p.args, v)
	return "$" + strconv.Itoa(len(p.args))
}

// listRunsQuery builds the page query. Every filter has an index that starts
// with its equality columns and ends with id, so the page is one index range
// read from the cursor, in order, stopped by the LIMIT:
//
//	interval:  runs_by_pipeline_interval (pipeline, interval_start, id)
//	created:   runs_by_pipeline_created (pipeline, created_at), then sorted
//	backfill:  runs_by_backfill_state (backfill_id, state, id) or runs_by_backfill (backfill_id, id)
//	pipeline:  runs_by_pipeline_state, runs_by_pipeline_trigger or runs_by_pipeline
//	trigger:   runs_by_trigger (trigger, id)
//	state:     runs_by_state (state, id)
//	none:      the primary key
//
// Several states cannot be one ordered range (PostgreSQL does not merge
// ranges of an IN list in order), and a plan that filters the primary key
// for, say, the few queued runs among millions of finished ones reads the
// whole history. So several states become one subquery per state, each a
// range limited to the page size, merged by UNION ALL: the work is bounded
// by states × limit. PostgreSQL's planner picks the index itself, for the
// values of each call (see ListRuns); TestQueriesReadLittle checks its
// choices on a history with statistics.
func listRunsQuery(f store.RunFilter) (string, []any) {
	limit := f.Limit
	if limit <= 0 {
		limit = store.DefaultRunsLimit
	}
	limit = min(limit, store.MaxRunsLimit)
	order := " ORDER BY id DESC LIMIT "
	if f.Ascending {
		order = " ORDER BY id ASC LIMIT "
	}
	var states []string
	for _, s := range f.States {
		if !slices.Contains(states, string(s)) {
			states = append(states, string(s))
		}
	}
	var p params
	lim := p.add(int64(limit))
	// The filters other than the state are shared by every subquery.
	var common []string
	if f.BackfillID != 0 {
		common = append(common, "backfill_id = "+p.add(f.BackfillID))
	}
	if f.Pipeline != "" {
		common = append(common, "pipeline = "+p.add(f.Pipeline))
	}
	if f.Trigger != "" {
		common = append(common, "trigger = "+p.add(f.Trigger))
	}
	if !f.IntervalStart.IsZero() {
		common = append(common, "interval_start = "+p.add(store.NormTime(f.IntervalStart)))
	}
	if !f.CreatedFrom.IsZero() {
		common = append(common, "created_at >= "+p.add(store.NormTime(f.CreatedFrom)))
	}
	if !f.CreatedBefore.IsZero() {
		common = append(common, "created_at < "+p.add(store.NormTime(f.CreatedBefore)))
	}
	if f.BeforeID > 0 {
		common = append(common, "id < "+p.add(f.BeforeID))
	}
	if f.AfterID > 0 {
		common = append(common, "id > "+p.add(f.AfterID))
	}
	one := func(state string) string {
		where := common
		if state != "" {
			where = append(slices.Clip(where), "state = "+p.add(state))
		}
		q := `SELECT ` + runCols + ` FROM runs`
		if len(where) > 0 {
			q += ` WHERE ` + strings.Join(where, " AND ")
		}
		return q + order + lim
	}
	if len(states) <= 1 {
		s := ""
		if len(states) == 1 {
			s = states[0]
		}
		return one(s), p.args
	}
	parts := make([]string, len(states))
	for i, s := range states {
		parts[i] = "(" + one(s) + ")"
	}
	return strings.Join(parts, " UNION ALL ") + order + lim, p.args
}

// CountRuns counts from the (pipeline, state, id) or (state, id) index; the
// count reads only the index entries it counts. Like ListRuns' page, it is
// planned for its values every time (pgx.QueryExecModeExec): a generic plan
// does not know that the states asked for (queued, running) are a few rows
// among a long history, and under a stale visibility map it chose to read
// the whole table.
func (db *DB) CountRuns(ctx context.Context, pipeline string, states []engine.RunState) (int, error) {
	q, args := countRunsQuery(pipeline, states)
	var n int
	if err := db.pool.QueryRow(ctx, q, append([]any{pgx.QueryExecModeExec}, args...)...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count runs of %q in %v: %w", pipeline, states, err)
	}
	return n, nil
}

func countRunsQuery(pipeline string, states []engine.RunState) (string, []any) {
	var p params
	var where []string
	if pipeline != "" {
		where = append(where, "pipeline = "+p.add(pipeline))
	}
	if len(states) > 0 {
		ss := make([]string, 0, len(states))
		for _, s := range states {
			if !slices.Contains(ss, string(s)) {
				ss = append(ss, string(s))
			}
		}
		where = append(where, "state = ANY("+p.add(ss)+")")
	}
	q := `SELECT count(*) FROM runs`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	return q, p.args
}

// pruneSelect picks and locks the oldest finished runs from the partial index
// of finished runs by creation time. SKIP LOCKED passes over runs an Apply is
// changing right now (one being retried, say): they are taken by a later
// prune if they are still finished, and the prune never waits for, or
// deadlocks with, the dispatcher. A row that changed state after the query
// began is checked again when locked, so a run reopened meanwhile is not
// taken.
const pruneSelect = `SELECT id FROM runs
	WHERE state IN ('succeeded', 'failed', 'cancelled') AND created_at < $1
	ORDER BY created_at, id LIMIT $2
	FOR UPDATE SKIP LOCKED`

// PruneRuns picks, locks and deletes runs in one transaction, so a run
// cannot be reopened (retried) between being picked and being deleted.
// Children are deleted explicitly, each by a range of its primary key or
// index, before the runs, so the cascades find nothing left to do; the
// deletes go in one batch.
func (db *DB) PruneRuns(ctx context.Context, createdBefore time.Time, limit int) ([]int64, error) {
	if limit <= 0 {
		limit = store.DefaultPruneLimit
	}
	limit = min(limit, store.MaxPruneLimit)
	if createdBefore.IsZero() {
		return nil, nil
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("prune runs: %w", err)
	}
	defer rollback(tx)
	rows, err := tx.Query(ctx, pruneSelect, createdBefore, limit)
	if err != nil {
		return nil, fmt.Errorf("prune runs: pick runs: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("prune runs: pick runs: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	// The rows of map tasks and artifact refs have no foreign key to
	// cascade from; task_maps goes before tasks, whose rows it references.
	tables := []string{"attempts", "events", "map_items", "map_chunks", "map_leases", "task_maps", "artifacts", "log_chunks", "tasks"}
	b := &pgx.Batch{}
	for _, table := range tables {
		b.Queue(`DELETE FROM `+table+` WHERE run_id = ANY($1)`, ids)
	}
	b.Queue(`DELETE FROM runs WHERE id = ANY($1)`, ids)
	br := tx.SendBatch(ctx, b)
	for _, table := range append(tables, "runs") {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, fmt.Errorf("prune %d runs: delete %s: %w", len(ids), table, err)
		}
	}
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("prune %d runs: %w", len(ids), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("prune %d runs: commit: %w", len(ids), err)
	}
	return ids, nil
}

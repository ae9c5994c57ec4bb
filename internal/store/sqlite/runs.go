package sqlite

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// ListRuns returns one page of runs, newest (or oldest) first. Each filter
// maps to an index read from the cursor. Several states become one indexed
// read per state, each limited to the page size, merged by a UNION ALL: the
// work is bounded by states × limit, never by the history.
func (db *DB) ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error) {
	if !f.IntervalStart.IsZero() && f.Pipeline == "" {
		return nil, errors.New("list runs: a filter on the interval start needs a pipeline")
	}
	if f.CreatedRange() && f.Pipeline == "" {
		return nil, errors.New("list runs: a filter on the creation time needs a pipeline")
	}
	query, args := listRunsQuery(f)
	rows, err := db.r.QueryContext(ctx, query, args...)
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

// listRunsQuery builds the page query. SQLite has no statistics about how
// selective each column is until ANALYZE has run, and may pick an index that
// reads every scheduled run of all pipelines to find those of one pipeline,
// so the query names the index to read (INDEXED BY) and the other terms are
// checked on the rows it yields. The index is, in this order of preference:
//
//	interval:  runs_by_pipeline_interval (pipeline, interval_start, id)
//	created:   runs_by_pipeline_created (pipeline, created_at)
//	backfill:  runs_by_backfill_state (backfill_id, state, id) or runs_by_backfill (backfill_id, id)
//	pipeline:  runs_by_pipeline_state, runs_by_pipeline_trigger or runs_by_pipeline
//	trigger:   runs_by_trigger (trigger, id)
//	state:     runs_by_state (state, id)
//	none:      the primary key
//
// A pipeline has few runs of one interval, and a backfill belongs to one
// pipeline and has few triggers, so the extra filters cost nothing there; Trigger with a state reads one index and
// filters on the other (the only combination whose cost can grow with the
// history).
func listRunsQuery(f store.RunFilter) (string, []any) {
	limit := f.Limit
	if limit <= 0 {
		limit = store.DefaultRunsLimit
	}
	limit = min(limit, store.MaxRunsLimit)
	before := f.BeforeID
	if before <= 0 {
		before = 1<<63 - 1
	}
	order := " ORDER BY id DESC LIMIT ?"
	if f.Ascending {
		order = " ORDER BY id ASC LIMIT ?"
	}
	var states []string
	for _, s := range f.States {
		if !slices.Contains(states, string(s)) {
			states = append(states, string(s))
		}
	}

	// one is the query for a single state ("" for any).
	one := func(state string) (string, []any) {
		var index string
		switch {
		case !f.IntervalStart.IsZero():
			index = "runs_by_pipeline_interval"
		case f.CreatedRange():
			// The runs of the range are sorted by id after: a day's, say.
			index = "runs_by_pipeline_created"
		case f.BackfillID != 0 && state != "":
			index = "runs_by_backfill_state"
		case f.BackfillID != 0:
			index = "runs_by_backfill"
		case f.Pipeline != "" && state != "":
			index = "runs_by_pipeline_state"
		case f.Pipeline != "" && f.Trigger != "":
			index = "runs_by_pipeline_trigger"
		case f.Pipeline != "":
			index = "runs_by_pipeline"
		case f.Trigger != "":
			index = "runs_by_trigger"
		case state != "":
			index = "runs_by_state"
		}
		var where []string
		var args []any
		term := func(cond string, v any) {
			where = append(where, cond)
			args = append(args, v)
		}
		if f.BackfillID != 0 {
			term("backfill_id = ?", f.BackfillID)
		}
		if f.Pipeline != "" {
			term("pipeline = ?", f.Pipeline)
		}
		if state != "" {
			term("state = ?", state)
		}
		if f.Trigger != "" {
			term("trigger = ?", f.Trigger)
		}
		if !f.IntervalStart.IsZero() {
			term("interval_start = ?", f.IntervalStart.UnixMicro())
		}
		if !f.CreatedFrom.IsZero() {
			term("created_at >= ?", f.CreatedFrom.UnixMicro())
		}
		if !f.CreatedBefore.IsZero() {
			term("created_at < ?", f.CreatedBefore.UnixMicro())
		}
		term("id < ?", before)
		if f.AfterID > 0 {
			term("id > ?", f.AfterID)
		}
		args = append(args, limit)
		from := " FROM runs"
		if index != "" {
			from += " INDEXED BY " + index
		}
		return `SELECT ` + runCols + from + ` WHERE ` + strings.Join(where, " AND ") + order, args
	}
	if len(states) <= 1 {
		s := ""
		if len(states) == 1 {
			s = states[0]
		}
		return one(s)
	}
	var parts []string
	var args []any
	for _, s := range states {
		q, a := one(s)
		parts = append(parts, `SELECT * FROM (`+q+`)`)
		args = append(args, a...)
	}
	args = append(args, limit)
	return strings.Join(parts, " UNION ALL ") + order, args
}

// CountRuns counts from the (pipeline, state, id) or (state, id) index; the
// count reads only the index entries it counts.
func (db *DB) CountRuns(ctx context.Context, pipeline string, states []engine.RunState) (int, error) {
	q, args := countRunsQuery(pipeline, states)
	var n int
	if err := db.r.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count runs of %q in %v: %w", pipeline, states, err)
	}
	return n, nil
}

func countRunsQuery(pipeline string, states []engine.RunState) (string, []any) {
	var where []string
	var args []any
	if pipeline != "" {
		where = append(where, "pipeline = ?")
		args = append(args, pipeline)
	}
	if len(states) > 0 {
		where = append(where, "state IN (?"+strings.Repeat(",?", len(states)-1)+")")
		for _, s := range states {
			args = append(args, string(s))
		}
	}
	q := `SELECT count(*) FROM runs`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	return q, args
}

// pruneSelect picks the oldest finished runs from the partial index of
// finished runs by creation time, named because SQLite's planner, without
// statistics, prefers runs_by_state and sorts every finished run. The state
// list must be written exactly as in the index's WHERE, or SQLite cannot
// prove the index covers the query and refuses it.
const pruneSelect = `SELECT id FROM runs INDEXED BY runs_finished_by_created
	WHERE state IN ('succeeded', 'failed', 'cancelled') AND created_at < ?
	ORDER BY created_at, id LIMIT ?`

// pruneTables are the tables PruneRuns deletes a run's rows from before the
// run's own, each by a range of its primary key or index: the rows of map
// tasks and artifact refs (which have no foreign key to cascade from)
// first (and the chunks of its logs), then tasks.
var pruneTables = []string{"attempts", "events", "map_items", "map_chunks", "map_leases", "task_maps", "artifacts", "log_chunks", "tasks"}

// PruneRuns picks and deletes runs in one write transaction, so a run cannot
// be reopened (retried) between being picked and being deleted. Children are
// deleted explicitly, each by a range of its primary key or index, before
// the runs, so the cascades find nothing left to do.
func (db *DB) PruneRuns(ctx context.Context, createdBefore time.Time, limit int) ([]int64, error) {
	if err := db.flushDurations(ctx); err != nil {
		return nil, fmt.Errorf("prune runs: %w", err)
	}
	if limit <= 0 {
		limit = store.DefaultPruneLimit
	}
	limit = min(limit, store.MaxPruneLimit)
	if createdBefore.IsZero() {
		return nil, nil
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("prune runs: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, pruneSelect, createdBefore.UnixMicro(), limit)
	if err != nil {
		return nil, fmt.Errorf("prune runs: pick runs: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("prune runs: pick runs: %w", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("prune runs: pick runs: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	in := "(?" + strings.Repeat(",?", len(ids)-1) + ")"
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	for _, table := range pruneTables {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE run_id IN `+in, args...); err != nil {
			return nil, fmt.Errorf("prune %d runs: delete %s: %w", len(ids), table, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM runs WHERE id IN `+in, args...); err != nil {
		return nil, fmt.Errorf("prune %d runs: delete runs: %w", len(ids), err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("prune %d runs: commit: %w", len(ids), err)
	}
	return ids, nil
}

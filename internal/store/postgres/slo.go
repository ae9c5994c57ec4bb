package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// Freshness objectives: the slo_objectives, slo_windows and slo_breaches
// tables of migration 0010.

const sloObjectiveCols = `pipeline, objective, definition, since`

func scanSLOObjective(row pgx.Row) (store.SLOObjective, error) {
	var o store.SLOObjective
	err := row.Scan(&o.Pipeline, &o.Objective, &o.Definition, timeCol{&o.Since})
	return o, err
}

// DeclareSLO inserts an objective, or resets one whose definition changed.
// Two servers declaring at once both end with the row one of them wrote.
func (db *DB) DeclareSLO(ctx context.Context, o store.SLOObjective, now time.Time) (store.SLOObjective, error) {
	if err := store.PrepareSLOObjective(&o); err != nil {
		return store.SLOObjective{}, fmt.Errorf("declare objective: %w", err)
	}
	if now.IsZero() {
		now = time.Now()
	}
	out, err := scanSLOObjective(db.pool.QueryRow(ctx, `INSERT INTO slo_objectives (pipeline, objective, definition, since)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (pipeline, objective) DO UPDATE SET definition = excluded.definition, since = excluded.since
			WHERE slo_objectives.definition <> excluded.definition
		RETURNING `+sloObjectiveCols, o.Pipeline, o.Objective, o.Definition, store.NormTime(now)))
	if errors.Is(err, pgx.ErrNoRows) {
		out, err = scanSLOObjective(db.pool.QueryRow(ctx, `SELECT `+sloObjectiveCols+` FROM slo_objectives
			WHERE pipeline = $1 AND objective = $2`, o.Pipeline, o.Objective))
	}
	if err != nil {
		return store.SLOObjective{}, fmt.Errorf("declare objective %s of %s: %w", o.Objective, o.Pipeline, err)
	}
	return out, nil
}

// SLOObjectives lists every objective.
func (db *DB) SLOObjectives(ctx context.Context) ([]store.SLOObjective, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+sloObjectiveCols+` FROM slo_objectives ORDER BY pipeline, objective`)
	if err != nil {
		return nil, fmt.Errorf("list objectives: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.SLOObjective, error) { return scanSLOObjective(row) })
	if err != nil {
		return nil, fmt.Errorf("list objectives: %w", err)
	}
	return out, nil
}

// RecordSLOWindow inserts a window unless it is there.
func (db *DB) RecordSLOWindow(ctx context.Context, w store.SLOWindow) (bool, error) {
	if err := store.PrepareSLOWindow(&w); err != nil {
		return false, fmt.Errorf("record objective window: %w", err)
	}
	tag, err := db.pool.Exec(ctx, `INSERT INTO slo_windows (pipeline, objective, start_at, end_at, met, judged_us, compliant_us)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (pipeline, objective, start_at) DO NOTHING`,
		w.Pipeline, w.Objective, w.Start, w.End, w.Met, w.Judged.Microseconds(), w.Compliant.Microseconds())
	if err != nil {
		return false, fmt.Errorf("record window of objective %s of %s: %w", w.Objective, w.Pipeline, err)
	}
	return tag.RowsAffected() == 1, nil
}

// SLOWindows reads one objective's windows from its (pipeline, objective,
// end) index.
func (db *DB) SLOWindows(ctx context.Context, pipeline, objective string, endAfter time.Time) ([]store.SLOWindow, error) {
	rows, err := db.pool.Query(ctx, `SELECT pipeline, objective, start_at, end_at, met, judged_us, compliant_us
		FROM slo_windows WHERE pipeline = $1 AND objective = $2 AND end_at > $3 ORDER BY end_at`, pipeline, objective, endAfter)
	if err != nil {
		return nil, fmt.Errorf("windows of objective %s of %s: %w", objective, pipeline, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.SLOWindow, error) {
		var w store.SLOWindow
		var judged, compliant int64
		err := row.Scan(&w.Pipeline, &w.Objective, timeCol{&w.Start}, timeCol{&w.End}, &w.Met, &judged, &compliant)
		w.Judged, w.Compliant = time.Duration(judged)*time.Microsecond, time.Duration(compliant)*time.Microsecond
		return w, err
	})
	if err != nil {
		return nil, fmt.Errorf("windows of objective %s of %s: %w", objective, pipeline, err)
	}
	return out, nil
}

const sloBreachCols = `id, pipeline, objective, window_start, window_end, start_at, end_at, run_id, run_state, task_id, task_state, message, cause`

func scanSLOBreach(row pgx.Row) (store.SLOBreach, error) {
	var b store.SLOBreach
	var run *int64
	err := row.Scan(&b.ID, &b.Pipeline, &b.Objective, timeCol{&b.WindowStart}, timeCol{&b.WindowEnd}, timeCol{&b.Start}, timeCol{&b.End},
		&run, &b.RunState, &b.TaskID, &b.TaskState, &b.Message, &b.Cause)
	if run != nil {
		b.RunID = *run
	}
	return b, err
}

// RecordSLOBreach inserts a breach unless one with its start is there.
func (db *DB) RecordSLOBreach(ctx context.Context, b store.SLOBreach) (store.SLOBreach, bool, error) {
	if err := store.PrepareSLOBreach(&b); err != nil {
		return store.SLOBreach{}, false, fmt.Errorf("record objective breach: %w", err)
	}
	var run any
	if b.RunID != 0 {
		run = b.RunID
	}
	out, err := scanSLOBreach(db.pool.QueryRow(ctx, `INSERT INTO slo_breaches (pipeline, objective, window_start, window_end,
			start_at, end_at, run_id, run_state, task_id, task_state, message, cause)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (pipeline, objective, start_at) DO NOTHING RETURNING `+sloBreachCols,
		b.Pipeline, b.Objective, b.WindowStart, b.WindowEnd, b.Start, timeArg(b.End),
		run, b.RunState, b.TaskID, b.TaskState, b.Message, b.Cause))
	if err == nil {
		return out, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return store.SLOBreach{}, false, fmt.Errorf("record breach of objective %s of %s: %w", b.Objective, b.Pipeline, err)
	}
	out, err = scanSLOBreach(db.pool.QueryRow(ctx, `SELECT `+sloBreachCols+` FROM slo_breaches
		WHERE pipeline = $1 AND objective = $2 AND start_at = $3`, b.Pipeline, b.Objective, b.Start))
	if err != nil {
		return store.SLOBreach{}, false, fmt.Errorf("record breach of objective %s of %s: %w", b.Objective, b.Pipeline, err)
	}
	return out, false, nil
}

// EndSLOBreach sets the end of an open breach.
func (db *DB) EndSLOBreach(ctx context.Context, id int64, end time.Time) error {
	end = store.NormTime(end)
	if end.IsZero() {
		return fmt.Errorf("end objective breach %d: no end given", id)
	}
	tag, err := db.pool.Exec(ctx, `UPDATE slo_breaches SET end_at = greatest($1, start_at) WHERE id = $2 AND end_at IS NULL`, end, id)
	if err != nil {
		return fmt.Errorf("end objective breach %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		var one int
		if err := db.pool.QueryRow(ctx, `SELECT 1 FROM slo_breaches WHERE id = $1`, id).Scan(&one); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("end objective breach %d: %w", id, store.ErrNotFound)
		}
	}
	return nil
}

// SLOBreaches reads breaches newest first.
func (db *DB) SLOBreaches(ctx context.Context, f store.SLOBreachFilter) ([]store.SLOBreach, error) {
	if f.Objective != "" && f.Pipeline == "" {
		return nil, errors.New("objective breaches: an objective needs its pipeline")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = store.DefaultSLOBreachesLimit
	}
	limit = min(limit, store.MaxSLOBreachesLimit)
	var where []string
	var args []any
	arg := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.Pipeline != "" {
		arg("pipeline = ?", f.Pipeline)
	}
	if f.Objective != "" {
		arg("objective = ?", f.Objective)
	}
	if !f.Since.IsZero() {
		arg("start_at >= ?", f.Since)
	}
	if f.Open {
		where = append(where, "end_at IS NULL")
	}
	q := `SELECT ` + sloBreachCols + ` FROM slo_breaches`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, limit)
	rows, err := db.pool.Query(ctx, q+` ORDER BY start_at DESC, id DESC LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("objective breaches: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.SLOBreach, error) { return scanSLOBreach(row) })
	if err != nil {
		return nil, fmt.Errorf("objective breaches: %w", err)
	}
	return out, nil
}

// PruneSLO deletes old windows and ended breaches in one transaction.
func (db *DB) PruneSLO(ctx context.Context, before time.Time) (int64, error) {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune objectives: %w", err)
	}
	defer tx.Rollback(ctx)
	var total int64
	for _, q := range []string{`DELETE FROM slo_windows WHERE end_at < $1`, `DELETE FROM slo_breaches WHERE end_at < $1`} {
		tag, err := tx.Exec(ctx, q, before)
		if err != nil {
			return 0, fmt.Errorf("prune objectives: %w", err)
		}
		total += tag.RowsAffected()
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("prune objectives: %w", err)
	}
	return total, nil
}

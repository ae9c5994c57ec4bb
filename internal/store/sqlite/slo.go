package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// Freshness objectives: the slo_objectives, slo_windows and slo_breaches
// tables of migration 0010.

const sloObjectiveCols = `pipeline, objective, definition, since`

func scanSLOObjective(row scanner) (store.SLOObjective, error) {
	var o store.SLOObjective
	err := row.Scan(&o.Pipeline, &o.Objective, &o.Definition, timeCol{&o.Since})
	return o, err
}

// DeclareSLO inserts an objective, or resets one whose definition changed.
func (db *DB) DeclareSLO(ctx context.Context, o store.SLOObjective, now time.Time) (store.SLOObjective, error) {
	if err := store.PrepareSLOObjective(&o); err != nil {
		return store.SLOObjective{}, fmt.Errorf("declare objective: %w", err)
	}
	if now.IsZero() {
		now = time.Now()
	}
	out, err := scanSLOObjective(db.w.QueryRowContext(ctx, `INSERT INTO slo_objectives (pipeline, objective, definition, since)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (pipeline, objective) DO UPDATE SET definition = excluded.definition, since = excluded.since
			WHERE slo_objectives.definition <> excluded.definition
		RETURNING `+sloObjectiveCols, o.Pipeline, o.Objective, o.Definition, timeArg(store.NormTime(now))))
	if errors.Is(err, sql.ErrNoRows) {
		// Stored already with this definition.
		out, err = scanSLOObjective(db.w.QueryRowContext(ctx, `SELECT `+sloObjectiveCols+` FROM slo_objectives
			WHERE pipeline = ? AND objective = ?`, o.Pipeline, o.Objective))
	}
	if err != nil {
		return store.SLOObjective{}, fmt.Errorf("declare objective %s of %s: %w", o.Objective, o.Pipeline, err)
	}
	return out, nil
}

// SLOObjectives lists every objective.
func (db *DB) SLOObjectives(ctx context.Context) ([]store.SLOObjective, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+sloObjectiveCols+` FROM slo_objectives ORDER BY pipeline, objective`)
	if err != nil {
		return nil, fmt.Errorf("list objectives: %w", err)
	}
	return collect(rows, "list objectives", scanSLOObjective)
}

// RecordSLOWindow inserts a window unless it is there.
func (db *DB) RecordSLOWindow(ctx context.Context, w store.SLOWindow) (bool, error) {
	if err := store.PrepareSLOWindow(&w); err != nil {
		return false, fmt.Errorf("record objective window: %w", err)
	}
	res, err := db.w.ExecContext(ctx, `INSERT INTO slo_windows (pipeline, objective, start_at, end_at, met, judged_us, compliant_us)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pipeline, objective, start_at) DO NOTHING`,
		w.Pipeline, w.Objective, timeArg(w.Start), timeArg(w.End), boolArg(w.Met), w.Judged.Microseconds(), w.Compliant.Microseconds())
	if err != nil {
		return false, fmt.Errorf("record window of objective %s of %s: %w", w.Objective, w.Pipeline, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// SLOWindows reads one objective's windows from its (pipeline, objective,
// end) index.
func (db *DB) SLOWindows(ctx context.Context, pipeline, objective string, endAfter time.Time) ([]store.SLOWindow, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT pipeline, objective, start_at, end_at, met, judged_us, compliant_us
		FROM slo_windows INDEXED BY slo_windows_by_end WHERE pipeline = ? AND objective = ? AND end_at > ? ORDER BY end_at`,
		pipeline, objective, endAfter.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("windows of objective %s of %s: %w", objective, pipeline, err)
	}
	return collect(rows, "windows of objective "+objective, func(row scanner) (store.SLOWindow, error) {
		var w store.SLOWindow
		var judged, compliant int64
		err := row.Scan(&w.Pipeline, &w.Objective, timeCol{&w.Start}, timeCol{&w.End}, boolCol{&w.Met}, &judged, &compliant)
		w.Judged, w.Compliant = time.Duration(judged)*time.Microsecond, time.Duration(compliant)*time.Microsecond
		return w, err
	})
}

const sloBreachCols = `id, pipeline, objective, window_start, window_end, start_at, end_at, run_id, run_state, task_id, task_state, message, cause`

func scanSLOBreach(row scanner) (store.SLOBreach, error) {
	var b store.SLOBreach
	var run sql.NullInt64
	err := row.Scan(&b.ID, &b.Pipeline, &b.Objective, timeCol{&b.WindowStart}, timeCol{&b.WindowEnd}, timeCol{&b.Start}, timeCol{&b.End},
		&run, &b.RunState, &b.TaskID, &b.TaskState, &b.Message, &b.Cause)
	b.RunID = run.Int64
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
	out, err := scanSLOBreach(db.w.QueryRowContext(ctx, `INSERT INTO slo_breaches (pipeline, objective, window_start, window_end,
			start_at, end_at, run_id, run_state, task_id, task_state, message, cause)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (pipeline, objective, start_at) DO NOTHING RETURNING `+sloBreachCols,
		b.Pipeline, b.Objective, timeArg(b.WindowStart), timeArg(b.WindowEnd), timeArg(b.Start), timeArg(b.End),
		run, b.RunState, b.TaskID, b.TaskState, b.Message, b.Cause))
	if err == nil {
		return out, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return store.SLOBreach{}, false, fmt.Errorf("record breach of objective %s of %s: %w", b.Objective, b.Pipeline, err)
	}
	out, err = scanSLOBreach(db.w.QueryRowContext(ctx, `SELECT `+sloBreachCols+` FROM slo_breaches
		WHERE pipeline = ? AND objective = ? AND start_at = ?`, b.Pipeline, b.Objective, timeArg(b.Start)))
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
	res, err := db.w.ExecContext(ctx, `UPDATE slo_breaches SET end_at = max(?, start_at) WHERE id = ? AND end_at IS NULL`, timeArg(end), id)
	if err != nil {
		return fmt.Errorf("end objective breach %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var one int
		if err := db.w.QueryRowContext(ctx, `SELECT 1 FROM slo_breaches WHERE id = ?`, id).Scan(&one); errors.Is(err, sql.ErrNoRows) {
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
	if f.Pipeline != "" {
		where, args = append(where, "pipeline = ?"), append(args, f.Pipeline)
	}
	if f.Objective != "" {
		where, args = append(where, "objective = ?"), append(args, f.Objective)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "start_at >= ?"), append(args, f.Since.UnixMicro())
	}
	if f.Open {
		where = append(where, "end_at IS NULL")
	}
	q := `SELECT ` + sloBreachCols + ` FROM slo_breaches`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	rows, err := db.r.QueryContext(ctx, q+` ORDER BY start_at DESC, id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("objective breaches: %w", err)
	}
	return collect(rows, "objective breaches", scanSLOBreach)
}

// PruneSLO deletes old windows and ended breaches in one transaction.
func (db *DB) PruneSLO(ctx context.Context, before time.Time) (int64, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("prune objectives: %w", err)
	}
	defer tx.Rollback()
	var total int64
	for _, q := range []string{`DELETE FROM slo_windows WHERE end_at < ?`, `DELETE FROM slo_breaches WHERE end_at < ?`} {
		res, err := tx.ExecContext(ctx, q, before.UnixMicro())
		if err != nil {
			return 0, fmt.Errorf("prune objectives: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("prune objectives: %w", err)
	}
	return total, nil
}

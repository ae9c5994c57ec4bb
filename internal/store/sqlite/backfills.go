package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

const backfillCols = `id, pipeline, range_from, range_to, parallel, state, actor, created_at, finished_at, runs`

func scanBackfill(row scanner) (store.Backfill, error) {
	var b store.Backfill
	err := row.Scan(&b.ID, &b.Pipeline, timeCol{&b.From}, timeCol{&b.To}, &b.Parallel, &b.State, &b.Actor,
		timeCol{&b.CreatedAt}, timeCol{&b.FinishedAt}, &b.Runs)
	return b, err
}

// CreateBackfill checks every run before taking the write lock, then writes
// the backfill row and the runs with one runWriter in one transaction, so a
// refused run (an unknown version, say) leaves nothing behind.
func (db *DB) CreateBackfill(ctx context.Context, b store.Backfill, runs []store.NewRun) (store.Backfill, error) {
	rs, err := store.PrepareBackfill(&b, runs)
	if err != nil {
		return store.Backfill{}, fmt.Errorf("create backfill of %q: %w", b.Pipeline, err)
	}

	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Backfill{}, fmt.Errorf("create backfill of %q: %w", b.Pipeline, err)
	}
	defer tx.Rollback()
	err = tx.QueryRowContext(ctx, `INSERT INTO backfills (pipeline, range_from, range_to, parallel, state, actor,
		created_at, finished_at, runs) VALUES (?,?,?,?,?,?,?,?,?) RETURNING id`,
		b.Pipeline, timeArg(b.From), timeArg(b.To), b.Parallel, b.State, b.Actor, timeArg(b.CreatedAt),
		timeArg(b.FinishedAt), b.Runs).Scan(&b.ID)
	if err != nil {
		return store.Backfill{}, fmt.Errorf("create backfill of %q: insert backfill: %w", b.Pipeline, err)
	}
	w := db.runWriter(ctx, tx)
	for i := range rs {
		rs[i].BackfillID = b.ID
		actor := runs[i].Actor
		if actor == "" {
			actor = b.Actor
		}
		if err := w.create(&rs[i], runs[i].Tasks, actor); err != nil {
			return store.Backfill{}, fmt.Errorf("create backfill %d of %q: run %d: %w", b.ID, b.Pipeline, i, err)
		}
	}
	if err := w.flush(); err != nil {
		return store.Backfill{}, fmt.Errorf("create backfill %d of %q: %w", b.ID, b.Pipeline, err)
	}
	if err := tx.Commit(); err != nil {
		return store.Backfill{}, fmt.Errorf("create backfill %d of %q: commit: %w", b.ID, b.Pipeline, err)
	}
	return b, nil
}

// Backfill returns backfill id.
func (db *DB) Backfill(ctx context.Context, id int64) (store.Backfill, error) {
	b, err := scanBackfill(db.r.QueryRowContext(ctx, `SELECT `+backfillCols+` FROM backfills WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Backfill{}, fmt.Errorf("backfill %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Backfill{}, fmt.Errorf("backfill %d: %w", id, err)
	}
	return b, nil
}

// ListBackfills reads one page newest first: the primary key backwards, or
// the (pipeline, id) index backwards for one pipeline.
func (db *DB) ListBackfills(ctx context.Context, pipeline string, beforeID int64, limit int) ([]store.Backfill, error) {
	if limit <= 0 {
		limit = store.DefaultBackfillsLimit
	}
	limit = min(limit, store.MaxBackfillsLimit)
	if beforeID <= 0 {
		beforeID = 1<<63 - 1
	}
	q := `SELECT ` + backfillCols + ` FROM backfills WHERE id < ?`
	args := []any{beforeID}
	if pipeline != "" {
		q += ` AND pipeline = ?`
		args = append(args, pipeline)
	}
	rows, err := db.r.QueryContext(ctx, q+` ORDER BY id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list backfills: %w", err)
	}
	return collect(rows, "list backfills", scanBackfill)
}

// SetBackfillState records the state of backfill id.
func (db *DB) SetBackfillState(ctx context.Context, id int64, state string, finishedAt time.Time) error {
	if err := store.CheckBackfillState(state); err != nil {
		return fmt.Errorf("set state of backfill %d: %w", id, err)
	}
	res, err := db.w.ExecContext(ctx, `UPDATE backfills SET state = ?, finished_at = ? WHERE id = ?`,
		state, timeArg(finishedAt), id)
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("set state of backfill %d to %s: %w", id, state, err)
	}
	return nil
}

// BackfillCounts groups the (backfill_id, state, id) index: a covering index
// scan over the backfill's runs, no run rows read.
func (db *DB) BackfillCounts(ctx context.Context, id int64) (map[engine.RunState]int, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT state, count(*) FROM runs WHERE backfill_id = ? GROUP BY state`, id)
	if err != nil {
		return nil, fmt.Errorf("count runs of backfill %d: %w", id, err)
	}
	defer rows.Close()
	counts := make(map[engine.RunState]int)
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			return nil, fmt.Errorf("count runs of backfill %d: %w", id, err)
		}
		counts[engine.RunState(state)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count runs of backfill %d: %w", id, err)
	}
	if len(counts) == 0 {
		var one int
		err := db.r.QueryRowContext(ctx, `SELECT 1 FROM backfills WHERE id = ?`, id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("count runs of backfill %d: %w", id, store.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("count runs of backfill %d: %w", id, err)
		}
	}
	return counts, nil
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

const backfillCols = `id, pipeline, range_from, range_to, parallel, state, actor, created_at, finished_at, runs`

func scanBackfill(row pgx.Row) (store.Backfill, error) {
	var b store.Backfill
	err := row.Scan(&b.ID, &b.Pipeline, timeCol{&b.From}, timeCol{&b.To}, &b.Parallel, &b.State, &b.Actor,
		timeCol{&b.CreatedAt}, timeCol{&b.FinishedAt}, &b.Runs)
	return b, err
}

// runCopyCols are the columns CreateBackfill writes with COPY, the id
// included: it is reserved beforehand.
var runCopyCols = []string{"id", "pipeline", "version_id", "trigger", "params", "interval_start", "interval_end",
	"created_at", "task_count", "backfill_id", "state", "remaining", "unsuccessful", "cancelling", "started_at",
	"finished_at", "deadline"}

var createdCopyCols = []string{"run_id", "task_idx", "time", "kind", "actor"}

// CreateBackfill checks every run before the transaction starts, then, in one
// transaction: reserves an id for each run from runs_id_seq and inserts the
// backfill row (one batch), and streams the runs, all their tasks and their
// run_created records with three COPYs. A refused run (an unknown version,
// say) fails its COPY and leaves nothing behind. Run ids come from the
// sequence in increasing order, so the runs are listed in the order given.
func (db *DB) CreateBackfill(ctx context.Context, b store.Backfill, runs []store.NewRun) (store.Backfill, error) {
	rs, err := store.PrepareBackfill(&b, runs)
	if err != nil {
		return store.Backfill{}, fmt.Errorf("create backfill of %q: %w", b.Pipeline, err)
	}
	nTasks := 0
	for i := range runs {
		nTasks += len(runs[i].Tasks)
	}

	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return store.Backfill{}, fmt.Errorf("create backfill of %q: %w", b.Pipeline, err)
	}
	defer rollback(tx)
	if err := createBackfill(ctx, tx, &b, rs, runs, nTasks); err != nil {
		return store.Backfill{}, fmt.Errorf("create backfill of %q: %w", b.Pipeline, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return store.Backfill{}, fmt.Errorf("create backfill %d of %q: commit: %w", b.ID, b.Pipeline, err)
	}
	return b, nil
}

// createBackfill is CreateBackfill inside tx: it sets b.ID.
func createBackfill(ctx context.Context, tx pgx.Tx, b *store.Backfill, rs []store.Run, runs []store.NewRun, nTasks int) error {
	batch := &pgx.Batch{}
	batch.Queue(`INSERT INTO backfills (pipeline, range_from, range_to, parallel, state, actor, created_at, finished_at, runs)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
		b.Pipeline, b.From, b.To, int32(b.Parallel), b.State, store.Text(b.Actor), b.CreatedAt, timeArg(b.FinishedAt), int32(b.Runs))
	if len(rs) > 0 {
		batch.Queue(`SELECT nextval('runs_id_seq') FROM generate_series(1, $1)`, len(rs))
	}
	br := tx.SendBatch(ctx, batch)
	if err := br.QueryRow().Scan(&b.ID); err != nil {
		br.Close()
		return fmt.Errorf("insert backfill: %w", err)
	}
	var ids []int64
	if len(rs) > 0 {
		rows, err := br.Query()
		if err == nil {
			ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		}
		if err == nil && len(ids) != len(rs) {
			err = fmt.Errorf("got %d ids for %d runs", len(ids), len(rs))
		}
		if err != nil {
			br.Close()
			return fmt.Errorf("backfill %d: reserve run ids: %w", b.ID, err)
		}
		slices.Sort(ids)
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("backfill %d: %w", b.ID, err)
	}
	if len(rs) == 0 {
		return nil
	}
	for i := range rs {
		rs[i].ID = ids[i]
		rs[i].BackfillID = b.ID
	}

	// The runs.
	row := make([]any, 0, len(runCopyCols))
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"runs"}, runCopyCols, pgx.CopyFromSlice(len(rs), func(i int) ([]any, error) {
		r := &rs[i]
		row = append(row[:0], r.ID)
		row = append(row, runArgs(r)...)
		return row, nil
	}))
	if err != nil {
		var version int64
		for i := range rs {
			if rs[i].VersionID != 0 {
				version = rs[i].VersionID
				break
			}
		}
		if isConstraint(err, sqlstateForeignKeyViolation, "runs_version_id_fkey") {
			return fmt.Errorf("backfill %d: a run's pipeline version (%d or another): %w", b.ID, version, store.ErrNotFound)
		}
		return fmt.Errorf("backfill %d: copy %d runs: %w", b.ID, len(rs), err)
	}

	// All their tasks, run by run.
	if nTasks > 0 {
		ri, ti := 0, 0
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"tasks"}, taskCols, pgx.CopyFromFunc(func() ([]any, error) {
			for ri < len(runs) && ti >= len(runs[ri].Tasks) {
				ri, ti = ri+1, 0
			}
			if ri == len(runs) {
				return nil, nil
			}
			row = taskRow(row[:0], rs[ri].ID, &runs[ri].Tasks[ti])
			ti++
			return row, nil
		}))
		if err != nil {
			return fmt.Errorf("backfill %d: copy %d tasks: %w", b.ID, nTasks, err)
		}
	}

	// Their run_created records, by the run's actor or the backfill's.
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"events"}, createdCopyCols, pgx.CopyFromSlice(len(rs), func(i int) ([]any, error) {
		actor := runs[i].Actor
		if actor == "" {
			actor = b.Actor
		}
		row = append(row[:0], rs[i].ID, int32(-1), rs[i].CreatedAt, string(store.RecRunCreated), store.Text(actor))
		return row, nil
	}))
	if err != nil {
		return fmt.Errorf("backfill %d: copy %d run_created records: %w", b.ID, len(rs), err)
	}
	return nil
}

// Backfill returns backfill id.
func (db *DB) Backfill(ctx context.Context, id int64) (store.Backfill, error) {
	b, err := scanBackfill(db.pool.QueryRow(ctx, `SELECT `+backfillCols+` FROM backfills WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
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
	var p params
	q := `SELECT ` + backfillCols + ` FROM backfills WHERE true`
	if beforeID > 0 {
		q += ` AND id < ` + p.add(beforeID)
	}
	if pipeline != "" {
		q += ` AND pipeline = ` + p.add(pipeline)
	}
	q += ` ORDER BY id DESC LIMIT ` + p.add(int64(limit))
	rows, err := db.pool.Query(ctx, q, p.args...)
	if err != nil {
		return nil, fmt.Errorf("list backfills: %w", err)
	}
	defer rows.Close()
	var out []store.Backfill
	for rows.Next() {
		b, err := scanBackfill(rows)
		if err != nil {
			return nil, fmt.Errorf("list backfills: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list backfills: %w", err)
	}
	return out, nil
}

// SetBackfillState records the state of backfill id.
func (db *DB) SetBackfillState(ctx context.Context, id int64, state string, finishedAt time.Time) error {
	if err := store.CheckBackfillState(state); err != nil {
		return fmt.Errorf("set state of backfill %d: %w", id, err)
	}
	tag, err := db.pool.Exec(ctx, `UPDATE backfills SET state = $1, finished_at = $2 WHERE id = $3`,
		state, timeArg(finishedAt), id)
	if err := affectedOne(tag, err); err != nil {
		return fmt.Errorf("set state of backfill %d to %s: %w", id, state, err)
	}
	return nil
}

// BackfillCounts groups the (backfill_id, state, id) index of the
// backfill's runs, and checks that the backfill exists, in one statement.
func (db *DB) BackfillCounts(ctx context.Context, id int64) (map[engine.RunState]int, error) {
	rows, err := db.pool.Query(ctx, `SELECT c.state, c.n FROM backfills b
		LEFT JOIN (SELECT state, count(*) AS n FROM runs WHERE backfill_id = $1 GROUP BY state) c ON true
		WHERE b.id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("count runs of backfill %d: %w", id, err)
	}
	defer rows.Close()
	counts := make(map[engine.RunState]int)
	found := false
	for rows.Next() {
		found = true
		var state *string
		var n *int
		if err := rows.Scan(&state, &n); err != nil {
			return nil, fmt.Errorf("count runs of backfill %d: %w", id, err)
		}
		if state != nil {
			counts[engine.RunState(*state)] = *n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count runs of backfill %d: %w", id, err)
	}
	if !found {
		return nil, fmt.Errorf("count runs of backfill %d: %w", id, store.ErrNotFound)
	}
	return counts, nil
}

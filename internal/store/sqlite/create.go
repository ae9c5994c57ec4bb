package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// taskBatch is how many task rows one INSERT statement writes when runs are
// created. 13 columns × 256 rows stays far below SQLite's 32,766 bound
// parameters, and larger batches measured no faster.
const taskBatch = 256

const taskInsertCols = `INSERT INTO tasks (run_id, idx, task_id, state, attempt, spent, pending_needs,
	ready_at, started_at, finished_at, exit_code, message, result) VALUES `

const taskInsertRow = `(?,?,?,?,?,?,?,?,?,?,?,?,?)`

// taskInsertSQL is an INSERT of n task rows.
func taskInsertSQL(n int) string { return multiRow(taskInsertCols, taskInsertRow, n) }

// A fresh task (never started: no attempt, times, exit code, message or
// result, which is how new runs almost always have them) is written with only
// the columns that vary; the others take their defaults. Binding 5 values a
// row instead of 13 makes creating runs about twice as fast.
const freshInsertCols = `INSERT INTO tasks (run_id, idx, task_id, state, pending_needs) VALUES `

const freshInsertRow = `(?,?,?,?,?)`

// freshInsertSQL is an INSERT of n fresh task rows.
func freshInsertSQL(n int) string { return multiRow(freshInsertCols, freshInsertRow, n) }

func multiRow(head, row string, n int) string {
	var b strings.Builder
	b.Grow(len(head) + n*(len(row)+1))
	b.WriteString(head)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	return b.String()
}

func fresh(t *store.TaskRow) bool {
	return t.Attempt == 0 && t.Spent == 0 && t.ReadyAt.IsZero() && t.StartedAt.IsZero() && t.FinishedAt.IsZero() &&
		t.ExitCode == nil && t.Message == "" && len(t.Result) == 0
}

const insertRunSQL = `INSERT INTO runs (pipeline, version_id, trigger, params, interval_start, interval_end,
	created_at, task_count, backfill_id, state, remaining, unsuccessful, cancelling, started_at, finished_at, deadline)
	VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id`

// A run_created record has no attempt, exit code, message or data.
const createdInsertCols = `INSERT INTO events (run_id, task_idx, time, kind, actor) VALUES `

const createdInsertRow = `(?,-1,?,'` + string(store.RecRunCreated) + `',?)`

// createdInsertSQL is an INSERT of n run_created records.
func createdInsertSQL(n int) string { return multiRow(createdInsertCols, createdInsertRow, n) }

// rowQueue collects the arguments of rows for one multi-row INSERT form and
// writes them taskBatch rows at a time with a statement prepared once, and
// the remainder with one statement built for it at the end.
type rowQueue struct {
	what   string
	batch  *sql.Stmt          // INSERT of taskBatch rows
	sqlFor func(n int) string // INSERT of n rows
	args   []any
	n      int
}

// added counts one row whose arguments were appended to q.args, and writes
// the batch when it is full.
func (q *rowQueue) added(ctx context.Context) error {
	if q.n++; q.n < taskBatch {
		return nil
	}
	return q.write(ctx, nil)
}

// write writes the queued rows: with the prepared batch statement when there
// is a full batch, with tx otherwise.
func (q *rowQueue) write(ctx context.Context, tx *sql.Tx) error {
	if q.n == 0 {
		return nil
	}
	var err error
	if q.n == taskBatch {
		_, err = q.batch.ExecContext(ctx, q.args...)
	} else {
		_, err = tx.ExecContext(ctx, q.sqlFor(q.n), q.args...)
	}
	if err != nil {
		return fmt.Errorf("insert %d %s: %w", q.n, q.what, err)
	}
	q.args, q.n = q.args[:0], 0
	return nil
}

// runWriter writes new runs inside one write transaction: each run row on its
// own (its ID comes back), and the task rows and run_created records of all
// its runs in shared multi-row INSERTs of taskBatch rows. CreateRun writes
// one run with it, CreateBackfill thousands: a backfill of 10,000 runs of 3
// tasks costs 10,000 run inserts but only about 160 other statements.
type runWriter struct {
	ctx                  context.Context
	tx                   *sql.Tx
	insertRun            *sql.Stmt
	full, fresh, created rowQueue
}

func (db *DB) runWriter(ctx context.Context, tx *sql.Tx) *runWriter {
	return &runWriter{
		ctx:       ctx,
		tx:        tx,
		insertRun: tx.StmtContext(ctx, db.st.insertRun),
		full:      rowQueue{what: "tasks", batch: tx.StmtContext(ctx, db.st.insertTasks), sqlFor: taskInsertSQL},
		fresh:     rowQueue{what: "tasks", batch: tx.StmtContext(ctx, db.st.insertFresh), sqlFor: freshInsertSQL},
		created:   rowQueue{what: "run_created records", batch: tx.StmtContext(ctx, db.st.insertCreated), sqlFor: createdInsertSQL},
	}
}

// create inserts run r (already checked and normalised by store.PrepareRun), sets
// r.ID, and queues its tasks and the record of its creation by actor. The
// caller calls flush before committing. A refused run row is ErrConflict (a
// second scheduled run for an interval) or ErrNotFound (its pipeline
// version).
func (w *runWriter) create(r *store.Run, tasks []store.TaskRow, actor string) error {
	var version, backfill any
	if r.VersionID != 0 {
		version = r.VersionID
	}
	if r.BackfillID != 0 {
		backfill = r.BackfillID
	}
	err := w.insertRun.QueryRowContext(w.ctx, r.Pipeline, version, r.Trigger, jsonArg(r.Params),
		timeArg(r.IntervalStart), timeArg(r.IntervalEnd), timeArg(r.CreatedAt), r.TaskCount, backfill,
		string(r.State), r.Remaining, r.Unsuccessful, boolArg(r.Cancelling), timeArg(r.StartedAt),
		timeArg(r.FinishedAt), timeArg(r.Deadline)).Scan(&r.ID)
	if err != nil {
		switch code(err) {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return fmt.Errorf("a scheduled run for interval %s already exists: %w",
				r.IntervalStart.Format(time.RFC3339Nano), store.ErrConflict)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			// The backfill is checked (and counted) before the insert, so the
			// version is what is missing.
			return fmt.Errorf("pipeline version %d: %w", r.VersionID, store.ErrNotFound)
		}
		return fmt.Errorf("insert run: %w", err)
	}
	for i := range tasks {
		if err := w.addTask(r.ID, &tasks[i]); err != nil {
			return fmt.Errorf("run %d: %w", r.ID, err)
		}
	}
	w.created.args = append(w.created.args, r.ID, timeArg(r.CreatedAt), store.Text(actor))
	if err := w.created.added(w.ctx); err != nil {
		return fmt.Errorf("run %d: %w", r.ID, err)
	}
	return nil
}

// addTask queues one task row in the short form when it is fresh.
func (w *runWriter) addTask(runID int64, t *store.TaskRow) error {
	state := t.State
	if state == "" {
		state = engine.TaskPending
	}
	if fresh(t) {
		w.fresh.args = append(w.fresh.args, runID, int64(t.Index), t.TaskID, string(state), int64(t.PendingNeeds))
		return w.fresh.added(w.ctx)
	}
	w.full.args = append(w.full.args, runID, int64(t.Index), t.TaskID, string(state), int64(t.Attempt), int64(t.Spent),
		int64(t.PendingNeeds), timeArg(t.ReadyAt), timeArg(t.StartedAt), timeArg(t.FinishedAt),
		intPtrArg(t.ExitCode), store.Text(t.Message), jsonArg(t.Result))
	return w.full.added(w.ctx)
}

// flush writes the rows still queued.
func (w *runWriter) flush() error {
	for _, q := range []*rowQueue{&w.fresh, &w.full, &w.created} {
		if err := q.write(w.ctx, w.tx); err != nil {
			return err
		}
	}
	return nil
}

// CreateRun writes the run, its tasks (in multi-row INSERTs of taskBatch
// rows) and its run_created record in one transaction; with a Schedule or
// Datasets, it first moves the pipeline's schedule or dataset cursor on
// (compare-and-sets), and with a
// BackfillID it first counts the run in its backfill, which is also the
// check that the backfill exists.
func (db *DB) CreateRun(ctx context.Context, nr store.NewRun) (store.Run, error) {
	r, adv, err := store.PrepareCreateRun(&nr)
	if err != nil {
		return store.Run{}, fmt.Errorf("create run of %q: %w", nr.Run.Pipeline, err)
	}

	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Run{}, fmt.Errorf("create run of %q: %w", r.Pipeline, err)
	}
	defer tx.Rollback()
	if s := adv.Schedule; s != nil {
		if err := advanceSchedule(ctx, tx, r.Pipeline, s.ExpectNextFire, s.NextFire, s.IntervalEnd, true); err != nil {
			return store.Run{}, fmt.Errorf("create scheduled run of %q for %s: %w",
				r.Pipeline, r.IntervalStart.Format(time.RFC3339), err)
		}
	}
	if adv.Datasets {
		if err := advanceCursor(ctx, tx, r.Pipeline, adv.ExpectCursor, adv.NextCursor, true); err != nil {
			return store.Run{}, fmt.Errorf("create dataset-started run of %q: %w", r.Pipeline, err)
		}
	}
	if r.BackfillID != 0 {
		res, err := tx.ExecContext(ctx, `UPDATE backfills SET runs = runs + 1 WHERE id = ?`, r.BackfillID)
		if err := affectedOne(res, err); err != nil {
			return store.Run{}, fmt.Errorf("create run of %q: backfill %d: %w", r.Pipeline, r.BackfillID, err)
		}
	}
	w := db.runWriter(ctx, tx)
	if err := w.create(&r, nr.Tasks, nr.Actor); err != nil {
		return store.Run{}, fmt.Errorf("create run of %q: %w", r.Pipeline, err)
	}
	if err := w.flush(); err != nil {
		return store.Run{}, fmt.Errorf("create run %d of %q: %w", r.ID, r.Pipeline, err)
	}
	if err := tx.Commit(); err != nil {
		return store.Run{}, fmt.Errorf("create run %d of %q: commit: %w", r.ID, r.Pipeline, err)
	}
	return r, nil
}

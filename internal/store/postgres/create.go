package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// inlineTasks is the largest run whose tasks CreateRun writes in the same
// statement as the run row (from arrays, with unnest): one round trip for the
// whole run. Larger runs stream their tasks with COPY, which costs a few
// round trips more but writes a 100,000-task run several times faster than
// any INSERT.
const inlineTasks = 1000

// insertRunSQL writes a run, its run_created record and (for a small run)
// its tasks, given as one array per column, in one statement, and returns the
// run's id.
const insertRunSQL = `WITH r AS (
	INSERT INTO runs (pipeline, version_id, trigger, params, interval_start, interval_end, created_at, task_count,
		backfill_id, state, remaining, unsuccessful, cancelling, started_at, finished_at, deadline)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
	RETURNING id
), e AS (
	INSERT INTO events (run_id, task_idx, time, kind, actor)
	SELECT id, -1, $7, '` + string(store.RecRunCreated) + `', $17 FROM r
), t AS (
	INSERT INTO tasks (run_id, idx, task_id, state, attempt, spent, pending_needs, ready_at, started_at, finished_at,
		exit_code, message, result)
	SELECT r.id, u.ord - 1, u.task_id, u.state, u.attempt, u.spent, u.pending_needs, u.ready_at, u.started_at,
		u.finished_at, u.exit_code, u.message, u.result::jsonb
	FROM r, unnest($18::text[], $19::text[], $20::int4[], $21::int4[], $22::int4[], $23::timestamptz[],
		$24::timestamptz[], $25::timestamptz[], $26::int4[], $27::text[], $28::text[])
		WITH ORDINALITY AS u(task_id, state, attempt, spent, pending_needs, ready_at, started_at, finished_at,
			exit_code, message, result, ord)
)
SELECT id FROM r`

// taskArrays holds task rows as one array per column, for insertRunSQL.
type taskArrays struct {
	taskID, state                  []string
	attempt, spent, pendingNeeds   []int32
	readyAt, startedAt, finishedAt []pgtype.Timestamptz
	exitCode                       []pgtype.Int4
	message                        []string
	result                         []pgtype.Text
}

func newTaskArrays(tasks []store.TaskRow) *taskArrays {
	n := len(tasks)
	a := &taskArrays{
		taskID: make([]string, n), state: make([]string, n),
		attempt: make([]int32, n), spent: make([]int32, n), pendingNeeds: make([]int32, n),
		readyAt: make([]pgtype.Timestamptz, n), startedAt: make([]pgtype.Timestamptz, n), finishedAt: make([]pgtype.Timestamptz, n),
		exitCode: make([]pgtype.Int4, n), message: make([]string, n), result: make([]pgtype.Text, n),
	}
	for i := range tasks {
		t := &tasks[i]
		a.taskID[i] = t.TaskID
		a.state[i] = string(taskState(t.State))
		a.attempt[i], a.spent[i], a.pendingNeeds[i] = int32(t.Attempt), int32(t.Spent), int32(t.PendingNeeds)
		a.readyAt[i], a.startedAt[i], a.finishedAt[i] = tsArg(t.ReadyAt), tsArg(t.StartedAt), tsArg(t.FinishedAt)
		a.exitCode[i] = int4Arg(t.ExitCode)
		a.message[i] = store.Text(t.Message)
		a.result[i] = jsonText(t.Result)
	}
	return a
}

func (a *taskArrays) args() []any {
	return []any{a.taskID, a.state, a.attempt, a.spent, a.pendingNeeds, a.readyAt, a.startedAt, a.finishedAt,
		a.exitCode, a.message, a.result}
}

// taskState is the state a new task is stored with: pending when not given.
func taskState(s engine.TaskState) engine.TaskState {
	if s == "" {
		return engine.TaskPending
	}
	return s
}

// taskCols are the columns copyTasks writes.
var taskCols = []string{"run_id", "idx", "task_id", "state", "attempt", "spent", "pending_needs", "ready_at",
	"started_at", "finished_at", "exit_code", "message", "result"}

// taskRow appends the COPY values of task t of run runID to row.
func taskRow(row []any, runID int64, t *store.TaskRow) []any {
	return append(row, runID, int32(t.Index), t.TaskID, string(taskState(t.State)), int32(t.Attempt), int32(t.Spent),
		int32(t.PendingNeeds), timeArg(t.ReadyAt), timeArg(t.StartedAt), timeArg(t.FinishedAt), intPtrArg(t.ExitCode),
		store.Text(t.Message), jsonArg(t.Result))
}

// copyTasks streams the tasks of run runID into the tasks table with COPY.
func copyTasks(ctx context.Context, tx pgx.Tx, runID int64, tasks []store.TaskRow) error {
	row := make([]any, 0, len(taskCols))
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"tasks"}, taskCols, pgx.CopyFromSlice(len(tasks), func(i int) ([]any, error) {
		row = taskRow(row[:0], runID, &tasks[i])
		return row, nil
	}))
	if err != nil {
		return fmt.Errorf("copy %d tasks: %w", len(tasks), err)
	}
	if int(n) != len(tasks) {
		return fmt.Errorf("copy %d tasks: %d written", len(tasks), n)
	}
	return nil
}

// runArgs are the parameters $1..$16 of insertRunSQL for run r.
func runArgs(r *store.Run) []any {
	var version, backfill any
	if r.VersionID != 0 {
		version = r.VersionID
	}
	if r.BackfillID != 0 {
		backfill = r.BackfillID
	}
	return []any{r.Pipeline, version, r.Trigger, jsonArg(r.Params), timeArg(r.IntervalStart), timeArg(r.IntervalEnd),
		r.CreatedAt, int32(r.TaskCount), backfill, string(r.State), int32(r.Remaining), int32(r.Unsuccessful),
		r.Cancelling, timeArg(r.StartedAt), timeArg(r.FinishedAt), timeArg(r.Deadline)}
}

// runInsertError turns the refusal of a run row into the store's errors: a
// second scheduled run for an interval is ErrConflict, an unknown pipeline
// version ErrNotFound.
func runInsertError(r *store.Run, err error) error {
	switch {
	case isConstraint(err, sqlstateUniqueViolation, "runs_schedule_interval"):
		return fmt.Errorf("a scheduled run for interval %s already exists: %w",
			r.IntervalStart.Format(time.RFC3339Nano), store.ErrConflict)
	case isConstraint(err, sqlstateForeignKeyViolation, "runs_version_id_fkey"):
		return fmt.Errorf("pipeline version %d: %w", r.VersionID, store.ErrNotFound)
	case isConstraint(err, sqlstateForeignKeyViolation, "runs_backfill_id_fkey"):
		return fmt.Errorf("backfill %d: %w", r.BackfillID, store.ErrNotFound)
	}
	return fmt.Errorf("insert run: %w", err)
}

// CreateRun writes the run in one transaction and, for runs of up to
// inlineTasks tasks, one round trip of statements: with a Schedule, the
// compare-and-set of the pipeline's next fire time; with Datasets, that of
// its dataset cursor; with a BackfillID, the count of the backfill's runs
// (which is also the check that it exists); then the run, its run_created
// record and its tasks in one statement. The tasks of a larger run follow
// with COPY.
func (db *DB) CreateRun(ctx context.Context, nr store.NewRun) (store.Run, error) {
	r, adv, err := store.PrepareCreateRun(&nr)
	if err != nil {
		return store.Run{}, fmt.Errorf("create run of %q: %w", nr.Run.Pipeline, err)
	}

	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return store.Run{}, fmt.Errorf("create run of %q: %w", r.Pipeline, err)
	}
	defer rollback(tx)
	if err := createRun(ctx, tx, &r, nr, adv); err != nil {
		return store.Run{}, fmt.Errorf("create run of %q: %w", r.Pipeline, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return store.Run{}, fmt.Errorf("create run %d of %q: commit: %w", r.ID, r.Pipeline, err)
	}
	return r, nil
}

// createRun is CreateRun inside transaction tx; it sets r.ID.
func createRun(ctx context.Context, tx pgx.Tx, r *store.Run, nr store.NewRun, adv store.RunAdvance) error {
	b := &pgx.Batch{}
	if s := adv.Schedule; s != nil {
		b.Queue(advanceSQL(true), advanceArgs(r.Pipeline, s.ExpectNextFire, s.NextFire, s.IntervalEnd)...)
	}
	if adv.Datasets {
		b.Queue(cursorSQL(true), cursorArgs(r.Pipeline, adv.ExpectCursor, adv.NextCursor)...)
	}
	if r.BackfillID != 0 {
		b.Queue(`UPDATE backfills SET runs = runs + 1 WHERE id = $1`, r.BackfillID)
	}
	inline := len(nr.Tasks) <= inlineTasks
	var tasks []store.TaskRow
	if inline {
		tasks = nr.Tasks
	}
	args := append(runArgs(r), store.Text(nr.Actor))
	b.Queue(insertRunSQL, append(args, newTaskArrays(tasks).args()...)...)

	br := tx.SendBatch(ctx, b)
	defer br.Close()
	if s := adv.Schedule; s != nil {
		if err := scanAdvance(br.QueryRow(), s.ExpectNextFire); err != nil {
			return fmt.Errorf("scheduled run for %s: %w", r.IntervalStart.Format(time.RFC3339), err)
		}
	}
	if adv.Datasets {
		if err := scanCursor(br.QueryRow(), adv.ExpectCursor); err != nil {
			return fmt.Errorf("dataset-started run: %w", err)
		}
	}
	if r.BackfillID != 0 {
		tag, err := br.Exec()
		if err := affectedOne(tag, err); err != nil {
			return fmt.Errorf("backfill %d: %w", r.BackfillID, err)
		}
	}
	if err := br.QueryRow().Scan(&r.ID); err != nil {
		return runInsertError(r, err)
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("run %d: %w", r.ID, err)
	}
	if !inline {
		if err := copyTasks(ctx, tx, r.ID, nr.Tasks); err != nil {
			return fmt.Errorf("run %d: %w", r.ID, err)
		}
	}
	return nil
}

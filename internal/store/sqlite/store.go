package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// taskBatch is how many task rows one INSERT statement writes in CreateRun.
// 13 columns × 256 rows stays far below SQLite's 32,766 bound parameters, and
// larger batches measured no faster.
const taskBatch = 256

const taskInsertCols = `INSERT INTO tasks (run_id, idx, task_id, state, attempt, spent, pending_needs,
	ready_at, started_at, finished_at, exit_code, message, result) VALUES `

const taskInsertRow = `(?,?,?,?,?,?,?,?,?,?,?,?,?)`

// taskInsertSQL is an INSERT of n task rows.
func taskInsertSQL(n int) string {
	var b strings.Builder
	b.Grow(len(taskInsertCols) + n*(len(taskInsertRow)+1))
	b.WriteString(taskInsertCols)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(taskInsertRow)
	}
	return b.String()
}

// A fresh task (never started: no attempt, times, exit code, message or
// result, which is how CreateRun almost always sees them) is written with
// only the columns that vary; the others take their defaults. Binding 4
// values a row instead of 13 makes CreateRun about twice as fast.
const freshInsertCols = `INSERT INTO tasks (run_id, idx, task_id, state, pending_needs) VALUES `

const freshInsertRow = `(?1,?,?,?,?)`

// freshInsertSQL is an INSERT of n fresh task rows; the run id is bound once.
func freshInsertSQL(n int) string {
	var b strings.Builder
	b.Grow(len(freshInsertCols) + n*(len(freshInsertRow)+1))
	b.WriteString(freshInsertCols)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(freshInsertRow)
	}
	return b.String()
}

func fresh(t *store.TaskRow) bool {
	return t.Attempt == 0 && t.Spent == 0 && t.ReadyAt.IsZero() && t.StartedAt.IsZero() && t.FinishedAt.IsZero() &&
		t.ExitCode == nil && t.Message == "" && len(t.Result) == 0
}

// stmts are the writer's hot statements, prepared once on the writer
// connection so Apply does not parse SQL on every call.
type stmts struct {
	updateRun     *sql.Stmt
	updateTask    *sql.Stmt
	insertEvent   *sql.Stmt
	upsertAttempt *sql.Stmt
	insertTasks   *sql.Stmt // taskBatch rows
	insertFresh   *sql.Stmt // taskBatch fresh rows
}

func (s *stmts) prepare(ctx context.Context, w *sql.DB) error {
	for _, p := range []struct {
		dst **sql.Stmt
		sql string
	}{
		{&s.updateRun, `UPDATE runs SET state = ?, remaining = ?, unsuccessful = ?, cancelling = ?,
			started_at = ?, finished_at = ? WHERE id = ?`},
		{&s.updateTask, `UPDATE tasks SET state = ?, attempt = ?, spent = ?, pending_needs = ?, ready_at = ?,
			started_at = ?, finished_at = ?, exit_code = ?, message = ?, result = ? WHERE run_id = ? AND idx = ?`},
		{&s.insertEvent, `INSERT INTO events (run_id, task_idx, time, kind, attempt, exit_code, message, actor, data)
			VALUES (?,?,?,?,?,?,?,?,?)`},
		{&s.upsertAttempt, `INSERT INTO attempts (run_id, idx, attempt, worker, started_at, finished_at, outcome,
			exit_code, message, log) VALUES (?,?,?,?,?,?,?,?,?,?)
			ON CONFLICT (run_id, idx, attempt) DO UPDATE SET
			worker      = coalesce(nullif(excluded.worker, ''), attempts.worker),
			started_at  = coalesce(excluded.started_at, attempts.started_at),
			finished_at = coalesce(excluded.finished_at, attempts.finished_at),
			outcome     = coalesce(nullif(excluded.outcome, ''), attempts.outcome),
			exit_code   = coalesce(excluded.exit_code, attempts.exit_code),
			message     = coalesce(nullif(excluded.message, ''), attempts.message),
			log         = coalesce(nullif(excluded.log, ''), attempts.log)`},
		{&s.insertTasks, taskInsertSQL(taskBatch)},
		{&s.insertFresh, freshInsertSQL(taskBatch)},
	} {
		st, err := w.PrepareContext(ctx, p.sql)
		if err != nil {
			return err
		}
		*p.dst = st
	}
	return nil
}

func (s *stmts) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.updateRun, s.updateTask, s.insertEvent, s.upsertAttempt, s.insertTasks, s.insertFresh} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

// PutPipelineVersion stores v by the SHA-256 of its Source. v.Hash may be
// empty (it is computed) but must match Source when given.
func (db *DB) PutPipelineVersion(ctx context.Context, v store.PipelineVersion) (store.PipelineVersion, error) {
	sum := sha256.Sum256(v.Source)
	hash := hex.EncodeToString(sum[:])
	if v.Hash != "" && !strings.EqualFold(v.Hash, hash) {
		return store.PipelineVersion{}, fmt.Errorf("put version of pipeline %q: hash %s does not match the source (sha256 %s)", v.Pipeline, v.Hash, hash)
	}
	if v.Pipeline == "" {
		return store.PipelineVersion{}, errors.New("put pipeline version: empty pipeline name")
	}
	v.Hash = hash
	if v.Source == nil {
		v.Source = []byte{}
	}
	if v.CreatedAt.IsZero() {
		v.CreatedAt = time.Now()
	}
	v.CreatedAt = normTime(v.CreatedAt)

	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return store.PipelineVersion{}, fmt.Errorf("put version of pipeline %q: %w", v.Pipeline, err)
	}
	defer tx.Rollback()
	old, err := scanVersion(tx.QueryRowContext(ctx, `SELECT `+versionCols+` FROM pipeline_versions WHERE hash = ?`, hash))
	if err == nil {
		return old, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return store.PipelineVersion{}, fmt.Errorf("put version of pipeline %q: look up hash: %w", v.Pipeline, err)
	}
	err = tx.QueryRowContext(ctx, `INSERT INTO pipeline_versions (pipeline, hash, file, source, created_at)
		VALUES (?, ?, ?, ?, ?) RETURNING id`, v.Pipeline, v.Hash, v.File, v.Source, timeArg(v.CreatedAt)).Scan(&v.ID)
	if err != nil {
		return store.PipelineVersion{}, fmt.Errorf("put version of pipeline %q: %w", v.Pipeline, err)
	}
	if err := tx.Commit(); err != nil {
		return store.PipelineVersion{}, fmt.Errorf("put version of pipeline %q: commit: %w", v.Pipeline, err)
	}
	return v, nil
}

const versionCols = `id, pipeline, hash, file, source, created_at`

func scanVersion(row interface{ Scan(...any) error }) (store.PipelineVersion, error) {
	var v store.PipelineVersion
	err := row.Scan(&v.ID, &v.Pipeline, &v.Hash, &v.File, &v.Source, timeCol{&v.CreatedAt})
	return v, err
}

// PipelineVersion returns the stored version id.
func (db *DB) PipelineVersion(ctx context.Context, id int64) (store.PipelineVersion, error) {
	v, err := scanVersion(db.r.QueryRowContext(ctx, `SELECT `+versionCols+` FROM pipeline_versions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.PipelineVersion{}, fmt.Errorf("pipeline version %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.PipelineVersion{}, fmt.Errorf("pipeline version %d: %w", id, err)
	}
	return v, nil
}

// CreateRun writes the run, its tasks (in multi-row INSERTs of taskBatch
// rows) and its run_created record in one transaction.
func (db *DB) CreateRun(ctx context.Context, nr store.NewRun) (store.Run, error) {
	r := nr.Run
	if err := prepareRun(&r, nr.Tasks); err != nil {
		return store.Run{}, fmt.Errorf("create run of %q: %w", r.Pipeline, err)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return store.Run{}, fmt.Errorf("create run of %q: %w", r.Pipeline, err)
	}
	defer tx.Rollback()

	var version any
	if r.VersionID != 0 {
		version = r.VersionID
	}
	err = tx.QueryRowContext(ctx, `INSERT INTO runs (pipeline, version_id, trigger, params, interval_start,
		interval_end, created_at, task_count, state, remaining, unsuccessful, cancelling, started_at, finished_at)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id`,
		r.Pipeline, version, r.Trigger, jsonArg(r.Params), timeArg(r.IntervalStart), timeArg(r.IntervalEnd),
		timeArg(r.CreatedAt), r.TaskCount, string(r.State), r.Remaining, r.Unsuccessful, boolArg(r.Cancelling),
		timeArg(r.StartedAt), timeArg(r.FinishedAt)).Scan(&r.ID)
	if err != nil {
		switch code(err) {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return store.Run{}, fmt.Errorf("create run of %q: a scheduled run for interval %s already exists: %w",
				r.Pipeline, r.IntervalStart.Format(time.RFC3339Nano), store.ErrConflict)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return store.Run{}, fmt.Errorf("create run of %q: pipeline version %d: %w", r.Pipeline, r.VersionID, store.ErrNotFound)
		}
		return store.Run{}, fmt.Errorf("create run of %q: insert run: %w", r.Pipeline, err)
	}

	if err := insertTasks(ctx, tx, &db.st, r.ID, nr.Tasks); err != nil {
		return store.Run{}, fmt.Errorf("create run %d of %q: %w", r.ID, r.Pipeline, err)
	}
	if _, err := tx.StmtContext(ctx, db.st.insertEvent).ExecContext(ctx,
		r.ID, -1, timeArg(r.CreatedAt), string(store.RecRunCreated), 0, nil, "", nr.Actor, nil); err != nil {
		return store.Run{}, fmt.Errorf("create run %d of %q: record run_created: %w", r.ID, r.Pipeline, err)
	}
	if err := tx.Commit(); err != nil {
		return store.Run{}, fmt.Errorf("create run %d of %q: commit: %w", r.ID, r.Pipeline, err)
	}
	return r, nil
}

// prepareRun validates a new run and fills in what the store decides, so the
// returned run equals what Run reads back.
func prepareRun(r *store.Run, tasks []store.TaskRow) error {
	if r.Pipeline == "" {
		return errors.New("empty pipeline name")
	}
	if err := checkJSON("params", r.Params); err != nil {
		return err
	}
	for i := range tasks {
		t := &tasks[i]
		if t.Index != i {
			return fmt.Errorf("task %d (%q) has index %d; indexes must be 0..%d in order", i, t.TaskID, t.Index, len(tasks)-1)
		}
		if err := checkJSON(fmt.Sprintf("result of task %d", i), t.Result); err != nil {
			return err
		}
	}
	r.ID = 0
	r.TaskCount = len(tasks)
	if r.State == "" {
		r.State = engine.RunQueued
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now()
	}
	r.Params = normJSON(r.Params)
	r.CreatedAt = normTime(r.CreatedAt)
	r.IntervalStart = normTime(r.IntervalStart)
	r.IntervalEnd = normTime(r.IntervalEnd)
	r.StartedAt = normTime(r.StartedAt)
	r.FinishedAt = normTime(r.FinishedAt)
	return nil
}

// insertTasks writes the task rows in statements of taskBatch rows (prepared
// once) and one statement for the remainder, using the short fresh-row form
// when every row of the run is fresh.
func insertTasks(ctx context.Context, tx *sql.Tx, st *stmts, runID int64, tasks []store.TaskRow) error {
	allFresh := true
	for i := range tasks {
		if !fresh(&tasks[i]) {
			allFresh = false
			break
		}
	}
	batch, rowSQL, perRow := tx.StmtContext(ctx, st.insertTasks), taskInsertSQL, 13
	if allFresh {
		batch, rowSQL, perRow = tx.StmtContext(ctx, st.insertFresh), freshInsertSQL, 4
	}
	args := make([]any, 0, 1+taskBatch*perRow)
	add := func(t *store.TaskRow) {
		state := t.State
		if state == "" {
			state = engine.TaskPending
		}
		if allFresh {
			args = append(args, int64(t.Index), t.TaskID, string(state), int64(t.PendingNeeds))
			return
		}
		args = append(args, runID, int64(t.Index), t.TaskID, string(state), int64(t.Attempt), int64(t.Spent),
			int64(t.PendingNeeds), timeArg(t.ReadyAt), timeArg(t.StartedAt), timeArg(t.FinishedAt),
			intPtrArg(t.ExitCode), t.Message, jsonArg(t.Result))
	}
	reset := func() {
		args = args[:0]
		if allFresh {
			args = append(args, runID)
		}
	}
	full := len(tasks) / taskBatch * taskBatch
	for start := 0; start < full; start += taskBatch {
		reset()
		for i := start; i < start+taskBatch; i++ {
			add(&tasks[i])
		}
		if _, err := batch.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("insert tasks %d..%d: %w", start, start+taskBatch-1, err)
		}
	}
	if rest := tasks[full:]; len(rest) > 0 {
		reset()
		for i := range rest {
			add(&rest[i])
		}
		if _, err := tx.ExecContext(ctx, rowSQL(len(rest)), args...); err != nil {
			return fmt.Errorf("insert tasks %d..%d: %w", full, len(tasks)-1, err)
		}
	}
	return nil
}

const runCols = `id, pipeline, version_id, trigger, params, interval_start, interval_end, created_at,
	task_count, state, remaining, unsuccessful, cancelling, started_at, finished_at`

func scanRun(row interface{ Scan(...any) error }) (store.Run, error) {
	var r store.Run
	var version sql.NullInt64
	var state string
	err := row.Scan(&r.ID, &r.Pipeline, &version, &r.Trigger, jsonCol{&r.Params},
		timeCol{&r.IntervalStart}, timeCol{&r.IntervalEnd}, timeCol{&r.CreatedAt}, &r.TaskCount,
		&state, &r.Remaining, &r.Unsuccessful, boolCol{&r.Cancelling}, timeCol{&r.StartedAt}, timeCol{&r.FinishedAt})
	r.VersionID = version.Int64
	r.State = engine.RunState(state)
	return r, err
}

// Run returns run id.
func (db *DB) Run(ctx context.Context, id int64) (store.Run, error) {
	r, err := scanRun(db.r.QueryRowContext(ctx, `SELECT `+runCols+` FROM runs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Run{}, fmt.Errorf("run %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Run{}, fmt.Errorf("run %d: %w", id, err)
	}
	return r, nil
}

// ListRuns returns one page of runs, newest first. Each filter maps to an
// index read backwards from the cursor. Several states become one indexed
// read per state, each limited to the page size, merged by a UNION ALL: the
// work is bounded by states × limit, never by the history.
func (db *DB) ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error) {
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
	var states []string
	for _, s := range f.States {
		if !containsString(states, string(s)) {
			states = append(states, string(s))
		}
	}

	// one is the query for a single state ("" for any).
	one := func(state string) (string, []any) {
		var where []string
		var args []any
		if f.Pipeline != "" {
			where = append(where, "pipeline = ?")
			args = append(args, f.Pipeline)
		}
		if state != "" {
			where = append(where, "state = ?")
			args = append(args, state)
		}
		where = append(where, "id < ?")
		args = append(args, before, limit)
		return `SELECT ` + runCols + ` FROM runs WHERE ` + strings.Join(where, " AND ") +
			` ORDER BY id DESC LIMIT ?`, args
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
	return strings.Join(parts, " UNION ALL ") + ` ORDER BY id DESC LIMIT ?`, args
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// runMissing turns an empty result into ErrNotFound when the run does not
// exist; it costs a primary-key lookup and only runs for empty results.
func (db *DB) runMissing(ctx context.Context, id int64) error {
	var one int
	err := db.r.QueryRowContext(ctx, `SELECT 1 FROM runs WHERE id = ?`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

const taskCols = `run_id, idx, task_id, state, attempt, spent, pending_needs, ready_at, started_at,
	finished_at, exit_code, message, result`

// Tasks returns every task of run runID in index order. It reads the run's
// task count first: that is the existence check, and it sizes the result so
// a 100,000-task run is not copied while growing.
func (db *DB) Tasks(ctx context.Context, runID int64) ([]store.TaskRow, error) {
	var n int
	err := db.r.QueryRowContext(ctx, `SELECT task_count FROM runs WHERE id = ?`, runID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("tasks of run %d: %w", runID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("tasks of run %d: %w", runID, err)
	}
	rows, err := db.r.QueryContext(ctx, `SELECT `+taskCols+` FROM tasks WHERE run_id = ? ORDER BY idx`, runID)
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
// index >= 0, ordered by task index then attempt.
func (db *DB) Attempts(ctx context.Context, runID int64, index int) ([]store.Attempt, error) {
	q := `SELECT run_id, idx, attempt, worker, started_at, finished_at, outcome, exit_code, message, log
		FROM attempts WHERE run_id = ?`
	args := []any{runID}
	if index >= 0 {
		q += ` AND idx = ?`
		args = append(args, index)
	}
	rows, err := db.r.QueryContext(ctx, q+` ORDER BY idx, attempt`, args...)
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

// Events returns up to limit events of run runID after seq afterSeq, with
// the task id of task-level events filled in from the tasks table.
func (db *DB) Events(ctx context.Context, runID int64, afterSeq int64, limit int) ([]store.Event, error) {
	if limit <= 0 {
		limit = store.DefaultEventsLimit
	}
	limit = min(limit, store.MaxEventsLimit)
	rows, err := db.r.QueryContext(ctx, `SELECT e.seq, e.run_id, coalesce(t.task_id, ''), e.time, e.kind, e.task_idx,
		e.attempt, e.exit_code, e.message, e.actor, e.data
		FROM events e LEFT JOIN tasks t ON t.run_id = e.run_id AND t.idx = e.task_idx
		WHERE e.run_id = ? AND e.seq > ? ORDER BY e.seq LIMIT ?`, runID, afterSeq, limit)
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

// Apply writes all changes in one IMMEDIATE transaction on the writer
// connection. Any failure (a missing run or task, bad JSON, a cancelled
// context) rolls back the whole batch.
func (db *DB) Apply(ctx context.Context, changes ...store.Change) error {
	if len(changes) == 0 {
		return nil
	}
	for i := range changes {
		if err := checkChange(&changes[i]); err != nil {
			return fmt.Errorf("apply changes to run %d: %w", changes[i].RunID, err)
		}
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("apply %d changes: %w", len(changes), err)
	}
	defer tx.Rollback()
	w := writer{
		ctx:           ctx,
		updateRun:     tx.StmtContext(ctx, db.st.updateRun),
		updateTask:    tx.StmtContext(ctx, db.st.updateTask),
		insertEvent:   tx.StmtContext(ctx, db.st.insertEvent),
		upsertAttempt: tx.StmtContext(ctx, db.st.upsertAttempt),
	}
	for i := range changes {
		if err := w.apply(&changes[i]); err != nil {
			return fmt.Errorf("apply changes to run %d: %w", changes[i].RunID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("apply %d changes: commit: %w", len(changes), err)
	}
	return nil
}

// checkChange rejects what would fail inside the transaction anyway, before
// taking the write lock, with messages that name the field.
func checkChange(c *store.Change) error {
	for _, t := range c.Transition.Tasks {
		if err := checkJSON(fmt.Sprintf("result of task %d", t.Index), t.Task.Result); err != nil {
			return err
		}
	}
	for _, r := range c.Transition.Records {
		if err := checkJSON(fmt.Sprintf("data of %s record", r.Kind), r.Data); err != nil {
			return err
		}
	}
	for _, a := range c.Attempts {
		if a.RunID != 0 && a.RunID != c.RunID {
			return fmt.Errorf("attempt %d of task %d names run %d", a.Attempt, a.Index, a.RunID)
		}
	}
	return nil
}

// writer holds one Apply transaction's statements.
type writer struct {
	ctx                                               context.Context
	updateRun, updateTask, insertEvent, upsertAttempt *sql.Stmt
}

func (w *writer) apply(c *store.Change) error {
	tr := &c.Transition
	if r := tr.Run; r != nil {
		res, err := w.updateRun.ExecContext(w.ctx, string(r.State), r.Remaining, r.Unsuccessful, boolArg(r.Cancelling),
			timeArg(r.StartedAt), timeArg(r.FinishedAt), c.RunID)
		if err := affectedOne(res, err); err != nil {
			return fmt.Errorf("update run: %w", err)
		}
	}
	for _, tc := range tr.Tasks {
		t := &tc.Task
		res, err := w.updateTask.ExecContext(w.ctx, string(t.State), t.Attempt, t.Spent, t.PendingNeeds,
			timeArg(t.ReadyAt), timeArg(t.StartedAt), timeArg(t.FinishedAt), intPtrArg(t.ExitCode), t.Message,
			jsonArg(t.Result), c.RunID, tc.Index)
		if err := affectedOne(res, err); err != nil {
			return fmt.Errorf("update task %d: %w", tc.Index, err)
		}
	}
	for _, r := range tr.Records {
		_, err := w.insertEvent.ExecContext(w.ctx, c.RunID, r.Task, timeArg(r.Time), string(r.Kind), r.Attempt,
			intPtrArg(r.ExitCode), r.Message, r.Actor, jsonArg(r.Data))
		if err != nil {
			if code(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
				err = fmt.Errorf("run: %w", store.ErrNotFound)
			}
			return fmt.Errorf("record %s: %w", r.Kind, err)
		}
	}
	for _, a := range c.Attempts {
		_, err := w.upsertAttempt.ExecContext(w.ctx, c.RunID, a.Index, a.Attempt, a.Worker, timeArg(a.StartedAt),
			timeArg(a.FinishedAt), string(a.Outcome), intPtrArg(a.ExitCode), a.Message, a.Log)
		if err != nil {
			if code(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
				err = fmt.Errorf("task: %w", store.ErrNotFound)
			}
			return fmt.Errorf("write attempt %d of task %d: %w", a.Attempt, a.Index, err)
		}
	}
	return nil
}

// affectedOne turns an UPDATE that matched no row into ErrNotFound.
func affectedOne(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// stmts are the writer's hot statements, prepared once on the writer
// connection so Apply does not parse SQL on every call.
type stmts struct {
	updateRun     *sql.Stmt
	updateCounts  *sql.Stmt // updateRun when only the counts changed
	updateTask    *sql.Stmt
	insertEvent   *sql.Stmt
	upsertAttempt *sql.Stmt
	insertRun     *sql.Stmt
	insertTasks   *sql.Stmt // taskBatch rows
	insertFresh   *sql.Stmt // taskBatch fresh rows
	insertCreated *sql.Stmt // taskBatch run_created records
	insertDataset *sql.Stmt // one dataset update
	durations     durationStmts
	fanout        fanoutStmts
}

func (s *stmts) prepare(ctx context.Context, w *sql.DB) error {
	for _, p := range append([]struct {
		dst **sql.Stmt
		sql string
	}{
		{&s.updateRun, `UPDATE runs SET state = ?, remaining = ?, unsuccessful = ?, cancelling = ?,
			started_at = ?, finished_at = ? WHERE id = ?`},
		// Most changes of a run only count its tasks down. SQLite
		// rewrites every index on a column an UPDATE sets, changed or
		// not (runs_by_state, runs_by_pipeline_state, ...: three pages
		// of the WAL against one, checked with sqlite3): this one sets
		// the counts alone, and matches no row when anything else
		// changed, which updateRun then writes.
		{&s.updateCounts, `UPDATE runs SET remaining = ?, unsuccessful = ?
			WHERE id = ? AND state = ? AND cancelling = ? AND started_at IS ? AND finished_at IS ?`},
		{&s.updateTask, updateTaskSQL},
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
		{&s.insertRun, insertRunSQL},
		{&s.insertTasks, taskInsertSQL(taskBatch)},
		{&s.insertFresh, freshInsertSQL(taskBatch)},
		{&s.insertCreated, createdInsertSQL(taskBatch)},
		{&s.insertDataset, insertDatasetUpdateSQL},
		{&s.durations.insert, insertDurationSQL},
	}, s.fanout.list()...) {
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
	for _, st := range append([]*sql.Stmt{s.updateRun, s.updateCounts, s.updateTask, s.insertEvent, s.upsertAttempt, s.insertRun, s.insertTasks, s.insertFresh, s.insertCreated, s.insertDataset, s.durations.insert}, s.fanout.all()...) {
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
	v.CreatedAt = store.NormTime(v.CreatedAt)

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

func scanVersion(row scanner) (store.PipelineVersion, error) {
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

const runCols = `id, pipeline, version_id, trigger, params, interval_start, interval_end, created_at,
	task_count, backfill_id, state, remaining, unsuccessful, cancelling, started_at, finished_at,
	deadline, deadline_state, predicted_finish, critical_path`

func scanRun(row scanner) (store.Run, error) {
	var r store.Run
	var version, backfill sql.NullInt64
	var state string
	var path json.RawMessage
	err := row.Scan(&r.ID, &r.Pipeline, &version, &r.Trigger, jsonCol{&r.Params},
		timeCol{&r.IntervalStart}, timeCol{&r.IntervalEnd}, timeCol{&r.CreatedAt}, &r.TaskCount, &backfill,
		&state, &r.Remaining, &r.Unsuccessful, boolCol{&r.Cancelling}, timeCol{&r.StartedAt}, timeCol{&r.FinishedAt},
		timeCol{&r.Deadline}, &r.DeadlineState, timeCol{&r.PredictedFinish}, jsonCol{&path})
	if err == nil {
		r.CriticalPath, err = store.DecodeCriticalPath(path)
	}
	r.VersionID = version.Int64
	r.BackfillID = backfill.Int64
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

// tasksOfRunSQL reads a run's tasks: one range of the primary key, in its
// order. Tasks are only ever found by their key (run_id, idx), never by
// state (migration 0012 dropped the index by state no query read).
const tasksOfRunSQL = `SELECT ` + taskCols + ` FROM tasks WHERE run_id = ? ORDER BY idx`

// updateTaskSQL writes one task, found by its primary key.
const updateTaskSQL = `UPDATE tasks SET state = ?, attempt = ?, spent = ?, pending_needs = ?, ready_at = ?,
	started_at = ?, finished_at = ?, exit_code = ?, message = ?, result = ? WHERE run_id = ? AND idx = ?`

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
	rows, err := db.r.QueryContext(ctx, tasksOfRunSQL, runID)
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

// eventsSQL reads a page of a run's events, each task-level one with its
// task's id, found by the task's primary key.
const eventsSQL = `SELECT e.seq, e.run_id, coalesce(t.task_id, ''), e.time, e.kind, e.task_idx,
	e.attempt, e.exit_code, e.message, e.actor, e.data
	FROM events e LEFT JOIN tasks t ON t.run_id = e.run_id AND t.idx = e.task_idx
	WHERE e.run_id = ? AND e.seq > ? ORDER BY e.seq LIMIT ?`

// Events returns up to limit events of run runID after seq afterSeq, with
// the task id of task-level events filled in from the tasks table.
func (db *DB) Events(ctx context.Context, runID int64, afterSeq int64, limit int) ([]store.Event, error) {
	if limit <= 0 {
		limit = store.DefaultEventsLimit
	}
	limit = min(limit, store.MaxEventsLimit)
	rows, err := db.r.QueryContext(ctx, eventsSQL, runID, afterSeq, limit)
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
	return db.applyChanges(ctx, nil, changes)
}

// applyChanges is Apply and, with a fence, ApplyFenced: the fence is checked
// first in the same transaction. The writer connection serialises every
// write, so no AcquireLeadership can come between the check and the commit.
func (db *DB) applyChanges(ctx context.Context, fence *store.Fence, changes []store.Change) error {
	for i := range changes {
		if err := store.CheckChange(&changes[i]); err != nil {
			return fmt.Errorf("apply changes to run %d: %w", changes[i].RunID, err)
		}
		if err := store.CheckMaps(&changes[i]); err != nil {
			return fmt.Errorf("apply changes to run %d: %w", changes[i].RunID, err)
		}
		if err := store.CheckArtifacts(&changes[i]); err != nil {
			return fmt.Errorf("apply changes to run %d: %w", changes[i].RunID, err)
		}
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("apply %d changes: %w", len(changes), err)
	}
	defer tx.Rollback()
	if fence != nil {
		if err := checkFence(ctx, tx, *fence); err != nil {
			return fmt.Errorf("apply %d changes: %w", len(changes), err)
		}
	}
	w := writer{
		ctx:           ctx,
		tx:            tx,
		updateRun:     tx.StmtContext(ctx, db.st.updateRun),
		updateCounts:  tx.StmtContext(ctx, db.st.updateCounts),
		updateTask:    tx.StmtContext(ctx, db.st.updateTask),
		insertEvent:   tx.StmtContext(ctx, db.st.insertEvent),
		upsertAttempt: tx.StmtContext(ctx, db.st.upsertAttempt),
		insertDataset: tx.StmtContext(ctx, db.st.insertDataset),
		durations:     db.st.durations.in(ctx, tx),
		maps:          newMapWriter(ctx, tx, &db.st.fanout),
	}
	// A batch often changes one run many times (every completion counts
	// the run's remaining tasks down): only its last state is written.
	// Likewise a task is often changed twice (ready, then started): only
	// its last state in the batch is written.
	lastRun := map[int64]int{}
	w.lastTask = map[taskKey][2]int{}
	for i := range changes {
		if changes[i].Transition.Run != nil {
			lastRun[changes[i].RunID] = i
		}
		for j, tc := range changes[i].Transition.Tasks {
			w.lastTask[taskKey{changes[i].RunID, tc.Index}] = [2]int{i, j}
		}
	}
	ended := false
	for i := range changes {
		w.change = i
		w.skipRun = lastRun[changes[i].RunID] != i
		if err := w.apply(&changes[i]); err != nil {
			return fmt.Errorf("apply changes to run %d: %w", changes[i].RunID, err)
		}
		if r := changes[i].Transition.Run; r != nil && r.State.Terminal() {
			ended = true
		}
	}
	// The durations of earlier commits, when they are due, and this one's
	// when it ends a run (see pendingDurations). Those of earlier commits
	// are pending again if this one fails.
	earlier := db.durs.take(time.Now(), ended)
	committed := false
	if earlier != nil {
		defer func() { db.durs.done(earlier, committed) }()
	}
	due := earlier
	if ended {
		due, w.durs = append(due, w.durs...), nil
	}
	if err := w.durations.record(ctx, due); err != nil {
		return fmt.Errorf("apply %d changes: %w", len(changes), err)
	}
	if err := w.maps.flush(); err != nil {
		return fmt.Errorf("apply %d changes: %w", len(changes), err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("apply %d changes: commit: %w", len(changes), err)
	}
	committed = true
	db.durs.add(w.durs)
	return nil
}

// writer holds one Apply transaction's statements.
type writer struct {
	ctx                                               context.Context
	tx                                                *sql.Tx
	updateRun, updateTask, insertEvent, upsertAttempt *sql.Stmt
	updateCounts                                      *sql.Stmt
	insertDataset                                     *sql.Stmt
	durations                                         durationStmts
	maps                                              *mapWriter
	skipRun                                           bool // a later change of the batch writes the run
	change                                            int  // index of the change being written
	lastTask                                          map[taskKey][2]int
	durs                                              []durationKey // successes of this transaction
}

type taskKey struct {
	run int64
	idx int
}

func (w *writer) apply(c *store.Change) error {
	tr := &c.Transition
	if r := tr.Run; r != nil && !w.skipRun {
		res, err := w.updateCounts.ExecContext(w.ctx, r.Remaining, r.Unsuccessful, c.RunID, string(r.State),
			boolArg(r.Cancelling), timeArg(r.StartedAt), timeArg(r.FinishedAt))
		if err = affectedOne(res, err); errors.Is(err, store.ErrNotFound) {
			res, err = w.updateRun.ExecContext(w.ctx, string(r.State), r.Remaining, r.Unsuccessful, boolArg(r.Cancelling),
				timeArg(r.StartedAt), timeArg(r.FinishedAt), c.RunID)
			err = affectedOne(res, err)
		}
		if err != nil {
			return fmt.Errorf("update run: %w", err)
		}
	}
	for j, tc := range tr.Tasks {
		if w.lastTask != nil && w.lastTask[taskKey{c.RunID, tc.Index}] != [2]int{w.change, j} {
			continue // a later change of the batch writes this task
		}
		t := &tc.Task
		res, err := w.updateTask.ExecContext(w.ctx, string(t.State), t.Attempt, t.Spent, t.PendingNeeds,
			timeArg(t.ReadyAt), timeArg(t.StartedAt), timeArg(t.FinishedAt), intPtrArg(t.ExitCode), store.Text(t.Message),
			jsonArg(t.Result), c.RunID, tc.Index)
		if err := affectedOne(res, err); err != nil {
			return fmt.Errorf("update task %d: %w", tc.Index, err)
		}
	}
	for _, r := range tr.Records {
		_, err := w.insertEvent.ExecContext(w.ctx, c.RunID, r.Task, timeArg(r.Time), string(r.Kind), r.Attempt,
			intPtrArg(r.ExitCode), store.Text(r.Message), store.Text(r.Actor), jsonArg(r.Data))
		if err != nil {
			if code(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
				err = fmt.Errorf("run: %w", store.ErrNotFound)
			}
			return fmt.Errorf("record %s: %w", r.Kind, err)
		}
	}
	for _, a := range c.Attempts {
		_, err := w.upsertAttempt.ExecContext(w.ctx, c.RunID, a.Index, a.Attempt, store.Text(a.Worker), timeArg(a.StartedAt),
			timeArg(a.FinishedAt), string(a.Outcome), intPtrArg(a.ExitCode), store.Text(a.Message), store.Text(a.Log))
		if err != nil {
			if code(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
				err = fmt.Errorf("task: %w", store.ErrNotFound)
			}
			return fmt.Errorf("write attempt %d of task %d: %w", a.Attempt, a.Index, err)
		}
		if a.Outcome == store.OutcomeSucceeded {
			w.durs = append(w.durs, durationKey{c.RunID, a.Index, a.Attempt})
		}
	}
	if len(c.Maps) > 0 {
		if err := w.maps.apply(c.RunID, c.Maps); err != nil {
			return err
		}
	}
	if len(c.Artifacts) > 0 {
		if err := w.artifacts(c.RunID, c.Artifacts); err != nil {
			return err
		}
	}
	if len(c.DatasetUpdates) == 0 {
		return nil
	}
	// dataset_updates.run_id is no foreign key (updates outlive pruned
	// runs), so the run is looked up here.
	var one int
	err := w.tx.QueryRowContext(w.ctx, `SELECT 1 FROM runs WHERE id = ?`, c.RunID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		err = fmt.Errorf("run: %w", store.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("record dataset updates: %w", err)
	}
	updates, err := store.ChangeDatasetUpdates(c)
	if err != nil {
		return err
	}
	for i := range updates {
		var id int64
		if err := w.insertDataset.QueryRowContext(w.ctx, datasetUpdateArgs(&updates[i])...).Scan(&id); err != nil {
			return fmt.Errorf("record update of dataset %q: %w", updates[i].Dataset, err)
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

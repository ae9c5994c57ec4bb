package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// insertDurationSQL records the durations of successful attempts, each
// read from its row (written by Apply), its task's and its run's: per
// attempt, three primary-key lookups and one insert into the clustered
// durations, which the task_durations_trim trigger (migration 0008) follows
// by trimming the task's durations to the newest store.DurationSamples. Its
// one argument is a JSON array of [run_id, idx, attempt] (pendingDurations
// records many at once). An attempt recorded before (its success written
// twice) is the same key and adds nothing.
const insertDurationSQL = `INSERT INTO task_durations (pipeline, task_id, finished_at, run_id, idx, attempt, duration)
	SELECT r.pipeline, t.task_id, a.finished_at, a.run_id, a.idx, a.attempt, max(a.finished_at - a.started_at, 0)
	FROM json_each(?) AS k
	JOIN attempts a ON a.run_id = k.value ->> 0 AND a.idx = k.value ->> 1 AND a.attempt = k.value ->> 2
	JOIN tasks t ON t.run_id = a.run_id AND t.idx = a.idx
	JOIN runs r ON r.id = a.run_id
	WHERE a.outcome = 'succeeded' AND a.started_at IS NOT NULL AND a.finished_at IS NOT NULL
	ON CONFLICT DO NOTHING`

// trimDurationsSQL is what the task_durations_trim trigger runs for a new
// row (pipeline ?1, task ?2), with the number kept as ?3; the plan test
// checks it and that the trigger keeps store.DurationSamples.
const trimDurationsSQL = `DELETE FROM task_durations
	WHERE pipeline = ?1 AND task_id = ?2 AND finished_at < (
		SELECT finished_at FROM task_durations WHERE pipeline = ?1 AND task_id = ?2
		ORDER BY finished_at DESC LIMIT 1 OFFSET ?3 - 1)`

// taskDurationsSQL reads a pipeline's durations in key order (no sort): by
// task, oldest first.
const taskDurationsSQL = `SELECT task_id, duration FROM task_durations WHERE pipeline = ? ORDER BY task_id, finished_at`

// deadlineRunsSQL reads the runs whose deadline is neither met nor missed
// from the partial index of exactly those runs; its WHERE repeats the
// index's, which SQLite needs to prove the index covers the query.
const deadlineRunsSQL = `SELECT ` + runCols + ` FROM runs INDEXED BY runs_deadline_open
	WHERE deadline IS NOT NULL AND deadline_state IN ('', 'on_track', 'at_risk') AND id > ?
	ORDER BY id LIMIT ?`

// durationStmts are the writer's statements that keep task durations.
type durationStmts struct {
	insert *sql.Stmt
}

// in returns the statements bound to transaction tx.
func (s durationStmts) in(ctx context.Context, tx *sql.Tx) durationStmts {
	return durationStmts{insert: tx.StmtContext(ctx, s.insert)}
}

// record adds the durations of attempts, which Apply has written as
// succeeded (nothing for one without a start time to measure from), in one
// statement.
func (s durationStmts) record(ctx context.Context, keys []durationKey) error {
	if len(keys) == 0 {
		return nil
	}
	b := make([]byte, 0, 24*len(keys)+2)
	b = append(b, '[')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = strconv.AppendInt(b, k.run, 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(k.idx), 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(k.attempt), 10)
		b = append(b, ']')
	}
	b = append(b, ']')
	if _, err := s.insert.ExecContext(ctx, string(b)); err != nil {
		return fmt.Errorf("record durations: %w", err)
	}
	return nil
}

// DeadlineRuns reads a page of the partial index of runs whose deadline is
// still judged.
func (db *DB) DeadlineRuns(ctx context.Context, afterID int64, limit int) ([]store.Run, error) {
	if limit <= 0 {
		limit = store.DefaultRunsLimit
	}
	limit = min(limit, store.MaxRunsLimit)
	rows, err := db.r.QueryContext(ctx, deadlineRunsSQL, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("runs with a deadline: %w", err)
	}
	return collect(rows, "runs with a deadline", scanRun)
}

// SetRunDeadline writes the judgement and its records in one IMMEDIATE
// transaction on the writer, after the fence when there is one.
func (db *DB) SetRunDeadline(ctx context.Context, fence *store.Fence, u store.DeadlineUpdate) error {
	path, err := store.CheckDeadlineUpdate(&u)
	if err != nil {
		return err
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("deadline of run %d: %w", u.RunID, err)
	}
	defer tx.Rollback()
	if fence != nil {
		if err := checkFence(ctx, tx, *fence); err != nil {
			return fmt.Errorf("deadline of run %d: %w", u.RunID, err)
		}
	}
	res, err := tx.ExecContext(ctx, `UPDATE runs SET deadline_state = ?, predicted_finish = ?, critical_path = ?
		WHERE id = ? AND deadline_state = ?`,
		u.State, timeArg(u.PredictedFinish), jsonArg(path), u.RunID, u.Expect)
	if err := affectedOne(res, err); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("deadline of run %d: %w", u.RunID, err)
		}
		var state string
		switch err := tx.QueryRowContext(ctx, `SELECT deadline_state FROM runs WHERE id = ?`, u.RunID).Scan(&state); {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("deadline of run %d: %w", u.RunID, store.ErrNotFound)
		case err != nil:
			return fmt.Errorf("deadline of run %d: %w", u.RunID, err)
		}
		return fmt.Errorf("deadline of run %d is %q, not %q: %w", u.RunID, state, u.Expect, store.ErrConflict)
	}
	ins := tx.StmtContext(ctx, db.st.insertEvent)
	for _, r := range u.Records {
		if _, err := ins.ExecContext(ctx, u.RunID, r.Task, timeArg(r.Time), string(r.Kind), r.Attempt,
			intPtrArg(r.ExitCode), store.Text(r.Message), store.Text(r.Actor), jsonArg(r.Data)); err != nil {
			return fmt.Errorf("deadline of run %d: record %s: %w", u.RunID, r.Kind, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("deadline of run %d: commit: %w", u.RunID, err)
	}
	return nil
}

// durationFlushEvery is how long the durations of successful attempts wait
// for the commit that records them (see pendingDurations).
const durationFlushEvery = time.Second

// pendingDurations holds the successful attempts whose durations are not
// recorded yet. Recording each in the commit of its success wrote a page of
// task_durations (and ran the trim trigger) in every commit of a run of
// short tasks, a seventh of its write cost; they are recorded together, in
// one statement: in the first commit a second after the last recording, in
// the commit that ends a run, and before anything reads them
// (TaskDurations) or could delete the attempts they are read from
// (PruneRuns, Close). A crash loses at most a second of samples, which only
// feed predictions. Another process reading the file (a second store on
// it) sees them up to a second late, or when the run ends.
type pendingDurations struct {
	mu       sync.Mutex
	keys     []durationKey
	inflight int       // takes whose transaction has not ended (done)
	last     time.Time // of the last take
}

type durationKey struct {
	run          int64
	idx, attempt int
}

// take returns the pending keys if they are due (or force), for the caller
// to record in its transaction and then hand to done; else nil.
func (p *pendingDurations) take(now time.Time, force bool) []durationKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.keys) == 0 || (!force && now.Sub(p.last) < durationFlushEvery) {
		return nil
	}
	keys := p.keys
	p.keys = nil
	p.last = now
	p.inflight++
	return keys
}

// done ends a take: keys are recorded if its transaction committed, and
// pending again if not.
func (p *pendingDurations) done(keys []durationKey, committed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inflight--
	if !committed {
		p.keys = append(p.keys, keys...)
	}
}

// add queues keys written by a committed transaction.
func (p *pendingDurations) add(keys []durationKey) {
	if len(keys) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = append(p.keys, keys...)
}

// idle reports whether every duration is recorded: none pending, none
// being recorded by a transaction that has not ended.
func (p *pendingDurations) idle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.keys) == 0 && p.inflight == 0
}

// flushDurations records every pending duration, in a transaction of its
// own, and returns once every one is recorded, including those an Apply
// was recording meanwhile: its transaction begins after that Apply's has
// ended (there is one writer connection), and takes what it left pending
// if it failed.
func (db *DB) flushDurations(ctx context.Context) error {
	if db.durs.idle() {
		return nil
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record durations: %w", err)
	}
	defer tx.Rollback()
	keys := db.durs.take(time.Now(), true)
	if keys == nil {
		return nil
	}
	committed := false
	defer func() { db.durs.done(keys, committed) }()
	if err := db.st.durations.in(ctx, tx).record(ctx, keys); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record durations: commit: %w", err)
	}
	committed = true
	return nil
}

// TaskDurations reads one range of the durations index.
func (db *DB) TaskDurations(ctx context.Context, pipeline string) (map[string][]time.Duration, error) {
	if err := db.flushDurations(ctx); err != nil {
		return nil, fmt.Errorf("durations of pipeline %q: %w", pipeline, err)
	}
	rows, err := db.r.QueryContext(ctx, taskDurationsSQL, pipeline)
	if err != nil {
		return nil, fmt.Errorf("durations of pipeline %q: %w", pipeline, err)
	}
	defer rows.Close()
	var ids []string
	var ds []time.Duration
	for rows.Next() {
		var id string
		var us int64
		if err := rows.Scan(&id, &us); err != nil {
			return nil, fmt.Errorf("durations of pipeline %q: %w", pipeline, err)
		}
		ids = append(ids, id)
		ds = append(ds, time.Duration(us)*time.Microsecond)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("durations of pipeline %q: %w", pipeline, err)
	}
	return store.GroupDurations(ids, ds)
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// Apply writes a batch of changes with set-based statements: whatever the
// number of changes, one transaction holds at most seven statements, sent
// together in one pipelined batch (three round trips with BEGIN and COMMIT).
// (Small batches use one-row statements for the tables that get only a few
// rows, in the same pipeline: see defaultSetMin.) The statements:
//
//  1. lock the runs the batch changes, in id order (SELECT ... FOR NO KEY
//     UPDATE), which is also the check that they exist;
//  2. update the run rows from arrays (UPDATE ... FROM unnest);
//  3. update the task rows from arrays;
//  4. insert the timeline records, in the order given, so their seq follows
//     the batch;
//  5. insert or merge the attempts (INSERT ... ON CONFLICT DO UPDATE);
//  6. with dataset updates, take their datasets' advisory locks (see
//     lockDatasetsSQL) and insert them.
//
// Locking the runs first, in a fixed order, makes concurrent Applies that
// touch the same runs wait for each other instead of deadlocking over task
// rows, and makes each run's events commit in seq order.
//
// A set-based statement touches each row once, so the batch is first reduced
// to its effect: the last change of a run row or task row wins (each carries
// the whole row), and the changes of one attempt are merged in order with
// the same rule as the upsert (later non-zero fields win). The result is what
// applying the changes one by one would write.
func (db *DB) Apply(ctx context.Context, changes ...store.Change) error {
	if len(changes) == 0 {
		return nil
	}
	for i := range changes {
		if err := store.CheckChange(&changes[i]); err != nil {
			return fmt.Errorf("apply changes to run %d: %w", changes[i].RunID, err)
		}
	}
	var p applyPlan
	if err := p.build(changes); err != nil {
		return err
	}
	if len(p.runs) == 0 {
		return nil // only empty changes
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("apply %d changes: %w", len(changes), err)
	}
	defer rollback(tx)
	if err := p.write(ctx, tx, db.setMin); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return db.commitFailed(fmt.Errorf("apply %d changes: commit: %w", len(changes), err), p.xid)
	}
	return nil
}

// commitFailed is the error of a COMMIT that failed. An error the server
// answered with (a deferred check, a serialization failure) means it rolled
// back; but a connection that broke once COMMIT was on its way leaves the
// outcome unknown, and retrying blindly could write the batch twice. (pgx's
// SafeToRetry cannot tell: a COMMIT whose answer was lost comes back as
// "conn closed", which it calls safe.) The transaction's id (xid, taken in
// the batch) tells: Committed asks PostgreSQL for its status
// (txid_status), which survives a restart of the server.
func (db *DB) commitFailed(err error, xid int64) error {
	if _, answered := errors.AsType[*pgconn.PgError](err); answered || xid == 0 {
		return err
	}
	return &store.OutcomeUnknownError{Err: err, Committed: func(ctx context.Context) (bool, error) {
		return db.committed(ctx, xid)
	}}
}

// errInProgress says a transaction whose connection broke is not yet known
// to have ended: the server has not noticed the broken connection yet (it
// then rolls it back), or is still recovering.
var errInProgress = errors.New("the transaction is still in progress on the server")

// committed reports whether transaction xid committed, from the server's
// commit log.
func (db *DB) committed(ctx context.Context, xid int64) (bool, error) {
	var status *string
	if err := db.pool.QueryRow(ctx, `SELECT txid_status($1)`, xid).Scan(&status); err != nil {
		return false, fmt.Errorf("ask whether transaction %d committed: %w", xid, err)
	}
	switch {
	case status == nil:
		return false, fmt.Errorf("ask whether transaction %d committed: the server no longer knows it", xid)
	case *status == "committed":
		return true, nil
	case *status == "aborted":
		return false, nil
	}
	// Transient (the caller asks again): pgconn's error class for a
	// connection, which Transient counts.
	return false, fmt.Errorf("ask whether transaction %d committed: %w", xid, &pgconn.PgError{Code: "08000", Message: errInProgress.Error()})
}

type taskKey struct {
	run int64
	idx int
}

type attemptKey struct {
	run          int64
	idx, attempt int
}

// applyPlan is a batch of changes reduced to one array per column and
// statement.
type applyPlan struct {
	runs []int64 // every run the batch changes, sorted, for the lock
	xid  int64   // the writing transaction's id, read by write (see commitFailed)

	// run rows
	runID                           []int64
	runState                        []string
	remaining, unsuccessful         []int32
	cancelling                      []bool
	runStarted, runFinished         []pgtype.Timestamptz
	taskRun                         []int64
	taskIdx, attempt, spent, needs  []int32
	taskState                       []string
	readyAt, taskStarted, taskEnded []pgtype.Timestamptz
	taskExit                        []pgtype.Int4
	taskMessage                     []string
	result                          []pgtype.Text

	// records
	evRun              []int64
	evTask, evAttempt  []int32
	evTime             []pgtype.Timestamptz
	evKind             []string
	evExit             []pgtype.Int4
	evMessage, evActor []string
	evData             []pgtype.Text
	attempts           []store.Attempt // merged, in first-seen order
	attemptRuns        []int64

	// dataset updates, in the order given, and the lock keys of their
	// datasets
	dsName, dsPipeline, dsTask, dsActor []string
	dsAt, dsStart, dsEnd                []pgtype.Timestamptz
	dsRun                               []int64
	dsMeta                              []pgtype.Text
	dsLocks                             []int64

	// map tasks: each map's changes reduced to their effect (maps.go),
	// and the statements that write them
	maps   []*mapPlan
	mapPos map[mapKey]int
	mapSts []statement

	// artifact refs: the last group of each task and item (artifacts.go)
	artKeys   []artifactKey
	artGroups []store.ArtifactGroup
	artPos    map[artifactKey]int
}

func (p *applyPlan) build(changes []store.Change) error {
	runPos := map[int64]int{}      // run id → index in the run arrays
	taskPos := map[taskKey]int{}   // task → index in the task arrays
	attPos := map[attemptKey]int{} // attempt → index in p.attempts
	seen := map[int64]bool{}
	for ci := range changes {
		c := &changes[ci]
		tr := &c.Transition
		if err := store.CheckMaps(c); err != nil {
			return fmt.Errorf("apply changes to run %d: %w", c.RunID, err)
		}
		if err := store.CheckArtifacts(c); err != nil {
			return fmt.Errorf("apply changes to run %d: %w", c.RunID, err)
		}
		if tr.Run == nil && len(tr.Tasks) == 0 && len(tr.Records) == 0 && len(c.Attempts) == 0 && len(c.DatasetUpdates) == 0 &&
			len(c.Maps) == 0 && len(c.Artifacts) == 0 {
			continue
		}
		if !seen[c.RunID] {
			seen[c.RunID] = true
			p.runs = append(p.runs, c.RunID)
		}
		if r := tr.Run; r != nil {
			i, ok := runPos[c.RunID]
			if !ok {
				i = len(p.runID)
				runPos[c.RunID] = i
				p.runID = append(p.runID, c.RunID)
				p.runState = append(p.runState, "")
				p.remaining = append(p.remaining, 0)
				p.unsuccessful = append(p.unsuccessful, 0)
				p.cancelling = append(p.cancelling, false)
				p.runStarted = append(p.runStarted, pgtype.Timestamptz{})
				p.runFinished = append(p.runFinished, pgtype.Timestamptz{})
			}
			p.runState[i] = string(r.State)
			p.remaining[i], p.unsuccessful[i] = int32(r.Remaining), int32(r.Unsuccessful)
			p.cancelling[i] = r.Cancelling
			p.runStarted[i], p.runFinished[i] = tsArg(r.StartedAt), tsArg(r.FinishedAt)
		}
		for _, tc := range tr.Tasks {
			k := taskKey{c.RunID, tc.Index}
			i, ok := taskPos[k]
			if !ok {
				i = len(p.taskRun)
				taskPos[k] = i
				p.taskRun = append(p.taskRun, c.RunID)
				p.taskIdx = append(p.taskIdx, int32(tc.Index))
				p.taskState = append(p.taskState, "")
				p.attempt = append(p.attempt, 0)
				p.spent = append(p.spent, 0)
				p.needs = append(p.needs, 0)
				p.readyAt = append(p.readyAt, pgtype.Timestamptz{})
				p.taskStarted = append(p.taskStarted, pgtype.Timestamptz{})
				p.taskEnded = append(p.taskEnded, pgtype.Timestamptz{})
				p.taskExit = append(p.taskExit, pgtype.Int4{})
				p.taskMessage = append(p.taskMessage, "")
				p.result = append(p.result, pgtype.Text{})
			}
			t := &tc.Task
			p.taskState[i] = string(t.State)
			p.attempt[i], p.spent[i], p.needs[i] = int32(t.Attempt), int32(t.Spent), int32(t.PendingNeeds)
			p.readyAt[i], p.taskStarted[i], p.taskEnded[i] = tsArg(t.ReadyAt), tsArg(t.StartedAt), tsArg(t.FinishedAt)
			p.taskExit[i] = int4Arg(t.ExitCode)
			p.taskMessage[i] = store.Text(t.Message)
			p.result[i] = jsonText(t.Result)
		}
		for _, r := range tr.Records {
			p.evRun = append(p.evRun, c.RunID)
			p.evTask = append(p.evTask, int32(r.Task))
			p.evTime = append(p.evTime, tsArg(r.Time))
			p.evKind = append(p.evKind, string(r.Kind))
			p.evAttempt = append(p.evAttempt, int32(r.Attempt))
			p.evExit = append(p.evExit, int4Arg(r.ExitCode))
			p.evMessage = append(p.evMessage, store.Text(r.Message))
			p.evActor = append(p.evActor, store.Text(r.Actor))
			p.evData = append(p.evData, jsonText(r.Data))
		}
		for _, a := range c.Attempts {
			a.RunID = c.RunID
			k := attemptKey{c.RunID, a.Index, a.Attempt}
			if i, ok := attPos[k]; ok {
				mergeAttempt(&p.attempts[i], &a)
				continue
			}
			attPos[k] = len(p.attempts)
			p.attempts = append(p.attempts, a)
		}
		updates, err := store.ChangeDatasetUpdates(c)
		if err != nil {
			return fmt.Errorf("apply changes to run %d: %w", c.RunID, err)
		}
		for i := range updates {
			u := &updates[i]
			p.dsName = append(p.dsName, u.Dataset)
			p.dsAt = append(p.dsAt, tsArg(u.At))
			p.dsRun = append(p.dsRun, u.RunID)
			p.dsPipeline = append(p.dsPipeline, u.Pipeline)
			p.dsTask = append(p.dsTask, u.TaskID)
			p.dsStart = append(p.dsStart, tsArg(u.IntervalStart))
			p.dsEnd = append(p.dsEnd, tsArg(u.IntervalEnd))
			p.dsActor = append(p.dsActor, u.Actor)
			p.dsMeta = append(p.dsMeta, jsonText(u.Metadata))
		}
		p.addMaps(c.RunID, c.Maps)
		p.addArtifacts(c.RunID, c.Artifacts)
	}
	slices.Sort(p.runs)
	p.dsLocks = datasetLockKeys(p.dsName)
	var err error
	p.mapSts, err = p.mapStatements()
	return err
}

// mergeAttempt applies the upsert's rule to two changes of one attempt in a
// batch: the fields of b that are not zero replace those of a.
func mergeAttempt(a, b *store.Attempt) {
	if b.Worker != "" {
		a.Worker = b.Worker
	}
	if !b.StartedAt.IsZero() {
		a.StartedAt = b.StartedAt
	}
	if !b.FinishedAt.IsZero() {
		a.FinishedAt = b.FinishedAt
	}
	if b.Outcome != "" {
		a.Outcome = b.Outcome
	}
	if b.ExitCode != nil {
		a.ExitCode = b.ExitCode
	}
	if b.Message != "" {
		a.Message = b.Message
	}
	if b.Log != "" {
		a.Log = b.Log
	}
}

const lockRunsSQL = `SELECT id FROM runs WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`

const updateRunsSQL = `UPDATE runs r SET state = u.state, remaining = u.remaining, unsuccessful = u.unsuccessful,
	cancelling = u.cancelling, started_at = u.started_at, finished_at = u.finished_at
	FROM unnest($1::bigint[], $2::text[], $3::int4[], $4::int4[], $5::bool[], $6::timestamptz[], $7::timestamptz[])
		AS u(id, state, remaining, unsuccessful, cancelling, started_at, finished_at)
	WHERE r.id = u.id`

const updateTasksSQL = `UPDATE tasks t SET state = u.state, attempt = u.attempt, spent = u.spent,
	pending_needs = u.pending_needs, ready_at = u.ready_at, started_at = u.started_at, finished_at = u.finished_at,
	exit_code = u.exit_code, message = u.message, result = u.result::jsonb
	FROM unnest($1::bigint[], $2::int4[], $3::text[], $4::int4[], $5::int4[], $6::int4[], $7::timestamptz[],
		$8::timestamptz[], $9::timestamptz[], $10::int4[], $11::text[], $12::text[])
		AS u(run_id, idx, state, attempt, spent, pending_needs, ready_at, started_at, finished_at, exit_code, message, result)
	WHERE t.run_id = u.run_id AND t.idx = u.idx
	RETURNING t.run_id, t.idx`

const insertEventsSQL = `INSERT INTO events (run_id, task_idx, time, kind, attempt, exit_code, message, actor, data)
	SELECT u.run_id, u.task_idx, u.time, u.kind, u.attempt, u.exit_code, u.message, u.actor, u.data::jsonb
	FROM unnest($1::bigint[], $2::int4[], $3::timestamptz[], $4::text[], $5::int4[], $6::int4[], $7::text[],
		$8::text[], $9::text[]) WITH ORDINALITY
		AS u(run_id, task_idx, time, kind, attempt, exit_code, message, actor, data, ord)
	ORDER BY u.ord`

const upsertAttemptsSQL = `INSERT INTO attempts AS a (run_id, idx, attempt, worker, started_at, finished_at, outcome,
		exit_code, message, log)
	SELECT * FROM unnest($1::bigint[], $2::int4[], $3::int4[], $4::text[], $5::timestamptz[], $6::timestamptz[],
		$7::text[], $8::int4[], $9::text[], $10::text[])
	ON CONFLICT (run_id, idx, attempt) DO UPDATE SET
	worker      = coalesce(nullif(excluded.worker, ''), a.worker),
	started_at  = coalesce(excluded.started_at, a.started_at),
	finished_at = coalesce(excluded.finished_at, a.finished_at),
	outcome     = coalesce(nullif(excluded.outcome, ''), a.outcome),
	exit_code   = coalesce(excluded.exit_code, a.exit_code),
	message     = coalesce(nullif(excluded.message, ''), a.message),
	log         = coalesce(nullif(excluded.log, ''), a.log)`

// Scalar forms of the statements above, for tables that get fewer than
// DB.setMin rows in a batch: each set-based statement costs about 100µs of
// fixed server time (unnesting arrays, a join), several times a one-row
// statement, so a small batch is cheaper as one-row statements, pipelined in
// the same batch.
const (
	updateRunSQL = `UPDATE runs SET state = $2, remaining = $3, unsuccessful = $4, cancelling = $5, started_at = $6,
		finished_at = $7 WHERE id = $1`
	updateTaskSQL = `UPDATE tasks SET state = $3, attempt = $4, spent = $5, pending_needs = $6, ready_at = $7,
		started_at = $8, finished_at = $9, exit_code = $10, message = $11, result = $12::text::jsonb
		WHERE run_id = $1 AND idx = $2`
	insertEventSQL = `INSERT INTO events (run_id, task_idx, time, kind, attempt, exit_code, message, actor, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb)`
	upsertAttemptSQL = `INSERT INTO attempts AS a (run_id, idx, attempt, worker, started_at, finished_at, outcome,
		exit_code, message, log) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
	ON CONFLICT (run_id, idx, attempt) DO UPDATE SET
	worker      = coalesce(nullif(excluded.worker, ''), a.worker),
	started_at  = coalesce(excluded.started_at, a.started_at),
	finished_at = coalesce(excluded.finished_at, a.finished_at),
	outcome     = coalesce(nullif(excluded.outcome, ''), a.outcome),
	exit_code   = coalesce(excluded.exit_code, a.exit_code),
	message     = coalesce(nullif(excluded.message, ''), a.message),
	log         = coalesce(nullif(excluded.log, ''), a.log)`
)

// defaultSetMin is the number of rows of one table in a batch from which
// Apply writes them with one set-based statement instead of one statement
// per row (measured: one-row statements win below about 8 rows).
const defaultSetMin = 8

// What a statement of a plan writes, which says how write checks its result.
type stmtKind int

const (
	stmtXid           stmtKind = iota // the transaction's id (applyPlan.xid)
	stmtLock                          // the run lock: every run must come back
	stmtRuns                          // run rows: they exist (locked)
	stmtTasks                         // task rows, set-based: every task must come back
	stmtTask                          // one task row: it must be updated
	stmtEvents                        // records: their runs exist
	stmtAttempts                      // attempts: a missing task is a foreign key violation
	stmtDatasetLock                   // the datasets' advisory locks
	stmtDatasets                      // dataset updates: their runs exist (locked)
	stmtDurations                     // the durations of successful attempts (deadlines.go)
	stmtMapsExist                     // the maps changed without an expansion exist (maps.go)
	stmtMapPut                        // an expanded map's row: a missing task is a foreign key violation
	stmtMapInfo                       // a map's info: the map must exist
	stmtMapWrite                      // a map's values or item rows, artifact refs
	stmtArtifactTasks                 // the tasks of artifact refs exist (artifacts.go)
)

// statement is one SQL statement of a plan with its arguments.
type statement struct {
	sql  string
	args []any
	kind stmtKind
	row  int    // stmtTask: the task's position in the plan's task arrays
	what string // map statements: what it writes, for errors
}

// col returns element i of each column array, for a one-row statement.
func col(i int, arrays ...any) []any {
	out := make([]any, len(arrays))
	for j, a := range arrays {
		switch x := a.(type) {
		case []int64:
			out[j] = x[i]
		case []int32:
			out[j] = x[i]
		case []string:
			out[j] = x[i]
		case []bool:
			out[j] = x[i]
		case []pgtype.Timestamptz:
			out[j] = x[i]
		case []pgtype.Int4:
			out[j] = x[i]
		case []pgtype.Text:
			out[j] = x[i]
		default:
			panic(fmt.Sprintf("postgres: no element of %T", a))
		}
	}
	return out
}

// statements are the plan's statements, in the order write sends them: the
// run lock, then the run rows, task rows, records and attempts that the
// batch has, each table as one set-based statement when it has at least
// setMin rows and as one statement per row otherwise.
func (p *applyPlan) statements(setMin int) []statement {
	sts := []statement{{sql: `SELECT txid_current()`, kind: stmtXid}, {sql: lockRunsSQL, args: []any{p.runs}, kind: stmtLock}}
	add := func(kind, oneKind stmtKind, setSQL, oneSQL string, n int, arrays ...any) {
		if n == 0 {
			return
		}
		if n >= setMin {
			sts = append(sts, statement{sql: setSQL, args: arrays, kind: kind})
			return
		}
		for i := range n {
			sts = append(sts, statement{sql: oneSQL, args: col(i, arrays...), kind: oneKind, row: i})
		}
	}
	add(stmtRuns, stmtRuns, updateRunsSQL, updateRunSQL, len(p.runID),
		p.runID, p.runState, p.remaining, p.unsuccessful, p.cancelling, p.runStarted, p.runFinished)
	add(stmtTasks, stmtTask, updateTasksSQL, updateTaskSQL, len(p.taskRun),
		p.taskRun, p.taskIdx, p.taskState, p.attempt, p.spent, p.needs, p.readyAt, p.taskStarted, p.taskEnded,
		p.taskExit, p.taskMessage, p.result)
	add(stmtEvents, stmtEvents, insertEventsSQL, insertEventSQL, len(p.evRun),
		p.evRun, p.evTask, p.evTime, p.evKind, p.evAttempt, p.evExit, p.evMessage, p.evActor, p.evData)
	n := len(p.attempts)
	run, idx, att := make([]int64, n), make([]int32, n), make([]int32, n)
	worker, outcome, msg, log := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	started, finished := make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
	exit := make([]pgtype.Int4, n)
	for i := range p.attempts {
		a := &p.attempts[i]
		run[i], idx[i], att[i] = a.RunID, int32(a.Index), int32(a.Attempt)
		worker[i], outcome[i], msg[i], log[i] = store.Text(a.Worker), string(a.Outcome), store.Text(a.Message), store.Text(a.Log)
		started[i], finished[i] = tsArg(a.StartedAt), tsArg(a.FinishedAt)
		exit[i] = int4Arg(a.ExitCode)
	}
	add(stmtAttempts, stmtAttempts, upsertAttemptsSQL, upsertAttemptSQL, n,
		run, idx, att, worker, started, finished, outcome, exit, msg, log)
	sts = append(sts, p.durationStatements()...)
	sts = append(sts, p.mapSts...)
	sts = append(sts, p.artifactStatements()...)
	// Dataset updates are few (a producing task's success): always the
	// set-based insert, after the locks of their datasets.
	if len(p.dsName) > 0 {
		sts = append(sts,
			statement{sql: lockDatasetsSQL, args: []any{p.dsLocks}, kind: stmtDatasetLock},
			statement{sql: insertDatasetUpdatesSQL, args: []any{p.dsName, p.dsAt, p.dsRun, p.dsPipeline, p.dsTask,
				p.dsStart, p.dsEnd, p.dsActor, p.dsMeta}, kind: stmtDatasets})
	}
	return sts
}

// write sends the plan's statements in one batch on tx and checks each
// result: a missing run or task is ErrNotFound.
func (p *applyPlan) write(ctx context.Context, tx pgx.Tx, setMin int) error {
	sts := p.statements(setMin)
	b := &pgx.Batch{}
	for _, st := range sts {
		b.Queue(st.sql, st.args...)
	}
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	for _, st := range sts {
		if err := p.check(br, st); err != nil {
			return err
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("apply changes: %w", err)
	}
	return nil
}

// check reads the result of statement st from br.
func (p *applyPlan) check(br pgx.BatchResults, st statement) error {
	switch st.kind {
	case stmtXid:
		if err := br.QueryRow().Scan(&p.xid); err != nil {
			return fmt.Errorf("apply changes: transaction id: %w", err)
		}
	case stmtLock:
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("apply changes: lock runs: %w", err)
		}
		locked, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("apply changes: lock runs: %w", err)
		}
		if len(locked) != len(p.runs) {
			for _, id := range p.runs {
				if _, found := slices.BinarySearch(locked, id); !found {
					return fmt.Errorf("apply changes to run %d: run: %w", id, store.ErrNotFound)
				}
			}
		}
	case stmtRuns:
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("apply changes: update runs: %w", err)
		}
	case stmtTasks:
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("apply changes: update %d tasks: %w", len(p.taskRun), err)
		}
		updated := map[taskKey]bool{}
		var k taskKey
		_, err = pgx.ForEachRow(rows, []any{&k.run, &k.idx}, func() error {
			updated[k] = true
			return nil
		})
		if err != nil {
			return fmt.Errorf("apply changes: update %d tasks: %w", len(p.taskRun), err)
		}
		if len(updated) != len(p.taskRun) {
			for i, run := range p.taskRun {
				if !updated[taskKey{run, int(p.taskIdx[i])}] {
					return fmt.Errorf("apply changes to run %d: update task %d: %w", run, p.taskIdx[i], store.ErrNotFound)
				}
			}
		}
	case stmtTask:
		run, idx := p.taskRun[st.row], p.taskIdx[st.row]
		tag, err := br.Exec()
		if err := affectedOne(tag, err); err != nil {
			return fmt.Errorf("apply changes to run %d: update task %d: %w", run, idx, err)
		}
	case stmtEvents:
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("apply changes: insert records: %w", err)
		}
	case stmtAttempts:
		if _, err := br.Exec(); err != nil {
			if e := pgErr(err); e != nil && e.Code == sqlstateForeignKeyViolation {
				err = fmt.Errorf("task: %w (%s)", store.ErrNotFound, e.Detail)
			}
			return fmt.Errorf("apply changes: write attempts: %w", err)
		}
	case stmtDurations:
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("apply changes: record task durations: %w", err)
		}
	case stmtDatasetLock:
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("apply changes: lock datasets: %w", err)
		}
	case stmtDatasets:
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("apply changes: record %d dataset updates: %w", len(p.dsName), err)
		}
	case stmtMapsExist:
		return p.checkMapsExist(br)
	case stmtArtifactTasks:
		return p.checkArtifactTasks(br)
	case stmtMapPut:
		if _, err := br.Exec(); err != nil {
			if e := pgErr(err); e != nil && e.Code == sqlstateForeignKeyViolation {
				err = fmt.Errorf("task: %w", store.ErrNotFound)
			}
			return fmt.Errorf("apply changes: expand %s: %w", st.what, err)
		}
	case stmtMapInfo:
		tag, err := br.Exec()
		if err := affectedOne(tag, err); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				err = fmt.Errorf("never expanded: %w", err)
			}
			return fmt.Errorf("apply changes: write the info of %s: %w", st.what, err)
		}
	case stmtMapWrite:
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("apply changes: %s: %w", st.what, err)
		}
	}
	return nil
}

// affectedOne turns a statement that changed no row into ErrNotFound.
func affectedOne(tag pgconn.CommandTag, err error) error {
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

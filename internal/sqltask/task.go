package sqltask

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

// Row limits of a task's result (spec.SQL.MaxRows).
const (
	DefaultMaxRows = 100
	MaxMaxRows     = 10000
)

// maxFileSize bounds a task's SQL file: statements, not data.
const maxFileSize = 16 << 20

// Task is the sql kind: it runs a task's statements in one transaction, in
// the executor's process, and publishes the rows of the last result set.
// With a Pool, attempts share connections; without, each opens its own.
//
// MySQL and MariaDB commit by themselves around DDL (CREATE, ALTER, DROP):
// there a task mixing DDL with other statements is not one transaction.
// PostgreSQL and SQLite roll DDL back like the rest.
type Task struct {
	Pool *Pool
}

// taskBody is the Spec.Body of a sql attempt.
type taskBody struct {
	DSN     string `json:"dsn"`
	Query   string `json:"query,omitempty"`
	File    string `json:"file,omitempty"`
	MaxRows int    `json:"max_rows"`
}

// Name implements attempt.Kind.
func (Task) Name() string { return "sql" }

// Body implements attempt.Kind.
func (Task) Body(t *spec.Task) (json.RawMessage, error) {
	q := t.SQL
	switch {
	case q == nil:
		return nil, errors.New("the task has no sql")
	case q.DSN == "":
		return nil, errors.New("sql: dsn is required")
	case q.Query == "" && q.File == "":
		return nil, errors.New("sql: give query or file")
	case q.Query != "" && q.File != "":
		return nil, errors.New("sql: give query or file, not both")
	case q.MaxRows < 0 || q.MaxRows > MaxMaxRows:
		return nil, fmt.Errorf("sql: max_rows must be between 0 and %d, not %d", MaxMaxRows, q.MaxRows)
	}
	maxRows := q.MaxRows
	if maxRows == 0 {
		maxRows = DefaultMaxRows
	}
	return json.Marshal(taskBody{DSN: q.DSN, Query: q.Query, File: q.File, MaxRows: maxRows})
}

// taskResult is the JSON result of a sql attempt.
type taskResult struct {
	RowsAffected int64    `json:"rows_affected"`
	Statements   int      `json:"statements"`
	Columns      []string `json:"columns,omitempty"`
	// Rows is a pointer so that a result set without rows is written
	// as [] beside its columns, and no result set leaves it out.
	Rows      *[][]any `json:"rows,omitempty"`
	Truncated bool     `json:"truncated,omitempty"`
}

// errTimedOut is the cause of an attempt's context ending at its timeout.
var errTimedOut = errors.New("the attempt's timeout passed")

// Run implements attempt.Kind: it runs the statements in one transaction,
// committed only when all of them succeeded. A failed statement, a timeout
// or a stop rolls it back. It returns once the transaction is over: a
// statement the attempt started does not go on changing data after it is
// reported.
func (k Task) Run(ctx context.Context, s *attempt.Spec, h *attempt.Host) attempt.Result {
	var b taskBody
	if err := json.Unmarshal(s.Body, &b); err != nil {
		return attempt.Failedf("read the sql task of the attempt: %v", err)
	}
	maxRows := b.MaxRows
	if maxRows <= 0 {
		maxRows = DefaultMaxRows
	}
	maxRows = min(maxRows, MaxMaxRows)
	out := h.Stdout
	if out == nil {
		out = io.Discard
	}

	query := b.Query
	if b.File != "" {
		text, err := readFile(b.File, h.WorkingDir(s))
		if err != nil {
			return attempt.Failedf("%v", err)
		}
		query = text
	}
	dsn, err := s.Expand(b.DSN)
	if err != nil {
		return attempt.Failedf("dsn: %v", err)
	}
	t, err := parseDSN(dsn, h.WorkingDir(s), false)
	if err != nil {
		return attempt.Failedf("%v", err)
	}
	stmts, err := split(t.dialect, query)
	if err != nil {
		return attempt.Failedf("read the statements: %v", err)
	}
	if len(stmts) == 0 {
		return attempt.Failedf("the task has no statements to run")
	}
	for i, st := range stmts {
		if st.controlsTransaction() {
			return attempt.Failedf("statement %d (line %d: %s): the task runs its statements in one transaction of its own; remove BEGIN, COMMIT and ROLLBACK", i+1, st.line, st.summary)
		}
	}
	args, err := bind(stmts, s.Env)
	if err != nil {
		return attempt.Failedf("%v", err)
	}

	runCtx := ctx
	if d := s.Timeout.D(); d > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeoutCause(ctx, d, errTimedOut)
		defer cancel()
	}
	db, release, err := k.Pool.get(t)
	if err != nil {
		return attempt.Failedf("open %s: %s", t.display, t.connError(err))
	}
	defer release()

	fmt.Fprintf(out, "sql: %d statement(s) on %s\n", len(stmts), t.display)
	sess, err := connect(runCtx, t, db)
	if err != nil {
		if runCtx.Err() != nil {
			return stopped(runCtx, s.Timeout, "before connecting")
		}
		return attempt.Failedf("connect to %s: %s", t.display, t.connError(err))
	}
	res, err := run(runCtx, sess, stmts, args, maxRows, out)
	if err != nil {
		halted := runCtx.Err() != nil
		sess.close(halted)
		if halted {
			return stopped(runCtx, s.Timeout, "rolled back")
		}
		// The log says it too, after the statements that ran, so reading
		// the log alone tells the whole story.
		if h.Stderr != nil {
			fmt.Fprintf(h.Stderr, "sql: %s; rolled back\n", err)
		}
		return attempt.Result{Outcome: attempt.Failed, Message: err.Error() + "; rolled back"}
	}
	if runCtx.Err() != nil {
		// Every statement ended, but the attempt was stopped before the
		// commit: nothing is committed.
		sess.close(true)
		return stopped(runCtx, s.Timeout, "rolled back")
	}
	if err := sess.commit(runCtx); err != nil {
		// A COMMIT is not interrupted, so its failure is the database's
		// (a deferred constraint, a serialization failure).
		sess.close(false)
		if h.Stderr != nil {
			fmt.Fprintf(h.Stderr, "sql: commit: %s; rolled back\n", t.sqlError(err))
		}
		return attempt.Failedf("commit: %s; rolled back", t.sqlError(err))
	}
	sess.close(false)
	data, err := json.Marshal(res)
	if err != nil {
		return attempt.Failedf("encode the result: %v", err)
	}
	fmt.Fprintf(out, "sql: committed; %d row(s) affected\n", res.RowsAffected)
	return attempt.Result{Outcome: attempt.Succeeded, Result: data}
}

// run runs the statements in one transaction, not committed yet. A failed
// statement is an error naming it, with the database's message.
func run(ctx context.Context, sess *session, stmts []statement, args [][]any, maxRows int, out io.Writer) (*taskResult, error) {
	if err := sess.begin(ctx, false); err != nil {
		return nil, fmt.Errorf("begin the transaction: %s", sess.t.sqlError(err))
	}
	res := &taskResult{Statements: len(stmts)}
	for i := range stmts {
		st := &stmts[i]
		start := time.Now()
		var line string
		if st.returnsRows() {
			rows, err := sess.conn.QueryContext(ctx, st.text, args[i]...)
			var rs *resultSet
			if err == nil {
				rs, err = readRows(rows, maxRows)
			}
			if err != nil {
				return nil, statementError(sess.t, i, len(stmts), st, err)
			}
			if st.modifiesRows() {
				res.RowsAffected += int64(rs.count)
			}
			if len(rs.columns) > 0 {
				res.Columns, res.Rows, res.Truncated = rs.columns, &rs.rows, rs.truncated
			}
			line = plural(int64(rs.count), "row") + " returned"
		} else {
			r, err := sess.conn.ExecContext(ctx, st.text, args[i]...)
			if err != nil {
				return nil, statementError(sess.t, i, len(stmts), st, err)
			}
			n, err := r.RowsAffected()
			if err != nil || !st.modifiesRows() {
				n = 0
			}
			res.RowsAffected += n
			line = plural(n, "row") + " affected"
		}
		// The statement as written (its :names, never their values).
		fmt.Fprintf(out, "sql: statement %d/%d (line %d): %s -- %s in %s\n",
			i+1, len(stmts), st.line, st.summary, line, time.Since(start).Round(time.Millisecond))
	}
	return res, nil
}

func statementError(t *target, i, n int, st *statement, err error) error {
	return fmt.Errorf("statement %d/%d (line %d: %s) failed: %s", i+1, n, st.line, st.summary, t.sqlError(err))
}

func plural(n int64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// stopped is the result of an attempt whose context ended before it
// committed: timed out, cancelled or handed back.
func stopped(ctx context.Context, timeout attempt.Duration, what string) attempt.Result {
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errTimedOut):
		return attempt.Result{Outcome: attempt.TimedOut, Message: fmt.Sprintf("timed out after %s: %s", timeout, what)}
	case errors.Is(cause, attempt.ErrLost):
		return attempt.Result{Outcome: attempt.Preempted, Message: "lease lost: " + what}
	case errors.Is(cause, attempt.ErrPreempted):
		return attempt.Result{Outcome: attempt.Preempted, Message: "handed back: " + cause.Error() + "; " + what}
	}
	return attempt.Result{Outcome: attempt.Cancelled, Message: "cancelled: " + what}
}

// readFile reads a task's SQL file, relative to dir.
func readFile(name, dir string) (string, error) {
	if !filepath.IsAbs(name) {
		name = filepath.Join(dir, name)
	}
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("read the sql file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return "", fmt.Errorf("read the sql file %s: %w", name, err)
	}
	if len(data) > maxFileSize {
		return "", fmt.Errorf("the sql file %s is larger than %d bytes", name, maxFileSize)
	}
	return string(data), nil
}

package sqltask

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

// checkTimeout bounds one check of a wait: a query that takes longer is
// not met this time, and the wait's own timeout decides when to give up.
const checkTimeout = 30 * time.Second

// Wait is the sql wait condition (wait.sql): it holds when the query's
// first row has a true first column. It runs the query read-only (a
// read-only transaction, or an SQLite file opened read-only). With a Pool,
// checks reuse connections; without, each check opens its own.
type Wait struct {
	Pool *Pool
}

// waitBody is the Spec.Body of a wait.sql attempt.
type waitBody struct {
	SQL string `json:"sql"`
	DSN string `json:"dsn"`
}

// Name implements attempt.Condition.
func (Wait) Name() string { return "wait.sql" }

// Body implements attempt.Condition.
func (Wait) Body(t *spec.Task) (json.RawMessage, error) {
	w := t.Wait
	switch {
	case w == nil || w.SQL == "":
		return nil, errors.New("the task has no sql wait")
	case w.DSN == "":
		return nil, errors.New("wait: sql needs dsn")
	}
	return json.Marshal(waitBody{SQL: w.SQL, DSN: w.DSN})
}

// Check implements attempt.Condition. A problem that no later check can
// fix (no such DSN form, an unknown parameter, a query the database cannot
// parse) fails the wait; a database that cannot be reached or a query that
// fails otherwise (a table not created yet) is not met, and Seen says why.
func (c Wait) Check(ctx context.Context, s *attempt.Spec, h *attempt.Host, _ json.RawMessage) attempt.Observation {
	var b waitBody
	if err := json.Unmarshal(s.Body, &b); err != nil {
		return attempt.Observation{Fail: fmt.Sprintf("read the sql wait of the attempt: %v", err)}
	}
	dsn, err := s.Expand(b.DSN)
	if err != nil {
		return attempt.Observation{Fail: "dsn: " + err.Error()}
	}
	t, err := parseDSN(dsn, h.WorkingDir(s), true)
	if err != nil {
		return attempt.Observation{Fail: err.Error()}
	}
	stmts, err := split(t.dialect, b.SQL)
	if err != nil {
		return attempt.Observation{Fail: "read the query: " + err.Error()}
	}
	if len(stmts) != 1 {
		return attempt.Observation{Fail: fmt.Sprintf("a sql wait runs one query, not %d statements", len(stmts))}
	}
	if stmts[0].controlsTransaction() {
		return attempt.Observation{Fail: "a sql wait runs a query, not " + stmts[0].verb}
	}
	args, err := bind(stmts, s.Env)
	if err != nil {
		return attempt.Observation{Fail: err.Error()}
	}

	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	db, release, err := c.Pool.get(t)
	if err != nil {
		return attempt.Observation{Seen: "cannot connect: " + shorten(t.connError(err), maxSeen)}
	}
	defer release()
	sess, err := connect(ctx, t, db)
	if err != nil {
		return attempt.Observation{Seen: "cannot connect: " + shorten(t.connError(err), maxSeen)}
	}
	obs := check(ctx, sess, &stmts[0], args[0])
	sess.close(ctx.Err() != nil)
	return obs
}

// check runs the wait's query on sess and says what it saw.
func check(ctx context.Context, sess *session, st *statement, args []any) attempt.Observation {
	if sess.t.dialect != sqlite {
		if err := sess.begin(ctx, true); err != nil {
			return notMet(ctx, sess.t, err)
		}
	}
	rows, err := sess.conn.QueryContext(ctx, st.text, args...)
	if err != nil {
		if isSyntaxError(err) {
			return attempt.Observation{Fail: "the query is not valid SQL: " + sess.t.sqlError(err)}
		}
		return notMet(ctx, sess.t, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return notMet(ctx, sess.t, err)
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return notMet(ctx, sess.t, err)
		}
		return attempt.Observation{Seen: "no row"}
	}
	if len(cols) == 0 {
		return attempt.Observation{Fail: "the query returns no columns; it must select a value, such as SELECT count(*) > 0 FROM ..."}
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return notMet(ctx, sess.t, err)
	}
	switch {
	case vals[0] == nil:
		return attempt.Observation{Seen: "first column is null"}
	case !truthy(vals[0]):
		return attempt.Observation{Seen: "first column is false"}
	}
	types := make([]string, len(cols))
	if cts, err := rows.ColumnTypes(); err == nil {
		for i, ct := range cts {
			types[i] = strings.ToUpper(ct.DatabaseTypeName())
		}
	}
	row := make(map[string]any, len(cols))
	for i, col := range cols {
		row[col] = jsonValue(vals[i], types[i])
	}
	data, err := json.Marshal(row)
	if err != nil {
		return attempt.Observation{Fail: fmt.Sprintf("encode the row: %v", err)}
	}
	return attempt.Observation{Met: true, Seen: "first column is true", Result: data}
}

// notMet is the observation of a check that could not run its query now.
func notMet(ctx context.Context, t *target, err error) attempt.Observation {
	switch {
	case errors.Is(context.Cause(ctx), context.DeadlineExceeded) && ctx.Err() != nil:
		return attempt.Observation{Seen: fmt.Sprintf("the query did not answer within %s", checkTimeout)}
	case ctx.Err() != nil:
		return attempt.Observation{Seen: "the check was stopped"}
	}
	return attempt.Observation{Seen: "query failed: " + shorten(t.sqlError(err), maxSeen)}
}

// maxSeen bounds the database's message in what a check saw: Seen is a
// few words, shown in the timeline.
const maxSeen = 200

// shorten cuts text to n runes.
func shorten(text string, n int) string {
	if r := []rune(text); len(r) > n {
		return string(r[:n]) + "…"
	}
	return text
}

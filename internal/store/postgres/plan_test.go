package postgres

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// literal renders a query argument as SQL, for EXPLAIN EXECUTE.
func literal(t *testing.T, v any) string {
	switch x := v.(type) {
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	case string:
		return "'" + strings.ReplaceAll(x, "'", "''") + "'"
	case []string:
		var parts []string
		for _, s := range x {
			parts = append(parts, literal(t, s))
		}
		return "ARRAY[" + strings.Join(parts, ",") + "]::text[]"
	case []int64:
		var parts []string
		for _, n := range x {
			parts = append(parts, literal(t, n))
		}
		return "ARRAY[" + strings.Join(parts, ",") + "]::bigint[]"
	case time.Time:
		return "'" + x.UTC().Format(time.RFC3339Nano) + "'::timestamptz"
	case []int32:
		return arrayLiteral(t, x, "int4")
	case []bool:
		return arrayLiteral(t, x, "bool")
	case []pgtype.Timestamptz:
		return arrayLiteral(t, x, "timestamptz")
	case []pgtype.Int4:
		return arrayLiteral(t, x, "int4")
	case []pgtype.Text:
		return arrayLiteral(t, x, "text")
	case []pgtype.Int8:
		return arrayLiteral(t, x, "int8")
	case pgtype.Int8:
		if !x.Valid {
			return "NULL::int8"
		}
		return literal(t, x.Int64)
	case bool:
		return strconv.FormatBool(x)
	case int32:
		return strconv.Itoa(int(x))
	case pgtype.Timestamptz:
		if !x.Valid {
			return "NULL::timestamptz"
		}
		return literal(t, x.Time)
	case pgtype.Int4:
		if !x.Valid {
			return "NULL::int4"
		}
		return literal(t, x.Int32)
	case pgtype.Text:
		if !x.Valid {
			return "NULL::text"
		}
		return literal(t, x.String)
	case nil:
		return "NULL"
	}
	t.Fatalf("no literal for %T", v)
	return ""
}

func arrayLiteral[E any](t *testing.T, xs []E, typ string) string {
	var parts []string
	for _, x := range xs {
		parts = append(parts, literal(t, any(x)))
	}
	return "ARRAY[" + strings.Join(parts, ",") + "]::" + typ + "[]"
}

// pagesRead executes q with args as a prepared statement, with a custom or a
// generic plan, under EXPLAIN ANALYZE, and returns the number of buffers it
// touched and the plan's text.
func pagesRead(t *testing.T, pool *pgxpool.Pool, generic bool, q string, args ...any) (int, string) {
	t.Helper()
	ctx := t.Context()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx) // rolled back: the prune query locks rows
	if err != nil {
		t.Fatal(err)
	}
	defer rollback(tx)
	mode := "force_custom_plan"
	if generic {
		mode = "force_generic_plan"
	}
	if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = "+mode); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "PREPARE plan_test AS "+q); err != nil {
		t.Fatalf("prepare %s: %v", q, err)
	}
	defer tx.Exec(ctx, "DEALLOCATE plan_test")
	var lits []string
	for _, a := range args {
		lits = append(lits, literal(t, a))
	}
	exec := "EXECUTE plan_test"
	if len(lits) > 0 {
		exec += "(" + strings.Join(lits, ", ") + ")"
	}
	var out string
	if err := tx.QueryRow(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+exec).Scan(&out); err != nil {
		t.Fatalf("explain %s: %v", exec, err)
	}
	var plans []struct {
		Plan map[string]any `json:"Plan"`
	}
	if err := json.Unmarshal([]byte(out), &plans); err != nil {
		t.Fatal(err)
	}
	p := plans[0].Plan
	n := 0
	for _, k := range []string{"Shared Hit Blocks", "Shared Read Blocks"} {
		if f, ok := p[k].(float64); ok {
			n += int(f)
		}
	}
	var text string
	if err := tx.QueryRow(ctx, "EXPLAIN "+exec).Scan(&text); err == nil {
		rows, _ := tx.Query(ctx, "EXPLAIN "+exec)
		var lines []string
		for rows.Next() {
			var l string
			rows.Scan(&l)
			lines = append(lines, l)
		}
		rows.Close()
		text = strings.Join(lines, "\n")
	}
	return n, text
}

// TestQueriesReadLittle checks the claim that a page, a count of active runs,
// a backfill's counts and a prune that finds nothing cost the same whatever
// the size of the history: on a store with a history of 50,000 finished runs
// (planner statistics up to date), each query, with the plan PostgreSQL
// picks for its values and with the generic plan it may switch to for a
// statement prepared and cached by pgx, touches a few dozen pages, where a
// scan of the runs table would touch well over a thousand.
func TestQueriesReadLittle(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a history of 50,000 runs")
	}
	ctx := t.Context()
	db := openTemp(t)
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	// One task per run: the shape in which a generic plan of Apply's task
	// update was most tempted to leave the primary key for another index of
	// tasks (tasks_by_state, dropped by migration 0012).
	history(t, db, 50_000, 1, old)
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var bruns []store.NewRun
	for i := range 200 {
		nr := benchRun(1)
		nr.Run.Trigger = ""
		nr.Run.State = []engine.RunState{engine.RunQueued, engine.RunSucceeded}[i%2]
		bruns = append(bruns, nr)
	}
	bf, err := db.CreateBackfill(ctx, store.Backfill{Pipeline: "bench", From: from, To: from.Add(time.Hour)}, bruns)
	if err != nil {
		t.Fatal(err)
	}
	active := []engine.RunState{engine.RunQueued, engine.RunRunning}
	for i := range 20 {
		nr := benchRun(3)
		nr.Run.Pipeline = fmt.Sprintf("pipeline-%02d", i)
		nr.Run.State = active[i%2]
		if _, err := db.CreateRun(ctx, nr); err != nil {
			t.Fatal(err)
		}
	}
	var size int
	if err := db.pool.QueryRow(ctx, `SELECT pg_relation_size('runs') / current_setting('block_size')::int`).Scan(&size); err != nil {
		t.Fatal(err)
	}
	t.Logf("runs table: %d pages", size)

	states := []engine.RunState{engine.RunSucceeded, engine.RunFailed}
	filters := []store.RunFilter{
		{},
		{BeforeID: 100},
		{Ascending: true, AfterID: 100},
		{Pipeline: "pipeline-07"},
		{Pipeline: "pipeline-07", BeforeID: 100},
		{Pipeline: "pipeline-07", Ascending: true, AfterID: 40000},
		{States: states[1:]},
		{States: states},
		{States: []engine.RunState{engine.RunQueued}, Ascending: true},
		{States: active},
		{States: active, Ascending: true, AfterID: 5},
		{Pipeline: "pipeline-07", States: states[1:]},
		{Pipeline: "pipeline-07", States: active},
		{Pipeline: "pipeline-07", States: states, BeforeID: 100},
		{Pipeline: "pipeline-07", States: states[1:], Trigger: "schedule"},
		{BackfillID: bf.ID},
		{BackfillID: bf.ID, Pipeline: "bench", Trigger: "backfill"},
		{BackfillID: bf.ID, States: []engine.RunState{engine.RunQueued}, Ascending: true},
		{BackfillID: bf.ID, States: active, Pipeline: "bench"},
		{Trigger: "manual"},
		{Trigger: "schedule", Pipeline: "pipeline-03"},
		{Trigger: "manual", Pipeline: "pipeline-03", Ascending: true, AfterID: 9},
		{Pipeline: "pipeline-07", IntervalStart: old.Add(40_007 * time.Hour)},
		{Pipeline: "pipeline-07", IntervalStart: old.Add(40_007 * time.Hour), States: states, Ascending: true},
		{Pipeline: "pipeline-07", IntervalStart: old.Add(40_007 * time.Hour), Trigger: "schedule"},
		{Pipeline: "pipeline-07", CreatedFrom: old.Add(40_000 * time.Hour), CreatedBefore: old.Add(40_024 * time.Hour)},
		{Pipeline: "pipeline-07", CreatedFrom: old.Add(40_000 * time.Hour), CreatedBefore: old.Add(40_024 * time.Hour), States: states},
	}
	type query struct {
		name string
		q    string
		args []any
		// customOnly: the driver runs the query unprepared, so PostgreSQL
		// plans it for its values each time and never uses a generic plan.
		customOnly bool
	}
	var queries []query
	for _, f := range filters {
		q, args := listRunsQuery(f)
		queries = append(queries, query{fmt.Sprintf("ListRuns %+v", f), q, args, true})
	}
	for _, c := range []struct {
		pipeline string
		states   []engine.RunState
	}{{"pipeline-03", active}, {"", active}} {
		q, args := countRunsQuery(c.pipeline, c.states)
		queries = append(queries, query{name: fmt.Sprintf("CountRuns(%q, %v)", c.pipeline, c.states), q: q, args: args, customOnly: true})
	}
	queries = append(queries,
		query{name: "BackfillCounts", q: `SELECT c.state, c.n FROM backfills b
			LEFT JOIN (SELECT state, count(*) AS n FROM runs WHERE backfill_id = $1 GROUP BY state) c ON true
			WHERE b.id = $1`, args: []any{bf.ID}},
		query{name: "prune with nothing to do", q: pruneSelect, args: []any{old, 100}},
		query{name: "prune a batch", q: pruneSelect, args: []any{old.Add(24 * time.Hour), 100}},
		query{name: "events page", q: `SELECT e.seq FROM events e LEFT JOIN tasks t ON t.run_id = e.run_id AND t.idx = e.task_idx
			WHERE e.run_id = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3`, args: []any{int64(25_000), int64(0), 1000}},
		query{name: "delete attempts", q: `DELETE FROM attempts WHERE run_id = ANY($1)`, args: []any{[]int64{1, 2, 3}}},
		query{name: "delete events", q: `DELETE FROM events WHERE run_id = ANY($1)`, args: []any{[]int64{1, 2, 3}}},
		query{name: "delete tasks", q: `DELETE FROM tasks WHERE run_id = ANY($1)`, args: []any{[]int64{1, 2, 3}}},
		query{name: "tasks of a run", q: taskSelect, args: []any{int64(25_000)}},
		query{name: "tasks that exist", q: artifactTasksSQL, args: []any{[]int64{25_000, 25_001}, []int32{0, 0}}},
	)
	// Apply's statements for a batch of 64 completions of tasks of old runs
	// (a retry of old runs, say), with the locked rows spread over the
	// history.
	var changes []store.Change
	for i := range 64 {
		c := change(int64(1+i*700), 0, 1, old)
		c.Transition.Run = &engine.Run{State: engine.RunRunning}
		changes = append(changes, c)
	}
	var plan applyPlan
	if err := plan.build(changes); err != nil {
		t.Fatal(err)
	}
	for i, st := range plan.statements(1) {
		queries = append(queries, query{name: fmt.Sprintf("Apply statement %d", i+1), q: st.sql, args: st.args})
	}
	// A page reads a few dozen pages; an Apply statement writes 64 rows, each
	// through an index lookup and (for an update) into every index of its
	// table, but must not read more per row as the history grows. (33: a
	// run's change of state writes its 11 indexes of runs, 0016's
	// runs_by_pipeline_created included; changes that move no indexed
	// column, such as a run's remaining count, stay heap-only updates.)
	const budget, perRow = 150, 33
	for _, q := range queries {
		budget := budget
		if strings.HasPrefix(q.name, "Apply") {
			budget = len(changes) * perRow
		}
		for _, generic := range []bool{false, true} {
			if generic && q.customOnly {
				continue
			}
			n, plan := pagesRead(t, db.pool, generic, q.q, q.args...)
			if n > budget || strings.Contains(plan, "Seq Scan") {
				t.Errorf("%s (generic plan: %v): %d pages (budget %d):\n%s", q.name, generic, n, budget, plan)
			} else {
				t.Logf("%s (generic plan: %v): %d pages", q.name, generic, n)
			}
		}
	}
}

package postgres

import (
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// TestDeadlineQueriesReadLittle checks what the deadline watcher reads on
// a store with a history of 50,000 finished runs (a few still judged) and
// the durations of 2,520 tasks (planner statistics up to date): the runs
// still judged come from their partial index, and a pipeline's durations
// from one range of the durations' key, each touching a
// few pages, with the plan PostgreSQL picks for the values and with a
// generic one.
func TestDeadlineQueriesReadLittle(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a history of 50,000 runs")
	}
	ctx := t.Context()
	db := openTemp(t)
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	history(t, db, 50_000, 1, old)
	// Every run had a deadline and was judged; the newest ten still are.
	if _, err := db.pool.Exec(ctx, `UPDATE runs SET deadline = finished_at + interval '1 hour',
		deadline_state = CASE WHEN id > (SELECT max(id) - 10 FROM runs) THEN 'on_track' ELSE 'met' END`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.pool.Exec(ctx, `VACUUM ANALYZE runs`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		name string
		q    string
		args []any
		want string
	}{
		{"runs still judged", deadlineRunsSQL, []any{int64(0), 1000}, "runs_deadline_open"},
		{"a pipeline's durations", taskDurationsSQL, []any{"pipeline-07"}, "task_durations_pkey"},
		{"a pipeline's durations, another", taskDurationsSQL, []any{"other-17"}, "task_durations_pkey"},
		{"trim a task's durations (the trigger's delete)", trimDurationsSQL, []any{"other-17", "task-3", int64(store.DurationSamples)}, "task_durations_pkey"},
	} {
		for _, generic := range []bool{false, true} {
			n, plan := pagesRead(t, db.pool, generic, q.q, q.args...)
			if n > 30 || strings.Contains(plan, "Seq Scan") || !strings.Contains(plan, q.want) {
				t.Errorf("%s (generic plan: %v): %d pages:\n%s", q.name, generic, n, plan)
			} else {
				t.Logf("%s (generic plan: %v): %d pages", q.name, generic, n)
			}
		}
	}
}

// TestDurationsTrigger checks that the trigger of migration 0008 keeps
// exactly store.DurationSamples durations of a task in the table (the
// trigger's OFFSET is written as a number: this holds the two equal).
func TestDurationsTrigger(t *testing.T) {
	db := openTemp(t)
	ctx := t.Context()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range store.DurationSamples + 5 {
		if _, err := db.pool.Exec(ctx, `INSERT INTO task_durations (pipeline, task_id, finished_at, run_id, idx, attempt, duration)
			VALUES ('p', 't', $1, $2, 0, 1, 1000)`, base.Add(time.Duration(i)*time.Second), int64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	var n, oldest int64
	if err := db.pool.QueryRow(ctx, `SELECT count(*), min(run_id) FROM task_durations WHERE pipeline = 'p' AND task_id = 't'`).Scan(&n, &oldest); err != nil {
		t.Fatal(err)
	}
	if n != store.DurationSamples || oldest != 6 {
		t.Errorf("the table keeps %d durations from run %d, want %d from run 6", n, oldest, store.DurationSamples)
	}
}

package sqlite

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// TestDeadlineQueriesUseIndexes checks the plans of what deadlines cost:
// recording a success's duration is three primary-key lookups and an
// insert; trimming a task's durations and reading a pipeline's are searches
// of the table's key (pipeline, task_id, finished_at, ...), in its order; the watcher's runs
// come from the partial index of runs still judged. None scans a table or
// sorts.
func TestDeadlineQueriesUseIndexes(t *testing.T) {
	db := openTemp(t)
	tests := []struct {
		name string
		q    string
		args []any
		want []string // each must be in the plan
	}{
		{"record durations", insertDurationSQL, []any{"[[1,0,1],[1,1,1]]"}, []string{
			"SCAN k VIRTUAL TABLE",
			"SEARCH a USING PRIMARY KEY (run_id=? AND idx=? AND attempt=?)",
			"SEARCH t USING PRIMARY KEY (run_id=? AND idx=?)",
			"SEARCH r USING INTEGER PRIMARY KEY (rowid=?)"}},
		{"trim a task's durations", trimDurationsSQL, []any{"p", "t", 20}, []string{
			"SEARCH task_durations USING PRIMARY KEY (pipeline=? AND task_id=? AND finished_at<?)",
			"SEARCH task_durations USING PRIMARY KEY (pipeline=? AND task_id=?)"}},
		{"a pipeline's durations", taskDurationsSQL, []any{"p"}, []string{
			"SEARCH task_durations USING PRIMARY KEY (pipeline=?)"}},
		{"runs still judged", deadlineRunsSQL, []any{0, 100}, []string{
			"SEARCH runs USING INDEX runs_deadline_open (id>?)"}},
	}
	for _, tt := range tests {
		text := queryPlan(t, db, tt.q, tt.args...)
		bad := strings.Contains(text, "TEMP B-TREE")
		for line := range strings.SplitSeq(text, "\n") {
			if strings.HasPrefix(line, "SCAN ") && !strings.HasPrefix(line, "SCAN k VIRTUAL TABLE") { // the keys given
				bad = true
			}
		}
		for _, w := range tt.want {
			if !strings.Contains(text, w) {
				bad = true
			}
		}
		if bad {
			t.Errorf("%s: plan\n%s\nwant %q, no scan, no sort", tt.name, text, tt.want)
		}
		t.Logf("%s:\n%s", tt.name, text)
	}
}

// TestDurationsTrigger checks that the trigger of migration 0008 keeps
// exactly store.DurationSamples durations of a task in the table (the
// trigger's OFFSET is written as a number: this holds the two equal).
func TestDurationsTrigger(t *testing.T) {
	db := openTemp(t)
	ctx := t.Context()
	for i := range store.DurationSamples + 5 {
		if _, err := db.w.ExecContext(ctx, `INSERT INTO task_durations (pipeline, task_id, finished_at, run_id, idx, attempt, duration)
			VALUES ('p', 't', ?, ?, 0, 1, 1000)`, int64(i+1)*1_000_000, i+1); err != nil {
			t.Fatal(err)
		}
	}
	var n, oldest int64
	if err := db.r.QueryRowContext(ctx, `SELECT count(*), min(run_id) FROM task_durations WHERE pipeline = 'p' AND task_id = 't'`).Scan(&n, &oldest); err != nil {
		t.Fatal(err)
	}
	if n != store.DurationSamples || oldest != 6 {
		t.Errorf("the table keeps %d durations from run %d, want %d from run 6", n, oldest, store.DurationSamples)
	}
}

// TestPendingDurations: successes wait for a commit at least
// durationFlushEvery after the last recording, or one that must record
// them (force); a take whose transaction failed leaves them pending again;
// the store is idle only when nothing is pending or being recorded.
func TestPendingDurations(t *testing.T) {
	var p pendingDurations
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	k := func(i int) durationKey { return durationKey{run: 1, idx: i, attempt: 1} }
	if got := p.take(now, true); got != nil || !p.idle() {
		t.Fatalf("take of nothing = %v, idle %v", got, p.idle())
	}
	p.add([]durationKey{k(0)})
	if p.idle() {
		t.Error("idle with a duration pending")
	}
	// The first is due at once: nothing was recorded before.
	got := p.take(now, false)
	if !slices.Equal(got, []durationKey{k(0)}) {
		t.Fatalf("first take = %v", got)
	}
	if p.idle() {
		t.Error("idle while a take is being recorded")
	}
	p.done(got, true)
	if !p.idle() {
		t.Error("not idle once recorded")
	}
	p.add([]durationKey{k(1)})
	if got := p.take(now.Add(durationFlushEvery-time.Millisecond), false); got != nil {
		t.Errorf("take before the interval = %v", got)
	}
	if got := p.take(now.Add(durationFlushEvery/2), true); !slices.Equal(got, []durationKey{k(1)}) {
		t.Errorf("forced take = %v", got)
	} else {
		p.done(got, false) // its transaction failed: pending again
	}
	p.add([]durationKey{k(2)})
	later := now.Add(durationFlushEvery / 2).Add(durationFlushEvery)
	if got := p.take(later.Add(-time.Millisecond), false); got != nil {
		t.Errorf("take before the interval after a forced one = %v", got)
	}
	got = p.take(later, false)
	if !slices.Equal(got, []durationKey{k(1), k(2)}) {
		t.Errorf("take after the interval = %v, want the failed one and the new one", got)
	}
	p.done(got, true)
	if !p.idle() {
		t.Error("not idle at the end")
	}
}

// TestTaskQueriesUsePrimaryKey checks that every query of this driver that
// reads tasks finds them by the primary key (run_id, idx), never by state:
// what made dropping tasks_by_state (migration 0012) safe.
func TestTaskQueriesUsePrimaryKey(t *testing.T) {
	db := openTemp(t)
	var n int
	if err := db.r.QueryRowContext(t.Context(), `SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'tasks' AND sql IS NOT NULL`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("tasks has %d indexes besides its primary key", n)
	}
	tests := []struct {
		name string
		q    string
		args []any
		want string
	}{
		{"tasks of a run", tasksOfRunSQL, []any{1}, "SEARCH tasks USING PRIMARY KEY (run_id=?)"},
		{"update a task", updateTaskSQL, []any{"running", 1, 0, 0, nil, nil, nil, nil, "", nil, 1, 0}, "SEARCH tasks USING PRIMARY KEY (run_id=? AND idx=?)"},
		{"events page", eventsSQL, []any{1, 0, 100}, "SEARCH t USING PRIMARY KEY (run_id=? AND idx=?)"},
		{"a task exists", taskExistsSQL, []any{1, 0}, "SEARCH tasks USING PRIMARY KEY (run_id=? AND idx=?)"},
		{"record durations", insertDurationSQL, []any{"[[1,0,1]]"}, "SEARCH t USING PRIMARY KEY (run_id=? AND idx=?)"},
		{"prune tasks", `DELETE FROM tasks WHERE run_id IN (?,?)`, []any{1, 2}, "SEARCH tasks USING PRIMARY KEY (run_id=?)"},
	}
	for _, tt := range tests {
		text := queryPlan(t, db, tt.q, tt.args...)
		if !strings.Contains(text, tt.want) || strings.Contains(text, "SCAN tasks") || strings.Contains(text, "SCAN t ") {
			t.Errorf("%s: plan\n%s\nwant %q", tt.name, text, tt.want)
		}
		t.Logf("%s:\n%s", tt.name, text)
	}
}

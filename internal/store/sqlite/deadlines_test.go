package sqlite

import (
	"strings"
	"testing"

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
		{"record a duration", insertDurationSQL, []any{1, 0, 1}, []string{
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
			if strings.HasPrefix(line, "SCAN ") {
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

package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/migrate"
	"github.com/tasuki-dev/tasuki/internal/store/storetest"
)

func openTemp(t testing.TB) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "tasuki.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

func TestConformanceTwoStores(t *testing.T) {
	storetest.RunTwoStores(t, func(t *testing.T) (store.Store, func() store.Store) {
		path := filepath.Join(t.TempDir(), "tasuki.db")
		first, err := Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		return first, func() store.Store {
			db, err := Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := db.Close(); err != nil {
					t.Error(err)
				}
			})
			return db
		}
	})
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "tasuki.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := db.CreateRun(ctx, store.NewRun{Run: store.Run{Pipeline: "p", Trigger: "manual"},
		Tasks: []store.TaskRow{{Index: 0, TaskID: "a"}}})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Apply(ctx, store.Change{RunID: r.ID, Transition: engine.Transition{
		Run:   &engine.Run{State: engine.RunRunning, Remaining: 1},
		Tasks: []engine.TaskChange{{Index: 0, Task: engine.Task{State: engine.TaskRunning, Attempt: 1}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	for range 2 { // twice: a reopen must not apply migrations again
		db, err = Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		got, err := db.Run(ctx, r.ID)
		if err != nil || got.State != engine.RunRunning {
			t.Errorf("after reopen, run = %+v, %v", got, err)
		}
		tasks, err := db.Tasks(ctx, r.ID)
		if err != nil || len(tasks) != 1 || tasks[0].State != engine.TaskRunning {
			t.Errorf("after reopen, tasks = %+v, %v", tasks, err)
		}
		checkSchemaVersions(t, db)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// checkSchemaVersions asserts each known migration is recorded exactly once.
func checkSchemaVersions(t *testing.T, db *DB) {
	t.Helper()
	ms, err := migrate.Load(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.r.QueryContext(t.Context(), "SELECT version, name FROM schema_version ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []migrate.Migration
	for rows.Next() {
		var m migrate.Migration
		if err := rows.Scan(&m.Version, &m.Name); err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if len(got) != len(ms) {
		t.Fatalf("schema_version has %d rows, want %d: %+v", len(got), len(ms), got)
	}
	for i := range ms {
		if got[i].Version != ms[i].Version || got[i].Name != ms[i].Name {
			t.Errorf("schema_version row %d = %+v, want %d %s", i, got[i], ms[i].Version, ms[i].Name)
		}
	}
	if v, err := db.SchemaVersion(t.Context()); err != nil || v != len(ms) {
		t.Errorf("SchemaVersion = %d, %v; want %d", v, err, len(ms))
	}
}

func TestConcurrentOpenOfNewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tasuki.db")
	const n = 4
	dbs := make([]*DB, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { dbs[i], errs[i] = Open(t.Context(), path) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("open %d: %v", i, errs[i])
			continue
		}
		defer dbs[i].Close()
	}
	if !t.Failed() {
		checkSchemaVersions(t, dbs[0])
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	garbage := write("garbage.db", []byte(strings.Repeat("this is not a database\n", 200)))
	regular := write("regular-file", []byte("x"))
	tests := []struct {
		name string
		path string
		is   error    // errors.Is target, when there is one
		says []string // the message must contain each
	}{
		{"garbage file", garbage, ErrNotDatabase, []string{"open store " + garbage, "not a SQLite database"}},
		{"parent is a regular file", filepath.Join(regular, "tasuki.db"), nil, []string{"open store", regular, "not a directory"}},
		{"missing directory", filepath.Join(dir, "nope", "tasuki.db"), nil, []string{filepath.Join(dir, "nope"), "does not exist"}},
		{"path is a directory", dir, nil, []string{"is a directory"}},
		{"empty path", "", nil, []string{"empty path"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := Open(t.Context(), tt.path)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
	// The garbage file is left as it was.
	if b, err := os.ReadFile(garbage); err != nil || !strings.HasPrefix(string(b), "this is not") {
		t.Errorf("garbage file changed: %v", err)
	}
}

func TestUnwritableDirectory(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("permissions do not apply to root; TestOpenErrors covers a parent that is a regular file")
	}
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	_, err := Open(t.Context(), filepath.Join(dir, "tasuki.db"))
	if err == nil || !strings.Contains(err.Error(), "cannot write in directory "+dir) {
		t.Errorf("Open in a read-only directory: %v", err)
	}
}

func TestEmptyFileIsANewStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tasuki.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open of an empty file: %v", err)
	}
	defer db.Close()
	checkSchemaVersions(t, db)
}

func TestForeignDatabaseRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)"); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	_, err = Open(t.Context(), path)
	if !errors.Is(err, ErrNotTasuki) {
		t.Errorf("Open of another program's database: %v, want ErrNotTasuki", err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "tasuki.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := migrate.Load(migrationFiles, "migrations")
	if _, err := db.w.ExecContext(ctx, "INSERT INTO schema_version (version, name, applied_at) VALUES (?, 'from_the_future.sql', 0)", len(ms)+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(ctx, path)
	if !errors.Is(err, migrate.ErrTooNew) {
		t.Fatalf("Open of a newer schema: %v, want migrate.ErrTooNew", err)
	}
	for _, s := range []string{path, "newer than this tasuki supports"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

func TestCheckFindsCorruption(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "tasuki.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	nr := store.NewRun{Run: store.Run{Pipeline: "p", Trigger: "manual"}}
	for i := range 5000 {
		nr.Tasks = append(nr.Tasks, store.TaskRow{Index: i, TaskID: strings.Repeat("x", 40)})
	}
	if _, err := db.CreateRun(ctx, nr); err != nil {
		t.Fatal(err)
	}
	if err := db.Check(ctx); err != nil {
		t.Fatalf("Check of a healthy store: %v", err)
	}
	if err := db.Close(); err != nil { // checkpoints the WAL into the file
		t.Fatal(err)
	}

	// Overwrite pages in the middle of the file, keeping page 1 (header and
	// schema) intact.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	junk := []byte(strings.Repeat("\xde\xad\xbe\xef", 4096))
	if _, err := f.WriteAt(junk, fi.Size()/2/4096*4096); err != nil {
		t.Fatal(err)
	}
	f.Close()

	db, err = Open(ctx, path)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open of a corrupt file: %v, want ErrCorrupt or success", err)
		}
		t.Logf("Open: %v", err)
		return
	}
	defer db.Close()
	err = db.Check(ctx)
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("Check of a corrupt file = %v, want ErrCorrupt", err)
	}
	t.Logf("Check: %v", err)
}

func TestPathWithSpecialCharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my data #1 ?x=y%20")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tasuki store.db")
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not created at %q: %v", path, err)
	}
}

func TestConnectionSettings(t *testing.T) {
	db := openTemp(t)
	ctx := t.Context()
	tests := []struct {
		db     *sql.DB
		pragma string
		want   string
	}{
		{db.w, "journal_mode", "wal"},
		{db.w, "synchronous", "1"}, // NORMAL
		{db.w, "foreign_keys", "1"},
		{db.w, "busy_timeout", "10000"},
		{db.w, "temp_store", "2"}, // MEMORY
		{db.r, "query_only", "1"},
		{db.r, "busy_timeout", "10000"},
	}
	for _, tt := range tests {
		var got string
		if err := tt.db.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("PRAGMA %s = %s, want %s", tt.pragma, got, tt.want)
		}
	}
	if _, err := db.r.ExecContext(ctx, "DELETE FROM runs"); err == nil {
		t.Error("a reader connection could write")
	}
}

// queryPlan returns SQLite's plan for q, one step per line.
func queryPlan(t *testing.T, db *DB, q string, args ...any) string {
	t.Helper()
	rows, err := db.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "\n")
}

// TestListRunsUsesIndexes checks the query plans: each filter must be a
// search of the index chosen for it, bounded by the cursor, never a scan of
// the runs table or a sort of everything that matches, so a page costs the
// same at any history size.
func TestListRunsUsesIndexes(t *testing.T) {
	db := openTemp(t)
	states := []engine.RunState{engine.RunSucceeded, engine.RunFailed}
	tests := []struct {
		f     store.RunFilter
		index string // "" for the primary key
	}{
		{store.RunFilter{}, ""},
		{store.RunFilter{BeforeID: 100}, ""},
		{store.RunFilter{Ascending: true, AfterID: 100}, ""},
		{store.RunFilter{Pipeline: "p"}, "runs_by_pipeline"},
		{store.RunFilter{Pipeline: "p", BeforeID: 100}, "runs_by_pipeline"},
		{store.RunFilter{Pipeline: "p", Ascending: true, AfterID: 100}, "runs_by_pipeline"},
		{store.RunFilter{States: states[:1]}, "runs_by_state"},
		{store.RunFilter{States: states}, "runs_by_state"},
		{store.RunFilter{States: states, Ascending: true, AfterID: 5}, "runs_by_state"},
		{store.RunFilter{Pipeline: "p", States: states[:1]}, "runs_by_pipeline_state"},
		{store.RunFilter{Pipeline: "p", States: states, BeforeID: 100}, "runs_by_pipeline_state"},
		{store.RunFilter{Pipeline: "p", States: states[:1], Ascending: true}, "runs_by_pipeline_state"},
		{store.RunFilter{Pipeline: "p", States: states[:1], Trigger: "schedule"}, "runs_by_pipeline_state"},
		{store.RunFilter{BackfillID: 3}, "runs_by_backfill"},
		{store.RunFilter{BackfillID: 3, Pipeline: "p", Trigger: "backfill"}, "runs_by_backfill"},
		{store.RunFilter{BackfillID: 3, States: states[:1], Ascending: true}, "runs_by_backfill_state"},
		{store.RunFilter{BackfillID: 3, States: states, Pipeline: "p"}, "runs_by_backfill_state"},
		{store.RunFilter{Trigger: "schedule"}, "runs_by_trigger"},
		{store.RunFilter{Trigger: "schedule", States: states}, "runs_by_trigger"},
		{store.RunFilter{Trigger: "schedule", Pipeline: "p"}, "runs_by_pipeline_trigger"},
		{store.RunFilter{Trigger: "schedule", Pipeline: "p", Ascending: true, AfterID: 9}, "runs_by_pipeline_trigger"},
		{store.RunFilter{Pipeline: "p", IntervalStart: time.Unix(3600, 0)}, "runs_by_pipeline_interval"},
		{store.RunFilter{Pipeline: "p", IntervalStart: time.Unix(3600, 0), States: states, Ascending: true}, "runs_by_pipeline_interval"},
		{store.RunFilter{Pipeline: "p", IntervalStart: time.Unix(3600, 0), Trigger: "schedule", BackfillID: 3}, "runs_by_pipeline_interval"},
	}
	for _, tt := range tests {
		q, args := listRunsQuery(tt.f)
		text := queryPlan(t, db, q, args...)
		bad := strings.Contains(text, "SCAN runs") && !strings.Contains(text, "USING")
		if len(tt.f.States) <= 1 && strings.Contains(text, "TEMP B-TREE") {
			bad = true // a single index range must come out in order
		}
		if tt.index != "" && !strings.Contains(text, "USING INDEX "+tt.index+" ") &&
			!strings.Contains(text, "USING COVERING INDEX "+tt.index+" ") {
			bad = true
		}
		if tt.index == "" && strings.Contains(text, "INDEX") {
			bad = true
		}
		if bad {
			t.Errorf("filter %+v: plan does not read %q in order:\n%s", tt.f, tt.index, text)
		}
		t.Logf("filter %+v:\n%s", tt.f, text)
	}
}

// TestServerQueriesUseIndexes checks the plans of the queries a scheduler or
// the pruner runs often: they must read an index, and only the part of it
// they count or delete.
func TestServerQueriesUseIndexes(t *testing.T) {
	db := openTemp(t)
	active := []engine.RunState{engine.RunQueued, engine.RunRunning}
	type query struct {
		name, q string
		args    []any
		want    string
	}
	var tests []query
	for _, c := range []struct {
		pipeline string
		states   []engine.RunState
		want     string
	}{
		{"p", active, "SEARCH runs USING COVERING INDEX runs_by_pipeline_state (pipeline=? AND state=?)"},
		{"", active, "SEARCH runs USING COVERING INDEX runs_by_state (state=?)"},
		{"p", nil, "SEARCH runs USING COVERING INDEX runs_by_pipeline"},
	} {
		q, args := countRunsQuery(c.pipeline, c.states)
		tests = append(tests, query{fmt.Sprintf("CountRuns(%q, %v)", c.pipeline, c.states), q, args, c.want})
	}
	tests = append(tests,
		query{"BackfillCounts", `SELECT state, count(*) FROM runs WHERE backfill_id = ? GROUP BY state`, []any{1},
			"SEARCH runs USING COVERING INDEX runs_by_backfill_state (backfill_id=?)"},
		query{"prune", pruneSelect, []any{int64(1), 100}, "SEARCH runs USING INDEX runs_finished_by_created (created_at<?)"},
		query{"prune attempts", `DELETE FROM attempts WHERE run_id IN (?,?)`, []any{1, 2}, "SEARCH attempts USING PRIMARY KEY (run_id=?)"},
		query{"prune events", `DELETE FROM events WHERE run_id IN (?,?)`, []any{1, 2}, "SEARCH events USING INDEX events_by_run (run_id=?)"},
		query{"prune tasks", `DELETE FROM tasks WHERE run_id IN (?,?)`, []any{1, 2}, "SEARCH tasks USING PRIMARY KEY (run_id=?)"},
		query{"ListBackfills", `SELECT ` + backfillCols + ` FROM backfills WHERE id < ? AND pipeline = ? ORDER BY id DESC LIMIT ?`,
			[]any{100, "p", 10}, "SEARCH backfills USING INDEX backfills_by_pipeline (pipeline=? AND id<?)"},
	)
	for _, tt := range tests {
		text := queryPlan(t, db, tt.q, tt.args...)
		if !strings.Contains(text, tt.want) || strings.Contains(text, "TEMP B-TREE") {
			t.Errorf("%s: plan\n%s\nwant %s without a sort", tt.name, text, tt.want)
		}
		t.Logf("%s:\n%s", tt.name, text)
	}
}

// TestMigrateFromV1 opens a store written by the first schema: its runs read
// back without a backfill, and the new tables work.
func TestMigrateFromV1(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "tasuki.db")
	ms, err := migrate.Load(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	w, err := sql.Open("sqlite", dsn(path, url.Values{"_pragma": {"foreign_keys(1)", "journal_mode(wal)"}, "_txlock": {"immediate"}}))
	if err != nil {
		t.Fatal(err)
	}
	old := &DB{path: path, w: w}
	if err := old.migrate(ctx, ms[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ExecContext(ctx, `INSERT INTO runs (pipeline, trigger, created_at, task_count, state, remaining, unsuccessful)
		VALUES ('p', 'schedule', 1, 1, 'succeeded', 0, 0)`); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ExecContext(ctx, `INSERT INTO tasks (run_id, idx, task_id, state) VALUES (1, 0, 'a', 'succeeded')`); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("open a version 1 store: %v", err)
	}
	defer db.Close()
	checkSchemaVersions(t, db)
	r, err := db.Run(ctx, 1)
	if err != nil || r.BackfillID != 0 || r.Trigger != "schedule" || r.State != engine.RunSucceeded {
		t.Errorf("run from version 1 = %+v, %v", r, err)
	}
	if n, err := db.CountRuns(ctx, "p", []engine.RunState{engine.RunSucceeded}); err != nil || n != 1 {
		t.Errorf("CountRuns = %d, %v", n, err)
	}
	if ids, err := db.PruneRuns(ctx, time.UnixMicro(2), 10); err != nil || len(ids) != 1 || ids[0] != 1 {
		t.Errorf("PruneRuns of the old run = %v, %v", ids, err)
	}
	if err := db.PutPipelineState(ctx, store.PipelineState{Name: "p"}); err != nil {
		t.Error(err)
	}
}

// TestPruneRemovesChildRows looks under the API: the tasks, attempts and
// events of pruned runs are gone from their tables, and nothing else is.
func TestPruneRemovesChildRows(t *testing.T) {
	ctx := t.Context()
	db := openTemp(t)
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	values := make([]json.RawMessage, 2*store.MapChunkItems+1) // three chunks
	for i := range values {
		values[i] = json.RawMessage(strconv.Itoa(i))
	}
	var ids []int64
	for i, st := range []engine.RunState{engine.RunSucceeded, engine.RunRunning, engine.RunFailed, engine.RunQueued} {
		nr := benchRun(5)
		nr.Run.CreatedAt = old.Add(time.Duration(i) * time.Second)
		r, err := db.CreateRun(ctx, nr)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
		err = db.Apply(ctx, store.Change{RunID: r.ID,
			Transition: engine.Transition{Run: &engine.Run{State: st},
				Records: []engine.Record{{Kind: engine.EvTaskStarted, Task: 0, Attempt: 1}, {Kind: engine.EvTaskFailed, Task: 0, Attempt: 1}}},
			Attempts: []store.Attempt{{Index: 0, Attempt: 1}, {Index: 1, Attempt: 1}, {Index: 1, Attempt: 2}},
			Maps: []store.MapChange{{Index: 2, Values: values, Info: &store.MapInfo{Items: len(values)},
				Items: []store.MapItem{{Item: 0, State: engine.TaskSucceeded}, {Item: 1500, State: engine.TaskFailed}}}},
			Artifacts: []store.ArtifactRef{{Index: 0, Item: -1, ArtifactFile: store.ArtifactFile{Path: "a", Digest: "sha256:a"}},
				{Index: 2, Item: 0, ArtifactFile: store.ArtifactFile{Path: "b", Digest: "sha256:b"}}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	pruned, err := db.PruneRuns(ctx, old.Add(time.Hour), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pruned, []int64{ids[0], ids[2]}) {
		t.Fatalf("pruned %v, want %v", pruned, []int64{ids[0], ids[2]})
	}
	for _, table := range []string{"runs", "tasks", "attempts", "events", "task_maps", "map_chunks", "map_items", "artifacts"} {
		col := "run_id"
		if table == "runs" {
			col = "id"
		}
		rows, err := db.r.QueryContext(ctx, "SELECT "+col+", count(*) FROM "+table+" GROUP BY "+col+" ORDER BY "+col)
		if err != nil {
			t.Fatal(err)
		}
		got := map[int64]int{}
		for rows.Next() {
			var id int64
			var n int
			if err := rows.Scan(&id, &n); err != nil {
				t.Fatal(err)
			}
			got[id] = n
		}
		rows.Close()
		want := map[string]map[int64]int{
			"runs": {ids[1]: 1, ids[3]: 1}, "tasks": {ids[1]: 5, ids[3]: 5},
			"attempts": {ids[1]: 3, ids[3]: 3}, "events": {ids[1]: 3, ids[3]: 3},
			"task_maps": {ids[1]: 1, ids[3]: 1}, "map_chunks": {ids[1]: 3, ids[3]: 3}, "map_items": {ids[1]: 2, ids[3]: 2},
			"artifacts": {ids[1]: 2, ids[3]: 2},
		}[table]
		if !maps.Equal(got, want) {
			t.Errorf("%s rows by run = %v, want %v", table, got, want)
		}
	}
}

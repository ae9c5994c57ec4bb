package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

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

// TestListRunsUsesIndexes checks the query plans: each filter must be an
// index search bounded by the cursor, never a scan of the runs table or a
// sort of everything that matches, so a page costs the same at any history
// size.
func TestListRunsUsesIndexes(t *testing.T) {
	db := openTemp(t)
	states := []engine.RunState{engine.RunSucceeded, engine.RunFailed}
	tests := []store.RunFilter{
		{},
		{BeforeID: 100},
		{Pipeline: "p"},
		{Pipeline: "p", BeforeID: 100},
		{States: states[:1]},
		{States: states},
		{Pipeline: "p", States: states[:1]},
		{Pipeline: "p", States: states, BeforeID: 100},
	}
	for _, f := range tests {
		q, args := listRunsQuery(f)
		rows, err := db.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		text := strings.Join(plan, "\n")
		bad := strings.Contains(text, "SCAN runs") && !strings.Contains(text, "USING")
		if len(f.States) <= 1 && strings.Contains(text, "TEMP B-TREE") {
			bad = true // a single index range must come out in order
		}
		if bad {
			t.Errorf("filter %+v: plan does not use an index range:\n%s", f, text)
		}
		t.Logf("filter %+v:\n%s", f, text)
	}
}

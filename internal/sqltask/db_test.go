package sqltask

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
)

// EnvMySQL points the tests at a MySQL or MariaDB server.
const EnvMySQL = "TASUKI_TEST_MYSQL"

// backend is a database the tests run against, with the few statements
// that differ between them.
type backend struct {
	name string
	dsn  string
	// long is a query that runs for about a minute; marker is in its text.
	long string
	// running counts the statements the server runs whose text holds
	// marker, other than its own; "" where the server has no such view.
	running string
	// textType is a text column's type.
	textType string
}

const marker = "tasuki_long_marker"

// forEachBackend runs test against PostgreSQL, MariaDB and SQLite, each in
// a subtest. A server that does not answer skips its subtest, or fails it
// under CI=true.
func forEachBackend(t *testing.T, test func(t *testing.T, b *backend)) {
	pg := pgtest.ServerDSN()
	if !strings.HasPrefix(pg, "postgres://") && !strings.HasPrefix(pg, "postgresql://") {
		pg = pgtest.DefaultDSN
	}
	my := os.Getenv(EnvMySQL)
	if my == "" {
		my = "mysql://root@127.0.0.1:3306/test"
	}
	backends := []backend{
		{
			name: "postgres", dsn: pg,
			long:     "SELECT pg_sleep(60) /* " + marker + " */",
			running:  "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%" + marker + " */' AND state = 'active' AND pid <> pg_backend_pid()",
			textType: "TEXT",
		},
		{
			name: "mysql", dsn: my,
			long:     "SELECT SLEEP(60) /* " + marker + " */",
			running:  "SELECT count(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%" + marker + " */' AND ID <> CONNECTION_ID()",
			textType: "VARCHAR(200)",
		},
		{
			name:     "sqlite",
			long:     "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000000000) SELECT count(*) FROM c /* " + marker + " */",
			textType: "TEXT",
		},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			if b.name == "sqlite" {
				b.dsn = "sqlite://" + filepath.Join(t.TempDir(), "test.db")
			} else {
				requireServer(t, &b)
			}
			test(t, &b)
		})
	}
}

// requireServer skips the test when b's server does not answer, or fails
// it under CI=true.
func requireServer(t *testing.T, b *backend) {
	t.Helper()
	db := adminDB(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		tgt, _ := parseDSN(b.dsn, "", false)
		msg := fmt.Sprintf("%s is not reachable at %s: %s\nTo run these tests, start it there (PostgreSQL: user postgres, trust auth, database test; "+
			"MariaDB: user root without a password, database test), or set %s / %s.",
			b.name, tgt.display, tgt.connError(err), pgtest.EnvDSN, EnvMySQL)
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s\n(CI=true: these tests must run, not be skipped.)", msg)
		}
		t.Skip(msg)
	}
}

// adminDB opens b's database for the test's own setup and checks.
func adminDB(t *testing.T, b *backend) *sql.DB {
	t.Helper()
	tgt, err := parseDSN(b.dsn, "", false)
	if err != nil {
		t.Fatal(err)
	}
	db, err := tgt.open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// table creates a table with a name of its own for the test, dropped when
// the test ends: id INT PRIMARY KEY, name (text).
func table(t *testing.T, b *backend, db *sql.DB) string {
	t.Helper()
	var r [6]byte
	rand.Read(r[:])
	name := "tasuki_test_" + hex.EncodeToString(r[:])
	if _, err := db.Exec(fmt.Sprintf("CREATE TABLE %s (id INT PRIMARY KEY, name %s)", name, b.textType)); err != nil {
		t.Fatalf("create table: %v", err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec("DROP TABLE " + name); err != nil {
			t.Errorf("drop table %s: %v", name, err)
		}
	})
	return name
}

func count(t *testing.T, db *sql.DB, query string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// syncBuffer is an attempt's output, written by Run and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// taskSpec describes an attempt of a sql task, as the runner would.
func taskSpec(t *testing.T, q *spec.SQL, env map[string]string) *attempt.Spec {
	t.Helper()
	body, err := Task{}.Body(&spec.Task{ID: "q", SQL: q})
	if err != nil {
		t.Fatal(err)
	}
	return &attempt.Spec{Kind: "sql", Body: body, Env: env}
}

func runTask(t *testing.T, k Task, s *attempt.Spec) (attempt.Result, string) {
	t.Helper()
	out := &syncBuffer{}
	h := &attempt.Host{Dir: t.TempDir(), Stdout: out, Stderr: out}
	res := k.Run(context.Background(), s, h)
	return res, out.String()
}

func mustSucceed(t *testing.T, res attempt.Result, log string) map[string]any {
	t.Helper()
	if res.Outcome != attempt.Succeeded {
		t.Fatalf("outcome %s: %s\nlog:\n%s", res.Outcome, res.Message, log)
	}
	var out map[string]any
	if err := json.Unmarshal(res.Result, &out); err != nil {
		t.Fatalf("result %s: %v", res.Result, err)
	}
	return out
}

func TestTaskOneTransaction(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		db := adminDB(t, b)
		tbl := table(t, b, db)

		// A failing second statement leaves nothing of the first.
		res, log := runTask(t, Task{}, taskSpec(t, &spec.SQL{DSN: b.dsn, Query: fmt.Sprintf(
			"INSERT INTO %[1]s (id, name) VALUES (1, 'one');\nINSERT INTO %[1]s (id, name) VALUES (1, 'duplicate')", tbl)}, nil))
		if res.Outcome != attempt.Failed {
			t.Fatalf("outcome %s (%s), want failed", res.Outcome, res.Message)
		}
		if !strings.Contains(res.Message, "statement 2/2 (line 2") || !strings.Contains(res.Message, "rolled back") {
			t.Errorf("message %q does not name statement 2 and the rollback", res.Message)
		}
		if n := count(t, db, "SELECT count(*) FROM "+tbl); n != 0 {
			t.Errorf("%d rows after the failed transaction, want 0", n)
		}
		if !strings.Contains(log, "statement 1/2 (line 1): INSERT INTO "+tbl) {
			t.Errorf("log does not show statement 1:\n%s", log)
		}

		// All of them commit together.
		res, log = runTask(t, Task{}, taskSpec(t, &spec.SQL{DSN: b.dsn, Query: fmt.Sprintf(`
			-- three statements
			INSERT INTO %[1]s (id, name) VALUES (1, 'one'), (2, 'two');
			UPDATE %[1]s SET name = 'uno' WHERE id = 1;
			SELECT id, name FROM %[1]s ORDER BY id;`, tbl)}, nil))
		got := mustSucceed(t, res, log)
		want := map[string]any{
			"rows_affected": 3.0, "statements": 3.0,
			"columns": []any{"id", "name"},
			"rows":    []any{[]any{1.0, "uno"}, []any{2.0, "two"}},
		}
		if g, w := fmt.Sprint(got), fmt.Sprint(want); g != w {
			t.Errorf("result\n got %s\nwant %s", g, w)
		}
		if n := count(t, db, "SELECT count(*) FROM "+tbl); n != 2 {
			t.Errorf("%d rows after the commit, want 2", n)
		}
		for _, line := range []string{"statement 1/3 (line 3): INSERT", "2 rows affected", "statement 3/3 (line 5): SELECT id, name", "2 rows returned", "committed"} {
			if !strings.Contains(log, line) {
				t.Errorf("log has no %q:\n%s", line, log)
			}
		}
	})
}

func TestTaskBindsParameters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		db := adminDB(t, b)
		tbl := table(t, b, db)
		evil := "O'Brien'); DROP TABLE " + tbl + "; --"
		env := map[string]string{
			"TASUKI_PARAM_NAME":     evil,
			"TASUKI_PARAM_ID":       "7",
			"TASUKI_INTERVAL_START": "2026-03-01T00:00:00Z",
			"TASUKI_RUN_ID":         "12",
		}
		res, log := runTask(t, Task{}, taskSpec(t, &spec.SQL{DSN: b.dsn, Query: fmt.Sprintf(`
			INSERT INTO %[1]s (id, name) VALUES (:id, :name);
			INSERT INTO %[1]s (id, name) VALUES (:run_id, :interval_start);
			SELECT name, ':id is text' AS note FROM %[1]s WHERE id = :id`, tbl)}, env))
		got := mustSucceed(t, res, log)
		rows, _ := got["rows"].([]any)
		if len(rows) != 1 || fmt.Sprint(rows[0]) != fmt.Sprint([]any{evil, ":id is text"}) {
			t.Errorf("rows = %v, want the value as given", got["rows"])
		}
		if n := count(t, db, "SELECT count(*) FROM "+tbl); n != 2 {
			t.Errorf("%d rows, want 2 (the table must still exist)", n)
		}
		if strings.Contains(log, "O'Brien") || strings.Contains(log, "2026-03-01") {
			t.Errorf("the log shows a parameter's value:\n%s", log)
		}

		res, _ = runTask(t, Task{}, taskSpec(t, &spec.SQL{DSN: b.dsn, Query: "SELECT :nmae"}, env))
		if res.Outcome != attempt.Failed || !strings.Contains(res.Message, "unknown parameter :nmae; available: :id, :interval_start, :name, :run_id") {
			t.Errorf("unknown parameter: %s %q", res.Outcome, res.Message)
		}
	})
}

func TestTaskMaxRows(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		db := adminDB(t, b)
		tbl := table(t, b, db)
		if _, err := db.Exec(fmt.Sprintf("INSERT INTO %s (id, name) VALUES (1, 'a'), (2, NULL), (3, 'c'), (4, 'd'), (5, 'e')", tbl)); err != nil {
			t.Fatal(err)
		}
		res, log := runTask(t, Task{}, taskSpec(t, &spec.SQL{DSN: b.dsn, MaxRows: 2,
			Query: fmt.Sprintf("SELECT id, name, 1.5 AS f FROM %s ORDER BY id", tbl)}, nil))
		got := mustSucceed(t, res, log)
		want := `{"columns":["id","name","f"],"rows":[[1,"a",1.5],[2,null,1.5]],"rows_affected":0,"statements":1,"truncated":true}`
		if g, _ := json.Marshal(got); string(g) != want {
			t.Errorf("result\n got %s\nwant %s", g, want)
		}
		if !strings.Contains(log, "5 rows returned") {
			t.Errorf("log does not count every row:\n%s", log)
		}

		// A result set without rows still has its columns.
		res, _ = runTask(t, Task{}, taskSpec(t, &spec.SQL{DSN: b.dsn, Query: "SELECT id FROM " + tbl + " WHERE id < 0"}, nil))
		if string(res.Result) != `{"rows_affected":0,"statements":1,"columns":["id"],"rows":[]}` {
			t.Errorf("empty result set: %s %s", res.Outcome, res.Result)
		}

		// Exactly max_rows rows: not truncated.
		res, log = runTask(t, Task{}, taskSpec(t, &spec.SQL{DSN: b.dsn, MaxRows: 5, Query: "SELECT id FROM " + tbl}, nil))
		if got := mustSucceed(t, res, log); got["truncated"] != nil || len(got["rows"].([]any)) != 5 {
			t.Errorf("result %s", res.Result)
		}
	})
}

func TestTaskFileAndRelativeSQLite(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "q.sql"), []byte("CREATE TABLE t (x INT);\nINSERT INTO t VALUES (1);\nSELECT x FROM t;\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := taskSpec(t, &spec.SQL{DSN: "sqlite:data/app.db", File: "q.sql"}, nil)
	s.Workdir = "work"
	if err := os.MkdirAll(filepath.Join(dir, "work", "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "q.sql"), filepath.Join(dir, "work", "q.sql")); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	res := Task{}.Run(context.Background(), s, &attempt.Host{Dir: dir, Stdout: out})
	got := mustSucceed(t, res, out.String())
	if fmt.Sprint(got["rows"]) != "[[1]]" || got["rows_affected"] != 1.0 {
		t.Errorf("result %s", res.Result)
	}
	if _, err := os.Stat(filepath.Join(dir, "work", "data", "app.db")); err != nil {
		t.Errorf("the database is not in the working directory: %v", err)
	}

	s = taskSpec(t, &spec.SQL{DSN: "sqlite:app.db", File: "missing.sql"}, nil)
	res = Task{}.Run(context.Background(), s, &attempt.Host{Dir: dir})
	if res.Outcome != attempt.Failed || !strings.Contains(res.Message, "read the sql file") {
		t.Errorf("missing file: %s %q", res.Outcome, res.Message)
	}
}

// waitUntil polls cond (a state of a server that sends no event) until it
// holds, failing the test after a while.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTaskCancelDuringLongQuery(t *testing.T) {
	causes := []struct {
		cause   error
		outcome attempt.Outcome
	}{
		{attempt.ErrCancelled, attempt.Cancelled},
		{attempt.ErrPreempted, attempt.Preempted},
	}
	forEachBackend(t, func(t *testing.T, b *backend) {
		db := adminDB(t, b)
		tbl := table(t, b, db)
		for _, c := range causes {
			t.Run(string(c.outcome), func(t *testing.T) {
				ctx, cancel := context.WithCancelCause(context.Background())
				defer cancel(nil)
				out := &notifyWriter{seen: make(chan struct{}), want: "statement 1/2"}
				s := taskSpec(t, &spec.SQL{DSN: b.dsn, Query: fmt.Sprintf("INSERT INTO %s (id, name) VALUES (1, 'x');\n%s", tbl, b.long)}, nil)
				done := make(chan attempt.Result, 1)
				go func() { done <- Task{}.Run(ctx, s, &attempt.Host{Dir: t.TempDir(), Stdout: out}) }()

				<-out.seen // the first statement ran; the long one starts
				if b.running != "" {
					waitUntil(t, "the long query runs on the server", func() bool { return count(t, db, b.running) == 1 })
				}
				stop := time.Now()
				cancel(c.cause)
				var res attempt.Result
				select {
				case res = <-done:
				case <-time.After(20 * time.Second):
					t.Fatal("Run did not return after the attempt was stopped")
				}
				if d := time.Since(stop); d > 10*time.Second {
					t.Errorf("Run returned %s after the stop", d)
				}
				t.Logf("%s: %s\n%s", res.Outcome, res.Message, out.String())
				if res.Outcome != c.outcome || !strings.Contains(res.Message, "rolled back") {
					t.Errorf("outcome %s (%s), want %s, rolled back", res.Outcome, res.Message, c.outcome)
				}
				if n := count(t, db, "SELECT count(*) FROM "+tbl); n != 0 {
					t.Errorf("%d rows after the stop, want 0", n)
				}
				if b.running != "" {
					waitUntil(t, "the long query is gone from the server", func() bool { return count(t, db, b.running) == 0 })
				}
			})
		}
	})
}

func TestTaskTimeout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		s := taskSpec(t, &spec.SQL{DSN: b.dsn, Query: b.long}, nil)
		s.Timeout = attempt.Duration(300 * time.Millisecond)
		start := time.Now()
		res, _ := runTask(t, Task{}, s)
		if res.Outcome != attempt.TimedOut || !strings.Contains(res.Message, "timed out after 300ms") {
			t.Errorf("outcome %s (%s), want timed_out", res.Outcome, res.Message)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("took %s", d)
		}
	})
}

// notifyWriter closes seen once what it was written holds want.
type notifyWriter struct {
	syncBuffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	n, err := w.syncBuffer.Write(p)
	if strings.Contains(w.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

// waitSpec describes an attempt of a sql wait.
func waitSpec(t *testing.T, dsn, query string, env map[string]string) *attempt.Spec {
	t.Helper()
	body, err := Wait{}.Body(&spec.Task{ID: "w", Wait: &spec.Wait{SQL: query, DSN: dsn}})
	if err != nil {
		t.Fatal(err)
	}
	return &attempt.Spec{Kind: "wait.sql", Body: body, Env: env}
}

func TestWaitFalseThenTrue(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		db := adminDB(t, b)
		tbl := table(t, b, db)
		pool := NewPool()
		defer pool.Close()
		env := map[string]string{"TASUKI_PARAM_ID": "3"}
		h := &attempt.Host{Dir: t.TempDir()}
		ctx := context.Background()
		for _, w := range []Wait{{}, {Pool: pool}} {
			if _, err := db.Exec("DELETE FROM " + tbl); err != nil {
				t.Fatal(err)
			}
			counted := waitSpec(t, b.dsn, fmt.Sprintf("SELECT count(*) > 0 AS ready FROM %s WHERE id = :id", tbl), env)
			row := waitSpec(t, b.dsn, fmt.Sprintf("SELECT name, id FROM %s WHERE id = :id", tbl), env)

			if obs := w.Check(ctx, counted, h, nil); obs.Met || obs.Fail != "" || obs.Seen != "first column is false" {
				t.Errorf("before the insert: %+v", obs)
			}
			if obs := w.Check(ctx, row, h, nil); obs.Met || obs.Fail != "" || obs.Seen != "no row" {
				t.Errorf("before the insert: %+v", obs)
			}
			if _, err := db.Exec(fmt.Sprintf("INSERT INTO %s (id, name) VALUES (3, '1')", tbl)); err != nil {
				t.Fatal(err)
			}
			obs := w.Check(ctx, counted, h, nil)
			if !obs.Met || obs.Fail != "" {
				t.Fatalf("after the insert: %+v", obs)
			}
			var got map[string]any
			if err := json.Unmarshal(obs.Result, &got); err != nil || (got["ready"] != true && got["ready"] != 1.0) {
				t.Errorf("result %s (%v)", obs.Result, err)
			}
			obs = w.Check(ctx, row, h, nil)
			if !obs.Met || string(obs.Result) != `{"id":3,"name":"1"}` {
				t.Errorf("row wait after the insert: %+v, result %s", obs, obs.Result)
			}
		}
		if len(pool.dbs) != 1 {
			t.Errorf("the pool holds %d databases, want 1", len(pool.dbs))
		}
	})
}

func TestWaitIsReadOnlyAndReportsProblems(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b *backend) {
		db := adminDB(t, b)
		tbl := table(t, b, db)
		h := &attempt.Host{Dir: t.TempDir()}
		ctx := context.Background()

		obs := Wait{}.Check(ctx, waitSpec(t, b.dsn, fmt.Sprintf("INSERT INTO %s (id, name) VALUES (9, 'x') RETURNING id", tbl), nil), h, nil)
		if obs.Met || !strings.HasPrefix(obs.Seen, "query failed: ") {
			t.Errorf("a writing query: %+v", obs)
		}
		if n := count(t, db, "SELECT count(*) FROM "+tbl); n != 0 {
			t.Errorf("the wait wrote %d rows", n)
		}

		obs = Wait{}.Check(ctx, waitSpec(t, b.dsn, "SELECT 1 FROM tasuki_no_such_table_x", nil), h, nil)
		if obs.Met || obs.Fail != "" || !strings.HasPrefix(obs.Seen, "query failed: ") {
			t.Errorf("a missing table is not met (it may be created later): %+v", obs)
		}
		obs = Wait{}.Check(ctx, waitSpec(t, b.dsn, "SELEC 1", nil), h, nil)
		if !strings.Contains(obs.Fail, "not valid SQL") {
			t.Errorf("a syntax error fails the wait: %+v", obs)
		}
		obs = Wait{}.Check(ctx, waitSpec(t, b.dsn, "SELECT :nope", nil), h, nil)
		if !strings.Contains(obs.Fail, "unknown parameter :nope") {
			t.Errorf("an unknown parameter fails the wait: %+v", obs)
		}
		obs = Wait{}.Check(ctx, waitSpec(t, b.dsn, "SELECT 1; SELECT 2", nil), h, nil)
		if !strings.Contains(obs.Fail, "one query") {
			t.Errorf("two statements fail the wait: %+v", obs)
		}
		obs = Wait{}.Check(ctx, waitSpec(t, b.dsn, "SELECT NULL", nil), h, nil)
		if obs.Met || obs.Seen != "first column is null" {
			t.Errorf("null: %+v", obs)
		}
	})
}

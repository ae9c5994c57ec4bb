package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/migrate"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
	"github.com/tasuki-dev/tasuki/internal/store/storetest"
)

// openTemp opens a store in a schema of the test's own.
func openTemp(t testing.TB) *DB {
	t.Helper()
	return openDSN(t, pgtest.DSN(t))
}

func openDSN(t testing.TB, dsn string) *DB {
	t.Helper()
	db, err := Open(context.Background(), dsn)
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
		dsn := pgtest.DSN(t)
		first, err := Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		return first, func() store.Store { return openDSN(t, dsn) }
	})
}

// TestConformanceSetBased runs the suite again with Apply writing every
// table of a batch with its set-based statement (the suite's batches are
// small, so by default they mostly take the one-row statements), and with
// the planner told to avoid sequential scans, hash and merge joins: on the
// suite's small tables PostgreSQL would otherwise pick plans it never uses
// on a real history, and the plans a large store runs (index scans, nested
// loops, which visit rows in the order of the statement's arrays) would go
// untested. That is, for example, what shows that Apply's run locks keep
// concurrent batches from deadlocking.
func TestConformanceSetBased(t *testing.T) {
	if testing.Short() {
		t.Skip("the suite runs once in -short mode")
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		db := openDSN(t, withOptions(pgtest.DSN(t), "-c enable_seqscan=off -c enable_hashjoin=off -c enable_mergejoin=off"))
		db.setMin = 1
		return db
	})
}

// withOptions adds server options (the "options" connection parameter) to a
// DSN.
func withOptions(dsn, options string) string { return withParam(dsn, "options", options) }

// withParam adds a connection parameter to a URL or keyword/value DSN.
func withParam(dsn, key, value string) string {
	if strings.Contains(dsn, "://") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		// pgx reads "+" literally: spaces must be %20.
		return dsn + sep + key + "=" + strings.ReplaceAll(url.QueryEscape(value), "+", "%20")
	}
	return dsn + " " + key + "='" + strings.ReplaceAll(value, "'", `\'`) + "'"
}

// rawPool connects to dsn without migrating anything.
func rawPool(t *testing.T, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// checkSchemaVersions asserts each known migration is recorded exactly once.
func checkSchemaVersions(t *testing.T, db *DB) {
	t.Helper()
	ms, err := migrate.Load(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.pool.Query(t.Context(), "SELECT version, name FROM schema_version ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	var got []migrate.Migration
	for rows.Next() {
		var m migrate.Migration
		if err := rows.Scan(&m.Version, &m.Name); err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
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

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	db, err := Open(ctx, dsn)
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
	db.Close()
	for range 2 { // twice: a reopen must not apply migrations again
		db, err = Open(ctx, dsn)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		got, err := db.Run(ctx, r.ID)
		if err != nil || got.State != engine.RunRunning {
			t.Errorf("after reopen, run = %+v, %v", got, err)
		}
		checkSchemaVersions(t, db)
		db.Close()
	}
}

// TestConcurrentOpen starts several servers against one new database at
// once: each migration is applied exactly once, and every Open succeeds.
func TestConcurrentOpen(t *testing.T) {
	dsn := pgtest.DSN(t)
	const n = 6
	dbs := make([]*DB, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			dbs[i], errs[i] = Open(t.Context(), dsn)
		})
	}
	close(start)
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

// TestMigrateFromV1 is the upgrade path: a database at migration 1 with data
// in every table is opened by this binary, which applies the rest; the data
// reads back intact and the new tables and columns work with it.
func TestMigrateFromV1(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	ms, err := migrate.Load(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	old := &DB{pool: rawPool(t, dsn), target: "v1"}
	if err := old.migrate(ctx, ms[:1]); err != nil {
		t.Fatal(err)
	}
	if v, err := old.schemaVersion(ctx); err != nil || v != 1 {
		t.Fatalf("schema version after migration 1 = %d, %v", v, err)
	}
	// What a version-1 tasuki wrote.
	created := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	for _, q := range []string{
		`INSERT INTO pipeline_versions (pipeline, hash, file, source, created_at)
			VALUES ('p', 'abc', 'p.yaml', 'name: p', '2026-01-02 03:04:05.123456+00')`,
		`INSERT INTO runs (pipeline, version_id, trigger, params, interval_start, interval_end, created_at, task_count,
			state, remaining, unsuccessful, started_at, finished_at)
			VALUES ('p', 1, 'schedule', '{"day": "2026-01-01"}', '2026-01-01', '2026-01-02', '2026-01-02 03:04:05.123456+00',
				2, 'succeeded', 0, 0, '2026-01-02 03:04:06+00', '2026-01-02 03:05:00+00')`,
		`INSERT INTO runs (pipeline, trigger, created_at, task_count, state, remaining, unsuccessful)
			VALUES ('p', 'manual', '2026-01-02 03:04:05.123456+00', 0, 'queued', 0, 0)`,
		`INSERT INTO tasks (run_id, idx, task_id, state, attempt, spent, exit_code, result)
			VALUES (1, 0, 'a', 'succeeded', 1, 1, 0, '{"rows": 3}'), (1, 1, 'b', 'succeeded', 2, 2, 0, NULL)`,
		`INSERT INTO attempts (run_id, idx, attempt, worker, outcome, exit_code, log)
			VALUES (1, 0, 1, 'w', 'succeeded', 0, 'logs/1/0/1'), (1, 1, 1, 'w', 'failed', 1, ''), (1, 1, 2, 'w', 'succeeded', 0, '')`,
		`INSERT INTO events (run_id, task_idx, time, kind, actor) VALUES (1, -1, '2026-01-02 03:04:05.123456+00', 'run_created', 'alice')`,
		`INSERT INTO events (run_id, task_idx, time, kind, attempt) VALUES (1, 0, '2026-01-02 03:04:07+00', 'task_succeeded', 1)`,
	} {
		if _, err := old.pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	old.pool.Close()

	db := openDSN(t, dsn)
	checkSchemaVersions(t, db)
	r, err := db.Run(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.BackfillID != 0 || r.Trigger != "schedule" || r.State != engine.RunSucceeded || r.VersionID != 1 ||
		!r.CreatedAt.Equal(created) || string(r.Params) != `{"day": "2026-01-01"}` || r.TaskCount != 2 ||
		!r.IntervalStart.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("run from version 1 = %+v", r)
	}
	tasks, err := db.Tasks(ctx, 1)
	if err != nil || len(tasks) != 2 || tasks[0].TaskID != "a" || string(tasks[0].Result) != `{"rows": 3}` || tasks[1].Attempt != 2 {
		t.Errorf("tasks from version 1 = %+v, %v", tasks, err)
	}
	atts, err := db.Attempts(ctx, 1, -1)
	if err != nil || len(atts) != 3 || atts[0].Log != "logs/1/0/1" || atts[1].Outcome != store.OutcomeFailed {
		t.Errorf("attempts from version 1 = %+v, %v", atts, err)
	}
	evs, err := db.Events(ctx, 1, 0, 0)
	if err != nil || len(evs) != 2 || evs[0].Actor != "alice" || evs[1].TaskID != "a" {
		t.Errorf("events from version 1 = %+v, %v", evs, err)
	}
	// The new parts work with the old rows: the registry, scheduled runs
	// next to old ones (the unique index still holds), queue reads, counts,
	// backfills and pruning.
	if err := db.PutPipelineState(ctx, store.PipelineState{Name: "p", VersionID: 1}); err != nil {
		t.Fatal(err)
	}
	_, err = db.CreateRun(ctx, store.NewRun{Run: store.Run{Pipeline: "p", Trigger: store.TriggerSchedule,
		IntervalStart: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, Schedule: &store.ScheduleAdvance{}})
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("scheduled run for an interval a version-1 run has: %v, want ErrConflict", err)
	}
	if runs, err := db.ListRuns(ctx, store.RunFilter{Pipeline: "p", States: []engine.RunState{engine.RunQueued}, Ascending: true}); err != nil || len(runs) != 1 || runs[0].ID != 2 {
		t.Errorf("queue of version-1 runs = %+v, %v", runs, err)
	}
	if n, err := db.CountRuns(ctx, "p", []engine.RunState{engine.RunSucceeded}); err != nil || n != 1 {
		t.Errorf("CountRuns = %d, %v", n, err)
	}
	from := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	if _, err := db.CreateBackfill(ctx, store.Backfill{Pipeline: "p", From: from, To: from.Add(time.Hour)},
		[]store.NewRun{{Run: store.Run{IntervalStart: from, IntervalEnd: from.Add(time.Hour)}}}); err != nil {
		t.Errorf("CreateBackfill: %v", err)
	}
	if ids, err := db.PruneRuns(ctx, created.Add(time.Second), 10); err != nil || !slices.Equal(ids, []int64{1}) {
		t.Errorf("PruneRuns of the old run = %v, %v", ids, err)
	}
	// New runs continue the old ids.
	nr, err := db.CreateRun(ctx, store.NewRun{Run: store.Run{Pipeline: "p", Trigger: "manual"}})
	if err != nil || nr.ID <= 3 {
		t.Errorf("new run = %+v, %v; want an id after the old runs and the backfill's", nr, err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	db := openDSN(t, dsn)
	ms, _ := migrate.Load(migrationFiles, "migrations")
	if _, err := db.pool.Exec(ctx, "INSERT INTO schema_version (version, name) VALUES ($1, 'from_the_future.sql')", len(ms)+1); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctx, dsn)
	if !errors.Is(err, migrate.ErrTooNew) {
		t.Fatalf("Open of a newer schema: %v, want migrate.ErrTooNew", err)
	}
	for _, s := range []string{"127.0.0.1", "newer than this tasuki supports"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

func TestForeignSchemaRefused(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.DSN(t)
	pool := rawPool(t, dsn)
	if _, err := pool.Exec(ctx, "CREATE TABLE customers (id bigint PRIMARY KEY, name text)"); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctx, dsn)
	if !errors.Is(err, ErrNotTasuki) {
		t.Errorf("Open of another program's schema: %v, want ErrNotTasuki", err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()").Scan(&n); err != nil || n != 1 {
		t.Errorf("the schema has %d tables (%v), want only the program's own", n, err)
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name string
		dsn  string
		says []string
	}{
		{"unreachable", "postgres://tasuki:s3cret-pw@127.0.0.1:1/tasuki?connect_timeout=5", []string{"127.0.0.1", "connect"}},
		{"bad DSN", "postgres://tasuki:s3cret-pw@127.0.0.1:5432/tasuki?sslmode=sometimes", []string{"parse PostgreSQL DSN"}},
		{"bad keyword DSN", "host=127.0.0.1 password=s3cret-pw port=notaport", []string{"parse PostgreSQL DSN"}},
		{"missing schema", withOptions(pgtest.ServerDSN(), "-c search_path=tasuki_no_such_schema"), []string{"no schema", "search_path"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := Open(t.Context(), tt.dsn)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if strings.Contains(err.Error(), "s3cret-pw") {
				t.Errorf("error %q shows the password", err)
			}
		})
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
		rows, err := db.pool.Query(ctx, "SELECT "+col+", count(*) FROM "+table+" GROUP BY "+col+" ORDER BY "+col)
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

// TestPruneSkipsRunsInUse: a run whose row an Apply holds locked (it is
// being retried, say) is passed over, not waited for.
func TestPruneSkipsRunsInUse(t *testing.T) {
	ctx := t.Context()
	db := openTemp(t)
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	var ids []int64
	for i := range 2 {
		nr := benchRun(1)
		nr.Run.State = engine.RunSucceeded
		nr.Run.CreatedAt = old.Add(time.Duration(i) * time.Second)
		r, err := db.CreateRun(ctx, nr)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rollback(tx)
	if _, err := tx.Exec(ctx, lockRunsSQL, []int64{ids[0]}); err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pruned, err := db.PruneRuns(pctx, old.Add(time.Hour), 0)
	if err != nil || !slices.Equal(pruned, ids[1:]) {
		t.Errorf("PruneRuns while run %d is locked = %v, %v; want %v", ids[0], pruned, err, ids[1:])
	}
}

// TestBackfillIDsWhileOthersCreate: a backfill's runs have increasing ids in
// the order given even while other runs take ids from the same sequence.
func TestBackfillIDsWhileOthersCreate(t *testing.T) {
	ctx := t.Context()
	db := openTemp(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := db.CreateRun(ctx, benchRun(2)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var runs []store.NewRun
	for i := range 500 {
		nr := benchRun(2)
		nr.Run.Trigger = ""
		nr.Run.Params = []byte(fmt.Sprintf(`{"i": %d}`, i))
		runs = append(runs, nr)
	}
	b, err := db.CreateBackfill(ctx, store.Backfill{Pipeline: "bench", From: from, To: from.Add(time.Hour)}, runs)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	listed, err := db.ListRuns(ctx, store.RunFilter{BackfillID: b.ID, Ascending: true, Limit: 1000})
	if err != nil || len(listed) != 500 {
		t.Fatalf("ListRuns = %d, %v", len(listed), err)
	}
	for i, r := range listed {
		if string(r.Params) != fmt.Sprintf(`{"i": %d}`, i) {
			t.Fatalf("run %d (id %d) has params %s", i, r.ID, r.Params)
		}
	}
}

// TestListRunsNotPrepared: the run list and the run count are planned for
// their values on every call (see ListRuns, CountRuns), so no prepared
// statement of either is cached on the connection, while the driver's other
// statements are.
func TestListRunsNotPrepared(t *testing.T) {
	ctx := t.Context()
	db := openDSN(t, withParam(pgtest.DSN(t), "pool_max_conns", "1"))
	for range 10 {
		if _, err := db.ListRuns(ctx, store.RunFilter{States: []engine.RunState{engine.RunQueued}}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CountRuns(ctx, "", []engine.RunState{engine.RunQueued}); err != nil {
			t.Fatal(err)
		}
		// A statement that is prepared, so the view is known to show them.
		if _, err := db.PipelineStates(ctx); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := db.pool.Query(ctx, "SELECT statement FROM pg_prepared_statements")
	if err != nil {
		t.Fatal(err)
	}
	var list, count, other int
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(s, "FROM runs WHERE state") && strings.Contains(s, "ORDER BY id") {
			list++
		}
		switch {
		case strings.Contains(s, "count(*) FROM runs"):
			count++
		case !strings.Contains(s, "FROM runs"):
			other++
		}
	}
	if list != 0 || count != 0 || other == 0 {
		t.Errorf("prepared statements: %d of ListRuns (want 0), %d of CountRuns (want 0), %d others (want some)", list, count, other)
	}
}

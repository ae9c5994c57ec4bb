package postgres

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// The same benchmarks as internal/store/sqlite's (bench_test.go and
// bench_server_test.go), so the two drivers can be compared run for run.

func benchRun(n int) store.NewRun {
	nr := store.NewRun{Run: store.Run{Pipeline: "bench", Trigger: "manual",
		Run: engine.Run{State: engine.RunQueued, Remaining: n}}}
	nr.Tasks = make([]store.TaskRow, n)
	for i := range nr.Tasks {
		st, needs := engine.TaskPending, 1
		if i == 0 {
			st, needs = engine.TaskReady, 0
		}
		nr.Tasks[i] = store.TaskRow{Index: i, TaskID: fmt.Sprintf("user-%07d", i),
			Task: engine.Task{State: st, PendingNeeds: needs}}
	}
	return nr
}

// BenchmarkCreateRun100k writes one run with 100,000 tasks per iteration
// (a fan-out over 100,000 users).
func BenchmarkCreateRun100k(b *testing.B) {
	const n = 100_000
	db := openTemp(b)
	nr := benchRun(n)
	for b.Loop() {
		if _, err := db.CreateRun(b.Context(), nr); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkCreateRunSmall writes runs of 5 tasks, as a scheduler tick does.
func BenchmarkCreateRunSmall(b *testing.B) {
	db := openTemp(b)
	nr := benchRun(5)
	for b.Loop() {
		if _, err := db.CreateRun(b.Context(), nr); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
}

// change is what a task completion writes: one task row, one timeline
// record, one attempt row.
func change(runID int64, i, tasks int, at time.Time) store.Change {
	idx, attempt := i%tasks, i/tasks+1
	exit := 0
	return store.Change{RunID: runID,
		Transition: engine.Transition{
			Tasks: []engine.TaskChange{{Index: idx, Task: engine.Task{State: engine.TaskSucceeded, Attempt: attempt,
				Spent: attempt, StartedAt: at.Add(-time.Second), FinishedAt: at, ExitCode: &exit}}},
			Records: []engine.Record{{Time: at, Kind: engine.EvTaskSucceeded, Task: idx, Attempt: attempt, ExitCode: &exit}},
		},
		Attempts: []store.Attempt{{Index: idx, Attempt: attempt, Worker: "w1", StartedAt: at.Add(-time.Second),
			FinishedAt: at, Outcome: store.OutcomeSucceeded, ExitCode: &exit, Log: "logs/x"}},
	}
}

// BenchmarkApplySmall is one completion per transaction.
func BenchmarkApplySmall(b *testing.B) {
	const tasks = 10_000
	db := openTemp(b)
	r, err := db.CreateRun(b.Context(), benchRun(tasks))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	i := 0
	for b.Loop() {
		if err := db.Apply(b.Context(), change(r.ID, i, tasks, now)); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "changes/s")
}

// BenchmarkApplyBatch64 is 64 completions per transaction, as a dispatcher
// that batches completions per tick writes them.
func BenchmarkApplyBatch64(b *testing.B) {
	const tasks, batch = 10_000, 64
	db := openTemp(b)
	r, err := db.CreateRun(b.Context(), benchRun(tasks))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	changes := make([]store.Change, batch)
	i := 0
	for b.Loop() {
		for j := range changes {
			changes[j] = change(r.ID, i, tasks, now)
			i++
		}
		if err := db.Apply(b.Context(), changes...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "changes/s")
}

// BenchmarkApplyParallel is one completion per transaction from 8
// goroutines at once (several dispatch loops or servers): unlike SQLite,
// PostgreSQL commits them concurrently.
func BenchmarkApplyParallel(b *testing.B) {
	const tasks = 10_000
	db := openTemp(b)
	now := time.Now()
	b.SetParallelism(4) // × GOMAXPROCS goroutines
	b.RunParallel(func(pb *testing.PB) {
		r, err := db.CreateRun(b.Context(), benchRun(tasks))
		if err != nil {
			b.Error(err)
			return
		}
		i := 0
		for pb.Next() {
			if err := db.Apply(b.Context(), change(r.ID, i, tasks, now)); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "changes/s")
}

// BenchmarkTasks100k reads back all tasks of a 100,000-task run.
func BenchmarkTasks100k(b *testing.B) {
	db := openTemp(b)
	r, err := db.CreateRun(b.Context(), benchRun(100_000))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		ts, err := db.Tasks(b.Context(), r.ID)
		if err != nil || len(ts) != 100_000 {
			b.Fatal(len(ts), err)
		}
	}
}

// BenchmarkCreateBackfill10k creates a backfill of 10,000 hourly intervals of
// a 3-task pipeline per iteration.
func BenchmarkCreateBackfill10k(b *testing.B) {
	const n, tasks = 10_000, 3
	db := openTemp(b)
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	runs := make([]store.NewRun, n)
	for i := range runs {
		nr := benchRun(tasks)
		nr.Run.Trigger = store.TriggerBackfill
		nr.Run.IntervalStart = from.Add(time.Duration(i) * time.Hour)
		nr.Run.IntervalEnd = from.Add(time.Duration(i+1) * time.Hour)
		nr.Run.Params = []byte(fmt.Sprintf(`{"date":%q}`, nr.Run.IntervalStart.Format(time.DateOnly)))
		runs[i] = nr
	}
	bf := store.Backfill{Pipeline: "bench", From: from, To: from.Add(n * time.Hour), Parallel: 4, Actor: "bench"}
	for b.Loop() {
		if _, err := db.CreateBackfill(b.Context(), bf, runs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "runs/s")
}

// history writes runs finished runs of tasks tasks each directly with bulk
// SQL (generate_series, one statement per table), each task with one attempt
// and two events, created an hour apart from created on, in 20 pipelines;
// about one run in twenty failed and one in ten was triggered by hand. Then
// it runs ANALYZE, as autovacuum would soon after such a load, so the planner
// knows the history's shape. It is how the history benchmarks get a million
// attempts in seconds rather than minutes.
func history(tb testing.TB, db *DB, runs, tasks int, created time.Time) {
	tb.Helper()
	ctx := tb.Context()
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer rollback(tx)
	var first int64
	if err := tx.QueryRow(ctx, `SELECT nextval('runs_id_seq')`).Scan(&first); err != nil {
		tb.Fatal(err)
	}
	// Reserve the ids the runs take, so later CreateRuns do not collide.
	if _, err := tx.Exec(ctx, `SELECT setval('runs_id_seq', $1)`, first+int64(runs)); err != nil {
		tb.Fatal(err)
	}
	stmts := []struct {
		what string
		sql  string
		args []any
	}{
		{"runs", `INSERT INTO runs (id, pipeline, trigger, interval_start, interval_end, created_at, task_count, state,
				remaining, unsuccessful, started_at, finished_at)
			SELECT $1 + i, format('pipeline-%s', lpad((($1 + i) % 20)::text, 2, '0')),
				CASE WHEN i % 10 = 0 THEN 'manual' ELSE 'schedule' END,
				$2::timestamptz + ($1 + i) * interval '1 hour', $2::timestamptz + ($1 + i + 1) * interval '1 hour',
				$2::timestamptz + i * interval '1 hour', $3, CASE WHEN i % 20 = 7 THEN 'failed' ELSE 'succeeded' END,
				0, CASE WHEN i % 20 = 7 THEN 1 ELSE 0 END,
				$2::timestamptz + i * interval '1 hour', $2::timestamptz + i * interval '1 hour' + interval '1 minute'
			FROM generate_series(0, $4 - 1) AS i`,
			[]any{first, created, tasks, runs}},
		{"tasks", `INSERT INTO tasks (run_id, idx, task_id, state, attempt, spent, started_at, finished_at, exit_code)
			SELECT r.id, k, 'task-' || k, 'succeeded', 1, 1, r.started_at, r.finished_at, 0
			FROM runs r, generate_series(0, $2 - 1) AS k WHERE r.id >= $1 ORDER BY r.id, k`,
			[]any{first, tasks}},
		{"attempts", `INSERT INTO attempts (run_id, idx, attempt, worker, started_at, finished_at, outcome, exit_code, log)
			SELECT run_id, idx, 1, 'worker-1', started_at, finished_at, 'succeeded', 0, 'logs/' || run_id || '/' || idx || '/1'
			FROM tasks WHERE run_id >= $1 ORDER BY run_id, idx`,
			[]any{first}},
		{"events", `INSERT INTO events (run_id, task_idx, time, kind, attempt, exit_code)
			SELECT run_id, idx, CASE e.k WHEN 0 THEN started_at ELSE finished_at END,
				CASE e.k WHEN 0 THEN 'task_started' ELSE 'task_succeeded' END, 1, CASE e.k WHEN 0 THEN NULL ELSE 0 END
			FROM tasks, generate_series(0, 1) AS e(k) WHERE run_id >= $1 ORDER BY run_id, idx, e.k`,
			[]any{first}},
		// The durations deadlines predict from: the newest 20 of each task
		// of these pipelines and of 2,500 tasks of other pipelines, as a
		// large installation keeps them (the table holds 20 per task,
		// whatever the history).
		{"task durations", `INSERT INTO task_durations (pipeline, task_id, run_id, idx, attempt, finished_at, duration)
			SELECT p, 'task-' || k, -row_number() OVER (), k, n, $1::timestamptz + n * interval '1 hour', 60000000
			FROM (SELECT format('pipeline-%s', lpad(i::text, 2, '0')) AS p, k
				FROM generate_series(0, 19) AS i, generate_series(0, $2 - 1) AS k
				UNION ALL SELECT format('other-%s', i), k FROM generate_series(0, 249) AS i, generate_series(0, 9) AS k) AS keys,
				generate_series(1, 20) AS n`,
			[]any{created, tasks}},
	}
	for _, st := range stmts {
		if _, err := tx.Exec(ctx, st.sql, st.args...); err != nil {
			tb.Fatalf("history: insert %s: %v", st.what, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		tb.Fatal(err)
	}
	if _, err := db.pool.Exec(ctx, `VACUUM ANALYZE runs, tasks, attempts, events, task_durations`); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkListRunsWithHistory measures the first page of the run list (and
// the scheduler's queue reads) with a history of 1,000 and of 1,000,000 task
// attempts (100,000 runs of 10 tasks, 2,000,000 events): the cost of a page
// must not depend on the history.
func BenchmarkListRunsWithHistory(b *testing.B) {
	active := []engine.RunState{engine.RunQueued, engine.RunRunning}
	pages := []struct {
		name string
		f    store.RunFilter
	}{
		{"all", store.RunFilter{}},
		{"pipeline", store.RunFilter{Pipeline: "pipeline-07"}},
		{"failed", store.RunFilter{States: []engine.RunState{engine.RunFailed}}},
		{"pipeline-failed", store.RunFilter{Pipeline: "pipeline-07", States: []engine.RunState{engine.RunFailed}}},
		{"manual", store.RunFilter{Trigger: store.TriggerManual}},
		{"page-deep", store.RunFilter{BeforeID: 60}},
		{"queue", store.RunFilter{States: []engine.RunState{engine.RunQueued}, Ascending: true}},
		{"active", store.RunFilter{States: active}},
	}
	for _, attempts := range []int{1_000, 1_000_000} {
		b.Run(fmt.Sprintf("attempts=%d", attempts), func(b *testing.B) {
			db := openTemp(b)
			start := time.Now()
			history(b, db, attempts/10, 10, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
			// The current work: 20 queued and running runs on top.
			for i := range 20 {
				nr := benchRun(10)
				nr.Run.Pipeline = fmt.Sprintf("pipeline-%02d", i)
				nr.Run.State = active[i%2]
				if _, err := db.CreateRun(b.Context(), nr); err != nil {
					b.Fatal(err)
				}
			}
			b.Logf("history of %d attempts written in %v", attempts, time.Since(start).Round(time.Millisecond))
			for _, p := range pages {
				b.Run(p.name, func(b *testing.B) {
					for b.Loop() {
						if _, err := db.ListRuns(b.Context(), p.f); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
			b.Run("count-active", func(b *testing.B) {
				for b.Loop() {
					if _, err := db.CountRuns(b.Context(), "pipeline-03", active); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkPrune deletes history in batches of 100 runs of 10 tasks (each
// with 10 attempts and 20 events), as the retention loop does; one op is one
// batch.
func BenchmarkPrune(b *testing.B) {
	const batch, refill = 100, 10_000
	db := openTemp(b)
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	cutoff := old.AddDate(10, 0, 0)
	// Recent runs that must stay.
	history(b, db, 1000, 10, cutoff.Add(time.Hour))
	left := 0
	pruned := 0
	for b.Loop() {
		if left == 0 {
			b.StopTimer()
			history(b, db, refill, 10, old)
			left = refill
			b.StartTimer()
		}
		ids, err := db.PruneRuns(b.Context(), cutoff, batch)
		if err != nil {
			b.Fatal(err)
		}
		if len(ids) != batch {
			b.Fatalf("pruned %d runs, want %d", len(ids), batch)
		}
		left -= batch
		pruned += len(ids)
	}
	b.ReportMetric(float64(pruned)/b.Elapsed().Seconds(), "runs/s")
}

// mapBenchValues are n item values as a map over users expands to
// (about 15 bytes each: 1,000,000 of them are some 15 MB).
func mapBenchValues(n int) []json.RawMessage {
	vs := make([]json.RawMessage, n)
	for i := range vs {
		vs[i] = json.RawMessage(fmt.Sprintf(`"user-%07d"`, i))
	}
	return vs
}

// BenchmarkExpandMap expands a map task to 1,000,000 values per
// iteration, in one Apply.
func BenchmarkExpandMap(b *testing.B) {
	const n = 1_000_000
	db := openTemp(b)
	vs := mapBenchValues(n)
	for b.Loop() {
		r, err := db.CreateRun(b.Context(), benchRun(1))
		if err != nil {
			b.Fatal(err)
		}
		err = db.Apply(b.Context(), store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 0, Values: vs,
			Info: &store.MapInfo{Items: n, Counts: map[engine.TaskState]int{engine.TaskPending: n}}}}})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "values/s")
}

// BenchmarkApplyMapItems writes the ends of 1,000 items of a
// 1,000,000-item map per Apply, with the map's info, as a coordinator's
// group commit does.
func BenchmarkApplyMapItems(b *testing.B) {
	const n, batch = 1_000_000, 1000
	db := openTemp(b)
	r, err := db.CreateRun(b.Context(), benchRun(1))
	if err != nil {
		b.Fatal(err)
	}
	err = db.Apply(b.Context(), store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 0, Values: mapBenchValues(n),
		Info: &store.MapInfo{Items: n, Counts: map[engine.TaskState]int{engine.TaskPending: n}}}}})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	exit := 0
	items := make([]store.MapItem, batch)
	next := 0
	for b.Loop() {
		for i := range items {
			items[i] = store.MapItem{Item: (next + i) % n, State: engine.TaskSucceeded, Attempt: 1, Spent: 1, Worker: "w1",
				StartedAt: now.Add(-time.Second), FinishedAt: now, ExitCode: &exit, Result: json.RawMessage(`{"rows":42}`)}
		}
		next += batch
		done := min(next, n)
		info := &store.MapInfo{Items: n, Next: done, Counts: map[engine.TaskState]int{engine.TaskPending: n - done, engine.TaskSucceeded: done},
			Slowest: []store.SlowItem{{Item: 3, Attempt: 1, Duration: time.Second}}}
		if err := db.Apply(b.Context(), store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 0, Info: info, Items: items}}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "items/s")
}

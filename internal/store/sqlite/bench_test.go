package sqlite

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

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

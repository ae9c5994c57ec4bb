package sqlite

import (
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

package runner

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// TestMarkReopensCancelledRun cancels a run while its first task runs, then
// marks tasks of the cancelled run: skipping one without dependents keeps
// the run cancelled; marking the cancelled task succeeded reopens the run,
// and executing it again runs the task's dependents.
func TestMarkReopensCancelledRun(t *testing.T) {
	e := newEnv(t)
	fifo := filepath.Join(e.home, "started")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	run, err := e.r.Create(t.Context(), e.pipeline(`
name: cancelled
tasks:
  - {id: load, run: 'echo x > "$FIFO"; exec sleep 60', env: {FIFO: `+fifo+`}}
  - {id: report, needs: [load], run: "true"}
  - {id: side, needs: [load], run: "true"}
  - {id: notify, needs: [report], run: "true"}
`), nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan store.Run, 1)
	go func() {
		r, err := e.r.Execute(ctx, run.ID)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	if _, err := os.ReadFile(fifo); err != nil {
		t.Fatal(err)
	}
	cancel()
	if r := <-done; r.State != engine.RunCancelled {
		t.Fatalf("setup: run %s, want cancelled", r.State)
	}
	mark := func(task string, kind engine.EventKind) (store.Run, bool) {
		t.Helper()
		i := -1
		for k, row := range e.tasksByIndex(run.ID) {
			if row.TaskID == task {
				i = k
			}
		}
		got, reopened, err := e.r.Act(t.Context(), run.ID, engine.Event{Kind: kind, Task: i, Actor: "op"})
		if err != nil {
			t.Fatalf("mark %s: %v", task, err)
		}
		return got, reopened
	}

	if got, reopened := mark("side", engine.EvMarkSkipped); reopened || got.State != engine.RunCancelled {
		t.Fatalf("skipping a task without dependents: run %s reopened=%t, want it to stay cancelled", got.State, reopened)
	}
	got, reopened := mark("load", engine.EvMarkSucceeded)
	if !reopened || got.State != engine.RunRunning {
		t.Fatalf("marking the cancelled task succeeded: run %s reopened=%t, want running again", got.State, reopened)
	}
	got, err = e.r.Execute(t.Context(), run.ID)
	if err != nil || got.State != engine.RunSucceeded {
		t.Fatalf("execute the reopened run: %v, run %s, want succeeded", err, got.State)
	}
	tasks := e.tasks(run.ID)
	for id, want := range map[string]engine.TaskState{"load": engine.TaskSucceeded, "report": engine.TaskSucceeded, "notify": engine.TaskSucceeded, "side": engine.TaskSkipped} {
		if got := tasks[id]; got.State != want || (id == "report" || id == "notify") && got.Attempt != 1 {
			t.Errorf("%s: %s after %d attempts, want %s (dependents run once)", id, got.State, got.Attempt, want)
		}
	}
}

func (e *env) tasksByIndex(id int64) []store.TaskRow {
	e.t.Helper()
	rows, err := e.st.Tasks(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return rows
}

package storetest

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Batches as a dispatcher writes them: several changes of the same run, task
// and attempt in one Apply, and concurrent Applies whose batches overlap.
// A driver may write a batch with set-based statements (one UPDATE for all
// task rows); these tests pin down that the result is still what applying
// the changes one by one writes.

// testApplyBatchSameRows applies a batch that changes the same run row, task
// row and attempt several times, and compares the result with a store that
// got the same changes one Apply at a time.
func testApplyBatchSameRows(t *testing.T, s store.Store) {
	batch := func(id int64) []store.Change {
		return []store.Change{
			{RunID: id, Transition: engine.Transition{
				Run:     &engine.Run{State: engine.RunRunning, Remaining: 3, StartedAt: t0},
				Tasks:   []engine.TaskChange{{Index: 0, Task: engine.Task{State: engine.TaskRunning, Attempt: 1, StartedAt: t0, Message: "first"}}},
				Records: []engine.Record{{Time: t0, Kind: engine.EvRunStarted, Task: -1}, {Time: t0, Kind: engine.EvTaskStarted, Task: 0, Attempt: 1}},
			}, Attempts: []store.Attempt{{Index: 0, Attempt: 1, Worker: "w1", StartedAt: t0, Log: "logs/0/1"}}},
			{RunID: id, Transition: engine.Transition{
				Tasks: []engine.TaskChange{
					{Index: 0, Task: engine.Task{State: engine.TaskRetryWait, Attempt: 1, Spent: 1, StartedAt: t0, FinishedAt: t0.Add(time.Second),
						ExitCode: ptr(1), ReadyAt: t0.Add(time.Minute)}},
					{Index: 1, Task: engine.Task{State: engine.TaskReady, Result: json.RawMessage(`{"a":1}`)}},
				},
				Records: []engine.Record{{Time: t0.Add(time.Second), Kind: engine.EvTaskFailed, Task: 0, Attempt: 1, ExitCode: ptr(1)}},
			}, Attempts: []store.Attempt{{Index: 0, Attempt: 1, FinishedAt: t0.Add(time.Second), Outcome: store.OutcomeFailed, ExitCode: ptr(1), Message: "exit 1"}}},
			{RunID: id, Transition: engine.Transition{
				Run: &engine.Run{State: engine.RunRunning, Remaining: 2, Unsuccessful: 0, StartedAt: t0},
				Tasks: []engine.TaskChange{
					{Index: 0, Task: engine.Task{State: engine.TaskRunning, Attempt: 2, Spent: 1, StartedAt: t0.Add(time.Minute)}},
					{Index: 1, Task: engine.Task{State: engine.TaskSucceeded, Attempt: 1, Spent: 1, ExitCode: ptr(0)}},
				},
				Records: []engine.Record{{Time: t0.Add(time.Minute), Kind: engine.EvTaskStarted, Task: 0, Attempt: 2}},
			}, Attempts: []store.Attempt{
				{Index: 0, Attempt: 2, Worker: "w2", StartedAt: t0.Add(time.Minute)},
				{Index: 0, Attempt: 1, Worker: "w1-renamed"},
				{Index: 1, Attempt: 1, Worker: "w3", Outcome: store.OutcomeSucceeded, ExitCode: ptr(0)},
				{Index: 0, Attempt: 2, Log: "logs/0/2"},
			}},
		}
	}
	one := mustCreate(t, s, newRun("batch", 3))
	each := mustCreate(t, s, newRun("batch", 3))
	mustApply(t, s, batch(one.ID)...)
	for _, c := range batch(each.ID) {
		mustApply(t, s, c)
	}
	got, want := take(t, s, one.ID), take(t, s, each.ID)
	// Normalise what differs by construction: ids and sequence numbers.
	want.Run.ID = one.ID
	for i := range want.Tasks {
		want.Tasks[i].RunID = one.ID
	}
	for i := range want.Attempts {
		want.Attempts[i].RunID = one.ID
	}
	if len(got.Events) != len(want.Events) {
		t.Fatalf("batch wrote %d events, one by one %d", len(got.Events), len(want.Events))
	}
	for i := range want.Events {
		if i > 0 && got.Events[i].Seq <= got.Events[i-1].Seq {
			t.Errorf("event %d has seq %d after %d", i, got.Events[i].Seq, got.Events[i-1].Seq)
		}
		want.Events[i].Seq, want.Events[i].RunID = got.Events[i].Seq, one.ID
	}
	check(t, "run written in one batch vs one change at a time", got, want)
	if a := got.Attempts; len(a) != 3 || a[0].Worker != "w1-renamed" || a[0].Outcome != store.OutcomeFailed ||
		a[1].Worker != "w2" || a[1].Log != "logs/0/2" {
		t.Errorf("merged attempts = %+v", a)
	}
}

// testConcurrentApplyOverlapping runs writers whose batches change the same
// run rows in different orders (as two servers completing tasks of the same
// runs would). Every Apply must succeed (no deadlock surfaces as an error) and no
// change may be lost.
func testConcurrentApplyOverlapping(t *testing.T, s store.Store) {
	const writers, steps, runs = 6, 20, 3
	ctx := t.Context()
	var ids []int64
	for range runs {
		ids = append(ids, mustCreate(t, s, newRun("overlap", writers*steps)).ID)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range steps {
				idx := w*steps + i
				var batch []store.Change
				for k := range runs {
					// Writer w visits the runs in its own rotation.
					id := ids[(k+w)%runs]
					if w%2 == 1 {
						id = ids[(runs-1-k+w)%runs]
					}
					batch = append(batch, store.Change{RunID: id,
						Transition: engine.Transition{
							Run:     &engine.Run{State: engine.RunRunning, StartedAt: t0},
							Tasks:   []engine.TaskChange{{Index: idx, Task: engine.Task{State: engine.TaskSucceeded, Attempt: 1, Spent: 1, ExitCode: ptr(w)}}},
							Records: []engine.Record{{Time: t0, Kind: engine.EvTaskSucceeded, Task: idx, Attempt: 1, Actor: fmt.Sprint(w)}},
						},
						Attempts: []store.Attempt{{Index: idx, Attempt: 1, Worker: fmt.Sprint(w), Outcome: store.OutcomeSucceeded}},
					})
				}
				if err := s.Apply(ctx, batch...); err != nil {
					errs <- fmt.Errorf("writer %d step %d: %w", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, id := range ids {
		sn := take(t, s, id)
		if len(sn.Events) != writers*steps+1 || len(sn.Attempts) != writers*steps {
			t.Errorf("run %d: %d events, %d attempts; want %d, %d", id, len(sn.Events), len(sn.Attempts), writers*steps+1, writers*steps)
		}
		for i, task := range sn.Tasks {
			if task.State != engine.TaskSucceeded || task.ExitCode == nil || *task.ExitCode != i/steps {
				t.Errorf("run %d task %d = %+v", id, i, task.Task)
			}
		}
	}
}

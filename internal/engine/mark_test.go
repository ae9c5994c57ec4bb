package engine

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

// markGraph is u -> t -> d, and o beside them: t is the task marked, u its
// need, d its dependent, and o keeps the run running (or makes it fail).
func markGraph() []NodeDef {
	return []NodeDef{
		{ID: "u"},
		{ID: "t", Needs: []string{"u"}, Retry: RetryPolicy{Attempts: 2, Backoff: time.Second}},
		{ID: "d", Needs: []string{"t"}},
		{ID: "o"},
	}
}

// runLabel names a run's state as the operator sees it: a running run that
// is being cancelled is "cancelling".
func runLabel(r Run) string {
	if r.Cancelling && !r.State.Terminal() {
		return "cancelling"
	}
	return string(r.State)
}

// reachTask drives a run of markGraph until t is in state s, with o running.
func reachTask(t *testing.T, s TaskState) *harness {
	h := newHarness(t, markGraph())
	h.must(Event{Kind: EvRunStarted, Task: -1})
	h.start("o")
	h.start("u")
	if s == TaskPending {
		return h
	}
	if s == TaskUpstreamFailed {
		h.end("u", EvTaskFailed, 1)
		return h
	}
	h.end("u", EvTaskSucceeded, 0)
	switch s {
	case TaskReady:
		return h
	case TaskSkipped:
		h.must(Event{Kind: EvMarkSkipped, Task: h.idx("t")})
		return h
	}
	h.start("t")
	switch s {
	case TaskRunning:
	case TaskSucceeded:
		h.end("t", EvTaskSucceeded, 0)
	case TaskCancelled: // its worker cancelled the attempt; the run goes on
		h.end("t", EvTaskCancelled, -1)
	case TaskRetryWait, TaskFailed, TaskTimedOut:
		kind := EvTaskFailed
		if s == TaskTimedOut {
			kind = EvTaskTimedOut
		}
		h.end("t", kind, 1)
		if s != TaskRetryWait {
			h.now = h.now.Add(time.Minute)
			h.must(Event{Kind: EvRetryDue, Task: h.idx("t")})
			h.start("t")
			h.end("t", kind, 1)
		}
	default:
		t.Fatalf("no way to reach %s", s)
	}
	return h
}

// finish ends what runs: running tasks succeed (or, in a run being
// cancelled, are cancelled) and ready ones start, until the run ends.
func finish(h *harness) {
	for step := 0; !h.m.Run().State.Terminal(); step++ {
		if step > 100 {
			h.t.Fatalf("run did not end: %+v", h.m.Run())
		}
		for i := 0; i < h.e.Graph.Len(); i++ {
			id := h.e.Graph.Node(i).ID
			switch h.m.Task(i).State {
			case TaskRunning:
				kind := EvTaskSucceeded
				if h.m.Run().Cancelling {
					kind = EvTaskCancelled
				}
				h.end(id, kind, 0)
			case TaskReady:
				h.start(id)
			case TaskRetryWait:
				h.now = h.m.Task(i).ReadyAt
				h.must(Event{Kind: EvRetryDue, Task: i})
			}
		}
	}
}

// reach builds a run in the given state (as runLabel names it) from a run
// where t reached s. The state t ends in may differ from s: a cancel ends a
// pending task, and a run must finish its tasks to succeed.
func reach(t *testing.T, run string, s TaskState) *harness {
	if run == "queued" {
		return newHarness(t, markGraph())
	}
	h := reachTask(t, s)
	switch run {
	case "running":
	case "cancelling":
		h.must(Event{Kind: EvCancel, Task: -1, Actor: "op"})
	case "cancelled":
		h.must(Event{Kind: EvCancel, Task: -1, Actor: "op"})
		finish(h)
	case "failed":
		h.end("o", EvTaskFailed, 1)
		finish(h)
	case "succeeded":
		finish(h)
	}
	return h
}

// wantMark is what marking a task does, by run state and task state (the
// table in docs/server.md): "" when the mark is refused, else the state the
// run is in just after it.
func wantMark(run string, task TaskState) (refusal, after string) {
	switch {
	case run == "queued":
		return "has not started", ""
	case run == "cancelling":
		return "being cancelled", ""
	case task == TaskRunning:
		return "is running", ""
	case task.Satisfies():
		return "already", ""
	}
	// Every other task can be marked; its dependent d is put back and is
	// ready, so a finished run is reopened.
	return "", "running"
}

// TestMarkTable marks t succeeded and skipped in every run state and every
// task state a run can reach, and checks what the operator gets: a refusal
// that says why, or t in its new state, d ready, the run running and, once
// its tasks end, in the state the final-state rule gives.
func TestMarkTable(t *testing.T) {
	runs := []string{"queued", "running", "cancelling", "succeeded", "failed", "cancelled"}
	tasks := []TaskState{TaskPending, TaskReady, TaskRunning, TaskRetryWait, TaskSucceeded, TaskFailed,
		TaskUpstreamFailed, TaskTimedOut, TaskCancelled, TaskSkipped}
	seen := map[string]bool{}
	for _, run := range runs {
		for _, s := range tasks {
			for _, kind := range []EventKind{EvMarkSucceeded, EvMarkSkipped} {
				h := reach(t, run, s)
				ti, di := h.idx("t"), h.idx("d")
				gotRun, gotTask := runLabel(h.m.Run()), h.state("t")
				if gotRun != run {
					continue // e.g. a run with a failed task cannot succeed
				}
				name := fmt.Sprintf("%s/%s/%s", run, gotTask, kind)
				if seen[name] {
					continue
				}
				seen[name] = true
				t.Run(name, func(t *testing.T) {
					h.t = t
					refusal, after := wantMark(run, gotTask)
					before := *h.m
					tr, err := h.apply(Event{Kind: kind, Task: ti, Actor: "op"})
					if refusal != "" {
						if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), refusal) {
							t.Fatalf("mark: %v, want a refusal saying %q", err, refusal)
						}
						if fmt.Sprint(*h.m) != fmt.Sprint(before) {
							t.Fatal("a refused mark changed the run")
						}
						return
					}
					if err != nil {
						t.Fatalf("mark: %v", err)
					}
					want := TaskSucceeded
					if kind == EvMarkSkipped {
						want = TaskSkipped
					}
					if got := h.state("t"); got != want {
						t.Fatalf("t is %s, want %s", got, want)
					}
					if got := runLabel(h.m.Run()); got != after {
						t.Fatalf("run is %s after the mark, want %s", got, after)
					}
					if got := h.m.Task(di).State; got != TaskReady {
						t.Fatalf("d is %s, want ready: its only need is now satisfied", got)
					}
					if a := actionTasks(tr, ActReady); fmt.Sprint(a) != fmt.Sprint([]int{di}) {
						t.Fatalf("ready actions %v, want [%d]", a, di)
					}
					checkCounters(t, h)
					finish(h)
					if got, want := h.m.Run().State, finalByRule(h); got != want {
						t.Fatalf("run ended %s, want %s", got, want)
					}
					if run == "cancelled" && h.m.Run().State == RunFailed && !anyFailed(h) {
						t.Fatal("a cancelled run without a failed task ended failed after a mark")
					}
				})
			}
		}
	}
	// Every combination a run can be in was tried.
	for _, want := range []string{
		"queued/pending", "running/pending", "running/ready", "running/running", "running/retry_wait",
		"running/succeeded", "running/failed", "running/timed_out", "running/upstream_failed",
		"running/cancelled", "running/skipped", "cancelling/running", "cancelling/cancelled",
		"cancelling/succeeded", "cancelling/failed", "cancelling/timed_out", "cancelling/upstream_failed",
		"cancelling/skipped", "succeeded/succeeded", "succeeded/skipped", "failed/succeeded",
		"failed/failed", "failed/timed_out", "failed/upstream_failed", "failed/cancelled", "failed/skipped",
		"cancelled/cancelled", "cancelled/succeeded", "cancelled/failed", "cancelled/timed_out",
		"cancelled/upstream_failed", "cancelled/skipped",
	} {
		if !seen[want+"/"+string(EvMarkSucceeded)] || !seen[want+"/"+string(EvMarkSkipped)] {
			var got []string
			for k := range seen {
				got = append(got, k)
			}
			sort.Strings(got)
			t.Fatalf("combination %s not reached; reached:\n%s", want, strings.Join(got, "\n"))
		}
	}
}

// finalByRule is the documented final state of a run whose tasks have all
// ended: succeeded if all succeeded or were skipped, cancelled if a cancel
// ended it, failed if a task failed or timed out, cancelled otherwise.
func finalByRule(h *harness) RunState {
	unsuccessful := false
	for i := 0; i < h.e.Graph.Len(); i++ {
		if !h.m.Task(i).State.Satisfies() {
			unsuccessful = true
		}
	}
	switch {
	case !unsuccessful:
		return RunSucceeded
	case h.m.Run().Cancelling:
		return RunCancelled
	case anyFailed(h):
		return RunFailed
	}
	return RunCancelled
}

func anyFailed(h *harness) bool {
	for i := 0; i < h.e.Graph.Len(); i++ {
		if s := h.m.Task(i).State; s == TaskFailed || s == TaskTimedOut {
			return true
		}
	}
	return false
}

func checkCounters(t *testing.T, h *harness) {
	t.Helper()
	remaining, unsuccessful := 0, 0
	for i := 0; i < h.e.Graph.Len(); i++ {
		switch s := h.m.Task(i).State; {
		case !s.Terminal():
			remaining++
		case !s.Satisfies():
			unsuccessful++
		}
	}
	if r := h.m.Run(); r.Remaining != remaining || r.Unsuccessful != unsuccessful {
		t.Fatalf("run counters remaining=%d unsuccessful=%d, tasks say %d and %d", r.Remaining, r.Unsuccessful, remaining, unsuccessful)
	}
}

// TestMarkOnCancelledRun is the case: on a cancelled run, marking a
// task skipped must not make the run failed, and marking one succeeded must
// run its dependents.
func TestMarkOnCancelledRun(t *testing.T) {
	cancelled := func(t *testing.T) *harness {
		h := newHarness(t, []NodeDef{{ID: "a"}, {ID: "b", Needs: []string{"a"}}, {ID: "c", Needs: []string{"b"}}, {ID: "x"}})
		h.must(Event{Kind: EvRunStarted, Task: -1})
		h.start("a")
		h.start("x")
		h.must(Event{Kind: EvCancel, Task: -1, Actor: "op"})
		h.end("a", EvTaskCancelled, -1)
		h.end("x", EvTaskCancelled, -1)
		if r := h.m.Run(); r.State != RunCancelled {
			t.Fatalf("setup: run %s", r.State)
		}
		return h
	}
	t.Run("skip a task without dependents", func(t *testing.T) {
		h := cancelled(t)
		h.must(Event{Kind: EvMarkSkipped, Task: h.idx("x"), Actor: "op"})
		if r := h.m.Run(); r.State != RunCancelled || h.state("x") != TaskSkipped {
			t.Fatalf("run %s x %s, want cancelled and skipped", r.State, h.state("x"))
		}
	})
	t.Run("skip everything", func(t *testing.T) {
		h := cancelled(t)
		for _, id := range []string{"x", "c", "b", "a"} {
			h.must(Event{Kind: EvMarkSkipped, Task: h.idx(id), Actor: "op"})
		}
		if r := h.m.Run(); r.State != RunSucceeded {
			t.Fatalf("run %s, want succeeded: every task is skipped", r.State)
		}
	})
	t.Run("succeed a task with dependents", func(t *testing.T) {
		h := cancelled(t)
		h.must(Event{Kind: EvMarkSucceeded, Task: h.idx("a"), Actor: "op"})
		if r := h.m.Run(); r.State != RunRunning || r.Cancelling || h.state("b") != TaskReady || h.state("c") != TaskPending {
			t.Fatalf("run %+v b %s c %s, want running with b ready", r, h.state("b"), h.state("c"))
		}
		finish(h)
		if r := h.m.Run(); r.State != RunCancelled || h.state("c") != TaskSucceeded || h.state("x") != TaskCancelled {
			t.Fatalf("run %s c %s x %s: b and c ran, x is still cancelled, so the run stays cancelled", r.State, h.state("c"), h.state("x"))
		}
		h.must(Event{Kind: EvMarkSkipped, Task: h.idx("x"), Actor: "op"})
		if r := h.m.Run(); r.State != RunSucceeded {
			t.Fatalf("run %s, want succeeded once x is skipped too", r.State)
		}
	})
}

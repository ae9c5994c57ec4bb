package engine

import (
	"strings"
	"testing"
	"time"
)

// TestZipNeedStartsBesideUpstream: a task that zips with a need becomes
// ready when the need starts, not when it succeeds; a chain of them runs
// side by side; a plain need still waits for the success.
func TestZipNeedStartsBesideUpstream(t *testing.T) {
	h := newHarness(t, []NodeDef{
		{ID: "a"},
		{ID: "b", Needs: []string{"a"}, Zip: []string{"a"}},
		{ID: "c", Needs: []string{"b"}, Zip: []string{"b"}},
		{ID: "after", Needs: []string{"b"}},
	})
	h.must(Event{Kind: EvRunStarted, Task: -1})
	if s := h.state("b"); s != TaskPending {
		t.Fatalf("b before a starts: %s", s)
	}
	tr := h.must(Event{Kind: EvTaskStarted, Task: h.idx("a")})
	if got := actionTasks(tr, ActReady); len(got) != 1 || got[0] != h.idx("b") {
		t.Fatalf("ready when a starts: %v, want b", got)
	}
	h.start("b")
	if h.state("c") != TaskReady || h.state("after") != TaskPending {
		t.Fatalf("after b starts: c %s, after %s", h.state("c"), h.state("after"))
	}
	h.start("c")
	h.end("a", EvTaskSucceeded, 0)
	if h.state("after") != TaskPending || h.m.Task(h.idx("c")).PendingNeeds != 0 {
		t.Fatalf("a's success: after %s", h.state("after"))
	}
	h.end("b", EvTaskSucceeded, 0)
	if h.state("after") != TaskReady {
		t.Fatalf("after b succeeded: after is %s, want ready", h.state("after"))
	}
	h.end("c", EvTaskSucceeded, 0)
	h.start("after")
	h.end("after", EvTaskSucceeded, 0)
	if r := h.m.Run(); r.State != RunSucceeded || r.Remaining != 0 {
		t.Fatalf("run %+v", r)
	}
}

// TestZipNeedStopsRunning: when the need's attempt ends and it runs
// again, a dependent that zips with it and has not started waits for its
// next start; when the need fails for good, one that has not started ends
// upstream_failed, and one that runs carries on until its own attempt
// ends, after which it does not run again.
func TestZipNeedStopsRunning(t *testing.T) {
	defs := []NodeDef{
		{ID: "a", Retry: RetryPolicy{Attempts: 2}},
		{ID: "side"},
		{ID: "b", Needs: []string{"a"}, Zip: []string{"a"}, Retry: RetryPolicy{Attempts: 3}},
		{ID: "both", Needs: []string{"a", "side"}, Zip: []string{"a"}},
	}
	h := newHarness(t, defs)
	h.must(Event{Kind: EvRunStarted, Task: -1})
	h.start("a")
	if h.state("b") != TaskReady || h.m.Task(h.idx("both")).PendingNeeds != 1 {
		t.Fatalf("a started: b %s, both counts %d", h.state("b"), h.m.Task(h.idx("both")).PendingNeeds)
	}
	tr := h.end("a", EvTaskLost, -1)
	if h.state("b") != TaskPending || h.m.Task(h.idx("both")).PendingNeeds != 2 {
		t.Fatalf("a lost: b %s, both counts %d", h.state("b"), h.m.Task(h.idx("both")).PendingNeeds)
	}
	if !hasRecord(tr, RecTaskPending, h.idx("b")) {
		t.Errorf("b went back to pending without a record: %+v", tr.Records)
	}
	h.start("a")
	h.start("b")
	h.end("a", EvTaskFailed, 1) // retried: b runs on beside the next attempt
	if h.state("b") != TaskRunning || h.state("a") != TaskRetryWait {
		t.Fatalf("a failed once: a %s, b %s", h.state("a"), h.state("b"))
	}
	h.must(Event{Kind: EvRetryDue, Task: h.idx("a")})
	h.start("a")
	h.end("a", EvTaskFailed, 1)
	if s := h.state("both"); s != TaskUpstreamFailed {
		t.Errorf("both after a failed: %s", s)
	}
	if s := h.state("b"); s != TaskRunning {
		t.Fatalf("b after a failed: %s, want running (its executor ends it)", s)
	}
	h.end("b", EvTaskFailed, 1)
	if s := h.state("b"); s != TaskRetryWait {
		t.Fatalf("b failed once: %s", s)
	}
	h.now = h.now.Add(time.Hour)
	tr = h.must(Event{Kind: EvRetryDue, Task: h.idx("b")})
	if s := h.state("b"); s != TaskUpstreamFailed || !hasRecord(tr, RecTaskUpstreamFailed, h.idx("b")) {
		t.Fatalf("b's retry after a failed: %s, records %+v", s, tr.Records)
	}
	h.start("side")
	h.end("side", EvTaskSucceeded, 0)
	if r := h.m.Run(); r.State != RunFailed || r.Remaining != 0 {
		t.Fatalf("run %+v", r)
	}

	// A ready dependent that has not started ends with its need.
	h = newHarness(t, defs)
	h.must(Event{Kind: EvRunStarted, Task: -1})
	h.start("a")
	h.end("a", EvTaskFailed, 1)
	h.must(Event{Kind: EvRetryDue, Task: h.idx("a")})
	h.start("a")
	h.end("a", EvTaskFailed, 1)
	if s := h.state("b"); s != TaskUpstreamFailed {
		t.Fatalf("ready b after a failed: %s", s)
	}
}

func TestZipGraphErrors(t *testing.T) {
	cases := []struct {
		defs []NodeDef
		want string
	}{
		{[]NodeDef{{ID: "a"}, {ID: "b", Zip: []string{"a"}}}, `task "b" zips with "a", which is not one of its needs`},
		{[]NodeDef{{ID: "a", Wait: &WaitPolicy{Poke: time.Second}}, {ID: "b", Needs: []string{"a"}, Zip: []string{"a"}}}, "a wait, which never runs"},
	}
	for _, c := range cases {
		if _, err := NewGraph(c.defs); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewGraph: err = %v, want %q", err, c.want)
		}
	}
}

func hasRecord(tr Transition, k EventKind, task int) bool {
	for _, r := range tr.Records {
		if r.Kind == k && r.Task == task {
			return true
		}
	}
	return false
}

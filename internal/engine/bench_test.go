package engine

import (
	"fmt"
	"testing"
)

// countingState counts reads, to prove an event reads only what it touches.
type countingState struct {
	*Mem
	reads int
}

func (c *countingState) Task(i int) Task { c.reads++; return c.Mem.Task(i) }

// TestEventCostIndependentOfGraphSize checks that finishing one task of a
// 100,000-task run reads the task and its dependents, nothing more.
func TestEventCostIndependentOfGraphSize(t *testing.T) {
	const n = 100_000
	defs := make([]NodeDef, n)
	for i := range defs {
		defs[i] = NodeDef{ID: fmt.Sprintf("t%d", i)}
		if i >= 2 {
			defs[i].Needs = []string{defs[i/2-1].ID, defs[i-1].ID}
		}
	}
	h := newHarness(t, defs)
	h.must(Event{Kind: EvRunStarted, Task: -1})
	cs := &countingState{Mem: h.m}
	for _, i := range []int{0, 1, 2, 3} {
		tr, err := h.e.Apply(cs, h.now, Event{Kind: EvTaskStarted, Task: i})
		if err != nil {
			t.Fatal(err)
		}
		h.m.Commit(tr)
		cs.reads = 0
		tr, err = h.e.Apply(cs, h.now, Event{Kind: EvTaskSucceeded, Task: i, Attempt: 1})
		if err != nil {
			t.Fatal(err)
		}
		h.m.Commit(tr)
		if want := 1 + len(h.e.Graph.Node(i).Dependents); cs.reads > want {
			t.Fatalf("success of task %d read %d tasks, want at most %d", i, cs.reads, want)
		}
	}
}

// BenchmarkApplyWide measures the engine alone: one start and one success per
// task of a run of 100,000 independent tasks.
func BenchmarkApplyWide(b *testing.B) {
	const n = 100_000
	defs := make([]NodeDef, n)
	for i := range defs {
		defs[i] = NodeDef{ID: fmt.Sprintf("t%d", i)}
	}
	g, err := NewGraph(defs)
	if err != nil {
		b.Fatal(err)
	}
	e := &Engine{Graph: g}
	b.ReportAllocs()
	b.ResetTimer()
	for k := 0; k < b.N; {
		m := NewMem(g.InitialRun(), g.InitialTasks())
		tr, _ := e.Apply(m, t0, Event{Kind: EvRunStarted, Task: -1})
		m.Commit(tr)
		for i := 0; i < n && k < b.N; i, k = i+1, k+1 {
			tr, err := e.Apply(m, t0, Event{Kind: EvTaskStarted, Task: i})
			if err != nil {
				b.Fatal(err)
			}
			m.Commit(tr)
			tr, err = e.Apply(m, t0, Event{Kind: EvTaskSucceeded, Task: i, Attempt: 1})
			if err != nil {
				b.Fatal(err)
			}
			m.Commit(tr)
		}
	}
}

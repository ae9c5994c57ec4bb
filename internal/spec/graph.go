package spec

import (
	"fmt"
	"strings"
)

// TaskIndex maps each task id to its index in Tasks. With duplicate ids (only
// possible in pipelines built in code) the first wins.
func (p *Pipeline) TaskIndex() map[string]int {
	idx := make(map[string]int, len(p.Tasks))
	for i, t := range p.Tasks {
		if _, dup := idx[t.ID]; !dup {
			idx[t.ID] = i
		}
	}
	return idx
}

// Graph is the task graph of a pipeline by index into Pipeline.Tasks, the form
// the engine works with: it keeps a count of unsatisfied needs per task and,
// when a task ends, walks only that task's Dependents.
type Graph struct {
	// Needs[i] are the indexes of the tasks task i needs, in file order.
	Needs [][]int
	// Dependents[j] are the indexes of the tasks that need task j, ascending.
	Dependents [][]int
	// Order lists every task after all of its needs (a topological order);
	// tasks that need nothing come first, in file order.
	Order []int
	// Roots are the tasks that need nothing: ready as soon as a run starts.
	Roots []int
}

// Graph builds the task graph. It fails (rather than guessing) when a need
// names no task or the needs form a cycle, which cannot happen for pipelines
// from Parse. It runs in O(tasks + needs) without recursion.
func (p *Pipeline) Graph() (*Graph, error) {
	n := len(p.Tasks)
	idx := p.TaskIndex()
	total := 0
	for _, t := range p.Tasks {
		total += len(t.Needs)
	}
	needs32 := make([][]int32, n)
	flat := make([]int32, 0, total)
	for i, t := range p.Tasks {
		start := len(flat)
		for _, need := range t.Needs {
			j, ok := idx[need]
			if !ok {
				return nil, fmt.Errorf("pipeline %q: task %q needs %q, which is not a task", p.Name, t.ID, need)
			}
			flat = append(flat, int32(j))
		}
		needs32[i] = flat[start:len(flat):len(flat)]
	}
	order, removed := topoSort(needs32)
	if len(order) < n {
		var stuck []string
		for i, ok := range removed {
			if !ok && len(stuck) < 10 {
				stuck = append(stuck, p.Tasks[i].ID)
			}
		}
		return nil, fmt.Errorf("pipeline %q: the needs form a cycle through %d tasks (among them %s)", p.Name, n-len(order), strings.Join(stuck, ", "))
	}
	g := &Graph{Needs: make([][]int, n), Dependents: make([][]int, n), Order: order}
	needsFlat := make([]int, total)
	counts := make([]int, n)
	k := 0
	for i, ns := range needs32 {
		start := k
		for _, j := range ns {
			needsFlat[k] = int(j)
			k++
			counts[j]++
		}
		g.Needs[i] = needsFlat[start:k:k]
		if len(ns) == 0 {
			g.Roots = append(g.Roots, i)
		}
	}
	depsFlat := make([]int, total)
	off := 0
	for j := range n {
		g.Dependents[j] = depsFlat[off : off : off+counts[j]]
		off += counts[j]
	}
	for i, ns := range g.Needs {
		for _, j := range ns {
			g.Dependents[j] = append(g.Dependents[j], i)
		}
	}
	return g, nil
}

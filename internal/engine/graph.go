package engine

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Graph is the immutable shape of a run: its tasks, their needs and
// dependents, and the policies the engine applies to them. It is built once per
// pipeline version and shared by every run of that version, so an event only
// reads the edges it touches.
type Graph struct {
	nodes []Node
	roots []int
	index map[string]int
}

// Node is one task of a graph.
type Node struct {
	ID         string
	Needs      []int
	Dependents []int
	Retry      RetryPolicy
	// Wait is set for a task that waits for a condition instead of running
	// something: it goes from pending straight to waiting, holding no slot.
	Wait *WaitPolicy
	// Zip are the needs (among Needs) this task zips with: such a need
	// lets the task start once it is running, not once it succeeded, so
	// the two run side by side (a map whose item i runs as soon as item i
	// of the map it reads succeeded). ZipDependents are the dependents
	// that zip with this task.
	Zip           []int
	ZipDependents []int
}

// WaitPolicy says how often a waiting task's condition is checked and how
// long it may wait.
type WaitPolicy struct {
	Poke    time.Duration // between checks; must be positive
	Timeout time.Duration // longest wait of one attempt; 0 means no limit
}

// NextPoke is the first poke time after now of task's wait that started
// at start. The first check is at the start; the next ones fall on a grid,
// start + phase + k*poke, so the schedule needs no state of its own (a
// restart finds the same times) and a slow check does not push the next
// ones later. The phase is a fixed fraction of the interval that differs
// from task to task: ten thousand waits that started together are spread
// over the interval instead of all being checked at the same instant.
// With a timeout, the last poke is at the deadline.
func (p WaitPolicy) NextPoke(task int, start, now time.Time) time.Time {
	poke := p.Poke
	if poke <= 0 {
		poke = time.Second
	}
	base := start.Add(Phase(task, poke))
	next := base
	if !now.Before(base) {
		next = base.Add((now.Sub(base)/poke + 1) * poke)
	}
	if p.Timeout > 0 {
		if deadline := start.Add(p.Timeout); next.After(deadline) {
			next = deadline
		}
	}
	return next
}

// RetryPolicy decides how many attempts a task gets and how long to wait
// between them.
type RetryPolicy struct {
	Attempts   int           // total attempts including the first; <= 1 means no retry
	Backoff    time.Duration // delay before the first retry
	MaxBackoff time.Duration // upper bound of any delay
	Multiplier float64       // growth per retry
	Jitter     float64       // ± fraction of each delay
}

// Delay returns the wait before retry number n (n = 1 for the retry after the
// first attempt). u in [-1, 1] picks a point in the jitter band; passing it in
// keeps the engine deterministic.
func (p RetryPolicy) Delay(n int, u float64) time.Duration {
	if n < 1 {
		n = 1
	}
	mult := p.Multiplier
	if mult < 1 {
		mult = 1
	}
	d := float64(p.Backoff) * math.Pow(mult, float64(n-1))
	if p.MaxBackoff > 0 && d > float64(p.MaxBackoff) {
		d = float64(p.MaxBackoff)
	}
	if p.Jitter > 0 {
		d += d * p.Jitter * u
	}
	if d < 0 {
		d = 0
	}
	if d > float64(math.MaxInt64/2) {
		d = float64(math.MaxInt64 / 2)
	}
	return time.Duration(d)
}

// Phase is the offset of task's poke grid within an interval of poke: the
// task's index scattered by a multiplicative hash (Fibonacci hashing), so
// neighbouring tasks land far apart.
func Phase(task int, poke time.Duration) time.Duration {
	if poke <= 0 || task <= 0 {
		return 0
	}
	h := uint64(task) * 0x9E3779B97F4A7C15
	return time.Duration(h % uint64(poke))
}

// NodeDef describes one task for NewGraph: its id, the ids it needs and its
// policies.
type NodeDef struct {
	ID    string
	Needs []string
	Retry RetryPolicy
	Wait  *WaitPolicy // nil for a task that runs something
	// Zip names the needs (each also in Needs) that let the task start
	// once they are running rather than once they succeeded.
	Zip []string
}

// NewGraph builds a graph from task definitions. It checks that ids are unique,
// that every need exists and that there is no cycle (Kahn's algorithm, O(V+E)).
// Pipeline files are validated with positions by package spec before this; the
// checks here protect the engine from any other caller.
func NewGraph(defs []NodeDef) (*Graph, error) {
	g := &Graph{nodes: make([]Node, len(defs)), index: make(map[string]int, len(defs))}
	for i, d := range defs {
		if _, dup := g.index[d.ID]; dup {
			return nil, fmt.Errorf("build graph: duplicate task id %q", d.ID)
		}
		g.index[d.ID] = i
		if d.Wait != nil && d.Wait.Poke <= 0 {
			return nil, fmt.Errorf("build graph: wait task %q has no poke interval", d.ID)
		}
		g.nodes[i] = Node{ID: d.ID, Retry: d.Retry, Wait: d.Wait}
	}
	for i, d := range defs {
		needs := make([]int, 0, len(d.Needs))
		seen := make(map[int]bool, len(d.Needs))
		for _, n := range d.Needs {
			j, ok := g.index[n]
			if !ok {
				return nil, fmt.Errorf("build graph: task %q needs unknown task %q", d.ID, n)
			}
			if seen[j] {
				continue
			}
			seen[j] = true
			needs = append(needs, j)
			g.nodes[j].Dependents = append(g.nodes[j].Dependents, i)
		}
		g.nodes[i].Needs = needs
		if len(needs) == 0 {
			g.roots = append(g.roots, i)
		}
		for _, z := range d.Zip {
			j, ok := g.index[z]
			switch {
			case !ok || !seen[j]:
				return nil, fmt.Errorf("build graph: task %q zips with %q, which is not one of its needs", d.ID, z)
			case g.nodes[j].Wait != nil:
				// A wait is never running: its dependents could only
				// start once it succeeded, which is a need like any other.
				return nil, fmt.Errorf("build graph: task %q zips with %q, a wait, which never runs", d.ID, z)
			}
			if slices.Contains(g.nodes[i].Zip, j) {
				continue
			}
			g.nodes[i].Zip = append(g.nodes[i].Zip, j)
			g.nodes[j].ZipDependents = append(g.nodes[j].ZipDependents, i)
		}
	}
	// Kahn's algorithm: every node must be reachable by removing satisfied edges.
	indeg := make([]int, len(g.nodes))
	queue := make([]int, 0, len(g.nodes))
	for i, n := range g.nodes {
		indeg[i] = len(n.Needs)
		if indeg[i] == 0 {
			queue = append(queue, i)
		}
	}
	for k := 0; k < len(queue); k++ {
		for _, d := range g.nodes[queue[k]].Dependents {
			indeg[d]--
			if indeg[d] == 0 {
				queue = append(queue, d)
			}
		}
	}
	if len(queue) != len(g.nodes) {
		for i := range indeg {
			if indeg[i] > 0 {
				return nil, fmt.Errorf("build graph: dependency cycle through task %q", g.nodes[i].ID)
			}
		}
	}
	return g, nil
}

// Len returns the number of tasks.
func (g *Graph) Len() int { return len(g.nodes) }

// Node returns task i.
func (g *Graph) Node(i int) *Node { return &g.nodes[i] }

// Roots returns the tasks without needs.
func (g *Graph) Roots() []int { return g.roots }

// Zips reports whether task d zips with its need n: the need lets d start
// once it is running (see Node.Zip).
func (g *Graph) Zips(d, n int) bool { return slices.Contains(g.nodes[d].Zip, n) }

// Index returns the position of the task with the given id.
func (g *Graph) Index(id string) (int, bool) {
	i, ok := g.index[id]
	return i, ok
}

// InitialTasks returns the state every task of a new run starts in.
func (g *Graph) InitialTasks() []Task {
	ts := make([]Task, len(g.nodes))
	for i, n := range g.nodes {
		ts[i] = Task{State: TaskPending, PendingNeeds: len(n.Needs)}
	}
	return ts
}

// InitialRun returns the state of a new, queued run.
func (g *Graph) InitialRun() Run {
	return Run{State: RunQueued, Remaining: len(g.nodes)}
}

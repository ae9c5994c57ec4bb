package web

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
)

// shapeFrom builds tasks and their shape from "id: need need" lines.
func shapeFrom(lines ...string) ([]api.Task, graphShape) {
	var tasks []api.Task
	var g []GraphTask
	for i, l := range lines {
		var id string
		var needs []string
		for k, f := range regexp.MustCompile(`[^\s:]+`).FindAllString(l, -1) {
			if k == 0 {
				id = f
			} else {
				needs = append(needs, f)
			}
		}
		tasks = append(tasks, api.Task{ID: id, Index: i, State: engine.TaskPending})
		g = append(g, GraphTask{ID: id, Kind: "run", Needs: needs})
	}
	return tasks, shapeOf(tasks, g)
}

func TestLayers(t *testing.T) {
	// a → b → d, a → c → d, a → d: d is past its deepest need.
	_, s := shapeFrom("a", "b: a", "c: a", "d: a b c", "e")
	if got, want := layerOf(5, s.needs), []int{0, 1, 1, 2, 0}; !reflect.DeepEqual(got, want) {
		t.Errorf("layers %v, want %v", got, want)
	}
	// A cycle (refused by the loader) still places every node.
	if got := layerOf(2, [][]int{{1}, {0}}); len(got) != 2 {
		t.Errorf("cycle: %v", got)
	}
}

// crossings counts the pairs of edges between adjacent layers that cross.
func crossings(cols [][]int, needs [][]int, layer []int) int {
	pos := map[int]int{}
	for _, c := range cols {
		for k, i := range c {
			pos[i] = k
		}
	}
	type e struct{ a, b int }
	var es []e
	for i, ns := range needs {
		for _, p := range ns {
			if layer[i] == layer[p]+1 {
				es = append(es, e{pos[p], pos[i]})
			}
		}
	}
	n := 0
	for x := range es {
		for y := x + 1; y < len(es); y++ {
			if (es[x].a-es[y].a)*(es[x].b-es[y].b) < 0 {
				n++
			}
		}
	}
	return n
}

func TestOrderReducesCrossings(t *testing.T) {
	// In index order x1 needs b, x2 needs a: the edges cross; the sweep
	// untangles them.
	_, s := shapeFrom("a", "b", "x1: b", "x2: a", "y1: x2", "y2: x1")
	layer := layerOf(6, s.needs)
	before := crossings([][]int{{0, 1}, {2, 3}, {4, 5}}, s.needs, layer)
	cols := orderLayers(layer, s.needs)
	if after := crossings(cols, s.needs, layer); after != 0 || before == 0 {
		t.Errorf("crossings %d before, %d after the sweeps (%v)", before, after, cols)
	}
}

var edgeRE = regexp.MustCompile(`^M(\d+) (\d+) C\d+ \d+ \d+ \d+ (\d+) (\d+)$`)

func checkEdges(t *testing.T, v graphView) {
	t.Helper()
	for _, e := range v.Edges {
		m := edgeRE.FindStringSubmatch(e.D)
		if m == nil {
			t.Fatalf("edge %q", e.D)
		}
		x1, _ := strconv.Atoi(m[1])
		x2, _ := strconv.Atoi(m[3])
		if x2 <= x1 {
			t.Errorf("edge %q goes right to left", e.D)
		}
	}
}

func TestLayoutLeftToRightAndDeterministic(t *testing.T) {
	lines := []string{"a"}
	for i := 1; i < 200; i++ {
		lines = append(lines, fmt.Sprintf("t%d: t%d t%d", i, (i*7)%i, (i*13)%i))
	}
	lines[0] = "t0"
	tasks, s := shapeFrom(lines...)
	v := layoutGraph(1, tasks, s)
	if v.Collapsed || len(v.Nodes) != 200 || len(v.Edges) == 0 {
		t.Fatalf("%d nodes, %d edges, collapsed %v", len(v.Nodes), len(v.Edges), v.Collapsed)
	}
	checkEdges(t, v)
	if w := layoutGraph(1, tasks, s); !reflect.DeepEqual(v, w) {
		t.Errorf("two layouts of one graph differ")
	}
	for _, n := range v.Nodes {
		if n.X+n.W > v.Width || n.Y+n.H > v.Height {
			t.Errorf("node %s at %d,%d outside %dx%d", n.ID, n.X, n.Y, v.Width, v.Height)
		}
	}
}

func TestLayoutCollapses(t *testing.T) {
	// A chain of 2,000 tasks, and 3,000 more hanging off its start.
	lines := []string{"c0"}
	for i := 1; i < 2000; i++ {
		lines = append(lines, fmt.Sprintf("c%d: c%d", i, i-1))
	}
	for i := range 3000 {
		lines = append(lines, fmt.Sprintf("fan-%d: c0", i))
	}
	tasks, s := shapeFrom(lines...)
	tasks[5].State = engine.TaskFailed
	v := layoutGraph(1, tasks, s)
	if !v.Collapsed || len(v.Nodes) > maxGroupColumns*maxGroupsPerColumn {
		t.Fatalf("collapsed %v with %d nodes", v.Collapsed, len(v.Nodes))
	}
	checkEdges(t, v)
	total := 0
	g := groupTasks(tasks, layerOf(len(tasks), s.needs), s.needs)
	for _, tg := range g.groups {
		total += len(tg.Members)
	}
	if total != len(tasks) || len(g.groups) != len(v.Nodes) {
		t.Errorf("groups hold %d of %d tasks", total, len(tasks))
	}
	failed := 0
	for _, n := range v.Nodes {
		if n.Class == "s-failed" {
			failed++
			if !strings.HasPrefix(n.Sub, "✗1 ·") || !strings.Contains(n.Title, "1 failed") {
				t.Errorf("the failed task's group: %+v", n)
			}
		}
	}
	if failed != 1 {
		t.Errorf("%d groups show a failure, want 1", failed)
	}
	if w := layoutGraph(1, tasks, s); !reflect.DeepEqual(v, w) {
		t.Errorf("two layouts of one graph differ")
	}
}

func TestLayoutWithoutShape(t *testing.T) {
	tasks := []api.Task{{ID: "a", State: engine.TaskSucceeded}, {ID: "b", State: engine.TaskFailed}}
	v := layoutGraph(1, tasks, shapeOf(tasks, nil))
	if !v.NoEdges || len(v.Edges) != 0 || len(v.Nodes) != 2 || v.Nodes[0].ID != "b" {
		t.Errorf("%+v", v)
	}
}

package web

// A run's graph, laid out in Go and drawn as SVG by the run page: columns
// by the longest path from a root (so every edge goes left to right), the
// order within a column by barycentre sweeps (fewer crossings), and past
// maxGraphNodes tasks the graph collapses into groups (a band of columns
// and a task-id prefix each) so that the SVG stays small whatever the size
// of the run.

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// Sizes of the drawing, in SVG user units (pixels).
const (
	// maxGraphNodes is the most tasks drawn one by one; a bigger graph is
	// drawn as groups.
	maxGraphNodes = 300
	// maxGroupColumns is the most columns of groups: a deeper graph puts
	// several layers in one column.
	maxGroupColumns = 30
	// maxGroupsPerColumn is the most groups of one column: the biggest
	// prefixes get their own, the rest share one.
	maxGroupsPerColumn = 8

	nodeW, nodeH   = 168, 38
	groupW, groupH = 210, 46
	gapX, gapY     = 56, 12
	margin         = 8
	maxLabel       = 22 // characters of a task id drawn; the rest is in the title
)

// graphView is a run's graph placed for drawing.
type graphView struct {
	Width, Height int
	Nodes         []graphNode
	Edges         []graphEdge
	// Collapsed says the nodes are groups of tasks.
	Collapsed bool
	Tasks     int // tasks of the run
	Layers    int
	// NoEdges says the shape of the graph was not known: tasks are drawn
	// in one column per state rank, without edges.
	NoEdges bool
}

// graphNode is one task, or one group of tasks, placed.
type graphNode struct {
	ID   string // the task's id or the group's
	Href string
	X, Y int
	W, H int
	// Class is the state class (s-<state>); for a group the most urgent
	// state of its tasks.
	Class string
	Label string // the id as drawn (shortened)
	Sub   string // glyph, state and kind; for a group its counts
	Title string // everything, for the tooltip and the accessible name
	Group bool
}

// graphEdge is one edge as an SVG path.
type graphEdge struct {
	D string
}

// layerOf places each of n nodes in the layer of its longest path from a
// root: a node without needs is in layer 0, any other one layer past its
// deepest need. Needs must be indexes of other nodes; nodes on a cycle
// (a graph the loader would refuse) go after the deepest layer.
func layerOf(n int, needs [][]int) []int {
	layer := make([]int, n)
	indeg := make([]int, n)
	next := make([][]int, n)
	for i, ns := range needs {
		for _, p := range ns {
			indeg[i]++
			next[p] = append(next[p], i)
		}
	}
	queue := make([]int, 0, n)
	for i := range n {
		if indeg[i] == 0 {
			queue = append(queue, i)
		}
	}
	done := 0
	for len(queue) > done {
		p := queue[done]
		done++
		for _, c := range next[p] {
			layer[c] = max(layer[c], layer[p]+1)
			if indeg[c]--; indeg[c] == 0 {
				queue = append(queue, c)
			}
		}
	}
	if done < n {
		deepest := 0
		for _, i := range queue {
			deepest = max(deepest, layer[i])
		}
		for i := range n {
			if indeg[i] > 0 {
				layer[i] = deepest + 1
			}
		}
	}
	return layer
}

// orderLayers returns the nodes of each layer in drawing order: first by
// index, then improved by barycentre sweeps, down (each node toward the
// mean position of its needs) and up (toward the mean of what needs it).
// It is deterministic: ties keep the previous order.
func orderLayers(layer []int, needs [][]int) [][]int {
	depth := 0
	for _, l := range layer {
		depth = max(depth, l+1)
	}
	cols := make([][]int, depth)
	for i, l := range layer {
		cols[l] = append(cols[l], i)
	}
	next := make([][]int, len(layer))
	for i, ns := range needs {
		for _, p := range ns {
			next[p] = append(next[p], i)
		}
	}
	pos := make([]float64, len(layer))
	setPos := func(col []int) {
		for k, i := range col {
			pos[i] = float64(k) / float64(max(len(col), 1))
		}
	}
	for _, c := range cols {
		setPos(c)
	}
	key := make([]float64, len(layer))
	sweep := func(l int, from [][]int) {
		col := cols[l]
		for _, i := range col {
			key[i] = pos[i]
			if len(from[i]) > 0 {
				s := 0.0
				for _, j := range from[i] {
					s += pos[j]
				}
				key[i] = s / float64(len(from[i]))
			}
		}
		slices.SortStableFunc(col, func(a, b int) int { return cmp.Compare(key[a], key[b]) })
		setPos(col)
	}
	for range 4 {
		for l := 1; l < depth; l++ {
			sweep(l, needs)
		}
		for l := depth - 2; l >= 0; l-- {
			sweep(l, next)
		}
	}
	return cols
}

// stateRank orders states failures first, then what is moving, then what
// is done: the order of the task list, of counts and of a group's class.
var stateRank = map[string]int{
	"failed": 0, "timed_out": 1, "upstream_failed": 2, "lost": 3, "running": 4, "retry_wait": 5, "waiting": 6,
	"ready": 7, "queued": 8, "pending": 9, "cancelled": 10, "skipped": 11, "succeeded": 12,
}

func rankOf(state string) int {
	if r, ok := stateRank[state]; ok {
		return r
	}
	return len(stateRank)
}

// sortedCounts lists counts failures first, leaving out empty states.
func sortedCounts(m map[string]int) []stateCount {
	out := make([]stateCount, 0, len(m))
	for s, n := range m {
		if n > 0 {
			out = append(out, stateCount{s, n})
		}
	}
	slices.SortFunc(out, func(a, b stateCount) int {
		return cmp.Or(cmp.Compare(rankOf(a.State), rankOf(b.State)), strings.Compare(a.State, b.State))
	})
	return out
}

// countsText writes counts as "✗ 3 failed · ◐ 12 running".
func countsText(cs []stateCount) string {
	var b strings.Builder
	for k, c := range cs {
		if k > 0 {
			b.WriteString(" · ")
		}
		fmt.Fprintf(&b, "%s %d %s", glyph(c.State), c.N, strings.ReplaceAll(c.State, "_", " "))
	}
	return b.String()
}

// graphShape is a run's graph by task index: what each task needs and
// its kind, from Options.Graphs, matched to the run's tasks by id.
type graphShape struct {
	needs [][]int
	kinds []string
	known bool // false: Graphs gave nothing; no edges
}

func shapeOf(tasks []api.Task, g []GraphTask) graphShape {
	s := graphShape{needs: make([][]int, len(tasks)), kinds: make([]string, len(tasks)), known: g != nil}
	at := make(map[string]int, len(tasks))
	for i, t := range tasks {
		at[t.ID] = i
	}
	for _, gt := range g {
		i, ok := at[gt.ID]
		if !ok {
			continue
		}
		s.kinds[i] = gt.Kind
		for _, n := range gt.Needs {
			if j, ok := at[n]; ok && j != i && !slices.Contains(s.needs[i], j) {
				s.needs[i] = append(s.needs[i], j)
			}
		}
	}
	return s
}

// grouping is how a big graph collapses: the group of each task, and the
// groups by column with what each needs.
type grouping struct {
	of     []int // task index → group
	groups []taskGroup
}

// taskGroup is a set of tasks drawn as one node.
type taskGroup struct {
	ID      string // g<column>-<n>: stable for a graph, used in links and live updates
	Column  int
	Prefix  string // "" for the column's others
	FromL   int    // its layers, first and last
	ToL     int
	Members []int
	Needs   []int // groups of earlier columns it needs
}

// idPrefix is what groups a task with its like: its id up to the first
// '-', '_' or digit ("load-2024-01" and "load_eu" are both "load").
func idPrefix(id string) string {
	if i := strings.IndexAny(id, "-_0123456789"); i > 0 {
		return id[:i]
	}
	return id
}

// groupTasks collapses a graph of many tasks: layers into at most
// maxGroupColumns columns, and each column's tasks by id prefix into at
// most maxGroupsPerColumn groups. It depends only on the graph's shape and
// ids, not on states, so a page and its live stream agree on it.
func groupTasks(tasks []api.Task, layer []int, needs [][]int) grouping {
	depth := 0
	for _, l := range layer {
		depth = max(depth, l+1)
	}
	per := (depth + maxGroupColumns - 1) / maxGroupColumns // layers per column
	per = max(per, 1)
	columns := (depth + per - 1) / per
	type bucket struct {
		prefix  string
		members []int
	}
	byCol := make([]map[string]*bucket, columns)
	for i := range byCol {
		byCol[i] = map[string]*bucket{}
	}
	for i, t := range tasks {
		c := layer[i] / per
		p := idPrefix(t.ID)
		b := byCol[c][p]
		if b == nil {
			b = &bucket{prefix: p}
			byCol[c][p] = b
		}
		b.members = append(b.members, i)
	}
	g := grouping{of: make([]int, len(tasks))}
	for c, m := range byCol {
		bs := make([]*bucket, 0, len(m))
		for _, b := range m {
			bs = append(bs, b)
		}
		slices.SortFunc(bs, func(a, b *bucket) int {
			return cmp.Or(cmp.Compare(len(b.members), len(a.members)), strings.Compare(a.prefix, b.prefix))
		})
		if len(bs) > maxGroupsPerColumn {
			rest := &bucket{}
			for _, b := range bs[maxGroupsPerColumn-1:] {
				rest.members = append(rest.members, b.members...)
			}
			slices.Sort(rest.members)
			bs = append(bs[:maxGroupsPerColumn-1], rest)
		}
		for k, b := range bs {
			tg := taskGroup{ID: "g" + strconv.Itoa(c) + "-" + strconv.Itoa(k), Column: c, Prefix: b.prefix,
				FromL: c * per, ToL: min((c+1)*per, depth) - 1, Members: b.members}
			for _, i := range b.members {
				g.of[i] = len(g.groups)
			}
			g.groups = append(g.groups, tg)
		}
	}
	for gi := range g.groups {
		seen := map[int]bool{}
		for _, i := range g.groups[gi].Members {
			for _, p := range needs[i] {
				pg := g.of[p]
				if g.groups[pg].Column < g.groups[gi].Column && !seen[pg] {
					seen[pg] = true
					g.groups[gi].Needs = append(g.groups[gi].Needs, pg)
				}
			}
		}
		slices.Sort(g.groups[gi].Needs)
	}
	return g
}

// group finds a group by id.
func (g grouping) group(id string) (taskGroup, bool) {
	for _, tg := range g.groups {
		if tg.ID == id {
			return tg, true
		}
	}
	return taskGroup{}, false
}

// counts are the states of a group's tasks.
func (tg taskGroup) counts(tasks []api.Task) map[string]int {
	m := map[string]int{}
	for _, i := range tg.Members {
		m[string(tasks[i].State)]++
	}
	return m
}

// name is how a group is called: its prefix and its layers.
func (tg taskGroup) name() string {
	p := tg.Prefix + "…"
	if tg.Prefix == "" {
		p = "other tasks"
	}
	if tg.FromL == tg.ToL {
		return fmt.Sprintf("%s, layer %d", p, tg.FromL+1)
	}
	return fmt.Sprintf("%s, layers %d–%d", p, tg.FromL+1, tg.ToL+1)
}

// label is the group's name with its size, as drawn.
func (tg taskGroup) label() string { return fmt.Sprintf("%s (%d)", tg.name(), len(tg.Members)) }

// groupLive is what a page shows of a group and a live update changes.
type groupLive struct {
	Class string `json:"class"`
	Sub   string `json:"sub"`
	Title string `json:"title"`
}

func (tg taskGroup) live(tasks []api.Task) groupLive {
	cs := sortedCounts(tg.counts(tasks))
	class := "s-none"
	if len(cs) > 0 {
		class = "s-" + cs[0].State
	}
	short := make([]string, len(cs))
	for k, c := range cs {
		short[k] = glyph(c.State) + strconv.Itoa(c.N)
	}
	// The accessible name holds the text drawn (label and counts), then
	// the counts in words.
	sub := strings.Join(short, " ")
	return groupLive{Class: class, Sub: sub, Title: tg.label() + " " + sub + ": " + countsText(cs)}
}

// layoutGraph places a run's graph for drawing. runID makes the links.
func layoutGraph(runID int64, tasks []api.Task, shape graphShape) graphView {
	v := graphView{Tasks: len(tasks), NoEdges: !shape.known}
	needs := shape.needs
	if !shape.known {
		// Without the shape, columns by state: failures first.
		needs = make([][]int, len(tasks))
	}
	layer := layerOf(len(tasks), needs)
	for _, l := range layer {
		v.Layers = max(v.Layers, l+1)
	}
	if len(tasks) > maxGraphNodes {
		return layoutGroups(runID, tasks, layer, needs, v)
	}
	if !shape.known {
		for i, t := range tasks {
			layer[i] = rankOf(string(t.State))
		}
		layer = compact(layer)
	}
	cols := orderLayers(layer, needs)
	v.Layers = len(cols)
	at := make([]struct{ x, y int }, len(tasks))
	rows := 0
	for l, col := range cols {
		rows = max(rows, len(col))
		for k, i := range col {
			x, y := margin+l*(nodeW+gapX), margin+k*(nodeH+gapY)
			at[i] = struct{ x, y int }{x, y}
			t := tasks[i]
			st := string(t.State)
			label := t.ID
			if len(label) > maxLabel {
				label = label[:maxLabel-1] + "…"
			}
			sub := glyph(st) + " " + strings.ReplaceAll(st, "_", " ")
			if shape.kinds[i] != "" {
				sub += " · " + shape.kinds[i]
			}
			v.Nodes = append(v.Nodes, graphNode{
				ID: t.ID, Href: fmt.Sprintf("/runs/%d/tasks/%s", runID, t.ID), X: x, Y: y, W: nodeW, H: nodeH,
				Class: "s-" + st, Label: label, Sub: sub, Title: t.ID + " " + sub, // the text drawn, whole
			})
		}
	}
	for i, ns := range needs {
		for _, p := range ns {
			v.Edges = append(v.Edges, edge(at[p].x+nodeW, at[p].y+nodeH/2, at[i].x, at[i].y+nodeH/2))
		}
	}
	v.Width = 2*margin + len(cols)*(nodeW+gapX) - gapX
	v.Height = 2*margin + rows*(nodeH+gapY) - gapY
	return v
}

// compact renumbers layers 0..n-1 keeping their order.
func compact(layer []int) []int {
	seen := slices.Clone(layer)
	slices.Sort(seen)
	seen = slices.Compact(seen)
	out := make([]int, len(layer))
	for i, l := range layer {
		out[i], _ = slices.BinarySearch(seen, l)
	}
	return out
}

// layoutGroups draws a big graph as its groups.
func layoutGroups(runID int64, tasks []api.Task, layer []int, needs [][]int, v graphView) graphView {
	v.Collapsed = true
	g := groupTasks(tasks, layer, needs)
	glayer := make([]int, len(g.groups))
	gneeds := make([][]int, len(g.groups))
	for k, tg := range g.groups {
		glayer[k] = tg.Column
		gneeds[k] = tg.Needs
	}
	cols := orderLayers(glayer, gneeds)
	at := make([]struct{ x, y int }, len(g.groups))
	rows := 0
	for c, col := range cols {
		rows = max(rows, len(col))
		for k, gi := range col {
			tg := g.groups[gi]
			x, y := margin+c*(groupW+gapX), margin+k*(groupH+gapY)
			at[gi] = struct{ x, y int }{x, y}
			lv := tg.live(tasks)
			label := tg.label()
			v.Nodes = append(v.Nodes, graphNode{
				ID: tg.ID, Href: fmt.Sprintf("/runs/%d?group=%s#tasks", runID, tg.ID), X: x, Y: y, W: groupW, H: groupH,
				Class: lv.Class, Label: label, Sub: lv.Sub, Title: lv.Title, Group: true,
			})
		}
	}
	for gi, ns := range gneeds {
		for _, p := range ns {
			v.Edges = append(v.Edges, edge(at[p].x+groupW, at[p].y+groupH/2, at[gi].x, at[gi].y+groupH/2))
		}
	}
	v.Width = 2*margin + len(cols)*(groupW+gapX) - gapX
	v.Height = 2*margin + rows*(groupH+gapY) - gapY
	return v
}

// edge is a curve from the right side of one node to the left of another.
func edge(x1, y1, x2, y2 int) graphEdge {
	mx := (x1 + x2) / 2
	return graphEdge{D: fmt.Sprintf("M%d %d C%d %d %d %d %d %d", x1, y1, mx, y1, mx, y2, x2, y2)}
}

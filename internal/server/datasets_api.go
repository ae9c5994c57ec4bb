package server

import (
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// datasetsAPI serves the /datasets and /lineage routes: what the loaded
// pipelines declare about datasets comes from the registry (read at each
// request, so a reload shows at once), what happened to them from the
// store.
type datasetsAPI struct{ s *Server }

var _ api.Datasets = datasetsAPI{}

// lineageGraph is the graph the loaded pipelines' declarations make:
// datasets and pipelines as nodes, one edge per declaration, pointing the
// way data flows.
type lineageGraph struct {
	// datasets are the declared datasets, each with who declares it.
	datasets map[string]*api.Dataset
	// pipelines are the loaded pipelines and those a wait names.
	pipelines map[string]bool
	out, in   map[api.LineageNode][]api.LineageEdge
}

// graph builds the lineage graph of the pipelines in use (removed ones
// left out: they are no longer scheduled and their files are gone).
func (a datasetsAPI) graph() *lineageGraph {
	var ps []*spec.Pipeline
	for _, l := range a.s.reg.All() {
		if !l.Removed && l.Pipeline != nil {
			ps = append(ps, l.Pipeline)
		}
	}
	return newLineageGraph(ps)
}

// newLineageGraph builds the graph of the declarations of ps, in a stable
// order whatever the order of ps.
func newLineageGraph(ps []*spec.Pipeline) *lineageGraph {
	g := &lineageGraph{datasets: map[string]*api.Dataset{}, pipelines: map[string]bool{},
		out: map[api.LineageNode][]api.LineageEdge{}, in: map[api.LineageNode][]api.LineageEdge{}}
	for _, p := range ps {
		g.addPipeline(p)
	}
	for _, ds := range g.datasets {
		sortRefs(ds.Producers)
		sortRefs(ds.Consumers)
	}
	for _, m := range []map[api.LineageNode][]api.LineageEdge{g.out, g.in} {
		for n, es := range m {
			slices.SortFunc(es, compareEdges)
			m[n] = slices.Compact(es)
		}
	}
	return g
}

// addPipeline adds the declarations of p.
func (g *lineageGraph) addPipeline(p *spec.Pipeline) {
	g.pipelines[p.Name] = true
	self := pipelineNode(p.Name)
	for _, t := range p.Tasks {
		for _, d := range t.Produces {
			g.declare(d, api.DatasetRef{Pipeline: p.Name, Task: t.ID, Via: api.ViaProduces}, true)
			g.edge(api.LineageEdge{From: self, To: datasetNode(d), Via: api.ViaProduces, Task: t.ID})
		}
		for _, d := range t.Consumes {
			g.declare(d, api.DatasetRef{Pipeline: p.Name, Task: t.ID, Via: api.ViaConsumes}, false)
			g.edge(api.LineageEdge{From: datasetNode(d), To: self, Via: api.ViaConsumes, Task: t.ID})
		}
		if t.Wait == nil {
			continue
		}
		if d := t.Wait.Dataset; d != "" {
			g.declare(d, api.DatasetRef{Pipeline: p.Name, Task: t.ID, Via: api.ViaWait}, false)
			g.edge(api.LineageEdge{From: datasetNode(d), To: self, Via: api.ViaWait, Task: t.ID})
		}
		if q := t.Wait.Pipeline; q != "" {
			g.pipelines[q] = true
			g.edge(api.LineageEdge{From: pipelineNode(q), To: self, Via: api.ViaWait, Task: t.ID})
		}
	}
	if p.Schedule != nil {
		for _, d := range p.Schedule.Datasets {
			g.declare(d, api.DatasetRef{Pipeline: p.Name, Via: api.ViaSchedule}, false)
			g.edge(api.LineageEdge{From: datasetNode(d), To: self, Via: api.ViaSchedule})
		}
	}
}

// declare records that ref declares dataset name.
func (g *lineageGraph) declare(name string, ref api.DatasetRef, produces bool) {
	ds := g.datasets[name]
	if ds == nil {
		ds = &api.Dataset{Name: name, Producers: []api.DatasetRef{}, Consumers: []api.DatasetRef{}}
		g.datasets[name] = ds
	}
	list := &ds.Consumers
	if produces {
		list = &ds.Producers
	}
	if !slices.Contains(*list, ref) {
		*list = append(*list, ref)
	}
}

func (g *lineageGraph) edge(e api.LineageEdge) {
	g.out[e.From] = append(g.out[e.From], e)
	g.in[e.To] = append(g.in[e.To], e)
}

func datasetNode(name string) api.LineageNode {
	return api.LineageNode{Kind: api.NodeDataset, Name: name}
}

func pipelineNode(name string) api.LineageNode {
	return api.LineageNode{Kind: api.NodePipeline, Name: name}
}

func sortRefs(refs []api.DatasetRef) {
	slices.SortFunc(refs, func(a, b api.DatasetRef) int {
		return cmp.Or(cmp.Compare(a.Pipeline, b.Pipeline), cmp.Compare(a.Task, b.Task), cmp.Compare(a.Via, b.Via))
	})
}

func compareNodes(a, b api.LineageNode) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
}

func compareEdges(a, b api.LineageEdge) int {
	return cmp.Or(compareNodes(a.From, b.From), compareNodes(a.To, b.To), cmp.Compare(a.Via, b.Via), cmp.Compare(a.Task, b.Task))
}

// describe is the dataset called name as listed: its declarations and its
// last update (nil: none).
func (g *lineageGraph) describe(name string, last *store.DatasetUpdate) api.Dataset {
	out := api.Dataset{Name: name, Producers: []api.DatasetRef{}, Consumers: []api.DatasetRef{}}
	if ds := g.datasets[name]; ds != nil {
		out.Producers, out.Consumers = ds.Producers, ds.Consumers
	}
	if last != nil {
		u := api.NewDatasetUpdate(*last)
		out.LastUpdate = &u
	}
	return out
}

func (a datasetsAPI) ListDatasets(ctx context.Context) ([]api.Dataset, error) {
	g := a.graph()
	latest, err := a.s.store.LatestDatasetUpdates(ctx, nil)
	if err != nil {
		return nil, err
	}
	names := slices.Collect(maps.Keys(g.datasets))
	for n := range latest {
		if g.datasets[n] == nil {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	out := make([]api.Dataset, 0, len(names))
	for _, n := range names {
		var last *store.DatasetUpdate
		if u, ok := latest[n]; ok {
			last = &u
		}
		out = append(out, g.describe(n, last))
	}
	return out, nil
}

// latest returns the newest update of the dataset called name, nil for
// none.
func (a datasetsAPI) latest(ctx context.Context, name string) (*store.DatasetUpdate, error) {
	latest, err := a.s.store.LatestDatasetUpdates(ctx, []string{name})
	if err != nil {
		return nil, err
	}
	if u, ok := latest[name]; ok {
		return &u, nil
	}
	return nil, nil
}

func (a datasetsAPI) Dataset(ctx context.Context, name, cursor string, limit int) (api.Dataset, error) {
	before, err := parseCursor(cursor)
	if err != nil {
		return api.Dataset{}, err
	}
	g := a.graph()
	last, err := a.latest(ctx, name)
	if err != nil {
		return api.Dataset{}, err
	}
	if last == nil && g.datasets[name] == nil {
		return api.Dataset{}, api.NotFound("no dataset %q: no pipeline declares it and it has no update", name)
	}
	out := g.describe(name, last)
	if limit <= 0 {
		limit = store.DefaultDatasetUpdatesLimit
	}
	// One more than the page is read to know whether another follows.
	limit = min(limit, store.MaxDatasetUpdatesLimit-1)
	us, err := a.s.store.DatasetUpdates(ctx, store.DatasetUpdateFilter{Dataset: name, BeforeID: before, Limit: limit + 1})
	if err != nil {
		return api.Dataset{}, err
	}
	out.Updates = make([]api.DatasetUpdate, 0, min(len(us), limit))
	for i, u := range us {
		if i == limit {
			out.Next = strconv.FormatInt(us[limit-1].ID, 10)
			break
		}
		out.Updates = append(out.Updates, api.NewDatasetUpdate(u))
	}
	return out, nil
}

func (a datasetsAPI) RecordDatasetUpdate(ctx context.Context, name string, metadata json.RawMessage, actor string) (api.DatasetUpdate, error) {
	if err := api.CheckDatasetName(name); err != nil {
		return api.DatasetUpdate{}, err
	}
	u := store.DatasetUpdate{Dataset: name, Actor: actor, Metadata: metadata}
	// What the store would refuse is the caller's mistake, not an outage.
	check := u
	if err := store.PrepareDatasetUpdate(&check); err != nil {
		return api.DatasetUpdate{}, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "%v", err)
	}
	u, err := a.s.store.RecordDatasetUpdate(ctx, u)
	if err != nil {
		return api.DatasetUpdate{}, err
	}
	a.s.log.Info("dataset update recorded", "dataset", name, "update", u.ID, "actor", actor)
	a.s.datasetsUpdated([]string{name})
	if !a.s.leading() {
		a.s.wakeLeader(ctx) // the leader's scheduler starts what is scheduled on it
	}
	return api.NewDatasetUpdate(u), nil
}

func (a datasetsAPI) Lineage(ctx context.Context, name string, q api.LineageQuery) (api.Lineage, error) {
	g := a.graph()
	root := datasetNode(name)
	if g.datasets[name] == nil {
		last, err := a.latest(ctx, name)
		if err != nil {
			return api.Lineage{}, err
		}
		if last == nil {
			if !g.pipelines[name] {
				return api.Lineage{}, api.NotFound("no dataset or pipeline named %q", name)
			}
			root = pipelineNode(name)
		}
	}
	q.Direction = cmp.Or(q.Direction, api.LineageBoth)
	if q.Depth <= 0 {
		q.Depth = api.DefaultLineageDepth
	}
	q.Depth = min(q.Depth, api.MaxLineageDepth)
	return g.walk(root, q, api.MaxLineageNodes), nil
}

// walk collects the nodes and edges within q.Depth edges of root, going
// the way q.Direction says (both: upstream, then downstream), at most
// maxNodes nodes. Edges whose both ends are collected are answered, so a
// diamond shows whole.
func (g *lineageGraph) walk(root api.LineageNode, q api.LineageQuery, maxNodes int) api.Lineage {
	out := api.Lineage{Root: root, Direction: q.Direction, Depth: q.Depth, Nodes: []api.LineageNode{root}, Edges: []api.LineageEdge{}}
	var ways []bool // upstream?
	switch q.Direction {
	case api.LineageUpstream:
		ways = []bool{true}
	case api.LineageDownstream:
		ways = []bool{false}
	default:
		ways = []bool{true, false}
	}
	listed := map[api.LineageNode]bool{root: true}
	seenEdge := map[api.LineageEdge]bool{}
	for _, up := range ways {
		// Each way has its own visits, so a cycle seen one way is still
		// walked the other.
		visited := map[api.LineageNode]bool{root: true}
		frontier := []api.LineageNode{root}
		for level := 0; len(frontier) > 0; level++ {
			var next []api.LineageNode
			for _, n := range frontier {
				edges, far := g.out[n], func(e api.LineageEdge) api.LineageNode { return e.To }
				if up {
					edges, far = g.in[n], func(e api.LineageEdge) api.LineageNode { return e.From }
				}
				for _, e := range edges {
					m := far(e)
					switch {
					case visited[m]:
					case level == q.Depth:
						out.Truncated = true // the graph goes on beyond the depth
						if !listed[m] {
							continue
						}
					case !listed[m] && len(out.Nodes) >= maxNodes:
						out.Truncated = true
						continue
					default:
						if !listed[m] {
							listed[m] = true
							out.Nodes = append(out.Nodes, m)
						}
						visited[m] = true
						next = append(next, m)
					}
					if !seenEdge[e] {
						seenEdge[e] = true
						out.Edges = append(out.Edges, e)
					}
				}
			}
			frontier = next
		}
	}
	return out
}

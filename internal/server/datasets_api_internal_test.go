package server

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

// lineagePipelines are the files of the lineage tests: a produces
// raw.orders; b is scheduled on it, consumes it and produces mart; c
// waits for b; d waits for mart and produces raw.orders again (a cycle).
var lineagePipelines = map[string]string{
	"a": "name: a\ntasks:\n  - {id: extract, run: 'true', produces: [raw.orders]}\n",
	"b": "name: b\nschedule: {datasets: [raw.orders]}\ntasks:\n  - {id: transform, run: 'true', consumes: [raw.orders], produces: [mart]}\n",
	"c": "name: c\ntasks:\n  - {id: wait_b, wait: {pipeline: b, task: transform}}\n  - {id: report, needs: [wait_b], run: 'true'}\n",
	"d": "name: d\ntasks:\n  - {id: wait_mart, wait: {dataset: mart}}\n  - {id: backfeed, needs: [wait_mart], run: 'true', produces: [raw.orders]}\n",
}

func lineageGraphOf(t *testing.T, names ...string) *lineageGraph {
	t.Helper()
	var ps []*spec.Pipeline
	for _, n := range names {
		p, err := spec.Parse(n+".yaml", []byte(lineagePipelines[n]))
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		ps = append(ps, p)
	}
	return newLineageGraph(ps)
}

// edgeText writes an edge as "a -produces:extract-> raw.orders".
func edgeText(e api.LineageEdge) string {
	label := e.Via
	if e.Task != "" {
		label += ":" + e.Task
	}
	return fmt.Sprintf("%s -%s-> %s", e.From.Name, label, e.To.Name)
}

// TestLineageWalk walks the graph of lineagePipelines each way, to a
// depth, and within a bound of nodes.
func TestLineageWalk(t *testing.T) {
	ds, pl := datasetNode, pipelineNode
	for _, c := range []struct {
		name      string
		pipelines []string
		root      api.LineageNode
		dir       string
		depth     int
		maxNodes  int
		nodes     string
		edges     []string
		truncated bool
	}{
		{name: "downstream of raw.orders", pipelines: []string{"a", "b", "c"}, root: ds("raw.orders"), dir: "downstream", depth: 10,
			nodes: "raw.orders b mart c",
			edges: []string{"raw.orders -consumes:transform-> b", "raw.orders -schedule-> b", "b -produces:transform-> mart", "b -wait:wait_b-> c"}},
		{name: "upstream of raw.orders", pipelines: []string{"a", "b", "c"}, root: ds("raw.orders"), dir: "upstream", depth: 10,
			nodes: "raw.orders a", edges: []string{"a -produces:extract-> raw.orders"}},
		{name: "both from raw.orders", pipelines: []string{"a", "b", "c"}, root: ds("raw.orders"), dir: "both", depth: 10,
			nodes: "raw.orders a b mart c",
			edges: []string{"a -produces:extract-> raw.orders", "raw.orders -consumes:transform-> b", "raw.orders -schedule-> b",
				"b -produces:transform-> mart", "b -wait:wait_b-> c"}},
		{name: "upstream of pipeline c", pipelines: []string{"a", "b", "c"}, root: pl("c"), dir: "upstream", depth: 10,
			nodes: "c b raw.orders a",
			edges: []string{"b -wait:wait_b-> c", "raw.orders -consumes:transform-> b", "raw.orders -schedule-> b", "a -produces:extract-> raw.orders"}},
		{name: "depth 1", pipelines: []string{"a", "b", "c"}, root: ds("raw.orders"), dir: "downstream", depth: 1,
			nodes: "raw.orders b", edges: []string{"raw.orders -consumes:transform-> b", "raw.orders -schedule-> b"}, truncated: true},
		{name: "depth that reaches the end", pipelines: []string{"a", "b", "c"}, root: ds("raw.orders"), dir: "upstream", depth: 1,
			nodes: "raw.orders a", edges: []string{"a -produces:extract-> raw.orders"}},
		{name: "node bound", pipelines: []string{"a", "b", "c"}, root: ds("raw.orders"), dir: "downstream", depth: 10, maxNodes: 3,
			nodes: "raw.orders b mart", edges: []string{"raw.orders -consumes:transform-> b", "raw.orders -schedule-> b", "b -produces:transform-> mart"},
			truncated: true},
		// d closes a cycle: raw.orders -> b -> mart -> d -> raw.orders. The
		// walk ends, each node once; the edge back to the root is kept.
		{name: "cycle downstream", pipelines: []string{"a", "b", "d"}, root: ds("raw.orders"), dir: "downstream", depth: 10,
			nodes: "raw.orders b mart d",
			edges: []string{"raw.orders -consumes:transform-> b", "raw.orders -schedule-> b", "b -produces:transform-> mart",
				"mart -wait:wait_mart-> d", "d -produces:backfeed-> raw.orders"}},
		{name: "cycle both ways", pipelines: []string{"a", "b", "d"}, root: pl("b"), dir: "both", depth: 10,
			nodes: "b raw.orders a d mart",
			edges: []string{"raw.orders -consumes:transform-> b", "raw.orders -schedule-> b", "a -produces:extract-> raw.orders",
				"d -produces:backfeed-> raw.orders", "mart -wait:wait_mart-> d", "b -produces:transform-> mart"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := lineageGraphOf(t, c.pipelines...)
			l := g.walk(c.root, api.LineageQuery{Direction: c.dir, Depth: c.depth}, cmp.Or(c.maxNodes, api.MaxLineageNodes))
			var nodes []string
			for _, n := range l.Nodes {
				nodes = append(nodes, n.Name)
			}
			var edges []string
			for _, e := range l.Edges {
				edges = append(edges, edgeText(e))
			}
			if strings.Join(nodes, " ") != c.nodes || !slices.Equal(edges, c.edges) || l.Truncated != c.truncated {
				t.Errorf("nodes %q, edges:\n  %s\ntruncated %v\nwant nodes %q, edges:\n  %s\ntruncated %v",
					strings.Join(nodes, " "), strings.Join(edges, "\n  "), l.Truncated, c.nodes, strings.Join(c.edges, "\n  "), c.truncated)
			}
			if l.Root != c.root || l.Nodes[0] != c.root {
				t.Errorf("root %v, first node %v", l.Root, l.Nodes[0])
			}
		})
	}
}

// TestLineageDeclarations checks who each dataset names as producers and
// consumers, and that a pipeline a wait names is a node even when it is not
// loaded.
func TestLineageDeclarations(t *testing.T) {
	g := lineageGraphOf(t, "c", "d")
	mart := g.datasets["mart"]
	if mart == nil || len(mart.Producers) != 0 || !slices.Equal(mart.Consumers, []api.DatasetRef{{Pipeline: "d", Task: "wait_mart", Via: api.ViaWait}}) {
		t.Errorf("mart = %+v", mart)
	}
	if raw := g.datasets["raw.orders"]; raw == nil || !slices.Equal(raw.Producers, []api.DatasetRef{{Pipeline: "d", Task: "backfeed", Via: api.ViaProduces}}) {
		t.Errorf("raw.orders = %+v", raw)
	}
	if !g.pipelines["b"] {
		t.Error("b, which c waits for, is not a node")
	}
	l := g.walk(pipelineNode("b"), api.LineageQuery{Direction: "downstream", Depth: 10}, api.MaxLineageNodes)
	if len(l.Nodes) != 2 || l.Nodes[1] != pipelineNode("c") {
		t.Errorf("downstream of b: %+v", l.Nodes)
	}
}

package server_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// TestProcessDatasetsAndLineage drives datasets through a real server:
// pipeline a produces raw.orders; b is scheduled on it, consumes it and
// produces mart; c waits for b. An update recorded with the client shows
// in the list and in 'tasuki dataset show', starts b, whose success records
// an update of mart; the lineage walks both ways across the three, from a
// dataset and from a pipeline, through the client and the CLI.
func TestProcessDatasetsAndLineage(t *testing.T) {
	t.Parallel()
	home, dir := t.TempDir(), t.TempDir()
	writeFile(t, dir, "a.yaml", "name: a\ntasks:\n  - {id: extract, run: 'true', produces: [raw.orders]}\n")
	writeFile(t, dir, "b.yaml", `name: b
schedule: {datasets: [raw.orders]}
tasks:
  - id: transform
    consumes: [raw.orders]
    produces: [mart]
    run: 'true'
`)
	writeFile(t, dir, "c.yaml", `name: c
tasks:
  - id: wait_b
    wait: {pipeline: b, task: transform, poke: 50ms}
  - {id: report, needs: [wait_b], run: 'true'}
`)
	s := startServer(t, home, dir, nil)
	ctx := t.Context()
	c := s.c

	// Declared, not updated yet.
	list, err := c.ListDatasets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if names := datasetNames(list); !slices.Equal(names, []string{"mart", "raw.orders"}) {
		t.Fatalf("datasets %v", names)
	}
	raw := list[1]
	if !slices.Equal(raw.Producers, []api.DatasetRef{{Pipeline: "a", Task: "extract", Via: "produces"}}) ||
		!slices.Equal(raw.Consumers, []api.DatasetRef{{Pipeline: "b", Via: "schedule"}, {Pipeline: "b", Task: "transform", Via: "consumes"}}) ||
		raw.LastUpdate != nil {
		t.Errorf("raw.orders before any update: %+v", raw)
	}

	// An update from outside, with metadata, by the admin token.
	u, err := c.RecordDatasetUpdate(ctx, "raw.orders", json.RawMessage(`{"rows": 42}`))
	if err != nil {
		t.Fatal(err)
	}
	if u.ID <= 0 || u.Actor != "admin" || u.RunID != 0 || !sameJSON(u.Metadata, `{"rows": 42}`) || u.At.IsZero() {
		t.Errorf("recorded %+v", u)
	}
	list, err = c.ListDatasets(ctx)
	if err != nil || len(list) != 2 || list[1].LastUpdate == nil || list[1].LastUpdate.ID != u.ID {
		t.Fatalf("list after the update: %+v, %v", list, err)
	}
	tasukiCLI(t, s, "dataset", "show", "raw.orders").expect(t, 0, "dataset raw.orders", "produced by: a/extract",
		"consumed by: b (schedule), b/transform", `{"rows":42}`, "admin")
	tasukiCLI(t, s, "datasets").expect(t, 0, "raw.orders", "a/extract", "b (schedule), b/transform", "admin")

	// A dataset nothing declares is listed once it has an update.
	tasukiCLI(t, s, "dataset", "update", "vendor.feed", "--meta", `{"file": "f.csv"}`).expect(t, 0, "dataset vendor.feed: update")
	tasukiCLI(t, s, "dataset", "show", "vendor.feed", "-o", "json").expect(t, 0, `"actor": "admin"`, `"file": "f.csv"`)
	tasukiCLI(t, s, "dataset", "update", "bad name").expect(t, 2, "expected letters")
	tasukiCLI(t, s, "dataset", "show", "nope").expect(t, 2, `no dataset "nope"`)

	// The update starts b (scheduled on raw.orders), whose success records
	// an update of mart by its run.
	var bRun api.Run
	eventually(t, 30*time.Second, "a dataset-started run of b succeeds", func() (bool, string) {
		runs := listRuns(t, c, api.RunFilter{Pipeline: "b"})
		if len(runs) == 0 {
			return false, "no run of b"
		}
		bRun = runs[0]
		return bRun.State == "succeeded", "run " + string(bRun.State)
	})
	if bRun.Trigger != "dataset" {
		t.Errorf("run %d of b was started by %q, want dataset", bRun.ID, bRun.Trigger)
	}
	ds, err := c.Dataset(ctx, "mart", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Updates) != 1 || ds.Updates[0].RunID != bRun.ID || ds.Updates[0].Pipeline != "b" || ds.Updates[0].Task != "transform" || ds.Updates[0].Actor != "" {
		t.Errorf("mart after b ran: %+v", ds)
	}

	// Lineage across the three pipelines, both ways.
	down, err := c.Lineage(ctx, "raw.orders", api.LineageQuery{Direction: api.LineageDownstream})
	if err != nil {
		t.Fatal(err)
	}
	if got := edgeList(down); !slices.Equal(got, []string{
		"dataset raw.orders -consumes:transform-> pipeline b", "dataset raw.orders -schedule-> pipeline b",
		"pipeline b -produces:transform-> dataset mart", "pipeline b -wait:wait_b-> pipeline c",
	}) || down.Depth != api.DefaultLineageDepth || down.Truncated {
		t.Errorf("downstream of raw.orders:\n%s", strings.Join(edgeList(down), "\n"))
	}
	up, err := c.Lineage(ctx, "c", api.LineageQuery{Direction: api.LineageUpstream})
	if err != nil {
		t.Fatal(err)
	}
	if up.Root != (api.LineageNode{Kind: "pipeline", Name: "c"}) || !slices.Equal(edgeList(up), []string{
		"pipeline b -wait:wait_b-> pipeline c", "dataset raw.orders -consumes:transform-> pipeline b",
		"dataset raw.orders -schedule-> pipeline b", "pipeline a -produces:extract-> dataset raw.orders",
	}) {
		t.Errorf("upstream of c:\n%s", strings.Join(edgeList(up), "\n"))
	}
	short, err := c.Lineage(ctx, "c", api.LineageQuery{Direction: api.LineageUpstream, Depth: 1})
	if err != nil || len(short.Nodes) != 2 || !short.Truncated {
		t.Errorf("upstream of c, depth 1: %+v, %v", short, err)
	}
	var apiErr *api.Error
	if _, err := c.Lineage(ctx, "nothing", api.LineageQuery{}); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("lineage of an unknown name: %v", err)
	}
	tasukiCLI(t, s, "lineage", "mart").expect(t, 0, `dataset mart
upstream:
  <- pipeline b  (produces: task transform)
     <- dataset raw.orders  (consumes: task transform; schedule)
        <- pipeline a  (produces: task extract)
downstream:
  (nothing)
`)
	tasukiCLI(t, s, "lineage", "raw.orders", "--downstream").expect(t, 0, `dataset raw.orders
  -> pipeline b  (consumes: task transform; schedule)
     -> dataset mart  (produces: task transform)
     -> pipeline c  (wait: task wait_b)
`)
	tasukiCLI(t, s, "lineage", "nothing").expect(t, 2, `no dataset or pipeline named "nothing"`)

	// A viewer reads but does not record.
	viewer, _, err := c.CreateToken(ctx, api.CreateTokenRequest{Name: "dash", Role: api.RoleViewer}, "")
	if err != nil {
		t.Fatal(err)
	}
	vc := c.WithToken(viewer)
	if _, err := vc.ListDatasets(ctx); err != nil {
		t.Errorf("a viewer lists datasets: %v", err)
	}
	if _, err := vc.RecordDatasetUpdate(ctx, "raw.orders", nil); !errors.As(err, &apiErr) || apiErr.Status != 403 {
		t.Errorf("a viewer records an update: %v", err)
	}
}

func datasetNames(list []api.Dataset) []string {
	var out []string
	for _, ds := range list {
		out = append(out, ds.Name)
	}
	return out
}

// edgeList writes a lineage's edges as "kind name -via:task-> kind name".
func edgeList(l api.Lineage) []string {
	var out []string
	for _, e := range l.Edges {
		via := e.Via
		if e.Task != "" {
			via += ":" + e.Task
		}
		out = append(out, e.From.String()+" -"+via+"-> "+e.To.String())
	}
	return out
}

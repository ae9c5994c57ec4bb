package apitest

import (
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// Datasets is a fake api.Datasets in memory: declared datasets, updates
// and lineage graphs a test sets, and the updates recorded through it.
type Datasets struct {
	mu       sync.Mutex
	declared map[string]api.Dataset
	updates  []api.DatasetUpdate // oldest first
	graphs   map[string]api.Lineage
	queries  []api.LineageQuery
	fail     error

	// Now is the clock of recorded updates.
	Now func() time.Time
}

var _ api.Datasets = (*Datasets)(nil)

// NewDatasets returns a fake holding a small world tests can rely on:
//
//   - raw.orders, produced by task pull of pipeline extract, consumed by
//     task build of pipeline mart, which is also scheduled on it;
//   - warehouse.mart, produced by task build of mart and waited for by
//     task wait_mart of pipeline report;
//   - updates: #1 of raw.orders by run 7 of extract (task pull), #2 of
//     raw.orders recorded by "ops" with metadata {"rows": 42};
//   - the lineage graph of those declarations, answered for any of the
//     names in it (extract -> raw.orders -> mart -> warehouse.mart ->
//     report, and mart -> report through a wait of report on mart).
func NewDatasets() *Datasets {
	d := NewEmptyDatasets()
	d.Declare(api.Dataset{Name: "raw.orders",
		Producers: []api.DatasetRef{{Pipeline: "extract", Task: "pull", Via: api.ViaProduces}},
		Consumers: []api.DatasetRef{{Pipeline: "mart", Via: api.ViaSchedule}, {Pipeline: "mart", Task: "build", Via: api.ViaConsumes}}})
	d.Declare(api.Dataset{Name: "warehouse.mart",
		Producers: []api.DatasetRef{{Pipeline: "mart", Task: "build", Via: api.ViaProduces}},
		Consumers: []api.DatasetRef{{Pipeline: "report", Task: "wait_mart", Via: api.ViaWait}}})
	t0 := d.Now().Add(-2 * time.Hour)
	start, end := t0.Add(-24*time.Hour), t0
	d.AddUpdate(api.DatasetUpdate{Dataset: "raw.orders", At: t0, RunID: 7, Pipeline: "extract", Task: "pull", IntervalStart: &start, IntervalEnd: &end})
	d.AddUpdate(api.DatasetUpdate{Dataset: "raw.orders", At: t0.Add(time.Hour), Actor: "ops", Metadata: json.RawMessage(`{"rows":42}`)})

	ds, p := func(n string) api.LineageNode { return api.LineageNode{Kind: api.NodeDataset, Name: n} },
		func(n string) api.LineageNode { return api.LineageNode{Kind: api.NodePipeline, Name: n} }
	g := api.Lineage{
		Nodes: []api.LineageNode{p("extract"), ds("raw.orders"), p("mart"), ds("warehouse.mart"), p("report")},
		Edges: []api.LineageEdge{
			{From: p("extract"), To: ds("raw.orders"), Via: api.ViaProduces, Task: "pull"},
			{From: ds("raw.orders"), To: p("mart"), Via: api.ViaConsumes, Task: "build"},
			{From: ds("raw.orders"), To: p("mart"), Via: api.ViaSchedule},
			{From: p("mart"), To: ds("warehouse.mart"), Via: api.ViaProduces, Task: "build"},
			{From: ds("warehouse.mart"), To: p("report"), Via: api.ViaWait, Task: "wait_mart"},
			{From: p("mart"), To: p("report"), Via: api.ViaWait, Task: "wait_run"},
		},
	}
	for _, n := range g.Nodes {
		l := g
		l.Root = n
		d.SetLineage(n.Name, l)
	}
	return d
}

// NewEmptyDatasets returns a fake that knows no dataset.
func NewEmptyDatasets() *Datasets {
	return &Datasets{declared: map[string]api.Dataset{}, graphs: map[string]api.Lineage{},
		Now: func() time.Time { return time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC) }}
}

// Declare adds (or replaces) a declared dataset.
func (d *Datasets) Declare(ds api.Dataset) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.declared[ds.Name] = ds
}

// AddUpdate adds an update with the next id and returns it.
func (d *Datasets) AddUpdate(u api.DatasetUpdate) api.DatasetUpdate {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addLocked(u)
}

func (d *Datasets) addLocked(u api.DatasetUpdate) api.DatasetUpdate {
	u.ID = int64(len(d.updates) + 1)
	if u.At.IsZero() {
		u.At = d.Now()
	}
	d.updates = append(d.updates, u)
	return u
}

// Updates returns every update, oldest first.
func (d *Datasets) Updates() []api.DatasetUpdate {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.updates)
}

// SetLineage sets what Lineage answers for name (Direction and Depth are
// filled in from the query).
func (d *Datasets) SetLineage(name string, l api.Lineage) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.graphs[name] = l
}

// LineageQueries returns the queries Lineage was asked, in order.
func (d *Datasets) LineageQueries() []api.LineageQuery {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.queries)
}

// Fail makes every later call return err (nil: succeed again).
func (d *Datasets) Fail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fail = err
}

// describe builds the listing entry of a dataset; ok is false when nothing
// declares it and it has no update. The caller holds d.mu.
func (d *Datasets) describe(name string) (api.Dataset, bool) {
	ds, ok := d.declared[name]
	ds.Name = name
	for i := len(d.updates) - 1; i >= 0; i-- {
		if d.updates[i].Dataset == name {
			u := d.updates[i]
			ds.LastUpdate, ok = &u, true
			break
		}
	}
	return ds, ok
}

// ListDatasets implements api.Datasets.
func (d *Datasets) ListDatasets(ctx context.Context) ([]api.Dataset, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return nil, d.fail
	}
	names := slices.Collect(maps.Keys(d.declared))
	for _, u := range d.updates {
		names = append(names, u.Dataset)
	}
	slices.Sort(names)
	var out []api.Dataset
	for _, n := range slices.Compact(names) {
		ds, _ := d.describe(n)
		out = append(out, ds)
	}
	return out, nil
}

// Dataset implements api.Datasets, paging updates by id as the server does.
func (d *Datasets) Dataset(ctx context.Context, name, cursor string, limit int) (api.Dataset, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return api.Dataset{}, d.fail
	}
	ds, ok := d.describe(name)
	if !ok {
		return api.Dataset{}, api.NotFound("no dataset %q: no pipeline declares it and it has no update", name)
	}
	before := int64(1 << 62)
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || n <= 0 {
			return api.Dataset{}, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "cursor %q: not one this server gave", cursor)
		}
		before = n
	}
	limit = cmp.Or(limit, 50)
	ds.Updates = []api.DatasetUpdate{}
	for i := len(d.updates) - 1; i >= 0; i-- {
		u := d.updates[i]
		if u.Dataset != name || u.ID >= before {
			continue
		}
		if len(ds.Updates) == limit {
			ds.Next = strconv.FormatInt(ds.Updates[limit-1].ID, 10)
			break
		}
		ds.Updates = append(ds.Updates, u)
	}
	return ds, nil
}

// RecordDatasetUpdate implements api.Datasets.
func (d *Datasets) RecordDatasetUpdate(ctx context.Context, name string, metadata json.RawMessage, actor string) (api.DatasetUpdate, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return api.DatasetUpdate{}, d.fail
	}
	return d.addLocked(api.DatasetUpdate{Dataset: name, Actor: actor, Metadata: metadata}), nil
}

// Lineage implements api.Datasets: the graph set for name, or 404.
func (d *Datasets) Lineage(ctx context.Context, name string, q api.LineageQuery) (api.Lineage, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.queries = append(d.queries, q)
	if d.fail != nil {
		return api.Lineage{}, d.fail
	}
	l, ok := d.graphs[name]
	if !ok {
		return api.Lineage{}, api.NotFound("no dataset or pipeline named %q", name)
	}
	l.Direction, l.Depth = q.Direction, q.Depth
	l.Nodes, l.Edges = slices.Clone(l.Nodes), slices.Clone(l.Edges)
	return l, nil
}

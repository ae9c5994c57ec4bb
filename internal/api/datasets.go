package api

// Datasets and lineage: what the loaded pipelines declare about datasets
// (which tasks produce them, which pipelines consume them), the updates the
// store recorded, and the graph of datasets and pipelines those
// declarations make. Datasets are not in a namespace: their producers and
// consumers may be in several, so every route here is for global tokens
// (a confined token gets 403), like the secret store.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Datasets serves the /datasets and /lineage routes.
type Datasets interface {
	// ListDatasets describes every dataset the server knows, by name: those
	// the loaded pipelines declare and those that only have updates
	// (recorded from outside). Updates and Next are left empty.
	ListDatasets(ctx context.Context) ([]Dataset, error)
	// Dataset describes the dataset called name with a page of its
	// updates, newest first (cursor from a previous page's Next; limit 0
	// for the default). A name no pipeline declares and no update names is
	// an *Error with CodeNotFound.
	Dataset(ctx context.Context, name, cursor string, limit int) (Dataset, error)
	// RecordDatasetUpdate records an update of the dataset called name
	// made outside tasuki, by actor, with optional metadata (a JSON
	// object), and wakes what is scheduled on it.
	RecordDatasetUpdate(ctx context.Context, name string, metadata json.RawMessage, actor string) (DatasetUpdate, error)
	// Lineage walks the graph of datasets and pipelines from the dataset
	// called name or, when no dataset has that name, the pipeline. Neither
	// is an *Error with CodeNotFound.
	Lineage(ctx context.Context, name string, q LineageQuery) (Lineage, error)
}

// Dataset is the JSON shape of a dataset: who declares it and its last
// update.
type Dataset struct {
	Name string `json:"name"`
	// Producers are the tasks that declare it in produces.
	Producers []DatasetRef `json:"producers"`
	// Consumers are the tasks that declare it in consumes or wait for it
	// (wait.dataset), and the pipelines scheduled on it
	// (schedule.datasets).
	Consumers []DatasetRef `json:"consumers"`
	// LastUpdate is its newest update; absent when it has none.
	LastUpdate *DatasetUpdate `json:"last_update,omitempty"`
	// Updates is a page of its updates, newest first, and Next the cursor
	// of the following page: GET /datasets/{name} only. omitzero keeps
	// them out of the listing (nil) while the detail shows an empty page
	// as [].
	Updates []DatasetUpdate `json:"updates,omitzero"`
	Next    string          `json:"next,omitempty"`
}

// How a pipeline refers to a dataset, in DatasetRef.Via and
// LineageEdge.Via.
const (
	ViaProduces = "produces" // a task's produces
	ViaConsumes = "consumes" // a task's consumes
	ViaSchedule = "schedule" // the pipeline's schedule.datasets
	ViaWait     = "wait"     // a task's wait.dataset or wait.pipeline
)

// DatasetRef is a declaration of a dataset in a pipeline.
type DatasetRef struct {
	Pipeline string `json:"pipeline"`
	// Task is the task that declares it; empty for a schedule.
	Task string `json:"task,omitempty"`
	// Via says how: produces, consumes, schedule or wait.
	Via string `json:"via"`
}

// DatasetUpdate is the JSON shape of one recorded update of a dataset: a
// producing task's success, or an update recorded from outside (Actor set,
// no run).
type DatasetUpdate struct {
	// ID grows with every update recorded, across all datasets.
	ID            int64           `json:"id"`
	Dataset       string          `json:"dataset"`
	At            time.Time       `json:"at"`
	RunID         int64           `json:"run_id,omitempty"`
	Pipeline      string          `json:"pipeline,omitempty"`
	Task          string          `json:"task,omitempty"`
	IntervalStart *time.Time      `json:"interval_start,omitempty"`
	IntervalEnd   *time.Time      `json:"interval_end,omitempty"`
	Actor         string          `json:"actor,omitempty"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
}

// NewDatasetUpdate converts a stored update.
func NewDatasetUpdate(u store.DatasetUpdate) DatasetUpdate {
	return DatasetUpdate{
		ID: u.ID, Dataset: u.Dataset, At: u.At, RunID: u.RunID, Pipeline: u.Pipeline, Task: u.TaskID,
		IntervalStart: TimePtr(u.IntervalStart), IntervalEnd: TimePtr(u.IntervalEnd), Actor: u.Actor, Metadata: u.Metadata,
	}
}

// DatasetUpdateRequest is the body of POST /datasets/{name}/updates; the
// whole body is optional.
type DatasetUpdateRequest struct {
	// Metadata is stored with the update: a JSON object of at most
	// attempt.MaxDatasetMetadata bytes, as a producing task may write.
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// Lineage directions.
const (
	LineageUpstream   = "upstream"   // what the start is made from
	LineageDownstream = "downstream" // what is made from the start
	LineageBoth       = "both"
)

// Bounds of a lineage walk.
const (
	// DefaultLineageDepth is how many edges from the start a walk goes
	// when the request does not say.
	DefaultLineageDepth = 10
	// MaxLineageDepth is the deepest walk a request may ask for.
	MaxLineageDepth = 50
	// MaxLineageNodes bounds the nodes of one answer; a walk that would
	// find more stops there and says it was truncated.
	MaxLineageNodes = 1000
)

// LineageQuery says how far and which way a lineage walk goes.
type LineageQuery struct {
	Direction string // LineageUpstream, LineageDownstream or LineageBoth ("": both)
	Depth     int    // edges from the start, 1 to MaxLineageDepth (0: DefaultLineageDepth)
}

// Kinds of lineage node.
const (
	NodeDataset  = "dataset"
	NodePipeline = "pipeline"
)

// LineageNode is a dataset or a pipeline.
type LineageNode struct {
	Kind string `json:"kind"` // dataset or pipeline
	Name string `json:"name"`
}

// String is how messages and the CLI name a node: "dataset raw.orders".
func (n LineageNode) String() string { return n.Kind + " " + n.Name }

// LineageEdge is one declaration between two nodes: a pipeline produces a
// dataset (a task's produces); a dataset is consumed by a pipeline (a
// task's consumes or wait.dataset, or its schedule.datasets); a pipeline
// is waited for by another (a task's wait.pipeline). Edges point the way
// data flows.
type LineageEdge struct {
	From LineageNode `json:"from"`
	To   LineageNode `json:"to"`
	// Via says how: produces, consumes, schedule or wait.
	Via string `json:"via"`
	// Task is the task that declares it (of From for produces, of To
	// otherwise); empty for a schedule.
	Task string `json:"task,omitempty"`
}

// Lineage is the answer of GET /lineage/{name}: the nodes and edges found
// walking from Root.
type Lineage struct {
	Root      LineageNode `json:"root"`
	Direction string      `json:"direction"`
	Depth     int         `json:"depth"`
	// Nodes are in the order the walk found them, Root first.
	Nodes []LineageNode `json:"nodes"`
	Edges []LineageEdge `json:"edges"`
	// Truncated says the graph goes on beyond what is answered: deeper
	// than Depth, or past MaxLineageNodes nodes.
	Truncated bool `json:"truncated,omitempty"`
}

// WithDatasets serves the /datasets and /lineage routes over d. Without it
// they answer 503 unavailable.
func WithDatasets(d Datasets) Option {
	return func(h *handler) { h.datasets = d }
}

// maxDatasetName bounds a dataset's (or, for lineage, a pipeline's) name
// in a path.
const maxDatasetName = 255

// maxDatasetBody bounds the body of POST /datasets/{name}/updates: the
// metadata and room for the key around it.
const maxDatasetBody = attempt.MaxDatasetMetadata + 1024

func (h *handler) datasetStore() (Datasets, error) {
	if h.datasets == nil {
		return nil, Errorf(http.StatusServiceUnavailable, CodeUnavailable, "this server serves no datasets")
	}
	return h.datasets, nil
}

// CheckDatasetName checks the name of a dataset: the name syntax of
// pipeline files (letters, digits, '_', '.' and '-', starting with a
// letter, digit or '_'), as a path may carry it.
func CheckDatasetName(name string) error { return checkDatasetName("dataset name", name) }

// checkDatasetName checks a dataset's or pipeline's name from a path.
func checkDatasetName(what, name string) error {
	ok := name != "" && len(name) <= maxDatasetName
	for i, r := range name {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case (r == '.' || r == '-') && i > 0:
		default:
			ok = false
		}
	}
	if !ok {
		return invalid("%s %q: expected letters, digits, '_', '.' and '-', starting with a letter, digit or '_', at most %d bytes",
			what, clip(name, maxDatasetName), maxDatasetName)
	}
	return nil
}

// checkMetadata checks the metadata of an update: absent (or null), or a
// JSON object the store can keep.
func checkMetadata(raw json.RawMessage) (json.RawMessage, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" {
		return nil, nil
	}
	if t[0] != '{' {
		return nil, invalid("field \"metadata\": expected a JSON object, got %s", jsonKind(t[0]))
	}
	if len(t) > attempt.MaxDatasetMetadata {
		return nil, invalid("field \"metadata\": expected at most %d bytes of JSON, got %d", attempt.MaxDatasetMetadata, len(t))
	}
	if err := store.CheckJSON("field \"metadata\"", t); err != nil {
		return nil, invalid("%v", err)
	}
	return t, nil
}

// jsonKind names the JSON type a value starting with c has.
func jsonKind(c byte) string {
	switch c {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "true or false"
	}
	return "a number"
}

func (h *handler) listDatasets(w http.ResponseWriter, r *http.Request) error {
	d, err := h.datasetStore()
	if err != nil {
		return err
	}
	list, err := d.ListDatasets(r.Context())
	if err != nil {
		return err
	}
	for i := range list {
		list[i] = listingOf(list[i])
	}
	writeJSON(w, http.StatusOK, Page[Dataset]{Items: nonNil(list)})
	return nil
}

// listingOf is a dataset as a listing shows it: no updates, [] for no
// producers or consumers.
func listingOf(ds Dataset) Dataset {
	ds.Producers, ds.Consumers = nonNil(ds.Producers), nonNil(ds.Consumers)
	ds.Updates, ds.Next = nil, ""
	return ds
}

// named is the prelude of the routes on one name: the datasets service
// and the {name} of the path, checked (what says what the name may be).
func (h *handler) named(r *http.Request, what string) (Datasets, string, error) {
	d, err := h.datasetStore()
	if err != nil {
		return nil, "", err
	}
	name := r.PathValue("name")
	if err := checkDatasetName(what, name); err != nil {
		return nil, "", err
	}
	return d, name, nil
}

func (h *handler) dataset(w http.ResponseWriter, r *http.Request) error {
	d, name, err := h.named(r, "dataset name")
	if err != nil {
		return err
	}
	cursor, err := queryValue(r, "cursor")
	if err != nil {
		return err
	}
	limit, err := queryLimit(r)
	if err != nil {
		return err
	}
	ds, err := d.Dataset(r.Context(), name, cursor, limit)
	if err != nil {
		return err
	}
	ds.Producers, ds.Consumers, ds.Updates = nonNil(ds.Producers), nonNil(ds.Consumers), nonNil(ds.Updates)
	writeJSON(w, http.StatusOK, ds)
	return nil
}

func (h *handler) recordDatasetUpdate(w http.ResponseWriter, r *http.Request) error {
	d, name, err := h.named(r, "dataset name")
	if err != nil {
		return err
	}
	var req DatasetUpdateRequest
	if err := decodeBodyLimit(w, r, &req, true, maxDatasetBody); err != nil {
		return err
	}
	meta, err := checkMetadata(req.Metadata)
	if err != nil {
		return err
	}
	u, err := d.RecordDatasetUpdate(r.Context(), name, meta, who(r))
	if err != nil {
		return err
	}
	w.Header().Set("Location", fmt.Sprintf("%s/datasets/%s", Prefix, seg(name)))
	writeJSON(w, http.StatusCreated, u)
	return nil
}

func (h *handler) lineage(w http.ResponseWriter, r *http.Request) error {
	d, name, err := h.named(r, "dataset or pipeline name")
	if err != nil {
		return err
	}
	dir, err := queryValue(r, "direction")
	if err != nil {
		return err
	}
	switch dir {
	case "":
		dir = LineageBoth
	case LineageUpstream, LineageDownstream, LineageBoth:
	default:
		return invalid("query parameter direction=%q: expected upstream, downstream or both", dir)
	}
	depth, err := queryInt(r, "depth", 1, MaxLineageDepth, DefaultLineageDepth)
	if err != nil {
		return err
	}
	l, err := d.Lineage(r.Context(), name, LineageQuery{Direction: dir, Depth: int(depth)})
	if err != nil {
		return err
	}
	l.Nodes, l.Edges = nonNil(l.Nodes), nonNil(l.Edges)
	writeJSON(w, http.StatusOK, l)
	return nil
}

// ListDatasets lists the datasets the server knows.
func (c *Client) ListDatasets(ctx context.Context) ([]Dataset, error) {
	var p Page[Dataset]
	err := c.do(ctx, request{method: http.MethodGet, path: "/datasets"}, &p)
	return p.Items, err
}

// Dataset describes one dataset with a page of its updates, newest first:
// cursor "" and limit 0 for the first page of the default size.
func (c *Client) Dataset(ctx context.Context, name, cursor string, limit int) (Dataset, error) {
	q := url.Values{}
	setPage(q, cursor, limit)
	var ds Dataset
	err := c.do(ctx, request{method: http.MethodGet, path: "/datasets/" + seg(name), query: q}, &ds)
	return ds, err
}

// RecordDatasetUpdate records an update of a dataset made outside tasuki,
// with optional metadata (a JSON object); the server names the token as
// who recorded it.
func (c *Client) RecordDatasetUpdate(ctx context.Context, name string, metadata json.RawMessage) (DatasetUpdate, error) {
	var u DatasetUpdate
	err := c.do(ctx, request{method: http.MethodPost, path: "/datasets/" + seg(name) + "/updates", body: DatasetUpdateRequest{Metadata: metadata}}, &u)
	return u, err
}

// Lineage walks the lineage graph from a dataset (or pipeline) on the
// server; a zero query walks both ways to the default depth.
func (c *Client) Lineage(ctx context.Context, name string, q LineageQuery) (Lineage, error) {
	v := url.Values{}
	if q.Direction != "" {
		v.Set("direction", q.Direction)
	}
	if q.Depth != 0 {
		v.Set("depth", strconv.Itoa(q.Depth))
	}
	var l Lineage
	err := c.do(ctx, request{method: http.MethodGet, path: "/lineage/" + seg(name), query: v}, &l)
	return l, err
}

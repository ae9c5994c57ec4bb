package cli

import (
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/logs"
)

// newDatasetServer serves the real API handler over the fake datasets on a
// loopback port and returns its URL and an admin token.
func newDatasetServer(t *testing.T, d *apitest.Datasets) (url, token string) {
	t.Helper()
	tokens := apitest.NewTokens()
	token = tokens.AddAPI("admin", api.RoleAdmin, "")
	h := api.NewHandler(apitest.NewSeeded(), logs.NewFiles(t.TempDir()), api.WithTokens(tokens), api.WithDatasets(d),
		api.WithLogger(slog.New(slog.DiscardHandler)))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, token
}

// TestDatasetCommands runs the dataset commands against a server and
// checks their exit status, output, and what the server was asked.
func TestDatasetCommands(t *testing.T) {
	for _, c := range []struct {
		name   string
		args   []string
		setup  func(d *apitest.Datasets)
		empty  bool // a server that knows no dataset
		code   int
		stdout []string
		stderr []string
		check  func(t *testing.T, d *apitest.Datasets, r result)
	}{
		{name: "datasets", args: []string{"datasets"},
			stdout: []string{"NAME", "PRODUCERS", "CONSUMERS", "LAST UPDATE", "RUN", "BY",
				"raw.orders", "extract/pull", "mart (schedule), mart/build", " ops\n", "warehouse.mart", "mart/build", "report/wait_mart (wait)"}},
		{name: "datasets json", args: []string{"datasets", "-o", "json"},
			check: func(t *testing.T, d *apitest.Datasets, r result) {
				var list []api.Dataset
				mustDecode(t, r.stdout, &list)
				if len(list) != 2 || list[0].Name != "raw.orders" || list[0].LastUpdate == nil || list[0].LastUpdate.Actor != "ops" || list[1].LastUpdate != nil {
					t.Errorf("datasets = %+v", list)
				}
			}},
		{name: "datasets none", args: []string{"datasets", "-o", "json"},
			empty: true,
			check: func(t *testing.T, d *apitest.Datasets, r result) {
				if strings.TrimSpace(r.stdout) != "[]" {
					t.Errorf("no datasets printed %q, want []", r.stdout)
				}
			}},

		{name: "show", args: []string{"dataset", "show", "raw.orders"},
			stdout: []string{"dataset raw.orders\n", "produced by: extract/pull\n", "consumed by: mart (schedule), mart/build\n",
				"UPDATE", "METADATA", `{"rows":42}`, "extract/pull", " to "}},
		{name: "show paged", args: []string{"dataset", "show", "raw.orders", "--limit", "1"},
			stderr: []string{"more: tasuki dataset show raw.orders --cursor 2"},
			check: func(t *testing.T, d *apitest.Datasets, r result) {
				_, table, _ := strings.Cut(r.stdout, "METADATA\n")
				if rows := strings.Split(strings.TrimSpace(table), "\n"); len(rows) != 1 || !strings.HasPrefix(rows[0], "2 ") || !strings.Contains(rows[0], "ops") {
					t.Errorf("first page of one update:\n%s", r.stdout)
				}
			}},
		{name: "show next page", args: []string{"dataset", "show", "raw.orders", "--limit", "1", "--cursor", "2"},
			stdout: []string{"extract/pull"}},
		{name: "show without updates", args: []string{"dataset", "show", "warehouse.mart"}, stdout: []string{"no updates yet"}},
		{name: "show json", args: []string{"dataset", "show", "warehouse.mart", "-o", "json"},
			check: func(t *testing.T, d *apitest.Datasets, r result) {
				var ds api.Dataset
				mustDecode(t, r.stdout, &ds)
				if ds.Name != "warehouse.mart" || ds.Updates == nil || len(ds.Updates) != 0 || !strings.Contains(r.stdout, `"updates": []`) {
					t.Errorf("dataset = %+v\n%s", ds, r.stdout)
				}
			}},
		{name: "show unknown", args: []string{"dataset", "show", "nope"}, code: 2, stderr: []string{`no dataset "nope"`}},
		{name: "show bad name", args: []string{"dataset", "show", "raw orders"}, code: 2, stderr: []string{`dataset name "raw orders": expected letters`}},

		{name: "update", args: []string{"dataset", "update", "raw.orders", "--meta", `{"rows": 3, "path": "s3://b/x/"}`},
			stdout: []string{"dataset raw.orders: update 3 recorded\n"},
			check: func(t *testing.T, d *apitest.Datasets, r result) {
				us := d.Updates()
				u := us[len(us)-1]
				var meta map[string]any
				if err := json.Unmarshal(u.Metadata, &meta); err != nil || u.Actor != "admin" || meta["rows"] != 3.0 || meta["path"] != "s3://b/x/" {
					t.Errorf("recorded %+v (metadata %s)", u, u.Metadata)
				}
			}},
		{name: "update without metadata json", args: []string{"dataset", "update", "new_feed", "-o", "json"},
			check: func(t *testing.T, d *apitest.Datasets, r result) {
				var u api.DatasetUpdate
				mustDecode(t, r.stdout, &u)
				if u.ID != 3 || u.Dataset != "new_feed" || u.Metadata != nil || u.Actor != "admin" {
					t.Errorf("update = %+v", u)
				}
			}},
		{name: "update bad meta", args: []string{"dataset", "update", "raw.orders", "--meta", "[1, 2]"}, code: 2,
			stderr: []string{`--meta "[1, 2]": expected a JSON object`}},
		{name: "update malformed meta", args: []string{"dataset", "update", "raw.orders", "--meta", "{rows: 3}"}, code: 2,
			stderr: []string{"expected a JSON object"}},
		{name: "update bad name", args: []string{"dataset", "update", "-raw"}, code: 2},
		{name: "update refused", args: []string{"dataset", "update", "raw.orders"}, code: 2,
			setup: func(d *apitest.Datasets) {
				d.Fail(api.Errorf(403, api.CodeForbidden, "token \"fin\" is confined to namespace \"finance\""))
			},
			stderr: []string{"confined to namespace"}},
		{name: "server error", args: []string{"datasets"}, code: 1, setup: func(d *apitest.Datasets) { d.Fail(apitest.ErrBoom) },
			stderr: []string{"internal error"}},

		{name: "lineage both ways", args: []string{"lineage", "raw.orders"},
			check: func(t *testing.T, d *apitest.Datasets, r result) {
				want := `dataset raw.orders
upstream:
  <- pipeline extract  (produces: task pull)
downstream:
  -> pipeline mart  (consumes: task build; schedule)
     -> dataset warehouse.mart  (produces: task build)
        -> pipeline report  (wait: task wait_mart)
     -> pipeline report  (wait: task wait_run) (see above)
`
				if r.stdout != want {
					t.Errorf("lineage printed:\n%s\nwant:\n%s", r.stdout, want)
				}
				if q := d.LineageQueries(); !slices.Equal(q, []api.LineageQuery{{Direction: "both", Depth: api.DefaultLineageDepth}}) {
					t.Errorf("queries %+v", q)
				}
			}},
		{name: "lineage upstream", args: []string{"lineage", "report", "--upstream", "--depth", "3"},
			check: func(t *testing.T, d *apitest.Datasets, r result) {
				want := `pipeline report
  <- dataset warehouse.mart  (wait: task wait_mart)
     <- pipeline mart  (produces: task build)
        <- dataset raw.orders  (consumes: task build; schedule)
           <- pipeline extract  (produces: task pull)
  <- pipeline mart  (wait: task wait_run) (see above)
`
				if r.stdout != want {
					t.Errorf("lineage printed:\n%s\nwant:\n%s", r.stdout, want)
				}
				if q := d.LineageQueries(); !slices.Equal(q, []api.LineageQuery{{Direction: "upstream", Depth: 3}}) {
					t.Errorf("queries %+v", q)
				}
			}},
		{name: "lineage downstream of the end", args: []string{"lineage", "report", "--downstream"},
			stdout: []string{"pipeline report\n  (nothing)\n"}},
		{name: "lineage both flags", args: []string{"lineage", "mart", "--upstream", "--downstream"},
			check: func(t *testing.T, d *apitest.Datasets, r result) {
				if q := d.LineageQueries(); len(q) != 1 || q[0].Direction != "both" {
					t.Errorf("queries %+v", q)
				}
			}},
		{name: "lineage truncated", args: []string{"lineage", "extract"},
			setup: func(d *apitest.Datasets) {
				d.SetLineage("extract", api.Lineage{Root: api.LineageNode{Kind: api.NodePipeline, Name: "extract"}, Truncated: true})
			},
			stdout: []string{"(nothing)", "the graph goes on beyond depth 10"}},
		{name: "lineage json", args: []string{"lineage", "raw.orders", "-o", "json"},
			check: func(t *testing.T, d *apitest.Datasets, r result) {
				var l api.Lineage
				mustDecode(t, r.stdout, &l)
				if l.Root.Name != "raw.orders" || len(l.Nodes) != 5 || len(l.Edges) != 6 || l.Direction != "both" {
					t.Errorf("lineage = %+v", l)
				}
			}},
		{name: "lineage unknown", args: []string{"lineage", "nope"}, code: 2, stderr: []string{`no dataset or pipeline named "nope"`}},
		{name: "lineage bad depth", args: []string{"lineage", "raw.orders", "--depth", "51"}, code: 2, stderr: []string{"--depth 51: expected 1 to 50"}},
		{name: "lineage bad output", args: []string{"lineage", "raw.orders", "-o", "yaml"}, code: 2, stderr: []string{"expected table or json"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := apitest.NewDatasets()
			if c.empty {
				d = apitest.NewEmptyDatasets()
			}
			if c.setup != nil {
				c.setup(d)
			}
			url, token := newDatasetServer(t, d)
			r := call(append([]string{"--server", url, "--token", token}, c.args...)...)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, c.code, r.stdout, r.stderr)
			}
			for _, want := range c.stdout {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
				}
			}
			for _, want := range c.stderr {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
				}
			}
			if c.check != nil {
				c.check(t, d, r)
			}
		})
	}
}

// TestDatasetCommandsNeedAServer checks the dataset commands say they need
// a server when none is given.
func TestDatasetCommandsNeedAServer(t *testing.T) {
	t.Setenv(serverEnv, "")
	for _, args := range [][]string{{"datasets"}, {"dataset", "show", "raw.orders"}, {"dataset", "update", "raw.orders"}, {"lineage", "raw.orders"}} {
		r := call(args...)
		if r.code != 2 || !strings.Contains(r.stderr, "needs a server: pass --server URL or set TASUKI_SERVER") {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}

// TestDatasetHelp checks the group command lists its subcommands and the
// help of update says what an update does.
func TestDatasetHelp(t *testing.T) {
	r := call("dataset")
	if r.code != 0 || !strings.Contains(r.stdout, "show") || !strings.Contains(r.stdout, "update") {
		t.Errorf("tasuki dataset: exit %d\n%s", r.code, r.stdout)
	}
	if r := call("dataset", "nope"); r.code != 2 {
		t.Errorf("tasuki dataset nope: exit %d", r.code)
	}
	r = call("dataset", "update", "--help")
	if !strings.Contains(r.stdout, "scheduled on the dataset") || !strings.Contains(r.stdout, "--meta") {
		t.Errorf("update --help:\n%s", r.stdout)
	}
}

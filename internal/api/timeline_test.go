package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
	"github.com/tasuki-dev/tasuki/internal/timeline"
)

// timelineEnv is the API over a fake service (for who may see what) and a
// real SQLite store holding the runs whose timelines are exported: run 1
// of hello (no namespace), which failed with a log, and run 2 of ledger
// (namespace finance).
type timelineEnv struct {
	fake    *apitest.Fake
	tokens  *apitest.Tokens
	st      *sqlite.DB
	logs    *logs.Files
	handler http.Handler
	admin   string
}

var timelineT0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func newTimelineEnv(t *testing.T, src func(*sqlite.DB) timeline.Source, opts ...api.Option) *timelineEnv {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "tasuki.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &timelineEnv{fake: apitest.New(), tokens: apitest.NewTokens(), st: st, logs: logs.NewFiles(t.TempDir())}
	e.fake.AddPipeline(api.Pipeline{Name: "hello", File: "pipelines/hello.yaml"})
	e.fake.AddPipeline(api.Pipeline{Name: "ledger", File: "pipelines/finance/ledger.yaml", Namespace: "finance"})
	t0 := timelineT0
	three := 3
	for i, pipeline := range []string{"hello", "ledger"} {
		run, err := st.CreateRun(ctx, store.NewRun{
			Run:   store.Run{Pipeline: pipeline, Trigger: store.TriggerManual, CreatedAt: t0, Run: engine.Run{State: engine.RunFailed, StartedAt: t0, FinishedAt: t0.Add(time.Minute)}},
			Tasks: []store.TaskRow{{Index: 0, TaskID: "load", Task: engine.Task{State: engine.TaskFailed, Attempt: 1, ExitCode: &three, Message: "exit status 3"}}},
			Actor: "alice",
		})
		if err != nil {
			t.Fatal(err)
		}
		if run.ID != int64(i+1) {
			t.Fatalf("run id %d", run.ID)
		}
		e.fake.AddRun(api.Run{ID: run.ID, Pipeline: pipeline, State: engine.RunFailed, CreatedAt: t0})
		err = st.Apply(ctx, store.Change{RunID: run.ID, Transition: engine.Transition{Records: []engine.Record{
			{Time: t0, Kind: engine.EvRunStarted, Task: -1},
			{Time: t0, Kind: engine.EvTaskStarted, Task: 0, Attempt: 1},
			{Time: t0.Add(time.Minute), Kind: engine.EvTaskFailed, Task: 0, Attempt: 1, ExitCode: &three, Message: "exit status 3"},
			{Time: t0.Add(time.Minute), Kind: engine.RecRunFinished, Task: -1, Message: "failed"},
		}}, Attempts: []store.Attempt{{Index: 0, Attempt: 1, Worker: "w1", StartedAt: t0, FinishedAt: t0.Add(time.Minute),
			Outcome: store.OutcomeFailed, ExitCode: &three, Message: "exit status 3", Log: "load.1"}}})
		if err != nil {
			t.Fatal(err)
		}
		writeLog(t, e.logs, logs.Key{RunID: run.ID, TaskID: "load", Attempt: 1}, "reading ledger", "ledger.csv: no such file")
	}
	e.admin = e.tokens.AddAPI("admin", api.RoleAdmin, "")
	var source timeline.Source = st
	if src != nil {
		source = src(st)
	}
	opts = append([]api.Option{api.WithLogger(slog.New(slog.DiscardHandler)), api.WithTokens(e.tokens),
		api.WithTimelines(source, func() time.Time { return t0.Add(time.Hour) })}, opts...)
	e.handler = api.NewHandler(e.fake, e.logs, opts...)
	return e
}

// get asks for path with token (the admin's when empty).
func (e *timelineEnv) get(path, token string) *httptest.ResponseRecorder {
	if token == "" {
		token = e.admin
	}
	req := httptest.NewRequest(http.MethodGet, api.Prefix+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return rec
}

func TestTimelineRoute(t *testing.T) {
	e := newTimelineEnv(t, nil)

	rec := e.get("/runs/1/timeline", "")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("json: %d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var doc timeline.Document
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.Run.ID != 1 || doc.Run.Actor != "alice" || len(doc.Events) != 5 || len(doc.Attempts) != 1 || doc.Attempts[0].LogTail == nil ||
		len(doc.Attempts[0].LogTail.Lines) != 2 || !strings.HasSuffix(doc.Attempts[0].LogTail.Lines[1], " out ledger.csv: no such file") {
		t.Fatalf("document %+v", doc)
	}

	rec = e.get("/runs/1/timeline?format=markdown&tz=Asia/Tokyo", "")
	md := rec.Body.String()
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/markdown; charset=utf-8" {
		t.Fatalf("markdown: %d %q %s", rec.Code, rec.Header().Get("Content-Type"), md)
	}
	for _, want := range []string{
		"# Run 1 of hello: failed\n",
		"- **Started:** 2026-11-20 19:00:00 JST",
		"| 19:01:00.000 | 1m | +1m | `load` | **attempt 1 failed after 1m (exit 3)** |",
		" out ledger.csv: no such file\n```\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the Markdown lacks %q:\n%s", want, md)
		}
	}

	for _, c := range []struct {
		path string
		code int
		want string
	}{
		{"/runs/99/timeline", 404, "no run 99"},
		{"/runs/abc/timeline", 400, `run id "abc"`},
		{"/runs/1/timeline?format=xml", 400, `format="xml": expected json or markdown`},
		{"/runs/1/timeline?tz=Mars/Olympus", 400, `tz="Mars/Olympus": expected a time zone name`},
		{"/runs/1/timeline?tz=../../etc/passwd", 400, "expected a time zone name"},
		{"/runs/1/timeline?format=json&format=markdown", 400, "given 2 times"},
		{"/runs/1/timeline?after=3", 400, "this route takes format, tz"},
	} {
		rec := e.get(c.path, "")
		var eb api.ErrorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || rec.Code != c.code || !strings.Contains(eb.Error.Message, c.want) {
			t.Errorf("GET %s: %d %s, want %d with %q", c.path, rec.Code, rec.Body, c.code, c.want)
		}
	}
}

// TestTimelineAccess: a viewer may export; a token confined to a namespace
// sees the runs of its pipelines only, others are missing to it; a worker
// token may not.
func TestTimelineAccess(t *testing.T) {
	e := newTimelineEnv(t, nil)
	viewer := e.tokens.AddAPI("viewer", api.RoleViewer, "")
	finance := e.tokens.AddAPI("finance", api.RoleViewer, "finance")
	worker := e.tokens.Add("w1")
	for _, c := range []struct {
		token string
		path  string
		code  int
	}{
		{viewer, "/runs/1/timeline", 200},
		{viewer, "/runs/2/timeline?format=markdown", 200},
		{finance, "/runs/2/timeline", 200},
		{finance, "/runs/1/timeline", 404},
		{finance, "/runs/1/timeline?format=markdown", 404},
		{worker, "/runs/1/timeline", 403},
		{"not-a-token", "/runs/1/timeline", 401},
	} {
		if rec := e.get(c.path, c.token); rec.Code != c.code {
			t.Errorf("GET %s as %.8s: %d %s, want %d", c.path, c.token, rec.Code, rec.Body, c.code)
		}
	}
}

func TestTimelineUnavailable(t *testing.T) {
	tokens := apitest.NewTokens()
	admin := tokens.AddAPI("admin", api.RoleAdmin, "")
	h := api.NewHandler(apitest.NewSeeded(), nil, api.WithLogger(slog.New(slog.DiscardHandler)), api.WithTokens(tokens))
	req := httptest.NewRequest(http.MethodGet, api.Prefix+"/runs/1/timeline", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "unavailable") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

// failingSource fails reading records once the answer has started.
type failingSource struct {
	timeline.Source
	calls atomic.Int32
}

func (f *failingSource) Events(ctx context.Context, runID, after int64, limit int) ([]store.Event, error) {
	if f.calls.Add(1) > 1 { // the first pass reads once; the second fails
		return nil, errors.New("disk on fire")
	}
	return f.Source.Events(ctx, runID, after, limit)
}

// TestTimelineClient: the client copies an export, and an export cut short
// by a store failure reaches it as an error, not as a shorter export.
func TestTimelineClient(t *testing.T) {
	for _, c := range []struct {
		name   string
		src    func(*sqlite.DB) timeline.Source
		format string
		ok     bool
	}{
		{"json", nil, api.TimelineJSON, true},
		{"markdown", nil, api.TimelineMarkdown, true},
		{"cut short", func(st *sqlite.DB) timeline.Source { return &failingSource{Source: st} }, api.TimelineJSON, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newTimelineEnv(t, c.src)
			srv := httptest.NewServer(e.handler)
			defer srv.Close()
			cl, err := api.NewClient(srv.URL, srv.Client())
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			err = cl.WithToken(e.admin).Timeline(context.Background(), 2, c.format, "", &out)
			switch {
			case c.ok && err != nil:
				t.Fatal(err)
			case !c.ok && err == nil:
				t.Fatalf("no error for an export cut short; got %q", out.String())
			case !c.ok:
				return
			}
			if c.format == api.TimelineJSON && !json.Valid(out.Bytes()) || c.format == api.TimelineMarkdown && !strings.HasPrefix(out.String(), "# Run 2 of ledger: failed") {
				t.Fatalf("export %q", out.String())
			}
			err = cl.WithToken(e.admin).Timeline(context.Background(), 42, c.format, "", io.Discard)
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Status != 404 {
				t.Fatalf("missing run: %v", err)
			}
		})
	}
}

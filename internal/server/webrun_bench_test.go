package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/web"
)

// anyone is a web.Sessions that lets every session in as an admin: the
// benchmark measures the page, not the login.
type anyone struct{}

func (anyone) AuthenticateSession(context.Context, string) (api.Principal, error) {
	return api.Principal{Name: "user:bench", Kind: api.KindUser, Role: api.RoleAdmin}, nil
}

// bigRunServer makes a server on SQLite holding one run of n tasks in
// layers of 100 (each task needs one of the layer before), most of them
// succeeded with an attempt and two timeline entries each, some failed,
// some running, the rest pending. It returns the UI's handler and the run.
func bigRunServer(tb testing.TB, n int) (http.Handler, int64) {
	tb.Helper()
	dir, home := tb.TempDir(), tb.TempDir()
	var y strings.Builder
	y.WriteString("name: big\ntasks:\n")
	for i := range n {
		fmt.Fprintf(&y, "  - {id: t%05d, run: \"true\"", i)
		if i >= 100 {
			fmt.Fprintf(&y, ", needs: [t%05d]", (i/100-1)*100+i%7)
		}
		y.WriteString("}\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "big.yaml"), []byte(y.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Home, cfg.Pipelines = home, dir
	ctx := context.Background()
	s, err := New(ctx, cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Notice: io.Discard})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.store.Close() })
	if err := s.reload(ctx); err != nil {
		tb.Fatal(err)
	}
	svc := &service{s: s}
	run, err := svc.Trigger(ctx, "big", nil, "bench")
	if err != nil {
		tb.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour)
	var ch store.Change
	ch.RunID = run.ID
	ch.Transition.Run = &engine.Run{State: engine.RunRunning, Remaining: n / 10, StartedAt: t0}
	one := 1
	for i := range n {
		st := engine.TaskSucceeded
		switch {
		case i%97 == 5:
			st = engine.TaskFailed
		case i >= n-n/10+50:
			st = engine.TaskPending
		case i >= n-n/10:
			st = engine.TaskRunning
		}
		task := engine.Task{State: st}
		if st == engine.TaskPending {
			task.PendingNeeds = 1
			ch.Transition.Tasks = append(ch.Transition.Tasks, engine.TaskChange{Index: i, Task: task})
			continue
		}
		start := t0.Add(time.Duration(i) * 300 * time.Millisecond)
		end := start.Add(20 * time.Second)
		task.Attempt, task.Spent, task.StartedAt = 1, 1, start
		a := store.Attempt{Index: i, Attempt: 1, Worker: "local", StartedAt: start}
		ch.Transition.Records = append(ch.Transition.Records, engine.Record{Time: start, Kind: engine.EvTaskStarted, Task: i, Attempt: 1})
		if st != engine.TaskRunning {
			task.FinishedAt = end
			a.FinishedAt, a.Outcome = end, store.OutcomeSucceeded
			kind := engine.EvTaskSucceeded
			if st == engine.TaskFailed {
				a.Outcome, a.ExitCode, task.ExitCode, kind = store.OutcomeFailed, &one, &one, engine.EvTaskFailed
			}
			ch.Transition.Records = append(ch.Transition.Records, engine.Record{Time: end, Kind: kind, Task: i, Attempt: 1})
		}
		ch.Transition.Tasks = append(ch.Transition.Tasks, engine.TaskChange{Index: i, Task: task})
		ch.Attempts = append(ch.Attempts, a)
	}
	if err := s.store.Apply(ctx, ch); err != nil {
		tb.Fatal(err)
	}
	ui, err := web.New(web.Options{Service: svc, Sessions: anyone{}, Graphs: webGraphs{s}, Live: s.live, Now: s.now})
	if err != nil {
		tb.Fatal(err)
	}
	return ui, run.ID
}

func getPage(tb testing.TB, h http.Handler, path string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", path, nil)
	req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: "bench"})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		tb.Fatalf("GET %s: %d\n%.500s", path, rec.Code, rec.Body.String())
	}
	return rec
}

// BenchmarkRunPage10000 is the server time of the run page of a
// 10,000-task run read from SQLite through the server's own service and
// graph (target: under 300 ms).
func BenchmarkRunPage10000(b *testing.B) {
	h, id := bigRunServer(b, 10000)
	path := fmt.Sprintf("/runs/%d", id)
	rec := getPage(b, h, path)
	b.ReportMetric(float64(rec.Body.Len()), "bytes/page")
	for b.Loop() {
		getPage(b, h, path)
	}
}

// BenchmarkRunPageTasks10000 is a later page of the task list (paging
// reads the whole run as the first page does).
func BenchmarkRunPageGroup10000(b *testing.B) {
	h, id := bigRunServer(b, 10000)
	path := fmt.Sprintf("/runs/%d?from=5000&gantt=5000", id)
	for b.Loop() {
		getPage(b, h, path)
	}
}

// TestRunPageOfABigRun checks the page of a 10,000-task run from SQLite
// is drawn in groups and paged, and logs its time.
func TestRunPageOfABigRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 10,000-task run")
	}
	h, id := bigRunServer(t, 10000)
	start := time.Now()
	rec := getPage(t, h, fmt.Sprintf("/runs/%d", id))
	t.Logf("the run page of a 10,000-task run: %s, %d bytes", time.Since(start), rec.Body.Len())
	body := rec.Body.String()
	if strings.Contains(body, `id="node-`) || !strings.Contains(body, `class="node group`) || strings.Count(body, `<tr id="task-`) != 100 ||
		strings.Count(body, `<g class="grow">`) != 50 || !strings.Contains(body, `class="bar s-failed"`) {
		t.Errorf("the page of a 10,000-task run is not grouped and paged")
	}
}

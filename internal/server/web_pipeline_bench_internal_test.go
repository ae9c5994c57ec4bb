package server

import (
	"context"
	"database/sql"
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
	"github.com/tasuki-dev/tasuki/internal/web"
)

// benchSessions lets every session in as an admin.
type benchSessions struct{}

func (benchSessions) AuthenticateSession(context.Context, string) (api.Principal, error) {
	return api.Principal{Name: "user:bench", Kind: api.KindUser, Role: api.RoleAdmin}, nil
}

// BenchmarkWebPipelines measures the server time of the pipelines page and
// of the pipeline page on a real SQLite store: 200 pipelines loaded from
// files, 199 of them with 5 runs, and one ("big") with 100,000 hourly runs
// of 10 tasks, one attempt each: 1,000,000 attempts in its history. The
// UI is served in process (no network), as the server mounts it, over the
// server's own api.Service, store and objectives. Targets (issue 12):
// the pipelines page < 100 ms, a runs list < 100 ms.
//
//	go test -run '^$' -bench WebPipelines -benchtime 20x ./internal/server/
func BenchmarkWebPipelines(b *testing.B) {
	dir := b.TempDir()
	for i := range 200 {
		name := fmt.Sprintf("p%03d", i)
		if i == 0 {
			name = "big"
		}
		src := fmt.Sprintf("name: %s\nschedule: {cron: \"0 * * * *\", timezone: Asia/Tokyo}\nparams:\n  - {name: day, type: date, default: 2026-01-01}\ntasks:\n", name)
		for k := range 10 {
			src += fmt.Sprintf("  - {id: t%d, run: 'true'}\n", k)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(src), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	cfg := DefaultConfig()
	cfg.Home, cfg.Pipelines = b.TempDir(), dir
	s, err := New(context.Background(), cfg, Options{Logger: slog.New(slog.DiscardHandler), Notice: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.store.Close() })
	if err := s.reload(context.Background()); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	fillHistory(b, filepath.Join(cfg.Home, "tasuki.db"))
	b.Logf("history written in %v", time.Since(start).Round(time.Millisecond))

	ui, err := web.New(web.Options{Service: &service{s: s}, Sessions: benchSessions{}, History: s.store, SLOs: sloAPI{s}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	page := func(b *testing.B, path string, hx bool, want string) {
		for b.Loop() {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: "bench"})
			if hx {
				req.Header.Set("HX-Request", "true")
			}
			w := httptest.NewRecorder()
			ui.ServeHTTP(w, req)
			if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), want) {
				b.Fatalf("%s: %d %.500s", path, w.Code, w.Body.String())
			}
		}
	}
	b.Run("pipelines-200", func(b *testing.B) { page(b, "/", false, `href="/pipelines/p199"`) })
	b.Run("pipeline-1M-attempts", func(b *testing.B) { page(b, "/pipelines/big", false, `href="/runs/100000"`) })
	b.Run("pipeline-runs-deep-page", func(b *testing.B) { page(b, "/pipelines/big/runs?cursor=50001", true, `href="/runs/50000"`) })
	b.Run("pipeline-failed-runs", func(b *testing.B) { page(b, "/pipelines/big?state=failed", false, `class="run-row"`) })
	b.Run("pipeline-runs-of-a-day", func(b *testing.B) {
		day := time.Now().In(mustZone(b, "Asia/Tokyo")).AddDate(0, 0, -3).Format(time.DateOnly)
		page(b, "/pipelines/big?day="+day, false, `class="run-row"`)
	})
}

func mustZone(b *testing.B, name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		b.Skip(err)
	}
	return loc
}

// fillHistory writes, with SQL, 100,000 finished hourly runs of "big"
// (ending now, one in ten failed) of 10 tasks with one attempt each, and 5
// runs of one task for each other pipeline.
func fillHistory(b *testing.B, path string) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	now := time.Now().UnixMicro()
	const hour = int64(time.Hour / time.Microsecond)
	for _, q := range []string{
		fmt.Sprintf(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
			INSERT INTO runs (id, pipeline, trigger, interval_start, interval_end, created_at, task_count, state, remaining, unsuccessful, started_at, finished_at)
			SELECT i, 'big', 'schedule', %[1]d - (100000 - i) * %[2]d, %[1]d - (99999 - i) * %[2]d, %[1]d - (100000 - i) * %[2]d, 10,
				CASE WHEN i %% 10 = 3 THEN 'failed' ELSE 'succeeded' END, 0, CASE WHEN i %% 10 = 3 THEN 1 ELSE 0 END,
				%[1]d - (100000 - i) * %[2]d + 1000000, %[1]d - (100000 - i) * %[2]d + 60000000 FROM n`, now, hour),
		`WITH RECURSIVE k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j < 9)
			INSERT INTO tasks (run_id, idx, task_id, state, attempt, started_at, finished_at, exit_code)
			SELECT r.id, k.j, 't' || k.j, CASE WHEN r.state = 'failed' AND k.j = 9 THEN 'failed' ELSE 'succeeded' END, 1,
				r.started_at, r.finished_at, CASE WHEN r.state = 'failed' AND k.j = 9 THEN 1 ELSE 0 END
			FROM runs r CROSS JOIN k WHERE r.pipeline = 'big'`,
		`INSERT INTO attempts (run_id, idx, attempt, worker, started_at, finished_at, outcome, exit_code, log)
			SELECT run_id, idx, 1, 'local', started_at, finished_at, CASE state WHEN 'failed' THEN 'failed' ELSE 'succeeded' END, exit_code,
				'runs/' || run_id || '/' || task_id || '/1.log' FROM tasks`,
		fmt.Sprintf(`WITH RECURSIVE m(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM m WHERE i < 4)
			INSERT INTO runs (pipeline, trigger, created_at, task_count, state, remaining, unsuccessful, started_at, finished_at)
			SELECT p.name, 'manual', %[1]d - m.i * %[2]d, 1, 'succeeded', 0, 0, %[1]d - m.i * %[2]d, %[1]d - m.i * %[2]d
			FROM pipelines p CROSS JOIN m WHERE p.name <> 'big'`, now, hour),
	} {
		if _, err := db.Exec(q); err != nil {
			b.Fatalf("fill history: %v\n%s", err, q)
		}
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM attempts`).Scan(&n); err != nil || n != 1_000_000 {
		b.Fatalf("%d attempts, %v", n, err)
	}
}

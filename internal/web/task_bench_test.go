package web_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/web"
)

// BenchmarkTaskPage1GB measures the server's time for the task page of an
// attempt whose log is 1 GiB: opened at its tail, opened at a match in
// its middle, and one request of a search of it (which reads at most
// 32 MiB), and a whole "jump to first error" that finds nothing, request
// after request to the end. The log is written once, in b.TempDir.
//
//	go test -run '^$' -bench TaskPage1GB -benchtime 20x ./internal/web/
func BenchmarkTaskPage1GB(b *testing.B) {
	m, _, _ := taskWorld(b)
	ls := logs.NewFiles(b.TempDir())
	ls.Limit = -1
	m.Logs = ls
	var chunk bytes.Buffer
	for i := 0; chunk.Len() < 4<<20; i++ {
		fmt.Fprintf(&chunk, "2026-03-01T09:00:00.000Z stdout copied block %d of the table into the warehouse\n", i)
	}
	const size = 1 << 30
	key := logs.Key{RunID: 2, TaskID: "load", Attempt: 2}
	t0 := time.Now()
	s, err := ls.Sink(b.Context(), key)
	if err != nil {
		b.Fatal(err)
	}
	written := 0
	for written < size {
		n, err := s.Write(chunk.Bytes())
		if err != nil {
			b.Fatal(err)
		}
		written += n
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("wrote a %d MiB log in %v", written>>20, time.Since(t0).Round(time.Millisecond))
	ui, err := web.New(web.Options{Service: m, Sessions: sessions{}, Logs: ls})
	if err != nil {
		b.Fatal(err)
	}
	serve := func(b *testing.B, path string, hx bool) int {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: "viewer"})
		if hx {
			req.Header.Set("HX-Request", "true")
		}
		rec := httptest.NewRecorder()
		ui.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%s: %d %s", path, rec.Code, rec.Body.String())
		}
		return rec.Body.Len()
	}
	b.Run("tail", func(b *testing.B) {
		for b.Loop() {
			b.SetBytes(int64(serve(b, "/runs/2/tasks/load", false)))
		}
	})
	b.Run("at-middle", func(b *testing.B) {
		for b.Loop() {
			serve(b, fmt.Sprintf("/runs/2/tasks/load?attempt=2&at=%d", size/2), false)
		}
	})
	b.Run("logsearch-request", func(b *testing.B) {
		for b.Loop() {
			serve(b, "/runs/2/tasks/load/logsearch?attempt=2&find=errors&after=0&line=1", true)
		}
		b.SetBytes(32 << 20)
	})
}

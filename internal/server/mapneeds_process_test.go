package server_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
)

// TestProcessMapNeedOnRemoteWorker: tasks that need a map and run on a
// real remote worker (the server runs nothing itself) get in
// TASUKI_NEED_<ID> a file of every item's result, one JSON line each in
// item order, as they do on the server: a task, a map that needs the map
// (each item), a map that reads its items from the map (and so needs
// it), and a task that needs a map zipped with it.
func TestProcessMapNeedOnRemoteWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and a worker")
	}
	home, pipelines := t.TempDir(), t.TempDir()
	// check is what every dependent of a asserts of $TASUKI_NEED_A: five
	// lines, item i's result on line i+1 (item 3 gives none: null).
	check := `
      set -e
      test "$W" = w1
      test "$(wc -l < "$TASUKI_NEED_A")" -eq 5
      test "$(tr '\n' ' ' < "$TASUKI_NEED_A")" = '{"n":0} {"n":10} {"n":20} null {"n":40} '`
	writeFile(t, pipelines, "needs.yaml", fmt.Sprintf(`
name: needs
tasks:
  - id: a
    run: |
      if [ "$TASUKI_ITEM" != 3 ]; then echo "{\"n\": $((TASUKI_ITEM * 10))}" > "$TASUKI_RESULT"; fi
    map: {range: {stop: 5}}
  - id: task
    needs: [a]
    run: |%[1]s
  - id: each
    needs: [a]
    run: |%[1]s
    map: {range: {stop: 3}}
  - id: from
    run: |%[1]s
      test "$(sed -n "$((TASUKI_ITEM_INDEX + 1))p" "$TASUKI_NEED_A")" = "$TASUKI_ITEM"
    map: {from: a}
  - id: zipped
    run: |
      test "$TASUKI_ITEM" = "$(echo "{\"n\": $((TASUKI_ITEM_INDEX * 10))}" | tr -d ' ')" || test "$TASUKI_ITEM" = null
      echo "$TASUKI_ITEM_INDEX" > "$TASUKI_RESULT"
    map: {from: a, zip: true}
  - id: after-zip
    needs: [zipped]
    run: |
      set -e
      test "$W" = w1
      test "$(tr '\n' ' ' < "$TASUKI_NEED_ZIPPED")" = '0 1 2 3 4 '
`, check))
	s := startServer(t, home, pipelines, nil, "--workers", "0")
	serverTokens.Store(s.url, s.token)
	_, tokenFile := createToken(t, s.url, "w1")
	startWorker(t, s.url, tokenFile, "w1", []string{"XDG_CACHE_HOME=" + t.TempDir()}, "--slots", "4")

	run, err := s.c.Trigger(context.Background(), "needs", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	run = waitRunEnd(t, s.c, run.ID)
	if run.State != engine.RunSucceeded {
		detail, err := s.c.Run(context.Background(), run.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range detail.Tasks {
			t.Logf("%s: %s %s", task.ID, task.State, task.Message)
			if task.State != engine.TaskSucceeded && task.ID != "a" {
				log := runLog(t, s.c, run.ID, task.ID)
				if strings.Contains(task.Message, "items") {
					log = runLog(t, s.c, run.ID, task.ID+".0")
				}
				t.Logf("log of %s:\n%s", task.ID, log)
			}
		}
		t.Fatalf("run ended %s", run.State)
	}
	// Each map's results are kept once, whatever the number of attempts
	// that needed them: a's and zipped's.
	var kept int
	filepath.WalkDir(filepath.Join(home, "artifacts", "sha256"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			kept++
		}
		return nil
	})
	if kept != 2 {
		t.Errorf("the server keeps %d files, want 2 (the results of a and of zipped)", kept)
	}
}

// leaseSizes is a reverse proxy between a worker and a server that notes
// the largest body the server sent for a lease request.
type leaseSizes struct {
	mu  sync.Mutex
	max int
	n   int
}

func (ls *leaseSizes) proxy(t *testing.T, server string) string {
	u, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	rp.ErrorLog = log.New(io.Discard, "", 0) // long polls cut when the test ends
	rp.ModifyResponse = func(res *http.Response) error {
		if res.Request.URL.Path != api.Prefix+"/worker/lease" {
			return nil
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return err
		}
		ls.mu.Lock()
		ls.max, ls.n = max(ls.max, len(body)), ls.n+1
		ls.mu.Unlock()
		res.Body = io.NopCloser(strings.NewReader(string(body)))
		return nil
	}
	p := httptest.NewServer(rp)
	t.Cleanup(p.Close)
	return p.URL
}

// TestProcessLargeMapNeedOnRemoteWorker: a task on a remote worker that
// needs a map of 10,000 items gets their results as a file it downloads
// apart from its lease: no lease body the server sends (through a proxy
// that measures them) carries the results, which are over 100 KB.
func TestProcessLargeMapNeedOnRemoteWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and a worker")
	}
	home, pipelines := t.TempDir(), t.TempDir()
	writeFile(t, pipelines, "large.yaml", `
name: large
tasks:
  - id: big
    run: |
      while read -r n; do echo "{\"item\": $n, \"pad\": \"abcdefghij\"}"; done > "$TASUKI_RESULT"
    map: {range: {stop: 10000}, batch: 1000}
  - id: sum
    needs: [big]
    run: |
      set -e
      test "$(wc -l < "$TASUKI_NEED_BIG")" -eq 10000
      test "$(sed -n 10000p "$TASUKI_NEED_BIG")" = '{"item":9999,"pad":"abcdefghij"}'
      test "$(wc -c < "$TASUKI_NEED_BIG")" -gt 100000
`)
	s := startServer(t, home, pipelines, nil, "--workers", "0")
	serverTokens.Store(s.url, s.token)
	_, tokenFile := createToken(t, s.url, "w1")
	var sizes leaseSizes
	startWorker(t, sizes.proxy(t, s.url), tokenFile, "w1", []string{"XDG_CACHE_HOME=" + t.TempDir()}, "--slots", "2")

	run, err := s.c.Trigger(context.Background(), "large", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	run = waitRunEnd(t, s.c, run.ID)
	if run.State != engine.RunSucceeded {
		t.Fatalf("run ended %s:\n%s", run.State, runLog(t, s.c, run.ID, "sum"))
	}
	sizes.mu.Lock()
	defer sizes.mu.Unlock()
	t.Logf("%d lease bodies, the largest %d bytes", sizes.n, sizes.max)
	if sizes.n == 0 || sizes.max > 32<<10 {
		t.Errorf("%d lease bodies, the largest %d bytes; want the results kept out of leases (under 32 KiB)", sizes.n, sizes.max)
	}
}

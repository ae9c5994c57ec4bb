package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
)

// TestWorkerKilledMidBundle: a worker that took the items of a map as a
// bundle is killed (SIGKILL) while some items of the bundle have been
// reported and others still run. Every item the server took a report of
// stays done; every other item of the bundle is lost when the bundle's
// heartbeats stop, runs again on another worker (a loss is not charged:
// retry attempts 1 still completes) and succeeds there: each item ends
// exactly once.
func TestWorkerKilledMidBundle(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a worker's leases to expire")
	}
	dsn := pgtest.DSN(t)
	dir, work := t.TempDir(), t.TempDir()
	marks, pids := filepath.Join(work, "marks"), filepath.Join(work, "pids")
	t.Cleanup(func() {
		for _, pid := range readLines(t, pids) {
			if n, err := strconv.Atoi(pid); err == nil && n > 1 {
				_ = syscall.Kill(n, syscall.SIGKILL) // the killed worker's orphans
			}
		}
	})
	const items = 12
	// On worker a the odd items hang; everything else ends at once.
	writeFile(t, dir, "bundled.yaml", fmt.Sprintf(`name: bundled
env: {MARKS: %q, PIDS: %q}
tasks:
  - id: each
    labels: [bundled]
    retry: {attempts: 1}
    map: {range: {stop: %d}}
    run: |
      echo "$TASUKI_ITEM $TASUKI_ATTEMPT $W" >> "$MARKS"
      if [ "$W" = a ] && [ $((TASUKI_ITEM %% 2)) = 1 ]; then echo $$ >> "$PIDS"; exec sleep 60; fi
`, marks, pids, items))
	s := startPGServer(t, dsn, "", dir, nil, "--workers", "0")
	_, tokenFile := createToken(t, s.url, "bundles")
	st := openPG(t, dsn)
	ctx := context.Background()

	run, err := s.c.Trigger(ctx, "bundled", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	// Every item waits for a worker with the label before one starts, so
	// the first lease request of worker a finds them all.
	eventually(t, 30*time.Second, "the items to wait for a worker", func() (bool, string) {
		n := waitingGauge(t, s, dsn, "bundled")
		return n == items, fmt.Sprintf("%v waiting", n)
	})
	a := startWorker(t, s.url, tokenFile, "a", nil, "--labels", "bundled", "--slots", "8", "--log-level", "debug")
	if line := a.waitLine("bundle leased", 30*time.Second); !strings.Contains(line, "items=8") {
		t.Fatalf("worker a's first bundle: %q, want 8 items (its slots)", line)
	}
	// a runs every item (a second bundle fills the slots the even items
	// free); the even ones are reported, the odd ones hang.
	eventually(t, 30*time.Second, "the even items to succeed on a and the odd ones to hang there", func() (bool, string) {
		rows, err := st.MapItems(ctx, store.MapItemFilter{RunID: run.ID, Index: 0, Limit: 100})
		if err != nil {
			return false, err.Error()
		}
		return len(rows) == items/2 && len(readLines(t, pids)) == items/2, fmt.Sprintf("%d item rows, %d hanging", len(rows), len(readLines(t, pids)))
	})
	a.kill9()
	b := startWorker(t, s.url, tokenFile, "b", nil, "--labels", "bundled", "--slots", "8")
	if got := waitRunEnd(t, s.c, run.ID); got.State != engine.RunSucceeded {
		t.Fatalf("run %d: %s, want succeeded", run.ID, got.State)
	}
	b.term(10 * time.Second)

	rows, err := st.MapItems(ctx, store.MapItemFilter{RunID: run.ID, Index: 0, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != items {
		t.Fatalf("%d item rows, want %d", len(rows), items)
	}
	ran := map[int][]string{} // item: "attempt worker" of each time it ran
	for _, l := range readLines(t, marks) {
		f := strings.Fields(l)
		i, _ := strconv.Atoi(f[0])
		ran[i] = append(ran[i], f[1]+" "+f[2])
	}
	for _, r := range rows {
		want, worker, attempt := []string{"1 a"}, "a", 1
		if r.Item%2 == 1 {
			want, worker, attempt = []string{"1 a", "2 b"}, "b", 2
		}
		if r.State != engine.TaskSucceeded || r.Worker != worker || r.Attempt != attempt || r.Spent != 1 {
			t.Errorf("item %d: %s on %q, attempt %d (%d charged); want succeeded on %s, attempt %d, 1 charged", r.Item, r.State, r.Worker, r.Attempt, r.Spent, worker, attempt)
		}
		if !slices.Equal(ran[r.Item], want) {
			t.Errorf("item %d ran as %q, want %q", r.Item, ran[r.Item], want)
		}
	}
	if !strings.Contains(s.logs(), "lease lost: no heartbeat from its worker") {
		t.Errorf("the server did not log the lost leases")
	}
}

// waitingGauge reads tasuki_attempts_waiting for labels from the server's
// metrics (-1 when it has no such series).
func waitingGauge(t *testing.T, s *pgServer, dsn, labels string) float64 {
	t.Helper()
	token, _ := adminTokens.Load(dsn)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, s.url+"/api/v1/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token.(string))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	series := fmt.Sprintf("tasuki_attempts_waiting{labels=%q} ", labels)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return n
		}
	}
	return -1
}

package server_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
)

// scrape reads the server's /metrics with its admin token and returns
// each sample's value by series (name and labels as Prometheus prints
// them).
func scrape(t *testing.T, s *serverProc) map[string]float64 {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, s.url+"/api/v1/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s %s", resp.Status, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// TestProcessMetrics scrapes a real server after runs with a retry, a
// pool that makes a task wait, and a map: the counters and histograms
// moved as they should, a viewer may read them and nobody without a
// token may, and a second run adds no series (nothing is labelled by run,
// attempt or item).
func TestProcessMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	home, pipelines := t.TempDir(), t.TempDir()
	writeFile(t, pipelines, "observed.yaml", `
name: observed
tasks:
  - id: flaky
    run: m="flaky-$TASUKI_RUN_ID.mark"; test -f "$m" || { touch "$m"; exit 3; }
    retry: {attempts: 2, backoff: 10ms, max_backoff: 10ms}
  - id: first
    pool: one
    run: sleep 0.3
  - id: second
    pool: one
    run: sleep 0.3
  - id: each
    run: echo "item $TASUKI_ITEM"
    map: {range: {stop: 25}}
`)
	s := startServer(t, home, pipelines, nil, "--pool", "one=1")
	before := scrape(t, s)
	if before[`tasuki_leader`] != 1 {
		t.Errorf("tasuki_leader = %v, want 1 on the embedded store", before[`tasuki_leader`])
	}
	for i := range 2 {
		run, err := s.c.Trigger(context.Background(), "observed", nil, "test")
		if err != nil {
			t.Fatal(err)
		}
		if got := waitRunEnd(t, s.c, run.ID); got.State != engine.RunSucceeded {
			t.Fatalf("run %d: %s\n%s", i, got.State, s.logs())
		}
		if i == 0 {
			after := scrape(t, s)
			want := map[string]float64{
				`tasuki_runs_started_total{pipeline="observed"}`:                                 1,
				`tasuki_runs_ended_total{pipeline="observed",state="succeeded"}`:                 1,
				`tasuki_tasks_ended_total{pipeline="observed",state="succeeded"}`:                4,
				`tasuki_attempts_total{outcome="failed",pipeline="observed"}`:                    1,
				`tasuki_attempts_total{outcome="succeeded",pipeline="observed"}`:                 3 + 25,
				`tasuki_attempt_duration_seconds_count{outcome="succeeded",pipeline="observed"}`: 28,
				`tasuki_lease_events_total{event="granted"}`:                                     0, // the server's own executor takes no lease
			}
			for k, v := range want {
				if after[k] != v {
					t.Errorf("%s = %v, want %v", k, after[k], v)
				}
			}
			// One of the pool's two tasks waited for the other's slot:
			// about 0.3 s in line, longer than the 0.1 s bucket.
			if n := after[`tasuki_pool_wait_seconds_count{pool="one"}`] - after[`tasuki_pool_wait_seconds_bucket{pool="one",le="0.1"}`]; n != 1 {
				t.Errorf("%v tasks waited over 0.1 s for a slot of pool one, want 1 (the pool's second task)", n)
			}
			if after[`tasuki_attempt_wait_seconds_count{labels=""}`] != 29 {
				t.Errorf("tasuki_attempt_wait_seconds_count = %v, want one per attempt", after[`tasuki_attempt_wait_seconds_count{labels=""}`])
			}
			if after[`tasuki_store_seconds_count{op="apply"}`] <= before[`tasuki_store_seconds_count{op="apply"}`] {
				t.Error("no store transaction was timed")
			}
			if after[`tasuki_log_bytes_total`] < float64(25*len("item 0\n")) {
				t.Errorf("tasuki_log_bytes_total = %v, less than the items printed", after[`tasuki_log_bytes_total`])
			}
			if after[`tasuki_http_requests_total{code="201",route="POST /pipelines/{name}/runs"}`] != 1 {
				t.Errorf("the trigger was not counted by route: %v", keysWith(after, "tasuki_http_requests_total"))
			}
			before = after
		}
	}
	second := scrape(t, s)
	if got, want := series(second), series(before); !slices.Equal(got, want) {
		t.Errorf("a second run changed the series:\n got %v\nwant %v", got, want)
	}

	// Without a token: 401; a viewer reads.
	resp, err := http.Get(s.url + "/api/v1/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /metrics without a token: %s", resp.Status)
	}
}

// series lists the tasuki series (not the Go runtime's and the process's,
// whose label sets are fixed anyway) without their values.
func series(m map[string]float64) []string {
	var out []string
	for k := range m {
		if strings.HasPrefix(k, "tasuki_") {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func keysWith(m map[string]float64, prefix string) []string {
	var out []string
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// TestProcessWorkerMetrics: `tasuki worker --metrics-addr` serves the
// worker's own figures: its slots, the attempts it ran by outcome, and its
// calls to the server.
func TestProcessWorkerMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and a worker")
	}
	home, pipelines := t.TempDir(), t.TempDir()
	writeFile(t, pipelines, "remote.yaml", `
name: remote
tasks:
  - id: there
    labels: [remote]
    run: echo on the worker
`)
	s := startServer(t, home, pipelines, nil)
	serverTokens.Store(s.url, s.token)
	_, tokenFile := createToken(t, s.url, "w1")
	w := startWorker(t, s.url, tokenFile, "w1", nil, "--labels", "remote", "--slots", "3", "--metrics-addr", "127.0.0.1:0")
	line := w.waitLine("serving metrics", 10*time.Second)
	_, rest, _ := strings.Cut(line, "url=")
	url := strings.Fields(rest)[0]
	run, err := s.c.Trigger(context.Background(), "remote", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if got := waitRunEnd(t, s.c, run.ID); got.State != engine.RunSucceeded {
		t.Fatalf("run: %s", got.State)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"tasuki_worker_slots 3\n",
		`tasuki_worker_attempts_total{outcome="succeeded"} 1` + "\n",
		`tasuki_worker_server_calls_total{call="lease",result="ok"}`,
		`tasuki_worker_server_calls_total{call="report",result="ok"} 1` + "\n",
		"tasuki_worker_attempts_running 0\n",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the worker's metrics lack %q:\n%s", want, body)
		}
	}
}

// TestProcessMetricsLostAttempt: a remote worker killed with SIGKILL in
// the middle of an attempt: its lease expires, the attempt counts as lost,
// and the retry on another worker as succeeded.
func TestProcessMetricsLostAttempt(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and workers")
	}
	home, pipelines, dir := t.TempDir(), t.TempDir(), t.TempDir()
	fifo := mkfifo(t, dir)
	writeFile(t, pipelines, "doomed.yaml", `
name: doomed
tasks:
  - id: long
    labels: [remote]
    run: |
      if [ "$W" = w1 ]; then echo started > `+fifo+`; sleep 600; fi
`)
	s := startServer(t, home, pipelines, []string{"TASUKI_LEASE_TIMEOUT=1s"})
	serverTokens.Store(s.url, s.token)
	_, tokenFile := createToken(t, s.url, "workers")
	w1 := startWorker(t, s.url, tokenFile, "w1", nil, "--labels", "remote")
	run, err := s.c.Trigger(context.Background(), "doomed", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	awaitFifo(t, fifo, s, 30*time.Second)
	w1.kill9()
	startWorker(t, s.url, tokenFile, "w2", nil, "--labels", "remote")
	if got := waitRunEnd(t, s.c, run.ID); got.State != engine.RunSucceeded {
		t.Fatalf("run: %s\n%s", got.State, s.logs())
	}
	m := scrape(t, s)
	for k, v := range map[string]float64{
		`tasuki_attempts_total{outcome="lost",pipeline="doomed"}`:       1,
		`tasuki_attempts_total{outcome="succeeded",pipeline="doomed"}`:  1,
		`tasuki_lease_events_total{event="expired"}`:                    1,
		`tasuki_lease_events_total{event="granted"}`:                    2,
		`tasuki_tasks_ended_total{pipeline="doomed",state="succeeded"}`: 1,
	} {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
}

package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
)

// TestProcessMapOnRemoteWorker fans a map out to a real remote worker:
// single items and a batch, each item with its own variables and result,
// and a task on the server that reads every item's result in order.
func TestProcessMapOnRemoteWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and a worker")
	}
	home, pipelines := t.TempDir(), t.TempDir()
	writeFile(t, pipelines, "fan.yaml", `
name: fan
tasks:
  - id: square
    labels: [remote]
    run: |
      test "$W" = w1
      echo "$((TASUKI_ITEM * TASUKI_ITEM))" > "$TASUKI_RESULT"
    map: {range: {stop: 40}, concurrency: 8}
  - id: list
    labels: [remote]
    run: |
      mkdir -p lists && printf 'u1\nu2\nu3\n' > lists/users.txt
      echo '"lists/users.txt"' > "$TASUKI_RESULT"
    outputs: [lists/users.txt]
  - id: per-user
    labels: [remote]
    run: echo "$TASUKI_ITEM"
    map: {from: list}
  - id: double
    labels: [remote]
    run: |
      test "$W" = w1
      while read -r n; do echo "$((n * 2))"; done > "$TASUKI_RESULT"
    map: {from: square, batch: 7}
  - id: check
    needs: [double]
    labels: [here]
    run: |
      set -e
      test "$(wc -l < "$TASUKI_NEED_DOUBLE")" -eq 40
      test "$(sed -n 40p "$TASUKI_NEED_DOUBLE")" -eq $((39 * 39 * 2))
`)
	s := startServer(t, home, pipelines, nil, "--labels", "here")
	serverTokens.Store(s.url, s.token)
	_, tokenFile := createToken(t, s.url, "w1")
	startWorker(t, s.url, tokenFile, "w1", []string{"W=w1"}, "--labels", "remote", "--slots", "4")

	run, err := s.c.Trigger(context.Background(), "fan", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	run = waitRunEnd(t, s.c, run.ID)
	if run.State != engine.RunSucceeded {
		detail, _ := s.c.Run(context.Background(), run.ID)
		for _, task := range detail.Tasks {
			t.Logf("%s: %s %s", task.ID, task.State, task.Message)
		}
		t.Logf("log of check:\n%s", runLog(t, s.c, run.ID, "check"))
		t.Fatalf("run ended %s", run.State)
	}
	detail, err := s.c.Run(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range detail.Tasks {
		if task.ID == "double" && !strings.HasPrefix(task.Message, "40 items: 40 succeeded") {
			t.Errorf("double: %q", task.Message)
		}
		// The list was written on the worker: the server read its items
		// from the artifact store.
		if task.ID == "per-user" && task.Message != "3 items: 3 succeeded" {
			t.Errorf("per-user: %q", task.Message)
		}
	}
	// The items' short logs came with the worker's reports and were kept
	// in the map's pack, not a file each: they read back as any log does.
	for i, user := range []string{"u1", "u2", "u3"} {
		if log := runLog(t, s.c, run.ID, logs.ItemTask("per-user", i)); !strings.HasSuffix(log, " out "+user+"\n") || strings.Count(log, "\n") != 1 {
			t.Errorf("log of per-user item %d: %q", i, log)
		}
	}
	files, err := filepath.Glob(filepath.Join(home, "logs", strconv.FormatInt(run.ID, 10), "per-user.*"))
	if err != nil || len(files) != 2 {
		t.Errorf("the item logs of per-user are in %v, want a pack and its index", files)
	}
}

// TestProcessMapKilledAndResumed: a server is killed with SIGKILL in the
// middle of a map; the server started again on the same data directory
// carries the map on. Every item succeeds, the task that needs the map sees
// every item's result in order, and only the items in flight at the kill
// ran twice.
func TestProcessMapKilledAndResumed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills servers")
	}
	home, pipelines, dir := t.TempDir(), t.TempDir(), t.TempDir()
	fifo := mkfifo(t, dir)
	marks := filepath.Join(dir, "marks")
	writeFile(t, pipelines, "fan.yaml", fmt.Sprintf(`
name: fan
tasks:
  - id: each
    run: |
      echo "$TASUKI_ITEM" >> %[1]s
      if [ "$TASUKI_ITEM" = 120 ] && [ ! -e %[1]s.killed ]; then : > %[1]s.killed; echo go > %[2]s; sleep 60; fi
      echo "$TASUKI_ITEM" > "$TASUKI_RESULT"
    map: {range: {stop: 300}, concurrency: 4}
  - id: check
    needs: [each]
    run: |
      test "$(wc -l < "$TASUKI_NEED_EACH")" -eq 300
      test "$(sed -n 300p "$TASUKI_NEED_EACH")" -eq 299
`, marks, fifo))
	s := startServer(t, home, pipelines, nil)
	run, err := s.c.Trigger(context.Background(), "fan", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	awaitFifo(t, fifo, s, 30*time.Second)
	s.kill9()

	s2 := startServer(t, home, pipelines, nil)
	end := waitRunEnd(t, s2.c, run.ID)
	if end.State != engine.RunSucceeded {
		t.Fatalf("run ended %s:\n%s", end.State, s2.logs())
	}
	data, err := os.ReadFile(marks)
	if err != nil {
		t.Fatal(err)
	}
	ran := map[string]int{}
	for _, line := range strings.Fields(string(data)) {
		ran[line]++
	}
	twice := 0
	for i := range 300 {
		switch n := ran[strconv.Itoa(i)]; {
		case n == 0:
			t.Errorf("item %d never ran", i)
		case n > 1:
			twice++
		}
	}
	// At most the items in flight (4 running, the window queued) ran
	// twice: those that had started but whose end was not yet written.
	if twice == 0 || twice > 4+64 {
		t.Errorf("%d items ran twice; want the few in flight at the kill (item 120 at least)", twice)
	}
	t.Logf("%d of 300 items ran twice after the kill", twice)
}

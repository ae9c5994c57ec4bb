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

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
)

// TestProcessZipOnRemoteWorker runs a map zipped with a map upstream on a
// real remote worker: item 0 of the zipped map must run while an item of
// the upstream still runs (they meet on a FIFO, which would block both for
// ever if the zipped map waited for the upstream to end), each item gets
// its upstream item's result, and a task on the server reads the zipped
// map's results in item order.
func TestProcessZipOnRemoteWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and a worker")
	}
	home, pipelines, dir := t.TempDir(), t.TempDir(), t.TempDir()
	fifo := mkfifo(t, dir)
	writeFile(t, pipelines, "zip.yaml", fmt.Sprintf(`
name: zip
tasks:
  - id: a
    labels: [remote]
    run: |
      test "$W" = w1
      if [ "$TASUKI_ITEM" = 2 ]; then read -r go < %[1]s; fi
      echo "{\"n\": $((TASUKI_ITEM * 10))}" > "$TASUKI_RESULT"
    map: {range: {stop: 4}}
  - id: b
    labels: [remote]
    run: |
      test "$W" = w1
      test "$TASUKI_ITEM_N" = "$((TASUKI_ITEM_INDEX * 10))"
      if [ "$TASUKI_ITEM_INDEX" = 0 ]; then echo go > %[1]s; fi
      echo "$((TASUKI_ITEM_N + 1))" > "$TASUKI_RESULT"
    map: {from: a, zip: true}
  - id: check
    needs: [b]
    labels: [here]
    run: test "$(tr '\n' ' ' < "$TASUKI_NEED_B")" = "1 11 21 31 "
`, fifo))
	s := startServer(t, home, pipelines, nil, "--labels", "here")
	serverTokens.Store(s.url, s.token)
	_, tokenFile := createToken(t, s.url, "w1")
	startWorker(t, s.url, tokenFile, "w1", []string{"W=w1"}, "--labels", "remote", "--slots", "4")

	run, err := s.c.Trigger(context.Background(), "zip", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	run = waitRunEnd(t, s.c, run.ID)
	detail, err := s.c.Run(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if run.State != engine.RunSucceeded {
		for _, task := range detail.Tasks {
			t.Logf("%s: %s %s", task.ID, task.State, task.Message)
		}
		t.Fatalf("run ended %s", run.State)
	}
	for _, task := range detail.Tasks {
		if task.ID == "b" && task.Message != "4 items: 4 succeeded" {
			t.Errorf("b: %q", task.Message)
		}
	}
	it, err := s.c.Item(context.Background(), run.ID, "b", 0)
	if err != nil || it.Worker != "w1" {
		t.Errorf("item 0 of b: %+v (%v), want it run by w1", it, err)
	}
	// b's items are a's results, read from a's rows (not stored with b).
	page, err := s.c.Items(context.Background(), run.ID, "b", api.ItemQuery{})
	if err != nil || len(page.Items) != 4 {
		t.Fatalf("items of b: %+v %v", page, err)
	}
	for i, it := range page.Items {
		if want := fmt.Sprintf(`{"n":%d}`, i*10); strings.ReplaceAll(string(it.Value), " ", "") != want {
			t.Errorf("item %d of b has value %s, want %s (a's result)", i, it.Value, want)
		}
	}
}

// TestProcessZipKilledAndResumed: a server is killed with SIGKILL while a
// map and the map zipped with it run; the server started again on the
// same data directory carries both on. Every item of the zipped map runs
// after its upstream item ended, none whose success was written before the
// kill runs again, and the run succeeds.
func TestProcessZipKilledAndResumed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills servers")
	}
	home, pipelines, dir := t.TempDir(), t.TempDir(), t.TempDir()
	fifo := mkfifo(t, dir)
	marks := filepath.Join(dir, "marks")
	writeFile(t, pipelines, "zip.yaml", fmt.Sprintf(`
name: zip
tasks:
  - id: a
    run: |
      if [ "$TASUKI_ITEM" = 120 ] && [ ! -e %[1]s.killed ]; then : > %[1]s.killed; echo go > %[2]s; sleep 60; fi
      echo "$TASUKI_ITEM" > "$TASUKI_RESULT"
      echo "a $TASUKI_ITEM" >> %[1]s
    map: {range: {stop: 200}, concurrency: 4}
  - id: b
    run: |
      test "$TASUKI_ITEM" = "$TASUKI_ITEM_INDEX"
      echo "b $TASUKI_ITEM" >> %[1]s
      echo "$TASUKI_ITEM" > "$TASUKI_RESULT"
    map: {from: a, zip: true, concurrency: 4}
  - id: check
    needs: [b]
    run: |
      test "$(wc -l < "$TASUKI_NEED_B")" -eq 200
      test "$(sed -n 200p "$TASUKI_NEED_B")" -eq 199
`, marks, fifo))
	s := startServer(t, home, pipelines, nil)
	run, err := s.c.Trigger(context.Background(), "zip", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	awaitFifo(t, fifo, s, 30*time.Second)
	// Item 120 of a is held (sleep 60) while the others go on, and b's
	// items with them: the kill comes once the store has some of b's ends
	// (the group commit writes them in batches; on a quick machine a
	// reaches its item 120 before the first batch).
	eventually(t, 30*time.Second, "some item of b to be written succeeded", func() (bool, string) {
		page, err := s.c.Items(context.Background(), run.ID, "b", api.ItemQuery{States: []engine.TaskState{engine.TaskSucceeded}, Limit: 1})
		if err != nil {
			return false, err.Error()
		}
		return len(page.Items) > 0, fmt.Sprintf("%d items", len(page.Items))
	})
	// What the store says succeeded now must not run again: the group
	// commit may still hold a few more ends, which the kill loses.
	written := map[int]bool{}
	for from := 0; ; {
		page, err := s.c.Items(context.Background(), run.ID, "b", api.ItemQuery{States: []engine.TaskState{engine.TaskSucceeded}, From: from, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			written[it.Item] = true
		}
		if page.Next == "" {
			break
		}
		last, _ := strconv.Atoi(page.Next)
		from = last + 1
	}
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
	aEnded := map[string]bool{}
	ranB := map[int]int{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
		task, item, _ := strings.Cut(line, " ")
		switch task {
		case "a":
			aEnded[item] = true
		case "b":
			if !aEnded[item] {
				t.Errorf("item %s of b ran before item %s of a ended", item, item)
			}
			n, _ := strconv.Atoi(item)
			ranB[n]++
		}
	}
	twice := 0
	for i := range 200 {
		switch n := ranB[i]; {
		case n == 0:
			t.Errorf("item %d of b never ran", i)
		case n > 1 && written[i]:
			t.Errorf("item %d of b ran %d times, though its success was written before the kill", i, n)
		case n > 1:
			twice++
		}
	}
	t.Logf("%d items of b succeeded before the kill; %d ran twice after it", len(written), twice)
	if len(written) == 0 {
		t.Error("no item of b had succeeded before the kill: the zipped map did not run beside a")
	}
}

package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/engine"
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
	}
}

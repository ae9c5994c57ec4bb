package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/engine"
)

// Output files cross machines both ways: a real server (its in-process
// executor labelled "here") and a real `tasuki worker` process (labelled
// "gpu") over HTTP. train runs on the worker and writes a model; evaluate
// runs on the server, reads it under $TASUKI_ARTIFACTS and writes a
// report; publish runs on the worker again, which downloads the report.
func TestProcessArtifactsAcrossWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and a worker")
	}
	home, pipelines := t.TempDir(), t.TempDir()
	writeFile(t, pipelines, "models.yaml", `
name: models
tasks:
  - id: train
    labels: [gpu]
    run: mkdir -p out && head -c 2000000 /dev/urandom > out/model.bin && test "$W" = w1
    outputs: [out/model.bin]
  - id: evaluate
    needs: [train]
    labels: [here]
    run: |
      set -e
      test "$(wc -c < "$TASUKI_ARTIFACTS/train/out/model.bin")" -eq 2000000
      test -z "$W"
      mkdir -p reports/2026
      sha256sum "$TASUKI_ARTIFACTS/train/out/model.bin" | cut -c1-64 > reports/2026/score.txt
    outputs: ["reports/**/*.txt"]
  - id: publish
    needs: [evaluate]
    labels: [gpu]
    run: |
      set -e
      test "$W" = w1
      test "$(wc -c < "$TASUKI_ARTIFACTS/evaluate/reports/2026/score.txt")" -eq 65
`)
	s := startServer(t, home, pipelines, nil, "--labels", "here")
	serverTokens.Store(s.url, s.token)
	_, tokenFile := createToken(t, s.url, "w1")
	startWorker(t, s.url, tokenFile, "w1", []string{"XDG_CACHE_HOME=" + t.TempDir()}, "--labels", "gpu")

	run, err := s.c.Trigger(context.Background(), "models", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	run = waitRunEnd(t, s.c, run.ID)
	if run.State != engine.RunSucceeded {
		for _, task := range []string{"train", "evaluate", "publish"} {
			t.Logf("log of %s:\n%s", task, runLog(t, s.c, run.ID, task))
		}
		t.Fatalf("run ended %s", run.State)
	}
	// The server keeps each file once, in its data directory.
	var kept int
	filepath.WalkDir(filepath.Join(home, "artifacts", "sha256"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			kept++
		}
		return nil
	})
	if kept != 2 {
		t.Errorf("the server keeps %d files, want 2 (the model and the report)", kept)
	}
}

package server_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

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

// A server configured with artifact_store (a bucket of an S3-compatible
// server on loopback) and artifact_max_file keeps every output file in
// the bucket, those its own executor collects and those a remote worker
// uploads, and none in its data directory; a worker's file over the bound
// fails its attempt, saying why.
func TestProcessArtifactStoreSettings(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and a worker")
	}
	backend := s3mem.New()
	if err := backend.CreateBucket("shared"); err != nil {
		t.Fatal(err)
	}
	s3 := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(s3.Close)

	home, pipelines := t.TempDir(), t.TempDir()
	writeFile(t, pipelines, "bucket.yaml", `
name: bucket
tasks:
  - id: small
    labels: [gpu]
    run: printf 'from the worker\n' > small.txt
    outputs: [small.txt]
  - id: here
    needs: [small]
    labels: [here]
    run: |
      set -e
      grep -q 'from the worker' "$TASUKI_ARTIFACTS/small/small.txt"
      head -c 3000 /dev/zero > large.bin
    outputs: [large.bin]
  - id: large
    needs: [here]
    labels: [gpu]
    run: head -c 3000 /dev/zero | tr '\0' x > large.bin
    outputs: [large.bin]
`)
	s := startServer(t, home, pipelines, []string{
		"TASUKI_ARTIFACT_STORE=s3://shared/tasuki?endpoint=" + strings.TrimPrefix(s3.URL, "http://") + "&insecure=true&region=us-east-1",
		"TASUKI_ARTIFACT_MAX_FILE=1KiB",
		"AWS_ACCESS_KEY_ID=key", "AWS_SECRET_ACCESS_KEY=secret",
	}, "--labels", "here")
	serverTokens.Store(s.url, s.token)
	_, tokenFile := createToken(t, s.url, "w1")
	startWorker(t, s.url, tokenFile, "w1", []string{"XDG_CACHE_HOME=" + t.TempDir()}, "--labels", "gpu")

	run, err := s.c.Trigger(context.Background(), "bucket", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	run = waitRunEnd(t, s.c, run.ID)
	states := map[string]engine.TaskState{}
	for _, task := range run.Tasks {
		states[task.ID] = task.State
	}
	if run.State != engine.RunFailed || states["small"] != engine.TaskSucceeded || states["here"] != engine.TaskSucceeded || states["large"] != engine.TaskFailed {
		for _, task := range []string{"small", "here", "large"} {
			t.Logf("log of %s:\n%s", task, runLog(t, s.c, run.ID, task))
		}
		t.Fatalf("run %s, tasks %v; want small and here to succeed, and large to fail", run.State, states)
	}
	large, err := s.c.Task(context.Background(), run.ID, "large")
	if err != nil {
		t.Fatal(err)
	}
	if msg := large.Message; !strings.Contains(msg, "3000 bytes, more than the 1024") {
		t.Errorf("large failed with %q; want the bound named", msg)
	}
	// In the bucket: small's file (uploaded by the worker) and here's
	// (collected by the server, whose own files are not bounded).
	objects, err := backend.ListBucket("shared", &gofakes3.Prefix{}, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objects.Contents {
		keys = append(keys, o.Key)
	}
	if len(keys) != 2 || !strings.HasPrefix(keys[0], "tasuki/sha256/") || !strings.HasPrefix(keys[1], "tasuki/sha256/") {
		t.Errorf("the bucket holds %v, want the files of small and here under tasuki/sha256/", keys)
	}
	if _, err := os.Stat(filepath.Join(home, "artifacts", "sha256")); !os.IsNotExist(err) {
		t.Errorf("the data directory keeps artifacts too: %v", err)
	}
}

package lease

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/worker"
)

// artifactEnv is a broker with an artifact store behind the real API
// handler (and Guard) on a loopback HTTP server, and a worker token.
type artifactEnv struct {
	b      *Broker
	store  *artifact.Dir
	url    string
	secret string
	client *api.Client // with the worker token
}

func newArtifactEnv(t *testing.T) *artifactEnv {
	t.Helper()
	lf := logs.NewFiles(filepath.Join(t.TempDir(), "logs"))
	b := New(lf, slog.New(slog.NewTextHandler(io.Discard, nil)))
	b.HeartbeatEvery, b.LeaseTimeout = 100*time.Millisecond, 10*time.Second
	e := &artifactEnv{b: b, store: &artifact.Dir{Root: filepath.Join(t.TempDir(), "artifacts")}}
	b.Artifacts = e.store
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	tokens := apitest.NewTokens()
	e.secret = tokens.Add("w1")
	h := api.NewHandler(apitest.NewSeeded(), lf, api.WithWorkers(b, tokens), api.WithWorkerArtifacts(b))
	srv := httptest.NewServer(api.Guard(h, api.GuardOptions{}))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	c, err := api.NewClient(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	e.client = c.WithToken(e.secret)
	return e
}

// runWorker runs a real worker against the environment's server until
// the test ends.
func (e *artifactEnv) runWorker(t *testing.T, dir, cache string) {
	t.Helper()
	w := &worker.Worker{Client: e.client, Name: "w1:1", Dir: dir, ArtifactCache: cache, Slots: 2,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	drain, errc := make(chan struct{}), make(chan error, 1)
	go func() { errc <- w.Run(ctx, drain) }()
	t.Cleanup(func() {
		close(drain)
		cancel()
		<-errc
	})
}

// shellAttempt is an attempt of a run task with a script.
func shellAttempt(run int64, id, script string, outputs []string, needs []artifact.Need) *runner.Attempt {
	body, _ := json.Marshal(map[string]string{"shell": script})
	a := &runner.Attempt{RunID: run, Pipeline: "p", TaskID: id, Number: 1, Log: logs.Key{RunID: run, TaskID: id, Attempt: 1}}
	return a.WithSpec(attempt.Spec{Kind: "shell", Body: body, Env: map[string]string{}, Outputs: outputs, Artifacts: needs})
}

func needsOf(task string, files []artifact.File) []artifact.Need {
	var out []artifact.Need
	for _, f := range files {
		out = append(out, artifact.Need{Need: task, File: f})
	}
	return out
}

// A producer on a remote worker hands its outputs to a consumer run by
// the server's own executor, and a producer run by the server hands its
// outputs to a consumer on the worker, which downloads them.
func TestRemoteArtifacts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e := newArtifactEnv(t)
	workDir, cache := t.TempDir(), t.TempDir()
	e.runWorker(t, workDir, cache)

	// Remote producer, local consumer.
	res := e.b.Run(ctx, shellAttempt(1, "train", `mkdir -p out && head -c 3000000 /dev/urandom > out/model.bin && echo done > out/log.txt`,
		[]string{"out/*.bin"}, nil))
	if res.Outcome != attempt.Succeeded || len(res.Outputs) != 1 || res.Outputs[0].Path != "out/model.bin" || res.Outputs[0].Size != 3000000 {
		t.Fatalf("remote producer: %s %q, outputs %+v", res.Outcome, res.Message, res.Outputs)
	}
	local := t.TempDir()
	if err := artifact.Place(ctx, e.store, local, needsOf("train", res.Outputs)); err != nil {
		t.Fatalf("the server cannot place what the worker uploaded: %v", err)
	}
	uploaded, _ := os.ReadFile(filepath.Join(local, "train/out/model.bin"))
	written, _ := os.ReadFile(filepath.Join(workDir, "out/model.bin"))
	if len(uploaded) != 3000000 || !bytes.Equal(uploaded, written) {
		t.Fatalf("the server has %d bytes, the worker wrote %d", len(uploaded), len(written))
	}

	// Local producer, remote consumer: the worker downloads the file.
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "data"), 0o755)
	os.WriteFile(filepath.Join(src, "data", "rates.csv"), []byte("eur,1.08\n"), 0o644)
	files, err := artifact.Collect(ctx, e.store, src, []string{"data/rates.csv"})
	if err != nil {
		t.Fatal(err)
	}
	needs := append(needsOf("fetch", files), needsOf("train", res.Outputs)...)
	res = e.b.Run(ctx, shellAttempt(1, "report", `
		set -e
		test "$(cat "$TASUKI_ARTIFACTS/fetch/data/rates.csv")" = eur,1.08
		test "$(wc -c < "$TASUKI_ARTIFACTS/train/out/model.bin")" -eq 3000000
		cp "$TASUKI_ARTIFACTS/fetch/data/rates.csv" copy.csv`, nil, needs))
	if res.Outcome != attempt.Succeeded {
		t.Fatalf("remote consumer: %s %q", res.Outcome, res.Message)
	}
	if ok, _ := artifact.Has(ctx, &artifact.Dir{Root: cache}, files[0].Digest); !ok {
		t.Error("the worker's cache does not have the file it downloaded")
	}
}

// A need that is a map reaches a remote worker as a file of the artifact
// store (attempt.Spec.NeedFiles), which it downloads once and names in
// TASUKI_NEED_<ID> instead of the map's counts; another need's result is
// written as always.
func TestRemoteMapNeedFiles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e := newArtifactEnv(t)
	cache := t.TempDir()
	e.runWorker(t, t.TempDir(), cache)
	lines := "{\"n\":0}\nnull\n{\"n\":20}\n"
	info, err := e.store.Put(ctx, strings.NewReader(lines), "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		// Two runs' tasks that need the same file: the second finds it in the
		// worker's cache. (One lease id twice would be refused as held.)
		a := shellAttempt(int64(3+i), "after", `
			set -e
			test "$(cat "$TASUKI_NEED_M")" = "$(printf '{"n":0}\nnull\n{"n":20}')"
			test "$(stat -c %a "$TASUKI_NEED_M")" = 400
			test "$(cat "$TASUKI_NEED_PLAIN")" = '{"rows":4}'`, nil, nil)
		s, _ := a.Spec()
		s.Needs = map[string]json.RawMessage{"m": json.RawMessage(`{"items":3,"succeeded":3,"failed":0}`), "plain": json.RawMessage(`{"rows":4}`)}
		s.NeedFiles = []artifact.Need{{Need: "m", File: artifact.File{Path: "results.jsonl", Digest: info.Digest, Size: info.Size}}}
		if res := e.b.Run(ctx, a); res.Outcome != attempt.Succeeded {
			t.Fatalf("attempt %d: %s %q", i, res.Outcome, res.Message)
		}
	}
	if ok, _ := artifact.Has(ctx, &artifact.Dir{Root: cache}, info.Digest); !ok {
		t.Error("the worker's cache does not have the file it downloaded")
	}
}

// The artifact routes as a worker token sees them: what it may download
// and upload follows from the leases it holds.
func TestArtifactRoutesAuthorization(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := newArtifactEnv(t)
	e.b.ArtifactMaxFile = 1000
	kept, err := e.store.Put(ctx, strings.NewReader("kept by the server"), "")
	if err != nil {
		t.Fatal(err)
	}
	named, err := e.store.Put(ctx, strings.NewReader("a need's file"), "")
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, digest, body string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, e.url+api.Prefix+"/worker/artifacts/"+digest, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.secret)
		if body != "" {
			req.Header.Set("Content-Type", "application/octet-stream")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	content := "an output"
	sum := sha256.Sum256([]byte(content))
	digest := artifact.DigestPrefix + hex.EncodeToString(sum[:])

	// Holding nothing: nothing to download, no upload.
	for _, c := range []struct {
		method, digest, body string
		want                 int
	}{
		{"GET", kept.Digest, "", 404},
		{"HEAD", kept.Digest, "", 409},
		{"PUT", digest, content, 409},
		{"GET", "sha256:nothex", "", 400},
	} {
		if got := call(c.method, c.digest, c.body); got != c.want {
			t.Errorf("without a lease, %s %s = %d, want %d", c.method, c.digest, got, c.want)
		}
	}

	// A lease whose task has outputs and needs one file.
	results := submit(ctx, e.b, shellAttempt(2, "t", "true", []string{"out"}, []artifact.Need{{Need: "up", File: artifact.File{Path: "f", Digest: named.Digest, Size: named.Size}}}))
	resp, err := e.client.Lease(ctx, api.LeaseRequest{Worker: "w1:1", Free: 1})
	if err != nil || len(resp.Leases) != 1 {
		t.Fatalf("Lease = %+v, %v", resp, err)
	}
	id := resp.Leases[0].ID
	for _, c := range []struct {
		name                 string
		method, digest, body string
		want                 int
	}{
		{"a file its lease names", "GET", named.Digest, "", 200},
		{"a file kept but not named", "GET", kept.Digest, "", 404},
		{"a file the server has", "HEAD", kept.Digest, "", 200},
		{"a file it does not have", "HEAD", digest, "", 404},
		{"content that is not its digest", "PUT", digest, "another output", 400},
		{"over the size bound", "PUT", digest, strings.Repeat("x", 1001), 413},
		{"an upload", "PUT", digest, content, 204},
		{"the same upload again", "PUT", digest, content, 204},
		{"the upload is there", "HEAD", digest, "", 200},
	} {
		if got := call(c.method, c.digest, c.body); got != c.want {
			t.Errorf("%s: %s = %d, want %d", c.name, c.method, got, c.want)
		}
	}
	body, err := e.client.DownloadArtifact(ctx, named.Digest)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(body)
	body.Close()
	if string(got) != "a need's file" {
		t.Errorf("DownloadArtifact = %q", got)
	}

	// A success reporting an output never uploaded fails.
	missing := artifact.File{Path: "out/b", Digest: artifact.DigestPrefix + strings.Repeat("0", 64), Size: 3}
	if err := e.client.Complete(ctx, id, api.CompleteRequest{Outcome: attempt.Succeeded, Outputs: []artifact.File{{Path: "out/a", Digest: digest, Size: int64(len(content))}, missing}}); err != nil {
		t.Fatal(err)
	}
	if res := <-results; res.Outcome != attempt.Failed || !strings.Contains(res.Message, "out/b: the worker reported "+missing.Digest+", which it did not upload") {
		t.Errorf("a report of an output never uploaded: %s %q", res.Outcome, res.Message)
	}
	// The lease is gone, and with it what the worker may do.
	if got := call("GET", named.Digest, ""); got != 404 {
		t.Errorf("after the report, GET of the need's file = %d, want 404", got)
	}
}

// Malformed outputs are refused; outputs that were uploaded are passed on.
func TestCompleteOutputs(t *testing.T) {
	ctx := context.Background()
	e := newArtifactEnv(t)
	info, err := e.store.Put(ctx, strings.NewReader("x"), "")
	if err != nil {
		t.Fatal(err)
	}
	good := artifact.File{Path: "out/x", Digest: info.Digest, Size: 1, Mode: 0o644}
	for _, tc := range []struct {
		name    string
		outputs []artifact.File
		want    string
	}{
		{"climbing path", []artifact.File{{Path: "../x", Digest: info.Digest, Size: 1}}, "expected a clean relative path"},
		{"absolute path", []artifact.File{{Path: "/x", Digest: info.Digest, Size: 1}}, "expected a clean relative path"},
		{"twice", []artifact.File{good, good}, "expected a clean relative path, once"},
		{"bad digest", []artifact.File{{Path: "x", Digest: "sha256:x", Size: 1}}, "expected sha256:"},
		{"bad mode", []artifact.File{{Path: "x", Digest: info.Digest, Size: 1, Mode: 0o4755}}, "permission bits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := e.b.Complete(api.WithPrincipal(ctx, api.Principal{Name: "w1", Kind: api.KindWorker}), "1.t.1",
				api.CompleteRequest{Outcome: attempt.Succeeded, Outputs: tc.outputs})
			if e, ok := err.(*api.Error); !ok || e.Status != 400 || !strings.Contains(e.Message, tc.want) {
				t.Fatalf("Complete = %v, want a 400 with %q", err, tc.want)
			}
		})
	}
	results := submit(ctx, e.b, shellAttempt(3, "t", "true", []string{"out"}, nil))
	resp, err := e.client.Lease(ctx, api.LeaseRequest{Worker: "w1:1", Free: 1})
	if err != nil || len(resp.Leases) != 1 {
		t.Fatalf("Lease = %+v, %v", resp, err)
	}
	if err := e.client.Complete(ctx, resp.Leases[0].ID, api.CompleteRequest{Outcome: attempt.Succeeded, Outputs: []artifact.File{good}}); err != nil {
		t.Fatal(err)
	}
	if res := <-results; res.Outcome != attempt.Succeeded || len(res.Outputs) != 1 || res.Outputs[0] != good {
		t.Errorf("result = %s %q %+v", res.Outcome, res.Message, res.Outputs)
	}
}

package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/attempt"
)

// serverArtifacts serves the worker's artifact routes over a real
// artifact.Dir, granting every worker token everything (the lease rules
// are the broker's, tested in internal/lease).
type serverArtifacts struct{ st *artifact.Dir }

func (s serverArtifacts) OpenArtifact(ctx context.Context, digest string) (io.ReadCloser, int64, error) {
	info, err := s.st.Stat(ctx, digest)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, api.NotFound("artifact %s: not kept", digest)
	}
	if err != nil {
		return nil, 0, err
	}
	rc, err := s.st.Open(ctx, digest)
	return rc, info.Size, err
}

func (s serverArtifacts) StatArtifact(ctx context.Context, digest string) (int64, bool, error) {
	info, err := s.st.Stat(ctx, digest)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	return info.Size, err == nil, err
}

func (s serverArtifacts) PutArtifact(ctx context.Context, digest string, size int64, body io.Reader) error {
	_, err := s.st.Put(ctx, io.LimitReader(body, size), digest)
	return err
}

func sha(content string) string {
	sum := sha256.Sum256([]byte(content))
	return artifact.DigestPrefix + hex.EncodeToString(sum[:])
}

// putAged keeps content in st as if it had been put age ago.
func putAged(t *testing.T, st *artifact.Dir, content string, age time.Duration) string {
	t.Helper()
	info, err := st.Put(context.Background(), strings.NewReader(content), "")
	if err != nil {
		t.Fatal(err)
	}
	setAge(t, st, info.Digest, age)
	return info.Digest
}

// TestWorkerArtifactCacheFlags runs `tasuki worker --artifact-cache DIR
// --cache-keep 1h` against a server with the artifact routes: the input
// the lease names is downloaded into DIR, the output is kept there and
// uploaded, and after the attempt the files of DIR no attempt used for an
// hour are gone while newer ones stay (the default keeps them a day).
func TestWorkerArtifactCacheFlags(t *testing.T) {
	fake, tokens := apitest.NewWorkers(), apitest.NewTokens()
	secret := tokens.Add("w1")
	server := &artifact.Dir{Root: t.TempDir()}
	input := "rows from prep\n"
	if _, err := server.Put(context.Background(), strings.NewReader(input), ""); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.NewHandler(apitest.NewSeeded(), nil, api.WithLogger(slog.New(slog.DiscardHandler)),
		api.WithWorkers(fake, tokens), api.WithWorkerArtifacts(serverArtifacts{server})))
	t.Cleanup(srv.Close)

	cacheDir := filepath.Join(t.TempDir(), "cache") // created by the worker
	cache := &artifact.Dir{Root: cacheDir}
	stale := putAged(t, cache, "used two hours ago", 2*time.Hour)
	recent := putAged(t, cache, "used half an hour ago", 30*time.Minute)

	l := api.Lease{ID: "1.load.1", RunID: 1, Pipeline: "p", Task: "load", Attempt: 1,
		Spec: attempt.Spec{Kind: "shell", Env: map[string]string{},
			Body:      json.RawMessage(`{"shell":"set -e; cat \"$TASUKI_ARTIFACTS/prep/rows.txt\" > out.txt; echo loaded >> out.txt"}`),
			Artifacts: []artifact.Need{{Need: "prep", File: artifact.File{Path: "rows.txt", Digest: sha(input), Size: int64(len(input))}}},
			Outputs:   []string{"out.txt"}},
		HeartbeatEvery: api.Duration(time.Second), LeaseTimeout: api.Duration(5 * time.Second)}
	fake.Add(l)
	t.Setenv(tokenEnv, secret)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &lockedBuffer{}, &lockedBuffer{}
	errc := make(chan error, 1)
	go func() {
		errc <- execute(ctx, stdout, stderr, "worker", "--server", srv.URL, "--dir", t.TempDir(),
			"--artifact-cache", cacheDir, "--cache-keep", "1h")
	}()
	c, err := fake.WaitComplete(waitCtx(t), l.ID)
	if err != nil || c.Outcome != api.OutcomeSucceeded {
		t.Fatalf("completion %+v: %v\n%s", c, err, stderr.String())
	}
	cancel()
	if err := <-errc; err != nil { // the cache's sweep runs before Run returns
		t.Fatalf("worker after drain: %v\n%s", err, stderr.String())
	}
	output := input + "loaded\n"
	if len(c.Outputs) != 1 || c.Outputs[0].Path != "out.txt" || c.Outputs[0].Digest != sha(output) {
		t.Fatalf("reported outputs %+v, want out.txt of %s", c.Outputs, sha(output))
	}
	ctx = context.Background()
	if ok, err := artifact.Has(ctx, server, sha(output)); err != nil || !ok {
		t.Errorf("the server does not have the output: %v, %v", ok, err)
	}
	for _, f := range []struct {
		what, digest string
		kept         bool
	}{
		{"the downloaded input", sha(input), true},
		{"the output", sha(output), true},
		{"a file used half an hour ago", recent, true},
		{"a file used two hours ago", stale, false},
	} {
		if ok, err := artifact.Has(ctx, cache, f.digest); err != nil || ok != f.kept {
			t.Errorf("--artifact-cache has %s: %v, %v; want %v", f.what, ok, err, f.kept)
		}
	}
}

// TestWorkerArtifactFlagErrors: what the worker refuses of the two flags
// before it starts.
func TestWorkerArtifactFlagErrors(t *testing.T) {
	s := newWorkerServer(t, nil)
	t.Setenv(tokenEnv, s.secret)
	file := writeFile(t, t.TempDir(), "cache", "not a directory")
	cases := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"a file for a cache", []string{"--artifact-cache", file}, "--artifact-cache " + file + ": not a directory"},
		{"keep nothing", []string{"--cache-keep", "0s"}, "--cache-keep 0s: expected a duration of more than 0s"},
		{"keep less than nothing", []string{"--cache-keep", "-1h"}, "--cache-keep"},
		{"keep a while", []string{"--cache-keep", "a while"}, "--cache-keep"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := call(append([]string{"worker", "--server", s.url}, c.args...)...)
			if r.code != 2 || !strings.Contains(r.stderr, c.stderr) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", r.code, r.stderr, c.stderr)
			}
		})
	}
	if r := call("worker", "--help"); !strings.Contains(r.stdout, "--artifact-cache") || !strings.Contains(r.stdout, "--cache-keep") {
		t.Errorf("help lacks the flags:\n%s", r.stdout)
	}
}

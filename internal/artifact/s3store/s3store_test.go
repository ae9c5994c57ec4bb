package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/tasuki-dev/tasuki/internal/artifact"
)

// fake is an S3-compatible server (gofakes3, in memory) on a loopback
// HTTP server, with a clock the test moves.
type fake struct {
	clock   gofakes3.TimeSourceAdvancer
	backend *s3mem.Backend
	url     string
}

func newFake(t *testing.T) *fake {
	t.Helper()
	clock := gofakes3.FixedTimeSource(time.Now().Add(-24 * time.Hour).Truncate(time.Second))
	backend := s3mem.New(s3mem.WithTimeSource(clock))
	if err := backend.CreateBucket("tasuki"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend, gofakes3.WithTimeSource(clock), gofakes3.WithTimeSkewLimit(0)).Server())
	t.Cleanup(srv.Close)
	return &fake{clock: clock, backend: backend, url: srv.URL}
}

func (f *fake) store(t *testing.T, prefix string) *Store {
	t.Helper()
	cfg, err := ParseURL("s3://tasuki/"+prefix+"?endpoint="+strings.TrimPrefix(f.url, "http://")+"&insecure=true&region=us-east-1",
		func(k string) string {
			return map[string]string{"AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret"}[k]
		})
	if err != nil {
		t.Fatal(err)
	}
	cfg.TempDir = t.TempDir()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func read(t *testing.T, s artifact.Store, digest string) (string, error) {
	t.Helper()
	r, err := s.Open(context.Background(), digest)
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return string(b), err
}

func TestStore(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)
	s := f.store(t, "team/artifacts")
	info, err := s.Put(ctx, strings.NewReader("the model"), "")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := read(t, s, info.Digest); err != nil || got != "the model" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if st, err := s.Stat(ctx, info.Digest); err != nil || st.Size != 9 {
		t.Fatalf("Stat = %+v, %v", st, err)
	}
	// Named under the prefix, by its digest.
	if _, err := f.backend.HeadObject("tasuki", "team/artifacts/sha256/"+info.Digest[7:]); err != nil {
		t.Errorf("the object is not where its name says: %v", err)
	}
	// A content that is not the one named is kept nowhere.
	if _, err := s.Put(ctx, strings.NewReader("another"), info.Digest); !errors.Is(err, artifact.ErrDigestMismatch) {
		t.Errorf("Put of the wrong content = %v", err)
	}
	if l, _ := s.List(ctx, "", 0); len(l) != 1 {
		t.Errorf("after a refused put the store lists %d contents", len(l))
	}
	if entries, _ := os.ReadDir(s.tmp); len(entries) != 0 {
		t.Errorf("spool files left: %v", entries)
	}
	if err := s.Delete(ctx, info.Digest); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, info.Digest); err != nil {
		t.Errorf("Delete of a missing content: %v", err)
	}
	for _, op := range []func() error{
		func() error { _, err := s.Open(ctx, info.Digest); return err },
		func() error { _, err := s.Stat(ctx, info.Digest); return err },
	} {
		if err := op(); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a deleted content: %v, want fs.ErrNotExist", err)
		}
	}
	if ok, err := artifact.Has(ctx, s, info.Digest); ok || err != nil {
		t.Errorf("Has = %v, %v", ok, err)
	}
	if _, err := s.Open(ctx, "sha256:../../x"); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a bad digest = %v", err)
	}
}

func TestStoreDetectsCorruption(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)
	s := f.store(t, "")
	info, err := s.Put(ctx, strings.NewReader("the model"), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.backend.PutObject("tasuki", "sha256/"+info.Digest[7:], map[string]string{}, strings.NewReader("the m0del"), 9, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := read(t, s, info.Digest); !errors.Is(err, artifact.ErrCorrupt) {
		t.Errorf("reading a damaged object = %v, want ErrCorrupt", err)
	}
}

func TestStoreConcurrentPutAndList(t *testing.T) {
	ctx := context.Background()
	s := newFake(t).store(t, "p")
	content := bytes.Repeat([]byte("tasuki "), 50_000)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := s.Put(ctx, bytes.NewReader(content), ""); err != nil {
				t.Error(err)
			}
		})
	}
	for i := range 25 {
		if _, err := s.Put(ctx, strings.NewReader(fmt.Sprint(i)), ""); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	var got []string
	after := ""
	for {
		page, err := s.List(ctx, after, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, info := range page {
			if info.Digest <= after {
				t.Fatalf("List out of order: %s after %s", info.Digest, after)
			}
			after = info.Digest
			got = append(got, info.Digest)
		}
	}
	if len(got) != 26 {
		t.Errorf("listed %d contents, want 26", len(got))
	}
}

// Sweep, Collect and Place work on the bucket as on a directory: what is
// named or new stays, a content put again counts as new, and files are
// placed by copy, checked.
func TestStoreWithSweepCollectPlace(t *testing.T) {
	ctx := context.Background()
	f := newFake(t)
	s := f.store(t, "a")
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "out"), 0o755)
	for _, name := range []string{"keep", "drop", "again"} {
		os.WriteFile(filepath.Join(dir, "out", name), []byte(name), 0o644)
	}
	files, err := artifact.Collect(ctx, s, dir, []string{"out/*"})
	if err != nil || len(files) != 3 {
		t.Fatalf("Collect = %+v, %v", files, err)
	}
	byName := map[string]artifact.File{}
	for _, f := range files {
		byName[f.Path] = f
	}
	f.clock.Advance(2 * time.Hour)
	if _, err := s.Put(ctx, strings.NewReader("again"), byName["out/again"].Digest); err != nil {
		t.Fatal(err)
	}
	fresh, err := s.Put(ctx, strings.NewReader("fresh"), "")
	if err != nil {
		t.Fatal(err)
	}
	inUse := func(_ context.Context, after string, limit int) ([]string, error) {
		if d := byName["out/keep"].Digest; d > after {
			return []string{d}, nil
		}
		return nil, nil
	}
	n, err := artifact.Sweep(ctx, s, inUse, f.clock.Now().Add(-time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1 (out/drop)", n, err)
	}
	for d, want := range map[string]bool{byName["out/keep"].Digest: true, byName["out/drop"].Digest: false, byName["out/again"].Digest: true, fresh.Digest: true} {
		if ok, _ := artifact.Has(ctx, s, d); ok != want {
			t.Errorf("%s kept = %v, want %v", d, ok, want)
		}
	}
	var needs []artifact.Need
	for _, f := range files {
		if f.Path != "out/drop" {
			needs = append(needs, artifact.Need{Need: "up", File: f})
		}
	}
	placed := t.TempDir()
	if err := artifact.Place(ctx, s, placed, needs); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(placed, "up/out/keep")); err != nil || string(b) != "keep" {
		t.Errorf("placed up/out/keep = %q, %v", b, err)
	}
}

func TestParseURL(t *testing.T) {
	env := func(string) string { return "" }
	for _, tc := range []struct {
		url  string
		want string // Config as %+v, or "error"
	}{
		{"s3://bucket", "{Endpoint:s3.amazonaws.com Bucket:bucket Prefix: Region: AccessKey: SecretKey: Insecure:false TempDir:}"},
		{"s3://bucket/tasuki/artifacts?endpoint=minio:9000&region=eu&insecure=true", "{Endpoint:minio:9000 Bucket:bucket Prefix:tasuki/artifacts/ Region:eu AccessKey: SecretKey: Insecure:true TempDir:}"},
		{"http://bucket", "error"},
		{"s3:///prefix", "error"},
		{"s3://b?insecure=maybe", "error"},
	} {
		cfg, err := ParseURL(tc.url, env)
		got := fmt.Sprintf("%+v", cfg)
		if err != nil {
			got = "error"
		}
		if got != tc.want {
			t.Errorf("ParseURL(%q) = %s (%v), want %s", tc.url, got, err, tc.want)
		}
	}
}

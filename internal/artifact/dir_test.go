package artifact

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return DigestPrefix + hex.EncodeToString(sum[:])
}

func readAll(t *testing.T, st Store, digest string) (string, error) {
	t.Helper()
	r, err := st.Open(context.Background(), digest)
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return string(b), err
}

// noTemp fails when a put left a temporary file in the store's root.
func noTemp(t *testing.T, d *Dir) {
	t.Helper()
	entries, _ := os.ReadDir(d.Root)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			t.Errorf("temporary file %s left in the store", e.Name())
		}
	}
}

func TestDirPutOpenStatDelete(t *testing.T) {
	ctx := context.Background()
	d := &Dir{Root: filepath.Join(t.TempDir(), "artifacts")}
	info, err := d.Put(ctx, strings.NewReader("hello"), "")
	if err != nil {
		t.Fatal(err)
	}
	if info.Digest != digestOf("hello") || info.Size != 5 {
		t.Fatalf("Put = %+v", info)
	}
	if got, err := readAll(t, d, info.Digest); err != nil || got != "hello" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	// Private: the file is read-only to its owner, its directories 0700.
	p := d.path(info.Digest)
	for path, want := range map[string]fs.FileMode{p: 0o400, filepath.Dir(p): 0o700 | fs.ModeDir, d.Root: 0o700 | fs.ModeDir} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode(), err, want)
		}
	}
	if st, err := d.Stat(ctx, info.Digest); err != nil || st.Size != 5 {
		t.Errorf("Stat = %+v, %v", st, err)
	}
	if ok, err := Has(ctx, d, info.Digest); !ok || err != nil {
		t.Errorf("Has = %v, %v", ok, err)
	}
	if err := d.Delete(ctx, info.Digest); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, info.Digest); err != nil {
		t.Errorf("Delete of a missing digest: %v", err)
	}
	if _, err := d.Open(ctx, info.Digest); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a deleted digest: %v, want fs.ErrNotExist", err)
	}
	if ok, err := Has(ctx, d, info.Digest); ok || err != nil {
		t.Errorf("Has after delete = %v, %v", ok, err)
	}
	noTemp(t, d)
}

func TestDirPutVerifiesDigest(t *testing.T) {
	ctx := context.Background()
	d := &Dir{Root: t.TempDir()}
	if _, err := d.Put(ctx, strings.NewReader("other"), digestOf("hello")); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Put of the wrong content = %v, want ErrDigestMismatch", err)
	}
	if l, err := d.List(ctx, "", 0); err != nil || len(l) != 0 {
		t.Errorf("after a refused put the store lists %v, %v", l, err)
	}
	noTemp(t, d)
	if info, err := d.Put(ctx, strings.NewReader("hello"), digestOf("hello")); err != nil || info.Digest != digestOf("hello") {
		t.Errorf("Put of the right content = %+v, %v", info, err)
	}
	for _, bad := range []string{"hello", "sha256:ABC", "sha256:" + strings.Repeat("g", 64), "md5:" + strings.Repeat("a", 64), "sha256:../../etc/passwd"} {
		if _, err := d.Put(ctx, strings.NewReader("x"), bad); err == nil {
			t.Errorf("Put with digest %q accepted", bad)
		}
		if _, err := d.Open(ctx, bad); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%q) = %v, want a digest error", bad, err)
		}
	}
}

// A reader that fails midway leaves nothing behind.
func TestDirPutFailedRead(t *testing.T) {
	d := &Dir{Root: t.TempDir()}
	r := io.MultiReader(strings.NewReader("half"), iotestErrReader{})
	if _, err := d.Put(context.Background(), r, ""); err == nil {
		t.Fatal("Put of a failing reader succeeded")
	}
	noTemp(t, d)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Put(ctx, strings.NewReader("x"), ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context = %v", err)
	}
	noTemp(t, d)
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestDirConcurrentPutSameContent(t *testing.T) {
	ctx := context.Background()
	d := &Dir{Root: t.TempDir()}
	content := bytes.Repeat([]byte("tasuki "), 100_000)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			info, err := d.Put(ctx, bytes.NewReader(content), "")
			if err == nil && info.Size != int64(len(content)) {
				err = errors.New("wrong size")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	l, err := d.List(ctx, "", 0)
	if err != nil || len(l) != 1 {
		t.Fatalf("List = %v, %v; want one content", l, err)
	}
	if got, err := readAll(t, d, l[0].Digest); err != nil || got != string(content) {
		t.Errorf("content read back: %d bytes, %v", len(got), err)
	}
	noTemp(t, d)
}

func TestDirOpenDetectsCorruption(t *testing.T) {
	ctx := context.Background()
	d := &Dir{Root: t.TempDir()}
	info, err := d.Put(ctx, strings.NewReader("the model"), "")
	if err != nil {
		t.Fatal(err)
	}
	p := d.path(info.Digest)
	os.Chmod(p, 0o600)
	if err := os.WriteFile(p, []byte("the m0del"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(t, d, info.Digest); !errors.Is(err, ErrCorrupt) {
		t.Errorf("reading a damaged content = %v, want ErrCorrupt", err)
	}
	// Putting the content again repairs it.
	if _, err := d.Put(ctx, strings.NewReader("the model"), info.Digest); err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(t, d, info.Digest); err != nil || got != "the model" {
		t.Errorf("after a new put: %q, %v", got, err)
	}
}

func TestDirListPages(t *testing.T) {
	ctx := context.Background()
	d := &Dir{Root: t.TempDir()}
	want := map[string]bool{}
	for i := range 40 {
		info, err := d.Put(ctx, strings.NewReader(strings.Repeat("x", i)), "")
		if err != nil {
			t.Fatal(err)
		}
		want[info.Digest] = true
	}
	os.WriteFile(filepath.Join(d.Root, "sha256", "README"), []byte("not a content"), 0o600)
	var got []string
	after := ""
	for {
		page, err := d.List(ctx, after, 7)
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
	if len(got) != len(want) {
		t.Fatalf("listed %d contents, want %d", len(got), len(want))
	}
	for _, g := range got {
		if !want[g] {
			t.Errorf("listed %s, which was never put", g)
		}
	}
	if l, err := (&Dir{Root: filepath.Join(t.TempDir(), "none")}).List(ctx, "", 0); err != nil || l != nil {
		t.Errorf("List of a store never written = %v, %v", l, err)
	}
}

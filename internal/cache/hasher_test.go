package cache

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
)

// countOpens makes h count the input files it opens, by path relative to
// dir.
func countOpens(h *Hasher, dir string) func() map[string]int {
	var mu sync.Mutex
	opens := map[string]int{}
	h.open = func(name string) (*os.File, error) {
		rel, _ := filepath.Rel(dir, name)
		mu.Lock()
		opens[filepath.ToSlash(rel)]++
		mu.Unlock()
		return os.Open(name)
	}
	return func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]int{}
		for k, v := range opens {
			out[k] = v
		}
		return out
	}
}

// TestCacheHasherReadsSharedInputsOnce: the items of a map sharing an input
// read it once; each item's own input is read for it; the keys are the
// package Key's.
func TestCacheHasherReadsSharedInputsOnce(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"model.bin": "weights", "users/ana.json": "{}", "users/bob.json": "[]"})
	h := NewHasher()
	opens := countOpens(h, dir)
	spec := &attempt.Spec{Kind: "shell"}
	var wg sync.WaitGroup
	for range 4 {
		for _, user := range []string{"ana", "bob"} {
			wg.Go(func() {
				in := Input{Spec: spec, Dir: dir, Inputs: []string{"model.bin", Expand("users/${U}.json", map[string]string{"U": user})}}
				got, err := h.Key(context.Background(), in)
				if err != nil {
					t.Error(err)
					return
				}
				if want := mustKey(t, in); got != want {
					t.Errorf("%s: Hasher.Key %s, Key %s", user, got, want)
				}
			})
		}
	}
	wg.Wait()
	// Concurrent first reads may each read a file once; later ones do not.
	before := opens()
	for _, user := range []string{"ana", "bob"} {
		if _, err := h.Key(context.Background(), Input{Spec: spec, Dir: dir, Inputs: []string{"model.bin", "users/" + user + ".json"}}); err != nil {
			t.Fatal(err)
		}
	}
	if after := opens(); after["model.bin"] != before["model.bin"] || after["users/ana.json"] != before["users/ana.json"] {
		t.Errorf("remembered files were read again: %v, then %v", before, after)
	}
	if before["model.bin"] > 8 || before["model.bin"] < 1 {
		t.Errorf("model.bin read %d times for 8 keys", before["model.bin"])
	}
}

// TestCacheHasherSeesChanges: a file rewritten is read again, even with its
// size and modification time put back (Linux: its change time moved), and
// so is a file replaced by another.
func TestCacheHasherSeesChanges(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"data.csv": "a,b\n1,2\n"})
	name := filepath.Join(dir, "data.csv")
	h := NewHasher()
	opens := countOpens(h, dir)
	in := Input{Spec: &attempt.Spec{Kind: "shell"}, Dir: dir, Inputs: []string{"data.csv"}}
	k1, err := h.Key(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}

	// Same size, same modification time, other content.
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(name, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	k2, _ := h.Key(context.Background(), in)
	if err := os.WriteFile(name, []byte("a,b\n1,3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(name, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	k3, err := h.Key(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if k1 != k2 {
		t.Error("touching a file changed its key")
	}
	if runtime.GOOS == "linux" && k3 == k2 {
		t.Error("a rewrite with size and mtime put back kept the remembered digest")
	}

	// Replaced by another file (a rename over it).
	other := filepath.Join(dir, "new.csv")
	if err := os.WriteFile(other, []byte("a,b\n9,9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(other, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, name); err != nil {
		t.Fatal(err)
	}
	if k4, _ := h.Key(context.Background(), in); k4 == k3 || k4 != mustKey(t, in) {
		t.Error("a file renamed over the input kept the remembered digest")
	}
	if n := opens()["data.csv"]; n != 4 {
		t.Errorf("data.csv read %d times, want 4 (first, after the touch, the rewrite, the rename)", n)
	}
}

package server

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/spec"
)

// write writes a file and moves its modification time forward, so a change
// within the file system's time granularity is still seen.
func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	bump(t, path)
}

var clock = time.Now()

func bump(t *testing.T, path string) {
	t.Helper()
	clock = clock.Add(time.Second)
	if err := os.Chtimes(path, clock, clock); err != nil {
		t.Fatal(err)
	}
}

func reload(t *testing.T, r *Registry) map[string]Change {
	t.Helper()
	changes, err := r.Reload()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Change{}
	for _, c := range changes {
		out[c.Name] = c
	}
	return out
}

func TestRegistryKeepsLastGoodVersion(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a.yaml")
	write(t, file, "name: a\ntasks: [{id: x, run: 'true'}]\n")
	r := NewRegistry(dir, nil)
	if ch := reload(t, r); !ch["a"].Updated {
		t.Fatalf("first load: %+v", ch)
	}
	if ch := reload(t, r); len(ch) != 0 {
		t.Fatalf("unchanged directory reloaded: %+v", ch)
	}
	good, _ := r.Get("a")

	write(t, file, "name: a\ntasks: [{id: x, run: 'true', neds: [y]}]\n")
	ch := reload(t, r)
	l, _ := r.Get("a")
	if ch["a"].Updated || !strings.Contains(l.Error, `a.yaml:2:30: unknown key "neds"`) || l.Pipeline.Source.Hash != good.Pipeline.Source.Hash {
		t.Fatalf("broken file: change %+v, loaded error %q", ch["a"], l.Error)
	}

	write(t, file, "name: a\ntasks: [{id: x, run: 'echo v2'}]\n")
	ch = reload(t, r)
	l, _ = r.Get("a")
	if !ch["a"].Updated || l.Error != "" || l.Pipeline.Tasks[0].Run.Shell != "echo v2" {
		t.Fatalf("fixed file: %+v %+v", ch, l)
	}

	os.Remove(file)
	reload(t, r)
	if l, _ = r.Get("a"); !l.Removed {
		t.Fatalf("removed file: %+v", l)
	}
}

func TestRegistryUnknownBrokenFileAndCheck(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "broken.yaml"), "name: [\n")
	write(t, filepath.Join(dir, "pooled.yaml"), "name: pooled\ntasks: [{id: x, run: 'true'}]\n")
	r := NewRegistry(dir, func(p *spec.Pipeline) error {
		if p.Name == "pooled" {
			return errors.New(`pool "warehouse" is not configured`)
		}
		return nil
	})
	reload(t, r)
	errs := r.FileErrors()
	if len(errs) != 2 || !strings.Contains(errs[filepath.Join(dir, "pooled.yaml")], "warehouse") {
		t.Fatalf("file errors = %v", errs)
	}
	if _, ok := r.Get("pooled"); ok {
		t.Fatal("a pipeline failing the server check was loaded")
	}
}

package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/artifact"
)

// TestRunSweepsArtifacts: when `tasuki run` ends, the files of its data
// directory's artifact store that no run names go once they are an hour
// old; what a run names stays however old, and so does what is newer.
func TestRunSweepsArtifacts(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	file := writeFile(t, dir, "p.yaml", `
name: model
tasks:
  - {id: train, run: "printf 'weights\n' > model.bin", outputs: [model.bin]}
`)
	if r := call("--home", home, "run", file); r.code != 0 {
		t.Fatalf("first run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	st := &artifact.Dir{Root: filepath.Join(home, "artifacts")}
	named := sha("weights\n")
	if ok, err := artifact.Has(context.Background(), st, named); err != nil || !ok {
		t.Fatalf("the run's output is not in the data directory's store: %v, %v", ok, err)
	}
	setAge(t, st, named, 2*time.Hour)
	oldOrphan := putAged(t, st, "kept by an attempt whose run is gone", 2*time.Hour)
	newOrphan := putAged(t, st, "kept by an attempt that has not reported yet", 10*time.Minute)

	other := writeFile(t, dir, "q.yaml", "name: other\ntasks: [{id: a, run: 'true'}]\n")
	if r := call("--home", home, "run", other); r.code != 0 {
		t.Fatalf("second run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, f := range []struct {
		what, digest string
		kept         bool
	}{
		{"the first run's output, two hours old", named, true},
		{"a file no run names, put ten minutes ago", newOrphan, true},
		{"a file no run names, put two hours ago", oldOrphan, false},
	} {
		if ok, err := artifact.Has(context.Background(), st, f.digest); err != nil || ok != f.kept {
			t.Errorf("after the second run, the store has %s: %v, %v; want %v", f.what, ok, err, f.kept)
		}
	}
}

// TestRunSweepFailureIsAWarning: a store the sweep cannot read does not
// change how the run ends.
func TestRunSweepFailureIsAWarning(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, "artifacts"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(home, "artifacts"), "sha256", "not a directory") // where the contents' directories go
	file := writeFile(t, dir, "p.yaml", "name: p\ntasks: [{id: a, run: 'true'}]\n")
	r := call("--home", home, "run", file)
	if r.code != 0 || !strings.Contains(r.stdout, "run 1 of p succeeded") {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "tasuki: warning: sweep artifacts") {
		t.Errorf("no warning of the failed sweep:\n%s", r.stderr)
	}
}

// setAge makes a kept content look put age ago.
func setAge(t *testing.T, st *artifact.Dir, digest string, age time.Duration) {
	t.Helper()
	at := time.Now().Add(-age)
	h := strings.TrimPrefix(digest, artifact.DigestPrefix)
	if err := os.Chtimes(filepath.Join(st.Root, "sha256", h[:2], h), at, at); err != nil {
		t.Fatal(err)
	}
}

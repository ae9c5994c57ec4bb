package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
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
	r := NewRegistry(dir, discard)
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
	write(t, filepath.Join(dir, "pooled.yaml"), "name: pooled\ntasks:\n  - {id: x, run: 'true', pool: warehouse}\n")
	r := NewRegistry(dir, discard, func(p *spec.Pipeline, report func(any, string)) {
		if p.Tasks[0].Pool != "" {
			report(&p.Tasks[0].Pool, `pool "warehouse" is not configured`)
		}
	})
	reload(t, r)
	probs := r.Problems()
	pooled := filepath.Join(dir, "pooled.yaml")
	if len(probs) != 2 || probs[1].File != pooled || probs[1].Pipeline != "pooled" ||
		!slices.Equal(probs[1].Errors, []string{pooled + `:3:32: pool "warehouse" is not configured`}) {
		t.Fatalf("problems = %+v", probs)
	}
	if probs[0].Pipeline != "" || len(probs[0].Errors) != 1 {
		t.Errorf("a file with a syntax error: %+v", probs[0])
	}
	if _, ok := r.Get("pooled"); ok {
		t.Fatal("a pipeline failing the server check was loaded")
	}
	if fp, ok := r.Problem("pooled"); !ok || fp.File != pooled {
		t.Errorf("Problem(pooled) = %+v, %v", fp, ok)
	}
	if _, ok := r.Problem(""); ok {
		t.Error("Problem(\"\") found a file")
	}
}

// warnings returns the messages of the WARN records logged so far, and
// forgets them.
func (l *logCapture) warnings(t *testing.T) []string {
	t.Helper()
	var out []string
	for line := range strings.Lines(l.buf.String()) {
		var rec struct {
			Level, Msg, File string
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec.Level == "WARN" {
			out = append(out, rec.Msg+" "+filepath.Base(rec.File))
		}
	}
	l.buf.Reset()
	return out
}

type logCapture struct{ buf bytes.Buffer }

func newLogCapture() (*logCapture, *slog.Logger) {
	l := &logCapture{}
	return l, slog.New(slog.NewJSONHandler(&l.buf, nil))
}

var discard = slog.New(slog.DiscardHandler)

// TestRegistryLogsProblemOncePerChange: a file that does not load is
// logged when it appears and each time it changes, not at every reload
// (which, every 2 s, filled logs with the same warning); it stays listed
// until it is fixed.
func TestRegistryLogsProblemOncePerChange(t *testing.T) {
	dir := t.TempDir()
	logs, log := newLogCapture()
	r := NewRegistry(dir, log)
	good := filepath.Join(dir, "good.yaml")
	needy := filepath.Join(dir, "needy.yaml")
	write(t, good, "name: good\ntasks: [{id: x, run: 'true'}]\n")
	write(t, needy, "name: needy\ntasks:\n  - {id: x, run: 'true', needs: [nope]}\n")

	steps := []struct {
		name   string
		change func()
		want   []string
	}{
		{"new broken file", func() {}, []string{"invalid pipeline file; it is not loaded needy.yaml"}},
		{"nothing changed", func() {}, nil},
		{"another file changed", func() { bump(t, good) }, nil},
		{"broken file touched", func() { bump(t, needy) }, []string{"invalid pipeline file; it is not loaded needy.yaml"}},
		{"another file changed again", func() { write(t, good, "name: good\ntasks: [{id: y, run: 'true'}]\n") }, nil},
		{"broken differently", func() { write(t, needy, "name: needy\ntasks:\n  - {id: x, run: 'true', needs: [nah]}\n") },
			[]string{"invalid pipeline file; it is not loaded needy.yaml"}},
		{"fixed", func() { write(t, needy, "name: needy\ntasks: [{id: x, run: 'true'}]\n") }, nil},
		{"good file breaks", func() { write(t, good, "name: good\ntasks: [{id: y, run: 'true', neds: []}]\n") },
			[]string{"pipeline file is invalid; the last good version stays in use good.yaml"}},
		{"and stays broken", func() { bump(t, needy) }, nil},
	}
	for _, st := range steps {
		st.change()
		reload(t, r)
		if got := logs.warnings(t); !slices.Equal(got, st.want) {
			t.Errorf("%s: warnings %q, want %q", st.name, got, st.want)
		}
	}
	// The broken good file shows on its pipeline, not among the problems.
	if l, _ := r.Get("good"); !strings.Contains(l.Error, good+":2:") || l.Pipeline.Tasks[0].ID != "y" {
		t.Errorf("good after breaking: %+v", l)
	}
	if probs := r.Problems(); len(probs) != 0 {
		t.Errorf("problems = %+v, want none (needy is fixed, good shows on its pipeline)", probs)
	}
}

// TestTriggerOfBrokenFile: a trigger of a pipeline that exists only as a
// broken file is a 409 pipeline_invalid with the file and its first
// problems, also when the pipeline had loaded from a file that is now gone
// and a broken one declares it; a pipeline with a last good version still
// starts runs.
func TestTriggerOfBrokenFile(t *testing.T) {
	dir := t.TempDir()
	needs := "name: needy\ntasks:\n  - {id: a, run: 'true', needs: [v, w, x, y, z]}\n"
	needy := filepath.Join(dir, "needy.yaml")
	write(t, needy, needs)
	old := filepath.Join(dir, "old.yaml")
	write(t, old, "name: moved\ntasks: [{id: a, run: 'true'}]\n")
	kept := filepath.Join(dir, "kept.yaml")
	write(t, kept, "name: kept\ntasks: [{id: a, run: 'true'}]\n")
	ts := newTestServer(t, t.TempDir(), dir, time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	svc := &service{s: ts.Server}
	ctx := context.Background()

	// The pipeline moved to a new file that is broken: not "removed", but
	// what is wrong with the file that declares it now.
	if err := os.Remove(old); err != nil {
		t.Fatal(err)
	}
	moved := filepath.Join(dir, "moved.yaml")
	write(t, moved, "name: moved\ntasks: [{id: a, run: 'true', pool: nowhere}]\n")
	write(t, kept, "name: kept\ntasks: [{id: a, run: 'true', neds: []}]\n")
	if err := ts.reload(ctx); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		pipeline string
		want     []string
		not      string
	}{
		{"needy", []string{`pipeline "needy" cannot start runs: its file ` + needy + " does not load:\n" + needy + `:3:34: task "a" needs "v"`,
			needy + `:3:37: task "a" needs "w"`, needy + `:3:40: task "a" needs "x"`, "(and 2 more; see tasuki pipelines)"}, `needs "y"`},
		{"moved", []string{"its file " + moved + " does not load:\n" + moved + `:2:36: task "a": pool "nowhere"`}, "removed"},
	}
	for _, tt := range tests {
		_, err := svc.Trigger(ctx, tt.pipeline, nil, "test")
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Code != api.CodePipelineInvalid {
			t.Errorf("trigger %s: %v, want 409 %s", tt.pipeline, err, api.CodePipelineInvalid)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(ae.Message, w) {
				t.Errorf("trigger %s: message %q lacks %q", tt.pipeline, ae.Message, w)
			}
		}
		if strings.Contains(ae.Message, tt.not) {
			t.Errorf("trigger %s: message %q has %q", tt.pipeline, ae.Message, tt.not)
		}
	}
	if _, err := svc.Trigger(ctx, "kept", nil, "test"); err != nil {
		t.Errorf("trigger of a pipeline with a last good version: %v", err)
	}
	var ae *api.Error
	if _, err := svc.Trigger(ctx, "nope", nil, "test"); !errors.As(err, &ae) || ae.Code != api.CodeNotFound {
		t.Errorf("trigger of an unknown pipeline: %v", err)
	}
}

package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func pipelineYAML(name string) string {
	return "name: " + name + "\ntasks:\n  - id: a\n    run: echo\n"
}

func names(ps []*Pipeline) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return strings.Join(out, ",")
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"a.yaml":              pipelineYAML("alpha"),
		"b.yml":               pipelineYAML("beta"),
		"notes.txt":           "not a pipeline",
		"README.md":           "# docs",
		"team/c.YAML":         pipelineYAML("gamma"),
		"team/deep/d.yaml":    pipelineYAML("delta"),
		".hidden.yaml":        "this: is not loaded",
		".git/config.yaml":    "neither: is this",
		"team/.draft/e.yaml":  "nor: this",
		"team/broken.yaml":    "name: broken\ntasks:\n  - id: a\n",
		"z/dup-of-alpha.yaml": pipelineYAML("alpha"),
	})
	ps, errs := LoadDir(dir)
	if got := names(ps); got != "alpha,beta,gamma,delta" {
		t.Errorf("loaded %q", got)
	}
	if len(errs) != 2 {
		t.Fatalf("errors:\n%v", errs)
	}
	broken, dup := errs[0], errs[1]
	if broken.File != filepath.Join(dir, "team", "broken.yaml") || broken.Line != 3 || !strings.Contains(broken.Msg, `missing required key "run" in task "a"`) {
		t.Errorf("broken file error = %v", broken)
	}
	if dup.File != filepath.Join(dir, "z", "dup-of-alpha.yaml") || dup.Line != 1 || dup.Col != 7 ||
		dup.Msg != `pipeline name "alpha" is already used by `+filepath.Join(dir, "a.yaml")+`:1:7` {
		t.Errorf("duplicate name error = %v", dup)
	}
	for _, p := range ps {
		if !strings.HasPrefix(p.Source.File, dir) || len(p.Source.Hash) != 64 || len(p.Source.Data) == 0 {
			t.Errorf("source of %s = %q %q", p.Name, p.Source.File, p.Source.Hash)
		}
	}
}

func TestLoadDirErrors(t *testing.T) {
	_, errs := LoadDir(filepath.Join(t.TempDir(), "missing"))
	if len(errs) != 1 || !errors.Is(errs, fs.ErrNotExist) {
		t.Errorf("missing dir: %v", errs)
	}
	file := filepath.Join(t.TempDir(), "p.yaml")
	writeFiles(t, filepath.Dir(file), map[string]string{"p.yaml": pipelineYAML("p")})
	if _, errs := LoadDir(file); len(errs) != 1 || !strings.Contains(errs[0].Msg, "not a directory") {
		t.Errorf("file as dir: %v", errs)
	}
	ps, errs := LoadDir(t.TempDir())
	if len(ps) != 0 || errs != nil {
		t.Errorf("empty dir = %v, %v", ps, errs)
	}
}

func TestLoadPaths(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"one.yaml":         pipelineYAML("one"),
		"two.pipeline":     pipelineYAML("two"), // named explicitly: any extension
		"more/three.yaml":  pipelineYAML("three"),
		"more/four.yml":    pipelineYAML("four"),
		"more/.skip/x.yml": pipelineYAML("skipped"),
	})
	ps, err := LoadPaths(filepath.Join(dir, "one.yaml"), filepath.Join(dir, "two.pipeline"), filepath.Join(dir, "more"), filepath.Join(dir, "one.yaml"))
	if err != nil {
		t.Fatalf("LoadPaths: %v", err)
	}
	if got := names(ps); got != "one,two,four,three" {
		t.Errorf("loaded %q", got)
	}
	ps, err = LoadPaths(filepath.Join(dir, "one.yaml"), filepath.Join(dir, "nope.yaml"))
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 1 || !errors.Is(err, fs.ErrNotExist) || len(ps) != 1 {
		t.Errorf("LoadPaths with a missing file = %v, %v", names(ps), err)
	}
	if _, err := ParseFile(filepath.Join(dir, "nope.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ParseFile of a missing file: %v", err)
	}
	if ps, err := LoadPaths(); err != nil || len(ps) != 0 {
		t.Errorf("LoadPaths() = %v, %v", ps, err)
	}
}

// TestLoadDirChecksAndDeclaredNames: a caller's check points at the value
// it concerns, and every error of a file that declares a readable name
// carries that name, so a server can say which pipeline a broken file is.
func TestLoadDirChecksAndDeclaredNames(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"good.yaml":   pipelineYAML("good"),
		"pooled.yaml": "name: pooled\ntasks:\n  - id: a\n    run: echo\n    pool: warehouse\n",
		"needs.yaml":  "name: needy\ntasks:\n  - id: a\n    run: echo\n    needs: [nope]\n",
		"syntax.yaml": "name: [\n",
		"noname.yaml": "name: [1]\ntasks: [{id: a, run: echo}]\n",
		"zdup.yaml":   pipelineYAML("good"), // after good.yaml in path order
	})
	pools := func(p *Pipeline, report func(at any, msg string)) {
		for i := range p.Tasks {
			if p.Tasks[i].Pool != "" {
				report(&p.Tasks[i].Pool, "pool "+p.Tasks[i].Pool+" is not configured")
			}
		}
	}
	ps, errs := LoadDir(dir, pools)
	if names(ps) != "good" {
		t.Errorf("loaded %q, want only good", names(ps))
	}
	got := map[string]string{}
	for _, e := range errs {
		rel, _ := filepath.Rel(dir, e.File)
		got[rel] = fmt.Sprintf("%d:%d %s [%s]", e.Line, e.Col, e.Msg, e.Pipeline)
	}
	want := map[string]string{
		"pooled.yaml": "5:11 pool warehouse is not configured [pooled]",
		"needs.yaml":  `5:13 task "a" needs "nope", which is not a task [needy]`,
		"syntax.yaml": "[]",
		"noname.yaml": "[]",
		"zdup.yaml":   `1:7 pipeline name "good" is already used by [good]`,
	}
	if len(got) != len(want) {
		t.Errorf("errors %q, want one per file of %q", got, want)
	}
	for file, w := range want {
		prefix, suffix, _ := strings.Cut(w, "[")
		if g := got[file]; !strings.HasPrefix(g, strings.TrimSpace(prefix)) || !strings.HasSuffix(g, "["+suffix) {
			t.Errorf("%s: %q, want %q ... [%s", file, g, prefix, suffix)
		}
	}
}

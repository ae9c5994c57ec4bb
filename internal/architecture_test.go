// Package internal_test holds checks on the repository as a whole that
// belong to no one package.
package internal_test

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// packageRoots are the directories, relative to the module root, whose Go
// packages docs/architecture.md must list.
var packageRoots = []string{"internal", "cmd", "bench"}

// TestArchitectureListsEveryPackage keeps the package table of
// docs/architecture.md (the map a newcomer reads first) in step with the
// code: every Go package under internal/, cmd/ and bench/ needs a row, and
// every row must name a package that exists.
func TestArchitectureListsEveryPackage(t *testing.T) {
	root := moduleRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := packageRows(string(doc))
	if len(rows) == 0 {
		t.Fatal(`docs/architecture.md has no package table under "## Packages"`)
	}
	var pkgs []string
	for _, r := range packageRoots {
		found, err := packageDirs(root, r)
		if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, found...)
	}
	for _, p := range pkgs {
		if !slices.Contains(rows, p) {
			t.Errorf("docs/architecture.md: the package table has no row for `%s`; add one saying what it provides", p)
		}
	}
	for _, r := range rows {
		if !slices.Contains(pkgs, r) {
			t.Errorf("docs/architecture.md: the package table lists `%s`, which is not a Go package of this module", r)
		}
	}
}

// TestPackageRows checks the table reader on its own, so the check above
// cannot pass by reading nothing: only the first cell of the rows of the
// table under "## Packages" counts.
func TestPackageRows(t *testing.T) {
	doc := strings.Join([]string{
		"# Title",
		"| `internal/elsewhere` | another table |",
		"## Packages",
		"",
		"| package | provides |",
		"|---|---|",
		"| `internal/a` | A, with `internal/b` in the text. |",
		"| `cmd/x` | X |",
		"|`internal/c`|tight|",
		"",
		"## Next section",
		"| `internal/d` | after the table |",
	}, "\n")
	want := []string{"internal/a", "cmd/x", "internal/c"}
	if got := packageRows(doc); !slices.Equal(got, want) {
		t.Errorf("packageRows = %q, want %q", got, want)
	}
}

// moduleRoot is the directory holding go.mod: the parent of this package's.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	return root
}

// packageDirs returns the slash-separated paths, relative to root, of the
// directories under dir that hold a Go package: at least one .go file that
// is not a test. testdata and directories the go command ignores (names
// starting with "." or "_") are skipped.
func packageDirs(root, dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != filepath.Join(root, dir) && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		if rel = filepath.ToSlash(rel); !slices.Contains(out, rel) {
			out = append(out, rel)
		}
		return nil
	})
	return out, err
}

// packageRows returns the first cells, without their backquotes, of the
// rows of the table in the "## Packages" section of doc.
func packageRows(doc string) []string {
	var rows []string
	in := false
	sc := bufio.NewScanner(strings.NewReader(doc))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "## ") {
			in = line == "## Packages"
			continue
		}
		if !in || !strings.HasPrefix(line, "|") {
			continue
		}
		cell, _, ok := strings.Cut(line[1:], "|")
		cell = strings.TrimSpace(cell)
		if !ok || len(cell) < 3 || cell[0] != '`' || cell[len(cell)-1] != '`' {
			continue // the header, the separator, a malformed row
		}
		rows = append(rows, cell[1:len(cell)-1])
	}
	return rows
}

// TestPackageCommentsLiveInDocGo keeps every library package's comment in a
// doc.go of its own, where a reader looks for it first, and nowhere else: a
// second "// Package" comment in another file would be merged into the
// package's documentation by go doc, in an order nobody chose.
func TestPackageCommentsLiveInDocGo(t *testing.T) {
	root := moduleRoot(t)
	pkgs, err := packageDirs(root, "internal")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkgs {
		dir := filepath.Join(root, filepath.FromSlash(p))
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		haveDoc := false
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
				continue
			}
			src, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			has := packageComment(string(src))
			switch {
			case name == "doc.go" && !has:
				t.Errorf("%s/doc.go: no package comment (\"// Package %s ...\") above the package clause", p, filepath.Base(p))
			case name == "doc.go":
				haveDoc = true
			case has:
				t.Errorf("%s/%s: the package comment belongs in doc.go", p, name)
			}
		}
		if !haveDoc {
			t.Errorf("%s: no doc.go with the package comment", p)
		}
	}
}

// packageComment reports whether src has a "// Package" comment directly
// above its package clause.
func packageComment(src string) bool {
	lines := strings.Split(src, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "package ") {
			continue
		}
		j := i
		for j > 0 && strings.HasPrefix(lines[j-1], "//") {
			j--
		}
		return j < i && strings.HasPrefix(lines[j], "// Package ")
	}
	return false
}

package pathglob

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"a.txt", "a.txt", true},
		{"a.txt", "b.txt", false},
		{"*.txt", "a.txt", true},
		{"*.txt", "d/a.txt", false}, // * stays within an element
		{"?.txt", "a.txt", true},
		{"?.txt", "ab.txt", false},
		{"[ab].txt", "b.txt", true},
		{"[^ab].txt", "b.txt", false},
		{`\*.txt`, "*.txt", true},
		{`\*.txt`, "a.txt", false},
		{"d/*.txt", "d/a.txt", true},
		{"d/*.txt", "e/a.txt", false},
		{"**", "a", true},
		{"**", "a/b/c", true},
		{"**/*.csv", "x.csv", true}, // ** matches no element too
		{"**/*.csv", "a/b/x.csv", true},
		{"**/*.csv", "a/b/x.txt", false},
		{"r/**/x", "r/x", true},
		{"r/**/x", "r/a/b/x", true},
		{"r/**/x", "r/a/b/y", false},
		{"r/**", "r", true},
		{"r/**", "s/a", false},
		{"a/**/b/**/c", "a/1/b/2/3/c", true},
		{"a/**/b/**/c", "a/1/2/3/c", false},
		{"a**", "abc", true}, // ** within an element is *
		{"a**", "a/b", false},
		{"a/b", "a", false},
		{"a", "a/b", false},
		{"[", "[", false}, // malformed: matches nothing
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.name); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestCanDescend(t *testing.T) {
	tests := []struct {
		pattern, dir string
		want         bool
	}{
		{"a/*.txt", "a", true},
		{"a/*.txt", "b", false},
		{"a/*.txt", "a/b", false}, // the pattern ends at a's files
		{"*/x", "d", true},
		{"a/**/x", "a/b/c", true},
		{"**", "d", true},
		{"a", "a", false}, // a itself may match, nothing under it
	}
	for _, tt := range tests {
		if got := canDescend(strings.Split(tt.pattern, "/"), strings.Split(tt.dir, "/")); got != tt.want {
			t.Errorf("canDescend(%q, %q) = %v, want %v", tt.pattern, tt.dir, got, tt.want)
		}
	}
}

// TestMatchAndCanDescend holds the cases the cache's input globs were
// first tested with, on both functions at once.
func TestMatchAndCanDescend(t *testing.T) {
	for _, c := range []struct {
		pat, name string
		match     bool
		descend   bool
	}{
		{"*.csv", "a.csv", true, false},
		{"*.csv", "a.txt", false, false},
		{"*/x", "a", false, true},
		{"*/x", "a/x", true, false},
		{"**", "a/b/c", true, true},
		{"**/x", "x", true, true},
		{"**/x", "a/b/x", true, true},
		{"a/**/x", "a/x", true, true},
		{"a/**/x", "b/x", false, false},
		{"a/**", "a", true, true},
	} {
		if got := Match(c.pat, c.name); got != c.match {
			t.Errorf("Match(%s, %s) = %v", c.pat, c.name, got)
		}
		if got := canDescend(strings.Split(c.pat, "/"), strings.Split(c.name, "/")); got != c.descend {
			t.Errorf("canDescend(%s, %s) = %v", c.pat, c.name, got)
		}
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		pattern string
		ok      bool
	}{
		{"a/b.txt", true},
		{"**/*.[ch]", true},
		{`d/\*`, true},
		{"d/[a", false},
		{`d/a\`, false},
		{"[a/b]", false}, // an element may not hold a /: it could never match
	}
	for _, tt := range tests {
		err := Check(tt.pattern)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, path.ErrBadPattern)) {
			t.Errorf("Check(%q) = %v, want ok %v", tt.pattern, err, tt.ok)
		}
	}
}

func TestHasMeta(t *testing.T) {
	for s, want := range map[string]bool{"a.txt": false, "*.txt": true, "a?": true, "[ab]": true, `a\b`: true, "a-b_c": false} {
		if got := HasMeta(s); got != want {
			t.Errorf("HasMeta(%q) = %v, want %v", s, got, want)
		}
	}
}

// tree makes the files and directories (ending in /) under a new
// directory and returns it.
func tree(t *testing.T, paths ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, p := range paths {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestWalkDir(t *testing.T) {
	dir := tree(t, "a.csv", "b.txt", "d/c.csv", "d/e/f.csv", "d/e/g.txt", "empty/", "x.csv/inner.csv")
	tests := []struct {
		pattern string
		skipDir bool // fn returns SkipDir for directories
		want    []string
	}{
		{pattern: "*.csv", want: []string{"a.csv", "x.csv"}},
		{pattern: "**/*.csv", want: []string{"a.csv", "d/c.csv", "d/e/f.csv", "x.csv", "x.csv/inner.csv"}},
		{pattern: "**/*.csv", skipDir: true, want: []string{"a.csv", "d/c.csv", "d/e/f.csv", "x.csv"}},
		{pattern: "d/**", want: []string{"d/c.csv", "d/e", "d/e/f.csv", "d/e/g.txt"}},
		{pattern: "d/*/*.txt", want: []string{"d/e/g.txt"}},
		{pattern: "d/e/f.csv", want: []string{"d/e/f.csv"}}, // no wildcard: the parent is walked
		{pattern: "d//e/*.csv", want: []string{"d/e/f.csv"}},
		{pattern: "nowhere/*.csv", want: nil},
		{pattern: "b.txt/*", want: nil}, // the start is a file
		{pattern: "empty/*", want: nil},
		{pattern: "", want: nil},
	}
	for _, tt := range tests {
		var got []string
		err := WalkDir(dir, tt.pattern, func(p string, d fs.DirEntry) error {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			got = append(got, filepath.ToSlash(rel))
			if tt.skipDir && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		})
		if err != nil {
			t.Errorf("WalkDir(%q): %v", tt.pattern, err)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("WalkDir(%q, skipDir %v) = %q, want %q", tt.pattern, tt.skipDir, got, tt.want)
		}
	}
}

func TestWalkDirAbsolute(t *testing.T) {
	dir := tree(t, "in/a.csv", "in/b.txt")
	var got []string
	err := WalkDir("/somewhere/else", filepath.ToSlash(dir)+"/in/*.csv", func(p string, d fs.DirEntry) error {
		got = append(got, p)
		return nil
	})
	if want := []string{filepath.Join(dir, "in", "a.csv")}; err != nil || !slices.Equal(got, want) {
		t.Errorf("WalkDir of an absolute pattern = %q, %v; want %q", got, err, want)
	}
}

func TestWalkDirStops(t *testing.T) {
	dir := tree(t, "a/1", "a/2", "b/3")
	stop := errors.New("enough")
	var got []string
	err := WalkDir(dir, "*/*", func(p string, d fs.DirEntry) error {
		got = append(got, filepath.Base(p))
		if len(got) == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("WalkDir = %q, %v; want it to stop after 1 and 2 with fn's error", got, err)
	}
}

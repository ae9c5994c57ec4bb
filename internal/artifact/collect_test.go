package artifact

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// tree writes files under dir: "path": content, "path/": a directory,
// "path -> target": a symbolic link, "path|": a FIFO.
func tree(t *testing.T, dir string, entries ...string) {
	t.Helper()
	for _, e := range entries {
		name, content, isFile := strings.Cut(e, "=")
		switch {
		case strings.Contains(e, " -> "):
			name, target, _ := strings.Cut(e, " -> ")
			p := filepath.Join(dir, name)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
		case strings.HasSuffix(e, "|"):
			p := filepath.Join(dir, strings.TrimSuffix(e, "|"))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
		case strings.HasSuffix(e, "/"):
			os.MkdirAll(filepath.Join(dir, e), 0o755)
		case isFile:
			p := filepath.Join(dir, name)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("bad tree entry %q", e)
		}
	}
}

func paths(files []File) string {
	var out []string
	for _, f := range files {
		out = append(out, f.Path)
	}
	return strings.Join(out, " ")
}

func TestCollect(t *testing.T) {
	base := []string{
		"out/model.bin=weights", "out/extra.bin=more", "out/notes.txt=n",
		"reports/2024/a.csv=a", "reports/2024/q1/b.csv=b", "reports/c.csv=c", "reports/readme.md=r",
		"empty/", ".hidden=h",
	}
	for _, tc := range []struct {
		name     string
		extra    []string
		patterns []string
		want     string // paths, or "error: substring"
	}{
		{"one file", nil, []string{"out/model.bin"}, "out/model.bin"},
		{"glob", nil, []string{"out/*.bin"}, "out/extra.bin out/model.bin"},
		{"double star at any depth", nil, []string{"reports/**/*.csv"}, "reports/2024/a.csv reports/2024/q1/b.csv reports/c.csv"},
		{"double star at the start", nil, []string{"**/b.csv"}, "reports/2024/q1/b.csv"},
		{"a directory is taken whole", nil, []string{"reports/2024"}, "reports/2024/a.csv reports/2024/q1/b.csv"},
		{"overlapping patterns keep one of each", nil, []string{"out/*.bin", "out/model.bin", "out"}, "out/extra.bin out/model.bin out/notes.txt"},
		{"dot files match", nil, []string{".*"}, ".hidden"},
		{"clean paths", nil, []string{"./out//model.bin"}, "out/model.bin"},
		{"link inside", []string{"latest -> out/model.bin"}, []string{"latest"}, "latest"},
		{"directory link inside", []string{"current -> reports/2024"}, []string{"current"}, "current/a.csv current/q1/b.csv"},
		{"matched nothing", nil, []string{"out/model.bin", "model/*.bin"}, "error: outputs: model/*.bin matched no file"},
		{"an empty directory is no file", nil, []string{"empty"}, "error: outputs: empty matched no file"},
		{"missing file", nil, []string{"out/missing.bin"}, "error: outputs: out/missing.bin matched no file"},
		{"climbs out", nil, []string{"../secret"}, "error: climbs out of the working directory"},
		{"climbs out midway", nil, []string{"out/../../secret"}, "error: climbs out of the working directory"},
		{"absolute", nil, []string{"/etc/passwd"}, "error: an absolute path"},
		{"bad pattern", nil, []string{"out/[.bin"}, "error: syntax error in pattern"},
		{"link outside", []string{"leak -> /etc/hostname"}, []string{"leak"}, "error: leak is a symbolic link to /etc/hostname, outside the working directory"},
		{"relative link outside", []string{"out/leak -> ../../../outside.txt"}, []string{"out/*"}, "error: outside the working directory"},
		{"link outside inside a directory", []string{"out/leak -> /etc"}, []string{"out"}, "error: out/leak is a symbolic link to /etc"},
		{"link loop", []string{"loop/self -> .."}, []string{"loop"}, "error: symbolic link loop"},
		{"fifo", []string{"out/pipe|"}, []string{"out/pipe"}, "error: out/pipe is not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			top := t.TempDir()
			os.WriteFile(filepath.Join(top, "outside.txt"), []byte("secret"), 0o644)
			dir := filepath.Join(top, "work", "task")
			tree(t, dir, append(base, tc.extra...)...)
			st := &Dir{Root: t.TempDir()}
			files, err := Collect(context.Background(), st, dir, tc.patterns)
			if want, ok := strings.CutPrefix(tc.want, "error: "); ok {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("Collect = %v, %v; want an error with %q", paths(files), err, want)
				}
				if l, _ := st.List(context.Background(), "", 0); len(l) != 0 {
					t.Errorf("a refused collect kept %d contents", len(l))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := paths(files); got != tc.want {
				t.Errorf("Collect = %s, want %s", got, tc.want)
			}
			for _, f := range files {
				want, err := os.ReadFile(filepath.Join(dir, f.Path))
				if err != nil {
					t.Fatal(err)
				}
				if got, err := readAll(t, st, f.Digest); err != nil || got != string(want) || f.Size != int64(len(want)) {
					t.Errorf("%s: kept %q (%d bytes), %v; want %q", f.Path, got, f.Size, err, want)
				}
			}
		})
	}
}

func TestCollectKeepsModes(t *testing.T) {
	dir := t.TempDir()
	tree(t, dir, "bin/tool=#!/bin/sh", "data.txt=d")
	os.Chmod(filepath.Join(dir, "bin/tool"), 0o755)
	os.Chmod(filepath.Join(dir, "data.txt"), 0o640)
	files, err := Collect(context.Background(), &Dir{Root: t.TempDir()}, dir, []string{"bin/tool", "data.txt"})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Mode != 0o755 || files[1].Mode != 0o640 {
		t.Errorf("modes = %+v", files)
	}
}

// The working directory may itself be reached through a link (/tmp on
// some systems): links inside it still resolve inside it.
func TestCollectThroughLinkedDir(t *testing.T) {
	top := t.TempDir()
	tree(t, top, "real/out/a=1", "real/out/b -> a", "alias -> real")
	files, err := Collect(context.Background(), &Dir{Root: t.TempDir()}, filepath.Join(top, "alias"), []string{"out/*"})
	if err != nil || paths(files) != "out/a out/b" || files[0].Digest != files[1].Digest {
		t.Fatalf("Collect = %+v, %v", files, err)
	}
}

func TestCollectBoundsFiles(t *testing.T) {
	dir := t.TempDir()
	for i := range MaxFiles + 1 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%06d", i)), nil, 0o644)
	}
	if _, err := Collect(context.Background(), &Dir{Root: t.TempDir()}, dir, []string{"*"}); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("Collect of %d files = %v, want a bound", MaxFiles+1, err)
	}
}

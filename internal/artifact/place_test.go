package artifact

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// otherStore hides a Dir behind the Store interface, as a store that is
// not a local directory (an object store) would be: Place copies.
type otherStore struct{ Store }

func putAll(t *testing.T, st Store, contents ...string) []Info {
	t.Helper()
	var out []Info
	for _, c := range contents {
		info, err := st.Put(context.Background(), strings.NewReader(c), "")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, info)
	}
	return out
}

func need(task, path string, info Info, mode uint32) Need {
	return Need{Need: task, File: File{Path: path, Digest: info.Digest, Size: info.Size, Mode: mode}}
}

func TestPlace(t *testing.T) {
	for _, tc := range []struct {
		name string
		link bool
	}{{"from a directory store", true}, {"from another store", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			d := &Dir{Root: t.TempDir()}
			var st Store = d
			if !tc.link { // (the field names the store, not a link: files are always copies)
				st = otherStore{d}
			}
			in := putAll(t, d, "weights", "#!/bin/sh\necho hi\n")
			files := []Need{
				need("train", "out/model.bin", in[0], 0o644),
				need("train", "bin/run.sh", in[1], 0o755),
				need("eval", "model.bin", in[0], 0),
			}
			dir := filepath.Join(t.TempDir(), "artifacts")
			for range 2 { // placing again changes nothing
				if err := Place(ctx, st, dir, files); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range []struct {
				path, content string
				mode          fs.FileMode
				linked        bool
			}{
				{"train/out/model.bin", "weights", 0o400, false},
				{"train/bin/run.sh", "#!/bin/sh\necho hi\n", 0o500, false},
				{"eval/model.bin", "weights", 0o400, false},
			} {
				p := filepath.Join(dir, c.path)
				b, err := os.ReadFile(p)
				if err != nil || string(b) != c.content {
					t.Errorf("%s = %q, %v", c.path, b, err)
				}
				fi, _ := os.Stat(p)
				if fi.Mode().Perm() != c.mode {
					t.Errorf("%s: mode %v, want %v", c.path, fi.Mode().Perm(), c.mode)
				}
				kept, _ := os.Stat(d.path(strings.TrimSpace(digestOf(c.content))))
				if os.SameFile(fi, kept) != c.linked {
					t.Errorf("%s: linked to the kept file = %v, want %v", c.path, !c.linked, c.linked)
				}
			}
			// A task that makes its copy writable and changes it does not
			// change the kept file.
			model := filepath.Join(dir, "train/out/model.bin")
			os.Chmod(model, 0o600)
			os.WriteFile(model, []byte("CORRUPTED"), 0o600)
			if r, err := d.Open(ctx, in[0].Digest); err != nil {
				t.Errorf("the kept file after a placed copy was changed: %v", err)
			} else {
				b, err := io.ReadAll(r)
				r.Close()
				if err != nil || string(b) != "weights" {
					t.Errorf("the kept file after a placed copy was changed: %q, %v", b, err)
				}
			}
			// A file changed in place since is put back.
			p := filepath.Join(dir, "train/bin/run.sh")
			os.Chmod(p, 0o700)
			os.WriteFile(p, []byte("tampered"), 0o700)
			if err := Place(ctx, st, dir, files); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(p); string(b) != "#!/bin/sh\necho hi\n" {
				t.Errorf("a changed file was not placed again: %q", b)
			}
		})
	}
}

func TestPlaceRefuses(t *testing.T) {
	ctx := context.Background()
	d := &Dir{Root: t.TempDir()}
	in := putAll(t, d, "a", "b")
	missing := Info{Digest: digestOf("never put"), Size: 9}
	for _, tc := range []struct {
		name  string
		files []Need
		want  string
	}{
		{"climbing path", []Need{need("t", "../../etc/passwd", in[0], 0)}, "expected a clean relative path"},
		{"absolute path", []Need{need("t", "/etc/passwd", in[0], 0)}, "expected a clean relative path"},
		{"unclean path", []Need{need("t", "a/./b", in[0], 0)}, "expected a clean relative path"},
		{"dot path", []Need{need("t", ".", in[0], 0)}, "expected a clean relative path"},
		{"climbing need", []Need{need("..", "x", in[0], 0)}, "expected a task id"},
		{"need with a slash", []Need{need("a/b", "x", in[0], 0)}, "expected a task id"},
		{"empty need", []Need{need("", "x", in[0], 0)}, "expected a task id"},
		{"bad digest", []Need{{Need: "t", File: File{Path: "x", Digest: "sha256:nope"}}}, "expected sha256:"},
		{"two files for one path", []Need{need("t", "x", in[0], 0), need("t", "x", in[1], 0)}, "two different files for t/x"},
		{"missing content", []Need{need("t", "x", missing, 0)}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "a")
			err := Place(ctx, d, dir, tc.files)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Place = %v, want an error with %q", err, tc.want)
			}
			filepath.WalkDir(filepath.Dir(dir), func(p string, e fs.DirEntry, err error) error {
				if err == nil && !e.IsDir() {
					t.Errorf("a refused placement wrote %s", p)
				}
				return nil
			})
		})
	}
	// The same file twice is one file.
	if err := Place(ctx, d, t.TempDir(), []Need{need("t", "x", in[0], 0), need("t", "x", in[0], 0)}); err != nil {
		t.Errorf("the same file twice: %v", err)
	}
}

func TestPlaceDetectsCorruption(t *testing.T) {
	ctx := context.Background()
	d := &Dir{Root: t.TempDir()}
	in := putAll(t, d, "the content")
	p := d.path(in[0].Digest)
	os.Chmod(p, 0o600)
	// Same size, other bytes: a copy finds it; truncated: a link does.
	os.WriteFile(p, []byte("THE CONTENT"), 0o600)
	if err := Place(ctx, otherStore{d}, t.TempDir(), []Need{need("t", "x", in[0], 0)}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("copy of a damaged content = %v, want ErrCorrupt", err)
	}
	os.WriteFile(p, []byte("the"), 0o600)
	if err := Place(ctx, d, t.TempDir(), []Need{need("t", "x", in[0], 0)}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("link of a truncated content = %v, want ErrCorrupt", err)
	}
}

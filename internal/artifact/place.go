package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Place puts the files of a task's needs under dir (an attempt's
// artifacts directory, TASUKI_ARTIFACTS): each at dir/<need>/<path>.
//
// Each file is a copy of the kept content, checked against its digest as
// it is read: never a hard link, which a task that changes its copy (a
// chmod, or root) would turn into a change of the kept file for every
// later run. The placed file is read-only: 0400, or 0500 when its owner
// could execute it; the directory is the attempt's own, so group and
// other bits would give nothing.
//
// Every path is checked before anything is written: one that would
// climb out of dir, two different files for one path, or a digest that
// is not one refuses the whole placement. Placing again is harmless: a
// file already there with the right content is kept.
func Place(ctx context.Context, st Store, dir string, files []Need) error {
	targets := map[string]Need{}
	for _, f := range files {
		rel, err := needPath(f)
		if err != nil {
			return err
		}
		if prev, dup := targets[rel]; dup && prev.Digest != f.Digest {
			return fmt.Errorf("artifacts: two different files for %s (%s and %s)", rel, prev.Digest, f.Digest)
		}
		targets[rel] = f
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	defer root.Close()
	p := placer{ctx: ctx, st: st, root: root, dir: dir}
	for _, rel := range slices.Sorted(maps.Keys(targets)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := p.place(rel, targets[rel]); err != nil {
			return fmt.Errorf("artifacts: place %s: %w", rel, err)
		}
	}
	return nil
}

// needPath checks a need's file and returns where it goes, relative to
// the artifacts directory (slash-separated).
func needPath(f Need) (string, error) {
	if f.Need == "" || f.Need == "." || f.Need == ".." || strings.ContainsAny(f.Need, `/\`) {
		return "", fmt.Errorf("artifacts: need %q: expected a task id", clip(f.Need))
	}
	if f.Path == "." || !fs.ValidPath(f.Path) || strings.Contains(f.Path, `\`) {
		return "", fmt.Errorf("artifacts: %s: path %q: expected a clean relative path that stays in the directory", f.Need, clip(f.Path))
	}
	if err := CheckDigest(f.Digest); err != nil {
		return "", fmt.Errorf("artifacts: %s/%s: %w", f.Need, f.Path, err)
	}
	if f.Size < 0 {
		return "", fmt.Errorf("artifacts: %s/%s: size %d", f.Need, f.Path, f.Size)
	}
	return f.Need + "/" + f.Path, nil
}

// placedMode is the mode of a placed file with permission bits m.
func placedMode(m uint32) fs.FileMode {
	if m&0o100 != 0 {
		return 0o500
	}
	return 0o400
}

type placer struct {
	ctx  context.Context
	st   Store
	root *os.Root
	dir  string
}

func (p placer) place(rel string, f Need) error {
	mode := placedMode(f.Mode)
	name := filepath.FromSlash(rel)
	if fi, err := p.root.Lstat(name); err == nil {
		if fi.Mode().IsRegular() && fi.Size() == f.Size && p.same(name, fi, f.Digest) {
			if fi.Mode().Perm() == mode {
				return nil
			}
			return p.root.Chmod(name, mode)
		}
		if err := p.root.RemoveAll(name); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if parent := path.Dir(rel); parent != "." {
		if err := p.root.MkdirAll(filepath.FromSlash(parent), 0o700); err != nil {
			return err
		}
	}
	// Always a copy, never a hard link to the kept file: a task can
	// chmod a file it owns (and root writes through any mode), and a
	// write through a link would change the kept content for every later
	// run.
	return p.copy(name, f, mode)
}

// same reports whether the file at name (fi) has the content digest: it
// is the kept file itself, or its bytes hash to it.
func (p placer) same(name string, fi fs.FileInfo, digest string) bool {
	if d, ok := p.st.(*Dir); ok {
		if kept, err := os.Stat(d.path(digest)); err == nil && os.SameFile(fi, kept) {
			return true
		}
	}
	f, err := p.root.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{p.ctx, f}); err != nil {
		return false
	}
	return DigestPrefix+hex.EncodeToString(h.Sum(nil)) == digest
}

// copy writes the content of f at name through a temporary file, checked
// against the digest as it is read.
func (p placer) copy(name string, f Need, mode fs.FileMode) error {
	r, err := p.st.Open(p.ctx, f.Digest)
	if err != nil {
		return err
	}
	defer r.Close()
	tmp := filepath.Join(filepath.Dir(name), ".place-"+filepath.Base(name))
	p.root.Remove(tmp) // a leftover of an earlier try
	w, err := p.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), ctxReader{p.ctx, r})
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil && DigestPrefix+hex.EncodeToString(h.Sum(nil)) != f.Digest {
		err = fmt.Errorf("%s: the store gave %d bytes of other content: %w", f.Digest, n, ErrCorrupt)
	}
	if err == nil {
		err = p.root.Chmod(tmp, mode)
	}
	if err == nil {
		err = p.root.Rename(tmp, name)
	}
	if err != nil {
		p.root.Remove(tmp)
	}
	return err
}

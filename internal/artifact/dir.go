package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Dir is a Store in a local directory: each content is the file
// Root/sha256/<first two hex digits>/<hex digits>.
//
// The data directory is private: directories are 0700, and files are
// read-only to their owner (0400). Read-only because a content never
// changes once named by its digest, and because Place hard-links these
// files into attempts' directories: a task that opens an input for
// writing by mistake is refused instead of changing the content every
// later reader gets (a task running as root is not stopped by modes; Open
// still finds the damage, see below).
//
// A content is written to a temporary file in Root, hashed on the way,
// and renamed into place: a reader never sees half a file, a crash leaves
// only a temporary file (Sweep removes old ones), two Puts of the same
// content at once both succeed with one file, and a damaged file is
// repaired by putting its content again. Open hashes what it reads
// and ends in an error wrapping ErrCorrupt if the content no longer
// matches its name.
type Dir struct {
	Root string
}

var _ Store = (*Dir)(nil)

// tmpPrefix starts the names of files being put, in Root.
const tmpPrefix = ".put-"

// path is where the content of a checked digest lives.
func (d *Dir) path(digest string) string {
	h := strings.TrimPrefix(digest, DigestPrefix)
	return filepath.Join(d.Root, "sha256", h[:2], h)
}

// Put implements Store.
func (d *Dir) Put(ctx context.Context, r io.Reader, want string) (Info, error) {
	if want != "" {
		if err := CheckDigest(want); err != nil {
			return Info{}, fmt.Errorf("put artifact: %w", err)
		}
	}
	if err := os.MkdirAll(d.Root, 0o700); err != nil {
		return Info{}, fmt.Errorf("put artifact: %w", err)
	}
	f, err := os.CreateTemp(d.Root, tmpPrefix+"*")
	if err != nil {
		return Info{}, fmt.Errorf("put artifact: %w", err)
	}
	tmp := f.Name()
	kept := false
	defer func() {
		if !kept {
			f.Close()
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), ctxReader{ctx, r})
	if err != nil {
		return Info{}, fmt.Errorf("put artifact: write: %w", err)
	}
	if err := f.Sync(); err != nil {
		return Info{}, fmt.Errorf("put artifact: write: %w", err)
	}
	if err := f.Close(); err != nil {
		return Info{}, fmt.Errorf("put artifact: write: %w", err)
	}
	digest := DigestPrefix + hex.EncodeToString(h.Sum(nil))
	if want != "" && digest != want {
		return Info{}, fmt.Errorf("put artifact %s: %w (its %d bytes are %s)", want, ErrDigestMismatch, n, digest)
	}
	// A content kept already is replaced all the same: the new file is
	// checked and the old one may be damaged; its time is now, so a sweep
	// running meanwhile takes it for new; and links placed from the old
	// one keep their (same) content.
	final := d.path(digest)
	if err := os.Chmod(tmp, 0o400); err != nil {
		return Info{}, fmt.Errorf("put artifact: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return Info{}, fmt.Errorf("put artifact: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return Info{}, fmt.Errorf("put artifact: %w", err)
	}
	kept = true
	return Info{Digest: digest, Size: n, ModTime: time.Now()}, nil
}

// Open implements Store.
func (d *Dir) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	if err := CheckDigest(digest); err != nil {
		return nil, fmt.Errorf("open artifact: %w", err)
	}
	f, err := os.Open(d.path(digest))
	if err != nil {
		return nil, fmt.Errorf("open artifact %s: %w", digest, err)
	}
	return Verify(f, digest, f.Name()), nil
}

// Stat implements Store.
func (d *Dir) Stat(ctx context.Context, digest string) (Info, error) {
	if err := CheckDigest(digest); err != nil {
		return Info{}, fmt.Errorf("stat artifact: %w", err)
	}
	fi, err := os.Stat(d.path(digest))
	if err != nil {
		return Info{}, fmt.Errorf("stat artifact %s: %w", digest, err)
	}
	return Info{Digest: digest, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete implements Store.
func (d *Dir) Delete(ctx context.Context, digest string) error {
	if err := CheckDigest(digest); err != nil {
		return fmt.Errorf("delete artifact: %w", err)
	}
	if err := os.Remove(d.path(digest)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete artifact %s: %w", digest, err)
	}
	return nil
}

// List implements Store. It reads only the directories of the digests
// after "after", so paging through a large store costs one pass.
func (d *Dir) List(ctx context.Context, after string, limit int) ([]Info, error) {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	base := filepath.Join(d.Root, "sha256")
	subs, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list artifacts: %w", err)
	}
	var out []Info
	for _, sub := range subs {
		name := sub.Name()
		if !sub.IsDir() || len(name) != 2 || strings.IndexFunc(name, notLowerHex) >= 0 {
			continue
		}
		// Every digest in this directory is below DigestPrefix+name+"~".
		if DigestPrefix+name+"~" <= after {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		entries, err := os.ReadDir(filepath.Join(base, name))
		if err != nil {
			return nil, fmt.Errorf("list artifacts: %w", err)
		}
		for _, e := range entries {
			digest := DigestPrefix + e.Name()
			if digest <= after || CheckDigest(digest) != nil || !e.Type().IsRegular() {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted meanwhile
			}
			if err != nil {
				return nil, fmt.Errorf("list artifacts: %w", err)
			}
			out = append(out, Info{Digest: digest, Size: fi.Size(), ModTime: fi.ModTime()})
			if len(out) == limit {
				return out, nil
			}
		}
	}
	return out, nil
}

// DefaultListLimit is the page size of List when limit is not positive.
const DefaultListLimit = 1000

// tidy removes the temporary files of Puts that started before olderThan
// and never ended (the process died), and returns how many.
func (d *Dir) tidy(olderThan time.Time) (int, error) {
	entries, err := os.ReadDir(d.Root)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("tidy artifacts: %w", err)
	}
	n := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		fi, err := e.Info()
		if err != nil || !fi.ModTime().Before(olderThan) {
			continue
		}
		if os.Remove(filepath.Join(d.Root, e.Name())) == nil {
			n++
		}
	}
	return n, nil
}

// ContextReader reads r until ctx is done, then fails with ctx's error:
// a copy of a large file into a store (a Dir, a bucket's spool) stops
// when its caller gives up instead of running to the end.
func ContextReader(ctx context.Context, r io.Reader) io.Reader {
	return ctxReader{ctx, r}
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Verify wraps the reader of a content named digest (from where) so that
// its end is an error wrapping ErrCorrupt, instead of io.EOF, when what
// was read does not match the digest. Stores return their contents
// through it.
func Verify(rc io.ReadCloser, digest, where string) io.ReadCloser {
	return &verifier{rc: rc, digest: digest, where: where, h: sha256.New()}
}

type verifier struct {
	rc     io.ReadCloser
	digest string
	where  string
	h      hash.Hash
	bad    bool
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.bad {
		return 0, v.corrupt()
	}
	n, err := v.rc.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF && DigestPrefix+hex.EncodeToString(v.h.Sum(nil)) != v.digest {
		v.bad = true
		return n, v.corrupt()
	}
	return n, err
}

func (v *verifier) corrupt() error {
	return fmt.Errorf("read artifact %s (%s): %w", v.digest, v.where, ErrCorrupt)
}

func (v *verifier) Close() error { return v.rc.Close() }

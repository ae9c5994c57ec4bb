package artifact

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
)

// DigestPrefix starts every digest: the hash function is part of the name,
// so another one can be added without renaming what is stored.
const DigestPrefix = "sha256:"

// Store keeps file contents by digest. Implementations are safe for
// concurrent use; putting the same content twice, at once or not, keeps it
// once.
//
// Dir is the implementation on a local directory. An object store (S3 and
// the like) shared by every server of a cluster is another; nothing else in
// tasuki depends on where the bytes are.
type Store interface {
	// Put reads r to its end and keeps its content. When want is not ""
	// the content must have that digest: otherwise nothing is kept and
	// the error wraps ErrDigestMismatch. A content already kept counts
	// as new again for Sweep (its time is now).
	Put(ctx context.Context, r io.Reader, want string) (Info, error)
	// Open returns the content of digest. A missing digest is an error
	// wrapping fs.ErrNotExist. Reading a content that no longer matches
	// its digest (a damaged disk) ends in an error wrapping ErrCorrupt.
	Open(ctx context.Context, digest string) (io.ReadCloser, error)
	// Stat describes a kept content; a missing one is an error wrapping
	// fs.ErrNotExist.
	Stat(ctx context.Context, digest string) (Info, error)
	// Delete removes a content; a missing one is not an error.
	Delete(ctx context.Context, digest string) error
	// List returns up to limit kept contents whose digests are greater
	// than after, in ascending order of digest ("" for the first page).
	List(ctx context.Context, after string, limit int) ([]Info, error)
}

// Info describes one kept content.
type Info struct {
	Digest string
	Size   int64
	// ModTime is when the content was last put.
	ModTime time.Time
}

// Errors of stores.
var (
	// ErrDigestMismatch: the content put is not the one its digest names.
	ErrDigestMismatch = errors.New("the content does not match its digest")
	// ErrCorrupt: a kept content no longer matches its digest.
	ErrCorrupt = errors.New("the kept content no longer matches its digest")
)

// Has reports whether st keeps digest.
func Has(ctx context.Context, st Store, digest string) (bool, error) {
	_, err := st.Stat(ctx, digest)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, err
}

// CheckDigest checks that d is a digest as stores name contents:
// "sha256:" and 64 lowercase hexadecimal digits. Digests travel in URL
// paths and become file names, so nothing else is accepted.
func CheckDigest(d string) error {
	hex, ok := strings.CutPrefix(d, DigestPrefix)
	if !ok || len(hex) != 64 || strings.IndexFunc(hex, notLowerHex) >= 0 {
		return fmt.Errorf("digest %q: expected sha256: and 64 lowercase hexadecimal digits", clip(d))
	}
	return nil
}

func notLowerHex(r rune) bool { return !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') }

// clip shortens a value quoted in an error.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

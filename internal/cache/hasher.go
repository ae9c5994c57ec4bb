package cache

import (
	"context"
	"io/fs"
	"os"
	"sync"
)

// maxMemo bounds the digests a Hasher remembers; past it, it forgets them
// all and starts again.
const maxMemo = 100_000

// Hasher computes keys (Key) and remembers the digests of the input files
// it read, so that the items of a map sharing an input (a model, a
// reference table) read it once, not once per item. A file is read again
// when it is not the same file as before (another inode), or its size,
// modification time or (on Linux) change time differ: any write changes
// the change time. Use one per run, or per map; it is safe for concurrent
// use. The zero value remembers nothing.
type Hasher struct {
	mu   sync.Mutex
	memo map[string]memoEntry
	// open opens an input file (os.Open); tests count the reads.
	open func(name string) (*os.File, error)
}

// memoEntry is a file's digest and how the file was when it was read.
type memoEntry struct {
	info   fs.FileInfo
	digest []byte
}

// NewHasher returns a Hasher that remembers digests.
func NewHasher() *Hasher { return &Hasher{memo: map[string]memoEntry{}} }

// Key is the package's Key, reusing the digests h remembers.
func (h *Hasher) Key(ctx context.Context, in Input) (string, error) { return h.key(ctx, in) }

// digest returns the SHA-256 of the file at abs, found as info before it
// is read (so a write during the read changes what is remembered next).
func (h *Hasher) digest(ctx context.Context, abs string, info fs.FileInfo, buf []byte) ([]byte, error) {
	if h != nil && h.memo != nil {
		h.mu.Lock()
		e, ok := h.memo[abs]
		h.mu.Unlock()
		if ok && sameContent(e.info, info) {
			return e.digest, nil
		}
	}
	open := os.Open
	if h != nil && h.open != nil {
		open = h.open
	}
	f, err := open(abs)
	if err != nil {
		return nil, pathErr(err)
	}
	defer f.Close()
	d, err := hashFile(ctx, f, buf)
	if err != nil {
		return nil, err
	}
	if h != nil && h.memo != nil {
		h.mu.Lock()
		if len(h.memo) >= maxMemo {
			clear(h.memo)
		}
		h.memo[abs] = memoEntry{info: info, digest: d}
		h.mu.Unlock()
	}
	return d, nil
}

// sameContent reports whether two looks at a file show it unchanged.
func sameContent(a, b fs.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && changeTime(a) == changeTime(b)
}

package cache

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tasuki-dev/tasuki/internal/pathglob"
)

// MaxInputFiles bounds the files and directories a task's inputs may name
// in all: a key reads every one each time it is computed, and a pattern
// that reaches further is more likely a mistake (** from the wrong place).
const MaxInputFiles = 100_000

// hashChunk is how much of an input file is read at a time: files are
// hashed as they are read, never held in memory.
const hashChunk = 256 << 10

// Expand replaces ${VAR} in an input pattern with the value of the
// attempt's variable VAR (so inputs: [users/${TASUKI_ITEM}.json] names one
// file per item). "$$" is a literal "$". A variable the attempt does not
// have is left as written, so the path that does not exist names it.
func Expand(pattern string, env map[string]string) string {
	if !strings.Contains(pattern, "$") {
		return pattern
	}
	var b strings.Builder
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		if c != '$' || i+1 >= len(pattern) {
			b.WriteByte(c)
			continue
		}
		switch pattern[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '{':
			end := strings.IndexByte(pattern[i+2:], '}')
			if end < 0 {
				break
			}
			if v, ok := env[pattern[i+2:i+2+end]]; ok {
				b.WriteString(v)
				i += 2 + end
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// inputFile is one file or directory the inputs reach.
type inputFile struct {
	rel    string // slash-separated, relative to the base
	abs    string
	kind   byte        // tagFile, tagDir, tagLink or tagOther
	target string      // tagLink: where it points; tagOther: its type
	info   fs.FileInfo // tagFile: as it was found, before it was read
	digest []byte      // tagFile: SHA-256 of the content
}

// inputFiles resolves the input patterns at base and hashes every file
// they reach, returned in path order. A pattern without glob
// metacharacters names a path that must exist; a glob may match nothing.
// A directory stands for everything under it.
func (h *Hasher) inputFiles(ctx context.Context, base string, patterns []string) ([]inputFile, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	c := collector{base: base, seen: map[string]*inputFile{}}
	for _, p := range sortedSet(patterns) {
		if err := c.pattern(p); err != nil {
			return nil, fmt.Errorf("inputs: %s: %w", p, err)
		}
	}
	files := make([]*inputFile, 0, len(c.seen))
	for _, f := range c.seen {
		files = append(files, f)
	}
	slices.SortFunc(files, func(a, b *inputFile) int { return cmp.Compare(a.rel, b.rel) })
	out := make([]inputFile, len(files))
	buf := make([]byte, hashChunk)
	for i, f := range files {
		if f.kind == tagFile {
			d, err := h.digest(ctx, f.abs, f.info, buf)
			if err != nil {
				return nil, fmt.Errorf("inputs: %s: %w", f.rel, err)
			}
			f.digest = d
		}
		out[i] = *f
	}
	return out, nil
}

// hashFile returns the SHA-256 of a file's content, read a chunk at a
// time into buf.
func hashFile(ctx context.Context, f io.Reader, buf []byte) ([]byte, error) {
	h := sha256.New()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			return h.Sum(nil), nil
		}
		if err != nil {
			return nil, pathErr(err)
		}
	}
}

// collector gathers the files the patterns reach, each once.
type collector struct {
	base string
	seen map[string]*inputFile
}

// pattern adds what one pattern reaches.
func (c *collector) pattern(p string) error {
	if p == "" {
		return errors.New("empty path")
	}
	pat := filepath.ToSlash(p)
	if !pathglob.HasMeta(pat) {
		root := c.base
		if filepath.IsAbs(p) {
			root = string(filepath.Separator)
		}
		root = filepath.Join(root, p)
		info, err := os.Stat(root)
		if errors.Is(err, fs.ErrNotExist) {
			return errors.New("no such file")
		}
		if err != nil {
			return pathErr(err)
		}
		return c.add(root, info)
	}
	if err := pathglob.Check(pat); err != nil {
		return fmt.Errorf("not a valid glob: %w", err)
	}
	var matches []string
	err := pathglob.WalkDir(c.base, pat, func(p string, d fs.DirEntry) error {
		matches = append(matches, p)
		if len(c.seen)+len(matches) > MaxInputFiles {
			return errTooMany
		}
		if d.IsDir() {
			return filepath.SkipDir // all of it counts (add); no need to match inside
		}
		return nil
	})
	if err != nil {
		return c.walkErr(err)
	}
	for _, m := range matches {
		info, err := os.Stat(m)
		if errors.Is(err, fs.ErrNotExist) {
			// A dangling link: what it points to is its content.
			if info, err = os.Lstat(m); err != nil {
				return pathErr(err)
			}
		} else if err != nil {
			return pathErr(err)
		}
		if err := c.add(m, info); err != nil {
			return err
		}
	}
	return nil
}

var errTooMany = fmt.Errorf("reaches more than %d files; narrow the inputs", MaxInputFiles)

// add records a path (info from Stat: links followed) and, for a
// directory, everything under it.
func (c *collector) add(abs string, info fs.FileInfo) error {
	if !info.IsDir() {
		return c.record(abs, info)
	}
	// WalkDir follows abs itself if it is a link, and no link under it:
	// a link there is recorded by what it points to when that is a file,
	// by its target otherwise (a loop of links ends here).
	err := filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var info fs.FileInfo
		if d.Type()&fs.ModeSymlink != 0 {
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				info = fi
			}
		}
		if info == nil {
			if info, err = d.Info(); err != nil {
				return err
			}
		}
		return c.record(p, info)
	})
	return c.walkErr(err)
}

// walkErr names the path of a failed walk relative to the base, as the
// inputs would name it.
func (c *collector) walkErr(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return fmt.Errorf("%s: %w", c.rel(pe.Path), pe.Err)
	}
	return err
}

// rel is a path as a key records it: relative to the base,
// slash-separated.
func (c *collector) rel(abs string) string {
	rel, err := filepath.Rel(c.base, abs)
	if err != nil {
		rel = abs
	}
	return filepath.ToSlash(rel)
}

// record adds one entry.
func (c *collector) record(abs string, info fs.FileInfo) error {
	rel := c.rel(abs)
	if _, ok := c.seen[rel]; ok {
		return nil
	}
	if len(c.seen) >= MaxInputFiles {
		return errTooMany
	}
	f := &inputFile{rel: rel, abs: abs}
	switch m := info.Mode(); {
	case m.IsRegular():
		f.kind, f.info = tagFile, info
	case m.IsDir():
		f.kind = tagDir
	case m&fs.ModeSymlink != 0:
		f.kind = tagLink
		f.target, _ = os.Readlink(abs)
	default:
		// Reading a pipe could block for ever, and a device's content is
		// not a file's.
		f.kind, f.target = tagOther, m.Type().String()
	}
	c.seen[rel] = f
	return nil
}

// pathErr is the cause of a failed file operation without the absolute
// path, which the message names as the inputs wrote it.
func pathErr(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	return err
}

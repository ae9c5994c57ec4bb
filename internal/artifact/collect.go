package artifact

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/tasuki-dev/tasuki/internal/pathglob"
)

// MaxFiles bounds the files one attempt's outputs may keep: each becomes
// a row of the store, and a pattern such as ** over a dependency
// directory is more likely a mistake than an output.
const MaxFiles = 10000

// Collect keeps in st the files that patterns match under dir (an
// attempt's working directory) and returns them, sorted by path.
//
// A pattern is a path relative to dir, slash-separated, with the
// wildcards of path.Match in any segment and ** as a whole segment for
// any number of directories (model/*.bin, reports/**/*.csv): the globs of
// package pathglob, walked here by a walk of its own that follows links
// inside dir. A pattern
// that matches a directory takes every file under it. A pattern that
// matches nothing is an error naming it: the task said it writes a file
// and did not, which is better found here than by the task that needs it.
//
// Nothing outside dir is taken: a pattern that climbs out of it (.. or
// an absolute path) is refused, and so is a symbolic link that leads out
// of it. A link inside dir is followed, and its file is kept under the
// link's path. Files keep their permission bits (File.Mode); only regular
// files are taken (a FIFO or a device among the matches is an error).
func Collect(ctx context.Context, st Store, dir string, patterns []string) ([]File, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("outputs: working directory: %w", err)
	}
	c := &collector{ctx: ctx, dir: real, files: map[string]source{}}
	for _, p := range patterns {
		segs, err := splitPattern(p)
		if err != nil {
			return nil, fmt.Errorf("outputs: %w", err)
		}
		matched := map[string]bool{}
		if err := c.expand("", segs, matched); err != nil {
			return nil, fmt.Errorf("outputs: %s: %w", p, err)
		}
		before := c.hits
		for _, rel := range slices.Sorted(maps.Keys(matched)) {
			if err := c.take(rel, nil); err != nil {
				return nil, fmt.Errorf("outputs: %s: %w", p, err)
			}
		}
		if c.hits == before {
			return nil, fmt.Errorf("outputs: %s matched no file", p)
		}
	}
	out := make([]File, 0, len(c.files))
	for _, rel := range slices.Sorted(maps.Keys(c.files)) {
		src := c.files[rel]
		f, err := os.Open(src.path)
		if err != nil {
			return nil, fmt.Errorf("outputs: %s: %w", rel, err)
		}
		info, err := st.Put(ctx, f, "")
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("outputs: keep %s: %w", rel, err)
		}
		out = append(out, File{Path: rel, Digest: info.Digest, Size: info.Size, Mode: uint32(src.mode)})
	}
	return out, nil
}

// source is a file to keep: where it is read from, and its permissions.
type source struct {
	path string
	mode fs.FileMode
}

type collector struct {
	ctx   context.Context
	dir   string            // the working directory, symbolic links resolved
	files map[string]source // by path relative to dir
	hits  int               // files reached, counting those taken twice
}

// splitPattern checks a pattern and splits it into segments.
func splitPattern(p string) ([]string, error) {
	if p == "" || strings.TrimSpace(p) != p {
		return nil, fmt.Errorf("%q: expected a path relative to the working directory", p)
	}
	if strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("%s: an absolute path; outputs are relative to the task's working directory", p)
	}
	clean := path.Clean(p)
	if clean == "." {
		clean = "**"
	}
	segs := strings.Split(clean, "/")
	for _, s := range segs {
		if s == ".." {
			return nil, fmt.Errorf("%s: climbs out of the working directory (..)", p)
		}
		if err := pathglob.Check(s); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	return segs, nil
}

// expand adds to matched the paths under rel (relative to c.dir) that
// segs match.
func (c *collector) expand(rel string, segs []string, matched map[string]bool) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	if len(matched) > MaxFiles {
		return fmt.Errorf("matches more than %d paths", MaxFiles)
	}
	if len(segs) == 0 {
		matched[rel] = true
		return nil
	}
	seg, rest := segs[0], segs[1:]
	if seg == "**" {
		// No directory at all, then each directory below (not through
		// links, which could loop).
		if err := c.expand(rel, rest, matched); err != nil {
			return err
		}
		entries, err := c.readDir(rel)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.IsDir() {
				if err := c.expand(join(rel, e.Name()), segs, matched); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if !pathglob.HasMeta(seg) {
		if _, err := os.Lstat(filepath.Join(c.dir, filepath.FromSlash(join(rel, seg)))); err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return nil
			}
			return err
		}
		return c.expand(join(rel, seg), rest, matched)
	}
	entries, err := c.readDir(rel)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if pathglob.Match(seg, e.Name()) {
			if err := c.expand(join(rel, e.Name()), rest, matched); err != nil {
				return err
			}
		}
	}
	return nil
}

// readDir lists rel, or nothing when it is not a directory.
func (c *collector) readDir(rel string) ([]fs.DirEntry, error) {
	entries, err := os.ReadDir(filepath.Join(c.dir, filepath.FromSlash(rel)))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	return entries, err
}

// take adds the file at rel, or every file under it when it is a
// directory. walking holds the real paths of the directories being
// walked, to refuse a link back to one of them.
func (c *collector) take(rel string, walking []string) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	abs := filepath.Join(c.dir, filepath.FromSlash(rel))
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if !within(c.dir, real) {
		return fmt.Errorf("%s is a symbolic link to %s, outside the working directory", displayRel(rel), real)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	switch {
	case fi.Mode().IsRegular():
		if rel == "" {
			return errors.New("the working directory itself is not a file")
		}
		if _, dup := c.files[rel]; !dup && len(c.files) >= MaxFiles {
			return fmt.Errorf("more than %d files", MaxFiles)
		}
		c.files[rel] = source{path: real, mode: fi.Mode().Perm()}
		c.hits++
		return nil
	case fi.IsDir():
		if slices.Contains(walking, real) {
			return fmt.Errorf("%s: a symbolic link loop", displayRel(rel))
		}
		entries, err := os.ReadDir(real)
		if err != nil {
			return err
		}
		walking = append(walking, real)
		for _, e := range entries {
			if err := c.take(join(rel, e.Name()), walking); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%s is not a regular file (%s)", displayRel(rel), fi.Mode().Type())
}

// within reports whether path is dir or below it (both clean and absolute).
func within(dir, p string) bool {
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator)) || dir == string(filepath.Separator)
}

func join(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

func displayRel(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}

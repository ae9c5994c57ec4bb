package pathglob

import (
	"errors"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
)

// Match reports whether name matches pattern, both slash-separated,
// element by element: an element "**" matches any number of elements
// (none included), any other is a path.Match pattern of one element. A
// malformed pattern matches nothing; Check says why.
func Match(pattern, name string) bool {
	return match(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

// Check reports whether every element of pattern is a well-formed
// path.Match pattern, with path.ErrBadPattern when one is not: a glob that
// could never match deserves an error, not an empty result.
func Check(pattern string) error {
	for elem := range strings.SplitSeq(pattern, "/") {
		if _, err := path.Match(elem, ""); err != nil {
			return err
		}
	}
	return nil
}

// HasMeta reports whether s (an element, or a whole pattern) has a
// wildcard or an escape, so that it is a pattern rather than a name.
func HasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// match reports whether the elements of a name match those of a pattern.
func match(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if match(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// canDescend reports whether a path below the directory dir (its elements)
// could match pat, so that a walk skips the directories nothing under can
// match.
func canDescend(pat, dir []string) bool {
	for len(dir) > 0 {
		if len(pat) == 0 {
			return false
		}
		if pat[0] == "**" {
			return true
		}
		if ok, _ := path.Match(pat[0], dir[0]); !ok {
			return false
		}
		pat, dir = pat[1:], dir[1:]
	}
	return len(pat) > 0
}

// WalkDir calls fn, in lexical order, for each file and directory that
// pattern matches, with its path (dir joined with what matched) and its
// entry. pattern is slash-separated and relative to dir, or absolute (then
// walked from the root of the file system, not dir); empty elements are
// left out. Check it first: a malformed element matches nothing.
//
// The walk starts at the directory that the pattern's leading elements
// without wildcards name (at most all but the last), and enters only the
// directories under which something could match. It does not follow
// symbolic links (filepath.WalkDir). A start that does not exist, or is
// not a directory, has no matches. fn returns fs.SkipDir to leave a
// matched directory unentered, or another error to stop the walk, which
// WalkDir then returns; so does an error reading the tree.
func WalkDir(dir, pattern string, fn func(path string, d fs.DirEntry) error) error {
	root := dir
	if strings.HasPrefix(pattern, "/") {
		root = string(filepath.Separator)
	}
	var elems []string
	for e := range strings.SplitSeq(pattern, "/") {
		if e != "" {
			elems = append(elems, e)
		}
	}
	if len(elems) == 0 {
		return nil
	}
	lit := 0
	for lit < len(elems)-1 && !HasMeta(elems[lit]) {
		lit++
	}
	start := filepath.Join(append([]string{root}, elems[:lit]...)...)
	rest := elems[lit:]
	return filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if p == start {
			if errors.Is(err, fs.ErrNotExist) || (err == nil && !d.IsDir()) {
				return filepath.SkipAll // nothing to match
			}
			return err
		}
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(start, p)
		if err != nil {
			return err
		}
		name := strings.Split(filepath.ToSlash(rel), "/")
		if match(rest, name) {
			if err := fn(p, d); err != nil {
				return err
			}
		}
		if d.IsDir() && !canDescend(rest, name) {
			return filepath.SkipDir
		}
		return nil
	})
}

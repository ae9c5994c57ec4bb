package osv

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// DB is a set of advisories, indexed by id, alias and affected package.
// It is read-only once made, so it can be shared between goroutines.
type DB struct {
	byID   map[string]*Advisory   // upper-cased id -> advisory
	byName map[string][]*Advisory // upper-cased id or alias -> advisories
	byPkg  map[string][]*Advisory // affected package name -> advisories
	all    []*Advisory
}

// LoadError is a file of a directory that did not load.
type LoadError struct {
	Path string
	Err  error
}

func (e *LoadError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *LoadError) Unwrap() error { return e.Err }

// Load reads every *.json file under dir (recursively). Files that fail
// are returned with their reasons and the others loaded; the error is for
// a directory that cannot be read at all.
func Load(dir string) (*DB, []*LoadError, error) {
	db, bad, err := LoadFS(os.DirFS(dir))
	for _, b := range bad {
		b.Path = filepath.Join(dir, filepath.FromSlash(b.Path))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load advisories from %s: %w", dir, err)
	}
	for _, a := range db.all {
		a.Path = filepath.Join(dir, filepath.FromSlash(a.Path))
	}
	return db, bad, nil
}

// LoadFS is Load on a file system; paths are relative to its root.
func LoadFS(fsys fs.FS) (*DB, []*LoadError, error) {
	var (
		advs []*Advisory
		bad  []*LoadError
	)
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == "." {
				return err
			}
			bad = append(bad, &LoadError{Path: p, Err: unwrapPath(err)})
			return nil
		}
		if d.IsDir() || !strings.EqualFold(path.Ext(p), ".json") {
			return nil
		}
		a, err := loadFile(fsys, p)
		if err != nil {
			bad = append(bad, &LoadError{Path: p, Err: err})
			return nil
		}
		a.Path = p
		advs = append(advs, a)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	db, dups := build(advs)
	return db, append(bad, dups...), nil
}

func loadFile(fsys fs.FS, p string) (*Advisory, error) {
	f, err := fsys.Open(p)
	if err != nil {
		return nil, unwrapPath(err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, unwrapPath(err)
	}
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("more than %d bytes", MaxFileBytes)
	}
	return Parse(b)
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// New makes a DB of advisories. Of two with the same id, the one modified
// last is kept.
func New(advs ...*Advisory) *DB {
	db, _ := build(advs)
	return db
}

// build indexes advisories; the duplicates of an id are returned as load
// errors naming the file kept.
func build(advs []*Advisory) (*DB, []*LoadError) {
	db := &DB{byID: map[string]*Advisory{}, byName: map[string][]*Advisory{}, byPkg: map[string][]*Advisory{}}
	var dups []*LoadError
	for _, a := range advs {
		key := strings.ToUpper(a.ID)
		if old := db.byID[key]; old != nil {
			keep, drop := old, a
			if a.Modified.After(old.Modified) {
				keep, drop = a, old
			}
			db.byID[key] = keep
			dups = append(dups, &LoadError{Path: drop.Path, Err: fmt.Errorf("%s is also in %s, modified later or at the same time: that one is used", a.ID, keep.Path)})
			continue
		}
		db.byID[key] = a
	}
	for _, k := range sortedKeys(db.byID) {
		a := db.byID[k]
		db.all = append(db.all, a)
		for _, id := range a.IDs() {
			n := strings.ToUpper(id)
			if !slices.Contains(db.byName[n], a) {
				db.byName[n] = append(db.byName[n], a)
			}
		}
		for _, af := range a.Affected {
			if !slices.Contains(db.byPkg[af.Package.Name], a) {
				db.byPkg[af.Package.Name] = append(db.byPkg[af.Package.Name], a)
			}
		}
	}
	return db, dups
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Len is the number of advisories.
func (db *DB) Len() int { return len(db.all) }

// All returns the advisories in id order.
func (db *DB) All() []*Advisory { return slices.Clone(db.all) }

// Lookup returns the advisories that name is the id of, or one of the
// IDs of (case does not matter), in id order: CVE-2020-25681 finds
// DSA-4844-1, DLA-2604-1, USN-4698-1 and any other that names it.
func (db *DB) Lookup(name string) []*Advisory {
	return slices.Clone(db.byName[strings.ToUpper(strings.TrimSpace(name))])
}

// ForPackage returns the advisories with an affected entry for a package
// of that name, in any ecosystem, in id order.
func (db *DB) ForPackage(name string) []*Advisory {
	return slices.Clone(db.byPkg[name])
}

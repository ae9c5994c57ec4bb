package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/tasuki-dev/tasuki/internal/spec"
)

// Loaded is a pipeline the server knows: the last version that loaded cleanly
// and what is wrong with its file now, if anything. An invalid file never
// replaces a good version: the good version keeps running and being scheduled
// while the error is reported.
type Loaded struct {
	Pipeline *spec.Pipeline
	File     string
	// Error is the problem with the file on disk ("" when it is fine).
	Error string
	// Removed is set when the file is gone; the pipeline is no longer
	// scheduled, its history stays.
	Removed bool
}

// Registry holds the pipelines of a directory and reloads them when files
// change. Pulling a git repository into the directory is all a deployment
// needs.
type Registry struct {
	dir   string
	check func(*spec.Pipeline) error // server-side checks (pools, time zones)

	mu          sync.RWMutex
	byName      map[string]*Loaded
	fileErrors  map[string]string // files with no known pipeline, by path
	fingerprint string
}

// NewRegistry returns an empty registry of dir. check, when not nil, adds
// checks that depend on the server (configured pools, for example); a
// pipeline failing it is treated like an invalid file.
func NewRegistry(dir string, check func(*spec.Pipeline) error) *Registry {
	return &Registry{dir: dir, check: check, byName: map[string]*Loaded{}, fileErrors: map[string]string{}}
}

// Seed makes a stored version the last good version of a pipeline before
// the first reload, so that a file broken or removed while the server was
// down is judged against what ran before, not against nothing.
// A removed pipeline is seeded too, so its queued runs still find their
// version.
func (r *Registry) Seed(p *spec.Pipeline, file string, removed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byName[p.Name]; !ok {
		r.byName[p.Name] = &Loaded{Pipeline: p, File: file, Removed: removed}
	}
}

// Change is what a reload changed for one pipeline.
type Change struct {
	Name    string
	Loaded  Loaded
	Updated bool // a new version was loaded
}

// Reload reads the directory again if anything in it changed (names, sizes
// or modification times of pipeline files) and returns what changed. It
// never loses a good version to a bad file.
func (r *Registry) Reload() ([]Change, error) {
	fp, err := fingerprint(r.dir)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if fp == r.fingerprint {
		return nil, nil
	}
	r.fingerprint = fp

	good, loadErr := spec.LoadDir(r.dir)
	problems := map[string][]string{} // by file
	for _, e := range loadErr {
		problems[e.File] = append(problems[e.File], e.Error())
	}
	present := map[string]bool{}
	for _, f := range listFiles(r.dir) {
		present[f] = true
	}

	var changes []Change
	loadedNames := map[string]bool{}
	for _, p := range good {
		if r.check != nil {
			if err := r.check(p); err != nil {
				problems[p.Source.File] = append(problems[p.Source.File], p.Source.File+": "+err.Error())
				continue
			}
		}
		loadedNames[p.Name] = true
		old := r.byName[p.Name]
		l := &Loaded{Pipeline: p, File: p.Source.File}
		updated := old == nil || old.Pipeline.Source.Hash != p.Source.Hash || old.File != l.File
		if updated || old.Error != "" || old.Removed {
			changes = append(changes, Change{Name: p.Name, Loaded: *l, Updated: updated})
		}
		r.byName[p.Name] = l
	}
	r.fileErrors = map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(r.byName)) {
		l := r.byName[name]
		if loadedNames[name] {
			continue
		}
		switch msgs, broken := problems[l.File]; {
		case broken:
			msg := strings.Join(msgs, "\n")
			if l.Error != msg || l.Removed {
				l.Error, l.Removed = msg, false
				changes = append(changes, Change{Name: name, Loaded: *l})
			}
			delete(problems, l.File)
		case !present[l.File] || fileDeclaresOther(l.File, good, name):
			if !l.Removed {
				l.Removed, l.Error = true, ""
				changes = append(changes, Change{Name: name, Loaded: *l})
			}
		}
	}
	for file, msgs := range problems {
		r.fileErrors[file] = strings.Join(msgs, "\n")
	}
	return changes, nil
}

// fileDeclaresOther reports whether file now holds a pipeline of another
// name (a rename): the old name is gone.
func fileDeclaresOther(file string, good []*spec.Pipeline, name string) bool {
	for _, p := range good {
		if p.Source.File == file && p.Name != name {
			return true
		}
	}
	return false
}

// Get returns a pipeline by name.
func (r *Registry) Get(name string) (Loaded, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	l, ok := r.byName[name]
	if !ok {
		return Loaded{}, false
	}
	return *l, true
}

// All returns every known pipeline by name, removed ones included.
func (r *Registry) All() []Loaded {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Loaded, 0, len(r.byName))
	for _, name := range slices.Sorted(maps.Keys(r.byName)) {
		out = append(out, *r.byName[name])
	}
	return out
}

// FileErrors returns the problems of files that hold no known pipeline, by
// path.
func (r *Registry) FileErrors() map[string]string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string]string, len(r.fileErrors))
	for k, v := range r.fileErrors {
		out[k] = v
	}
	return out
}

// fingerprint summarises the pipeline files of dir (paths, sizes, times), so
// an unchanged directory is not parsed again.
func fingerprint(dir string) (string, error) {
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("pipelines directory: %w", err)
	}
	h := sha256.New()
	for _, f := range listFiles(dir) {
		fi, err := os.Stat(f)
		if err != nil {
			continue
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\n", f, fi.Size(), fi.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// listFiles returns the pipeline files under dir, as spec.LoadDir finds them.
func listFiles(dir string) []string {
	files, _ := spec.Files(dir)
	return files
}

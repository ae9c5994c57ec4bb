package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
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
	dir    string
	checks []spec.Check // server-side checks (pools, scheduled params)
	log    *slog.Logger

	mu          sync.RWMutex
	byName      map[string]*Loaded
	problems    map[string]FileProblem // every file that does not load, by path
	stamps      map[string]string      // size and modification time of each file, by path
	fingerprint string
}

// FileProblem is a pipeline file that does not load, kept so the server can
// show it (in the pipelines listing, in the answer to a trigger) instead of
// only logging it.
type FileProblem struct {
	File string
	// Pipeline is the name the file declares, when it could be read (a file
	// with a YAML syntax error may declare nothing readable).
	Pipeline string
	// Errors are the problems in position order, each as
	// file:line:col: message.
	Errors []string
}

// NewRegistry returns an empty registry of dir that logs to log. checks add
// checks that depend on the server (configured pools, for example); a
// pipeline failing one is treated like an invalid file.
func NewRegistry(dir string, log *slog.Logger, checks ...spec.Check) *Registry {
	if log == nil {
		log = slog.Default()
	}
	return &Registry{dir: dir, checks: checks, log: log, byName: map[string]*Loaded{},
		problems: map[string]FileProblem{}, stamps: map[string]string{}}
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
//
// A file that does not load is logged once each time it changes (not at
// every reload), and kept for Problems and Problem until it is fixed or
// removed.
func (r *Registry) Reload() ([]Change, error) {
	fp, stamps, err := fingerprint(r.dir)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if fp == r.fingerprint {
		return nil, nil
	}
	r.fingerprint = fp

	good, loadErr := spec.LoadDir(r.dir, r.checks...)
	problems := map[string]FileProblem{}
	for _, e := range loadErr {
		fp := problems[e.File]
		fp.File = e.File
		if fp.Pipeline == "" {
			fp.Pipeline = e.Pipeline
		}
		fp.Errors = append(fp.Errors, e.Error())
		problems[e.File] = fp
	}
	present := map[string]bool{}
	for _, f := range listFiles(r.dir) {
		present[f] = true
	}

	var changes []Change
	loadedNames := map[string]bool{}
	for _, p := range good {
		loadedNames[p.Name] = true
		old := r.byName[p.Name]
		l := &Loaded{Pipeline: p, File: p.Source.File}
		updated := old == nil || old.Pipeline.Source.Hash != p.Source.Hash || old.File != l.File
		if updated || old.Error != "" || old.Removed {
			changes = append(changes, Change{Name: p.Name, Loaded: *l, Updated: updated})
		}
		r.byName[p.Name] = l
	}
	inUse := map[string]string{} // broken files whose last good version stays, to their pipeline
	for _, name := range slices.Sorted(maps.Keys(r.byName)) {
		l := r.byName[name]
		if loadedNames[name] {
			continue
		}
		switch fp, broken := problems[l.File]; {
		case broken:
			inUse[l.File] = name
			msg := strings.Join(fp.Errors, "\n")
			if l.Error != msg || l.Removed {
				l.Error, l.Removed = msg, false
				changes = append(changes, Change{Name: name, Loaded: *l})
			}
		case !present[l.File] || fileDeclaresOther(l.File, good, name):
			if !l.Removed {
				l.Removed, l.Error = true, ""
				changes = append(changes, Change{Name: name, Loaded: *l})
			}
		}
	}
	for _, file := range slices.Sorted(maps.Keys(problems)) {
		fp := problems[file]
		if old, ok := r.problems[file]; ok && slices.Equal(old.Errors, fp.Errors) && r.stamps[file] == stamps[file] {
			continue // unchanged since it was logged
		}
		if name, ok := inUse[file]; ok {
			r.log.Warn("pipeline file is invalid; the last good version stays in use",
				"pipeline", name, "file", file, "error", strings.Join(fp.Errors, "\n"))
		} else {
			r.log.Warn("invalid pipeline file; it is not loaded",
				"pipeline", fp.Pipeline, "file", file, "error", strings.Join(fp.Errors, "\n"))
		}
	}
	r.problems, r.stamps = problems, stamps
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

// Problems returns the files that do not load and show nowhere else: those
// that are not the file of a pipeline in use (whose Loaded.Error says what
// is wrong instead), in path order.
func (r *Registry) Problems() []FileProblem {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []FileProblem
	for _, file := range slices.Sorted(maps.Keys(r.problems)) {
		if r.holdsInUse(file) {
			continue
		}
		out = append(out, r.problems[file])
	}
	return out
}

// holdsInUse reports whether file is the file of a pipeline that is not
// removed, so its problems show on that pipeline. The caller holds r.mu.
func (r *Registry) holdsInUse(file string) bool {
	for _, l := range r.byName {
		if l.File == file && !l.Removed {
			return true
		}
	}
	return false
}

// Problem returns the file that declares the pipeline name but does not
// load, so that a trigger of a pipeline that never loaded (or whose file
// moved and broke) can say why instead of "no pipeline".
func (r *Registry) Problem(name string) (FileProblem, bool) {
	if name == "" {
		return FileProblem{}, false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, file := range slices.Sorted(maps.Keys(r.problems)) {
		if fp := r.problems[file]; fp.Pipeline == name {
			return fp, true
		}
	}
	return FileProblem{}, false
}

// fingerprint summarises the pipeline files of dir (paths, sizes, times), so
// an unchanged directory is not parsed again; stamps are the same per file,
// so a broken file is logged again only when it changed.
func fingerprint(dir string) (string, map[string]string, error) {
	if _, err := os.Stat(dir); err != nil {
		return "", nil, fmt.Errorf("pipelines directory: %w", err)
	}
	h := sha256.New()
	stamps := map[string]string{}
	for _, f := range listFiles(dir) {
		fi, err := os.Stat(f)
		if err != nil {
			continue
		}
		stamp := fmt.Sprintf("%d\x00%d", fi.Size(), fi.ModTime().UnixNano())
		stamps[f] = stamp
		fmt.Fprintf(h, "%s\x00%s\n", f, stamp)
	}
	return hex.EncodeToString(h.Sum(nil)), stamps, nil
}

// listFiles returns the pipeline files under dir, as spec.LoadDir finds them.
func listFiles(dir string) []string {
	files, _ := spec.Files(dir)
	return files
}

package spec

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ParseFile reads and parses one pipeline file. Problems in the file come back
// as an ErrorList, like from Parse; a file that cannot be read gives an
// ErrorList whose entry wraps the cause (errors.Is(err, fs.ErrNotExist)).
func ParseFile(path string) (*Pipeline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, ErrorList{readError(path, err)}
	}
	return Parse(path, data)
}

func readError(path string, err error) *Error {
	return &Error{File: path, Msg: fmt.Sprintf("reading pipeline file: %v", err), Err: err}
}

// Check is a check a caller adds to the format's own, for what only the
// caller knows (a server's configured pools, say). It runs on a pipeline that
// passed the format's checks and reports each problem with report, giving
// the address of the value concerned (&p.Tasks[i].Pool, &p.Schedule), so the
// error points at the line and column where that value is written. Reported
// problems make the file fail to load like any other error.
type Check func(p *Pipeline, report func(at any, msg string))

// LoadDir loads every pipeline file (*.yaml, *.yml) under dir, recursively,
// skipping hidden files and directories (names starting with '.'). It returns
// the pipelines that loaded cleanly together with every problem found, so a
// server can keep running the good pipelines while reporting the bad ones. Two
// files declaring the same pipeline name are an error at the second file (in
// path order), which is then left out. checks are applied to every file after
// the format's own. The errors of a file that declares a readable name carry
// it in Error.Pipeline, so a broken file can be tied to its pipeline.
func LoadDir(dir string, checks ...Check) ([]*Pipeline, ErrorList) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, ErrorList{{File: dir, Msg: fmt.Sprintf("reading pipeline directory: %v", err), Err: err}}
	}
	if !info.IsDir() {
		return nil, ErrorList{{File: dir, Msg: "reading pipeline directory: not a directory"}}
	}
	return load([]string{dir}, checks)
}

// LoadPaths loads pipelines from files and directories: a file is parsed
// whatever its extension, a directory is walked as by LoadDir. Like LoadDir it
// returns the pipelines that loaded cleanly even when there are errors; the
// error, when not nil, is an ErrorList.
func LoadPaths(paths ...string) ([]*Pipeline, error) {
	ps, errs := load(paths, nil)
	if len(errs) > 0 {
		return ps, errs
	}
	return ps, nil
}

func load(paths []string, checks []Check) ([]*Pipeline, ErrorList) {
	var errs ErrorList
	var files []string
	seen := map[string]bool{}
	add := func(path string) {
		clean := filepath.Clean(path)
		if !seen[clean] {
			seen[clean] = true
			files = append(files, path)
		}
	}
	for _, root := range paths {
		info, err := os.Stat(root)
		if err != nil {
			errs = append(errs, readError(root, err))
			continue
		}
		if !info.IsDir() {
			add(root)
			continue
		}
		found, werrs := walk(root)
		errs = append(errs, werrs...)
		for _, f := range found {
			add(f)
		}
	}

	type origin struct {
		file string
		at   pos
	}
	names := map[string]origin{}
	var out []*Pipeline
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			errs = append(errs, readError(file, err))
			continue
		}
		p, locs, perrs := parse(file, data, checks)
		if len(perrs) > 0 {
			if name := declaredName(p, locs); name != "" {
				for _, e := range perrs {
					e.Pipeline = name
				}
			}
			errs = append(errs, perrs...)
			continue
		}
		at, _ := locs.at(&p.Name)
		if first, dup := names[p.Name]; dup {
			errs = append(errs, &Error{File: file, Line: at.line, Col: at.col, Pipeline: p.Name,
				Msg: fmt.Sprintf("pipeline name %q is already used by %s:%d:%d", p.Name, first.file, first.at.line, first.at.col)})
			continue
		}
		names[p.Name] = origin{file, at.pos}
		out = append(out, p)
	}
	if len(errs) > 0 {
		return out, errs.sorted()
	}
	return out, nil
}

// declaredName is the name a file that failed to load declares, when it was
// written as a string; "" otherwise.
func declaredName(p *Pipeline, locs locations) string {
	if p == nil {
		return ""
	}
	if l, ok := locs.at(&p.Name); !ok || l.bad {
		return ""
	}
	return p.Name
}

// Files lists the pipeline files under dir as LoadDir reads them: .yaml and
// .yml files, recursively, skipping hidden files and directories. Problems
// reading the tree are returned beside what was found.
func Files(dir string) ([]string, ErrorList) {
	return walk(dir)
}

func walk(root string) ([]string, ErrorList) {
	var files []string
	var errs ErrorList
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, &Error{File: path, Msg: fmt.Sprintf("reading pipeline directory: %v", err), Err: err})
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if path != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.IsDir() && isPipelineFile(d.Name()) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		errs = append(errs, &Error{File: root, Msg: fmt.Sprintf("walking pipeline directory: %v", err), Err: err})
	}
	return files, errs
}

// isPipelineFile reports whether a file found in a directory is a pipeline.
func isPipelineFile(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

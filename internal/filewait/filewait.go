package filewait

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

// MaxMatches bounds the paths a pattern may match. Every match is stat-ed at
// every check; a pattern matching more is almost surely a mistake (a
// directory of every day's files instead of one day's), and stat-ing them
// all at each poke would cost the executor more than the wait is worth, so
// the wait fails and says so.
const MaxMatches = 100_000

// MaxListed bounds the files listed in the result of a met wait; the
// result's count is still the full number. A result is stored with the
// attempt and handed to the tasks that need it, so it stays small.
const MaxListed = 1000

// Wait is the file wait condition. It implements attempt.Condition; its
// zero value is ready to use.
type Wait struct {
	// Now is the clock stable_for is measured with; nil means time.Now.
	Now func() time.Time
}

// body is the Spec.Body of a file wait.
type body struct {
	File      string           `json:"file"`
	MinSize   int64            `json:"min_size,omitempty"`
	NonEmpty  bool             `json:"non_empty,omitempty"`
	Marker    string           `json:"marker,omitempty"`
	StableFor attempt.Duration `json:"stable_for,omitempty"`
}

// memo is what a check keeps for the next one of the same attempt when the
// wait has stable_for: the matched files as last seen, and when they were
// first seen so.
type memo struct {
	Fingerprint string    `json:"fingerprint"`
	Since       time.Time `json:"since"`
}

// result is the task's result when the wait is met.
type result struct {
	Files     []fileResult `json:"files"`
	Count     int          `json:"count"`
	Truncated bool         `json:"truncated,omitempty"`
}

type fileResult struct {
	Path     string `json:"path"`
	Size     int64  `json:"size"`
	Modified string `json:"modified"`
}

// match is one matched file: its path on this host, the path shown (as the
// pattern matched it: absolute when the pattern was, else relative to the
// working directory, cleaned) and what stat said.
type match struct {
	path, shown string
	info        fs.FileInfo
}

// Name implements attempt.Condition: spec.Task.Kind of a file wait.
func (Wait) Name() string { return "wait.file" }

// Body implements attempt.Condition.
func (Wait) Body(t *spec.Task) (json.RawMessage, error) {
	if t.Wait == nil || t.Wait.File == "" {
		return nil, errors.New("the task has no file to wait for (wait.file)")
	}
	w := t.Wait
	return json.Marshal(body{
		File:      w.File,
		MinSize:   w.MinSize,
		NonEmpty:  w.NonEmpty,
		Marker:    w.Marker,
		StableFor: attempt.Duration(w.StableFor.D()),
	})
}

// Check implements attempt.Condition: it globs the pattern, stats every
// match and, with stable_for, compares them with what the previous check
// saw (memo).
func (w Wait) Check(ctx context.Context, s *attempt.Spec, h *attempt.Host, prev json.RawMessage) attempt.Observation {
	return w.check(ctx, s, h, prev, MaxMatches)
}

// check is Check with the bound on matches as a parameter, so a test can
// reach it without creating MaxMatches files.
func (w Wait) check(ctx context.Context, s *attempt.Spec, h *attempt.Host, prev json.RawMessage, maxMatches int) attempt.Observation {
	var b body
	if err := json.Unmarshal(s.Body, &b); err != nil {
		return attempt.Observation{Fail: fmt.Sprintf("read the file wait of the attempt: %v", err)}
	}
	if fail := b.validate(); fail != "" {
		return attempt.Observation{Fail: fail}
	}
	pattern, err := s.Expand(b.File)
	if err != nil {
		return attempt.Observation{Fail: fmt.Sprintf("file %s: %v", b.File, err)}
	}
	if pattern == "" {
		return attempt.Observation{Fail: fmt.Sprintf("file %s is empty once its variables are replaced", b.File)}
	}

	// A relative pattern starts at the working directory, whose own name
	// must match literally even if it holds *, ? or [.
	dir := filepath.Clean(h.WorkingDir(s))
	full := pattern
	if !filepath.IsAbs(pattern) {
		full = filepath.Join(escapeMeta(dir), pattern)
	}
	paths, err := filepath.Glob(full)
	if err != nil {
		return attempt.Observation{Fail: fmt.Sprintf("file %s is not a valid pattern: %v", pattern, err)}
	}
	if len(paths) > maxMatches {
		return attempt.Observation{Fail: fmt.Sprintf("file %s matches %d paths, more than the %d a wait may check at each poke; narrow the pattern", pattern, len(paths), maxMatches)}
	}

	files := make([]match, 0, len(paths))
	for _, p := range paths {
		if ctx.Err() != nil {
			// Keep the memo: the clock of stable_for goes on at the next
			// check.
			return attempt.Observation{Seen: "the check was stopped before it finished", Memo: prev}
		}
		shown := p
		if !filepath.IsAbs(pattern) {
			if rel, err := filepath.Rel(dir, p); err == nil {
				shown = rel
			}
		}
		info, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue // gone since the glob, or a dangling link
		case err != nil:
			return attempt.Observation{Seen: fmt.Sprintf("cannot stat %s: %v", shown, pathErr(err)), Memo: prev}
		case info.IsDir():
			continue
		}
		if b.Marker != "" && filepath.Join(filepath.Dir(p), b.Marker) == filepath.Clean(p) {
			continue // the marker is not one of the files it marks
		}
		files = append(files, match{path: p, shown: shown, info: info})
	}
	if len(files) == 0 {
		return attempt.Observation{Seen: "no file matches " + pattern}
	}
	slices.SortFunc(files, func(x, y match) int { return strings.Compare(x.path, y.path) })

	// With stable_for, the clock runs whatever else is still missing: data
	// that stayed put while its marker was being written is stable.
	var next json.RawMessage
	stable := true
	if b.StableFor > 0 {
		now := time.Now()
		if w.Now != nil {
			now = w.Now()
		}
		m := memo{Fingerprint: fingerprint(files), Since: now}
		var last memo
		if json.Unmarshal(prev, &last) == nil && last.Fingerprint == m.Fingerprint && !last.Since.After(now) {
			m.Since = last.Since
		}
		next, _ = json.Marshal(m)
		stable = now.Sub(m.Since) >= b.StableFor.D()
	}

	if seen := b.unmet(files); seen != "" {
		return attempt.Observation{Seen: seen, Memo: next}
	}
	if !stable {
		what := "1 file, waiting for it"
		if len(files) > 1 {
			what = fmt.Sprintf("%d files, waiting for them", len(files))
		}
		return attempt.Observation{Seen: fmt.Sprintf("%s to stay unchanged for %s", what, b.StableFor), Memo: next}
	}

	res := result{Count: len(files)}
	for _, f := range files[:min(len(files), MaxListed)] {
		res.Files = append(res.Files, fileResult{
			Path:     f.shown,
			Size:     f.info.Size(),
			Modified: f.info.ModTime().UTC().Format(time.RFC3339),
		})
	}
	res.Truncated = len(files) > MaxListed
	out, err := json.Marshal(res)
	if err != nil {
		return attempt.Observation{Fail: fmt.Sprintf("encode the matched files: %v", err)}
	}
	seen := "1 file matches " + pattern
	if len(files) > 1 {
		seen = fmt.Sprintf("%d files match %s", len(files), pattern)
	}
	return attempt.Observation{Met: true, Seen: seen, Result: out, Memo: next}
}

// validate says what makes the wait impossible as written, or "".
func (b *body) validate() string {
	switch {
	case b.File == "":
		return "the file wait names no file"
	case b.MinSize < 0:
		return fmt.Sprintf("min_size %d is negative", b.MinSize)
	case b.StableFor < 0:
		return fmt.Sprintf("stable_for %s is negative", b.StableFor)
	case b.Marker != "" && filepath.IsAbs(b.Marker):
		return fmt.Sprintf("marker %s must be relative to the matched files' directory", b.Marker)
	}
	return ""
}

// unmet says which of size, emptiness and marker does not hold yet, for the
// first file (in path order) that fails one, or "" when all hold.
func (b *body) unmet(files []match) string {
	for _, f := range files {
		size := f.info.Size()
		switch {
		case b.NonEmpty && size == 0:
			return f.shown + " is empty"
		case size < b.MinSize:
			return fmt.Sprintf("%s has %d bytes, fewer than min_size %d", f.shown, size, b.MinSize)
		}
	}
	if b.Marker == "" {
		return ""
	}
	checked := map[string]bool{}
	for _, f := range files {
		dir := filepath.Dir(f.path)
		if checked[dir] {
			continue
		}
		checked[dir] = true
		where := filepath.Dir(f.shown)
		if where == "." {
			where = "the working directory"
		}
		_, err := os.Stat(filepath.Join(dir, b.Marker))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Sprintf("marker %s missing in %s", b.Marker, where)
		case err != nil:
			return fmt.Sprintf("cannot stat marker %s in %s: %v", b.Marker, where, pathErr(err))
		}
	}
	return ""
}

// fingerprint identifies the matched files with their sizes and
// modification times: it changes when a file is added, removed, grown,
// truncated or rewritten.
func fingerprint(files []match) string {
	h := sha256.New()
	var n [8]byte
	for _, f := range files {
		h.Write([]byte(f.path))
		h.Write([]byte{0})
		binary.BigEndian.PutUint64(n[:], uint64(f.info.Size()))
		h.Write(n[:])
		binary.BigEndian.PutUint64(n[:], uint64(f.info.ModTime().UnixNano()))
		h.Write(n[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// escapeMeta escapes the glob metacharacters of a literal path, so that it
// matches only itself. Windows has no escape character in globs; a path
// there is left as it is.
func escapeMeta(path string) string {
	if runtime.GOOS == "windows" || !strings.ContainsAny(path, `*?[\`) {
		return path
	}
	var b strings.Builder
	for _, r := range path {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// pathErr is the cause of a failed stat without the path, which the
// message names as the pattern matched it.
func pathErr(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	return err
}

package lease

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"slices"
	"strings"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/runner"
)

// What a worker may do with artifacts follows from the leases its token
// holds: download the files a lease's needs kept, upload while a lease
// whose task has outputs runs, and report outputs that were uploaded. The
// Broker serves the artifact routes (api.WorkerArtifacts) over its
// Artifacts store.

// DefaultArtifactMaxFile bounds one file a worker uploads when
// Broker.ArtifactMaxFile is zero.
const DefaultArtifactMaxFile = 1 << 30

var _ api.WorkerArtifacts = (*Broker)(nil)

// OpenArtifact implements api.WorkerArtifacts: a worker token downloads
// only the files the needs of a lease it holds kept; any other digest is
// not found, whether the server has it or not.
func (b *Broker) OpenArtifact(ctx context.Context, digest string) (io.ReadCloser, int64, error) {
	if b.Artifacts == nil || !b.NamesArtifact(ctx, digest) {
		return nil, 0, api.Errorf(http.StatusNotFound, api.CodeNotFound, "artifact %s: no lease this worker holds names it", digest)
	}
	info, err := b.Artifacts.Stat(ctx, digest)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, api.Errorf(http.StatusNotFound, api.CodeNotFound, "artifact %s: named by a lease of this worker, but no longer kept", digest)
	}
	if err != nil {
		return nil, 0, err
	}
	rc, err := b.Artifacts.Open(ctx, digest)
	if err != nil {
		return nil, 0, err
	}
	return rc, info.Size, nil
}

// StatArtifact implements api.WorkerArtifacts, for a token that holds a
// lease whose task has outputs.
func (b *Broker) StatArtifact(ctx context.Context, digest string) (int64, bool, error) {
	if err := b.mayUpload(ctx); err != nil {
		return 0, false, err
	}
	info, err := b.Artifacts.Stat(ctx, digest)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	return info.Size, err == nil, err
}

// PutArtifact implements api.WorkerArtifacts: the content is checked
// against its digest as it is written, and kept only if it matches.
func (b *Broker) PutArtifact(ctx context.Context, digest string, size int64, body io.Reader) error {
	if err := b.mayUpload(ctx); err != nil {
		return err
	}
	max := b.ArtifactMaxFile
	if max <= 0 {
		max = DefaultArtifactMaxFile
	}
	if size > max {
		return api.Errorf(http.StatusRequestEntityTooLarge, api.CodeTooLarge, "artifact %s: %d bytes, more than the %d this server takes per file", digest, size, max)
	}
	_, err := b.Artifacts.Put(ctx, io.LimitReader(body, size), digest)
	switch {
	case errors.Is(err, artifact.ErrDigestMismatch):
		return api.Errorf(http.StatusBadRequest, api.CodeInvalid, "%v", err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return api.Errorf(http.StatusBadRequest, api.CodeInvalid, "artifact %s: the body ended before its Content-Length", digest)
	}
	return err
}

// mayUpload checks that the calling token may upload: it holds a lease
// whose task has outputs.
func (b *Broker) mayUpload(ctx context.Context) error {
	if b.Artifacts == nil {
		return api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "this server keeps no artifacts")
	}
	if !b.HoldsOutputs(ctx) {
		return api.Errorf(http.StatusConflict, api.CodeLeaseLost, "artifact uploads need a lease whose task has outputs, and this worker holds none (it expired, or was given to another worker)")
	}
	return nil
}

// NamesArtifact reports whether a lease held by the calling worker token
// (api.TokenName) names digest among the files of its needs
// (attempt.Spec.Artifacts, and NeedFiles, the results of its map needs):
// the only contents that worker may download.
func (b *Broker) NamesArtifact(ctx context.Context, digest string) bool {
	return b.anyHeld(ctx, func(a *runner.Attempt) bool {
		s, err := a.Spec()
		if err != nil {
			return false
		}
		named := func(n artifact.Need) bool { return n.Digest == digest }
		return slices.ContainsFunc(s.Artifacts, named) || slices.ContainsFunc(s.NeedFiles, named)
	})
}

// HoldsOutputs reports whether the calling worker token holds a lease
// whose task has outputs: the condition of its uploads.
func (b *Broker) HoldsOutputs(ctx context.Context) bool {
	return b.anyHeld(ctx, func(a *runner.Attempt) bool {
		s, err := a.Spec()
		return err == nil && len(s.Outputs) > 0
	})
}

// anyHeld reports whether a remote lease of the calling token satisfies f.
func (b *Broker) anyHeld(ctx context.Context, f func(a *runner.Attempt) bool) bool {
	owner := api.TokenName(ctx)
	if owner == "" {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.leases {
		if !l.deadline.IsZero() && l.owner == owner && f(l.o.a) {
			return true
		}
	}
	return false
}

// checkOutputs checks the outputs a worker reports with a success: each
// a clean path, once, with a digest. A malformed list is refused (400);
// a list of files the server does not have (never uploaded) fails the
// attempt instead, with the reason: the tasks that need it would find
// nothing.
func (b *Broker) checkOutputs(ctx context.Context, outputs []artifact.File) (fail string, err error) {
	if len(outputs) > artifact.MaxFiles {
		return "", api.Errorf(http.StatusBadRequest, api.CodeInvalid, "outputs: %d files, more than %d", len(outputs), artifact.MaxFiles)
	}
	seen := make(map[string]bool, len(outputs))
	for _, f := range outputs {
		if f.Path == "." || !fs.ValidPath(f.Path) || strings.Contains(f.Path, `\`) || seen[f.Path] {
			return "", api.Errorf(http.StatusBadRequest, api.CodeInvalid, "outputs: path %q: expected a clean relative path, once", f.Path)
		}
		seen[f.Path] = true
		if err := artifact.CheckDigest(f.Digest); err != nil {
			return "", api.Errorf(http.StatusBadRequest, api.CodeInvalid, "outputs: %s: %v", f.Path, err)
		}
		if f.Size < 0 || f.Mode > 0o777 {
			return "", api.Errorf(http.StatusBadRequest, api.CodeInvalid, "outputs: %s: size %d, mode %o: expected a size and permission bits", f.Path, f.Size, f.Mode)
		}
	}
	if len(outputs) == 0 {
		return "", nil
	}
	if b.Artifacts == nil {
		return "this server keeps no artifacts, and the worker reported outputs", nil
	}
	for _, f := range outputs {
		info, err := b.Artifacts.Stat(ctx, f.Digest)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Sprintf("outputs: %s: the worker reported %s, which it did not upload", f.Path, f.Digest), nil
		case err != nil:
			return "", fmt.Errorf("outputs: %s: %w", f.Path, err)
		case info.Size != f.Size:
			return fmt.Sprintf("outputs: %s: the worker reported %d bytes; %s has %d", f.Path, f.Size, f.Digest, info.Size), nil
		}
	}
	return "", nil
}

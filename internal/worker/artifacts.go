package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/attempt"
)

// Artifacts on a worker: the output files of a task's needs are
// downloaded into the worker's own artifact.Dir, a cache shared by its
// attempts (a file many attempts need is fetched once), and placed from
// it under the attempt's TASUKI_ARTIFACTS; the files an attempt's outputs
// match are kept in the same cache, uploaded unless the server has them,
// and reported with the attempt's success.

// artifactsEnv names an attempt's artifacts directory (as the runner's
// executor sets it).
const artifactsEnv = "TASUKI_ARTIFACTS"

// DefaultCacheKeep is how long the worker keeps a file of its artifact
// cache that no attempt has put or placed since, when Worker.CacheKeep is
// zero.
const DefaultCacheKeep = 24 * time.Hour

// minTransferRate is the slowest transfer the worker waits for: a
// download or upload of n bytes gets callTimeout plus n at this rate.
const minTransferRate = 1 << 20 // bytes per second

// filesKind reports whether attempts of kind run a process in a working
// directory (run tasks): only they get artifacts and keep outputs.
func filesKind(kind string) bool { return kind == (attempt.Shell{}).Name() }

// defaultCacheDir is the artifact cache of a worker given none: in the
// user's cache directory, else the system's temporary directory.
func defaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "tasuki", "artifacts")
	}
	return filepath.Join(os.TempDir(), "tasuki-artifacts")
}

// transferTimeout bounds one download or upload of size bytes.
func transferTimeout(size int64) time.Duration {
	return callTimeout + time.Duration(size/minTransferRate)*time.Second
}

// placeArtifacts downloads the files of the lease's needs that the cache
// lacks and places them all under dir, which it names in the attempt's
// environment. A file the server does not have (any more) or that cannot
// be placed fails the attempt before it starts.
func (s *session) placeArtifacts(a *leased, dir string, h *attempt.Host) error {
	needs := a.lease.Spec.Artifacts
	if err := s.fetch(a, "artifacts", needs); err != nil {
		return err
	}
	if err := artifact.Place(a.proc, s.cache, dir, needs); err != nil {
		return err
	}
	h.Environ = append(h.Environ, artifactsEnv+"="+dir)
	return nil
}

// placeNeedFiles downloads the files of the lease's map needs' results
// (attempt.Spec.NeedFiles) that the cache lacks, places them under dir and
// names each in files, by need id: a file many attempts need (every item
// of a map that needs a map) is fetched once.
func (s *session) placeNeedFiles(a *leased, dir string, files map[string]string) error {
	needs := a.lease.Spec.NeedFiles
	if len(needs) == 0 {
		return nil
	}
	if err := s.fetch(a, "need files", needs); err != nil {
		return err
	}
	if err := artifact.Place(a.proc, s.cache, dir, needs); err != nil {
		return fmt.Errorf("need files: %w", err)
	}
	for _, n := range needs {
		files[n.Need] = filepath.Join(dir, n.Need, filepath.FromSlash(n.Path))
	}
	return nil
}

// fetch downloads into the cache the files of needs it lacks; what names
// them in errors.
func (s *session) fetch(a *leased, what string, needs []artifact.Need) error {
	l := a.lease
	if len(needs) > 0 && s.transfer == nil {
		return fmt.Errorf("%s: this worker's client cannot download artifacts", what)
	}
	fetched := map[string]bool{}
	for _, n := range needs {
		if fetched[n.Digest] {
			continue
		}
		fetched[n.Digest] = true
		if err := artifact.CheckDigest(n.Digest); err != nil {
			return fmt.Errorf("%s: %s/%s: %w", what, n.Need, n.Path, err)
		}
		if info, err := s.cache.Stat(a.proc, n.Digest); err == nil && info.Size == n.Size {
			continue
		}
		err := s.retryWithin(a.proc, "download artifact", l.ID, transferTimeout(n.Size), func(ctx context.Context) error {
			body, err := s.transfer.DownloadArtifact(ctx, n.Digest)
			if err != nil {
				return err
			}
			defer body.Close()
			_, err = s.cache.Put(ctx, body, n.Digest)
			return err
		})
		if err != nil {
			if isLeaseLost(err) {
				a.markLost()
			}
			return fmt.Errorf("%s: download %s/%s (%s): %w", what, n.Need, n.Path, n.Digest, err)
		}
	}
	return nil
}

// collectOutputs keeps the files a succeeded attempt's outputs match and
// uploads those the server lacks; res comes back with them, or failed
// with the reason they could not be handed in. Uploads are part of the
// report: they go on while a drain's grace runs out, like the report.
func (s *session) collectOutputs(a *leased, h *attempt.Host, res attempt.Result) attempt.Result {
	spec := &a.lease.Spec
	if res.Outcome != attempt.Succeeded || len(spec.Outputs) == 0 || !filesKind(spec.Kind) {
		return res
	}
	fail := func(format string, args ...any) attempt.Result {
		res.Outcome, res.Message = attempt.Failed, fmt.Sprintf(format, args...)
		return spec.Redact(res)
	}
	if s.transfer == nil {
		return fail("outputs: this worker's client cannot upload artifacts")
	}
	files, err := artifact.Collect(a.report, s.cache, h.WorkingDir(spec), spec.Outputs)
	if err != nil {
		return fail("%v", err)
	}
	sent := map[string]bool{}
	for _, f := range files {
		if sent[f.Digest] {
			continue
		}
		sent[f.Digest] = true
		if err := s.upload(a, f); err != nil {
			if isLeaseLost(err) {
				a.markLost()
			}
			return fail("outputs: upload %s: %v", f.Path, err)
		}
	}
	res.Outputs = files
	return res
}

// upload sends one kept file unless the server has it.
func (s *session) upload(a *leased, f artifact.File) error {
	l := a.lease
	var has bool
	err := s.retry(a.report, "look up artifact", l.ID, func(ctx context.Context) (err error) {
		has, err = s.transfer.HasArtifact(ctx, f.Digest)
		return err
	})
	if err != nil || has {
		return err
	}
	return s.retryWithin(a.report, "upload artifact", l.ID, transferTimeout(f.Size), func(ctx context.Context) error {
		body, err := s.cache.Open(ctx, f.Digest)
		if err != nil {
			return err
		}
		defer body.Close()
		return s.transfer.UploadArtifact(ctx, f.Digest, f.Size, body)
	})
}

// fitsReport fails a report whose outputs make it larger than the server
// takes (api.MaxCompleteBytes), rather than have it refused and the
// attempt lost.
func fitsReport(req api.CompleteRequest, size int) api.CompleteRequest {
	if len(req.Outputs) == 0 || size <= api.MaxCompleteBytes {
		return req
	}
	n := len(req.Outputs)
	req.Outcome, req.Outputs, req.Result = attempt.Failed, nil, nil
	req.Message = fmt.Sprintf("outputs: %d files are more than one report can carry (%d bytes, over %d): keep fewer, larger files (an archive)", n, size, api.MaxCompleteBytes)
	return req
}

// sweepCache deletes the files of the artifact cache no held lease needs
// that no attempt put or placed for CacheKeep, at most once an hour.
func (s *session) sweepCache(ctx context.Context) {
	s.mu.Lock()
	due := time.Since(s.lastSweep) >= time.Hour
	if !due {
		s.mu.Unlock()
		return
	}
	s.lastSweep = time.Now()
	var named []string
	for _, a := range s.running {
		for _, n := range slices.Concat(a.lease.Spec.Artifacts, a.lease.Spec.NeedFiles) {
			named = append(named, n.Digest)
		}
	}
	s.mu.Unlock()
	slices.Sort(named)
	named = slices.Compact(named)
	inUse := func(_ context.Context, after string, limit int) ([]string, error) {
		i, _ := slices.BinarySearch(named, after)
		for i < len(named) && named[i] <= after {
			i++
		}
		return named[i:min(len(named), i+limit)], nil
	}
	n, err := artifact.Sweep(ctx, s.cache, inUse, time.Now().Add(-s.cacheKeep))
	if err != nil {
		s.log.Warn("sweep the artifact cache", "dir", s.cache.Root, "err", err)
		return
	}
	if n > 0 {
		s.log.Info("swept the artifact cache", "dir", s.cache.Root, "files", n)
	}
}

// permanentTransfer reports whether a transfer error is one retrying
// cannot change: the server's refusal, or a content that is not what
// its digest says.
func permanentTransfer(err error) bool {
	if permanent(err) || errors.Is(err, artifact.ErrDigestMismatch) || errors.Is(err, artifact.ErrCorrupt) {
		return true
	}
	e, ok := errors.AsType[*api.Error](err)
	return ok && e.Status == http.StatusRequestEntityTooLarge
}

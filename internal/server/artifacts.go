package server

import (
	"context"
	"path/filepath"
	"time"

	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/artifact/s3store"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// The artifact store of a server: the output files of attempts run here
// (the runner collects them) and on remote workers (uploaded over the
// worker protocol, which the broker serves, each file within
// artifact_max_file), in Home/artifacts or the bucket artifact_store
// names, swept by the leader after it prunes history.
//
// With several servers on one PostgreSQL database each has its own data
// directory: the leader's holds the artifacts of the runs it executed,
// and a new leader does not have those of the old one. Such a cluster
// keeps its artifacts in a bucket the servers share (artifact_store:
// s3://..., see openArtifactStore), or shares Home/artifacts on a common
// file system.

// ArtifactSweepAge is how old a content nothing names must be before a
// sweep deletes it: an attempt keeps its outputs before its success is
// recorded, and a worker uploads them before it reports. `tasuki run`
// sweeps its data directory with it too.
const ArtifactSweepAge = time.Hour

// openArtifactStore opens the artifact store a server is configured
// with: "" for the directory Home/artifacts, or the bucket of an
// S3-compatible store, s3://BUCKET/PREFIX?endpoint=HOST:PORT (see
// s3store.ParseURL; the credentials come from AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY in env).
func openArtifactStore(home, raw string, env func(string) string) (artifact.Store, error) {
	if raw == "" {
		return &artifact.Dir{Root: filepath.Join(home, "artifacts")}, nil
	}
	cfg, err := s3store.ParseURL(raw, env)
	if err != nil {
		return nil, err
	}
	return s3store.New(cfg)
}

// setupArtifacts gives the broker the runner's artifact store (New opens
// the one artifact_store names), Home/artifacts when none was set.
func (s *Server) setupArtifacts() {
	if s.runner.Artifacts == nil {
		s.runner.Artifacts = &artifact.Dir{Root: filepath.Join(s.cfg.Home, "artifacts")}
	}
	s.broker.Artifacts = s.runner.Artifacts
}

// sweepArtifacts deletes the stored files that no kept run, no cache
// entry and no run executing here (the results of the maps its tasks
// need, kept for remote workers) names (see artifact.Sweep). It runs on
// the leader after each pruning of history; a store without artifact refs
// keeps everything.
func (s *Server) sweepArtifacts(ctx context.Context) {
	refs, ok := s.store.(store.Artifacts)
	if !ok {
		return
	}
	inUse := artifact.Union(refs.ArtifactDigests, s.runner.SharedNeedDigests)
	n, err := artifact.Sweep(ctx, s.runner.ArtifactStore(), inUse, s.now().Add(-ArtifactSweepAge))
	if err != nil {
		s.log.Error("sweep artifacts", "err", err, "deleted", n)
		return
	}
	if n > 0 {
		s.log.Info("swept artifacts no run or cache entry names", "files", n)
	}
}

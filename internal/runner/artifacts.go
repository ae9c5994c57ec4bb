package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// ArtifactsEnv names the directory where an attempt finds the output
// files of its needs, at $TASUKI_ARTIFACTS/<need task id>/<path>.
const ArtifactsEnv = "TASUKI_ARTIFACTS"

// FilesKind reports whether attempts of kind run a process in a working
// directory: the shell kind, run tasks. Only they see TASUKI_ARTIFACTS
// and have outputs collected; a request (http) or a query (sql) has no
// files, and outputs declared on one are ignored.
func FilesKind(kind string) bool { return kind == (attempt.Shell{}).Name() }

// ArtifactStore is where this runner keeps the output files of attempts
// (Runner.Artifacts, a Dir in Home/artifacts by default).
func (r *Runner) ArtifactStore() artifact.Store {
	r.defaults()
	return r.Artifacts
}

// placeArtifacts places the output files of the attempt's needs in a
// directory of its own in the run's scratch directory and names it in the
// attempt's environment. TASUKI_ARTIFACTS is set for every attempt of a
// run task, to a directory that exists (empty when the needs kept no
// files), so a script can use it without testing it first. The returned
// func removes the directory once the attempt has ended: what is placed
// is links or copies of the store's contents.
func (r *Runner) placeArtifacts(ctx context.Context, a *Attempt, s *attempt.Spec, h *attempt.Host) (func(), error) {
	if !FilesKind(s.Kind) {
		return func() {}, nil
	}
	if len(s.Artifacts) == 0 {
		// Nothing to place: one empty, read-only directory serves every
		// such attempt of the run (a directory made and removed per
		// attempt was a sixth of the cost of a map item running true).
		dir := filepath.Join(a.workDir, "artifacts", "none")
		if _, err := os.Stat(dir); err != nil {
			if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
				return nil, fmt.Errorf("artifacts: %w", err)
			}
			if err := os.Mkdir(dir, 0o500); err != nil && !errors.Is(err, fs.ErrExist) {
				return nil, fmt.Errorf("artifacts: %w", err)
			}
		}
		h.Environ = append(h.Environ, ArtifactsEnv+"="+dir)
		return func() {}, nil
	}
	dir := filepath.Join(a.workDir, "artifacts", a.stem())
	remove := func() {
		if err := os.RemoveAll(dir); err != nil {
			r.Logger.Warn("remove an attempt's artifacts directory", "dir", dir, "err", err)
		}
	}
	if err := artifact.Place(ctx, r.Artifacts, dir, s.Artifacts); err != nil {
		remove()
		return nil, err
	}
	// The executor's own variables come first in the attempt's
	// environment; TASUKI_* is reserved in pipelines, so nothing the task
	// declares can replace this one.
	h.Environ = append(h.Environ, ArtifactsEnv+"="+dir)
	return remove, nil
}

// SharedNeedDigests pages through the digests of the files of map needs'
// results that the runs executing here keep in Artifacts for remote
// executors (ShareMapNeeds): up to limit of them greater than after, in
// ascending order. Nothing else names them, and an attempt may be handed
// one long after it was kept, so a sweep of Artifacts counts them in use
// (an artifact.InUse) while their runs go on.
func (r *Runner) SharedNeedDigests(ctx context.Context, after string, limit int) ([]string, error) {
	r.mu.Lock()
	needs := make([]*needFiles, 0, len(r.active))
	for _, c := range r.active {
		needs = append(needs, c.needs)
	}
	r.mu.Unlock()
	var all []string
	for _, nf := range needs {
		all = nf.sharedDigests(all)
	}
	slices.Sort(all)
	all = slices.Compact(all)
	i, _ := slices.BinarySearch(all, after)
	for i < len(all) && all[i] <= after {
		i++
	}
	return all[i:min(len(all), i+limit)], nil
}

// collectOutputs keeps the files a succeeded attempt's outputs match (in
// its working directory) and reports them in its result. Outputs that
// cannot be kept (a pattern that matched nothing, a link out of the
// working directory, a full disk) fail the attempt with the reason: the
// tasks that need it would not find what they expect.
func (r *Runner) collectOutputs(ctx context.Context, s *attempt.Spec, h *attempt.Host, res attempt.Result) attempt.Result {
	if res.Outcome != attempt.Succeeded || len(s.Outputs) == 0 || !FilesKind(s.Kind) {
		return res
	}
	files, err := artifact.Collect(ctx, r.Artifacts, h.WorkingDir(s), s.Outputs)
	if err != nil {
		res.Outcome, res.Message = attempt.Failed, err.Error()
		return s.Redact(res) // a file may be named after anything
	}
	res.Outputs = files
	return res
}

// NeedArtifacts is what an attempt's Spec.Artifacts holds: every file the
// needs of its task kept in run runID, from the store's artifact refs,
// need by need (needs maps each need's position in the run to its task
// id; a need that is not a map, item -1). The coordinator calls it when
// it describes an attempt of a run task.
func NeedArtifacts(ctx context.Context, refs store.Artifacts, runID int64, needs map[int]string) ([]artifact.Need, error) {
	var out []artifact.Need
	for _, index := range slices.Sorted(maps.Keys(needs)) {
		files, err := refs.ArtifactsOf(ctx, runID, index, -1)
		if err != nil {
			return nil, fmt.Errorf("output files of need %s: %w", needs[index], err)
		}
		for _, f := range files {
			out = append(out, artifact.Need{Need: needs[index], File: f.ArtifactFile})
		}
	}
	return out, nil
}

// OutputRefs is what a success records (store.Change.Artifacts): the
// files its result lists (AttemptResult.Outputs) as refs of task index
// of run runID (item -1 for a task that is not a map).
func OutputRefs(runID int64, index, item int, files []artifact.File) []store.ArtifactRef {
	if len(files) == 0 {
		return nil
	}
	refs := make([]store.ArtifactRef, len(files))
	for i, f := range files {
		refs[i] = store.ArtifactRef{RunID: runID, Index: index, Item: item, ArtifactFile: f}
	}
	return refs
}

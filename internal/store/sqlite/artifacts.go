package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// Artifact refs (see store.Artifacts): which files each task (or item of a
// map) of a run produced, written with its success, deleted with its run.

// artifacts writes the artifact refs of change c of run runID: each group
// replaces the refs of its task and item. The task must exist (refs have
// no foreign key: see migration 0011).
func (w *writer) artifacts(runID int64, refs []store.ArtifactRef) error {
	m := w.maps
	checked := map[int]bool{}
	for _, g := range store.ArtifactGroups(refs) {
		if !checked[g.Index] {
			var one int
			err := m.stmt(m.st.taskExists).QueryRowContext(w.ctx, runID, g.Index).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				err = fmt.Errorf("task: %w", store.ErrNotFound)
			}
			if err != nil {
				return fmt.Errorf("record the artifacts of task %d: %w", g.Index, err)
			}
			checked[g.Index] = true
		}
		if _, err := m.stmt(m.st.forgetArtifacts).ExecContext(w.ctx, runID, g.Index, g.Item); err != nil {
			return fmt.Errorf("record the artifacts of task %d item %d: %w", g.Index, g.Item, err)
		}
		for _, r := range g.Refs {
			_, err := m.stmt(m.st.insertArtifact).ExecContext(w.ctx, runID, g.Index, g.Item, r.Path, r.Digest, r.Size, int64(r.Mode))
			if err != nil {
				return fmt.Errorf("record artifact %q of task %d item %d: %w", r.Path, g.Index, g.Item, err)
			}
		}
	}
	return nil
}

const (
	taskExistsSQL      = `SELECT 1 FROM tasks WHERE run_id = ? AND idx = ?`
	forgetArtifactsSQL = `DELETE FROM artifacts WHERE run_id = ? AND idx = ? AND item = ?`
	insertArtifactSQL  = `INSERT INTO artifacts (run_id, idx, item, path, digest, size, mode) VALUES (?,?,?,?,?,?,?)`
)

// ArtifactsOf reads one range of the primary key, in path order; when it
// is empty, whether the run exists.
func (db *DB) ArtifactsOf(ctx context.Context, runID int64, index, item int) ([]store.ArtifactRef, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT run_id, idx, item, path, digest, size, mode FROM artifacts
		WHERE run_id = ? AND idx = ? AND item = ? ORDER BY path`, runID, index, item)
	if err != nil {
		return nil, fmt.Errorf("artifacts of task %d item %d of run %d: %w", index, item, runID, err)
	}
	out, err := collect(rows, fmt.Sprintf("artifacts of task %d item %d of run %d", index, item, runID),
		func(row scanner) (store.ArtifactRef, error) {
			var a store.ArtifactRef
			var mode int64
			err := row.Scan(&a.RunID, &a.Index, &a.Item, &a.Path, &a.Digest, &a.Size, &mode)
			a.Mode = uint32(mode)
			return a, err
		})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		if err := db.runMissing(ctx, runID); err != nil {
			return nil, fmt.Errorf("artifacts of task %d item %d of run %d: %w", index, item, runID, err)
		}
		return []store.ArtifactRef{}, nil
	}
	return out, nil
}

// artifactDigestsSQL walks the distinct digests of artifact refs and cache
// outputs in order, skipping through both digest indexes: each step is the
// smallest digest past the last one in either, two index lookups however
// many refs name it (a million items may write the same file).
const artifactDigestsSQL = `WITH RECURSIVE d(v) AS (
	SELECT (SELECT min(x) FROM (
		SELECT min(digest) AS x FROM artifacts WHERE digest > ?1
		UNION ALL SELECT min(digest) FROM cache_outputs WHERE digest > ?1))
	UNION ALL
	SELECT (SELECT min(x) FROM (
		SELECT min(digest) AS x FROM artifacts WHERE digest > d.v
		UNION ALL SELECT min(digest) FROM cache_outputs WHERE digest > d.v))
	FROM d WHERE d.v IS NOT NULL
	LIMIT ?2)
SELECT v FROM d WHERE v IS NOT NULL`

// ArtifactDigests pages through the digests that artifact refs and cache
// entries name.
func (db *DB) ArtifactDigests(ctx context.Context, after string, limit int) ([]string, error) {
	limit, err := store.DigestsLimit(after, limit)
	if err != nil {
		return nil, fmt.Errorf("artifact digests: %w", err)
	}
	rows, err := db.r.QueryContext(ctx, artifactDigestsSQL, after, limit)
	if err != nil {
		return nil, fmt.Errorf("artifact digests after %q: %w", after, err)
	}
	out, err := collect(rows, fmt.Sprintf("artifact digests after %q", after), func(row scanner) (string, error) {
		var d string
		err := row.Scan(&d)
		return d, err
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

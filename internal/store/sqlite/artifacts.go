package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// Artifact refs (see store.Artifacts): which files each task (or item of a
// map) of a run produced, written with its success, deleted with its run.

// Page sizes of ArtifactDigests (the contract leaves them to the driver;
// the sweep reads pages until an empty one).
const (
	defaultDigestsLimit = 1000
	maxDigestsLimit     = 10000
)

// checkArtifacts rejects what Apply would refuse about c's artifact refs
// before the transaction starts. It is the same check, with the same
// messages, as the PostgreSQL driver's.
func checkArtifacts(c *store.Change) error {
	for _, a := range c.Artifacts {
		if a.RunID != 0 && a.RunID != c.RunID {
			return fmt.Errorf("artifact %q of task %d names run %d", a.Path, a.Index, a.RunID)
		}
		if a.Index < 0 || a.Item < -1 || a.Index > math.MaxInt32 || a.Item > math.MaxInt32 {
			return fmt.Errorf("artifact %q of task %d item %d: want a task index and an item (-1 for a task)", a.Path, a.Index, a.Item)
		}
		if err := checkArtifactFile(a.ArtifactFile); err != nil {
			return fmt.Errorf("artifact of task %d: %w", a.Index, err)
		}
	}
	return nil
}

// artifactGroup is the refs of one task (or item) of a change: the files
// of one success, which replace any it had (a task run again by an
// operator lists what its new success produced, not the files of the
// old one too). A path given twice is its last ref.
type artifactGroup struct {
	index, item int
	refs        []store.ArtifactRef
}

// artifactGroups groups refs by task and item, in the order first seen.
func artifactGroups(refs []store.ArtifactRef) []artifactGroup {
	type key struct{ index, item int }
	pos := map[key]int{}
	var out []artifactGroup
	for _, r := range refs {
		k := key{r.Index, r.Item}
		i, ok := pos[k]
		if !ok {
			i = len(out)
			pos[k] = i
			out = append(out, artifactGroup{index: r.Index, item: r.Item})
		}
		g := &out[i]
		replaced := false
		for j := range g.refs {
			if g.refs[j].Path == r.Path {
				g.refs[j], replaced = r, true
				break
			}
		}
		if !replaced {
			g.refs = append(g.refs, r)
		}
	}
	return out
}

// artifacts writes the artifact refs of change c of run runID: each group
// replaces the refs of its task and item. The task must exist (refs have
// no foreign key: see migration 0011).
func (w *writer) artifacts(runID int64, refs []store.ArtifactRef) error {
	m := w.maps
	checked := map[int]bool{}
	for _, g := range artifactGroups(refs) {
		if !checked[g.index] {
			var one int
			err := m.stmt(m.st.taskExists).QueryRowContext(w.ctx, runID, g.index).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				err = fmt.Errorf("task: %w", store.ErrNotFound)
			}
			if err != nil {
				return fmt.Errorf("record the artifacts of task %d: %w", g.index, err)
			}
			checked[g.index] = true
		}
		if _, err := m.stmt(m.st.forgetArtifacts).ExecContext(w.ctx, runID, g.index, g.item); err != nil {
			return fmt.Errorf("record the artifacts of task %d item %d: %w", g.index, g.item, err)
		}
		for _, r := range g.refs {
			_, err := m.stmt(m.st.insertArtifact).ExecContext(w.ctx, runID, g.index, g.item, r.Path, r.Digest, r.Size, int64(r.Mode))
			if err != nil {
				return fmt.Errorf("record artifact %q of task %d item %d: %w", r.Path, g.index, g.item, err)
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
	if limit <= 0 {
		limit = defaultDigestsLimit
	}
	limit = min(limit, maxDigestsLimit)
	if err := store.CheckText("cursor", after); err != nil {
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

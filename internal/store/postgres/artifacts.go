package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// Artifact refs (see store.Artifacts): which files each task (or item of a
// map) of a run produced, written with its success, deleted with its run.

type artifactKey struct {
	run         int64
	index, item int
}

// addArtifacts adds the artifact refs of the change of run runID to the
// plan: a group of a later change replaces that of an earlier one.
func (p *applyPlan) addArtifacts(runID int64, refs []store.ArtifactRef) {
	if p.artPos == nil {
		p.artPos = map[artifactKey]int{}
	}
	for _, g := range store.ArtifactGroups(refs) {
		k := artifactKey{runID, g.Index, g.Item}
		if i, ok := p.artPos[k]; ok {
			p.artGroups[i] = g
			continue
		}
		p.artPos[k] = len(p.artGroups)
		p.artKeys = append(p.artKeys, k)
		p.artGroups = append(p.artGroups, g)
	}
}

// The statements of a batch's refs look each key of the batch's arrays up
// on its own, in a subquery kept apart (OFFSET 0): joined with the arrays,
// a thousand keys make PostgreSQL plan a hash join over a scan of the
// whole table (every run's refs), and item = ANY(array) is left out of
// the index condition when the planner expects few rows, which reads
// every ref of the task for each batch of its items.
const (
	// artifactTasksSQL returns the tasks (run, index) of the arrays that
	// exist.
	artifactTasksSQL = `SELECT u.run_id, u.idx FROM unnest($1::bigint[], $2::int4[]) AS u(run_id, idx)
		WHERE EXISTS (SELECT 1 FROM tasks t WHERE t.run_id = u.run_id AND t.idx = u.idx OFFSET 0)`
	// forgetArtifactsSQL deletes the refs of the tasks and items (run,
	// index, item) that the batch's replace, found by their key and
	// deleted by their row (the run is locked by the batch: no one else
	// moves them).
	forgetArtifactsSQL = `DELETE FROM artifacts WHERE ctid = ANY(ARRAY(
		SELECT a.ctid FROM unnest($1::bigint[], $2::int4[], $3::int4[]) AS u(run_id, idx, item)
		CROSS JOIN LATERAL (SELECT ctid FROM artifacts
			WHERE run_id = u.run_id AND idx = u.idx AND item = u.item OFFSET 0) a))`
	insertArtifactsSQL = `INSERT INTO artifacts (run_id, idx, item, path, digest, size, mode)
		SELECT * FROM unnest($1::bigint[], $2::int4[], $3::int4[], $4::text[], $5::text[], $6::int8[], $7::int8[])`
)

// artifactStatements check that the tasks of the plan's refs exist, delete
// the refs their groups replace and insert the new ones.
func (p *applyPlan) artifactStatements() []statement {
	if len(p.artKeys) == 0 {
		return nil
	}
	type task struct {
		run   int64
		index int
	}
	seen := map[task]bool{}
	var tRun, gRun, run []int64
	var tIdx, gIdx, gItem, idx, item []int32
	var path, digest []string
	var size, mode []int64
	for i, k := range p.artKeys {
		if t := (task{k.run, k.index}); !seen[t] {
			seen[t] = true
			tRun, tIdx = append(tRun, k.run), append(tIdx, int32(k.index))
		}
		gRun, gIdx, gItem = append(gRun, k.run), append(gIdx, int32(k.index)), append(gItem, int32(k.item))
		for _, r := range p.artGroups[i].Refs {
			run, idx, item = append(run, k.run), append(idx, int32(k.index)), append(item, int32(k.item))
			path, digest = append(path, r.Path), append(digest, r.Digest)
			size, mode = append(size, r.Size), append(mode, int64(r.Mode))
		}
	}
	return []statement{
		{sql: artifactTasksSQL, args: []any{tRun, tIdx}, kind: stmtArtifactTasks},
		{sql: forgetArtifactsSQL, args: []any{gRun, gIdx, gItem}, kind: stmtMapWrite, what: "forget the artifacts the new ones replace"},
		{sql: insertArtifactsSQL, args: []any{run, idx, item, path, digest, size, mode}, kind: stmtMapWrite,
			what: fmt.Sprintf("record %d artifacts", len(run))},
	}
}

// checkArtifactTasks reads the result of artifactTasksSQL: every task of
// the plan's refs came back.
func (p *applyPlan) checkArtifactTasks(br pgx.BatchResults) error {
	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("apply changes: look up the tasks of artifacts: %w", err)
	}
	found := map[artifactKey]bool{}
	var k artifactKey
	if _, err := pgx.ForEachRow(rows, []any{&k.run, &k.index}, func() error {
		found[artifactKey{k.run, k.index, 0}] = true
		return nil
	}); err != nil {
		return fmt.Errorf("apply changes: look up the tasks of artifacts: %w", err)
	}
	for _, k := range p.artKeys {
		if !found[artifactKey{k.run, k.index, 0}] {
			return fmt.Errorf("apply changes to run %d: record the artifacts of task %d: task: %w", k.run, k.index, store.ErrNotFound)
		}
	}
	return nil
}

// ArtifactsOf reads one range of the primary key, in path order; when it
// is empty, whether the run exists.
func (db *DB) ArtifactsOf(ctx context.Context, runID int64, index, item int) ([]store.ArtifactRef, error) {
	rows, err := db.pool.Query(ctx, `SELECT run_id, idx, item, path, digest, size, mode FROM artifacts
		WHERE run_id = $1 AND idx = $2 AND item = $3 ORDER BY path`, runID, index, item)
	if err != nil {
		return nil, fmt.Errorf("artifacts of task %d item %d of run %d: %w", index, item, runID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.ArtifactRef, error) {
		var a store.ArtifactRef
		var mode int64
		err := row.Scan(&a.RunID, &a.Index, &a.Item, &a.Path, &a.Digest, &a.Size, &mode)
		a.Mode = uint32(mode)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("artifacts of task %d item %d of run %d: %w", index, item, runID, err)
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
// smallest digest past the last one in either (least ignores NULL), two
// index lookups however many refs name it (a million items may write the
// same file). The LIMIT outside stops the recursion.
const artifactDigestsSQL = `WITH RECURSIVE d(v) AS (
	SELECT least((SELECT min(digest) FROM artifacts WHERE digest > $1),
		(SELECT min(digest) FROM cache_outputs WHERE digest > $1))
	UNION ALL
	SELECT least((SELECT min(digest) FROM artifacts WHERE digest > d.v),
		(SELECT min(digest) FROM cache_outputs WHERE digest > d.v))
	FROM d WHERE d.v IS NOT NULL)
SELECT v FROM d WHERE v IS NOT NULL LIMIT $2`

// ArtifactDigests pages through the digests that artifact refs and cache
// entries name.
func (db *DB) ArtifactDigests(ctx context.Context, after string, limit int) ([]string, error) {
	limit, err := store.DigestsLimit(after, limit)
	if err != nil {
		return nil, fmt.Errorf("artifact digests: %w", err)
	}
	rows, err := db.pool.Query(ctx, artifactDigestsSQL, after, limit)
	if err != nil {
		return nil, fmt.Errorf("artifact digests after %q: %w", after, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("artifact digests after %q: %w", after, err)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// Dataset updates: one row each in dataset_updates, read by dataset through
// the (dataset, id) and (dataset, at, id) indexes.
//
// An identity value is drawn when a row is inserted, not when it commits,
// so without care two writers of one dataset could commit their ids out of
// order: a scheduler that saw id 11 and consumed it would never start a run
// for id 10, committed a moment later. So every writer of a dataset first
// takes a transaction-level advisory lock on it (lockDatasets), before it
// draws an id, and holds it until it commits: the ids of one dataset become
// visible in order. Writers of different datasets do not wait for each
// other (unless their names share a lock key, which only costs a wait).

// lockDatasetsSQL takes the advisory locks of the keys of $1, in the order
// given (datasetLockKeys sorts them, so two writers of the same datasets
// cannot deadlock).
const lockDatasetsSQL = `SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k`

// datasetLockKeys are the advisory lock keys of datasets, sorted and
// without duplicates: FNV-1a of the name after a prefix of tasuki's own,
// so the keys are unlikely to meet another program's.
func datasetLockKeys(datasets []string) []int64 {
	keys := make([]int64, 0, len(datasets))
	for _, d := range datasets {
		h := fnv.New64a()
		h.Write([]byte("tasuki dataset\x00"))
		h.Write([]byte(d))
		keys = append(keys, int64(h.Sum64()))
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

const datasetUpdateCols = `id, dataset, at, run_id, pipeline, task_id, interval_start, interval_end, actor, metadata::text`

const insertDatasetUpdateSQL = `INSERT INTO dataset_updates (dataset, at, run_id, pipeline, task_id, interval_start,
	interval_end, actor, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb) RETURNING id`

// insertDatasetUpdatesSQL is Apply's set-based insert: the rows in the
// order of the arrays, so their ids follow the batch.
const insertDatasetUpdatesSQL = `INSERT INTO dataset_updates (dataset, at, run_id, pipeline, task_id, interval_start,
		interval_end, actor, metadata)
	SELECT u.dataset, u.at, u.run_id, u.pipeline, u.task_id, u.interval_start, u.interval_end, u.actor, u.metadata::jsonb
	FROM unnest($1::text[], $2::timestamptz[], $3::bigint[], $4::text[], $5::text[], $6::timestamptz[],
		$7::timestamptz[], $8::text[], $9::text[]) WITH ORDINALITY
		AS u(dataset, at, run_id, pipeline, task_id, interval_start, interval_end, actor, metadata, ord)
	ORDER BY u.ord`

func scanDatasetUpdate(row pgx.Row) (store.DatasetUpdate, error) {
	var u store.DatasetUpdate
	var run *int64
	err := row.Scan(&u.ID, &u.Dataset, timeCol{&u.At}, &run, &u.Pipeline, &u.TaskID, timeCol{&u.IntervalStart},
		timeCol{&u.IntervalEnd}, &u.Actor, jsonCol{&u.Metadata})
	if run != nil {
		u.RunID = *run
	}
	return u, err
}

// RecordDatasetUpdate inserts one update, under the dataset's lock, in one
// transaction of one round trip of statements.
func (db *DB) RecordDatasetUpdate(ctx context.Context, u store.DatasetUpdate) (store.DatasetUpdate, error) {
	if err := store.PrepareDatasetUpdate(&u); err != nil {
		return store.DatasetUpdate{}, fmt.Errorf("record update of dataset %q: %w", u.Dataset, err)
	}
	var run any
	if u.RunID != 0 {
		run = u.RunID
	}
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return store.DatasetUpdate{}, fmt.Errorf("record update of dataset %q: %w", u.Dataset, err)
	}
	defer rollback(tx)
	b := &pgx.Batch{}
	b.Queue(lockDatasetsSQL, datasetLockKeys([]string{u.Dataset}))
	b.Queue(insertDatasetUpdateSQL, u.Dataset, u.At, run, u.Pipeline, u.TaskID, timeArg(u.IntervalStart),
		timeArg(u.IntervalEnd), u.Actor, jsonText(u.Metadata))
	br := tx.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return store.DatasetUpdate{}, fmt.Errorf("record update of dataset %q: lock: %w", u.Dataset, err)
	}
	if err := br.QueryRow().Scan(&u.ID); err != nil {
		br.Close()
		return store.DatasetUpdate{}, fmt.Errorf("record update of dataset %q: %w", u.Dataset, err)
	}
	if err := br.Close(); err != nil {
		return store.DatasetUpdate{}, fmt.Errorf("record update of dataset %q: %w", u.Dataset, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return store.DatasetUpdate{}, fmt.Errorf("record update of dataset %q: commit: %w", u.Dataset, err)
	}
	return u, nil
}

// DatasetUpdates reads one page, unprepared (as ListRuns, and for the same
// reason: how many updates are since a time decides between the two
// indexes, so PostgreSQL plans each call for its values).
func (db *DB) DatasetUpdates(ctx context.Context, f store.DatasetUpdateFilter) ([]store.DatasetUpdate, error) {
	if f.Dataset == "" {
		return nil, errors.New("dataset updates: no dataset given")
	}
	q, args := datasetUpdatesQuery(f)
	rows, err := db.pool.Query(ctx, q, append([]any{pgx.QueryExecModeExec}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("updates of dataset %q: %w", f.Dataset, err)
	}
	us, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.DatasetUpdate, error) { return scanDatasetUpdate(row) })
	if err != nil {
		return nil, fmt.Errorf("updates of dataset %q: %w", f.Dataset, err)
	}
	return us, nil
}

func datasetUpdatesQuery(f store.DatasetUpdateFilter) (string, []any) {
	limit := f.Limit
	if limit <= 0 {
		limit = store.DefaultDatasetUpdatesLimit
	}
	limit = min(limit, store.MaxDatasetUpdatesLimit)
	var p params
	where := []string{"dataset = " + p.add(f.Dataset)}
	if !f.Since.IsZero() {
		where = append(where, "at >= "+p.add(store.NormTime(f.Since)))
	}
	if f.BeforeID > 0 {
		where = append(where, "id < "+p.add(f.BeforeID))
	}
	if f.AfterID > 0 {
		where = append(where, "id > "+p.add(f.AfterID))
	}
	order := " ORDER BY id DESC LIMIT "
	if f.Ascending {
		order = " ORDER BY id ASC LIMIT "
	}
	return `SELECT ` + datasetUpdateCols + ` FROM dataset_updates WHERE ` + strings.Join(where, " AND ") +
		order + p.add(int64(limit)), p.args
}

// newestOf is the newest update of the dataset named by expression name
// (an outer column, in a LATERAL subquery): the first entry of a backward
// read of the (dataset, id) index. It is written as a range, dataset >= name
// AND dataset <= name, ordered by (dataset, id), because for "dataset =
// name" with a name from the outer query PostgreSQL estimates how soon a
// backward read of the primary key, filtered on the dataset, meets one of
// its updates, and with an average dataset in mind reads the primary key:
// for a dataset last updated long ago, that is every update since. Only
// (dataset, id) gives the range in this order, so it is always the plan.
// (With the "C" collation the range holds exactly the equal names.)
func newestOf(name string) string {
	return `SELECT ` + datasetUpdateCols + ` FROM dataset_updates
		WHERE dataset >= ` + name + ` AND dataset <= ` + name + ` ORDER BY dataset DESC, id DESC LIMIT 1`
}

// latestNamedSQL finds the newest update of each name of $1. The names of an
// array of text have the database's default collation, the column "C":
// they are given the column's, or no index could serve the comparison.
var latestNamedSQL = `SELECT u.* FROM unnest($1::text[]) AS n(name)
	CROSS JOIN LATERAL (` + newestOf(`n.name COLLATE "C"`) + `) u`

// latestAllSQL finds the datasets by skipping through the (dataset, id)
// index from one name to the next (a loose index scan, which PostgreSQL
// does not do by itself for a DISTINCT or GROUP BY), then the newest update
// of each.
var latestAllSQL = `WITH RECURSIVE d(name) AS (
	(SELECT dataset FROM dataset_updates ORDER BY dataset LIMIT 1)
	UNION ALL
	SELECT (SELECT dataset FROM dataset_updates WHERE dataset > d.name ORDER BY dataset LIMIT 1)
	FROM d WHERE d.name IS NOT NULL
)
SELECT u.* FROM d CROSS JOIN LATERAL (` + newestOf(`d.name`) + `) u WHERE d.name IS NOT NULL`

// LatestDatasetUpdates reads the newest update of each dataset.
func (db *DB) LatestDatasetUpdates(ctx context.Context, names []string) (map[string]store.DatasetUpdate, error) {
	q, args := latestAllSQL, []any(nil)
	if len(names) > 0 {
		want := store.DatasetNames(names)
		if len(want) == 0 {
			return map[string]store.DatasetUpdate{}, nil
		}
		q, args = latestNamedSQL, []any{want}
	}
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("latest dataset updates: %w", err)
	}
	us, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.DatasetUpdate, error) { return scanDatasetUpdate(row) })
	if err != nil {
		return nil, fmt.Errorf("latest dataset updates: %w", err)
	}
	out := make(map[string]store.DatasetUpdate, len(us))
	for _, u := range us {
		out[u.Dataset] = u
	}
	return out, nil
}

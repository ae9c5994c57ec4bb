package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// Dataset updates: one row each in dataset_updates, read by dataset through
// the (dataset, id) and (dataset, at) indexes. The one writer connection
// serialises every write, so ids become visible in the order they are drawn.

const datasetUpdateCols = `id, dataset, at, run_id, pipeline, task_id, interval_start, interval_end, actor, metadata`

const insertDatasetUpdateSQL = `INSERT INTO dataset_updates (dataset, at, run_id, pipeline, task_id, interval_start,
	interval_end, actor, metadata) VALUES (?,?,?,?,?,?,?,?,?) RETURNING id`

// datasetUpdateArgs are the parameters of insertDatasetUpdateSQL for u
// (prepared by store.PrepareDatasetUpdate).
func datasetUpdateArgs(u *store.DatasetUpdate) []any {
	var run any
	if u.RunID != 0 {
		run = u.RunID
	}
	return []any{u.Dataset, timeArg(u.At), run, u.Pipeline, u.TaskID, timeArg(u.IntervalStart), timeArg(u.IntervalEnd),
		u.Actor, jsonArg(u.Metadata)}
}

func scanDatasetUpdate(row scanner) (store.DatasetUpdate, error) {
	var u store.DatasetUpdate
	var run sql.NullInt64
	err := row.Scan(&u.ID, &u.Dataset, timeCol{&u.At}, &run, &u.Pipeline, &u.TaskID, timeCol{&u.IntervalStart},
		timeCol{&u.IntervalEnd}, &u.Actor, jsonCol{&u.Metadata})
	u.RunID = run.Int64
	return u, err
}

// RecordDatasetUpdate inserts one update.
func (db *DB) RecordDatasetUpdate(ctx context.Context, u store.DatasetUpdate) (store.DatasetUpdate, error) {
	if err := store.PrepareDatasetUpdate(&u); err != nil {
		return store.DatasetUpdate{}, fmt.Errorf("record update of dataset %q: %w", u.Dataset, err)
	}
	if err := db.w.QueryRowContext(ctx, insertDatasetUpdateSQL, datasetUpdateArgs(&u)...).Scan(&u.ID); err != nil {
		return store.DatasetUpdate{}, fmt.Errorf("record update of dataset %q: %w", u.Dataset, err)
	}
	return u, nil
}

// DatasetUpdates reads one page. The query names its index, as ListRuns
// does: without statistics SQLite might read the (dataset, id) index
// backwards through a dataset's whole history to find the few updates since
// a time.
func (db *DB) DatasetUpdates(ctx context.Context, f store.DatasetUpdateFilter) ([]store.DatasetUpdate, error) {
	if f.Dataset == "" {
		return nil, errors.New("dataset updates: no dataset given")
	}
	q, args := datasetUpdatesQuery(f)
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("updates of dataset %q: %w", f.Dataset, err)
	}
	return collect(rows, fmt.Sprintf("updates of dataset %q", f.Dataset), scanDatasetUpdate)
}

func datasetUpdatesQuery(f store.DatasetUpdateFilter) (string, []any) {
	limit := f.Limit
	if limit <= 0 {
		limit = store.DefaultDatasetUpdatesLimit
	}
	limit = min(limit, store.MaxDatasetUpdatesLimit)
	before := f.BeforeID
	if before <= 0 {
		before = 1<<63 - 1
	}
	index := "dataset_updates_by_dataset"
	q := ` WHERE dataset = ?`
	args := []any{f.Dataset}
	if !f.Since.IsZero() {
		index = "dataset_updates_by_at"
		q += ` AND at >= ?`
		args = append(args, f.Since.UnixMicro())
	}
	q += ` AND id < ?`
	args = append(args, before)
	if f.AfterID > 0 {
		q += ` AND id > ?`
		args = append(args, f.AfterID)
	}
	order := ` ORDER BY id DESC LIMIT ?`
	if f.Ascending {
		order = ` ORDER BY id ASC LIMIT ?`
	}
	return `SELECT ` + datasetUpdateCols + ` FROM dataset_updates INDEXED BY ` + index + q + order, append(args, limit)
}

// latestNamedSQL finds the newest update of each dataset of a JSON array of
// names: one backwards step into the (dataset, id) index per name.
const latestNamedSQL = `SELECT ` + datasetUpdateCols + ` FROM dataset_updates WHERE id IN (
	SELECT (SELECT id FROM dataset_updates INDEXED BY dataset_updates_by_dataset
		WHERE dataset = n.value ORDER BY id DESC LIMIT 1)
	FROM json_each(?) AS n)`

// latestAllSQL finds the datasets by skipping through the (dataset, id)
// index from one name to the next (a loose index scan, which SQLite does
// not do by itself for a GROUP BY), then the newest update of each.
const latestAllSQL = `WITH RECURSIVE d(name) AS (
	SELECT (SELECT dataset FROM dataset_updates INDEXED BY dataset_updates_by_dataset ORDER BY dataset LIMIT 1)
	UNION ALL
	SELECT (SELECT dataset FROM dataset_updates INDEXED BY dataset_updates_by_dataset
		WHERE dataset > d.name ORDER BY dataset LIMIT 1) FROM d WHERE d.name IS NOT NULL
)
SELECT ` + datasetUpdateCols + ` FROM dataset_updates WHERE id IN (
	SELECT (SELECT id FROM dataset_updates INDEXED BY dataset_updates_by_dataset
		WHERE dataset = d.name ORDER BY id DESC LIMIT 1)
	FROM d WHERE d.name IS NOT NULL)`

// LatestDatasetUpdates reads the newest update of each dataset.
func (db *DB) LatestDatasetUpdates(ctx context.Context, names []string) (map[string]store.DatasetUpdate, error) {
	q, args := latestAllSQL, []any(nil)
	if len(names) > 0 {
		want := store.DatasetNames(names)
		if len(want) == 0 {
			return map[string]store.DatasetUpdate{}, nil
		}
		list, err := json.Marshal(want)
		if err != nil {
			return nil, fmt.Errorf("latest dataset updates: %w", err)
		}
		q, args = latestNamedSQL, []any{string(list)}
	}
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("latest dataset updates: %w", err)
	}
	us, err := collect(rows, "latest dataset updates", scanDatasetUpdate)
	if err != nil {
		return nil, err
	}
	out := make(map[string]store.DatasetUpdate, len(us))
	for _, u := range us {
		out[u.Dataset] = u
	}
	return out, nil
}

package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// Leases of map items (store.MapLeases): a row per hand-out, its units as
// JSON, written with one set-based upsert whatever their number.

const putMapLeasesSQL = `INSERT INTO map_leases (run_id, idx, id, worker, started_at, units)
	SELECT u.run_id, u.idx, u.id, u.worker, u.started_at, u.units::jsonb
	FROM unnest($1::bigint[], $2::int4[], $3::text[], $4::text[], $5::timestamptz[], $6::text[])
		AS u(run_id, idx, id, worker, started_at, units)
	ON CONFLICT (run_id, idx, id) DO UPDATE SET worker = excluded.worker, started_at = excluded.started_at,
		units = excluded.units
	WHERE map_leases.started_at <= excluded.started_at`

// PutMapLeases writes the hand-outs in one statement (one transaction).
// A hand-out given twice is written as its last.
func (db *DB) PutMapLeases(ctx context.Context, leases []store.MapLease) error {
	if len(leases) == 0 {
		return nil
	}
	type key struct {
		run int64
		idx int
		id  string
	}
	pos := make(map[key]int, len(leases))
	n := len(leases)
	runs, idxs := make([]int64, 0, n), make([]int32, 0, n)
	ids, workers, units := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	starts := make([]time.Time, 0, n)
	for i := range leases {
		l := &leases[i]
		if err := store.CheckMapLease(l); err != nil {
			return fmt.Errorf("record map leases: %w", err)
		}
		b, err := json.Marshal(l.Units)
		if err != nil {
			return fmt.Errorf("record map leases: %w", err)
		}
		k := key{l.RunID, l.Index, l.ID}
		if j, ok := pos[k]; ok {
			if !store.NormTime(l.StartedAt).Before(starts[j]) {
				workers[j], starts[j], units[j] = l.Worker, store.NormTime(l.StartedAt), string(b)
			}
			continue
		}
		pos[k] = len(ids)
		runs, idxs = append(runs, l.RunID), append(idxs, int32(l.Index))
		ids, workers, units = append(ids, l.ID), append(workers, l.Worker), append(units, string(b))
		starts = append(starts, store.NormTime(l.StartedAt))
	}
	if _, err := db.pool.Exec(ctx, putMapLeasesSQL, runs, idxs, ids, workers, starts, units); err != nil {
		if e := pgErr(err); e != nil && e.Code == sqlstateForeignKeyViolation {
			err = fmt.Errorf("never expanded: %w", store.ErrNotFound)
		}
		return fmt.Errorf("record %d map leases: %w", len(leases), err)
	}
	return nil
}

// MapLeases reads one map's hand-outs by their key.
func (db *DB) MapLeases(ctx context.Context, runID int64, index int) ([]store.MapLease, error) {
	rows, err := db.pool.Query(ctx, `SELECT run_id, idx, id, worker, started_at, units::text FROM map_leases
		WHERE run_id = $1 AND idx = $2 ORDER BY id`, runID, index)
	if err != nil {
		return nil, fmt.Errorf("map leases of map %d of run %d: %w", index, runID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.MapLease, error) {
		var l store.MapLease
		var units string
		if err := row.Scan(&l.RunID, &l.Index, &l.ID, &l.Worker, timeCol{&l.StartedAt}, &units); err != nil {
			return l, err
		}
		return l, json.Unmarshal([]byte(units), &l.Units)
	})
	if err != nil {
		return nil, fmt.Errorf("map leases of map %d of run %d: %w", index, runID, err)
	}
	if out == nil {
		out = []store.MapLease{}
	}
	return out, nil
}

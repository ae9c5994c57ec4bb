package sqlite

import (
	"context"
	"encoding/json"
	"fmt"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// Leases of map items (store.MapLeases): a row per hand-out, its units as
// JSON.

const putMapLeaseSQL = `INSERT INTO map_leases (run_id, idx, id, worker, started_at, units) VALUES (?,?,?,?,?,?)
	ON CONFLICT (run_id, idx, id) DO UPDATE SET worker = excluded.worker, started_at = excluded.started_at,
	units = excluded.units
	WHERE map_leases.started_at <= excluded.started_at`

// PutMapLeases writes the hand-outs in one transaction on the writer.
func (db *DB) PutMapLeases(ctx context.Context, leases []store.MapLease) error {
	if len(leases) == 0 {
		return nil
	}
	units := make([]string, len(leases))
	for i := range leases {
		if err := store.CheckMapLease(&leases[i]); err != nil {
			return fmt.Errorf("record map leases: %w", err)
		}
		b, err := json.Marshal(leases[i].Units)
		if err != nil {
			return fmt.Errorf("record map leases: %w", err)
		}
		units[i] = string(b)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record %d map leases: %w", len(leases), err)
	}
	defer tx.Rollback()
	put, err := tx.PrepareContext(ctx, putMapLeaseSQL)
	if err != nil {
		return fmt.Errorf("record %d map leases: %w", len(leases), err)
	}
	defer put.Close()
	for i := range leases {
		l := &leases[i]
		if _, err := put.ExecContext(ctx, l.RunID, l.Index, l.ID, l.Worker, l.StartedAt.UnixMicro(), units[i]); err != nil {
			if code(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
				err = fmt.Errorf("map %d of run %d: never expanded: %w", l.Index, l.RunID, store.ErrNotFound)
			}
			return fmt.Errorf("record map lease %s: %w", l.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record %d map leases: commit: %w", len(leases), err)
	}
	return nil
}

// MapLeases reads one map's hand-outs by their key.
func (db *DB) MapLeases(ctx context.Context, runID int64, index int) ([]store.MapLease, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT run_id, idx, id, worker, started_at, units FROM map_leases
		WHERE run_id = ? AND idx = ? ORDER BY id`, runID, index)
	if err != nil {
		return nil, fmt.Errorf("map leases of map %d of run %d: %w", index, runID, err)
	}
	out, err := collect(rows, fmt.Sprintf("map leases of map %d of run %d", index, runID), func(row scanner) (store.MapLease, error) {
		var l store.MapLease
		var units []byte
		if err := row.Scan(&l.RunID, &l.Index, &l.ID, &l.Worker, timeCol{&l.StartedAt}, &units); err != nil {
			return l, err
		}
		return l, json.Unmarshal(units, &l.Units)
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []store.MapLease{}
	}
	return out, nil
}

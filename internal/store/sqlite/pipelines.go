package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// The pipeline registry and schedule state: one row per pipeline name in the
// pipelines table. The registry columns (version, file, error, removed) are
// written by PutPipelineState, each schedule column by its own method, so a
// reload of the file and a tick of the scheduler never overwrite each other.

const pipelineCols = `name, version_id, file, error, removed, paused, next_fire, last_interval_end, dataset_cursor, updated_at`

func scanPipeline(row scanner) (store.PipelineState, error) {
	var ps store.PipelineState
	var version sql.NullInt64
	var cursor json.RawMessage
	err := row.Scan(&ps.Name, &version, &ps.File, &ps.Error, boolCol{&ps.Removed}, boolCol{&ps.Paused},
		timeCol{&ps.NextFire}, timeCol{&ps.LastIntervalEnd}, jsonCol{&cursor}, timeCol{&ps.UpdatedAt})
	if err != nil {
		return ps, err
	}
	ps.VersionID = version.Int64
	ps.DatasetCursor, err = store.DecodeCursor(cursor)
	return ps, err
}

// PutPipelineState upserts the registry columns of ps.Name. A given version
// must exist and belong to the same pipeline: a run started from the registry
// would otherwise run another pipeline's file.
func (db *DB) PutPipelineState(ctx context.Context, ps store.PipelineState) error {
	if ps.Name == "" {
		return errors.New("put pipeline state: empty pipeline name")
	}
	if ps.VersionID < 0 {
		return fmt.Errorf("put state of pipeline %q: invalid version id %d", ps.Name, ps.VersionID)
	}
	if ps.UpdatedAt.IsZero() {
		ps.UpdatedAt = time.Now()
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("put state of pipeline %q: %w", ps.Name, err)
	}
	defer tx.Rollback()
	var version any
	if ps.VersionID != 0 {
		version = ps.VersionID
		var owner string
		err := tx.QueryRowContext(ctx, `SELECT pipeline FROM pipeline_versions WHERE id = ?`, ps.VersionID).Scan(&owner)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("put state of pipeline %q: pipeline version %d: %w", ps.Name, ps.VersionID, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("put state of pipeline %q: look up version %d: %w", ps.Name, ps.VersionID, err)
		}
		if owner != ps.Name {
			return fmt.Errorf("put state of pipeline %q: version %d is a version of pipeline %q", ps.Name, ps.VersionID, owner)
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO pipelines (name, version_id, file, error, removed, updated_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET
		version_id = coalesce(excluded.version_id, pipelines.version_id),
		file       = excluded.file,
		error      = excluded.error,
		removed    = excluded.removed,
		updated_at = excluded.updated_at`,
		ps.Name, version, store.Text(ps.File), store.Text(ps.Error), boolArg(ps.Removed), timeArg(ps.UpdatedAt))
	if err != nil {
		return fmt.Errorf("put state of pipeline %q: %w", ps.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("put state of pipeline %q: commit: %w", ps.Name, err)
	}
	return nil
}

// PipelineState returns the registry row of pipeline name.
func (db *DB) PipelineState(ctx context.Context, name string) (store.PipelineState, error) {
	ps, err := scanPipeline(db.r.QueryRowContext(ctx, `SELECT `+pipelineCols+` FROM pipelines WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return store.PipelineState{}, fmt.Errorf("state of pipeline %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.PipelineState{}, fmt.Errorf("state of pipeline %q: %w", name, err)
	}
	return ps, nil
}

// PipelineStates returns every registry row by name (the primary key order).
func (db *DB) PipelineStates(ctx context.Context) ([]store.PipelineState, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+pipelineCols+` FROM pipelines ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("pipeline states: %w", err)
	}
	return collect(rows, "pipeline states", scanPipeline)
}

// SetPaused sets the paused flag of pipeline name.
func (db *DB) SetPaused(ctx context.Context, name string, paused bool) error {
	res, err := db.w.ExecContext(ctx, `UPDATE pipelines SET paused = ?, updated_at = ? WHERE name = ?`,
		boolArg(paused), time.Now().UnixMicro(), name)
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("set paused=%v on pipeline %q: %w", paused, name, err)
	}
	return nil
}

// SetNextFire sets the next fire time of pipeline name unconditionally.
func (db *DB) SetNextFire(ctx context.Context, name string, next time.Time) error {
	res, err := db.w.ExecContext(ctx, `UPDATE pipelines SET next_fire = ?, updated_at = ? WHERE name = ?`,
		timeArg(next), time.Now().UnixMicro(), name)
	if err := affectedOne(res, err); err != nil {
		return fmt.Errorf("set next fire time of pipeline %q: %w", name, err)
	}
	return nil
}

// AdvanceSchedule moves the schedule of pipeline name from expect to next
// (compare-and-set) in its own transaction.
func (db *DB) AdvanceSchedule(ctx context.Context, name string, expect, next, lastEnd time.Time) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("advance schedule of pipeline %q: %w", name, err)
	}
	defer tx.Rollback()
	if err := advanceSchedule(ctx, tx, name, expect, next, lastEnd, false); err != nil {
		return fmt.Errorf("advance schedule of pipeline %q: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("advance schedule of pipeline %q: commit: %w", name, err)
	}
	return nil
}

// advanceSchedule is the compare-and-set on next_fire that makes each tick
// fire once: one UPDATE whose WHERE compares the stored value (IS, so an
// unset NULL matches the zero time) and, for a run, that the pipeline is not
// paused. When it changes no row it tells a missing pipeline (ErrNotFound)
// from a lost race (ErrConflict).
func advanceSchedule(ctx context.Context, tx *sql.Tx, name string, expect, next, lastEnd time.Time, unpaused bool) error {
	q := `UPDATE pipelines SET next_fire = ?, last_interval_end = coalesce(?, last_interval_end), updated_at = ?
		WHERE name = ? AND next_fire IS ?`
	if unpaused {
		q += ` AND paused = 0`
	}
	res, err := tx.ExecContext(ctx, q, timeArg(next), timeArg(lastEnd), time.Now().UnixMicro(), name, timeArg(expect))
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 1 {
		return nil
	}
	var stored sql.NullInt64
	var paused bool
	err = tx.QueryRowContext(ctx, `SELECT next_fire, paused FROM pipelines WHERE name = ?`, name).Scan(&stored, boolCol{&paused})
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("pipeline state: %w", store.ErrNotFound)
	}
	if err != nil {
		return err
	}
	var got time.Time
	if stored.Valid {
		got = time.UnixMicro(stored.Int64).UTC()
	}
	if !got.Equal(store.NormTime(expect)) {
		return fmt.Errorf("next fire time is %s, not %s: %w", fmtFire(got), fmtFire(expect), store.ErrConflict)
	}
	return fmt.Errorf("the pipeline is paused: %w", store.ErrConflict)
}

// SetDatasetCursor moves the dataset cursor of pipeline name from expect to
// next (compare-and-set) in one statement.
func (db *DB) SetDatasetCursor(ctx context.Context, name string, expect, next map[string]int64) error {
	exp, err := store.EncodeCursor(expect)
	if err != nil {
		return fmt.Errorf("set dataset cursor of pipeline %q: expected cursor: %w", name, err)
	}
	nxt, err := store.EncodeCursor(next)
	if err != nil {
		return fmt.Errorf("set dataset cursor of pipeline %q: next cursor: %w", name, err)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("set dataset cursor of pipeline %q: %w", name, err)
	}
	defer tx.Rollback()
	if err := advanceCursor(ctx, tx, name, exp, nxt, false); err != nil {
		return fmt.Errorf("set dataset cursor of pipeline %q: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("set dataset cursor of pipeline %q: commit: %w", name, err)
	}
	return nil
}

// advanceCursor is the compare-and-set on dataset_cursor that makes each set
// of dataset updates start one run: like advanceSchedule, one UPDATE whose
// WHERE compares the stored cursor with the expected one (both canonical
// text, see store.EncodeCursor; IS, so NULL matches an unset cursor) and,
// for a run, that the pipeline is not paused.
func advanceCursor(ctx context.Context, tx *sql.Tx, name string, expect, next []byte, unpaused bool) error {
	q := `UPDATE pipelines SET dataset_cursor = ?, updated_at = ? WHERE name = ? AND dataset_cursor IS ?`
	if unpaused {
		q += ` AND paused = 0`
	}
	res, err := tx.ExecContext(ctx, q, jsonArg(next), time.Now().UnixMicro(), name, jsonArg(expect))
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 1 {
		return nil
	}
	var stored json.RawMessage
	var paused bool
	err = tx.QueryRowContext(ctx, `SELECT dataset_cursor, paused FROM pipelines WHERE name = ?`, name).Scan(jsonCol{&stored}, boolCol{&paused})
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("pipeline state: %w", store.ErrNotFound)
	}
	if err != nil {
		return err
	}
	if string(stored) != string(expect) {
		return fmt.Errorf("dataset cursor is %s, not %s: %w", store.FormatCursor(stored), store.FormatCursor(expect), store.ErrConflict)
	}
	return fmt.Errorf("the pipeline is paused: %w", store.ErrConflict)
}

func fmtFire(t time.Time) string {
	if t.IsZero() {
		return "unset"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

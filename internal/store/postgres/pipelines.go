package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// Pipeline versions, the pipeline registry and schedule state: one row per
// pipeline name in the pipelines table. The registry columns (version, file,
// error, removed) are written by PutPipelineState, each schedule column by
// its own method, so a reload of the file and a tick of the scheduler never
// overwrite each other.

const versionCols = `id, pipeline, hash, file, source, created_at`

func scanVersion(row pgx.Row) (store.PipelineVersion, error) {
	var v store.PipelineVersion
	err := row.Scan(&v.ID, &v.Pipeline, &v.Hash, &v.File, &v.Source, timeCol{&v.CreatedAt})
	return v, err
}

// PutPipelineVersion stores v by the SHA-256 of its Source. v.Hash may be
// empty (it is computed) but must match Source when given. Two servers
// loading the same file at once store it once: the insert does nothing on a
// hash that exists, and the existing row is read back.
func (db *DB) PutPipelineVersion(ctx context.Context, v store.PipelineVersion) (store.PipelineVersion, error) {
	sum := sha256.Sum256(v.Source)
	hash := hex.EncodeToString(sum[:])
	if v.Hash != "" && !strings.EqualFold(v.Hash, hash) {
		return store.PipelineVersion{}, fmt.Errorf("put version of pipeline %q: hash %s does not match the source (sha256 %s)", v.Pipeline, v.Hash, hash)
	}
	if v.Pipeline == "" {
		return store.PipelineVersion{}, errors.New("put pipeline version: empty pipeline name")
	}
	v.Hash = hash
	if v.Source == nil {
		v.Source = []byte{}
	}
	if v.CreatedAt.IsZero() {
		v.CreatedAt = time.Now()
	}
	v.CreatedAt = store.NormTime(v.CreatedAt)
	for range 2 {
		err := db.pool.QueryRow(ctx, `INSERT INTO pipeline_versions (pipeline, hash, file, source, created_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hash) DO NOTHING RETURNING id`,
			v.Pipeline, v.Hash, v.File, v.Source, v.CreatedAt).Scan(&v.ID)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return store.PipelineVersion{}, fmt.Errorf("put version of pipeline %q: %w", v.Pipeline, err)
		}
		old, err := scanVersion(db.pool.QueryRow(ctx, `SELECT `+versionCols+` FROM pipeline_versions WHERE hash = $1`, hash))
		if err == nil {
			return old, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return store.PipelineVersion{}, fmt.Errorf("put version of pipeline %q: look up hash: %w", v.Pipeline, err)
		}
		// The conflicting row was not committed after all: insert again.
	}
	return store.PipelineVersion{}, fmt.Errorf("put version of pipeline %q: hash %s neither inserted nor found", v.Pipeline, hash)
}

// PipelineVersion returns the stored version id.
func (db *DB) PipelineVersion(ctx context.Context, id int64) (store.PipelineVersion, error) {
	v, err := scanVersion(db.pool.QueryRow(ctx, `SELECT `+versionCols+` FROM pipeline_versions WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.PipelineVersion{}, fmt.Errorf("pipeline version %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.PipelineVersion{}, fmt.Errorf("pipeline version %d: %w", id, err)
	}
	return v, nil
}

const pipelineCols = `name, version_id, file, error, removed, paused, next_fire, last_interval_end,
	dataset_cursor::text, updated_at`

func scanPipeline(row pgx.Row) (store.PipelineState, error) {
	var ps store.PipelineState
	var version *int64
	var cursor json.RawMessage
	err := row.Scan(&ps.Name, &version, &ps.File, &ps.Error, &ps.Removed, &ps.Paused,
		timeCol{&ps.NextFire}, timeCol{&ps.LastIntervalEnd}, jsonCol{&cursor}, timeCol{&ps.UpdatedAt})
	if err != nil {
		return ps, err
	}
	if version != nil {
		ps.VersionID = *version
	}
	ps.DatasetCursor, err = store.DecodeCursor(cursor)
	return ps, err
}

// PutPipelineState upserts the registry columns of ps.Name in one statement
// that also checks the version: it must exist and belong to the same
// pipeline, or a run started from the registry would run another pipeline's
// file. When the check fails nothing is written, and a second query tells
// why.
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
	var version any
	if ps.VersionID != 0 {
		version = ps.VersionID
	}
	// The SELECT yields no row when the version is given but is not one of
	// this pipeline's, and the INSERT then writes nothing.
	tag, err := db.pool.Exec(ctx, `INSERT INTO pipelines (name, version_id, file, error, removed, updated_at)
		SELECT $1::text, $2::bigint, $3::text, $4::text, $5::boolean, $6::timestamptz
		WHERE $2::bigint IS NULL OR EXISTS (SELECT 1 FROM pipeline_versions WHERE id = $2::bigint AND pipeline = $1)
		ON CONFLICT (name) DO UPDATE SET
		version_id = coalesce(excluded.version_id, pipelines.version_id),
		file       = excluded.file,
		error      = excluded.error,
		removed    = excluded.removed,
		updated_at = excluded.updated_at`,
		ps.Name, version, store.Text(ps.File), store.Text(ps.Error), ps.Removed, ps.UpdatedAt)
	if err != nil {
		return fmt.Errorf("put state of pipeline %q: %w", ps.Name, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var owner string
	err = db.pool.QueryRow(ctx, `SELECT pipeline FROM pipeline_versions WHERE id = $1`, ps.VersionID).Scan(&owner)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("put state of pipeline %q: pipeline version %d: %w", ps.Name, ps.VersionID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("put state of pipeline %q: look up version %d: %w", ps.Name, ps.VersionID, err)
	case owner != ps.Name:
		return fmt.Errorf("put state of pipeline %q: version %d is a version of pipeline %q", ps.Name, ps.VersionID, owner)
	}
	return fmt.Errorf("put state of pipeline %q: nothing written", ps.Name)
}

// PipelineState returns the registry row of pipeline name.
func (db *DB) PipelineState(ctx context.Context, name string) (store.PipelineState, error) {
	ps, err := scanPipeline(db.pool.QueryRow(ctx, `SELECT `+pipelineCols+` FROM pipelines WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.PipelineState{}, fmt.Errorf("state of pipeline %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.PipelineState{}, fmt.Errorf("state of pipeline %q: %w", name, err)
	}
	return ps, nil
}

// PipelineStates returns every registry row by name, in byte order (the
// column's "C" collation, as SQLite sorts).
func (db *DB) PipelineStates(ctx context.Context) ([]store.PipelineState, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+pipelineCols+` FROM pipelines ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("pipeline states: %w", err)
	}
	defer rows.Close()
	var out []store.PipelineState
	for rows.Next() {
		ps, err := scanPipeline(rows)
		if err != nil {
			return nil, fmt.Errorf("pipeline states: %w", err)
		}
		out = append(out, ps)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pipeline states: %w", err)
	}
	return out, nil
}

// SetPaused sets the paused flag of pipeline name.
func (db *DB) SetPaused(ctx context.Context, name string, paused bool) error {
	tag, err := db.pool.Exec(ctx, `UPDATE pipelines SET paused = $1, updated_at = $2 WHERE name = $3`,
		paused, time.Now(), name)
	if err := affectedOne(tag, err); err != nil {
		return fmt.Errorf("set paused=%v on pipeline %q: %w", paused, name, err)
	}
	return nil
}

// SetNextFire sets the next fire time of pipeline name unconditionally.
func (db *DB) SetNextFire(ctx context.Context, name string, next time.Time) error {
	tag, err := db.pool.Exec(ctx, `UPDATE pipelines SET next_fire = $1, updated_at = $2 WHERE name = $3`,
		timeArg(next), time.Now(), name)
	if err := affectedOne(tag, err); err != nil {
		return fmt.Errorf("set next fire time of pipeline %q: %w", name, err)
	}
	return nil
}

// AdvanceSchedule moves the schedule of pipeline name from expect to next
// (compare-and-set) in one statement.
func (db *DB) AdvanceSchedule(ctx context.Context, name string, expect, next, lastEnd time.Time) error {
	row := db.pool.QueryRow(ctx, advanceSQL(false), advanceArgs(name, expect, next, lastEnd)...)
	if err := scanAdvance(row, expect); err != nil {
		return fmt.Errorf("advance schedule of pipeline %q: %w", name, err)
	}
	return nil
}

// advanceSQL is the compare-and-set on next_fire that makes each tick fire
// once: an UPDATE whose WHERE compares the stored value (IS NOT DISTINCT
// FROM, so an unset NULL matches the zero time) and, for a run (unpaused),
// that the pipeline is not paused. Under concurrency PostgreSQL waits for
// the row lock of a writer that got there first and evaluates the WHERE
// again on the row it committed, so exactly one of several racing writers
// succeeds. The statement also returns what it saw, so a failure tells a
// missing pipeline (ErrNotFound) from a lost race (ErrConflict) without a
// second round trip.
func advanceSQL(unpaused bool) string {
	cond := ""
	if unpaused {
		cond = ` AND NOT paused`
	}
	return `WITH cur AS (SELECT next_fire, paused FROM pipelines WHERE name = $1),
		upd AS (UPDATE pipelines SET next_fire = $2, last_interval_end = coalesce($3, last_interval_end), updated_at = $4
			WHERE name = $1 AND next_fire IS NOT DISTINCT FROM $5::timestamptz` + cond + ` RETURNING 1)
		SELECT (SELECT count(*) FROM upd), EXISTS (SELECT 1 FROM cur), (SELECT next_fire FROM cur),
			coalesce((SELECT paused FROM cur), false)`
}

func advanceArgs(name string, expect, next, lastEnd time.Time) []any {
	return []any{name, timeArg(next), timeArg(lastEnd), time.Now(), timeArg(expect)}
}

// scanAdvance reads the result of advanceSQL.
func scanAdvance(row pgx.Row, expect time.Time) error {
	var updated int64
	var exists, paused bool
	var stored time.Time
	if err := row.Scan(&updated, &exists, timeCol{&stored}, &paused); err != nil {
		return err
	}
	switch {
	case updated == 1:
		return nil
	case !exists:
		return fmt.Errorf("pipeline state: %w", store.ErrNotFound)
	case !stored.Equal(store.NormTime(expect)):
		return fmt.Errorf("next fire time is %s, not %s: %w", fmtFire(stored), fmtFire(expect), store.ErrConflict)
	case paused:
		return fmt.Errorf("the pipeline is paused: %w", store.ErrConflict)
	}
	// What this statement saw matched, but a writer that committed while it
	// waited for the row changed it.
	return fmt.Errorf("the schedule changed concurrently: %w", store.ErrConflict)
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
	row := db.pool.QueryRow(ctx, cursorSQL(false), cursorArgs(name, exp, nxt)...)
	if err := scanCursor(row, exp); err != nil {
		return fmt.Errorf("set dataset cursor of pipeline %q: %w", name, err)
	}
	return nil
}

// cursorSQL is the compare-and-set on dataset_cursor that makes each set of
// dataset updates start one run, built as advanceSQL is: jsonb compares by
// value (IS NOT DISTINCT FROM, so NULL matches an unset cursor), a writer
// that waited for another's row lock re-evaluates the WHERE on the row that
// one committed, and the statement returns what it saw.
func cursorSQL(unpaused bool) string {
	cond := ""
	if unpaused {
		cond = ` AND NOT paused`
	}
	return `WITH cur AS (SELECT dataset_cursor, paused FROM pipelines WHERE name = $1),
		upd AS (UPDATE pipelines SET dataset_cursor = $2::jsonb, updated_at = $3
			WHERE name = $1 AND dataset_cursor IS NOT DISTINCT FROM $4::jsonb` + cond + ` RETURNING 1)
		SELECT (SELECT count(*) FROM upd), EXISTS (SELECT 1 FROM cur), (SELECT dataset_cursor::text FROM cur),
			coalesce((SELECT paused FROM cur), false)`
}

// cursorArgs are the parameters of cursorSQL: expect and next are
// store.EncodeCursor's (nil: unset).
func cursorArgs(name string, expect, next []byte) []any {
	return []any{name, jsonArg(next), time.Now(), jsonArg(expect)}
}

// scanCursor reads the result of cursorSQL.
func scanCursor(row pgx.Row, expect []byte) error {
	var updated int64
	var exists, paused bool
	var raw json.RawMessage
	if err := row.Scan(&updated, &exists, jsonCol{&raw}, &paused); err != nil {
		return err
	}
	if updated == 1 {
		return nil
	}
	if !exists {
		return fmt.Errorf("pipeline state: %w", store.ErrNotFound)
	}
	// jsonb's text is not store.EncodeCursor's: encode it the same way.
	stored, err := store.DecodeCursor(raw)
	if err != nil {
		return err
	}
	got, err := store.EncodeCursor(stored)
	if err != nil {
		return err
	}
	switch {
	case string(got) != string(expect):
		return fmt.Errorf("dataset cursor is %s, not %s: %w", store.FormatCursor(got), store.FormatCursor(expect), store.ErrConflict)
	case paused:
		return fmt.Errorf("the pipeline is paused: %w", store.ErrConflict)
	}
	return fmt.Errorf("the dataset cursor changed concurrently: %w", store.ErrConflict)
}

func fmtFire(t time.Time) string {
	if t.IsZero() {
		return "unset"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

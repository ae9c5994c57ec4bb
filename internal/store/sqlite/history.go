package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// PipelineVersions reads the (pipeline, id DESC) index from the cursor;
// the source column is not read.
func (db *DB) PipelineVersions(ctx context.Context, pipeline string, beforeID int64, limit int) ([]store.PipelineVersion, error) {
	if limit <= 0 {
		limit = store.DefaultVersionsLimit
	}
	limit = min(limit, store.MaxVersionsLimit)
	if beforeID <= 0 {
		beforeID = 1<<63 - 1
	}
	rows, err := db.r.QueryContext(ctx, `SELECT id, pipeline, hash, file, created_at
		FROM pipeline_versions INDEXED BY pipeline_versions_by_pipeline
		WHERE pipeline = ? AND id < ? ORDER BY id DESC LIMIT ?`, pipeline, beforeID, limit)
	if err != nil {
		return nil, fmt.Errorf("list versions of pipeline %q: %w", pipeline, err)
	}
	defer rows.Close()
	out := []store.PipelineVersion{}
	for rows.Next() {
		var v store.PipelineVersion
		if err := rows.Scan(&v.ID, &v.Pipeline, &v.Hash, &v.File, timeCol{&v.CreatedAt}); err != nil {
			return nil, fmt.Errorf("list versions of pipeline %q: %w", pipeline, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list versions of pipeline %q: %w", pipeline, err)
	}
	return out, nil
}

// runDaysLate is a run that succeeded after its deadline (the watcher
// said so, or it finished after it). NULLs count as on time.
const runDaysLate = `(r.deadline_state = 'missed' OR coalesce(r.finished_at > r.deadline, 0))`

// RunDays joins the days, a VALUES table of bounds, with the runs of each
// day read from runs_by_pipeline_created, and counts them in one pass.
func (db *DB) RunDays(ctx context.Context, pipeline string, from, to time.Time, loc *time.Location) ([]store.RunDay, error) {
	bounds, err := store.DayBounds(from, to, loc)
	if err != nil {
		return nil, fmt.Errorf("run days of %q: %w", pipeline, err)
	}
	days := make([]store.RunDay, len(bounds)-1)
	values := make([]string, len(days))
	args := make([]any, 0, 3*len(days)+1)
	for i := range days {
		days[i].Day = bounds[i]
		values[i] = "(?, ?, ?)"
		args = append(args, i, bounds[i].UnixMicro(), bounds[i+1].UnixMicro())
	}
	args = append(args, pipeline)
	q := `WITH days (i, lo, hi) AS (VALUES ` + strings.Join(values, ", ") + `)
		SELECT d.i,
			sum(r.state = 'succeeded' AND NOT ` + runDaysLate + `),
			sum(r.state = 'succeeded' AND ` + runDaysLate + `),
			sum(r.state = 'failed'),
			sum(r.state = 'cancelled'),
			sum(r.state IN ('queued', 'running'))
		FROM days d CROSS JOIN runs r INDEXED BY runs_by_pipeline_created
		WHERE r.pipeline = ? AND r.created_at >= d.lo AND r.created_at < d.hi
		GROUP BY d.i`
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("run days of %q: %w", pipeline, err)
	}
	defer rows.Close()
	for rows.Next() {
		var i int
		var d store.RunDay
		if err := rows.Scan(&i, &d.Met, &d.Late, &d.Failed, &d.Cancelled, &d.Running); err != nil {
			return nil, fmt.Errorf("run days of %q: %w", pipeline, err)
		}
		d.Day = days[i].Day
		days[i] = d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("run days of %q: %w", pipeline, err)
	}
	return days, nil
}

package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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
	rows, err := db.pool.Query(ctx, `SELECT id, pipeline, hash, file, created_at FROM pipeline_versions
		WHERE pipeline = $1 AND id < $2 ORDER BY id DESC LIMIT $3`, pipeline, beforeID, limit)
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
const runDaysLate = `(r.deadline_state = 'missed' OR coalesce(r.finished_at > r.deadline, false))`

// RunDays joins the days, a VALUES table of bounds, with the runs of each
// day read from runs_by_pipeline_created, and counts them in one pass.
func (db *DB) RunDays(ctx context.Context, pipeline string, from, to time.Time, loc *time.Location) ([]store.RunDay, error) {
	bounds, err := store.DayBounds(from, to, loc)
	if err != nil {
		return nil, fmt.Errorf("run days of %q: %w", pipeline, err)
	}
	days := make([]store.RunDay, len(bounds)-1)
	var p params
	values := make([]string, len(days))
	for i := range days {
		days[i].Day = bounds[i]
		values[i] = "(" + p.add(int32(i)) + "::int, " + p.add(bounds[i].UTC()) + "::timestamptz, " + p.add(bounds[i+1].UTC()) + "::timestamptz)"
	}
	q := `SELECT d.i,
			count(*) FILTER (WHERE r.state = 'succeeded' AND NOT ` + runDaysLate + `),
			count(*) FILTER (WHERE r.state = 'succeeded' AND ` + runDaysLate + `),
			count(*) FILTER (WHERE r.state = 'failed'),
			count(*) FILTER (WHERE r.state = 'cancelled'),
			count(*) FILTER (WHERE r.state IN ('queued', 'running'))
		FROM (VALUES ` + strings.Join(values, ", ") + `) AS d (i, lo, hi)
		JOIN runs r ON r.pipeline = ` + p.add(pipeline) + ` AND r.created_at >= d.lo AND r.created_at < d.hi
		GROUP BY d.i`
	rows, err := db.pool.Query(ctx, q, append([]any{pgx.QueryExecModeExec}, p.args...)...)
	if err != nil {
		return nil, fmt.Errorf("run days of %q: %w", pipeline, err)
	}
	defer rows.Close()
	for rows.Next() {
		var i int32
		var met, late, failed, cancelled, running int64
		if err := rows.Scan(&i, &met, &late, &failed, &cancelled, &running); err != nil {
			return nil, fmt.Errorf("run days of %q: %w", pipeline, err)
		}
		days[i].Met, days[i].Late, days[i].Failed, days[i].Cancelled, days[i].Running = int(met), int(late), int(failed), int(cancelled), int(running)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("run days of %q: %w", pipeline, err)
	}
	return days, nil
}

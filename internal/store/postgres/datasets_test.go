package postgres

import (
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// TestDatasetQueriesReadLittle checks that the dataset reads cost the same
// whatever the number of updates: on 70,000 updates of seven datasets, one of them updated once before
// all the others
// (statistics up to date), a page, the updates since a recent time, the
// newest update of some datasets and of all of them each touch a few dozen
// pages, with the plan PostgreSQL picks for the values and (for the
// statements pgx prepares and caches) with the generic plan.
func TestDatasetQueriesReadLittle(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a history of 70,000 dataset updates")
	}
	ctx := t.Context()
	db := openTemp(t)
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	// The first update is the only one of dataset "old": a backward read
	// of the primary key would read every update after it.
	_, err := db.pool.Exec(ctx, `INSERT INTO dataset_updates (dataset, at, run_id, pipeline, task_id, metadata)
		SELECT CASE WHEN i = 1 THEN 'old' ELSE format('ds-%s', i % 6) END,
			$1::timestamptz + i * interval '1 minute', i, 'p', 't', '{"rows": 1}'::jsonb
		FROM generate_series(1, 70000) AS i`, base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.pool.Exec(ctx, `VACUUM ANALYZE dataset_updates`); err != nil {
		t.Fatal(err)
	}
	recent := base.Add(69_900 * time.Minute)
	type query struct {
		name       string
		q          string
		args       []any
		customOnly bool
	}
	var queries []query
	for _, f := range []store.DatasetUpdateFilter{
		{Dataset: "ds-3"},
		{Dataset: "ds-3", BeforeID: 30_000},
		{Dataset: "ds-3", AfterID: 30_000, Ascending: true},
		{Dataset: "ds-3", Since: recent},
		{Dataset: "ds-3", Since: recent, Limit: 1},
		{Dataset: "ds-3", Since: base.AddDate(1, 0, 0), Limit: 1},
		{Dataset: "nope", Since: recent},
		{Dataset: "old"},
		{Dataset: "old", Since: recent},
	} {
		q, args := datasetUpdatesQuery(f)
		queries = append(queries, query{name: "DatasetUpdates " + f.Dataset, q: q, args: args, customOnly: true})
	}
	queries = append(queries,
		query{name: "latest named", q: latestNamedSQL, args: []any{[]string{"ds-1", "old", "nope"}}},
		query{name: "latest all", q: latestAllSQL},
	)
	const budget = 150
	for _, q := range queries {
		for _, generic := range []bool{false, true} {
			if generic && q.customOnly {
				continue
			}
			n, plan := pagesRead(t, db.pool, generic, q.q, q.args...)
			if n > budget || strings.Contains(plan, "Seq Scan") {
				t.Errorf("%s %v (generic plan: %v): %d pages (budget %d):\n%s", q.name, q.args, generic, n, budget, plan)
			} else {
				t.Logf("%s %v (generic plan: %v): %d pages", q.name, q.args, generic, n)
			}
		}
	}
}

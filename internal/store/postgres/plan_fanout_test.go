package postgres

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// TestFanoutQueriesReadLittle is TestQueriesReadLittle for map items,
// artifact refs and the cache: on a store with a map of 100,000 items (all
// of them with a row and a file), another run's, and 20,000 cache entries,
// the statements Apply writes a coordinator's batch with, and the reads of
// a page, touch pages in proportion to the rows they write or return,
// with the plan PostgreSQL picks for their values and with a generic one.
// (Joined with a batch's arrays, a statement may get a hash join over a
// scan of the whole table; an item = ANY(array) may be left out of the
// index condition: both would read every row of the map for each batch.)
func TestFanoutQueriesReadLittle(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a map of 100,000 items")
	}
	ctx := t.Context()
	db := openTemp(t)
	const n = 100_000
	var runs []store.Run
	for range 2 {
		r, err := db.CreateRun(ctx, benchRun(3))
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
		if err := db.Apply(ctx, store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 1, Values: mapBenchValues(n),
			Info: &store.MapInfo{Items: n}}}}); err != nil {
			t.Fatal(err)
		}
		states := []engine.TaskState{engine.TaskSucceeded, engine.TaskSucceeded, engine.TaskSucceeded, engine.TaskFailed}
		for start := 0; start < n; start += 5000 {
			c := store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 1}}}
			for i := start; i < start+5000; i++ {
				c.Maps[0].Items = append(c.Maps[0].Items, store.MapItem{Item: i, State: states[i%len(states)], Attempt: 1,
					Result: json.RawMessage(`{"rows":1}`)})
				c.Artifacts = append(c.Artifacts, store.ArtifactRef{Index: 1, Item: i,
					ArtifactFile: store.ArtifactFile{Path: "out.csv", Digest: fmt.Sprintf("sha256:%064d", i%5000), Size: 1}})
			}
			if err := db.Apply(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	var entries []store.CacheEntry
	for i := range 20_000 {
		entries = append(entries, store.CacheEntry{Key: fmt.Sprintf("%064x", i), Pipeline: fmt.Sprintf("p%d", i%10),
			TaskID: fmt.Sprintf("t%d", i%7), RunID: 1, Item: i, Size: 100, UsedAt: time.Unix(int64(i), 0),
			ExpiresAt: time.Unix(int64(10_000+i), 0),
			Outputs:   []store.ArtifactFile{{Path: "o", Digest: fmt.Sprintf("sha256:c%063d", i)}}})
	}
	if err := db.PutCache(ctx, entries...); err != nil {
		t.Fatal(err)
	}
	if _, err := db.pool.Exec(ctx, `VACUUM ANALYZE runs, tasks, task_maps, map_chunks, map_items, artifacts, cache_entries, cache_outputs`); err != nil {
		t.Fatal(err)
	}
	r := runs[1]

	type query struct {
		name   string
		q      string
		args   []any
		budget int
	}
	// A scan of these is never right: they hold every item and file of
	// every run, every entry of the cache. (The store's other tables are
	// small here, where a scan may be the best plan; map_chunks has a row
	// per 1,024 items.)
	big := []string{"map_items", "artifacts", "cache_entries", "cache_outputs"}
	var queries []query
	// A coordinator's batch: the map's info, 1,000 item rows (half of
	// them new, none of them where the map's rows end), 1,000 files, and
	// an operator's reset of 100 items.
	c := store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 1, Info: &store.MapInfo{Items: n, Next: n}, Delete: nil}}}
	for i := range 1000 {
		item := 10_000 + i*83
		c.Maps[0].Items = append(c.Maps[0].Items, store.MapItem{Item: item, State: engine.TaskSucceeded, Attempt: 2})
		c.Artifacts = append(c.Artifacts, store.ArtifactRef{Index: 1, Item: item,
			ArtifactFile: store.ArtifactFile{Path: "new.csv", Digest: "sha256:new", Size: 1}})
	}
	reset := store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 1}}}
	for i := range 100 {
		reset.Maps[0].Delete = append(reset.Maps[0].Delete, 90_000+i*7)
	}
	var plan applyPlan
	if err := plan.build([]store.Change{c, reset}); err != nil {
		t.Fatal(err)
	}
	for i, st := range plan.statements(1) {
		queries = append(queries, query{fmt.Sprintf("Apply statement %d: %.60s", i+1, strings.Join(strings.Fields(st.sql), " ")),
			st.sql, st.args, 1000 * 30})
	}
	page := func(f store.MapItemFilter) {
		q, args, err := mapItemsQuery(f)
		if err != nil {
			t.Fatal(err)
		}
		queries = append(queries, query{fmt.Sprintf("MapItems %+v", f), q, args, 300})
	}
	page(store.MapItemFilter{RunID: r.ID, Index: 1, From: 50_000})
	page(store.MapItemFilter{RunID: r.ID, Index: 1, From: 50_000, States: []engine.TaskState{engine.TaskFailed}})
	page(store.MapItemFilter{RunID: r.ID, Index: 1, From: 50_000, States: []engine.TaskState{engine.TaskFailed, engine.TaskRetryWait}})
	page(store.MapItemFilter{RunID: r.ID, Index: 1, States: []engine.TaskState{engine.TaskCancelled}})
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("%064x", i*19)
	}
	queries = append(queries,
		query{"MapValues", mapValuesSQL, []any{40, 41, r.ID, 1}, 50},
		query{"ArtifactsOf", `SELECT run_id, idx, item, path, digest, size, mode FROM artifacts
			WHERE run_id = $1 AND idx = $2 AND item = $3 ORDER BY path`, []any{r.ID, 1, 777}, 20},
		query{"ArtifactDigests", artifactDigestsSQL, []any{"", 1000}, 1000 * 10},
		query{"LookupCache", `SELECT ` + cacheCols + ` FROM cache_entries
			WHERE key = ANY($1::text[]) AND (expires_at IS NULL OR expires_at > $2)`, []any{keys[:100], time.Unix(0, 0)}, 100 * 10},
		query{"ListCache of a task", `SELECT ` + cacheCols + ` FROM cache_entries WHERE pipeline = $3 AND task_id = $4 AND key > $1
			ORDER BY key LIMIT $2`, []any{"", 100, "p3", "t3"}, 300},
		query{"evict expired", evictExpiredSQL, []any{time.Unix(10_500, 0), 500}, 500 * 30},
		query{"least recently used", `SELECT key, size FROM cache_entries ORDER BY used_at, key LIMIT $1`, []any{500}, 500 * 3},
	)
	touch := `UPDATE cache_entries SET used_at = $2 WHERE ctid = ANY(ARRAY(
		SELECT ctid FROM cache_entries WHERE key = ANY($1::text[]) AND used_at < $2 ORDER BY key FOR UPDATE))`
	queries = append(queries, query{"TouchCache", touch, []any{keys[:100], time.Unix(50_000, 0)}, 100 * 30})
	for _, q := range queries {
		for _, generic := range []bool{false, true} {
			pages, text := pagesRead(t, db.pool, generic, q.q, q.args...)
			scan := false
			for _, table := range big {
				scan = scan || strings.Contains(text, "Seq Scan on "+table+" ")
			}
			if pages > q.budget || scan {
				t.Errorf("%s (generic plan: %v): %d pages (budget %d):\n%s", q.name, generic, pages, q.budget, text)
			} else {
				t.Logf("%s (generic plan: %v): %d pages", q.name, generic, pages)
			}
		}
	}
}

package sqlite

import (
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// TestFanoutQueriesUseIndexes checks the plans of the reads of map items,
// the cache and artifact refs: each reads the index range it needs, in
// the order it returns, whatever the size of the tables.
func TestFanoutQueriesUseIndexes(t *testing.T) {
	db := openTemp(t)
	type query struct {
		name, q string
		args    []any
		want    []string // steps the plan must have
	}
	items := func(f store.MapItemFilter) (string, []any) {
		q, args, err := mapItemsQuery(f)
		if err != nil {
			t.Fatal(err)
		}
		return q, args
	}
	list := func(f store.CacheFilter) (string, []any) {
		q, args, err := listCacheQuery(f)
		if err != nil {
			t.Fatal(err)
		}
		return q, args
	}
	var tests []query
	add := func(name string, want []string, q string, args []any) {
		tests = append(tests, query{name, q, args, want})
	}
	q, a := items(store.MapItemFilter{RunID: 1, Index: 2, From: 5})
	add("MapItems", []string{"SEARCH map_items USING PRIMARY KEY (run_id=? AND idx=? AND item>?)"}, q, a)
	q, a = items(store.MapItemFilter{RunID: 1, Index: 2, From: 5, States: []engine.TaskState{engine.TaskFailed}})
	add("MapItems by state", []string{"SEARCH map_items USING INDEX map_items_by_state (run_id=? AND idx=? AND state=? AND item>?)"}, q, a)
	q, a = items(store.MapItemFilter{RunID: 1, Index: 2, States: []engine.TaskState{engine.TaskFailed, engine.TaskRetryWait}})
	add("MapItems by states", []string{"SEARCH map_items USING INDEX map_items_by_state (run_id=? AND idx=? AND state=? AND item>?)"}, q, a)
	add("MapValues", []string{"SEARCH m USING PRIMARY KEY (run_id=? AND idx=?)", "SEARCH c USING INDEX sqlite_autoindex_map_chunks_1 (run_id=? AND idx=? AND chunk>? AND chunk<?)"},
		mapValuesSQL, []any{0, 3, 1, 2})
	q, a = list(store.CacheFilter{AfterKey: "k"})
	add("ListCache", []string{"SEARCH cache_entries USING INDEX sqlite_autoindex_cache_entries_1 (key>?)"}, q, a)
	q, a = list(store.CacheFilter{Pipeline: "p", AfterKey: "k"})
	add("ListCache of a pipeline", []string{"SEARCH cache_entries USING INDEX cache_entries_by_pipeline (pipeline=? AND key>?)"}, q, a)
	q, a = list(store.CacheFilter{Pipeline: "p", TaskID: "t"})
	add("ListCache of a task", []string{"SEARCH cache_entries USING INDEX cache_entries_by_task (pipeline=? AND task_id=? AND key>?)"}, q, a)
	add("evict expired", []string{"COVERING INDEX cache_entries_expiry (expires_at>? AND expires_at<?)"}, evictExpiredSQL, []any{1, 10})
	add("least recently used", []string{"SCAN cache_entries USING INDEX cache_entries_lru"}, lruSQL, []any{10})
	add("ArtifactsOf", []string{"SEARCH artifacts USING PRIMARY KEY (run_id=? AND idx=? AND item=?)"},
		`SELECT run_id, idx, item, path, digest, size, mode FROM artifacts WHERE run_id = ? AND idx = ? AND item = ? ORDER BY path`,
		[]any{1, 2, -1})
	add("ArtifactDigests", []string{"SEARCH artifacts USING COVERING INDEX artifacts_by_digest (digest>?)",
		"SEARCH cache_outputs USING COVERING INDEX cache_outputs_by_digest (digest>?)"}, artifactDigestsSQL, []any{"", 10})
	for _, tt := range tests {
		text := queryPlan(t, db, tt.q, tt.args...)
		for _, w := range tt.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: plan\n%s\nwant %s", tt.name, text, w)
			}
		}
		// Sorting is allowed for the ties of an index's order (LAST TERM)
		// and for merging per-state pages of at most a page each (UNION).
		if strings.Contains(text, "TEMP B-TREE") && !strings.Contains(text, "LAST TERM") && !strings.Contains(text, "UNION") {
			t.Errorf("%s: plan sorts everything it reads:\n%s", tt.name, text)
		}
		t.Logf("%s:\n%s", tt.name, text)
	}
}

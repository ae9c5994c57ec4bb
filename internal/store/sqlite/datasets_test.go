package sqlite

import (
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// TestDatasetQueriesUseIndexes checks the plans of the dataset reads: a page
// is a search of (dataset, id) bounded by the cursor, in order; a page since
// a time a search of (dataset, at) from that time; the newest update of a
// dataset one step into (dataset, id), and the list of datasets a skip
// through it. None reads the table or a whole dataset's updates.
func TestDatasetQueriesUseIndexes(t *testing.T) {
	db := openTemp(t)
	type query struct {
		name, q string
		args    []any
		want    []string // each must be in the plan
		sort    bool     // a sort is expected (of the updates since a time)
	}
	var tests []query
	for _, f := range []store.DatasetUpdateFilter{
		{Dataset: "d"},
		{Dataset: "d", BeforeID: 100},
		{Dataset: "d", AfterID: 100, Ascending: true},
	} {
		q, args := datasetUpdatesQuery(f)
		tests = append(tests, query{name: "page", q: q, args: args,
			want: []string{"SEARCH dataset_updates USING INDEX dataset_updates_by_dataset (dataset=? AND id"}})
	}
	q, args := datasetUpdatesQuery(store.DatasetUpdateFilter{Dataset: "d", Since: time.Unix(1, 0), AfterID: 3})
	tests = append(tests,
		query{name: "since", q: q, args: args, sort: true,
			want: []string{"SEARCH dataset_updates USING INDEX dataset_updates_by_at (dataset=? AND at>?)"}},
		query{name: "latest named", q: latestNamedSQL, args: []any{`["a","b"]`},
			want: []string{"SEARCH dataset_updates USING INTEGER PRIMARY KEY (rowid=?)",
				"SEARCH dataset_updates USING COVERING INDEX dataset_updates_by_dataset (dataset=?)"}},
		query{name: "latest all", q: latestAllSQL,
			want: []string{"SEARCH dataset_updates USING INTEGER PRIMARY KEY (rowid=?)",
				"SEARCH dataset_updates USING COVERING INDEX dataset_updates_by_dataset (dataset>?)",
				"SEARCH dataset_updates USING COVERING INDEX dataset_updates_by_dataset (dataset=?)"}},
	)
	for _, tt := range tests {
		text := queryPlan(t, db, tt.q, tt.args...)
		bad := !tt.sort && strings.Contains(text, "TEMP B-TREE")
		for line := range strings.SplitSeq(text, "\n") {
			// The one index scan allowed is the first step of the skip
			// through the datasets, which stops at the first entry
			// (ORDER BY dataset LIMIT 1).
			if strings.HasPrefix(line, "SCAN dataset_updates") &&
				(tt.name != "latest all" || line != "SCAN dataset_updates USING COVERING INDEX dataset_updates_by_dataset") {
				bad = true
			}
		}
		for _, w := range tt.want {
			if !strings.Contains(text, w) {
				bad = true
			}
		}
		if bad {
			t.Errorf("%s: plan\n%s\nwant %q", tt.name, text, tt.want)
		}
		t.Logf("%s:\n%s", tt.name, text)
	}
}

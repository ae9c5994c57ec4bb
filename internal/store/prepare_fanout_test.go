package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/engine"
)

// The drivers' reads and writes of maps, the cache and artifact refs are
// pinned by storetest; these cases cover the shared rules on their own.

// chunkRow is one row of the statement MapValuesRead reads.
type chunkRow struct {
	chunk int
	ok    bool
}

func TestMapValuesRead(t *testing.T) {
	values := make([]json.RawMessage, 2*MapChunkItems+10)
	for i := range values {
		values[i] = json.RawMessage(fmt.Sprint(i))
	}
	stored := MapChunks(values)
	if len(stored) != 3 {
		t.Fatalf("MapChunks of %d values = %d chunks, want 3", len(values), len(stored))
	}
	tests := []struct {
		name                string
		from, n             int
		items               int        // the map's item count (-1: no row, never expanded)
		rows                []chunkRow // the chunks the statement returns
		first, last         int
		want                []int // the items of the values returned
		wantErr, wantRefuse string
	}{
		{name: "one chunk", from: 3, n: 2, items: len(values), rows: []chunkRow{{0, true}}, last: 0, want: []int{3, 4}},
		{name: "across chunks", from: MapChunkItems - 1, n: 2, items: len(values),
			rows: []chunkRow{{0, true}, {1, true}}, first: 0, last: 1, want: []int{MapChunkItems - 1, MapChunkItems}},
		{name: "cut at the end", from: len(values) - 2, n: 5, items: len(values), rows: []chunkRow{{2, true}},
			first: 2, last: 2, want: []int{len(values) - 2, len(values) - 1}},
		{name: "past the end", from: len(values) + 5, n: 3, items: len(values), rows: []chunkRow{{0, false}},
			first: 2, last: 2, want: []int{}},
		{name: "none asked", from: 0, n: 0, items: len(values), rows: []chunkRow{{0, true}}, want: []int{}},
		{name: "never expanded", from: 0, n: 1, items: -1, wantErr: "never expanded"},
		{name: "chunk missing", from: MapChunkItems - 1, n: 2, items: len(values), rows: []chunkRow{{0, true}},
			last: 1, wantErr: "1 of 2 values from item 1023 found (a chunk is missing)"},
		{name: "chunk skipped", from: MapChunkItems - 1, n: MapChunkItems + 5, items: len(values),
			rows: []chunkRow{{0, true}, {2, true}}, last: 2, wantErr: "chunk 2 read where item 1024 was wanted"},
		{name: "negative from", from: -1, n: 1, wantRefuse: "invalid range from -1, 1 values"},
		{name: "negative count", from: 0, n: -1, wantRefuse: "invalid range from 0, -1 values"},
		{name: "clipped to int32", from: math.MaxInt32 + 10, n: 1, items: 0, rows: []chunkRow{{0, false}},
			first: math.MaxInt32 / MapChunkItems, last: math.MaxInt32 / MapChunkItems, want: []int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewMapValuesRead(tt.from, tt.n)
			if tt.wantRefuse != "" {
				if err == nil || err.Error() != tt.wantRefuse {
					t.Fatalf("NewMapValuesRead(%d, %d) = %v, want %q", tt.from, tt.n, err, tt.wantRefuse)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.First != tt.first || r.Last != tt.last {
				t.Errorf("chunks %d..%d, want %d..%d", r.First, r.Last, tt.first, tt.last)
			}
			err = nil
			for _, row := range tt.rows {
				var data []byte
				if row.ok {
					data = []byte(stored[row.chunk])
				}
				if err = r.Add(tt.items, row.chunk, row.ok, data); err != nil {
					break
				}
			}
			var got []json.RawMessage
			if err == nil {
				got, err = r.Values()
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if tt.items < 0 && !errors.Is(err, ErrNotFound) {
					t.Errorf("err = %v, want ErrNotFound", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := make([]json.RawMessage, len(tt.want))
			for i, item := range tt.want {
				want[i] = values[item]
			}
			if !slices.EqualFunc(got, want, func(a, b json.RawMessage) bool { return string(a) == string(b) }) || got == nil {
				t.Errorf("values %s, want %s", got, want)
			}
		})
	}
}

func TestPrepareMapItemFilter(t *testing.T) {
	tests := []struct {
		in      MapItemFilter
		want    MapItemFilter
		wantErr string
	}{
		{in: MapItemFilter{}, want: MapItemFilter{Limit: DefaultMapItemsLimit}},
		{in: MapItemFilter{Limit: MaxMapItemsLimit + 1, From: math.MaxInt32 + 1},
			want: MapItemFilter{Limit: MaxMapItemsLimit, From: math.MaxInt32}},
		{in: MapItemFilter{Limit: 5, States: []engine.TaskState{engine.TaskFailed, engine.TaskSucceeded, engine.TaskFailed}},
			want: MapItemFilter{Limit: 5, States: []engine.TaskState{engine.TaskFailed, engine.TaskSucceeded}}},
		{in: MapItemFilter{From: -1}, wantErr: "negative cursor -1"},
	}
	for _, tt := range tests {
		got, err := PrepareMapItemFilter(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("PrepareMapItemFilter(%+v) = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.From != tt.want.From || got.Limit != tt.want.Limit || !slices.Equal(got.States, tt.want.States) {
			t.Errorf("PrepareMapItemFilter(%+v) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestPrepareCacheFilter(t *testing.T) {
	tests := []struct {
		in        CacheFilter
		wantLimit int
		wantErr   string
	}{
		{in: CacheFilter{}, wantLimit: DefaultCacheLimit},
		{in: CacheFilter{Pipeline: "p", TaskID: "t", Limit: MaxCacheLimit + 1}, wantLimit: MaxCacheLimit},
		{in: CacheFilter{Limit: 7}, wantLimit: 7},
		{in: CacheFilter{TaskID: "t"}, wantErr: "needs its pipeline"},
		{in: CacheFilter{Pipeline: "p\x00"}, wantErr: "pipeline name"},
		{in: CacheFilter{AfterKey: "\xff"}, wantErr: "cursor"},
	}
	for _, tt := range tests {
		got, err := PrepareCacheFilter(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("PrepareCacheFilter(%+v) = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.Limit != tt.wantLimit {
			t.Errorf("PrepareCacheFilter(%+v) = limit %d, %v; want %d", tt.in, got.Limit, err, tt.wantLimit)
		}
	}
}

func TestDigestsLimit(t *testing.T) {
	for _, tt := range []struct{ in, want int }{
		{0, DefaultDigestsLimit}, {-3, DefaultDigestsLimit}, {5, 5}, {MaxDigestsLimit + 1, MaxDigestsLimit},
	} {
		if got, err := DigestsLimit("", tt.in); err != nil || got != tt.want {
			t.Errorf("DigestsLimit(%d) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	if _, err := DigestsLimit("a\x00", 1); err == nil || !strings.HasPrefix(err.Error(), "cursor ") {
		t.Errorf("DigestsLimit of a cursor with a NUL byte = %v, want an error naming the cursor", err)
	}
}

func TestArtifactGroups(t *testing.T) {
	ref := func(index, item int, path, digest string) ArtifactRef {
		return ArtifactRef{Index: index, Item: item, ArtifactFile: ArtifactFile{Path: path, Digest: digest}}
	}
	got := ArtifactGroups([]ArtifactRef{
		ref(1, -1, "a", "d1"), ref(0, 3, "x", "d2"), ref(1, -1, "b", "d3"), ref(1, -1, "a", "d4"), ref(0, 4, "x", "d5"),
	})
	want := []ArtifactGroup{
		{Index: 1, Item: -1, Refs: []ArtifactRef{ref(1, -1, "a", "d4"), ref(1, -1, "b", "d3")}},
		{Index: 0, Item: 3, Refs: []ArtifactRef{ref(0, 3, "x", "d2")}},
		{Index: 0, Item: 4, Refs: []ArtifactRef{ref(0, 4, "x", "d5")}},
	}
	if !slices.EqualFunc(got, want, func(a, b ArtifactGroup) bool {
		return a.Index == b.Index && a.Item == b.Item && slices.Equal(a.Refs, b.Refs)
	}) {
		t.Errorf("ArtifactGroups = %+v, want %+v", got, want)
	}
}

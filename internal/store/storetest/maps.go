package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Map tasks (store.Maps): a map is expanded once into chunks of values,
// its info is one row whatever its size, and its item rows page by item
// and by state. Everything is written through Apply, with the rest of a
// batch or not at all.

// mapValues are n distinct item values, of several JSON shapes.
func mapValues(n int) []json.RawMessage {
	out := make([]json.RawMessage, n)
	for i := range out {
		switch i % 4 {
		case 0:
			out[i] = json.RawMessage(fmt.Sprintf(`{"id":%d,"name":"user-%07d"}`, i, i))
		case 1:
			out[i] = json.RawMessage(fmt.Sprintf(`"s3://bucket/part-%d.csv"`, i))
		case 2:
			out[i] = json.RawMessage(fmt.Sprintf(`[%d,"日本語\nescaped",{"k":null}]`, i))
		default:
			out[i] = json.RawMessage(fmt.Sprint(i))
		}
	}
	return out
}

// expand is the change that expands map task index of run to values.
func expand(run int64, index int, values []json.RawMessage) store.Change {
	return store.Change{RunID: run, Maps: []store.MapChange{{Index: index, Values: values,
		Info: &store.MapInfo{Items: len(values), Counts: map[engine.TaskState]int{engine.TaskPending: len(values)}, UpdatedAt: t0}}}}
}

func mustMapValues(t *testing.T, s store.Store, run int64, index, from, n int) []json.RawMessage {
	t.Helper()
	vs, err := s.MapValues(t.Context(), run, index, from, n)
	if err != nil {
		t.Fatalf("MapValues(%d, %d, %d, %d): %v", run, index, from, n, err)
	}
	return vs
}

// sameValues compares values byte for byte: a map's values come back as
// they were given.
func sameValues(t *testing.T, what string, got, want []json.RawMessage) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d values, want %d", what, len(got), len(want))
		return
	}
	for i := range got {
		if string(got[i]) != string(want[i]) {
			t.Errorf("%s: value %d is %s, want %s", what, i, got[i], want[i])
			return
		}
	}
}

func testMapExpand(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := mustCreate(t, s, newRun("fan", 3))
	if infos, err := s.MapInfos(ctx, r.ID); err != nil || infos == nil || len(infos) != 0 {
		t.Errorf("MapInfos of a run without maps = %#v, %v; want [] and no error", infos, err)
	}
	if _, err := s.MapInfos(ctx, r.ID+1000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MapInfos of a missing run: %v, want ErrNotFound", err)
	}
	if _, err := s.MapValues(ctx, r.ID, 1, 0, 10); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MapValues of a map never expanded: %v, want ErrNotFound", err)
	}
	if _, err := s.MapItems(ctx, store.MapItemFilter{RunID: r.ID, Index: 1}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MapItems of a map never expanded: %v, want ErrNotFound", err)
	}

	const n = 2*store.MapChunkItems + 500
	vs := mapValues(n)
	mustApply(t, s, expand(r.ID, 1, vs), expand(r.ID, 2, []json.RawMessage{}))
	infos, err := s.MapInfos(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "expanded maps", infos, []store.MapInfo{
		{RunID: r.ID, Index: 1, Items: n, Counts: map[engine.TaskState]int{engine.TaskPending: n}, UpdatedAt: us(t0)},
		{RunID: r.ID, Index: 2, Items: 0, Counts: map[engine.TaskState]int{engine.TaskPending: 0}, UpdatedAt: us(t0)},
	})

	for _, tt := range []struct{ from, n, want int }{
		{0, 10, 10},
		{0, n, n},
		{store.MapChunkItems - 3, 10, 10}, // across a chunk boundary
		{store.MapChunkItems, store.MapChunkItems, store.MapChunkItems},
		{5, 2*store.MapChunkItems + 2, 2*store.MapChunkItems + 2}, // three chunks
		{n - 5, 10, 5},   // clipped at the end
		{n, 3, 0},        // at the end
		{n + 4000, 1, 0}, // past it
		{17, 0, 0},
		{0, math.MaxInt, n},
		{math.MaxInt - 5, 10, 0},
	} {
		got := mustMapValues(t, s, r.ID, 1, tt.from, tt.n)
		end := min(tt.from+tt.want, n)
		sameValues(t, fmt.Sprintf("values [%d, +%d)", tt.from, tt.n), got, vs[min(tt.from, n):end])
		if got == nil {
			t.Errorf("values [%d, +%d) = nil, want a slice", tt.from, tt.n)
		}
	}
	if got := mustMapValues(t, s, r.ID, 2, 0, 10); len(got) != 0 {
		t.Errorf("values of an empty map = %v", got)
	}
	for _, bad := range [][2]int{{-1, 5}, {0, -1}} {
		if _, err := s.MapValues(ctx, r.ID, 1, bad[0], bad[1]); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("MapValues(from %d, n %d): %v, want an error", bad[0], bad[1], err)
		}
	}
	for _, from := range []int{0, math.MaxInt} {
		if items, err := s.MapItems(ctx, store.MapItemFilter{RunID: r.ID, Index: 1, From: from}); err != nil || items == nil || len(items) != 0 {
			t.Errorf("MapItems from %d of a map without item rows = %#v, %v; want []", from, items, err)
		}
	}

	// A run's other tasks have no map; a map of another run is apart.
	other := mustCreate(t, s, newRun("fan", 2))
	mustApply(t, s, expand(other.ID, 1, vs[:3]))
	sameValues(t, "values of the other run", mustMapValues(t, s, other.ID, 1, 0, 10), vs[:3])
	if got := mustMapValues(t, s, r.ID, 1, 0, 3); string(got[0]) != string(vs[0]) {
		t.Errorf("the first run's values changed: %s", got[0])
	}
	if _, err := s.MapValues(ctx, other.ID, 0, 0, 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MapValues of a task that is no map: %v, want ErrNotFound", err)
	}
}

// testMapInfo: an info is written as given and read back exactly, by
// later changes without values too.
func testMapInfo(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := mustCreate(t, s, newRun("fan", 2))
	mustApply(t, s, expand(r.ID, 0, mapValues(40)))
	info := store.MapInfo{RunID: 999, Index: 7, // from the change, not from here
		Items: 40, Next: 23,
		Counts: map[engine.TaskState]int{engine.TaskPending: 17, engine.TaskRunning: 3, engine.TaskSucceeded: 18,
			engine.TaskFailed: 1, engine.TaskRetryWait: 1, engine.TaskCancelled: 0},
		Slowest: []store.SlowItem{{Item: 12, Attempt: 2, Duration: 90*time.Minute + 1234567891}, {Item: 3, Attempt: 1, Duration: time.Nanosecond},
			{Item: 0, Attempt: 1, Duration: 0}},
		UpdatedAt: t0.Add(time.Minute).In(jst),
	}
	mustApply(t, s, store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 0, Info: &info}}})
	want := info
	want.RunID, want.Index, want.UpdatedAt = r.ID, 0, us(t0.Add(time.Minute))
	infos, err := s.MapInfos(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "map info", infos, []store.MapInfo{want})

	// A zero UpdatedAt is the time of the write; empty counts and slowest
	// read back empty.
	before := time.Now().Add(-time.Second)
	mustApply(t, s, store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 0, Info: &store.MapInfo{Items: 40, Next: 40}}}})
	infos, _ = s.MapInfos(ctx, r.ID)
	if len(infos) != 1 || len(infos[0].Counts) != 0 || len(infos[0].Slowest) != 0 || infos[0].Next != 40 ||
		infos[0].UpdatedAt.Before(before) || infos[0].UpdatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("info after a write without time = %+v", infos)
	}
}

func testMapItems(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := mustCreate(t, s, newRun("fan", 2))
	const n = 300
	mustApply(t, s, expand(r.ID, 1, mapValues(n)))
	full := store.MapItem{Item: 7, State: engine.TaskFailed, Attempt: 3, Spent: 2, Worker: "w-7",
		StartedAt: t0.In(jst), FinishedAt: t0.Add(time.Second), ReadyAt: t0.Add(time.Minute), ExitCode: ptr(0),
		Message: "exit 0 but no output", Result: json.RawMessage(`{"rows": 12, "ok": [true]}`), CachedFrom: r.ID - 1 + 100,
		Log: "runs/1/t1/batch-3.log"}
	bare := store.MapItem{RunID: r.ID, Index: 1, Item: 8, State: engine.TaskSucceeded, Attempt: 1}
	mustApply(t, s, store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 1, Items: []store.MapItem{full, bare}}}})
	items, err := s.MapItems(ctx, store.MapItemFilter{RunID: r.ID, Index: 1})
	if err != nil {
		t.Fatal(err)
	}
	wantFull := full
	wantFull.RunID, wantFull.Index = r.ID, 1
	wantFull.StartedAt, wantFull.FinishedAt, wantFull.ReadyAt = us(t0), us(t0.Add(time.Second)), us(t0.Add(time.Minute))
	check(t, "item rows", items, []store.MapItem{wantFull, bare})

	// An upsert replaces the whole row: fields it leaves zero are cleared.
	again := store.MapItem{Item: 7, State: engine.TaskRetryWait, Attempt: 4, ReadyAt: t0.Add(time.Hour)}
	mustApply(t, s, store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 1, Items: []store.MapItem{again}}}})
	items, _ = s.MapItems(ctx, store.MapItemFilter{RunID: r.ID, Index: 1, Limit: 1})
	again.RunID, again.Index, again.ReadyAt = r.ID, 1, us(again.ReadyAt)
	check(t, "replaced item row", items, []store.MapItem{again})

	// Delete: the item is never started again; deleting a missing row is
	// no error.
	mustApply(t, s, store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 1, Delete: []int{7, 250}}}})
	items, _ = s.MapItems(ctx, store.MapItemFilter{RunID: r.ID, Index: 1})
	check(t, "rows after delete", items, []store.MapItem{bare})
}

// testMapItemsPaging: pages in item order from the cursor, by state, with
// the default and the largest page.
func testMapItemsPaging(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := mustCreate(t, s, newRun("fan", 1))
	const n = store.MaxMapItemsLimit + 150
	mustApply(t, s, expand(r.ID, 0, mapValues(n)))
	states := []engine.TaskState{engine.TaskSucceeded, engine.TaskFailed, engine.TaskRetryWait, engine.TaskSucceeded, engine.TaskCancelled}
	stateOf := func(i int) engine.TaskState { return states[(i*7)%len(states)] }
	// Written out of order, in batches as a coordinator commits them.
	var batch []store.MapItem
	for i := n - 1; i >= 0; i-- {
		if i%3 == 1 {
			continue // never started
		}
		batch = append(batch, store.MapItem{Item: i, State: stateOf(i), Attempt: 1})
		if len(batch) == 1000 || i == 0 {
			mustApply(t, s, store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 0, Items: batch}}})
			batch = nil
		}
	}
	want := func(from, limit int, filter ...engine.TaskState) []int {
		var out []int
		for i := from; i < n && len(out) < limit; i++ {
			if i%3 == 1 {
				continue
			}
			if len(filter) == 0 || containsState(filter, stateOf(i)) {
				out = append(out, i)
			}
		}
		return out
	}
	for _, tt := range []struct {
		f     store.MapItemFilter
		limit int
	}{
		{store.MapItemFilter{}, store.DefaultMapItemsLimit},
		{store.MapItemFilter{Limit: -1}, store.DefaultMapItemsLimit},
		{store.MapItemFilter{Limit: 10 * store.MaxMapItemsLimit}, store.MaxMapItemsLimit},
		{store.MapItemFilter{From: 101, Limit: 7}, 7},
		{store.MapItemFilter{From: n - 10, Limit: 100}, 100},
		{store.MapItemFilter{From: n + 10}, 100},
		{store.MapItemFilter{States: []engine.TaskState{engine.TaskFailed}}, store.DefaultMapItemsLimit},
		{store.MapItemFilter{States: []engine.TaskState{engine.TaskFailed}, From: 5000, Limit: 30}, 30},
		{store.MapItemFilter{States: []engine.TaskState{engine.TaskRetryWait, engine.TaskCancelled, engine.TaskRetryWait}, From: 33, Limit: 50}, 50},
		{store.MapItemFilter{States: []engine.TaskState{engine.TaskSucceeded, engine.TaskFailed}, Limit: 10 * store.MaxMapItemsLimit}, store.MaxMapItemsLimit},
		{store.MapItemFilter{States: []engine.TaskState{engine.TaskRunning}}, 100},
	} {
		f := tt.f
		f.RunID, f.Index = r.ID, 0
		items, err := s.MapItems(ctx, f)
		if err != nil {
			t.Fatalf("MapItems(%+v): %v", f, err)
		}
		var got []int
		for _, it := range items {
			got = append(got, it.Item)
			if it.State != stateOf(it.Item) || it.RunID != r.ID || it.Attempt != 1 {
				t.Errorf("MapItems(%+v): row %+v", f, it)
				break
			}
		}
		check(t, fmt.Sprintf("items of %+v", tt.f), got, want(max(f.From, 0), tt.limit, f.States...))
	}

	// Paging through all failed items with the cursor.
	var all []int
	f := store.MapItemFilter{RunID: r.ID, Index: 0, States: []engine.TaskState{engine.TaskFailed}, Limit: 333}
	for range 100 {
		items, err := s.MapItems(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			all = append(all, it.Item)
		}
		if len(items) < f.Limit {
			break
		}
		f.From = items[len(items)-1].Item + 1
	}
	check(t, "failed items paged", all, want(0, n, engine.TaskFailed))

	if _, err := s.MapItems(ctx, store.MapItemFilter{RunID: r.ID, Index: 0, From: -1}); err == nil {
		t.Error("MapItems with a negative cursor: no error")
	}
}

func containsState(states []engine.TaskState, s engine.TaskState) bool {
	for _, x := range states {
		if x == s {
			return true
		}
	}
	return false
}

// testMapReexpand: values replace the earlier expansion whole (fewer
// chunks included) and every item row goes.
func testMapReexpand(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := mustCreate(t, s, newRun("fan", 1))
	mustApply(t, s, expand(r.ID, 0, mapValues(3*store.MapChunkItems)))
	mustApply(t, s, store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 0,
		Items: []store.MapItem{{Item: 1, State: engine.TaskSucceeded}, {Item: 3000, State: engine.TaskFailed}}}}})
	fresh := []json.RawMessage{json.RawMessage(`"a"`), json.RawMessage(`"b"`)}
	mustApply(t, s, expand(r.ID, 0, fresh))
	sameValues(t, "values after a new expansion", mustMapValues(t, s, r.ID, 0, 0, 3*store.MapChunkItems), fresh)
	if items, err := s.MapItems(ctx, store.MapItemFilter{RunID: r.ID, Index: 0}); err != nil || len(items) != 0 {
		t.Errorf("item rows after a new expansion = %v, %v; want none", items, err)
	}
	if infos, _ := s.MapInfos(ctx, r.ID); len(infos) != 1 || infos[0].Items != 2 {
		t.Errorf("info after a new expansion = %+v", infos)
	}
}

// testMapRejects: what Apply refuses about maps, with the whole batch.
func testMapRejects(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := mustCreate(t, s, newRun("fan", 3))
	mustApply(t, s, expand(r.ID, 0, mapValues(10)))
	info := func(items int) *store.MapInfo { return &store.MapInfo{Items: items} }
	item := func(i int) store.MapItem { return store.MapItem{Item: i, State: engine.TaskSucceeded} }
	tests := []struct {
		name     string
		c        store.Change
		notFound bool
		mention  string
	}{
		{"values without info", store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 1, Values: mapValues(2)}}}, false, "info"},
		{"info with another count", store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 1, Values: mapValues(2), Info: info(3)}}}, false, "3"},
		{"value with a newline", store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 1,
			Values: []json.RawMessage{json.RawMessage(`1`), json.RawMessage("{\"a\":\n1}")}, Info: info(2)}}}, false, "newline"},
		{"value not JSON", store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 1,
			Values: []json.RawMessage{json.RawMessage(`{"a":`)}, Info: info(1)}}}, false, "JSON"},
		{"empty value", store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 1,
			Values: []json.RawMessage{nil}, Info: info(1)}}}, false, "empty"},
		{"value not UTF-8", store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 1,
			Values: []json.RawMessage{json.RawMessage("\"\xff\"")}, Info: info(1)}}}, false, "UTF-8"},
		{"cursor past the end", store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 0, Info: &store.MapInfo{Items: 10, Next: 11}}}}, false, "cursor"},
		{"negative count", store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 0,
			Info: &store.MapInfo{Items: 10, Counts: map[engine.TaskState]int{engine.TaskFailed: -1}}}}}, false, "failed"},
		{"too many slowest", store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 0,
			Info: &store.MapInfo{Items: 10, Slowest: make([]store.SlowItem, store.MaxSlowItems+1)}}}}, false, "slowest"},
		{"item result not JSON", store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 0,
			Items: []store.MapItem{{Item: 1, State: engine.TaskSucceeded, Result: json.RawMessage(`{`)}}}}}, false, "result of item 1"},
		{"item result with \\u0000", store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 0,
			Items: []store.MapItem{{Item: 1, State: engine.TaskSucceeded, Result: json.RawMessage(`"\u0000"`)}}}}}, false, "u0000"},
		{"item without state", store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 0, Items: []store.MapItem{{Item: 1}}}}}, false, "state"},
		{"negative item", store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 0, Items: []store.MapItem{item(-1)}}}}, false, "-1"},
		{"item past the largest", store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 0, Items: []store.MapItem{item(1 << 31)}}}}, false, "2147483648"},
		{"task past the largest", store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 1 << 31, Items: []store.MapItem{item(1)}}}}, false, "2147483648"},
		{"item of another run", store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 0,
			Items: []store.MapItem{{RunID: r.ID + 1, Item: 1, State: engine.TaskFailed}}}}}, false, "run"},
		{"delete of a negative item", store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 0, Delete: []int{-2}}}}, false, "-2"},
		{"negative task", store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: -1, Info: info(0), Values: []json.RawMessage{}}}}, false, "-1"},
		{"info of a map never expanded", store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 2, Info: info(2)}}}, true, ""},
		{"items of a map never expanded", store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 2, Items: []store.MapItem{item(0)}}}}, true, ""},
		{"delete in a map never expanded", store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 2, Delete: []int{0}}}}, true, ""},
		{"expansion of a missing task", expand(r.ID, 3, mapValues(3)), true, ""},
		{"expansion in a missing run", expand(r.ID+1000, 0, mapValues(3)), true, ""},
	}
	for _, tt := range tests {
		// Each refusal comes after a good change of the same batch, which
		// must not be written either.
		good := expand(r.ID, 1, mapValues(5))
		good.Maps = append(good.Maps, store.MapChange{Index: 0, Items: []store.MapItem{item(9)},
			Info: &store.MapInfo{Items: 10, Next: 10}})
		err := s.Apply(ctx, good, tt.c)
		switch {
		case err == nil:
			t.Errorf("%s: Apply accepted it", tt.name)
		case tt.notFound && !errors.Is(err, store.ErrNotFound):
			t.Errorf("%s: %v, want ErrNotFound", tt.name, err)
		case !tt.notFound && errors.Is(err, store.ErrNotFound):
			t.Errorf("%s: %v, want an error about the value", tt.name, err)
		case !strings.Contains(err.Error(), tt.mention):
			t.Errorf("%s: %v, want it to mention %q", tt.name, err, tt.mention)
		}
	}
	infos, err := s.MapInfos(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Index != 0 || infos[0].Next != 0 {
		t.Errorf("maps after refused batches = %+v, want map 0 as first expanded", infos)
	}
	if items, _ := s.MapItems(ctx, store.MapItemFilter{RunID: r.ID, Index: 0}); len(items) != 0 {
		t.Errorf("refused batches wrote item rows %+v", items)
	}
	if _, err := s.MapValues(ctx, r.ID, 1, 0, 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused batch expanded map 1: %v", err)
	}
}

// testMapBatch: a batch that expands, writes, deletes and expands again
// ends as the same changes applied one at a time.
func testMapBatch(t *testing.T, s store.Store) {
	ctx := t.Context()
	batch := func(run int64) []store.Change {
		st := func(i int, state engine.TaskState, msg string) store.MapItem {
			return store.MapItem{Item: i, State: state, Attempt: 1, Message: msg}
		}
		return []store.Change{
			expand(run, 0, mapValues(50)),
			expand(run, 1, mapValues(20)),
			{RunID: run, Maps: []store.MapChange{
				{Index: 0, Items: []store.MapItem{st(1, engine.TaskFailed, "a"), st(2, engine.TaskSucceeded, "b"), st(1, engine.TaskRetryWait, "c")}},
				{Index: 1, Items: []store.MapItem{st(5, engine.TaskSucceeded, "d")}, Info: &store.MapInfo{Items: 20, Next: 6}},
			}},
			{RunID: run, Maps: []store.MapChange{
				{Index: 0, Items: []store.MapItem{st(3, engine.TaskSucceeded, "e")}, Delete: []int{2}},
				{Index: 1, Items: []store.MapItem{st(6, engine.TaskFailed, "f")}},
			}},
			expand(run, 1, mapValues(8)), // drops items 5 and 6
			{RunID: run, Maps: []store.MapChange{
				{Index: 1, Items: []store.MapItem{st(7, engine.TaskSucceeded, "g")}},
				{Index: 0, Items: []store.MapItem{st(2, engine.TaskSucceeded, "h")}, Info: &store.MapInfo{Items: 50, Next: 4, UpdatedAt: t0}},
			}},
		}
	}
	one := mustCreate(t, s, newRun("fan", 2))
	each := mustCreate(t, s, newRun("fan", 2))
	mustApply(t, s, batch(one.ID)...)
	for _, c := range batch(each.ID) {
		mustApply(t, s, c)
	}
	read := func(run int64) ([]store.MapInfo, [][]store.MapItem) {
		infos, err := s.MapInfos(ctx, run)
		if err != nil {
			t.Fatal(err)
		}
		items := make([][]store.MapItem, len(infos))
		for i := range infos {
			infos[i].RunID = 0
			items[i], err = s.MapItems(ctx, store.MapItemFilter{RunID: run, Index: i})
			if err != nil {
				t.Fatal(err)
			}
			for j := range items[i] {
				items[i][j].RunID = 0
			}
		}
		return infos, items
	}
	gotInfos, gotItems := read(one.ID)
	wantInfos, wantItems := read(each.ID)
	check(t, "infos of one batch", gotInfos[0], wantInfos[0])
	if gotInfos[1].Items != 8 || wantInfos[1].Items != 8 {
		t.Errorf("map 1 has %d and %d items, want 8", gotInfos[1].Items, wantInfos[1].Items)
	}
	check(t, "items of one batch", gotItems, wantItems)
	var msgs []string
	for _, list := range gotItems {
		for _, it := range list {
			msgs = append(msgs, fmt.Sprintf("%d:%s", it.Item, it.Message))
		}
	}
	if got := strings.Join(msgs, " "); got != "1:c 2:h 3:e 7:g" {
		t.Errorf("item rows = %s, want 1:c 2:h 3:e 7:g", got)
	}
}

// testConcurrentMapItems: coordinators of two maps of one run, and of a
// map of another run, write their items at once; nothing is lost.
func testConcurrentMapItems(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := mustCreate(t, s, newRun("fan", 2))
	b := mustCreate(t, s, newRun("fan", 1))
	const n, per = 600, 40
	mustApply(t, s, expand(a.ID, 0, mapValues(n)), expand(a.ID, 1, mapValues(n)), expand(b.ID, 0, mapValues(n)))
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, m := range []struct {
		run   int64
		index int
	}{{a.ID, 0}, {a.ID, 1}, {b.ID, 0}} {
		wg.Go(func() {
			for start := 0; start < n; start += per {
				items := make([]store.MapItem, per)
				for i := range items {
					items[i] = store.MapItem{Item: start + i, State: engine.TaskSucceeded, Attempt: 1}
				}
				err := s.Apply(ctx, store.Change{RunID: m.run, Maps: []store.MapChange{{Index: m.index, Items: items,
					Info: &store.MapInfo{Items: n, Next: start + per, Counts: map[engine.TaskState]int{engine.TaskSucceeded: start + per}}}}})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, m := range [][2]int64{{a.ID, 0}, {a.ID, 1}, {b.ID, 0}} {
		items, err := s.MapItems(ctx, store.MapItemFilter{RunID: m[0], Index: int(m[1]), Limit: n + 1})
		if err != nil || len(items) != n {
			t.Errorf("map %d of run %d has %d item rows, %v; want %d", m[1], m[0], len(items), err, n)
		}
	}
	infos, _ := s.MapInfos(ctx, a.ID)
	for _, in := range infos {
		if in.Next != n || in.Counts[engine.TaskSucceeded] != n {
			t.Errorf("info %+v, want cursor and count %d", in, n)
		}
	}
}

// testPruneTakesMaps: a pruned run takes its maps with it.
func testPruneTakesMaps(t *testing.T, s store.Store) {
	ctx := t.Context()
	nr := newRun("fan", 1)
	nr.Run.State, nr.Run.CreatedAt = engine.RunSucceeded, t0.Add(-time.Hour)
	old := mustCreate(t, s, nr)
	kept := mustCreate(t, s, newRun("fan", 1))
	for _, id := range []int64{old.ID, kept.ID} {
		c := expand(id, 0, mapValues(1500))
		c.Maps[0].Items = []store.MapItem{{Item: 3, State: engine.TaskSucceeded}}
		mustApply(t, s, c)
	}
	if ids, err := s.PruneRuns(ctx, t0, 10); err != nil || len(ids) != 1 || ids[0] != old.ID {
		t.Fatalf("PruneRuns = %v, %v; want [%d]", ids, err, old.ID)
	}
	if _, err := s.MapInfos(ctx, old.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MapInfos of a pruned run: %v", err)
	}
	if _, err := s.MapValues(ctx, old.ID, 0, 0, 1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MapValues of a pruned run: %v", err)
	}
	if _, err := s.MapItems(ctx, store.MapItemFilter{RunID: old.ID, Index: 0}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MapItems of a pruned run: %v", err)
	}
	if vs, err := s.MapValues(ctx, kept.ID, 0, 1400, 200); err != nil || len(vs) != 100 {
		t.Errorf("values of the kept run: %d, %v", len(vs), err)
	}
	if items, err := s.MapItems(ctx, store.MapItemFilter{RunID: kept.ID, Index: 0}); err != nil || len(items) != 1 {
		t.Errorf("items of the kept run: %v, %v", items, err)
	}
}

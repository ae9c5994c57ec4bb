package apitest

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"sync"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Items implements api.Service. The Fake keeps no items: a task without a
// Map is not a map, and one with a Map has no items it can list (use Maps
// for a fake whose map tasks have items).
func (f *Fake) Items(ctx context.Context, runID int64, task string, q api.ItemQuery) (api.Page[api.Item], error) {
	if err := f.enter("Items", runID, task, q); err != nil {
		return api.Page[api.Item]{}, err
	}
	defer f.mu.Unlock()
	r, i, err := f.taskLocked(runID, task)
	if err != nil {
		return api.Page[api.Item]{}, err
	}
	if r.Tasks[i].Map == nil {
		return api.Page[api.Item]{}, api.NotAMap(runID, task)
	}
	return api.Page[api.Item]{Items: []api.Item{}}, nil
}

// Maps is a Fake whose map tasks have items, kept in an in-memory
// store.Maps (MapStore): Items pages them and LogKey names their logs
// (TASK.ITEM) with the API's own readers, api.ReadItems and
// api.ItemLogKey, as the server does.
type Maps struct {
	*Fake
	Store *MapStore
	// Logs, when set, is where LogKey looks for the log of an attempt
	// under way (see api.ItemLogKey).
	Logs logs.Store
	mu   sync.Mutex
	maps map[mapTask]int // map tasks by run and task id: their task index
}

type mapTask struct {
	run  int64
	task string
}

var _ api.Service = (*Maps)(nil)

// NewMaps returns f with map tasks.
func NewMaps(f *Fake) *Maps {
	return &Maps{Fake: f, Store: NewMapStore(), maps: map[mapTask]int{}}
}

// AddMap makes task of run a map expanded to values, with items below next
// started and rows the kept state of some (their RunID and Index are
// filled in). The task's Map is set from them, counted as the runner
// counts: an item without a row is running below next, pending from it on.
// Values nil makes a map that has not started (its items are not known).
func (m *Maps) AddMap(runID int64, task string, values []json.RawMessage, next int, rows ...store.MapItem) {
	f := m.Fake
	f.mu.Lock()
	r, i, err := f.taskLocked(runID, task)
	if err != nil {
		f.mu.Unlock()
		panic("apitest: AddMap: " + err.Error())
	}
	index := r.Tasks[i].Index
	var info *store.MapInfo
	if values != nil {
		info = &store.MapInfo{RunID: runID, Index: index, Items: len(values), Next: next, Counts: map[engine.TaskState]int{}}
		kept := map[int]bool{}
		for k := range rows {
			rows[k].RunID, rows[k].Index = runID, index
			kept[rows[k].Item] = true
			info.Counts[rows[k].State]++
			if rows[k].State == engine.TaskSucceeded && rows[k].CachedFrom != 0 {
				info.Counts[engine.TaskState(api.StateCached)]++
			}
			if d := rows[k].FinishedAt.Sub(rows[k].StartedAt); rows[k].State == engine.TaskSucceeded && d > 0 {
				info.Slowest = append(info.Slowest, store.SlowItem{Item: rows[k].Item, Attempt: rows[k].Attempt, Duration: d})
			}
		}
		for item := range values {
			if !kept[item] && item < next {
				info.Counts[engine.TaskRunning]++
			} else if !kept[item] {
				info.Counts[engine.TaskPending]++
			}
		}
		slices.SortStableFunc(info.Slowest, func(a, b store.SlowItem) int { return cmp.Compare(b.Duration, a.Duration) })
		info.Slowest = info.Slowest[:min(len(info.Slowest), store.MaxSlowItems)]
		r.Tasks = slices.Clone(r.Tasks)
		r.Tasks[i].Map = api.NewMapState(*info)
		f.runs[runID] = r
	}
	f.mu.Unlock()

	m.mu.Lock()
	m.maps[mapTask{runID, task}] = index
	m.mu.Unlock()
	if info != nil {
		m.Store.Put(*info, values, rows...)
	}
}

// mapInfo finds a map task of the fake: its stored info, or an error as
// the server would answer.
func (m *Maps) mapInfo(ctx context.Context, runID int64, task string) (store.MapInfo, error) {
	t, err := m.Fake.Task(ctx, runID, task)
	if err != nil {
		return store.MapInfo{}, err
	}
	m.mu.Lock()
	index, ok := m.maps[mapTask{runID, task}]
	m.mu.Unlock()
	if !ok {
		return store.MapInfo{}, api.NotAMap(runID, task)
	}
	infos, _ := m.Store.MapInfos(ctx, runID)
	for _, info := range infos {
		if info.Index == index {
			return info, nil
		}
	}
	return store.MapInfo{}, api.NotExpanded(runID, task, t.State)
}

// Items implements api.Service with api.ReadItems.
func (m *Maps) Items(ctx context.Context, runID int64, task string, q api.ItemQuery) (api.Page[api.Item], error) {
	if err := m.Fake.enter("Items", runID, task, q); err != nil {
		return api.Page[api.Item]{}, err
	}
	m.Fake.mu.Unlock()
	info, err := m.mapInfo(ctx, runID, task)
	if err != nil {
		return api.Page[api.Item]{}, err
	}
	return api.ReadItems(ctx, m.Store, info, q)
}

// LogKey implements api.Service: an item's log name (TASK.ITEM) with
// api.ItemLogKey, anything else as the Fake does.
func (m *Maps) LogKey(ctx context.Context, runID int64, task string, attempt int) (logs.Key, error) {
	name, item, ok := api.ParseItemLogName(task)
	if !ok {
		return m.Fake.LogKey(ctx, runID, task, attempt)
	}
	info, err := m.mapInfo(ctx, runID, name)
	if err != nil {
		return logs.Key{}, err
	}
	return api.ItemLogKey(ctx, m.Store, m.Logs, info, name, item, attempt)
}

// MapStore is an in-memory store.Maps that counts its reads, so tests can
// say what a request cost.
type MapStore struct {
	mu     sync.Mutex
	infos  map[int64][]store.MapInfo
	values map[mapIndex][]json.RawMessage
	rows   map[mapIndex][]store.MapItem // in item order
	reads  map[string]int
}

type mapIndex struct {
	run   int64
	index int
}

var _ store.Maps = (*MapStore)(nil)

// NewMapStore returns an empty MapStore.
func NewMapStore() *MapStore {
	return &MapStore{infos: map[int64][]store.MapInfo{}, values: map[mapIndex][]json.RawMessage{},
		rows: map[mapIndex][]store.MapItem{}, reads: map[string]int{}}
}

// Put stores (or replaces) a map: its info, item values and kept rows.
func (s *MapStore) Put(info store.MapInfo, values []json.RawMessage, rows ...store.MapItem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := mapIndex{info.RunID, info.Index}
	s.infos[info.RunID] = slices.DeleteFunc(s.infos[info.RunID], func(i store.MapInfo) bool { return i.Index == info.Index })
	s.infos[info.RunID] = append(s.infos[info.RunID], info)
	slices.SortFunc(s.infos[info.RunID], func(a, b store.MapInfo) int { return a.Index - b.Index })
	s.values[k] = values
	rows = slices.Clone(rows)
	slices.SortFunc(rows, func(a, b store.MapItem) int { return a.Item - b.Item })
	s.rows[k] = rows
}

// Reads returns how many times each read was called (MapInfos,
// MapValues, MapItems).
func (s *MapStore) Reads() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.reads))
	for k, n := range s.reads {
		out[k] = n
	}
	return out
}

// MapInfos implements store.Maps; a run without maps has none.
func (s *MapStore) MapInfos(ctx context.Context, runID int64) ([]store.MapInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads["MapInfos"]++
	return slices.Clone(s.infos[runID]), nil
}

// MapValues implements store.Maps.
func (s *MapStore) MapValues(ctx context.Context, runID int64, index, from, n int) ([]json.RawMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads["MapValues"]++
	vals, ok := s.values[mapIndex{runID, index}]
	if !ok {
		return nil, store.ErrNotFound
	}
	if from >= len(vals) {
		return []json.RawMessage{}, nil
	}
	return slices.Clone(vals[from:min(from+n, len(vals))]), nil
}

// MapItems implements store.Maps.
func (s *MapStore) MapItems(ctx context.Context, f store.MapItemFilter) ([]store.MapItem, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads["MapItems"]++
	limit := f.Limit
	if limit <= 0 {
		limit = store.DefaultMapItemsLimit
	}
	out := []store.MapItem{}
	for _, row := range s.rows[mapIndex{f.RunID, f.Index}] {
		if row.Item < f.From || (len(f.States) > 0 && !slices.Contains(f.States, row.State)) {
			continue
		}
		if len(out) == limit {
			break
		}
		out = append(out, row)
	}
	return out, nil
}

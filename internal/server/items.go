package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// The items of map tasks, as the API shows them: a run's detail carries
// each map's counts, read with one MapInfos call for the whole run (never a
// row per item, so a map of a million items answers as fast as one of
// ten); the items are paged from the store's index (api.ReadItems).

// hasMap reports whether a pipeline has a map task. When the pipeline
// cannot be read, it may: the store is asked.
func hasMap(p *spec.Pipeline, err error) bool {
	if err != nil {
		return true
	}
	for i := range p.Tasks {
		if p.Tasks[i].Map != nil {
			return true
		}
	}
	return false
}

// addMaps fills in the Map of the map tasks among tasks (tasks[k] is the
// API view of rows[k]) with one read of the run's maps, and only for a
// pipeline that has maps.
func (v *service) addMaps(ctx context.Context, r store.Run, rows []store.TaskRow, tasks []api.Task) error {
	if !hasMap(v.s.runner.Pipeline(ctx, r.VersionID)) {
		return nil
	}
	infos, err := v.s.store.MapInfos(ctx, r.ID)
	if err != nil {
		return fmt.Errorf("read the maps of run %d: %w", r.ID, err)
	}
	for _, info := range infos {
		for k := range rows {
			if rows[k].Index == info.Index {
				tasks[k].Map = api.NewMapState(info)
			}
		}
	}
	return nil
}

// mapOf finds map task id of a run and its stored state: not found when
// the run or task does not exist, when the task is not a map, or when the
// map has not started (its items are not known yet).
func (v *service) mapOf(ctx context.Context, runID int64, id string) (store.MapInfo, error) {
	r, err := v.s.store.Run(ctx, runID)
	if errors.Is(err, store.ErrNotFound) {
		return store.MapInfo{}, api.NotFound("no run %d", runID)
	}
	if err != nil {
		return store.MapInfo{}, err
	}
	t, err := v.task(ctx, runID, id)
	if err != nil {
		return store.MapInfo{}, err
	}
	p, err := v.s.runner.Pipeline(ctx, r.VersionID)
	if err != nil {
		return store.MapInfo{}, fmt.Errorf("pipeline version of run %d: %w", runID, err)
	}
	if t.Index >= len(p.Tasks) || p.Tasks[t.Index].Map == nil {
		return store.MapInfo{}, api.NotAMap(runID, t.TaskID)
	}
	infos, err := v.s.store.MapInfos(ctx, runID)
	if err != nil {
		return store.MapInfo{}, fmt.Errorf("read the maps of run %d: %w", runID, err)
	}
	for _, info := range infos {
		if info.Index == t.Index {
			return info, nil
		}
	}
	return store.MapInfo{}, api.NotExpanded(runID, t.TaskID, t.State)
}

// Items implements api.Service.
func (v *service) Items(ctx context.Context, runID int64, task string, q api.ItemQuery) (api.Page[api.Item], error) {
	info, err := v.mapOf(ctx, runID, task)
	if err != nil {
		return api.Page[api.Item]{}, err
	}
	ms, err := v.itemValues(ctx, runID, info)
	if err != nil {
		return api.Page[api.Item]{}, err
	}
	return api.ReadItems(ctx, ms, info, q)
}

// itemValues is where the values of a map's items are read: the map's own
// rows, except for a map that zips with another (map: {from: A, zip:
// true}), whose item i is A's item i's result and is not stored with it.
func (v *service) itemValues(ctx context.Context, runID int64, info store.MapInfo) (store.Maps, error) {
	r, err := v.s.store.Run(ctx, runID)
	if err != nil {
		return nil, err
	}
	p, err := v.s.runner.Pipeline(ctx, r.VersionID)
	if err != nil {
		return nil, fmt.Errorf("pipeline version of run %d: %w", runID, err)
	}
	m := p.Tasks[info.Index].Map
	if m == nil || !m.Zip || m.From == "" {
		return v.s.store, nil
	}
	for i, t := range p.Tasks {
		if t.ID == m.From {
			return api.ZipValues(v.s.store, i), nil
		}
	}
	return v.s.store, nil
}

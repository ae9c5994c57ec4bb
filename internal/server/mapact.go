package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Operator actions on running maps. The runner applies them on the
// coordinator of the run, so they reach only a map that runs in this
// process: with several servers that is the leader, and a follower
// forwards these routes to it as it does the other actions on runs (their
// paths end in /cancel, /retry or /mark: see leaderOnly).

// ActOnMap implements api.Service. What the store can answer (the run, the
// task, whether it is a map, how many items it has) is answered before the
// runner is asked, so a wrong name is a 404 whether or not the map runs.
func (v *service) ActOnMap(ctx context.Context, runID int64, task string, act api.MapAction, actor string) (api.Run, error) {
	if err := act.Check(); err != nil {
		return api.Run{}, err
	}
	r, err := v.s.store.Run(ctx, runID)
	if errors.Is(err, store.ErrNotFound) {
		return api.Run{}, api.NotFound("no run %d", runID)
	}
	if err != nil {
		return api.Run{}, err
	}
	t, err := v.task(ctx, runID, task)
	if err != nil {
		return api.Run{}, err
	}
	p, err := v.s.runner.Pipeline(ctx, r.VersionID)
	if err != nil {
		return api.Run{}, fmt.Errorf("pipeline version of run %d: %w", runID, err)
	}
	if t.Index >= len(p.Tasks) || p.Tasks[t.Index].Map == nil {
		if act.Item == api.WholeMap {
			return api.Run{}, api.CancelNotAMap(runID, t.TaskID)
		}
		return api.Run{}, api.NotAMap(runID, t.TaskID)
	}
	if act.Item != api.WholeMap {
		infos, err := v.s.store.MapInfos(ctx, runID)
		if err != nil {
			return api.Run{}, fmt.Errorf("read the maps of run %d: %w", runID, err)
		}
		i := -1
		for k := range infos {
			if infos[k].Index == t.Index {
				i = k
			}
		}
		if i < 0 {
			// Not expanded: its items are not known, so none can be
			// acted on yet.
			return api.Run{}, api.MapNotRunning(runID, t.TaskID)
		}
		if n := infos[i].Items; act.Item >= n {
			return api.Run{}, api.NoItem(runID, t.TaskID, n, act.Item)
		}
	}
	_, err = v.s.runner.ActMap(ctx, runID, runner.MapAction{
		Kind: runner.MapActionKind(act.Kind), Task: t.Index, Item: act.Item, State: act.State, Actor: actor,
	})
	var refused *runner.MapActionError
	switch {
	case errors.Is(err, runner.ErrMapNotRunning):
		return api.Run{}, api.MapNotRunning(runID, t.TaskID)
	case errors.As(err, &refused):
		return api.Run{}, api.MapActionRefused(runID, t.TaskID, refused.Msg)
	case err != nil:
		return api.Run{}, fmt.Errorf("%s on map %s of run %d: %w", act.Kind, t.TaskID, runID, err)
	}
	if act.Item == api.WholeMap {
		v.s.log.Info("operator action", "run", runID, "action", "map_cancel", "task", t.TaskID, "actor", actor)
	} else {
		v.s.log.Info("operator action", "run", runID, "action", "item_"+string(act.Kind), "task", t.TaskID, "item", act.Item, "actor", actor)
	}
	return v.Run(ctx, runID)
}

package apitest

import (
	"context"
	"fmt"
	"slices"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// ActOnMap implements api.Service. The Fake keeps no items, so it checks
// what the server checks before asking the runner (the run, the task, that
// it is a map, the item against the map's Map) and answers the run
// unchanged; a map whose run is not running is refused as the server
// refuses a map that is not running (use Maps for items that change).
func (f *Fake) ActOnMap(ctx context.Context, runID int64, task string, act api.MapAction, actor string) (api.Run, error) {
	if err := f.enter("ActOnMap", runID, task, act, actor); err != nil {
		return api.Run{}, err
	}
	defer f.mu.Unlock()
	if err := act.Check(); err != nil {
		return api.Run{}, err
	}
	r, i, err := f.taskLocked(runID, task)
	if err != nil {
		return api.Run{}, err
	}
	m := r.Tasks[i].Map
	switch {
	case m == nil && act.Item == api.WholeMap:
		return api.Run{}, api.CancelNotAMap(runID, task)
	case m == nil:
		return api.Run{}, api.NotAMap(runID, task)
	case act.Item >= m.Items:
		return api.Run{}, api.NoItem(runID, task, m.Items, act.Item)
	case r.State != engine.RunRunning || r.Tasks[i].State != engine.TaskRunning:
		return api.Run{}, api.MapNotRunning(runID, task)
	}
	return r, nil
}

// ActOnMap implements api.Service over the items of Maps, as the runner
// does to a running map: cancel stops an item that has not ended (or every
// one, for the whole map, which then ends cancelled), retry makes a failed,
// timed out or cancelled item pending again, mark ends an item that is not
// running. The map's counts follow. A map is running while its task and
// its run are.
func (m *Maps) ActOnMap(ctx context.Context, runID int64, task string, act api.MapAction, actor string) (api.Run, error) {
	if err := m.Fake.enter("ActOnMap", runID, task, act, actor); err != nil {
		return api.Run{}, err
	}
	m.Fake.mu.Unlock()
	if err := act.Check(); err != nil {
		return api.Run{}, err
	}
	r, err := m.Fake.Run(ctx, runID)
	if err != nil {
		return api.Run{}, err
	}
	t := slices.IndexFunc(r.Tasks, func(t api.Task) bool { return t.ID == task })
	if t < 0 {
		return api.Run{}, api.NotFound("run %d has no task %q", runID, task)
	}
	m.mu.Lock()
	index, isMap := m.maps[mapTask{runID, task}]
	m.mu.Unlock()
	switch {
	case !isMap && act.Item == api.WholeMap:
		return api.Run{}, api.CancelNotAMap(runID, task)
	case !isMap:
		return api.Run{}, api.NotAMap(runID, task)
	}
	key := mapIndex{runID, index}
	m.Store.mu.Lock()
	var info store.MapInfo
	started := false
	for _, in := range m.Store.infos[runID] {
		if in.Index == index {
			info, started = in, true
		}
	}
	values, rows := m.Store.values[key], slices.Clone(m.Store.rows[key])
	m.Store.mu.Unlock()
	switch {
	case !started:
		return api.Run{}, api.MapNotRunning(runID, task)
	case act.Item >= info.Items:
		return api.Run{}, api.NoItem(runID, task, info.Items, act.Item)
	case r.State != engine.RunRunning || r.Tasks[t].State != engine.TaskRunning:
		return api.Run{}, api.MapNotRunning(runID, task)
	}
	// The state of each item: its row's, else running below the cursor
	// and pending from it on (as AddMap counts them).
	stateOf := func(item int) (engine.TaskState, int) {
		if k := slices.IndexFunc(rows, func(r store.MapItem) bool { return r.Item == item }); k >= 0 {
			return rows[k].State, k
		}
		if item < info.Next {
			return engine.TaskRunning, -1
		}
		return engine.TaskPending, -1
	}
	set := func(item int, k int, row store.MapItem) {
		row.Item = item
		if k >= 0 {
			row.Attempt = rows[k].Attempt
			rows[k] = row
			return
		}
		rows = append(rows, row)
	}
	refuse := func(format string, args ...any) error {
		return api.MapActionRefused(runID, task, fmt.Sprintf(format, args...))
	}
	by := actor
	if by == "" {
		by = "an operator"
	}
	if act.Item == api.WholeMap {
		for item := range info.Items {
			if st, k := stateOf(item); !st.Terminal() {
				set(item, k, store.MapItem{State: engine.TaskCancelled, Message: "cancelled"})
			}
		}
		m.AddMap(runID, task, values, info.Next, rows...)
		m.Fake.mu.Lock()
		defer m.Fake.mu.Unlock()
		run := m.Fake.runs[runID]
		run.Tasks = slices.Clone(run.Tasks)
		run.Tasks[t].State = engine.TaskCancelled
		m.Fake.runs[runID] = run
		return run, nil
	}
	st, k := stateOf(act.Item)
	switch act.Kind {
	case api.MapCancel:
		if st.Terminal() {
			return api.Run{}, refuse("item %d is %s: only a pending, waiting or running item can be cancelled", act.Item, st)
		}
		set(act.Item, k, store.MapItem{State: engine.TaskCancelled, Message: "cancelled by " + by})
	case api.MapRetry:
		if st != engine.TaskFailed && st != engine.TaskTimedOut && st != engine.TaskCancelled {
			return api.Run{}, refuse("item %d is %s: only a failed, timed out or cancelled item can be retried", act.Item, st)
		}
		set(act.Item, k, store.MapItem{State: engine.TaskPending, Message: "retry asked by " + by})
	case api.MapMark:
		switch st {
		case engine.TaskRunning:
			return api.Run{}, refuse("item %d is running: cancel it first, or wait for it", act.Item)
		case engine.TaskSucceeded, engine.TaskSkipped:
			return api.Run{}, refuse("item %d is already %s", act.Item, st)
		}
		set(act.Item, k, store.MapItem{State: act.State, Message: "marked " + string(act.State) + " by " + by})
	}
	m.AddMap(runID, task, values, info.Next, rows...)
	return m.Fake.Run(ctx, runID)
}

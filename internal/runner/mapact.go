package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// MapActionKind names an operator action on a running map.
type MapActionKind string

// Operator actions on a map or one of its items.
const (
	// MapCancel stops a map (Item < 0): its running items are stopped,
	// nothing more starts, and the map ends cancelled; or one item: it is
	// stopped if it runs (with its batch), and counts as failed.
	MapCancel MapActionKind = "cancel"
	// MapRetry runs a failed, timed out or cancelled item again, with a
	// fresh retry budget.
	MapRetry MapActionKind = "retry"
	// MapMark ends an item that is not running as succeeded or skipped.
	MapMark MapActionKind = "mark"
)

// MapAction is an operator action on a map task's items.
type MapAction struct {
	Kind  MapActionKind
	Task  int              // the map task's index
	Item  int              // the item; -1 for the whole map (MapCancel only)
	State engine.TaskState // MapMark: succeeded or skipped
	Actor string
}

// Records of operator actions on maps in a run's timeline.
const (
	RecMapCancelled engine.EventKind = "map_cancelled"
	RecItemAction   engine.EventKind = "item_action"
)

// ErrMapNotRunning is returned (wrapped) by ActMap when the map is not
// running in this process: its items can be acted on only while it runs.
var ErrMapNotRunning = errors.New("the map is not running here")

// MapActionError is an action that does not apply to the item's state;
// the message says why.
type MapActionError struct{ Msg string }

func (e *MapActionError) Error() string { return e.Msg }

// ActMap applies an operator action to a map task of a run this runner
// executes, and returns the run as written once it is. A finished map is
// taken up again by retrying the run (Act with EvRetryFailed), which runs
// its unsuccessful items again.
func (r *Runner) ActMap(ctx context.Context, runID int64, act MapAction) (store.Run, error) {
	r.defaults()
	r.mu.Lock()
	c := r.active[runID]
	r.mu.Unlock()
	if c == nil {
		return store.Run{}, fmt.Errorf("run %d: %w", runID, ErrMapNotRunning)
	}
	req := controlReq{mapAct: &act, reply: make(chan controlResult, 1)}
	select {
	case c.control <- req:
		res := <-req.reply
		return res.run, res.err
	case <-c.exited:
		return store.Run{}, fmt.Errorf("run %d: %w", runID, ErrMapNotRunning)
	case <-ctx.Done():
		return store.Run{}, ctx.Err()
	}
}

// actMap applies a map action on the coordinator's goroutine.
func (c *coordinator) actMap(act MapAction) error {
	f := c.maps[act.Task]
	if f == nil {
		id := "?"
		if act.Task >= 0 && act.Task < c.eng.Graph.Len() {
			id = c.eng.Graph.Node(act.Task).ID
		}
		return fmt.Errorf("task %s: %w", id, ErrMapNotRunning)
	}
	now := c.now()
	rec := engine.Record{Time: now, Kind: RecItemAction, Task: act.Task, Actor: act.Actor}
	if act.Item < 0 {
		if act.Kind != MapCancel {
			return &MapActionError{Msg: fmt.Sprintf("%s applies to one item; give the item", act.Kind)}
		}
		rec.Kind, rec.Message = RecMapCancelled, "map cancelled"
		c.itemRecs = append(c.itemRecs, store.Change{RunID: c.run.ID, Transition: engine.Transition{Records: []engine.Record{rec}}})
		c.records = append(c.records, rec)
		c.cancelMap(act.Task)
		return nil
	}
	i := act.Item
	if i >= f.n {
		return &MapActionError{Msg: fmt.Sprintf("item %d: the map has %d items", i, f.n)}
	}
	rec.Data = json.RawMessage(`{"item":` + strconv.Itoa(i) + `}`)
	tr := f.tries[i]
	row := store.MapItem{Index: act.Task, Item: i, Attempt: tr.attempt, Spent: tr.spent, FinishedAt: now}
	st := f.state[i]
	switch act.Kind {
	case MapCancel:
		switch {
		case st == itemRunning:
			// Stopped with its unit; recorded cancelled when its
			// executor says it ended.
			for k, h := range c.running {
				if u := f.units[k.unit-1]; k.task == act.Task && k.unit > 0 && u != nil && containsInt(u.items, i) {
					h.cancel(attempt.ErrCancelled)
				}
			}
			rec.Message = fmt.Sprintf("item %d: cancel asked", i)
		case st == itemQueued || st == itemPending || st == itemRetryWait:
			if st == itemQueued {
				f.unqueue()
			}
			f.set(i, itemCancelled)
			f.unsuccessful++
			if f.bad() > f.allowed {
				f.stopping = true
				f.unqueue()
			}
			row.State, row.Message = engine.TaskCancelled, "cancelled by "+nonEmpty(act.Actor, "an operator")
			f.dirty[i] = row
			rec.Message = fmt.Sprintf("item %d: cancelled", i)
		default:
			return &MapActionError{Msg: fmt.Sprintf("item %d is %s: only a pending, waiting or running item can be cancelled", i, st.taskState())}
		}
	case MapRetry:
		if !st.unsuccessful() {
			return &MapActionError{Msg: fmt.Sprintf("item %d is %s: only a failed, timed out or cancelled item can be retried", i, st.taskState())}
		}
		f.unsuccessful--
		f.tries[i] = itemTry{attempt: tr.attempt}
		f.set(i, itemPending)
		f.again = append(f.again, i)
		f.restop()
		row.State, row.Spent, row.Message = engine.TaskPending, 0, "retry asked by "+nonEmpty(act.Actor, "an operator")
		f.dirty[i] = row
		rec.Message = fmt.Sprintf("item %d: retry", i)
	case MapMark:
		to := itemStateOf(act.State)
		if to != itemSucceeded && to != itemSkipped {
			return &MapActionError{Msg: fmt.Sprintf("state %q: an item can be marked succeeded or skipped", act.State)}
		}
		switch st {
		case itemRunning:
			return &MapActionError{Msg: fmt.Sprintf("item %d is running: cancel it first, or wait for it", i)}
		case itemSucceeded, itemSkipped:
			return &MapActionError{Msg: fmt.Sprintf("item %d is already %s", i, st.taskState())}
		case itemQueued:
			f.unqueue()
		}
		if st.unsuccessful() {
			f.unsuccessful--
			f.restop()
		}
		delete(f.tries, i)
		f.set(i, to)
		row.State, row.Message = act.State, "marked "+string(act.State)+" by "+nonEmpty(act.Actor, "an operator")
		f.dirty[i] = row
		rec.Message = fmt.Sprintf("item %d: marked %s", i, act.State)
	default:
		return &MapActionError{Msg: fmt.Sprintf("unknown action %q", act.Kind)}
	}
	c.itemRecs = append(c.itemRecs, store.Change{RunID: c.run.ID, Transition: engine.Transition{Records: []engine.Record{rec}}})
	c.records = append(c.records, rec)
	c.zipFeed(f, i, nil) // the maps that zip with it learn how the item ended
	c.endMapIfDone(act.Task)
	return nil
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

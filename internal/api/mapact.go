package api

// Operator actions on map tasks. A map's items are not tasks, so they have
// routes of their own under the map task: cancel the map, or cancel, retry
// or mark one of its items. They act on a map while it runs, in the process
// that executes its run (runner.ActMap); a finished map is taken up again by
// retrying the run (POST /runs/{id}/retry), which runs its failed items
// again and keeps the others.

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/tasuki-dev/tasuki/internal/engine"
)

// MapActionKind names an operator action on a map task or its items.
type MapActionKind string

// The operator actions on map tasks.
const (
	// MapCancel stops the whole map (Item WholeMap): its running items are
	// stopped, nothing more starts and the map ends cancelled. Or it stops
	// one item: a running one with its batch, one not started yet at once;
	// it counts as failed against the map's tolerate.
	MapCancel MapActionKind = "cancel"
	// MapRetry runs a failed, timed out or cancelled item again, with a
	// fresh retry budget.
	MapRetry MapActionKind = "retry"
	// MapMark ends an item that is not running as succeeded or skipped.
	MapMark MapActionKind = "mark"
)

// WholeMap is the Item of an action on the map itself rather than one of
// its items (MapCancel only).
const WholeMap = -1

// MapAction is an operator action on a running map task.
type MapAction struct {
	Kind MapActionKind
	// Item is the item's position, from 0, or WholeMap.
	Item int
	// State is what MapMark makes the item: succeeded or skipped.
	State engine.TaskState
}

// Check reports what is wrong with an action, as a 400 answer, before
// anything is asked of the map.
func (a MapAction) Check() error {
	switch a.Kind {
	case MapCancel, MapRetry, MapMark:
	default:
		return invalid("map action %q: expected %s, %s or %s", clip(string(a.Kind), 40), MapCancel, MapRetry, MapMark)
	}
	switch {
	case a.Item == WholeMap && a.Kind != MapCancel:
		return invalid("%s applies to one item of a map: give the item", a.Kind)
	case a.Item < WholeMap || a.Item > maxItem:
		return invalid("item %d: expected an item's position (0 or more)", a.Item)
	case a.Kind == MapMark && a.State != engine.TaskSucceeded && a.State != engine.TaskSkipped:
		return invalid("field \"state\": expected %q or %q, got %q", engine.TaskSucceeded, engine.TaskSkipped, clip(string(a.State), 40))
	case a.Kind != MapMark && a.State != "":
		return invalid("%s takes no state", a.Kind)
	}
	return nil
}

// MapNotRunning is the answer to an action on a map that is not running in
// the process that executes its run: it has not started, it has ended, or
// its run has.
func MapNotRunning(runID int64, task string) *Error {
	return Errorf(http.StatusConflict, CodeConflict,
		"map %q of run %d is not running; to run its failed items again, retry the run: POST %s/runs/%d/retry", task, runID, Prefix, runID)
}

// CancelNotAMap is the answer to cancelling a task that is not a map on
// its own: only a map's items can be stopped apart from the run.
func CancelNotAMap(runID int64, task string) *Error {
	return invalid("task %q of run %d is not a map task: a task is cancelled with its run (POST %s/runs/%d/cancel)", task, runID, Prefix, runID)
}

// NoItem is the answer about an item past the end of a map.
func NoItem(runID int64, task string, items, item int) *Error {
	return NotFound("map task %q of run %d has %d items (0 to %d): no item %d", task, runID, items, items-1, item)
}

// MapActionRefused is the answer to an action that does not apply to the
// item's state now; why says why (runner.MapActionError).
func MapActionRefused(runID int64, task string, why string) *Error {
	return Errorf(http.StatusConflict, CodeConflict, "map %q of run %d: %s", task, runID, why)
}

// mapTask reads the run and map task of a map action's route. A task
// named like an item's log (TASK.N) is refused with the route that acts on
// the item: the routes name items in their own path segment.
func mapTask(r *http.Request) (int64, string, error) {
	id, task, err := runAndTask(r)
	if err != nil {
		return 0, "", err
	}
	if name, item, ok := ParseItemLogName(task); ok {
		return 0, "", invalid("task %q: name the map task; item %d of %s is acted on at %s/runs/%d/tasks/%s/items/%d/...",
			clip(task, 80), item, name, Prefix, id, name, item)
	}
	return id, task, nil
}

// pathItem reads {item}, an item's position.
func pathItem(r *http.Request) (int, error) {
	s := r.PathValue("item")
	bad := invalid("item %q: expected an item's position (0 or more)", clip(s, 40))
	if s == "" || strings.Trim(s, "0123456789") != "" || (len(s) > 1 && s[0] == '0') {
		return 0, bad
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > maxItem {
		return 0, bad
	}
	return n, nil
}

// cancelMap serves POST /runs/{id}/tasks/{task}/cancel.
func (h *handler) cancelMap(w http.ResponseWriter, r *http.Request) error {
	id, task, err := mapTask(r)
	if err != nil {
		return err
	}
	return h.actOnMap(w, r, id, task, MapAction{Kind: MapCancel, Item: WholeMap})
}

func (h *handler) cancelItem(w http.ResponseWriter, r *http.Request) error {
	return h.itemAction(w, r, MapCancel)
}

func (h *handler) retryItem(w http.ResponseWriter, r *http.Request) error {
	return h.itemAction(w, r, MapRetry)
}

func (h *handler) markItem(w http.ResponseWriter, r *http.Request) error {
	return h.itemAction(w, r, MapMark)
}

// itemAction serves POST /runs/{id}/tasks/{task}/items/{item}/KIND; mark
// takes {"state": "succeeded"|"skipped"}, as a task's mark does.
func (h *handler) itemAction(w http.ResponseWriter, r *http.Request, kind MapActionKind) error {
	id, task, err := mapTask(r)
	if err != nil {
		return err
	}
	item, err := pathItem(r)
	if err != nil {
		return err
	}
	setAuditTarget(r, "item", strconv.Itoa(item))
	act := MapAction{Kind: kind, Item: item}
	if kind == MapMark {
		var req MarkRequest
		if err := decodeBody(w, r, &req, false); err != nil {
			return err
		}
		act.State = req.State
	}
	return h.actOnMap(w, r, id, task, act)
}

func (h *handler) actOnMap(w http.ResponseWriter, r *http.Request, id int64, task string, act MapAction) error {
	who := who(r)
	if err := act.Check(); err != nil {
		return err
	}
	run, err := h.svc.ActOnMap(r.Context(), id, task, act, who)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, run)
	return nil
}

// ActOnMap implements Service.
func (c *Client) ActOnMap(ctx context.Context, runID int64, task string, act MapAction, actor string) (Run, error) {
	if err := act.Check(); err != nil {
		return Run{}, err
	}
	req := request{method: http.MethodPost, path: taskPath(runID, task), actor: actor}
	if act.Item == WholeMap {
		req.path += "/cancel"
	} else {
		req.path += fmt.Sprintf("/items/%d/%s", act.Item, act.Kind)
	}
	if act.Kind == MapMark {
		req.body = MarkRequest{State: act.State}
	}
	var out Run
	err := c.do(ctx, req, &out)
	return out, err
}

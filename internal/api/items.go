package api

// The items of map tasks. A map runs its command once per item, up to
// millions of items, and its items are not tasks: the store keeps, per map,
// one row of counts (store.MapInfo) and a row per item that ended or waits
// for a retry (store.MapItem). So a run's detail carries each map's counts
// (Task.Map: one read for the whole run, whatever the number of items), and
// the items themselves are paged by GET /runs/{id}/tasks/{task}/items, in
// item order, straight from the store's index. Each item has its own log,
// named TASK.ITEM (ItemLogName), read through the task log route with
// ?item=N.
//
// The readers here (ReadItems, ItemLogKey) work on a store.Maps, so the
// server and the CLI's local commands answer alike.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// MapState is what the items of a map task add up to, as the run's
// coordinator last wrote it: nothing counts item rows to answer it.
type MapState struct {
	// Items is how many items the map was expanded to.
	Items int `json:"items"`
	// Started is how many items, from the first, have been started at
	// least once (or ended without running, from the cache); the others
	// have not.
	Started int `json:"started"`
	// Counts are the items by state (pending, ready, running, retry_wait,
	// succeeded, failed, timed_out, cancelled, skipped), and as "cached"
	// those of the succeeded that reused a cached result. States without
	// items are absent.
	Counts map[string]int `json:"counts"`
	// Slowest are the slowest items that ended, slowest first (at most
	// store.MaxSlowItems).
	Slowest []SlowItem `json:"slowest,omitempty"`
}

// SlowItem is one of the slowest items of a map.
type SlowItem struct {
	Item     int      `json:"item"`
	Attempt  int      `json:"attempt"`
	Duration Duration `json:"duration"`
}

// NewMapState converts a stored map.
func NewMapState(info store.MapInfo) *MapState {
	out := &MapState{Items: info.Items, Started: info.Next, Counts: make(map[string]int, len(info.Counts))}
	for s, n := range info.Counts {
		if n > 0 {
			out.Counts[string(s)] = n
		}
	}
	for _, s := range info.Slowest {
		out.Slowest = append(out.Slowest, SlowItem{Item: s.Item, Attempt: s.Attempt, Duration: Duration(s.Duration)})
	}
	return out
}

// StateCached is the count key of the items that reused a cached result
// (runner.StateCached; they are counted as succeeded too).
const StateCached = "cached"

// Item is one item of a map task.
type Item struct {
	// Item is the item's position, from 0.
	Item int `json:"item"`
	// Value is the item as the map's source gave it.
	Value json.RawMessage `json:"value,omitempty"`
	// State is the item's state. An item that has never started is
	// pending; one started and not ended yet is running (it may still be
	// waiting for a slot).
	State engine.TaskState `json:"state"`
	// Attempt is the number of the item's latest attempt that ended; 0
	// when none has (an attempt under way is its Attempt+1).
	Attempt    int        `json:"attempt"`
	Worker     string     `json:"worker,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// ReadyAt is when an item in retry_wait is tried again.
	ReadyAt *time.Time `json:"ready_at,omitempty"`
	// Duration is how long its latest attempt ran.
	Duration *Duration       `json:"duration,omitempty"`
	ExitCode *int            `json:"exit_code,omitempty"`
	Message  string          `json:"message,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
	// CachedFrom is the run whose result the item reused; absent when it
	// ran.
	CachedFrom int64 `json:"cached_from,omitempty"`
}

// NewItem converts a stored item row (value is the item's value, nil if
// unknown).
func NewItem(row store.MapItem, value json.RawMessage) Item {
	it := Item{
		Item: row.Item, Value: value, State: row.State, Attempt: row.Attempt, Worker: row.Worker,
		StartedAt: TimePtr(row.StartedAt), FinishedAt: TimePtr(row.FinishedAt), ReadyAt: TimePtr(row.ReadyAt),
		ExitCode: row.ExitCode, Message: row.Message, Result: row.Result, CachedFrom: row.CachedFrom,
	}
	if !row.StartedAt.IsZero() && !row.FinishedAt.IsZero() && !row.FinishedAt.Before(row.StartedAt) {
		d := Duration(row.FinishedAt.Sub(row.StartedAt))
		it.Duration = &d
	}
	return it
}

// ItemQuery selects one page of a map's items.
type ItemQuery struct {
	// States keeps only items in these states (one of ItemStates each);
	// empty lists every item, in order.
	States []engine.TaskState
	// From is the first item the page may hold: 0, or the Next of the
	// previous page plus one (the route's ?after= is From-1).
	From int
	// Limit is the page size: 0 for DefaultItemsLimit, at most
	// MaxItemsLimit.
	Limit int
}

// Page sizes of the items route.
const (
	DefaultItemsLimit = store.DefaultMapItemsLimit
	MaxItemsLimit     = maxLimit
)

// ItemStates are the states the items route filters on: those the store
// keeps a row, and an index, for. Items never started and items running
// have no row; they are listed, in order, without a filter.
var ItemStates = []engine.TaskState{
	engine.TaskFailed, engine.TaskTimedOut, engine.TaskCancelled, engine.TaskSucceeded, engine.TaskSkipped, engine.TaskRetryWait,
}

// ParseItemStates reads a state filter: comma-separated states, each one
// of ItemStates.
func ParseItemStates(values []string) ([]engine.TaskState, error) {
	var out []engine.TaskState
	for _, v := range values {
		for s := range strings.SplitSeq(v, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			st := engine.TaskState(s)
			if !slices.Contains(ItemStates, st) {
				return nil, invalid("state %q: expected one of %s (items pending or running have no kept state: list the items without a state filter to see them in order)",
					clip(s, 40), joinTaskStates(ItemStates))
			}
			if !slices.Contains(out, st) {
				out = append(out, st)
			}
		}
	}
	return out, nil
}

func joinTaskStates(states []engine.TaskState) string {
	parts := make([]string, len(states))
	for i, s := range states {
		parts[i] = string(s)
	}
	return strings.Join(parts, ", ")
}

// NotAMap is the answer about the items of a task that is not a map.
func NotAMap(runID int64, task string) *Error {
	return NotFound("task %q of run %d is not a map task: it has no items", task, runID)
}

// NotExpanded is the answer about the items of a map task that has not
// started, so its items are not known yet.
func NotExpanded(runID int64, task string, state engine.TaskState) *Error {
	return NotFound("map task %q of run %d has no items yet: it is %s, and a map's items are known once it starts", task, runID, state)
}

// ReadItems reads one page of the items of the map info describes.
// Without a state filter the page is a range of items in order, each with
// its kept row or, for an item without one, running (below the dispatch
// cursor while items are in flight) or pending (never started); their
// values are read with one MapValues call. With a filter it is the rows in
// those states, read from the store's index from q.From on (a page of the
// failed items of a million costs the page), and their values with one
// MapValues call per cluster of nearby rows.
func ReadItems(ctx context.Context, ms store.Maps, info store.MapInfo, q ItemQuery) (Page[Item], error) {
	page := Page[Item]{Items: []Item{}}
	if _, err := ParseItemStates(statesText(q.States)); err != nil {
		return page, err
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultItemsLimit
	}
	limit = min(limit, MaxItemsLimit)
	from := max(q.From, 0)
	if from >= info.Items {
		return page, nil
	}
	if len(q.States) == 0 {
		end := min(from+limit, info.Items)
		rows, err := ms.MapItems(ctx, store.MapItemFilter{RunID: info.RunID, Index: info.Index, From: from, Limit: end - from})
		if err != nil {
			return page, fmt.Errorf("read items %d to %d of map %d of run %d: %w", from, end-1, info.Index, info.RunID, err)
		}
		values, err := ms.MapValues(ctx, info.RunID, info.Index, from, end-from)
		if err != nil {
			return page, fmt.Errorf("read the values of items %d to %d of map %d of run %d: %w", from, end-1, info.Index, info.RunID, err)
		}
		k := 0
		for i := from; i < end; i++ {
			for k < len(rows) && rows[k].Item < i {
				k++
			}
			var value json.RawMessage
			if i-from < len(values) {
				value = values[i-from]
			}
			switch {
			case k < len(rows) && rows[k].Item == i:
				page.Items = append(page.Items, NewItem(rows[k], value))
			case i < info.Next && inFlight(info):
				page.Items = append(page.Items, Item{Item: i, Value: value, State: engine.TaskRunning})
			default:
				page.Items = append(page.Items, Item{Item: i, Value: value, State: engine.TaskPending})
			}
		}
		if end < info.Items {
			page.Next = strconv.Itoa(end - 1)
		}
		return page, nil
	}
	rows, err := ms.MapItems(ctx, store.MapItemFilter{RunID: info.RunID, Index: info.Index, States: q.States, From: from, Limit: limit + 1})
	if err != nil {
		return page, fmt.Errorf("read the %s items of map %d of run %d: %w", joinTaskStates(q.States), info.Index, info.RunID, err)
	}
	// Rows past the map's end (left by an expansion to fewer items) are
	// not items.
	rows = slices.DeleteFunc(rows, func(r store.MapItem) bool { return r.Item >= info.Items })
	if len(rows) > limit {
		rows = rows[:limit]
		page.Next = strconv.Itoa(rows[limit-1].Item)
	}
	values, err := clusterValues(ctx, ms, info, rows)
	if err != nil {
		return page, err
	}
	for i, row := range rows {
		page.Items = append(page.Items, NewItem(row, values[i]))
	}
	return page, nil
}

// inFlight reports whether some items of the map are queued or running.
// An item below the dispatch cursor without a row is one of them, unless
// none is: a map that stopped early (too many failures, a cancel) leaves
// the items it had queued pending again, behind its cursor.
func inFlight(info store.MapInfo) bool {
	return info.Counts[engine.TaskRunning]+info.Counts[engine.TaskReady] > 0
}

func statesText(states []engine.TaskState) []string {
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = string(s)
	}
	return out
}

// clusterValues reads the values of rows (in item order): one MapValues
// call per run of rows less than a chunk apart, so that a dense page is
// one read and a sparse one does not read the chunks between its rows.
func clusterValues(ctx context.Context, ms store.Maps, info store.MapInfo, rows []store.MapItem) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, len(rows))
	for start := 0; start < len(rows); {
		end := start + 1
		for end < len(rows) && rows[end].Item-rows[end-1].Item < store.MapChunkItems {
			end++
		}
		first, last := rows[start].Item, rows[end-1].Item
		vals, err := ms.MapValues(ctx, info.RunID, info.Index, first, last-first+1)
		if err != nil {
			return nil, fmt.Errorf("read the values of items %d to %d of map %d of run %d: %w", first, last, info.Index, info.RunID, err)
		}
		for i := start; i < end; i++ {
			if k := rows[i].Item - first; k < len(vals) {
				out[i] = vals[k]
			}
		}
		start = end
	}
	return out, nil
}

// ItemLogName is the name of the log of an item of a map task: TASK.ITEM
// (logs.ItemTask, the one definition the runner uses too).
func ItemLogName(task string, item int) string { return logs.ItemTask(task, item) }

// ParseItemLogName splits an item's log name TASK.ITEM (logs.ParseItemTask);
// ok is false for anything else (a task id, which holds no dot).
func ParseItemLogName(name string) (task string, item int, ok bool) { return logs.ParseItemTask(name) }

// maxItem bounds an item's position in requests.
const maxItem = 1<<31 - 1

// ItemLogKey names the log of an attempt of item of the map info
// describes (task is the map's task id; attempt 0: the item's latest).
// The item's row gives its latest attempt that ended and, for the items of
// a batch, the log they share (MapItem.Log). An item started and not ended
// has its attempt under way: its first for an item without a row, the
// next one for an item waiting for its retry whose next log has begun (ls,
// if not nil, is asked).
func ItemLogKey(ctx context.Context, ms store.Maps, ls logs.Store, info store.MapInfo, task string, item, attempt int) (logs.Key, error) {
	if item < 0 || item >= info.Items {
		return logs.Key{}, NotFound("map task %q of run %d has %d items (0 to %d): no item %d", task, info.RunID, info.Items, info.Items-1, item)
	}
	rows, err := ms.MapItems(ctx, store.MapItemFilter{RunID: info.RunID, Index: info.Index, From: item, Limit: 1})
	if err != nil {
		return logs.Key{}, fmt.Errorf("read item %d of map %d of run %d: %w", item, info.Index, info.RunID, err)
	}
	name := ItemLogName(task, item)
	latest := 0
	switch {
	case len(rows) == 1 && rows[0].Item == item:
		row := rows[0]
		latest = row.Attempt
		if row.Log != "" && validLogName(row.Log) {
			name = row.Log
			break
		}
		if ls != nil && (row.State == engine.TaskRetryWait || row.State == engine.TaskPending) {
			next := logs.Key{RunID: info.RunID, TaskID: name, Attempt: latest + 1}
			if _, err := ls.Size(ctx, next); err == nil {
				latest++
			}
		}
	case item < info.Next && inFlight(info):
		latest = 1 // started, and no attempt of it has ended yet
	}
	if latest == 0 {
		return logs.Key{}, NotFound("item %d of map task %q of run %d has not started yet", item, task, info.RunID)
	}
	if attempt == 0 {
		attempt = latest
	}
	if attempt < 1 || attempt > latest {
		return logs.Key{}, NotFound("item %d of map task %q of run %d has no attempt %d (latest is %d)", item, task, info.RunID, attempt, latest)
	}
	return logs.Key{RunID: info.RunID, TaskID: name, Attempt: attempt}, nil
}

// validLogName reports whether a stored log name can be a log key's task
// part (see logs.Key): a name the runner wrote, not a path.
func validLogName(s string) bool {
	return s != "." && s != ".." && !strings.ContainsAny(s, "/\\\x00")
}

// items serves GET /runs/{id}/tasks/{task}/items.
func (h *handler) items(w http.ResponseWriter, r *http.Request) error {
	id, task, err := runAndTask(r)
	if err != nil {
		return err
	}
	q, _ := parseQuery(r) // checked by checkQuery
	var query ItemQuery
	if query.States, err = ParseItemStates(q["state"]); err != nil {
		if e, ok := errors.AsType[*Error](err); ok {
			e.Message = "query parameter " + e.Message
		}
		return err
	}
	after, err := queryInt(r, "after", 0, maxItem, -1)
	if err != nil {
		return err
	}
	query.From = int(after) + 1
	if query.Limit, err = queryLimit(r); err != nil {
		return err
	}
	page, err := h.svc.Items(r.Context(), id, task, query)
	if err != nil {
		return err
	}
	page.Items = nonNil(page.Items)
	writeJSON(w, http.StatusOK, page)
	return nil
}

// taskLogRoute serves GET /runs/{id}/tasks/{task}/logs: with ?item=N the
// log of item N of the map task, whose name is TASK.N (ItemLogName; the
// route takes that name in place of the task id too), else the task's.
// Service.LogKey resolves either.
func (h *handler) taskLogRoute(w http.ResponseWriter, r *http.Request) error {
	item, err := queryInt(r, "item", 0, maxItem, -1)
	if err != nil {
		return err
	}
	if item >= 0 {
		_, task, err := runAndTask(r)
		if err != nil {
			return err
		}
		if strings.Contains(task, ".") {
			return invalid("task %q: with ?item=, name the map task (an item's log is TASK with ?item=ITEM, or TASK.ITEM)", clip(task, 80))
		}
		r.SetPathValue("task", ItemLogName(task, int(item)))
	}
	return h.taskLog(w, r)
}

// Items implements Service.
func (c *Client) Items(ctx context.Context, runID int64, task string, q ItemQuery) (Page[Item], error) {
	v := url.Values{}
	if len(q.States) > 0 {
		v.Set("state", joinTaskStates(q.States))
	}
	if q.From > 0 {
		v.Set("after", strconv.Itoa(q.From-1))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(min(q.Limit, MaxItemsLimit)))
	}
	var p Page[Item]
	err := c.do(ctx, request{method: http.MethodGet, path: taskPath(runID, task) + "/items", query: v}, &p)
	return p, err
}

// Item returns one item of a map task, as the items route lists it.
func (c *Client) Item(ctx context.Context, runID int64, task string, item int) (Item, error) {
	if item < 0 {
		return Item{}, invalid("item %d: expected a position from 0", item)
	}
	p, err := c.Items(ctx, runID, task, ItemQuery{From: item, Limit: 1})
	if err != nil {
		return Item{}, err
	}
	if len(p.Items) == 0 || p.Items[0].Item != item {
		return Item{}, NotFound("map task %q of run %d has no item %d", task, runID, item)
	}
	return p.Items[0], nil
}

// ZipValues returns ms reading the values of a zipped map's items (map:
// {from: A, zip: true}) from the results of A, the map task at index up:
// a zipped map's item i is A's item i's result, not stored with it. An
// item of A that did not succeed gives null.
func ZipValues(ms store.Maps, up int) store.Maps { return zipValues{Maps: ms, up: up} }

type zipValues struct {
	store.Maps
	up int
}

func (z zipValues) MapValues(ctx context.Context, runID int64, _, from, n int) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, n)
	for i := range out {
		out[i] = json.RawMessage("null")
	}
	// The range may be longer than one read of rows may be (a cluster of
	// sparse rows of a large map): read it page by page.
	for cur := from; cur < from+n; {
		want := min(from+n-cur, store.MaxMapItemsLimit)
		rows, err := z.MapItems(ctx, store.MapItemFilter{RunID: runID, Index: z.up, From: cur, Limit: want})
		if err != nil {
			return nil, fmt.Errorf("read the results of items %d to %d of map %d of run %d: %w", cur, from+n-1, z.up, runID, err)
		}
		for _, row := range rows {
			if k := row.Item - from; k >= 0 && k < n && row.State == engine.TaskSucceeded && len(row.Result) > 0 {
				out[k] = row.Result
			}
		}
		if len(rows) < want {
			break
		}
		cur = rows[len(rows)-1].Item + 1
	}
	return out, nil
}

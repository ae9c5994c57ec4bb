package runner

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// A map task runs its command once per item. The engine sees the map as
// one task that is running while its items run; the items themselves never
// enter the engine or the task table. Their state lives here, one byte per
// item, and in the store as compact rows (store.Maps): only items that
// ended (or wait for a retry) have a row, and the counts by state are kept
// as items change, so nothing reads or scans every item per event. A
// million items cost about a megabyte of state besides their values.

// itemState is an item's state in memory.
type itemState uint8

const (
	itemPending   itemState = iota // not started yet, or ready again
	itemQueued                     // in a unit waiting for an execution slot
	itemRunning                    // in a unit that runs
	itemRetryWait                  // failed an attempt; ready again at its time
	itemSucceeded
	itemFailed
	itemTimedOut
	itemCancelled
	itemSkipped
	numItemStates
)

// taskState is the state's name, as the store and the API know it.
func (s itemState) taskState() engine.TaskState {
	return [...]engine.TaskState{
		engine.TaskPending, engine.TaskReady, engine.TaskRunning, engine.TaskRetryWait,
		engine.TaskSucceeded, engine.TaskFailed, engine.TaskTimedOut, engine.TaskCancelled, engine.TaskSkipped,
	}[s]
}

func itemStateOf(s engine.TaskState) itemState {
	for i := range numItemStates {
		if i.taskState() == s {
			return i
		}
	}
	return itemPending
}

func (s itemState) done() bool { return s >= itemSucceeded }

// unsuccessful counts against the map's tolerance.
func (s itemState) unsuccessful() bool {
	return s == itemFailed || s == itemTimedOut || s == itemCancelled
}

// StateCached is the count key of items that reused a cached result
// (they are also counted as succeeded).
const StateCached engine.TaskState = "cached"

// itemValues holds a map's item values compactly: one buffer and the
// offset of each value, instead of a slice per item.
type itemValues struct {
	buf []byte
	off []uint32 // len n+1
}

func (v *itemValues) add(raw []byte) {
	if len(v.off) == 0 {
		v.off = append(v.off, 0)
	}
	v.buf = append(v.buf, raw...)
	v.off = append(v.off, uint32(len(v.buf)))
}

func (v *itemValues) len() int { return max(len(v.off)-1, 0) }

func (v *itemValues) at(i int) json.RawMessage { return v.buf[v.off[i]:v.off[i+1]:v.off[i+1]] }

// all returns every value, sharing the buffer (for the store's expansion).
func (v *itemValues) all() []json.RawMessage {
	out := make([]json.RawMessage, v.len())
	for i := range out {
		out[i] = v.at(i)
	}
	return out
}

// itemTry is the attempt count of an item past its first attempt; items
// that succeed at their first attempt never get one.
type itemTry struct {
	attempt, spent int
	readyAt        time.Time
}

// unit is a group of items run by one attempt: one item, or a batch.
type unit struct {
	items    []int
	attempts []int // each item's attempt number
	started  time.Time
	queued   bool // waiting for a slot; false once running
}

// fanout is the state of one map task of an executing run.
type fanout struct {
	task    int
	t       *spec.Task
	retry   engine.RetryPolicy
	window  int // most items queued or running at once
	batch   int // items per attempt
	allowed int // unsuccessful items tolerated

	values itemValues
	zip    *zipLink // a map that zips with a map upstream (zip.go); its values are there
	n      int
	next   int // items below it have been taken for dispatch at least once
	// mark is the cursor the store has (MapInfo.Next): ahead of next, so
	// that the store never says "never taken" of an item that may run,
	// and moved on (forcing a commit) only once next passes it, not at
	// every item.
	mark   int
	state  []itemState
	tries  map[int]itemTry
	counts [numItemStates]int
	cached int
	again  []int         // items ready again (retries due, lost, handed back), in order
	fresh  []int         // a zipped map's items whose values arrived, in order (its cursor is not the way in)
	units  map[int]*unit // queued or running, by first item
	active int           // items queued or running
	// adopted are the units found running on remote workers at recovery
	// (mapadopt.go), for the coordinator to launch as adoptions.
	adopted []*leasedUnit

	unsuccessful int
	upSkipped    int  // skipped because their upstream item did not succeed; they count toward tolerate (zip)
	stopping     bool // start nothing more: too many failures, or cancelled
	cancelling   bool
	messages     []string // the first failures, for the map's message
	slow         []store.SlowItem

	// The description every item's attempt starts from (describe), built
	// once, off the coordinator's goroutine, by the first to need it.
	descOnce sync.Once
	desc     attempt.Spec
	descErr  error

	// What the next commit writes.
	markMoved bool // mark moved: commit before launching what was taken
	expanded  bool
	dirty     map[int]store.MapItem
	changed   bool
}

func newFanout(task int, t *spec.Task, retry engine.RetryPolicy, parallel int) *fanout {
	f := &fanout{task: task, t: t, retry: retry, batch: max(t.Map.Batch, 1),
		tries: map[int]itemTry{}, units: map[int]*unit{}, dirty: map[int]store.MapItem{}}
	f.window = t.Map.Concurrency
	if f.window <= 0 {
		// No cap of its own: keep enough queued to fill every slot, and
		// no more, so a million items are not a million tickets.
		f.window = max(2*parallel, 64)
	}
	f.window *= f.batch
	return f
}

// describe is Kinds.Describe for an attempt of the map's items: the kind
// and body come from the task alone, so they are built once per map (an
// http task's compiles its conditions, a shell task's encodes its
// command) and every item's Spec shares them, with its own variables and
// needs' results.
func (f *fanout) describe(kinds *attempt.Registry, env map[string]string, needs map[string]json.RawMessage) (attempt.Spec, error) {
	f.descOnce.Do(func() { f.desc, f.descErr = kinds.Describe(f.t, nil, nil) })
	s := f.desc
	s.Env, s.Needs = env, needs
	return s, f.descErr
}

// setItems gives the map its items (all pending) and computes what it
// tolerates.
func (f *fanout) setItems(v itemValues) {
	f.values = v
	f.setCount(v.len())
}

// setCount gives the map n items, all pending, and computes what it
// tolerates.
func (f *fanout) setCount(n int) {
	f.n = n
	f.state = make([]itemState, f.n)
	f.counts = [numItemStates]int{}
	f.counts[itemPending] = f.n
	if tl := f.t.Map.Tolerate; tl != nil {
		f.allowed = tl.Count
		if tl.Percent > 0 {
			f.allowed = int(float64(f.n) * tl.Percent / 100)
		}
	}
}

func (f *fanout) set(i int, s itemState) {
	f.counts[f.state[i]]--
	f.counts[s]++
	f.state[i] = s
	f.changed = true
}

// attemptOf returns item i's attempt count and spent retries so far.
func (f *fanout) attemptOf(i int) (attempt, spent int) {
	tr := f.tries[i]
	return tr.attempt, tr.spent
}

// take picks the items to queue now: those ready again first, then new
// ones from the cursor, while the window has room, grouped in units.
func (f *fanout) take() []*unit {
	if f.stopping {
		return nil
	}
	var out []*unit
	var cur *unit
	flush := func() {
		if cur != nil && len(cur.items) > 0 {
			out = append(out, cur)
		}
		cur = nil
	}
	add := func(i int) {
		if cur == nil {
			cur = &unit{queued: true}
		}
		a, _ := f.attemptOf(i)
		cur.items = append(cur.items, i)
		cur.attempts = append(cur.attempts, a+1)
		f.set(i, itemQueued)
		f.active++
		if f.zip != nil && i >= f.next {
			// Taken out of order: the cursor is the highest item taken.
			f.next = i + 1
			if f.next > f.mark {
				f.mark = min(f.n, f.next+markAhead)
				f.changed, f.markMoved = true, true
			}
		}
		if len(cur.items) == f.batch {
			flush()
		}
	}
	for f.active < f.window && len(f.again) > 0 {
		i := f.again[0]
		f.again = f.again[1:]
		if f.state[i] == itemPending && f.runnable(i) {
			add(i) // one whose value has not arrived is put in line when it does
		}
	}
	flush() // retries do not share a batch with new items
	for f.active < f.window && len(f.fresh) > 0 {
		i := f.fresh[0]
		f.fresh = f.fresh[1:]
		if f.state[i] == itemPending {
			add(i)
		}
	}
	for f.active < f.window && f.next < f.n && f.zip == nil {
		i := f.next
		f.next++
		if f.next > f.mark {
			f.mark = min(f.n, f.next+markAhead)
			f.changed, f.markMoved = true, true
		}
		if f.state[i] == itemPending {
			add(i)
		}
	}
	flush()
	for _, u := range out {
		f.units[u.items[0]] = u
	}
	return out
}

// outcome is how one item of a unit ended.
type itemOutcome struct {
	state    itemState // succeeded, failed, timed_out, cancelled; pending for lost or handed back
	exit     *int
	message  string
	result   json.RawMessage
	worker   string
	cached   int64 // run the cached result came from
	charged  bool  // a lost attempt is not charged
	retryDue time.Time
}

// end records how item i's attempt ended at time at, and returns the
// record for the timeline when it is worth one (a failure, a retry).
func (f *fanout) end(i, attempt int, started, at time.Time, o itemOutcome, seed uint64) *engine.Record {
	f.active--
	spent := f.tries[i].spent
	if !o.charged && o.state == itemPending && attempt-spent > engine.MaxUncharged {
		// Lost too often: from now on it counts as a failure, so an item
		// that brings down every executor cannot loop for ever.
		o = itemOutcome{state: itemFailed, message: nonEmpty(o.message, "lost") + fmt.Sprintf(" (lost %d times)", attempt-spent), worker: o.worker, charged: true}
	}
	if o.charged {
		spent++
	}
	f.tries[i] = itemTry{attempt: attempt, spent: spent}
	row := store.MapItem{Index: f.task, Item: i, Attempt: attempt, Spent: spent, Worker: o.worker,
		StartedAt: started, FinishedAt: at, ExitCode: o.exit, Message: o.message, Result: o.result, CachedFrom: o.cached}
	var rec *engine.Record
	note := func(kind engine.EventKind, msg string) {
		rec = &engine.Record{Time: at, Kind: kind, Task: f.task, Attempt: attempt, ExitCode: o.exit, Message: msg,
			Data: json.RawMessage(`{"item":` + strconv.Itoa(i) + `}`)}
	}
	switch {
	case o.state == itemSucceeded:
		delete(f.tries, i) // the row keeps the attempt
		f.set(i, itemSucceeded)
		if o.cached != 0 {
			f.cached++
		}
		f.noteSlow(i, attempt, at.Sub(started))
	case o.state == itemPending && f.cancelling:
		f.set(i, itemCancelled)
		f.unsuccessful++
		row.Message = "map cancelled"
	case o.state == itemPending:
		// Lost or handed back: not charged, ready again at once.
		f.set(i, itemPending)
		f.again = append(f.again, i)
		f.changed = true
		row = store.MapItem{} // nothing worth a row
	case o.state == itemCancelled || f.cancelling:
		f.set(i, itemCancelled)
		f.unsuccessful++
	case spent < f.retry.Attempts:
		u := jitterUnit(seed, f.task, i, attempt)
		delay := f.retry.Delay(spent, u)
		tr := f.tries[i]
		tr.readyAt = at.Add(delay)
		f.tries[i] = tr
		f.set(i, itemRetryWait)
		row.ReadyAt = tr.readyAt
		note(RecItemRetry, fmt.Sprintf("item %d: %s; attempt %d of %d in %s", i, nonEmpty(o.message, "failed"), spent+1, f.retry.Attempts, delay.Round(time.Millisecond)))
	default:
		f.set(i, o.state)
		f.unsuccessful++
		msg := fmt.Sprintf("item %d: %s", i, nonEmpty(o.message, string(o.state.taskState())))
		if len(f.messages) < 3 {
			f.messages = append(f.messages, msg)
		}
		note(RecItemFailed, msg)
		if f.bad() > f.allowed {
			f.stopping = true
		}
	}
	if row.Attempt > 0 {
		row.State = f.state[i].taskState()
		f.dirty[i] = row
	}
	return rec
}

// markAhead is how far the stored cursor runs ahead of the items taken.
const markAhead = 4096

// Records of map items in a run's timeline: failures and retries only (a
// million successes write none).
const (
	RecItemFailed engine.EventKind = "item_failed"
	RecItemRetry  engine.EventKind = "item_retry_scheduled"
)

func nonEmpty(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// jitterUnit picks an item retry's point in the jitter band, reproducibly.
func jitterUnit(seed uint64, task, item, attempt int) float64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%d/%d/%d", seed, task, item, attempt)
	return float64(h.Sum64()%2001)/1000 - 1
}

// retryDue makes an item waiting for its retry ready again.
func (f *fanout) retryDue(i int) {
	if f.state[i] != itemRetryWait {
		return
	}
	f.set(i, itemPending)
	f.again = append(f.again, i)
}

func (f *fanout) noteSlow(i, attempt int, d time.Duration) {
	if len(f.slow) == store.MaxSlowItems && d <= f.slow[len(f.slow)-1].Duration {
		return
	}
	s := store.SlowItem{Item: i, Attempt: attempt, Duration: d}
	k, _ := slices.BinarySearchFunc(f.slow, s, func(a, b store.SlowItem) int {
		return -cmpDuration(a.Duration, b.Duration)
	})
	f.slow = slices.Insert(f.slow, k, s)
	if len(f.slow) > store.MaxSlowItems {
		f.slow = f.slow[:store.MaxSlowItems]
	}
}

func cmpDuration(a, b time.Duration) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// finished reports whether the map has ended: nothing is queued or
// running, and either every item ended or nothing more will start.
func (f *fanout) finished() bool {
	if f.active > 0 {
		return false
	}
	if f.stopping || f.cancelling {
		return true
	}
	if f.zip != nil && !f.zip.ended {
		return false // its items end with its upstream's
	}
	return f.counts[itemSucceeded]+f.counts[itemSkipped]+f.counts[itemFailed]+f.counts[itemTimedOut]+f.counts[itemCancelled] == f.n
}

// verdict is the event that ends the map task, once finished.
func (f *fanout) verdict(attempt int) engine.Event {
	summary := f.summary()
	counts := fmt.Sprintf("%d items: %d succeeded", f.n, f.counts[itemSucceeded])
	if f.cached > 0 {
		counts += fmt.Sprintf(" (%d from the cache)", f.cached)
	}
	if n := f.counts[itemSkipped]; n > 0 {
		counts += fmt.Sprintf(", %d skipped", n)
	}
	for _, s := range []struct {
		state itemState
		word  string
	}{{itemFailed, "failed"}, {itemTimedOut, "timed out"}, {itemCancelled, "cancelled"}} {
		if n := f.counts[s.state]; n > 0 {
			counts += fmt.Sprintf(", %d %s", n, s.word)
		}
	}
	if n := f.n - f.counts[itemSucceeded] - f.counts[itemSkipped] - f.unsuccessful; n > 0 {
		counts += fmt.Sprintf(", %d not run", n)
	}
	switch {
	case f.cancelling:
		return engine.Event{Kind: engine.EvTaskCancelled, Task: f.task, Attempt: attempt, Message: "map cancelled: " + counts, Result: summary}
	case f.zip != nil && f.zip.upFailed():
		msg := fmt.Sprintf("map %s ended %s: %s", f.zip.id, f.zip.upState, counts)
		if len(f.messages) > 0 {
			msg += "; " + strings.Join(f.firstFailures(), "; ")
		}
		return engine.Event{Kind: engine.EvTaskFailed, Task: f.task, Attempt: attempt, Message: msg, Result: summary}
	case f.bad() > f.allowed || f.stopping:
		msg := counts
		if f.allowed > 0 {
			msg += fmt.Sprintf(", more than the %d tolerated", f.allowed)
		}
		if len(f.messages) > 0 {
			msg += "; " + strings.Join(f.firstFailures(), "; ")
		}
		return engine.Event{Kind: engine.EvTaskFailed, Task: f.task, Attempt: attempt, Message: msg, Result: summary}
	}
	return engine.Event{Kind: engine.EvTaskSucceeded, Task: f.task, Attempt: attempt, Message: counts, Result: summary}
}

// firstFailures are the messages of the first failed items, in item
// order (they end in whatever order their attempts did).
func (f *fanout) firstFailures() []string {
	out := slices.Clone(f.messages)
	slices.SortFunc(out, func(a, b string) int { return itemOfMessage(a) - itemOfMessage(b) })
	return out
}

// itemOfMessage reads N back from "item N: ...".
func itemOfMessage(m string) int {
	num, _, _ := strings.Cut(strings.TrimPrefix(m, "item "), ":")
	n, _ := strconv.Atoi(num)
	return n
}

// summary is the map task's own result: its counts.
func (f *fanout) summary() json.RawMessage {
	raw, _ := json.Marshal(struct {
		Items     int `json:"items"`
		Succeeded int `json:"succeeded"`
		Failed    int `json:"failed"`
		Skipped   int `json:"skipped,omitempty"`
		Cached    int `json:"cached,omitempty"`
	}{f.n, f.counts[itemSucceeded], f.unsuccessful, f.counts[itemSkipped], f.cached})
	return raw
}

// info is the map's row as the store keeps it.
func (f *fanout) info() *store.MapInfo {
	counts := make(map[engine.TaskState]int, numItemStates+1)
	for s := range numItemStates {
		if n := f.counts[s]; n > 0 {
			counts[s.taskState()] = n
		}
	}
	if f.cached > 0 {
		counts[StateCached] = f.cached
	}
	return &store.MapInfo{Items: f.n, Next: max(f.mark, f.next), Counts: counts, Slowest: slices.Clone(f.slow)}
}

// flush returns what the next commit must write about the map, and
// forgets it.
func (f *fanout) flush() *store.MapChange {
	if !f.changed && !f.expanded && len(f.dirty) == 0 {
		return nil
	}
	mc := &store.MapChange{Index: f.task, Info: f.info()}
	if f.expanded {
		mc.Values = f.values.all()
		f.expanded = false
		if f.zip != nil {
			f.values = itemValues{} // placeholders, written once: the values are in f.zip
		}
	}
	if len(f.dirty) > 0 {
		mc.Items = make([]store.MapItem, 0, len(f.dirty))
		for _, row := range f.dirty {
			mc.Items = append(mc.Items, row)
		}
		slices.SortFunc(mc.Items, func(a, b store.MapItem) int { return a.Item - b.Item })
		if len(f.dirty) > 4096 {
			f.dirty = map[int]store.MapItem{} // a map does not shrink when cleared
		} else {
			clear(f.dirty)
		}
	}
	f.changed, f.markMoved = false, false
	return mc
}

// itemEnv is what a map item adds to its attempt's variables: the item
// (a string as itself, anything else as JSON), its index, and for a flat
// object each key as TASUKI_ITEM_<KEY>.
func itemEnv(vars map[string]string, index int, raw json.RawMessage) {
	vars["TASUKI_ITEM_INDEX"] = strconv.Itoa(index)
	vars["TASUKI_ITEM"] = scalarText(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return
	}
	for _, v := range obj {
		if len(v) > 0 && (v[0] == '{' || v[0] == '[') {
			return // not flat: the JSON in TASUKI_ITEM is the way in
		}
	}
	// In key order, the first key of those that make the same variable
	// wins (user-id and user_id); INDEX is the item's position's.
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		name := "TASUKI_ITEM_" + spec.EnvSafe(k)
		if _, taken := vars[name]; taken {
			continue
		}
		vars[name] = scalarText(obj[k])
	}
}

// scalarText renders a JSON value for a variable: a string without its
// quotes, anything else (null included) as its JSON.
func scalarText(raw json.RawMessage) string {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	return string(raw)
}

// itemWake is an item's retry time in the coordinator's timer heap.
func (c *coordinator) wakeItem(task, item int, at time.Time) {
	heap.Push(&c.timers, wake{task: task, item: item + 1, at: at})
}

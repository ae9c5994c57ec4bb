package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// A map that zips with a map upstream (map: {from: A, zip: true}) runs
// beside it: its item i runs as soon as item i of A succeeded, with that
// item's result as its value, instead of once A ended. The engine knows
// the need as a zip need (engine.Node.Zip): the zipped map starts once A
// is running. From there the items stay outside the engine, as for any
// map: A's fanout tells the zipped map's fanout how each of its items
// ended (zipFeed), and when A itself ended (zipUpstreamEnded).
//
// Three rules keep it honest:
//
//   - Item i of the zipped map starts only after the success of A's item i
//     is written: a success arrives in memory, and the item becomes ready
//     with the commit that writes it (flushMaps). A crash never leaves an
//     item that ran on a result the store does not have.
//   - An item whose upstream item failed, timed out or was cancelled is
//     skipped and counts toward the zipped map's tolerate, as a failure of
//     its own would; one whose upstream item was skipped is skipped without
//     counting. If the upstream item succeeds later (an operator retried
//     it) while the zipped map runs, the skipped item is taken up again.
//     An item that ran is not run again when its upstream item is.
//   - The zipped map ends only after A ended. If A failed or was cancelled,
//     it starts nothing more and fails once its running items ended.
//
// The values of a zipped map's items are not stored with the map (its
// expansion keeps null in their place): they are A's items' results, read
// back from A's rows when the zipped map is taken up again.

// Messages of items skipped because of their upstream item. A counted
// skip's message starts with zipNotRun, which is how a resumed map tells
// it from a skip that does not count.
const (
	zipNotRun  = "not run: "
	zipSkipped = "skipped: "
)

// zipLink is what a zipped map knows of the map it reads.
type zipLink struct {
	from int    // the upstream map's task index
	id   string // its task id, for messages
	vals zipValues
	// arrived are items whose upstream item succeeded since the last
	// commit: they become ready once it is written.
	arrived []int
	// counted are the items skipped because their upstream item did not
	// succeed, which count toward tolerate.
	counted map[int]struct{}
	ended   bool             // the upstream map ended
	upState engine.TaskState // how, once ended
}

// upFailed reports whether the upstream map ended without success.
func (z *zipLink) upFailed() bool { return z.ended && !z.upState.Satisfies() }

// zipValues holds the values of a zipped map's items, which arrive out of
// order: one buffer, and the span of each item's value in it (end 0: not
// arrived; a value is never empty). Eight bytes per item besides the
// values.
type zipValues struct {
	buf      []byte
	off, end []uint32
}

func (v *zipValues) init(n int) {
	v.buf = nil
	v.off = make([]uint32, n)
	v.end = make([]uint32, n)
}

func (v *zipValues) has(i int) bool { return v.end[i] > 0 }

func (v *zipValues) at(i int) json.RawMessage {
	return v.buf[v.off[i]:v.end[i]:v.end[i]]
}

// set gives item i its value (a later value replaces an earlier one).
func (v *zipValues) set(i int, raw []byte) error {
	if len(v.buf)+len(raw) >= 1<<32-1 {
		return errors.New("the map's items take more than 4 GiB")
	}
	v.off[i] = uint32(len(v.buf))
	v.buf = append(v.buf, raw...)
	v.end[i] = uint32(len(v.buf))
	return nil
}

// zipItem is the item that the result of an upstream item makes: what
// map.from reads from the upstream's line for it (writeMapResults, then
// readItems): the result compacted on one line, null for none, read as a
// line of items.
func zipItem(result json.RawMessage) (json.RawMessage, error) {
	var line bytes.Buffer
	if len(result) == 0 || json.Compact(&line, result) != nil {
		line.Reset()
		line.WriteString("null")
	}
	if line.Len() > maxItemSize {
		return nil, fmt.Errorf("its result is longer than the %d bytes an item may hold", maxItemSize)
	}
	var b bytes.Buffer
	return itemOfLine(line.Bytes(), &b)
}

// value is item i's value.
func (f *fanout) value(i int) json.RawMessage {
	if f.zip != nil {
		return f.zip.vals.at(i)
	}
	return f.values.at(i)
}

// runnable reports whether item i has what it needs to run: its value
// (a zipped map's item waits for its upstream item).
func (f *fanout) runnable(i int) bool { return f.zip == nil || f.zip.vals.has(i) }

// bad counts what tolerate is measured against: unsuccessful items and
// items skipped because their upstream item did not succeed.
func (f *fanout) bad() int { return f.unsuccessful + f.upSkipped }

// restop says again whether the map starts nothing more, after an item
// stopped counting against it.
func (f *fanout) restop() {
	f.stopping = f.cancelling || f.bad() > f.allowed || f.zip != nil && f.zip.upFailed()
}

// zipArrive gives item i its value: item i of the upstream succeeded with
// result. A pending item becomes ready at the next commit; one skipped
// because its upstream item had not succeeded is taken up again.
func (f *fanout) zipArrive(i int, result json.RawMessage, now time.Time) {
	if i >= f.n || f.state[i] == itemSucceeded {
		return
	}
	v, err := zipItem(result)
	if err == nil {
		err = f.zip.vals.set(i, v)
	}
	if err != nil {
		f.zipFail(i, fmt.Sprintf("item %d of %s: %v", i, f.zip.id, err), now)
		return
	}
	if _, ok := f.zip.counted[i]; ok && f.state[i] == itemSkipped {
		delete(f.zip.counted, i)
		f.upSkipped--
		f.set(i, itemPending)
		tr := f.tries[i]
		f.dirty[i] = store.MapItem{Index: f.task, Item: i, State: engine.TaskPending, Attempt: tr.attempt, Spent: tr.spent, FinishedAt: now,
			Message: fmt.Sprintf("item %d of %s succeeded: run after all", i, f.zip.id)}
		f.restop()
	}
	if f.state[i] == itemPending {
		f.zip.arrived = append(f.zip.arrived, i)
	}
}

// zipSkip skips pending item i, whose upstream item did not succeed;
// counted says whether it counts toward tolerate.
func (f *fanout) zipSkip(i int, counted bool, msg string, now time.Time) {
	if i >= f.n || f.state[i] != itemPending {
		return
	}
	f.set(i, itemSkipped)
	tr := f.tries[i]
	f.dirty[i] = store.MapItem{Index: f.task, Item: i, State: engine.TaskSkipped, Attempt: tr.attempt, Spent: tr.spent, FinishedAt: now, Message: msg}
	if !counted {
		return
	}
	f.zip.counted[i] = struct{}{}
	f.upSkipped++
	f.noteFailure(i, msg)
}

// zipFail fails pending item i for good: its upstream item's result
// cannot be an item.
func (f *fanout) zipFail(i int, msg string, now time.Time) {
	if f.state[i] != itemPending {
		return
	}
	f.set(i, itemFailed)
	f.unsuccessful++
	tr := f.tries[i]
	f.dirty[i] = store.MapItem{Index: f.task, Item: i, State: engine.TaskFailed, Attempt: tr.attempt, Spent: tr.spent, FinishedAt: now, Message: msg}
	f.noteFailure(i, msg)
}

// noteFailure keeps the message of one of the first failures, and stops
// the map past its tolerance.
func (f *fanout) noteFailure(i int, msg string) {
	if len(f.messages) < 3 {
		f.messages = append(f.messages, fmt.Sprintf("item %d: %s", i, msg))
	}
	if f.bad() > f.allowed && !f.stopping {
		f.stopping = true
		f.unqueue()
	}
}

// zipEnded tells a zipped map that its upstream ended in state st. After
// a success, an item whose upstream item never succeeded is skipped (none
// should be left: every upstream item ended); after a failure or a cancel,
// nothing more starts.
func (f *fanout) zipEnded(st engine.TaskState, now time.Time) {
	z := f.zip
	z.ended, z.upState = true, st
	if z.upFailed() {
		f.stopping = true
		f.unqueue()
		return
	}
	for i := range f.n {
		if f.state[i] == itemPending && !z.vals.has(i) {
			f.zipSkip(i, true, fmt.Sprintf("%sitem %d of %s did not succeed", zipNotRun, i, z.id), now)
		}
	}
}

// zipVerdict is how an upstream item that did not succeed leaves the
// zipped item, as read from the upstream's rows.
type zipVerdict struct {
	fail    bool // its result cannot be an item: the item fails
	counted bool
	msg     string
}

// zipWords says how an upstream item ended, for a skipped item's message.
func zipWords(s itemState) string {
	switch s {
	case itemTimedOut:
		return "timed out"
	case itemCancelled:
		return "was cancelled"
	case itemSkipped:
		return "was skipped"
	}
	return string(s.taskState())
}

// zipOutcome is what upstream item i, in state st, means for the zipped
// item i: counted says whether a skip counts toward tolerate (the upstream
// item failed, or was itself skipped in a way that counts).
func zipOutcome(up string, i int, st itemState, counted bool) zipVerdict {
	if st == itemSkipped && !counted {
		return zipVerdict{msg: fmt.Sprintf("%sitem %d of %s was skipped", zipSkipped, i, up)}
	}
	return zipVerdict{counted: true, msg: fmt.Sprintf("%sitem %d of %s %s", zipNotRun, i, up, zipWords(st))}
}

// zipFrom returns the map that map task i zips with, if it does.
func (c *coordinator) zipFrom(i int) (int, bool) {
	if z := c.eng.Graph.Node(i).Zip; len(z) > 0 {
		return z[0], true
	}
	return 0, false
}

// zipFeed tells the running maps that zip with map f how its item i
// ended (result: its result, if it succeeded).
func (c *coordinator) zipFeed(f *fanout, i int, result json.RawMessage) {
	deps := c.eng.Graph.Node(f.task).ZipDependents
	if len(deps) == 0 || !f.state[i].done() {
		return
	}
	now := c.now()
	st := f.state[i]
	for _, d := range deps {
		fd := c.maps[d]
		if fd == nil || fd.zip == nil {
			continue
		}
		if st == itemSucceeded {
			fd.zipArrive(i, result, now)
		} else {
			counted := st != itemSkipped
			if f.zip != nil {
				_, up := f.zip.counted[i]
				counted = counted || up
			}
			v := zipOutcome(f.t.ID, i, st, counted)
			fd.zipSkip(i, v.counted, v.msg, now)
		}
		c.endMapIfDone(d)
	}
}

// zipUpstreamEnded tells the running maps that zip with map task up that
// it ended.
func (c *coordinator) zipUpstreamEnded(up int) {
	st := c.mem.Task(up).State
	for _, d := range c.eng.Graph.Node(up).ZipDependents {
		if fd := c.maps[d]; fd != nil && fd.zip != nil {
			fd.zipEnded(st, c.now())
			c.endMapIfDone(d)
		}
	}
}

// zipRelease makes the items whose upstream items' successes the commit
// under way writes ready, and reports whether there were any. Called as
// the commit gathers its changes; a failed commit ends the run's
// execution, so nothing released then runs.
func (f *fanout) zipRelease() bool {
	if f.zip == nil || len(f.zip.arrived) == 0 {
		return false
	}
	f.fresh = append(f.fresh, f.zip.arrived...)
	f.zip.arrived = f.zip.arrived[:0]
	return true
}

// zipExpand gives a zipped map that starts for the first time its items:
// as many as its upstream has (null in the store in place of their
// values), with the values of those whose upstream items already
// succeeded.
func (c *coordinator) zipExpand(f *fanout) error {
	n := -1
	if fu := c.maps[f.zip.from]; fu != nil {
		n = fu.n
	} else {
		info, ok, err := c.mapInfo(f.zip.from)
		if err != nil {
			return err
		}
		if ok {
			n = info.Items
		}
	}
	if n < 0 {
		return fmt.Errorf("map.zip: map %s has no items: it never started", f.zip.id)
	}
	var v itemValues
	v.buf = bytes.Repeat([]byte("null"), n)
	v.off = make([]uint32, n+1)
	for k := range n {
		v.off[k+1] = uint32(4 * (k + 1))
	}
	f.setItems(v)
	f.zip.vals.init(n)
	f.expanded, f.changed = true, true
	verdicts, err := c.zipLoad(f)
	if err != nil {
		return err
	}
	c.zipSettle(f, verdicts)
	return nil
}

// zipLoad reads the upstream's item rows: the items whose upstream items
// succeeded get their values, and how the others that ended left them is
// returned, by item.
func (c *coordinator) zipLoad(f *fanout) (map[int]zipVerdict, error) {
	ms, err := c.mapStore()
	if err != nil {
		return nil, err
	}
	out := map[int]zipVerdict{}
	for from := 0; ; {
		rows, err := ms.MapItems(context.Background(), store.MapItemFilter{RunID: c.run.ID, Index: f.zip.from, From: from, Limit: store.MaxMapItemsLimit})
		if err != nil {
			return nil, fmt.Errorf("read the items of %s: %w", f.zip.id, err)
		}
		for _, row := range rows {
			i := row.Item
			if i >= f.n {
				continue
			}
			st := itemStateOf(row.State)
			switch {
			case st == itemSucceeded:
				v, err := zipItem(row.Result)
				if err == nil {
					err = f.zip.vals.set(i, v)
				}
				if err != nil {
					out[i] = zipVerdict{fail: true, msg: fmt.Sprintf("item %d of %s: %v", i, f.zip.id, err)}
				}
			case st.unsuccessful() || st == itemSkipped:
				out[i] = zipOutcome(f.zip.id, i, st, st != itemSkipped || strings.HasPrefix(row.Message, zipNotRun))
			}
		}
		if len(rows) < store.MaxMapItemsLimit {
			return out, nil
		}
		from = rows[len(rows)-1].Item + 1
	}
}

// zipSettle puts a zipped map's pending items where they belong once its
// own rows are read: ready when their values arrived, skipped (or failed)
// when their upstream items ended without success; the others wait. An
// upstream that ended is taken into account.
func (c *coordinator) zipSettle(f *fanout, verdicts map[int]zipVerdict) {
	now := c.now()
	for i := range f.n {
		if f.state[i] != itemPending {
			continue
		}
		if f.zip.vals.has(i) {
			f.fresh = append(f.fresh, i)
			continue
		}
		switch v, ok := verdicts[i]; {
		case !ok:
		case v.fail:
			f.zipFail(i, v.msg, now)
		default:
			f.zipSkip(i, v.counted, v.msg, now)
		}
	}
	if st := c.mem.Task(f.zip.from).State; st.Terminal() {
		f.zipEnded(st, now)
	}
}

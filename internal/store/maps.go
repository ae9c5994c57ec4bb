package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
)

// A map task runs its command once per item, over up to millions of items.
// One task row per item would not reach a million, so a map is kept in
// three compact parts:
//
//   - its MapInfo: one row per map task of a run, with the number of items,
//     the dispatch cursor, the counts by state and the slowest items, all
//     kept up to date by the run's coordinator as items change (nothing
//     counts item rows to answer a status request);
//   - its item values, written once when the map is expanded, in chunks of
//     MapChunkItems values each (JSON lines);
//   - a MapItem row for each item whose state is worth keeping: an item
//     that ended (with its result), an item waiting for a retry. An item
//     without a row at or past MapInfo.Next has never started.
//
// Every write goes through Apply (Change.Maps), in the same transaction as
// the run's other changes, batched by the coordinator's group commit.

// MapChunkItems is how many item values one chunk row holds.
const MapChunkItems = 1024

// Page sizes of MapItems.
const (
	DefaultMapItemsLimit = 100
	MaxMapItemsLimit     = 10000
)

// MaxSlowItems is how many of the slowest items a MapInfo keeps.
const MaxSlowItems = 10

// MapInfo is the state of one map task of a run as a whole.
type MapInfo struct {
	RunID int64
	Index int // the map task's position in the run's graph
	// Items is the number of items the map was expanded to.
	Items int
	// Next is the dispatch cursor: items [0, Next) have been taken for
	// dispatch at least once (queued for a slot, started, or ended); items
	// at or past it never were. An item below it without a row is queued
	// or running (or was, when its executor stopped: it runs again).
	Next int
	// Counts is the number of items in each state (pending included), as
	// the coordinator last wrote it. States without items may be absent.
	Counts map[engine.TaskState]int
	// Slowest are the slowest items that ended, slowest first, at most
	// MaxSlowItems.
	Slowest   []SlowItem
	UpdatedAt time.Time
}

// SlowItem is one of the slowest items of a map.
type SlowItem struct {
	Item     int           `json:"item"`
	Attempt  int           `json:"attempt"`
	Duration time.Duration `json:"duration"`
}

// MapItem is the kept state of one item of a map.
type MapItem struct {
	RunID int64
	Index int // the map task
	Item  int // the item's position, 0-based
	State engine.TaskState
	// Attempt is the number of the item's latest attempt (1-based); Spent
	// counts those charged to the retry budget, as for a task.
	Attempt    int
	Spent      int
	Worker     string
	StartedAt  time.Time
	FinishedAt time.Time
	ReadyAt    time.Time // when an item in retry_wait becomes ready
	ExitCode   *int
	Message    string
	Result     json.RawMessage
	// CachedFrom is the run whose result the item reused (a cache hit); 0
	// when it ran.
	CachedFrom int64
	// Log names the item's log when it is not the default (the items of a
	// batch share the log of the process that ran them).
	Log string
}

// MapChange is what one Change writes about one map task of its run.
type MapChange struct {
	Index int
	// Values, when not nil, expands the map: the item values (each one
	// compact JSON value on one line) replace any earlier expansion, and
	// every item row of the map is deleted. Info must then be set too.
	Values []json.RawMessage
	// Info, when not nil, is written as given (Items, Next, Counts,
	// Slowest; RunID and Index come from the change, UpdatedAt is now when
	// zero). The map's row must exist (an expansion in this or an earlier
	// change) unless Values is set.
	Info *MapInfo
	// Items are upserted whole: every field replaces the row's.
	Items []MapItem
	// Delete removes these items' rows (an operator reset them to never
	// started).
	Delete []int
	// Ended says the map ended: the record of which workers were handed
	// its items (MapLease) is deleted. An expansion deletes it too.
	Ended bool
}

// MapItemFilter selects item rows of one map for MapItems, in item order.
type MapItemFilter struct {
	RunID int64
	Index int
	// States keeps only items in one of these states (empty: all rows).
	States []engine.TaskState
	From   int // only items >= From (a cursor: the last item of a page + 1)
	Limit  int // at most this many (DefaultMapItemsLimit, MaxMapItemsLimit)
}

// Maps keeps the items of map tasks. Changes go through Apply
// (Change.Maps); these are the reads.
type Maps interface {
	// MapInfos returns the expanded maps of a run, by index; ErrNotFound
	// when the run does not exist. One row per map: it is what a status
	// request reads, whatever the number of items.
	MapInfos(ctx context.Context, runID int64) ([]MapInfo, error)
	// MapValues returns the values of items [from, from+n) of a map (fewer
	// past its end), reading only the chunks that hold them. ErrNotFound
	// when the map was never expanded.
	MapValues(ctx context.Context, runID int64, index, from, n int) ([]json.RawMessage, error)
	// MapItems returns one page of a map's item rows, in item order, read
	// from an index from the cursor (a (run, task, state, item) index when
	// States is set), so a page of the failed items of a million costs the
	// page.
	MapItems(ctx context.Context, f MapItemFilter) ([]MapItem, error)
}

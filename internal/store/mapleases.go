package store

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Leases of map items: a map's items run on remote workers by the
// thousand a second, and no row is written when one starts (only when it
// ends, MapItem). A server that takes over from a leader that died must
// still know which items a remote worker may be running, to adopt them
// rather than run them again (or hold them all for a lease timeout). So the
// broker records each hand-out of items to a remote worker as it hands it
// out: one MapLease per bundle (the items of one map handed out together,
// api.Bundle), or per lease of items handed out alone. That is one row per
// lease request of a worker, not per item.
//
// A row outlives its items: it is not updated when they end (that would be
// a write per item again) but deleted with its map's end (MapChange.Ended),
// a new expansion of the map, or its run. A reader tells which of its units
// still run by the item rows: a unit whose items have a row with an attempt
// at least the unit's ended (or was given up on).

// MapLease is one hand-out of a map's items to a remote worker.
type MapLease struct {
	RunID int64
	Index int // the map task
	// ID is the bundle's id (its first item's lease id), or the lease's
	// when its items came alone.
	ID        string
	Worker    string
	StartedAt time.Time
	// Units are the attempts handed out: each runs one item or a batch.
	Units []LeasedUnit
}

// LeasedUnit is one attempt of a map's items in a MapLease: its items and
// each one's attempt number, in the order the attempt runs them.
type LeasedUnit struct {
	Items    []int `json:"items"`
	Attempts []int `json:"attempts"`
}

// MaxLeasedUnits bounds the units of one MapLease.
const MaxLeasedUnits = 4096

// MapLeases keeps which remote worker was handed which items of a map.
type MapLeases interface {
	// PutMapLeases records hand-outs of map items (replacing a row of the
	// same run, map and id, unless that row's hand-out is newer: records
	// may be written late), in one transaction, without taking the lock
	// of their runs: it runs beside the coordinator's commits.
	PutMapLeases(ctx context.Context, leases []MapLease) error
	// MapLeases returns the recorded hand-outs of one map, by id.
	MapLeases(ctx context.Context, runID int64, index int) ([]MapLease, error)
}

// CheckMapLease validates a MapLease before it is written.
func CheckMapLease(l *MapLease) error {
	if l.RunID <= 0 || l.Index < 0 || l.Index > math.MaxInt32 {
		return fmt.Errorf("map lease %q: run %d, map %d: out of range", l.ID, l.RunID, l.Index)
	}
	if err := CheckText("map lease id", l.ID); err != nil || l.ID == "" {
		return fmt.Errorf("map lease %q: a lease needs an id of text", l.ID)
	}
	if err := CheckText("map lease worker", l.Worker); err != nil {
		return err
	}
	if len(l.Units) == 0 || len(l.Units) > MaxLeasedUnits {
		return fmt.Errorf("map lease %s: %d units; want 1 to %d", l.ID, len(l.Units), MaxLeasedUnits)
	}
	for _, u := range l.Units {
		if len(u.Items) == 0 || len(u.Items) != len(u.Attempts) {
			return fmt.Errorf("map lease %s: a unit of %d items and %d attempts", l.ID, len(u.Items), len(u.Attempts))
		}
		for k, it := range u.Items {
			if it < 0 || it > math.MaxInt32 || u.Attempts[k] <= 0 {
				return fmt.Errorf("map lease %s: item %d attempt %d: out of range", l.ID, it, u.Attempts[k])
			}
		}
	}
	return nil
}

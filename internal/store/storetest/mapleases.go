package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Leases of map items (store.MapLeases): a hand-out per row, read back
// whole, replaced by its id, deleted with its map's end, a new expansion,
// or its run.

func mapLease(run int64, index int, id, worker string, units ...store.LeasedUnit) store.MapLease {
	return store.MapLease{RunID: run, Index: index, ID: id, Worker: worker, StartedAt: t0.Add(time.Second).In(jst), Units: units}
}

func unit(items ...int) store.LeasedUnit {
	u := store.LeasedUnit{Items: items}
	for k := range items {
		u.Attempts = append(u.Attempts, k+1)
	}
	return u
}

func mustMapLeases(t *testing.T, s store.Store, run int64, index int) []store.MapLease {
	t.Helper()
	ls, err := s.MapLeases(t.Context(), run, index)
	if err != nil {
		t.Fatalf("MapLeases(%d, %d): %v", run, index, err)
	}
	return ls
}

// readBack is l as the store gives it back: its time in UTC, to the
// microsecond.
func readBack(l store.MapLease) store.MapLease {
	l.StartedAt = us(l.StartedAt)
	return l
}

func testMapLeases(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := mustCreate(t, s, newRun("fan", 3))
	mustApply(t, s, expand(r.ID, 0, mapValues(100)), expand(r.ID, 1, mapValues(10)))
	if ls := mustMapLeases(t, s, r.ID, 0); ls == nil || len(ls) != 0 {
		t.Errorf("MapLeases of a map without any = %#v; want []", ls)
	}

	a := mapLease(r.ID, 0, "1.each.3.1", "spot-7", unit(3), unit(4), unit(9, 10, 11))
	b := mapLease(r.ID, 0, "1.each.5.2", "spot-8", unit(5))
	other := mapLease(r.ID, 1, "1.other.0.1", "spot-7", unit(0))
	if err := s.PutMapLeases(ctx, []store.MapLease{a, b, other}); err != nil {
		t.Fatal(err)
	}
	check(t, "leases of map 0", mustMapLeases(t, s, r.ID, 0), []store.MapLease{readBack(a), readBack(b)})
	check(t, "leases of map 1", mustMapLeases(t, s, r.ID, 1), []store.MapLease{readBack(other)})

	// The same id again (a hand-out given back and handed out again)
	// replaces the row, in a batch as well.
	again := mapLease(r.ID, 0, "1.each.5.2", "spot-9", unit(5), unit(6))
	last := again
	last.Units = []store.LeasedUnit{unit(5, 6, 7)}
	if err := s.PutMapLeases(ctx, []store.MapLease{again, last}); err != nil {
		t.Fatal(err)
	}
	check(t, "leases after a hand-out again", mustMapLeases(t, s, r.ID, 0), []store.MapLease{readBack(a), readBack(last)})

	// An older hand-out of the id written after the newer one (a record
	// written late, after the lease was given back and handed out again
	// and recorded at once) does not replace it, alone or in a batch.
	older := mapLease(r.ID, 0, "1.each.5.2", "spot-1", unit(5))
	older.StartedAt = last.StartedAt.Add(-time.Second)
	if err := s.PutMapLeases(ctx, []store.MapLease{older}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutMapLeases(ctx, []store.MapLease{a, older}); err != nil {
		t.Fatal(err)
	}
	check(t, "leases after an older hand-out written late", mustMapLeases(t, s, r.ID, 0), []store.MapLease{readBack(a), readBack(last)})

	// A map never expanded, and malformed hand-outs, are refused whole.
	if err := s.PutMapLeases(ctx, []store.MapLease{mapLease(r.ID, 2, "1.x.0.1", "w", unit(0))}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a lease of a map never expanded: %v, want ErrNotFound", err)
	}
	for _, bad := range []store.MapLease{
		mapLease(r.ID, 0, "", "w", unit(1)),
		mapLease(r.ID, 0, "1.each.1.1", "w"),
		mapLease(r.ID, 0, "1.each.1.1", "w", store.LeasedUnit{Items: []int{1, 2}, Attempts: []int{1}}),
		mapLease(r.ID, 0, "1.each.1.1", "w", store.LeasedUnit{Items: []int{-1}, Attempts: []int{1}}),
		mapLease(r.ID, 0, "1.each.1.1", "w", store.LeasedUnit{Items: []int{1}, Attempts: []int{0}}),
		mapLease(r.ID, 0, "1.each.1.1", "w\x00", unit(1)),
	} {
		if err := s.PutMapLeases(ctx, []store.MapLease{mapLease(r.ID, 0, "1.each.50.1", "w", unit(50)), bad}); err == nil {
			t.Errorf("PutMapLeases(%+v) succeeded", bad)
		}
	}
	if ls := mustMapLeases(t, s, r.ID, 0); len(ls) != 2 {
		t.Errorf("leases after refused writes: %+v", ls)
	}

	// The map's end takes its leases, not another map's; so does a new
	// expansion.
	mustApply(t, s, store.Change{RunID: r.ID, Maps: []store.MapChange{{Index: 0, Ended: true}}})
	if ls := mustMapLeases(t, s, r.ID, 0); len(ls) != 0 {
		t.Errorf("leases after the map ended: %+v", ls)
	}
	check(t, "leases of the other map after the first ended", mustMapLeases(t, s, r.ID, 1), []store.MapLease{readBack(other)})
	mustApply(t, s, expand(r.ID, 1, mapValues(12)))
	if ls := mustMapLeases(t, s, r.ID, 1); len(ls) != 0 {
		t.Errorf("leases after a new expansion: %+v", ls)
	}

	// A pruned run takes its leases.
	nr := newRun("fan", 1)
	nr.Run.State, nr.Run.CreatedAt = engine.RunSucceeded, t0.Add(-time.Hour)
	old := mustCreate(t, s, nr)
	mustApply(t, s, expand(old.ID, 0, mapValues(3)))
	if err := s.PutMapLeases(ctx, []store.MapLease{mapLease(old.ID, 0, "9.each.0.1", "w", unit(0))}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PruneRuns(ctx, t0, 10); err != nil {
		t.Fatal(err)
	}
	if ls, err := s.MapLeases(ctx, old.ID, 0); err != nil || len(ls) != 0 {
		t.Errorf("leases of a pruned run: %+v, %v", ls, err)
	}
}

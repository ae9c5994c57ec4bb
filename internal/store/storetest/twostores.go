package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// RunTwoStores runs the tests that look at one database through two
// stores, as a server and a command reading the same SQLite file do,
// several servers on one PostgreSQL database, or the next process to open
// the store after one closed it: what one store writes must reach the other
// by the moments the store.Store documentation promises. open returns a
// new, empty store, which the test closes itself (the driver's open must not
// close it again), and a function that opens another store on the same
// database, closed when the test ends. Subtests run in parallel.
func RunTwoStores(t *testing.T, open func(t *testing.T) (store.Store, func() store.Store)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store, other func() store.Store)
	}{
		{"DurationsReachOtherStores", testDurationsReachOtherStores},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			first, other := open(t)
			s := &closeOnce{Store: first}
			t.Cleanup(func() { s.Close() })
			tt.fn(t, s, other)
		})
	}
}

// closeOnce is a store whose Close may be called again, which does
// nothing: a test closes its store, and the cleanup closes it if it did
// not get that far.
type closeOnce struct {
	store.Store
	once sync.Once
	err  error
}

func (c *closeOnce) Close() error {
	c.once.Do(func() { c.err = c.Store.Close() })
	return c.err
}

// testDurationsReachOtherStores: a driver may record the durations of
// successful attempts after their commit (SQLite gathers them for a
// second), but the store that wrote them reads them at once, and another
// store sees them all once their run has ended, or once the store that
// wrote them has closed.
func testDurationsReachOtherStores(t *testing.T, s store.Store, other func() store.Store) {
	ctx := t.Context()
	o := other()
	durations := func(st store.Store, p string) map[string][]time.Duration {
		t.Helper()
		m, err := st.TaskDurations(ctx, p)
		if err != nil {
			t.Fatalf("TaskDurations(%s): %v", p, err)
		}
		return m
	}
	sec := time.Second

	// The store that wrote a success reads its duration at once.
	r := mustCreate(t, s, newRun("read", 1))
	mustApply(t, s, succeed(r.ID, 0, 1, t0, 2*sec, store.OutcomeSucceeded)...)
	check(t, "durations read by the store that wrote them", durations(s, "read"), map[string][]time.Duration{"t0": {2 * sec}})

	// The end of a run records every duration still waiting, its own
	// tasks' (in earlier commits than the end) and others'.
	other1 := mustCreate(t, s, newRun("elsewhere", 1))
	r = mustCreate(t, s, newRun("ended", 2))
	mustApply(t, s, succeed(r.ID, 0, 1, t0, 3*sec, store.OutcomeSucceeded)...)
	mustApply(t, s, succeed(other1.ID, 0, 1, t0, 4*sec, store.OutcomeSucceeded)...)
	mustApply(t, s, succeed(r.ID, 1, 1, t0, 5*sec, store.OutcomeSucceeded)...)
	mustApply(t, s, store.Change{RunID: r.ID, Transition: engine.Transition{
		Run: &engine.Run{State: engine.RunSucceeded, StartedAt: t0, FinishedAt: t0.Add(5 * sec)}}})
	check(t, "durations of an ended run, read by another store", durations(o, "ended"),
		map[string][]time.Duration{"t0": {3 * sec}, "t1": {5 * sec}})
	check(t, "durations of a running run, recorded with the end of another", durations(o, "elsewhere"),
		map[string][]time.Duration{"t0": {4 * sec}})

	// Closing the store records what is still waiting.
	r = mustCreate(t, s, newRun("closed", 1))
	mustApply(t, s, succeed(r.ID, 0, 1, t0, 6*sec, store.OutcomeSucceeded)...)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	check(t, "durations of a closed store, read by another", durations(o, "closed"), map[string][]time.Duration{"t0": {6 * sec}})
}

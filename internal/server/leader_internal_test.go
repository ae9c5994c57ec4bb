package server

import (
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// TestAuthoritative pins the window in which a leader that cannot renew
// may still answer workers: its lease (leader_ttl from the time its last
// renewal carried) plus 3/10 of lease_timeout, under the third that keeps
// an answered worker from outliving a successor's adopted lease.
func TestAuthoritative(t *testing.T) {
	e := newElector("http://a", time.Second, 9*time.Second)
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	e.cur = store.Leadership{Holder: e.holder, Term: 1}
	e.lastOK = t0
	for _, c := range []struct {
		at   time.Duration
		want bool
	}{
		{0, true},
		{time.Second, true},               // the lease itself
		{3700*time.Millisecond - 1, true}, // ttl + 2.7 s
		{3700 * time.Millisecond, false},  // a successor may have adopted for 3 s (a third of 9 s) by now
		{time.Minute, false},
	} {
		if got := e.authoritative(t0.Add(c.at)); got != c.want {
			t.Errorf("authoritative %s after the last renewal = %v, want %v", c.at, got, c.want)
		}
	}
	if max := e.authorityEnds().Sub(t0); max >= time.Second+9*time.Second/3 {
		t.Errorf("authority lasts %s past the last renewal: a worker answered then outlives a successor's lease", max)
	}
	e.cur.Holder = "another"
	if e.authoritative(t0) {
		t.Error("a server that does not hold the lease is authoritative")
	}
}

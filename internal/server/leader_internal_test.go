package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// TestAuthoritative pins the window in which a leader that cannot renew
// may still answer workers: its lease (leader_ttl from the time its last
// renewal carried) plus a quarter of lease_timeout, under the third that
// keeps an answered worker from outliving a successor's adopted lease.
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
		{3250*time.Millisecond - 1, true}, // ttl + 2.25 s
		{3250 * time.Millisecond, false},  // past this, a worker answered could outlive a successor's lease but for a twelfth of it
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

// TestForwardCutAtTakeover: a worker's request a follower forwarded to a
// leader that froze (it never answers) is answered 503 once the leadership
// changes hands, here to the follower itself, which then serves the next
// try.
func TestForwardCutAtTakeover(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	frozen := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // then a caller hanging up is noticed
		arrived <- struct{}{}
		select { // frozen: no answer until the caller hangs up
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer frozen.Close()
	defer close(release)
	e := newElector("http://follower", 3*time.Second, 30*time.Second)
	e.mu.Lock()
	e.setLocked(store.Leadership{Holder: "frozen", Address: frozen.URL, Term: 1})
	e.mu.Unlock()
	s := &Server{elector: e}
	served := false
	h := s.forward(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served = true }))

	answered := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/api/v1/worker/leases/1.a.1/log?offset=0", strings.NewReader("line\n")))
		answered <- rec
	}()
	<-arrived
	select {
	case rec := <-answered:
		t.Fatalf("answered while the leader is frozen: %d %s", rec.Code, rec.Body)
	case <-time.After(50 * time.Millisecond):
	}
	e.mu.Lock()
	e.setLocked(store.Leadership{Holder: e.holder, Address: "http://follower", Term: 2})
	e.lastOK = time.Now() // as try records a lease won
	e.mu.Unlock()
	select {
	case rec := <-answered:
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("the cut request: %d %s, want 503", rec.Code, rec.Body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the forwarded request was not cut when the leadership changed hands")
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/api/v1/worker/leases/1.a.1/log?offset=0", strings.NewReader("line\n")))
	if !served {
		t.Error("the new leader did not serve the request tried again")
	}
}

package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Several servers may share one PostgreSQL store. All of them answer the
// API; one, the leader, runs the scheduler, executes runs and hands attempts
// to workers. Leadership is a lease in the store with a term: the leader
// renews it every third of its time to live, and writes the state of runs
// fenced by its term, so a deposed leader cannot overwrite its successor's
// writes. A server that loses leadership stops (its supervisor restarts it
// as a follower); a follower takes over once the lease expires.

// errLostLeadership ends a server that was leader and no longer is.
var errLostLeadership = errors.New("lost leadership of the store; stopping so a supervisor restarts this server as a follower")

// elector keeps this server's view of the leadership.
type elector struct {
	holder  string
	address string
	ttl     time.Duration

	mu   sync.Mutex
	cur  store.Leadership
	term int64 // the term this server won; 0 before
	// suspended: renewals have failed for longer than the lease is safe
	// (the store is unreachable), so this server no longer knows that it
	// leads: it schedules nothing and starts nothing until a renewal in its
	// term succeeds (keepLeading).
	suspended bool
	// lastOK is the time the last successful renewal carried: the lease
	// expires at lastOK+ttl, and until then no other server can lead.
	lastOK time.Time
	// grace is how long past lastOK+ttl this server may still answer
	// workers' heartbeats (authoritative): a new leader holds what it
	// adopts for a lease timeout, and a worker answered at T keeps its
	// attempt until T plus two thirds of it, so a grace under a third of
	// lease_timeout never lets a worker outlive the new leader's lease. A
	// quarter leaves a twelfth of it (2.5 s by default) for the new
	// leader's start, the worker's last try and the servers' clocks.
	grace time.Duration

	// holding ends (is cancelled, and replaced) when the leadership changes
	// hands as this server sees it: requests forwarded to the leader that
	// was are cut then (forward), so a worker's call to a leader that froze
	// is answered (503, try again: here, now) rather than left to hang
	// until the worker's timeout, half a minute of its log held back.
	// Guarded by mu.
	holding    context.Context
	endHolding context.CancelFunc

	proxyMu sync.Mutex
	proxies map[string]*httputil.ReverseProxy
	// transport reaches the leader (TLS trust, client certificate); nil
	// is http.DefaultTransport.
	transport http.RoundTripper
}

func newElector(address string, ttl, leaseTimeout time.Duration) *elector {
	host, _ := os.Hostname()
	var b [4]byte
	rand.Read(b[:])
	e := &elector{
		holder:  fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:])),
		address: address,
		ttl:     ttl,
		grace:   leaseTimeout / 4,
		proxies: map[string]*httputil.ReverseProxy{},
	}
	e.holding, e.endHolding = context.WithCancel(context.Background())
	return e
}

// setLocked records the leadership l; e.mu is held.
func (e *elector) setLocked(l store.Leadership) {
	if l.Holder != e.cur.Holder {
		e.endHolding()
		e.holding, e.endHolding = context.WithCancel(context.Background())
	}
	e.cur = l
}

// holdingCtx is done when the leadership changes hands.
func (e *elector) holdingCtx() context.Context {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.holding
}

// try acquires or renews the lease and reports whether this server leads.
func (e *elector) try(ctx context.Context, st store.Store, now time.Time) (bool, error) {
	// A renewal that hangs (a network cut to the database) must not keep
	// this server believing it leads: each try gets a third of the lease.
	ctx, cancel := context.WithTimeout(ctx, e.ttl/3)
	defer cancel()
	l, err := st.AcquireLeadership(ctx, e.holder, e.address, e.ttl, now)
	if err != nil {
		return false, err
	}
	held := l.HeldBy(e.holder, now)
	e.mu.Lock()
	e.setLocked(l)
	if held {
		e.lastOK = now // the lease now expires at now+ttl
	}
	e.mu.Unlock()
	return held, nil
}

// authoritative reports whether this server may still act for the leader
// towards workers and its own executor at now: it leads, and its lease
// was renewed recently enough that no other server can have adopted its
// attempts and handed them out again (see grace). A leader cut off from
// the store keeps its attempts through a short outage, and stops before
// a successor could run them twice.
func (e *elector) authoritative(now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cur.Holder == e.holder && now.Before(e.lastOK.Add(e.ttl+e.grace))
}

// holds reports whether this server's lease is certainly still its own at
// now: it leads and its last renewal carried a time less than leader_ttl
// ago. Past that, another server may take over at any moment.
func (e *elector) holds(now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cur.Holder == e.holder && now.Before(e.lastOK.Add(e.ttl))
}

// isReport reports whether r is a worker's report of an ended attempt.
func isReport(r *http.Request) bool {
	p := r.URL.Path
	return r.Method == http.MethodPost && (p == "/api/v1/worker/complete" ||
		strings.HasPrefix(p, "/api/v1/worker/leases/") && strings.HasSuffix(p, "/complete"))
}

// authorityEnds is when this server stops being authoritative unless a
// renewal succeeds meanwhile.
func (e *elector) authorityEnds() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastOK.Add(e.ttl + e.grace)
}

// current returns the last known leadership.
func (e *elector) current() store.Leadership {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cur
}

// leading reports whether this server held the lease at its last renewal.
func (e *elector) leading() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cur.Holder == e.holder
}

// waitForLeadership tries every third of the lease until this server leads
// or ctx ends.
func (s *Server) waitForLeadership(ctx context.Context) (bool, error) {
	t := time.NewTicker(s.elector.ttl / 3)
	defer t.Stop()
	announced := ""
	for {
		ok, err := s.elector.try(ctx, s.store, time.Now())
		if err != nil {
			s.log.Error("acquire leadership", "err", err)
		}
		if ok {
			s.elector.mu.Lock()
			s.elector.term = s.elector.cur.Term
			s.elector.mu.Unlock()
			s.log.Info("leading: this server runs schedules and executes runs", "holder", s.elector.holder, "term", s.elector.current().Term)
			return true, nil
		}
		if cur := s.elector.current(); cur.Holder != announced && err == nil {
			announced = cur.Holder
			s.log.Info("following: another server leads", "leader", cur.Holder, "address", cur.Address)
		}
		select {
		case <-ctx.Done():
			return false, nil
		case <-t.C:
		}
	}
}

// abdicate forgets the lease, so this server forwards leader-only requests
// and stops extending workers' leases.
func (e *elector) abdicate() {
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.cur
	l.Holder = ""
	e.setLocked(l)
}

// keepLeading renews the lease until ctx ends; it returns
// errLostLeadership when another server took it, or when renewals failed
// with a permanent error for longer than the lease lives.
//
// Renewals that fail because the store is unreachable (store.Transient: a
// restart, a network cut) for longer than is safe suspend this server
// instead: before its lease can expire, it stops scheduling and starting
// attempts (it is no longer known to lead; runs' writes are fenced anyway),
// while its running attempts run on and workers' reports are kept. When the
// store answers again, a renewal in the same term (nobody took over: an
// expired lease taken back by its holder keeps its term) resumes it where
// it was; a lease another server took meanwhile ends it as before.
func (s *Server) keepLeading(ctx context.Context) error {
	t := time.NewTicker(s.elector.ttl / 3)
	defer t.Stop()
	// The lease is measured on the real clock, whatever clock schedules use.
	preempted := false // the in-process executor's attempts were ended
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		ok, err := s.elector.try(ctx, s.store, time.Now())
		lastOK := s.elector.renewed()
		if err != nil && !preempted && !s.elector.authoritative(time.Now()) {
			// Past this moment another server may have taken over and run
			// this server's attempts again: end those of its own executor
			// (a remote worker ends its own once its heartbeats go
			// unanswered, which the worker protocol now is: forward).
			preempted = true
			n := s.broker.PreemptLocal()
			s.log.Warn("the store has been unreachable too long to know who leads: the attempts this server runs itself are ended and handed back, and workers' heartbeats go unanswered",
				"attempts", n, "since", time.Since(lastOK).Round(time.Second))
		}
		switch {
		case err == nil && ok && s.elector.current().Term == s.elector.wonTerm():
			if preempted {
				s.broker.Wake() // its executor and workers may take attempts again
			}
			preempted = false
			if s.elector.suspend(false) {
				s.log.Info("the store answers again: leading again in the same term; scheduling and new attempts resume", "term", s.elector.wonTerm())
				s.poke()
			}
		case err == nil:
			// Another server leads, or this one won the lease back under a
			// new term after losing it: either way its runs may have moved.
			s.elector.abdicate()
			return errLostLeadership
		case time.Since(lastOK) > s.elector.ttl*2/3 && store.Transient(err):
			// Stop acting before the lease can expire under us, so two
			// servers never both believe they lead; wait for the store.
			if !s.elector.suspend(true) {
				s.log.Warn("the store is unreachable: no longer known to lead; scheduling and new attempts stop until it answers (running attempts go on)", "err", err)
			} else {
				s.log.Warn("renew leadership: the store is still unreachable", "err", err, "for", time.Since(lastOK).Round(time.Second))
			}
		case time.Since(lastOK) > s.elector.ttl*2/3:
			s.elector.abdicate()
			return fmt.Errorf("%w (renewals failing: %v)", errLostLeadership, err)
		default:
			s.log.Warn("renew leadership", "err", err)
		}
	}
}

// renewed is when the last successful renewal was sent.
func (e *elector) renewed() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastOK
}

// suspend sets whether this server is suspended (see keepLeading) and
// returns what it was.
func (e *elector) suspend(on bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	was := e.suspended
	e.suspended = on
	return was
}

// isSuspended reports whether this server waits for the store to know
// whether it still leads.
func (e *elector) isSuspended() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.suspended
}

// resign gives the lease up on a clean stop, so a follower takes over at
// once rather than after the lease expires.
func (s *Server) resign() {
	if !s.elector.leading() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.store.ResignLeadership(ctx, s.elector.holder, s.elector.current().Term); err != nil {
		s.log.Warn("resign leadership", "err", err)
	}
}

// fencedStore writes run state only under the term this server leads with
// (as last renewed); the store refuses it once another server took over.
type fencedStore struct {
	store.Store
	e *elector
}

func (f fencedStore) Apply(ctx context.Context, changes ...store.Change) error {
	return f.Store.ApplyFenced(ctx, store.Fence{Holder: f.e.holder, Term: f.e.wonTerm()}, changes...)
}

// fenceLogs writes the chunks of the logs this server writes under the
// term it leads with, as fencedStore its run state: another leader goes on
// with the logs of the attempts it adopts (logs.Cluster.Resume), and this
// server, deposed while frozen, must not write into them when it wakes up.
func (e *elector) fenceLogs(st store.Logs) func(ctx context.Context, chunks ...logs.Chunk) error {
	return func(ctx context.Context, chunks ...logs.Chunk) error {
		err := st.PutLogChunksFenced(ctx, store.Fence{Holder: e.holder, Term: e.wonTerm()}, chunks...)
		if errors.Is(err, store.ErrFenced) {
			err = fmt.Errorf("%w: %w", logs.ErrDeposed, err)
		}
		return err
	}
}

// wonTerm is the term this server won when it became leader.
func (e *elector) wonTerm() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.term
}

// forward sends the requests only the leader can serve (actions on runs it
// executes, the worker protocol) to the leader when this server follows.
// Logs are not among them: every server reads them from the database
// (logs.Cluster), across a change of leader.
func (s *Server) forward(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		holding := s.elector.holdingCtx() // before the leader is looked at
		if !leaderOnly(r) {
			next.ServeHTTP(w, r)
			return
		}
		if s.elector.leading() {
			if isReport(r) && !s.elector.holds(time.Now()) {
				// Its lease may have expired: a report taken now might not
				// be recorded (a successor's term fences it) while the
				// worker, told it was, forgets it. The worker keeps it and
				// sends it again, here once the store answers, or to
				// whichever server leads.
				writeUnavailable(w, "this server cannot reach the store to record the report; it is kept by the worker and sent again")
				return
			}
			if !s.elector.authoritative(time.Now()) {
				// Cut off from the store for too long: another server may
				// lead by now. Answering a worker here could keep an
				// attempt alive that the new leader runs again elsewhere.
				writeUnavailable(w, "this server cannot reach the store and no longer knows whether it leads; try another server or again later")
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		addr := s.elector.current().Address
		if addr == "" {
			writeUnavailable(w, "no server leads right now; try again in a few seconds")
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		defer context.AfterFunc(holding, cancel)()
		s.elector.proxy(addr).ServeHTTP(w, r.WithContext(ctx))
	})
}

func (e *elector) proxy(addr string) *httputil.ReverseProxy {
	e.proxyMu.Lock()
	defer e.proxyMu.Unlock()
	if p, ok := e.proxies[addr]; ok {
		return p
	}
	u, err := url.Parse(addr)
	if err != nil {
		u = &url.URL{Scheme: "http", Host: addr}
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.FlushInterval = -1 // log follows are streams
	p.Transport = e.transport
	p.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		writeUnavailable(w, "the leader at "+addr+" did not answer; try again")
	}
	e.proxies[addr] = p
	return p
}

// leaderOnly reports whether a request needs the leader.
func leaderOnly(r *http.Request) bool {
	p := r.URL.Path
	switch {
	case p == "/api/v1/worker/hosts":
		return false // a host's report only writes the store (inventory.go)
	case strings.HasPrefix(p, "/api/v1/worker/"), p == "/api/v1/workers":
		return true // the leader's broker hands out work and knows the workers
	case r.Method == http.MethodPost && strings.HasPrefix(p, "/api/v1/runs/"):
		return strings.HasSuffix(p, "/cancel") || strings.HasSuffix(p, "/retry") || strings.HasSuffix(p, "/mark")
	case r.Method == http.MethodPost && strings.HasPrefix(p, "/api/v1/backfills/"):
		return strings.HasSuffix(p, "/cancel")
	}
	return false
}

func writeUnavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`+"\n", api.CodeUnavailable, msg)
}

// waker is implemented by stores that can wake other servers at once
// (PostgreSQL's LISTEN/NOTIFY); without it the leader finds new work at its
// next tick.
type waker interface {
	Notify(ctx context.Context) error
	Listen(ctx context.Context, wake func()) error
}

// wakeLeader tells the leader that this follower created work for it.
func (s *Server) wakeLeader(ctx context.Context) {
	if s.leading() {
		s.poke()
		return
	}
	if w, ok := s.store.(waker); ok {
		if err := w.Notify(ctx); err != nil {
			s.log.Warn("wake the leader", "err", err)
		}
	}
}

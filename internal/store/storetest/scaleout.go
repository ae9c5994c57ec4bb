package storetest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Several servers and remote workers: the leadership lease, writes fenced by
// its term, and worker tokens.

const ttl = 10 * time.Second

func mustAcquire(t *testing.T, s store.Store, holder string, now time.Time) store.Leadership {
	t.Helper()
	l, err := s.AcquireLeadership(t.Context(), holder, "http://"+holder+":8080", ttl, now)
	if err != nil {
		t.Fatalf("AcquireLeadership(%s, %v): %v", holder, now, err)
	}
	return l
}

func mustLeader(t *testing.T, s store.Store) store.Leadership {
	t.Helper()
	l, err := s.Leader(t.Context())
	if err != nil {
		t.Fatalf("Leader: %v", err)
	}
	return l
}

// lease is the leadership holder would have with a lease taken at now.
func lease(holder string, term int64, now time.Time) store.Leadership {
	return store.Leadership{Holder: holder, Address: "http://" + holder + ":8080", Term: term, ExpiresAt: us(now.Add(ttl))}
}

func testLeadership(t *testing.T, s store.Store) {
	ctx := t.Context()
	check(t, "leadership of a new store", mustLeader(t, s), store.Leadership{})

	steps := []struct {
		what   string
		holder string
		at     time.Duration // after t0
		want   store.Leadership
	}{
		{"first acquisition", "a", 0, lease("a", 1, t0)},
		{"another server while the lease runs", "b", 5 * time.Second, lease("a", 1, t0)},
		{"renewal keeps the term", "a", 5 * time.Second, lease("a", 1, t0.Add(5*time.Second))},
		{"another server just before expiry", "b", 15*time.Second - time.Microsecond, lease("a", 1, t0.Add(5*time.Second))},
		{"takeover at expiry bumps the term", "b", 15 * time.Second, lease("b", 2, t0.Add(15*time.Second))},
		{"the deposed leader sees the new one", "a", 16 * time.Second, lease("b", 2, t0.Add(15*time.Second))},
		{"the new leader renews", "b", 20 * time.Second, lease("b", 2, t0.Add(20*time.Second))},
		{"the holder takes back its own expired lease, same term", "b", time.Minute, lease("b", 2, t0.Add(time.Minute))},
		{"takeover long after expiry", "c", time.Hour, lease("c", 3, t0.Add(time.Hour))},
		{"a former leader takes it back: a new term", "a", 2 * time.Hour, lease("a", 4, t0.Add(2*time.Hour))},
	}
	for _, st := range steps {
		got := mustAcquire(t, s, st.holder, t0.Add(st.at).In(jst))
		check(t, st.what, got, st.want)
		check(t, st.what+": Leader", mustLeader(t, s), st.want)
		if leads := got.HeldBy(st.holder, t0.Add(st.at)); leads != (st.want.Holder == st.holder) {
			t.Errorf("%s: HeldBy(%s) = %v", st.what, st.holder, leads)
		}
	}

	// Resigning: only the holder in its term can; afterwards nobody leads,
	// the term is kept, and whoever acquires next starts a new term.
	now := t0.Add(2 * time.Hour)
	cur := lease("a", 4, now)
	for _, r := range []struct {
		holder string
		term   int64
	}{{"b", 4}, {"a", 3}, {"a", 5}} {
		if err := s.ResignLeadership(ctx, r.holder, r.term); err != nil {
			t.Errorf("ResignLeadership(%s, %d) = %v, want nil", r.holder, r.term, err)
		}
		check(t, fmt.Sprintf("after ResignLeadership(%s, %d) by a non-holder", r.holder, r.term), mustLeader(t, s), cur)
	}
	if err := s.ResignLeadership(ctx, "a", 4); err != nil {
		t.Fatalf("ResignLeadership: %v", err)
	}
	resigned := store.Leadership{Term: 4}
	check(t, "after resigning", mustLeader(t, s), resigned)
	if err := s.ResignLeadership(ctx, "a", 4); err != nil {
		t.Errorf("resigning twice = %v, want nil", err)
	}
	check(t, "after resigning twice", mustLeader(t, s), resigned)
	// The lease has not expired by the clock, but nobody holds it.
	check(t, "the resigned holder acquires again", mustAcquire(t, s, "a", now.Add(time.Second)), lease("a", 5, now.Add(time.Second)))

	// Bad arguments are refused and change nothing.
	for _, bad := range []struct {
		what   string
		holder string
		ttl    time.Duration
		now    time.Time
	}{
		{"empty holder", "", ttl, now.Add(time.Hour)},
		{"zero ttl", "b", 0, now.Add(time.Hour)},
		{"negative ttl", "b", -time.Second, now.Add(time.Hour)},
		{"no time", "b", ttl, time.Time{}},
		{"holder with a NUL byte", "b\x00", ttl, now.Add(time.Hour)},
		{"holder not UTF-8", "b\xff", ttl, now.Add(time.Hour)},
	} {
		if l, err := s.AcquireLeadership(ctx, bad.holder, "", bad.ttl, bad.now); err == nil {
			t.Errorf("AcquireLeadership with %s = %+v, want an error", bad.what, l)
		}
	}
	if err := s.ResignLeadership(ctx, "", 5); err == nil {
		t.Error("ResignLeadership with an empty holder succeeded")
	}
	check(t, "after refused calls", mustLeader(t, s), lease("a", 5, now.Add(time.Second)))
}

// testConcurrentLeadership races servers with distinct holders for a free
// lease, then for an expired one: each time exactly one leads, and every
// racer is told who.
func testConcurrentLeadership(t *testing.T, s store.Store) {
	const servers = 8
	for round, now := range []time.Time{t0, t0.Add(ttl)} {
		results := make([]store.Leadership, servers)
		errs := make([]error, servers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range servers {
			wg.Go(func() {
				<-start
				results[i], errs[i] = s.AcquireLeadership(t.Context(), fmt.Sprintf("r%d-s%d", round, i), "", ttl, now)
			})
		}
		close(start)
		wg.Wait()
		leaders := 0
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: server %d: %v", round, i, err)
			}
			if results[i].Holder == fmt.Sprintf("r%d-s%d", round, i) {
				leaders++
			}
		}
		if leaders != 1 {
			t.Errorf("round %d: %d servers lead, want exactly 1: %+v", round, leaders, results)
		}
		l := mustLeader(t, s)
		want := store.Leadership{Holder: l.Holder, Term: int64(round + 1), ExpiresAt: us(now.Add(ttl))}
		check(t, fmt.Sprintf("round %d: leadership", round), l, want)
		for i, r := range results {
			check(t, fmt.Sprintf("round %d: what server %d was told", round, i), r, want)
		}
	}
}

// fencedChange touches every table of a run: run row, task row, a record and
// an attempt.
func fencedChange(id int64, state engine.RunState, task, attempt int, worker string) store.Change {
	return store.Change{RunID: id,
		Transition: engine.Transition{
			Run:     &engine.Run{State: state, Remaining: 3, StartedAt: t0},
			Tasks:   []engine.TaskChange{{Index: task, Task: engine.Task{State: engine.TaskRunning, Attempt: attempt, StartedAt: t0}}},
			Records: []engine.Record{{Time: t0, Kind: engine.EvTaskStarted, Task: task, Attempt: attempt, Actor: worker}},
		},
		Attempts: []store.Attempt{{Index: task, Attempt: attempt, Worker: worker, StartedAt: t0}},
	}
}

func testApplyFenced(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := mustCreate(t, s, newRun("p", 3))
	other := mustCreate(t, s, newRun("p", 3))

	// Before anyone has led, no fence holds.
	if err := s.ApplyFenced(ctx, store.Fence{Holder: "a", Term: 0}); !errors.Is(err, store.ErrFenced) {
		t.Errorf("ApplyFenced before any leader = %v, want ErrFenced", err)
	}

	a := mustAcquire(t, s, "a", t0)
	if err := s.ApplyFenced(ctx, a.Fence(), fencedChange(r.ID, engine.RunRunning, 0, 1, "a")); err != nil {
		t.Fatalf("ApplyFenced by the leader: %v", err)
	}
	sn := take(t, s, r.ID)
	if sn.Run.State != engine.RunRunning || sn.Tasks[0].State != engine.TaskRunning || len(sn.Attempts) != 1 || len(sn.Events) != 2 {
		t.Fatalf("after the leader's fenced batch: %+v", sn)
	}
	if err := s.ApplyFenced(ctx, a.Fence(), fencedChange(r.ID, engine.RunRunning, 1, 1, "a")); err != nil {
		t.Fatalf("second ApplyFenced by the leader: %v", err)
	}
	// A fenced batch that fails for another reason writes nothing either.
	if err := s.ApplyFenced(ctx, a.Fence(), fencedChange(other.ID, engine.RunRunning, 0, 1, "a"),
		store.Change{RunID: 987654321, Transition: engine.Transition{Run: &engine.Run{State: engine.RunRunning}}}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ApplyFenced with a missing run = %v, want ErrNotFound", err)
	}
	if got := take(t, s, other.ID); got.Run.State != engine.RunQueued || len(got.Events) != 1 {
		t.Errorf("a failed fenced batch wrote: %+v", got)
	}

	// b takes over; a is deposed.
	b := mustAcquire(t, s, "b", t0.Add(ttl))
	if b.Term != a.Term+1 {
		t.Fatalf("takeover: term %d, want %d", b.Term, a.Term+1)
	}
	before := []snapshot{take(t, s, r.ID), take(t, s, other.ID)}
	stale := []struct {
		what  string
		fence store.Fence
	}{
		{"the deposed leader", a.Fence()},
		{"the new holder with the old term", store.Fence{Holder: "b", Term: a.Term}},
		{"the new term with the old holder", store.Fence{Holder: "a", Term: b.Term}},
		{"a future term", store.Fence{Holder: "b", Term: b.Term + 1}},
		{"no holder", store.Fence{Term: b.Term}},
	}
	for _, st := range stale {
		err := s.ApplyFenced(ctx, st.fence, fencedChange(r.ID, engine.RunFailed, 2, 1, "x"), fencedChange(other.ID, engine.RunFailed, 2, 1, "x"))
		if !errors.Is(err, store.ErrFenced) {
			t.Errorf("ApplyFenced by %s = %v, want ErrFenced", st.what, err)
		}
		if err := s.ApplyFenced(ctx, st.fence); !errors.Is(err, store.ErrFenced) {
			t.Errorf("ApplyFenced by %s with no changes = %v, want ErrFenced", st.what, err)
		}
		check(t, "run after a stale fenced batch", take(t, s, r.ID), before[0])
		check(t, "other run after a stale fenced batch", take(t, s, other.ID), before[1])
	}
	if err := s.ApplyFenced(ctx, b.Fence()); err != nil {
		t.Errorf("ApplyFenced by the new leader with no changes = %v", err)
	}
	if err := s.ApplyFenced(ctx, b.Fence(), fencedChange(r.ID, engine.RunRunning, 2, 1, "b")); err != nil {
		t.Fatalf("ApplyFenced by the new leader: %v", err)
	}
	if sn := take(t, s, r.ID); sn.Tasks[2].State != engine.TaskRunning || len(sn.Attempts) != 3 {
		t.Errorf("after the new leader's batch: %+v", sn)
	}

	// Resigning fences the resigned leader's own writes, and plain Apply is
	// not fenced at all.
	if err := s.ResignLeadership(ctx, "b", b.Term); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyFenced(ctx, b.Fence(), fencedChange(other.ID, engine.RunRunning, 0, 1, "b")); !errors.Is(err, store.ErrFenced) {
		t.Errorf("ApplyFenced after resigning = %v, want ErrFenced", err)
	}
	mustApply(t, s, fencedChange(other.ID, engine.RunRunning, 0, 1, "anyone"))
}

// testApplyFencedTakeover runs a leader's fenced writes while another server
// takes the lease over: every batch the old leader was told it wrote
// committed before the takeover (its records come before the first record
// the new leader writes), and after the takeover it is fenced.
func testApplyFencedTakeover(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := mustCreate(t, s, newRun("p", 1))
	a := mustAcquire(t, s, "a", t0)
	record := func(actor string) store.Change {
		return store.Change{RunID: r.ID, Transition: engine.Transition{
			Records: []engine.Record{{Time: t0, Kind: "leader_tick", Task: -1, Actor: actor}}}}
	}
	var written int
	var loopErr error
	done := make(chan struct{})
	started := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(done)
		defer once.Do(func() { close(started) })
		for i := 0; ; i++ {
			if i == 3 {
				once.Do(func() { close(started) })
			}
			err := s.ApplyFenced(ctx, a.Fence(), record("a"))
			if errors.Is(err, store.ErrFenced) {
				return
			}
			if err != nil {
				loopErr = err
				return
			}
			written++
		}
	}()
	<-started
	b := mustAcquire(t, s, "b", t0.Add(ttl))
	if b.Holder != "b" {
		t.Fatalf("takeover failed: %+v", b)
	}
	if err := s.ApplyFenced(ctx, b.Fence(), record("b")); err != nil {
		t.Fatalf("the new leader's first write: %v", err)
	}
	<-done
	if loopErr != nil {
		t.Fatalf("the old leader's writes: %v", loopErr)
	}
	evs, err := s.Events(ctx, r.ID, 0, store.MaxEventsLimit)
	if err != nil {
		t.Fatal(err)
	}
	var fromA int
	sawB := false
	for _, e := range evs {
		switch e.Actor {
		case "a":
			fromA++
			if sawB {
				t.Errorf("the deposed leader's record %d was written after the new leader's", e.Seq)
			}
		case "b":
			sawB = true
		}
	}
	if fromA != written || !sawB {
		t.Errorf("%d records of the old leader stored, it was told %d were written; new leader's stored: %v", fromA, written, sawB)
	}
}

func hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

func testTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	if ts, err := s.ListTokens(ctx); err != nil || len(ts) != 0 {
		t.Errorf("ListTokens of a new store = %v, %v", ts, err)
	}
	// Hash bytes include NUL and high bytes: the store keeps them exactly.
	h1 := append([]byte{0, 0xff, 0x80}, hash("secret-1")...)
	w1, err := s.CreateToken(ctx, "worker-1", h1, t0.In(jst))
	if err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	if w1.ID == 0 {
		t.Fatal("CreateToken returned ID 0")
	}
	check(t, "created token", w1, store.Token{ID: w1.ID, Name: "worker-1", Kind: store.TokenWorker, CreatedAt: us(t0)})
	got, err := s.TokenByHash(ctx, h1)
	if err != nil {
		t.Fatalf("TokenByHash: %v", err)
	}
	check(t, "token by hash", got, w1)
	w2, err := s.CreateToken(ctx, "スポット-2", hash("secret-2"), time.Time{})
	if err != nil {
		t.Fatalf("CreateToken with the current time: %v", err)
	}
	if w2.CreatedAt.IsZero() || w2.ID == w1.ID {
		t.Errorf("second token = %+v", w2)
	}

	// Conflicts: a name of a valid token, a hash stored before.
	for _, c := range []struct {
		what string
		name string
		hash []byte
	}{
		{"the same name", "worker-1", hash("secret-3")},
		{"the same hash", "worker-3", h1},
	} {
		if _, err := s.CreateToken(ctx, c.name, c.hash, t0); !errors.Is(err, store.ErrConflict) {
			t.Errorf("CreateToken with %s = %v, want ErrConflict", c.what, err)
		}
	}
	for _, bad := range []struct {
		what string
		name string
		hash []byte
	}{
		{"an empty name", "", hash("x")},
		{"a name with NUL", "w\x00", hash("x")},
		{"a name that is not UTF-8", "w\xff", hash("x")},
		{"an empty hash", "w", nil},
	} {
		if _, err := s.CreateToken(ctx, bad.name, bad.hash, t0); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("CreateToken with %s = %v, want an error other than ErrConflict", bad.what, err)
		}
	}
	for _, h := range [][]byte{hash("unknown"), nil, h1[:5]} {
		if _, err := s.TokenByHash(ctx, h); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("TokenByHash(%x) = %v, want ErrNotFound", h, err)
		}
	}

	// Last use only moves forward.
	for _, at := range []time.Duration{time.Minute, 30 * time.Second, time.Minute} {
		if err := s.TouchToken(ctx, w1.ID, t0.Add(at)); err != nil {
			t.Fatalf("TouchToken: %v", err)
		}
	}
	w1.LastUsedAt = us(t0.Add(time.Minute))
	if got, err := s.TokenByHash(ctx, h1); err != nil {
		t.Fatal(err)
	} else {
		check(t, "token after TouchToken", got, w1)
	}
	if err := s.TouchToken(ctx, 987654321, t0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TouchToken of a missing token = %v, want ErrNotFound", err)
	}

	// Revoking.
	if err := s.RevokeToken(ctx, "worker-1", t0.Add(time.Hour)); err != nil {
		t.Fatalf("RevokeToken: %v", err)
	}
	w1.RevokedAt = us(t0.Add(time.Hour))
	if _, err := s.TokenByHash(ctx, h1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TokenByHash of a revoked token = %v, want ErrNotFound", err)
	}
	for _, name := range []string{"worker-1", "nobody"} {
		if err := s.RevokeToken(ctx, name, t0.Add(2*time.Hour)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RevokeToken(%q) = %v, want ErrNotFound", name, err)
		}
	}
	// A revoked name may be reused; its hash may not.
	if _, err := s.CreateToken(ctx, "worker-1", h1, t0); !errors.Is(err, store.ErrConflict) {
		t.Errorf("CreateToken reusing a revoked token's hash = %v, want ErrConflict", err)
	}
	w1b, err := s.CreateToken(ctx, "worker-1", hash("secret-1b"), t0.Add(3*time.Hour))
	if err != nil {
		t.Fatalf("CreateToken reusing a revoked name: %v", err)
	}
	if got, err := s.TokenByHash(ctx, hash("secret-1b")); err != nil {
		t.Fatal(err)
	} else {
		check(t, "new token of a reused name", got, w1b)
	}
	ts, err := s.ListTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "ListTokens", ts, []store.Token{w1, w2, w1b})
	// Revoking a name revokes the valid token only.
	if err := s.RevokeToken(ctx, "worker-1", time.Time{}); err != nil {
		t.Fatal(err)
	}
	ts, err = s.ListTokens(ctx)
	if err != nil || len(ts) != 3 {
		t.Fatalf("ListTokens = %v, %v", ts, err)
	}
	check(t, "first worker-1 after revoking the second", ts[0], w1)
	if ts[2].RevokedAt.IsZero() {
		t.Errorf("second worker-1 not revoked: %+v", ts[2])
	}
}

// testConcurrentTokens creates tokens of one name from several servers at
// once: exactly one is created.
func testConcurrentTokens(t *testing.T, s store.Store) {
	const servers = 8
	errs := make([]error, servers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range servers {
		wg.Go(func() {
			<-start
			_, errs[i] = s.CreateToken(t.Context(), "gpu-1", hash(fmt.Sprint("secret", i)), t0)
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("server %d: %v, want success or ErrConflict", i, err)
		}
	}
	ts, err := s.ListTokens(t.Context())
	if ok != 1 || err != nil || len(ts) != 1 {
		t.Errorf("%d servers created the token; stored %d, %v; want 1", ok, len(ts), err)
	}
}

package server_test

// Tests of a new leader adopting the items of a map that remote workers
// still run (internal/runner/mapadopt.go, store.MapLease), with real
// processes on PostgreSQL, beside adopt_process_test.go's of whole tasks:
// the leader is killed (SIGKILL) in the middle of a map whose items run on
// a remote worker; the follower takes over and adopts every item in
// flight, which ends with its first attempt; a worker that dies with the
// leader loses its items after a lease timeout, and they run again once.
// Each item's attempts keep a ledger of ticks from the worker's clock.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
)

// adoptItems is how many items the map of the tests runs at once on one
// worker.
const adoptItems = 6

// tickMapPipeline is a pipeline whose map's items each append "ATTEMPT
// NANOS WORKER" lines to a ledger of their own (ledger/ITEM) every 20 ms
// from their first moment to their last, from the clock of the machine
// they run on, create ledger/started.ITEM on their first attempt, and end
// (succeeded) once the file GO exists.
func tickMapPipeline(t *testing.T, dir, ledger, goFile string) {
	t.Helper()
	writeFile(t, dir, "tickmap.yaml", fmt.Sprintf(`name: tickmap
env: {LEDGER: %q, GO: %q}
tasks:
  - id: each
    labels: [adopt]
    map: {range: {stop: %d}}
    run: |
      L="$LEDGER/$TASUKI_ITEM_INDEX"
      tick() { echo "$TASUKI_ATTEMPT $(date +%%s%%N) $W" >> "$L"; }
      tick
      if [ "$TASUKI_ATTEMPT" = 1 ]; then touch "$LEDGER/started.$TASUKI_ITEM_INDEX"; fi
      while [ ! -e "$GO" ]; do sleep 0.02; tick; done
      tick
`, ledger, goFile, adoptItems))
}

// waitItemsStarted waits until every item of the map has started its first
// attempt.
func waitItemsStarted(t *testing.T, ledger string) {
	t.Helper()
	eventually(t, 30*time.Second, "every item to start", func() (bool, string) {
		var missing []string
		for i := range adoptItems {
			if _, err := os.Stat(filepath.Join(ledger, "started."+strconv.Itoa(i))); err != nil {
				missing = append(missing, strconv.Itoa(i))
			}
		}
		return len(missing) == 0, "not started: " + strings.Join(missing, " ")
	})
}

// waitItemsRecorded waits until the store records which worker was handed
// every item (the leader records first attempts just after handing them
// out): only then may the leader die for the test to expect adoptions.
func waitItemsRecorded(t *testing.T, st store.Store, run int64) {
	t.Helper()
	eventually(t, 10*time.Second, "the hand-outs of every item to be recorded", func() (bool, string) {
		ls, err := st.MapLeases(context.Background(), run, 0)
		if err != nil {
			return false, err.Error()
		}
		n := 0
		for _, l := range ls {
			for _, u := range l.Units {
				n += len(u.Items)
			}
		}
		return n == adoptItems, fmt.Sprintf("%d items recorded", n)
	})
}

// mapItemRows reads the item rows of map task 0 of a run.
func mapItemRows(t *testing.T, st store.Store, run int64) []store.MapItem {
	t.Helper()
	rows, err := st.MapItems(context.Background(), store.MapItemFilter{RunID: run, Index: 0, Limit: store.MaxMapItemsLimit})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestFailoverAdoptsMapItems: a remote worker runs every item of a map for
// the leader; the leader dies (SIGKILL). The follower takes over and
// adopts the items in flight: the worker, whose heartbeats (naming its
// bundles) go to the follower, keeps running them, and their reports are
// taken. Every item ends succeeded with its first attempt, its ticks
// uninterrupted, and the map succeeds; its records of hand-outs go with
// its end.
func TestFailoverAdoptsMapItems(t *testing.T) {
	if testing.Short() {
		t.Skip("kills the leader of two servers on PostgreSQL (~15 s)")
	}
	dsn := pgtest.DSN(t)
	dir, ledger := t.TempDir(), t.TempDir()
	goFile := filepath.Join(t.TempDir(), "go")
	tickMapPipeline(t, dir, ledger, goFile)
	leader, follower := twoServers(t, dsn, dir)
	_, tokenFile := createToken(t, follower.url, "adopt")
	w := startWorker(t, follower.url, tokenFile, "w1", nil, "--labels", "adopt", "--slots", strconv.Itoa(adoptItems))
	st := openPG(t, dsn)
	ctx := context.Background()

	run, err := follower.c.Trigger(ctx, "tickmap", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	waitItemsStarted(t, ledger)
	waitItemsRecorded(t, st, run.ID)
	leader.kill9()
	follower.waitLine("leading:", 10*time.Second)
	line := follower.waitLine("map items found running on remote workers", 10*time.Second)
	if !strings.Contains(line, "items="+strconv.Itoa(adoptItems)) {
		t.Errorf("adoption: %s, want every item", line)
	}
	// The worker's heartbeat reaches the new leader: the leases are its.
	awaitHeartbeat(t, follower.c, "w1", adoptItems)
	if err := os.WriteFile(goFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := waitRunEnd(t, follower.c, run.ID); got.State != engine.RunSucceeded {
		t.Fatalf("run %d: %s, want succeeded", run.ID, got.State)
	}
	rows := mapItemRows(t, st, run.ID)
	if len(rows) != adoptItems {
		t.Fatalf("%d item rows, want %d", len(rows), adoptItems)
	}
	for _, r := range rows {
		if r.State != engine.TaskSucceeded || r.Attempt != 1 || r.Worker != "w1" {
			t.Errorf("item %d: %s, attempt %d on %q; want succeeded with attempt 1 on w1", r.Item, r.State, r.Attempt, r.Worker)
		}
	}
	for i := range adoptItems {
		spans := attemptSpans(t, filepath.Join(ledger, strconv.Itoa(i)))
		if len(spans) != 1 || spans[0].attempt != 1 {
			t.Errorf("ledger of item %d: %+v, want attempt 1 alone", i, spans)
		}
	}
	if ls, err := st.MapLeases(ctx, run.ID, 0); err != nil || len(ls) != 0 {
		t.Errorf("records of hand-outs after the map ended: %+v, %v", ls, err)
	}
	if strings.Contains(w.logs(), "ending the attempts") || strings.Contains(w.logs(), "no longer holds the lease") {
		t.Errorf("the worker ended attempts:\n%s", w.logs())
	}
	w.term(10 * time.Second)
	follower.term(15 * time.Second)
}

// TestFailoverMapItemsWorkerGoneAreLost: the worker running a map's items
// dies with the leader. The new leader adopts the items, hears nothing of
// them for a lease timeout, and only then runs each again, once, on
// another worker: every item has two attempts whose ticks never overlap,
// and the map succeeds.
func TestFailoverMapItemsWorkerGoneAreLost(t *testing.T) {
	if testing.Short() {
		t.Skip("waits a lease timeout after a takeover (~20 s)")
	}
	dsn := pgtest.DSN(t)
	dir, ledger := t.TempDir(), t.TempDir()
	goFile := filepath.Join(t.TempDir(), "go")
	tickMapPipeline(t, dir, ledger, goFile)
	leader, follower := twoServers(t, dsn, dir)
	_, tokenFile := createToken(t, follower.url, "adopt")
	w1 := startWorker(t, follower.url, tokenFile, "w1", nil, "--labels", "adopt", "--slots", strconv.Itoa(adoptItems))
	st := openPG(t, dsn)
	ctx := context.Background()

	run, err := follower.c.Trigger(ctx, "tickmap", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	waitItemsStarted(t, ledger)
	waitItemsRecorded(t, st, run.ID)
	// The worker dies, and its items' processes with it; then the leader.
	w1.kill9()
	killTicker(t, ledger)
	leader.kill9()
	took := time.Now()
	follower.waitLine("leading:", 10*time.Second)
	follower.waitLine("map items found running on remote workers", 10*time.Second)
	if err := os.WriteFile(goFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w2 := startWorker(t, follower.url, tokenFile, "w2", nil, "--labels", "adopt", "--slots", strconv.Itoa(adoptItems))
	if got := waitRunEnd(t, follower.c, run.ID); got.State != engine.RunSucceeded {
		t.Fatalf("run %d: %s, want succeeded", run.ID, got.State)
	}
	if since := time.Since(took); since < adoptLeaseTimeout {
		t.Errorf("the run ended %s after the takeover, before the lease timeout (%s) the adopted items had", since, adoptLeaseTimeout)
	}
	rows := mapItemRows(t, st, run.ID)
	if len(rows) != adoptItems {
		t.Fatalf("%d item rows, want %d", len(rows), adoptItems)
	}
	for _, r := range rows {
		if r.State != engine.TaskSucceeded || r.Attempt != 2 || r.Spent != 1 || r.Worker != "w2" {
			t.Errorf("item %d: %s, attempt %d (%d charged) on %q; want succeeded with attempt 2 on w2, the lost one not charged", r.Item, r.State, r.Attempt, r.Spent, r.Worker)
		}
	}
	for i := range adoptItems {
		spans := attemptSpans(t, filepath.Join(ledger, strconv.Itoa(i)))
		if len(spans) != 2 || spans[0].attempt != 1 || spans[1].attempt != 2 {
			t.Errorf("ledger of item %d: %+v, want attempts 1 and 2", i, spans)
			continue
		}
		checkDisjoint(t, spans)
	}
	w2.term(10 * time.Second)
	follower.term(15 * time.Second)
}

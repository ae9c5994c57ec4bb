package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// The outbox of notifications and the incidents of runs (store.Notifications).

func note(run int64, kind, step string, at time.Time, targets ...string) store.Notification {
	n := store.Notification{RunID: run, Pipeline: "p", Kind: kind, Incident: step, At: at,
		Payload: json.RawMessage(fmt.Sprintf(`{"event":%q,"run":%d}`, kind, run))}
	for _, t := range targets {
		n.Targets = append(n.Targets, store.Target{Destination: json.RawMessage(fmt.Sprintf(`{"webhook":%q}`, t)), Label: "webhook " + t})
	}
	return n
}

func mustPublish(t *testing.T, s store.Store, n store.Notification) []store.Delivery {
	t.Helper()
	ds, err := s.Publish(t.Context(), n)
	if err != nil {
		t.Fatalf("Publish %s: %v", n.Kind, err)
	}
	return ds
}

func testOutboxPublish(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := mustCreate(t, s, newRun("p", 1))
	at := t0.Add(time.Minute)
	ds := mustPublish(t, s, note(r.ID, "failed", store.IncidentOpen, at, "a.example", "b.example"))
	if len(ds) != 2 {
		t.Fatalf("Publish wrote %d deliveries, want 2", len(ds))
	}
	want := store.Delivery{ID: ds[0].ID, RunID: r.ID, Pipeline: "p", Kind: "failed",
		Payload: json.RawMessage(fmt.Sprintf(`{"event": "failed", "run": %d}`, r.ID)), Destination: json.RawMessage(`{"webhook": "a.example"}`),
		Label: "webhook a.example", State: store.DeliveryPending, CreatedAt: us(at), NextAt: us(at)}
	got := ds[0]
	got.Payload, got.Destination = compactJSON(t, got.Payload), compactJSON(t, got.Destination)
	want.Payload, want.Destination = compactJSON(t, want.Payload), compactJSON(t, want.Destination)
	check(t, "published delivery", got, want)
	listed, err := s.RunDeliveries(ctx, r.ID)
	if err != nil || len(listed) != 2 || listed[0].ID != ds[0].ID || listed[1].ID != ds[1].ID {
		t.Fatalf("RunDeliveries = %+v, %v", listed, err)
	}
	// A run without deliveries lists none; an unknown run is not found.
	other := mustCreate(t, s, newRun("p", 1))
	if l, err := s.RunDeliveries(ctx, other.ID); err != nil || len(l) != 0 {
		t.Errorf("RunDeliveries of a run without any = %v, %v", l, err)
	}
	if _, err := s.RunDeliveries(ctx, 1<<40); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RunDeliveries of an unknown run: %v, want ErrNotFound", err)
	}
	if _, err := s.Publish(ctx, note(1<<40, "failed", store.IncidentOpen, at, "x")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Publish for an unknown run: %v, want ErrNotFound", err)
	}
	// An event about no run has no incident and is always told.
	for range 2 {
		if ds := mustPublish(t, s, note(0, "slo_breach", store.IncidentOpen, at, "x")); len(ds) != 1 || ds[0].RunID != 0 {
			t.Errorf("Publish without a run = %+v", ds)
		}
	}
	for name, n := range map[string]store.Notification{
		"no kind":          {Pipeline: "p", Payload: json.RawMessage(`{}`)},
		"no payload":       {Pipeline: "p", Kind: "failed"},
		"payload array":    {Pipeline: "p", Kind: "failed", Payload: json.RawMessage(`[1]`)},
		"bad JSON":         {Pipeline: "p", Kind: "failed", Payload: json.RawMessage(`{`)},
		"bad step":         {Pipeline: "p", Kind: "failed", Incident: "reopen", Payload: json.RawMessage(`{}`)},
		"destination text": {Pipeline: "p", Kind: "failed", Payload: json.RawMessage(`{}`), Targets: []store.Target{{Destination: json.RawMessage(`"x"`)}}},
	} {
		if _, err := s.Publish(ctx, n); err == nil {
			t.Errorf("Publish %s: no error", name)
		}
	}
}

func compactJSON(t *testing.T, raw json.RawMessage) json.RawMessage {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	b, _ := json.Marshal(v)
	return b
}

func testIncidents(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := mustCreate(t, s, newRun("p", 1))
	at := t0
	steps := []struct {
		kind, step string
		told       bool
	}{
		{"recovered", store.IncidentClose, false}, // nothing to recover from
		{"repaired", store.IncidentRepair, false},
		{"at_risk", store.IncidentOpen, true},
		{"at_risk", store.IncidentOpen, false}, // the same problem again
		{"failed", store.IncidentOpen, true},   // another problem
		{"failed", store.IncidentOpen, false},  // a retry failing again
		{"repaired", store.IncidentRepair, true},
		{"repaired", store.IncidentRepair, false},
		{"succeeded", store.IncidentNone, true},
		{"recovered", store.IncidentClose, true},
		{"recovered", store.IncidentClose, false},
		{"succeeded", store.IncidentNone, true},
		{"failed", store.IncidentOpen, true}, // a new incident after the recovery
	}
	for i, st := range steps {
		at = at.Add(time.Second)
		ds := mustPublish(t, s, note(r.ID, st.kind, st.step, at, "x"))
		if told := len(ds) == 1; told != st.told {
			t.Errorf("step %d: %s told = %v, want %v", i, st.kind, told, st.told)
		}
	}
	got, err := s.Incidents(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Incident{
		{RunID: r.ID, Problem: "at_risk", OpenedAt: us(t0.Add(3 * time.Second)), ClosedAt: us(t0.Add(10 * time.Second)),
			RepairedAt: us(t0.Add(7 * time.Second)), Opened: 1},
		{RunID: r.ID, Problem: "failed", OpenedAt: us(t0.Add(13 * time.Second)), Opened: 2},
	}
	check(t, "incidents", got, want)
	// Publishing with no targets still moves the incidents.
	if ds := mustPublish(t, s, note(r.ID, "recovered", store.IncidentClose, at.Add(time.Second))); len(ds) != 0 {
		t.Errorf("Publish without targets wrote %v", ds)
	}
	if ds := mustPublish(t, s, note(r.ID, "recovered", store.IncidentClose, at.Add(2*time.Second), "x")); len(ds) != 0 {
		t.Errorf("a recovery was told although the incident was closed by the one before: %v", ds)
	}
	if in, err := s.Incidents(ctx, mustCreate(t, s, newRun("p", 1)).ID); err != nil || len(in) != 0 {
		t.Errorf("Incidents of a new run = %v, %v", in, err)
	}
}

func testClaimDeliveries(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := mustCreate(t, s, newRun("p", 1))
	now := t0
	ds := mustPublish(t, s, note(r.ID, "failed", store.IncidentOpen, now, "a", "b", "c"))
	late := mustPublish(t, s, note(0, "slo_breach", store.IncidentNone, now.Add(time.Hour), "d"))
	if _, err := s.ClaimDeliveries(ctx, "", now, time.Minute, 0); err == nil {
		t.Error("ClaimDeliveries with no holder: no error")
	}
	if _, err := s.ClaimDeliveries(ctx, "h1", now, 0, 0); err == nil {
		t.Error("ClaimDeliveries with no lease: no error")
	}
	// Not due yet.
	if c, err := s.ClaimDeliveries(ctx, "h1", now.Add(-time.Second), time.Minute, 0); err != nil || len(c) != 0 {
		t.Fatalf("claim before due = %v, %v", c, err)
	}
	c1, err := s.ClaimDeliveries(ctx, "h1", now, time.Minute, 2)
	if err != nil || len(c1) != 2 || c1[0].ID != ds[0].ID || c1[1].ID != ds[1].ID {
		t.Fatalf("first claim = %+v, %v", c1, err)
	}
	if c1[0].ClaimedBy != "h1" || !c1[0].ClaimedUntil.Equal(us(now.Add(time.Minute))) || c1[0].Attempts != 1 {
		t.Errorf("claimed delivery = %+v", c1[0])
	}
	// Another holder gets only what is left.
	c2, err := s.ClaimDeliveries(ctx, "h2", now.Add(time.Second), time.Minute, 0)
	if err != nil || len(c2) != 1 || c2[0].ID != ds[2].ID {
		t.Fatalf("second claim = %+v, %v", c2, err)
	}
	// h1 sends the first: a success with a record on the run's timeline.
	rec := &engine.Record{Time: now.Add(2 * time.Second), Kind: "alert_sent", Task: -1, Message: "failed → webhook a"}
	if err := s.FinishDelivery(ctx, store.DeliveryOutcome{ID: c1[0].ID, Holder: "h1", Attempt: 1, At: now.Add(2 * time.Second), Record: rec}); err != nil {
		t.Fatal(err)
	}
	// A try finished twice, or by someone else, is refused.
	for name, o := range map[string]store.DeliveryOutcome{
		"again":        {ID: c1[0].ID, Holder: "h1", Attempt: 1},
		"other holder": {ID: c1[1].ID, Holder: "h2", Attempt: 1},
		"other try":    {ID: c1[1].ID, Holder: "h1", Attempt: 2},
	} {
		if err := s.FinishDelivery(ctx, o); !errors.Is(err, store.ErrConflict) {
			t.Errorf("FinishDelivery %s: %v, want ErrConflict", name, err)
		}
	}
	if err := s.FinishDelivery(ctx, store.DeliveryOutcome{ID: 1 << 40, Holder: "h1", Attempt: 1}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FinishDelivery of an unknown delivery: %v, want ErrNotFound", err)
	}
	// h1 dies holding the second; once its lease ends, h2 claims it again.
	if c, err := s.ClaimDeliveries(ctx, "h2", now.Add(59*time.Second), time.Minute, 0); err != nil || len(c) != 0 {
		t.Fatalf("claim while the lease holds = %+v, %v", c, err)
	}
	c3, err := s.ClaimDeliveries(ctx, "h2", now.Add(time.Minute), time.Minute, 0)
	if err != nil || len(c3) != 1 || c3[0].ID != ds[1].ID || c3[0].Attempts != 2 || c3[0].ClaimedBy != "h2" {
		t.Fatalf("claim after the lease = %+v, %v", c3, err)
	}
	if err := s.FinishDelivery(ctx, store.DeliveryOutcome{ID: ds[1].ID, Holder: "h1", Attempt: 1, At: now.Add(61 * time.Second)}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("the late finish of a lost claim: %v, want ErrConflict", err)
	}
	// It fails, to be tried again in a minute; then it is given up.
	retry := now.Add(2 * time.Minute)
	if err := s.FinishDelivery(ctx, store.DeliveryOutcome{ID: ds[1].ID, Holder: "h2", Attempt: 2, At: now.Add(61 * time.Second), Error: "503", RetryAt: retry,
		Record: &engine.Record{Time: now.Add(61 * time.Second), Kind: "alert_failed", Task: -1, Message: "failed → webhook b: 503"}}); err != nil {
		t.Fatal(err)
	}
	if c, err := s.ClaimDeliveries(ctx, "h2", retry.Add(-time.Millisecond), time.Minute, 0); err != nil || len(c) != 1 || c[0].ID != ds[2].ID {
		// only the third, whose claim by h2 expired, is due before the retry
		t.Fatalf("claim before the retry = %+v, %v", c, err)
	}
	c4, err := s.ClaimDeliveries(ctx, "h2", retry, time.Minute, 0)
	if err != nil || len(c4) != 1 || c4[0].ID != ds[1].ID || c4[0].Attempts != 3 || c4[0].LastError != "503" {
		t.Fatalf("claim at the retry = %+v, %v", c4, err)
	}
	if err := s.FinishDelivery(ctx, store.DeliveryOutcome{ID: ds[1].ID, Holder: "h2", Attempt: 3, At: retry, Error: "400 Bad Request"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.RunDeliveries(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		State, LastError, ClaimedBy string
		Attempts                    int
		FinishedAt                  time.Time
	}
	var rows []row
	for _, d := range got {
		rows = append(rows, row{d.State, d.LastError, d.ClaimedBy, d.Attempts, d.FinishedAt})
	}
	check(t, "deliveries", rows, []row{
		{store.DeliverySent, "", "", 1, us(now.Add(2 * time.Second))},
		{store.DeliveryFailed, "400 Bad Request", "", 3, us(retry)},
		{store.DeliveryPending, "", "h2", 2, time.Time{}},
	})
	evs, err := s.Events(ctx, r.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range evs {
		if e.Kind == "alert_sent" || e.Kind == "alert_failed" {
			kinds = append(kinds, string(e.Kind)+": "+e.Message)
		}
	}
	check(t, "alert records", kinds, []string{"alert_sent: failed → webhook a", "alert_failed: failed → webhook b: 503"})
	// The late delivery without a run is due an hour later.
	c5, err := s.ClaimDeliveries(ctx, "h3", now.Add(time.Hour), time.Minute, 0)
	if err != nil || len(c5) != 2 || c5[1].ID != late[0].ID {
		t.Fatalf("claim of the late delivery = %+v, %v", c5, err)
	}
	if err := s.FinishDelivery(ctx, store.DeliveryOutcome{ID: late[0].ID, Holder: "h3", Attempt: 1, Record: rec}); err != nil {
		t.Errorf("finish a delivery without a run, with a record: %v", err)
	}
}

// testConcurrentClaims: servers claiming at once each get different
// deliveries, and together all of them.
func testConcurrentClaims(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := mustCreate(t, s, newRun("p", 1))
	const n = 40
	var targets []string
	for i := range n {
		targets = append(targets, fmt.Sprint("d", i))
	}
	ds := mustPublish(t, s, note(r.ID, "succeeded", store.IncidentNone, t0, targets...))
	var mu sync.Mutex
	claimed := map[int64]string{}
	var wg sync.WaitGroup
	for h := range 6 {
		holder := fmt.Sprint("h", h)
		wg.Go(func() {
			for {
				c, err := s.ClaimDeliveries(ctx, holder, t0, time.Minute, 3)
				if err != nil {
					t.Errorf("claim: %v", err)
					return
				}
				if len(c) == 0 {
					return
				}
				mu.Lock()
				for _, d := range c {
					if prev, ok := claimed[d.ID]; ok {
						t.Errorf("delivery %d claimed by %s and %s", d.ID, prev, holder)
					}
					claimed[d.ID] = holder
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(claimed) != len(ds) {
		t.Errorf("%d of %d deliveries claimed", len(claimed), len(ds))
	}
}

// testConcurrentIncidents: of several servers telling the same problem of
// a run at once, exactly one writes its deliveries.
func testConcurrentIncidents(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := mustCreate(t, s, newRun("p", 1))
	for round, step := range []struct{ kind, incident string }{{"failed", store.IncidentOpen}, {"recovered", store.IncidentClose}, {"failed", store.IncidentOpen}} {
		var mu sync.Mutex
		told := 0
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				ds, err := s.Publish(ctx, note(r.ID, step.kind, step.incident, t0.Add(time.Duration(round)*time.Second), "x"))
				if err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
				mu.Lock()
				told += len(ds)
				mu.Unlock()
			})
		}
		wg.Wait()
		if told != 1 {
			t.Errorf("round %d (%s): told %d times, want once", round, step.kind, told)
		}
	}
	in, err := s.Incidents(ctx, r.ID)
	if err != nil || len(in) != 1 || in[0].Opened != 2 || !in[0].ClosedAt.IsZero() {
		t.Errorf("incidents = %+v, %v", in, err)
	}
}

// testPruneTakesDeliveries: a pruned run's deliveries and incidents go
// with it; those of no run stay.
func testPruneTakesDeliveries(t *testing.T, s store.Store) {
	ctx := t.Context()
	nr := newRun("p", 1)
	nr.Run.State = engine.RunFailed
	nr.Run.CreatedAt = t0.Add(-time.Hour)
	r := mustCreate(t, s, nr)
	mustPublish(t, s, note(r.ID, "failed", store.IncidentOpen, t0, "x"))
	mustPublish(t, s, note(0, "slo_breach", store.IncidentNone, t0, "x"))
	if ids, err := s.PruneRuns(ctx, t0, 0); err != nil || len(ids) != 1 {
		t.Fatalf("PruneRuns = %v, %v", ids, err)
	}
	if _, err := s.RunDeliveries(ctx, r.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deliveries of a pruned run: %v", err)
	}
	if in, err := s.Incidents(ctx, r.ID); err != nil || len(in) != 0 {
		t.Errorf("incidents of a pruned run = %v, %v", in, err)
	}
	c, err := s.ClaimDeliveries(ctx, "h", t0, time.Minute, 0)
	if err != nil || len(c) != 1 || c[0].RunID != 0 {
		t.Errorf("deliveries left = %+v, %v", c, err)
	}
}

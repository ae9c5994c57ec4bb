package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/notify"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
)

// clock is a test clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a store with one run, an outbox over it routing to dests, and a
// clock.
type env struct {
	st    store.Store
	run   store.Run
	clock *clock
	box   *notify.Outbox
	dests []notify.Destination
}

func newEnv(t *testing.T, dests ...notify.Destination) *env {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "tasuki.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r, err := st.CreateRun(t.Context(), store.NewRun{Run: store.Run{Pipeline: "trades", Trigger: "manual"}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, run: r, clock: &clock{t: signedAt}, dests: dests}
	e.box = &notify.Outbox{Store: st, Base: func() string { return "http://127.0.0.1:8080" },
		Routes: func(context.Context, notify.Event) []notify.Destination { return e.dests }}
	return e
}

func (e *env) publish(t *testing.T, k notify.Kind) {
	t.Helper()
	ev := notify.Event{Kind: k, Pipeline: "trades", RunID: e.run.ID, State: "running", At: e.clock.Now(), Reason: "because"}
	if err := e.box.Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
}

func (e *env) deliverer(holder string) *notify.Deliverer {
	return &notify.Deliverer{Store: e.st, Sender: &notify.Sender{}, Holder: holder, Now: e.clock.Now,
		Log: slog.New(slog.DiscardHandler)}
}

// deliveries lists the run's deliveries as "kind state label".
func (e *env) deliveries(t *testing.T) []string {
	t.Helper()
	ds, err := e.st.RunDeliveries(t.Context(), e.run.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%s %s %s", d.Kind, d.State, d.Label))
	}
	return out
}

// records lists the run's alert records as "kind: message".
func (e *env) records(t *testing.T) []string {
	t.Helper()
	evs, err := e.st.Events(t.Context(), e.run.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		if ev.Kind == notify.RecAlertSent || ev.Kind == notify.RecAlertFailed {
			out = append(out, string(ev.Kind)+": "+ev.Message)
		}
	}
	return out
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n  %s\nwant\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestOneAlertPerIncident: a retried run that fails again, and a second
// at-risk prediction, are not told again; the recovery is told once; a
// destination gets only what it asked for, and two routes to the same
// place deliver once.
func TestOneAlertPerIncident(t *testing.T) {
	hook := notify.Destination{Webhook: "https://ops.example.com/hooks/x"}
	all := notify.Destination{Email: "team@example.com", On: notify.Kinds()}
	e := newEnv(t, hook, all, notify.Destination{Webhook: "https://ops.example.com/hooks/x", On: []notify.Kind{notify.Failed}})
	for _, k := range []notify.Kind{notify.AtRisk, notify.AtRisk, notify.Failed, notify.Failed, notify.Repaired, notify.Repaired,
		notify.Recovered, notify.Recovered, notify.Succeeded} {
		e.clock.Add(time.Second)
		e.publish(t, k)
	}
	equal(t, "deliveries", e.deliveries(t), []string{
		"at_risk pending webhook ops.example.com/…",
		"at_risk pending email team@example.com",
		"failed pending webhook ops.example.com/…",
		"failed pending email team@example.com",
		"repaired pending email team@example.com",
		"recovered pending webhook ops.example.com/…",
		"recovered pending email team@example.com",
		"succeeded pending email team@example.com",
	})
	if err := e.box.Publish(t.Context(), notify.Event{Kind: "finished", Pipeline: "trades", RunID: e.run.ID}); err == nil {
		t.Error("Publish of an unknown kind: no error")
	}
}

// TestDeliveryRetries: a receiver that fails twice gets the event on the
// third try, after the backoff; each try is on the run's timeline.
func TestDeliveryRetries(t *testing.T) {
	srv, got := receiver(t, http.StatusBadGateway, http.StatusServiceUnavailable)
	e := newEnv(t, notify.Destination{Webhook: srv.URL + "/hook/secret-path"})
	e.publish(t, notify.Failed)
	d := e.deliverer("h1")
	for i, wait := range []time.Duration{0, 10 * time.Second, 20 * time.Second} {
		e.clock.Add(wait - time.Millisecond)
		if n := d.Pass(t.Context()); n != 0 && i > 0 {
			t.Fatalf("try %d made before its backoff", i+1)
		}
		e.clock.Add(time.Millisecond)
		if n := d.Pass(t.Context()); n != 1 {
			t.Fatalf("pass %d made %d tries, want 1", i+1, n)
		}
		<-got
	}
	if n := d.Pass(t.Context()); n != 0 {
		t.Errorf("a sent delivery was tried again (%d)", n)
	}
	equal(t, "deliveries", e.deliveries(t), []string{"failed sent webhook 127.0.0.1:" + strings.Split(srv.URL, ":")[2] + "/…"})
	recs := e.records(t)
	if len(recs) != 3 || !strings.HasPrefix(recs[0], "alert_failed: failed → webhook 127.0.0.1:") ||
		!strings.Contains(recs[0], "answered 502 Bad Gateway: answer 502 (try 1 of 8; next at 2026-03-14T11:20:10Z)") ||
		!strings.Contains(recs[1], "(try 2 of 8; next at 2026-03-14T11:20:30Z)") || !strings.HasPrefix(recs[2], "alert_sent: failed → webhook") {
		t.Errorf("records:\n%s", strings.Join(recs, "\n"))
	}
	for _, r := range recs {
		if strings.Contains(r, "secret-path") {
			t.Errorf("a record shows the URL's path: %s", r)
		}
	}
}

func TestDeliveryGivesUp(t *testing.T) {
	srv, _ := receiver(t, 500, 500, 500, 404)
	e := newEnv(t, notify.Destination{Webhook: srv.URL}, notify.Destination{Webhook: srv.URL + "/other"})
	e.publish(t, notify.Failed)
	d := e.deliverer("h1")
	d.MaxAttempts = 2
	for range 3 {
		d.Pass(t.Context())
		e.clock.Add(time.Hour)
	}
	got := e.deliveries(t)
	if len(got) != 2 || !strings.Contains(got[0], " failed webhook") || !strings.Contains(got[1], " failed webhook") {
		t.Fatalf("deliveries = %v", got)
	}
	recs := strings.Join(e.records(t), "\n")
	if !strings.Contains(recs, "(given up after 2 tries)") || !strings.Contains(recs, "answered 404 Not Found: answer 404 (not retried)") {
		t.Errorf("records:\n%s", recs)
	}
}

// TestTwoDeliverers: two servers delivering from one outbox at once send
// each event once.
func TestTwoDeliverers(t *testing.T) {
	var n atomic.Int32
	perPath := sync.Map{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if _, dup := perPath.LoadOrStore(r.URL.Path, true); dup {
			t.Errorf("%s received twice", r.URL.Path)
		}
	}))
	t.Cleanup(srv.Close)
	var dests []notify.Destination
	for i := range 30 {
		dests = append(dests, notify.Destination{Webhook: fmt.Sprintf("%s/%d", srv.URL, i)})
	}
	e := newEnv(t, dests...)
	e.publish(t, notify.Failed)
	var wg sync.WaitGroup
	for _, h := range []string{"server-a", "server-b"} {
		d := e.deliverer(h)
		d.Parallel = 3
		wg.Go(func() { d.Pass(t.Context()) })
	}
	wg.Wait()
	if n.Load() != 30 {
		t.Errorf("%d requests, want 30", n.Load())
	}
}

// TestDeliverySurvivesRestart: a server stopped while sending hands the
// delivery back; one that dies holding it loses it when its lease runs
// out; either way it is sent once afterwards.
func TestDeliverySurvivesRestart(t *testing.T) {
	release := make(chan struct{})
	hanging := make(chan struct{})
	var hung, ok atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" && hung.Add(1) == 1 {
			close(hanging)
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		ok.Add(1)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	// Stopped mid-way: the send is cancelled and the delivery handed back.
	e := newEnv(t, notify.Destination{Webhook: srv.URL + "/hang"})
	e.publish(t, notify.Failed)
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); e.deliverer("first").Pass(ctx) }()
	<-hanging
	stop()
	<-done
	equal(t, "after the stop", e.deliveries(t), []string{"failed pending webhook 127.0.0.1:" + strings.Split(srv.URL, ":")[2] + "/…"})
	if recs := e.records(t); len(recs) != 0 {
		t.Errorf("an interrupted try left records: %v", recs)
	}
	if n := e.deliverer("second").Pass(t.Context()); n != 1 || ok.Load() != 1 {
		t.Fatalf("after the restart: %d tries, %d received", n, ok.Load())
	}
	equal(t, "after the restart", e.records(t), []string{"alert_sent: failed → webhook 127.0.0.1:" + strings.Split(srv.URL, ":")[2] + "/…"})

	// Died holding the claim: nothing is sent before the lease runs out,
	// then exactly once.
	e2 := newEnv(t, notify.Destination{Webhook: srv.URL + "/ok"})
	e2.publish(t, notify.Failed)
	if c, err := e2.st.ClaimDeliveries(t.Context(), "dead", e2.clock.Now(), notify.DefaultLease, 0); err != nil || len(c) != 1 {
		t.Fatalf("claim as the dead server = %v, %v", c, err)
	}
	d := e2.deliverer("successor")
	if n := d.Pass(t.Context()); n != 0 {
		t.Fatalf("a claimed delivery was sent while its lease held (%d)", n)
	}
	e2.clock.Add(notify.DefaultLease)
	if n := d.Pass(t.Context()); n != 1 || ok.Load() != 2 {
		t.Fatalf("after the lease: %d tries, %d received", n, ok.Load())
	}
	if n := d.Pass(t.Context()); n != 0 {
		t.Errorf("sent again (%d)", n)
	}
	ds, _ := e2.st.RunDeliveries(t.Context(), e2.run.ID)
	if ds[0].Attempts != 2 || ds[0].State != store.DeliverySent {
		t.Errorf("delivery = %+v", ds[0])
	}
}

// TestRecordData: the records carry what D's timeline shows, as JSON.
func TestRecordData(t *testing.T) {
	srv, _ := receiver(t)
	e := newEnv(t, notify.Destination{Slack: srv.URL + "/services/T/B/X"})
	e.publish(t, notify.AtRisk)
	e.deliverer("h").Pass(t.Context())
	evs, err := e.st.Events(t.Context(), e.run.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var rec store.Event
	for _, ev := range evs {
		if ev.Kind == notify.RecAlertSent {
			rec = ev
		}
	}
	var data map[string]any
	if err := json.Unmarshal(rec.Data, &data); err != nil || rec.Task != -1 || rec.RunID != e.run.ID || rec.Kind != engine.EventKind("alert_sent") {
		t.Fatalf("record %+v: %v", rec, err)
	}
	if data["event"] != "at_risk" || !strings.HasPrefix(data["destination"].(string), "slack 127.0.0.1:") || data["attempt"] != 1.0 {
		t.Errorf("record data = %v", data)
	}
}

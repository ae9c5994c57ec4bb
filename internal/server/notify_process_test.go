package server_test

// Notifications through real server processes: a delivery a crash cut
// short is sent after the restart, and two servers on one PostgreSQL
// store send each notification once.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/notify"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
)

// webhookLog is a webhook receiver that checks signatures and records
// each request's delivery ID and event; hang, when set, holds the first
// request until the client goes away.
type webhookLog struct {
	t       *testing.T
	secret  []byte
	hang    bool
	mu      sync.Mutex
	started []string // "delivery event" of every request that arrived
	done    []string // of every request answered 200
	first   chan struct{}
	once    sync.Once
}

func newWebhookLog(t *testing.T, secret string, hang bool) (*webhookLog, string) {
	w := &webhookLog{t: t, secret: []byte(secret), hang: hang, first: make(chan struct{})}
	srv := httptest.NewServer(w)
	t.Cleanup(srv.Close)
	return w, srv.URL
}

func (w *webhookLog) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := notify.Verify(w.secret, r.Header.Get(notify.SignatureHeader), body, time.Now(), 0); err != nil {
		w.t.Errorf("signature: %v", err)
	}
	p, _ := notify.DecodePayload(body)
	key := r.Header.Get("X-Tasuki-Delivery") + " " + string(p.Event)
	w.mu.Lock()
	w.started = append(w.started, key)
	hang := w.hang && len(w.started) == 1
	w.mu.Unlock()
	w.once.Do(func() { close(w.first) })
	if hang {
		<-r.Context().Done() // the sender died
		return
	}
	w.mu.Lock()
	w.done = append(w.done, key)
	w.mu.Unlock()
}

func (w *webhookLog) snapshot() (started, done []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.started...), append([]string(nil), w.done...)
}

// TestNotifyDeliverySurvivesCrash: the server dies (SIGKILL) while its
// webhook request hangs; the delivery stays due, and the server started
// again on the same data directory sends it, once, after the dead one's
// claim ran out.
func TestNotifyDeliverySurvivesCrash(t *testing.T) {
	t.Parallel()
	hook, hookURL := newWebhookLog(t, "crash-k3y", true)
	home, dir := t.TempDir(), t.TempDir()
	writeFile(t, dir, "fails.yaml", `name: fails
notify:
  - webhook: `+hookURL+`/hook
    secret: hook_key
tasks:
  - id: t
    run: exit 3
`)
	env := []string{"TASUKI_SECRET_HOOK_KEY=crash-k3y"}
	s1 := startServer(t, home, dir, env)
	run, err := s1.c.Trigger(context.Background(), "fails", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-hook.first:
	case <-time.After(30 * time.Second):
		t.Fatalf("no webhook request within 30s\n%s", s1.logs())
	}
	s1.kill9()
	if _, done := hook.snapshot(); len(done) != 0 {
		t.Fatalf("answered before the crash: %v", done)
	}
	// The claim of the dead server lasts a minute by the servers' clock:
	// the second one's clock is an hour on.
	s2 := startServer(t, home, dir, append(env, "TASUKI_TEST_CLOCK="+time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)+"*1"))
	var alerts []api.Alert
	eventually(t, 30*time.Second, "the failure to be delivered after the restart", func() (bool, string) {
		alerts, err = s2.c.RunAlerts(context.Background(), run.ID)
		if err != nil {
			return false, err.Error()
		}
		return len(alerts) == 1 && alerts[0].State == api.AlertSent, fmt.Sprint(alerts)
	})
	started, done := hook.snapshot()
	id := fmt.Sprint(alerts[0].ID)
	if len(done) != 1 || done[0] != id+" failed" || len(started) != 2 || started[0] != id+" failed" {
		t.Errorf("requests started %v, answered %v; want the delivery %s twice, answered once", started, done, id)
	}
	if alerts[0].Attempts != 2 {
		t.Errorf("alert = %+v, want 2 tries", alerts[0])
	}
	// The CLI lists it, and the timeline has the one try that ended.
	out, err := cliOutput(s2, "alerts", fmt.Sprint(run.ID))
	if err != nil || !strings.Contains(out, "failed") || !strings.Contains(out, "sent") || strings.Contains(out, "/hook") {
		t.Errorf("tasuki alerts: %v\n%s", err, out)
	}
	var recs []string
	for _, e := range allEvents(t, s2.c, run.ID) {
		if strings.HasPrefix(string(e.Kind), "alert_") {
			recs = append(recs, string(e.Kind)+" "+e.Message)
		}
	}
	if len(recs) != 1 || !strings.HasPrefix(recs[0], "alert_sent failed → webhook 127.0.0.1:") {
		t.Errorf("alert records: %q", recs)
	}
}

// cliOutput runs the CLI against a server process.
func cliOutput(s *serverProc, args ...string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(exe, append([]string{"--server", s.url, "--token", s.token}, args...)...)
	cmd.Env = serverEnv()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestNotifyTwoServersOnce: two servers on one PostgreSQL store, each
// running runs' notifications through the outbox; every notification is
// sent once.
func TestNotifyTwoServersOnce(t *testing.T) {
	t.Parallel()
	dsn := pgtest.DSN(t)
	hook, hookURL := newWebhookLog(t, "two-k3y", false)
	dir := t.TempDir()
	writeFile(t, dir, "fails.yaml", `name: fails
notify:
  - webhook: `+hookURL+`/a
    secret: hook_key
  - webhook: `+hookURL+`/b
    secret: hook_key
    on: [failed]
tasks:
  - id: t
    run: exit 3
`)
	env := []string{"TASUKI_SECRET_HOOK_KEY=two-k3y"}
	a := startPGServer(t, dsn, "", dir, env)
	b := startPGServer(t, dsn, "", dir, env)
	var ids []int64
	for i := range 4 {
		c := a.c
		if i%2 == 1 {
			c = b.c
		}
		r, err := c.Trigger(context.Background(), "fails", nil, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	waitRunsEnd(t, a.c, ids, 60*time.Second)
	eventually(t, 30*time.Second, "8 notifications sent", func() (bool, string) {
		sent := 0
		for _, id := range ids {
			al, err := b.c.RunAlerts(context.Background(), id)
			if err != nil {
				return false, err.Error()
			}
			for _, x := range al {
				if x.State == api.AlertSent {
					sent++
				}
			}
		}
		return sent == 8, fmt.Sprint(sent, " sent")
	})
	started, done := hook.snapshot()
	seen := map[string]bool{}
	for _, k := range started {
		if seen[k] {
			t.Errorf("delivery %s received twice", k)
		}
		seen[k] = true
	}
	if len(started) != 8 || len(done) != 8 {
		t.Errorf("received %d requests (%d answered), want 8: %v", len(started), len(done), started)
	}
}

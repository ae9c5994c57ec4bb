package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/notify"
)

// hookReceiver is a webhook receiver on loopback that checks each
// request's signature with its secret and records the bodies.
type hookReceiver struct {
	t      *testing.T
	secret []byte
	now    func() time.Time
	mu     sync.Mutex
	got    []notify.Payload
}

func newHookReceiver(t *testing.T, secret string, now func() time.Time) (*hookReceiver, string) {
	h := &hookReceiver{t: t, secret: []byte(secret), now: now}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv.URL
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := notify.Verify(h.secret, r.Header.Get(notify.SignatureHeader), body, h.now(), 0); err != nil {
		h.t.Errorf("webhook signature: %v", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	p, err := notify.DecodePayload(body)
	if err != nil {
		h.t.Errorf("webhook body %s: %v", body, err)
	}
	h.mu.Lock()
	h.got = append(h.got, p)
	h.mu.Unlock()
}

// events lists what was received as "event run".
func (h *hookReceiver) events() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, p := range h.got {
		out = append(out, string(p.Event))
	}
	return out
}

// TestNotifyRunEnds drives a run through a failure, a retry that fails
// again and one that succeeds: the webhook hears of the failure once, then
// of the recovery and the success, each signed; a second at-risk warning
// of the same run is told once; every delivery is on the run's timeline
// and in its alerts.
func TestNotifyRunEnds(t *testing.T) {
	ctx := context.Background()
	marker := filepath.Join(t.TempDir(), "ok")
	hook, hookURL := newHookReceiver(t, "whsec-test-k3y", time.Now)
	dir := pipelineDir(t, map[string]string{"flaky.yaml": `name: flaky
deadline: {after: 1h}
notify:
  - webhook: ` + hookURL + `/hooks/tasuki
    secret: hook_key
    on: [failed, recovered, succeeded]
  - webhook: ` + hookURL + `/hooks/risk
    secret: hook_key
    on: [at_risk]
tasks:
  - id: load
    run: test -f ` + marker + `
    retry: {attempts: 2, backoff: 0s}
`})
	ts := newNotifyTestServer(t, dir, func(*Config) {})
	if _, err := ts.secrets.Set(ctx, "hook_key", "whsec-test-k3y"); err != nil {
		t.Fatal(err)
	}
	svc := &service{s: ts.Server}
	run, err := svc.Trigger(ctx, "flaky", nil, "tester")
	if err != nil {
		t.Fatal(err)
	}
	ts.settle(ctx)
	ts.notes.deliverer.Pass(ctx)
	if got := hook.events(); !slices.Equal(got, []string{"failed"}) {
		t.Fatalf("after the failure the webhook heard %v, want [failed]", got)
	}
	p := hook.got[0]
	stored, err := ts.store.Run(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if (p.Deadline == nil) != stored.Deadline.IsZero() || (p.Deadline != nil && !p.Deadline.Equal(stored.Deadline)) {
		t.Errorf("deadline in the payload %v, the run's %v", p.Deadline, stored.Deadline)
	}
	if p.Run != run.ID || p.Pipeline != "flaky" || p.State != "failed" || !strings.HasPrefix(p.Reason, "load failed") ||
		p.URL != ts.publicURL()+"/api/v1/runs/"+itoa(run.ID) {
		t.Errorf("failed payload = %+v", p)
	}

	// Retried by an operator, it fails again: the incident is open, so
	// nobody is told twice.
	if _, err := svc.RetryFailed(ctx, run.ID, "tester"); err != nil {
		t.Fatal(err)
	}
	ts.settle(ctx)
	if r, _ := ts.store.Run(ctx, run.ID); r.State != engine.RunFailed {
		t.Fatalf("run %s after the retry, want failed", r.State)
	}
	ts.notes.deliverer.Pass(ctx)
	if got := hook.events(); len(got) != 1 {
		t.Fatalf("after the second failure the webhook heard %v", got)
	}

	// The data is there: the next retry succeeds, which is a recovery.
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RetryFailed(ctx, run.ID, "tester"); err != nil {
		t.Fatal(err)
	}
	ts.settle(ctx)
	ts.notes.deliverer.Pass(ctx)
	if got := hook.events(); !slices.Equal(got, []string{"failed", "recovered", "succeeded"}) {
		t.Fatalf("after the success the webhook heard %v", got)
	}

	// A deadline warning twice: one delivery.
	for range 2 {
		ts.publish(ctx, notify.Event{Kind: notify.AtRisk, Pipeline: "flaky", RunID: run.ID, State: "running", Reason: "load is slow"})
	}
	ts.notes.deliverer.Pass(ctx)
	if got := hook.events(); !slices.Equal(got, []string{"failed", "recovered", "succeeded", "at_risk"}) {
		t.Fatalf("after two at-risk warnings the webhook heard %v", got)
	}

	alerts, err := alertsAPI{ts.Server}.RunAlerts(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, a := range alerts {
		listed = append(listed, a.Event+" "+a.State+" "+a.Destination)
		if strings.Contains(a.Destination, "/hooks") {
			t.Errorf("an alert shows the URL's path: %s", a.Destination)
		}
	}
	host := strings.TrimPrefix(hookURL, "http://")
	want := []string{"failed sent webhook " + host + "/…", "recovered sent webhook " + host + "/…",
		"succeeded sent webhook " + host + "/…", "at_risk sent webhook " + host + "/…"}
	if !slices.Equal(listed, want) {
		t.Errorf("alerts:\n  %s\nwant\n  %s", strings.Join(listed, "\n  "), strings.Join(want, "\n  "))
	}
	evs, err := ts.store.Events(ctx, run.ID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var recs []string
	for _, e := range evs {
		if e.Kind == notify.RecAlertSent || e.Kind == notify.RecAlertFailed {
			recs = append(recs, string(e.Kind)+" "+e.Message)
			if strings.Contains(e.Message, "whsec") || strings.Contains(e.Message, "/hooks") {
				t.Errorf("a record shows a secret or a path: %s", e.Message)
			}
		}
	}
	if len(recs) != 4 || recs[0] != "alert_sent failed → webhook "+host+"/…" {
		t.Errorf("alert records: %q", recs)
	}
	if _, err := (alertsAPI{ts.Server}).RunAlerts(ctx, 1<<40); err == nil || !strings.Contains(err.Error(), "no run") {
		t.Errorf("alerts of an unknown run: %v", err)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestNotifyServerRoutes: the server's routes get every pipeline's events
// they ask for; a place named by a route and a pipeline is told once.
func TestNotifyServerRoutes(t *testing.T) {
	ctx := context.Background()
	hook, hookURL := newHookReceiver(t, "k", time.Now)
	dir := pipelineDir(t, map[string]string{
		"a.yaml": "name: a\nnotify: [{webhook: '" + hookURL + "/same', secret: k, on: [failed]}]\ntasks: [{id: t, run: 'exit 1'}]\n",
		"b.yaml": "name: b\ntasks: [{id: t, run: 'exit 1'}]\n",
	})
	ts := newNotifyTestServer(t, dir, func(cfg *Config) {
		cfg.PublicURL = "https://tasuki.example.com"
		cfg.Notify = []notify.Destination{{Webhook: hookURL + "/same", Secret: "k", On: []notify.Kind{notify.Failed}}}
	})
	s := ts.Server
	if _, err := ts.secrets.Set(ctx, "k", "k"); err != nil {
		t.Fatal(err)
	}
	svc := &service{s: s}
	for _, p := range []string{"a", "b"} {
		if _, err := svc.Trigger(ctx, p, nil, "tester"); err != nil {
			t.Fatal(err)
		}
	}
	ts.settle(ctx)
	ts.notes.deliverer.Pass(ctx)
	hook.mu.Lock()
	defer hook.mu.Unlock()
	var got []string
	for _, p := range hook.got {
		got = append(got, p.Pipeline+" "+string(p.Event))
		if !strings.HasPrefix(p.URL, "https://tasuki.example.com/api/v1/runs/") {
			t.Errorf("link %q does not start with public_url", p.URL)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"a failed", "b failed"}) {
		t.Errorf("the webhook heard %v, want a's failure once and b's", got)
	}
	if ds, err := s.store.ClaimDeliveries(ctx, "probe", time.Now().Add(time.Hour), time.Minute, 0); err != nil || len(ds) != 0 {
		t.Errorf("deliveries left: %v, %v", ds, err)
	}
}

// TestNotifyConfig reads the settings from a file and the environment,
// and refuses what cannot work.
func TestNotifyConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "server.yaml")
	write(t, file, `public_url: https://tasuki.example.com
notify:
  - slack: ${ops_slack}
    on: [failed, missed, slo_breach]
  - email: oncall@example.com
smtp:
  host: smtp.example.com
  from: tasuki@example.com
  user: tasuki
  password_secret: smtp_password
`)
	c := DefaultConfig()
	if err := LoadConfigFile(&c, file); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TASUKI_SMTP_PORT": "2525", "TASUKI_SMTP_STARTTLS": "true",
		"TASUKI_NOTIFY": "[{webhook: 'https://ops.example.com/h', secret: hook_key, on: [failed]}]"}
	if err := ApplyEnv(&c, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.PublicURL != "https://tasuki.example.com" || c.SMTP.Port != 2525 || !c.SMTP.startTLS() || c.SMTP.PasswordSecret != "smtp_password" ||
		len(c.Notify) != 1 || c.Notify[0].Secret != "hook_key" || c.Notify[0].On[0] != notify.Failed {
		t.Errorf("config = %+v", c.NotifyConfig)
	}
	// A typo in a route is an error with its line.
	write(t, file, "notify:\n  - slack: ${ops}\n    events: [failed]\n")
	if err := LoadConfigFile(&c, file); err == nil || !strings.Contains(err.Error(), "events") {
		t.Errorf("unknown key in a route: %v", err)
	}
	no := false
	for _, tt := range []struct {
		name string
		set  func(c *Config)
		want string
	}{
		{"route", func(c *Config) { c.Notify = []notify.Destination{{Slack: "ftp://x"}} }, "notify #1: slack: expected an http:// or https:// URL"},
		{"email without smtp", func(c *Config) { c.Notify = []notify.Destination{{Email: "a@example.com"}} }, "needs a mail server: set smtp.host"},
		{"from", func(c *Config) { c.SMTP = SMTPConfig{Host: "smtp.example.com"} }, "smtp.from"},
		{"password without user", func(c *Config) {
			c.SMTP = SMTPConfig{Host: "smtp.example.com", From: "t@example.com", PasswordSecret: "p"}
		}, "give both"},
		{"clear password", func(c *Config) {
			c.SMTP = SMTPConfig{Host: "smtp.example.com", From: "t@example.com", User: "u", PasswordSecret: "p", StartTLS: &no}
		}, "in clear"},
		{"port in host", func(c *Config) { c.SMTP = SMTPConfig{Host: "smtp.example.com:587", From: "t@example.com"} }, "smtp.port"},
		{"ca", func(c *Config) {
			c.SMTP = SMTPConfig{Host: "smtp.example.com", From: "t@example.com", CA: "/nonexistent.pem"}
		}, "smtp.ca"},
		{"settings without host", func(c *Config) { c.SMTP = SMTPConfig{From: "t@example.com"} }, "without smtp.host"},
		{"public url", func(c *Config) { c.PublicURL = "tasuki.example.com" }, "public_url"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.set(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want an error with %q", err, tt.want)
			}
		})
	}
	for k, v := range map[string]string{"TASUKI_SMTP_PORT": "x", "TASUKI_SMTP_STARTTLS": "maybe", "TASUKI_NOTIFY": "[{slak: x}]"} {
		c := DefaultConfig()
		if err := ApplyEnv(&c, func(key string) (string, bool) {
			if key == k {
				return v, true
			}
			return "", false
		}); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: %v", k, v, err)
		}
	}
}

// newNotifyTestServer is newTestServer with its configuration changed by
// set, on the real clock (retries of tasks and deliveries come due).
func newNotifyTestServer(t *testing.T, dir string, set func(*Config)) *testServer {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Home, cfg.Pipelines = t.TempDir(), dir
	set(&cfg)
	s, err := New(context.Background(), cfg, Options{Now: time.Now, Logger: slog.New(slog.DiscardHandler), Notice: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, t: t, dir: dir, home: cfg.Home}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.broker.RunLocal(ctx, cfg.Workers, nil, s.runner.RunProcess)
	}()
	ts.stopExecutor = func() { stop(); <-done }
	t.Cleanup(ts.stop)
	if err := s.reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ts
}

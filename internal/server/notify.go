package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/notify"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// NotifyConfig is the configuration of notifications, inline in Config:
// the routes every pipeline's events take besides the pipeline's own
// notify list, the mail server, and the URL links point to.
type NotifyConfig struct {
	// PublicURL is the URL people reach this server at; links back to a
	// run in notifications start with it (default: advertise, else the
	// address the API listens on).
	PublicURL string `yaml:"public_url"`
	// Notify are destinations for the events of every pipeline, each with
	// the events it wants: the server-wide routes (a team channel for
	// every failure, an on-call address for missed deadlines).
	Notify []notify.Destination `yaml:"notify"`
	// SMTP is the mail server of e-mail destinations.
	SMTP SMTPConfig `yaml:"smtp"`
}

// SMTPConfig is the mail server e-mail notifications go through.
type SMTPConfig struct {
	Host string `yaml:"host"`
	// Port defaults to 587, the submission port.
	Port int `yaml:"port"`
	// From is the sender's address.
	From string `yaml:"from"`
	// User and PasswordSecret authenticate (AUTH PLAIN, over TLS only):
	// the password is the secret PasswordSecret, looked up like a task's
	// secrets (TASUKI_SECRET_<NAME>, secrets_dir, the secret store), never
	// written in the configuration.
	User           string `yaml:"user"`
	PasswordSecret string `yaml:"password_secret"`
	// StartTLS requires STARTTLS before anything is sent (default true);
	// false sends in clear, for a relay on this machine.
	StartTLS *bool `yaml:"starttls"`
	// CA is a PEM file of the CAs the mail server's certificate is checked
	// against (default: the system's).
	CA string `yaml:"ca"`
}

// startTLS reports whether STARTTLS is required (the default).
func (c SMTPConfig) startTLS() bool { return c.StartTLS == nil || *c.StartTLS }

// applyNotifyEnv reads TASUKI_PUBLIC_URL, TASUKI_NOTIFY (the routes, as a
// YAML or JSON list), TASUKI_SMTP_HOST, TASUKI_SMTP_PORT, TASUKI_SMTP_FROM,
// TASUKI_SMTP_USER, TASUKI_SMTP_PASSWORD_SECRET, TASUKI_SMTP_STARTTLS and
// TASUKI_SMTP_CA.
func applyNotifyEnv(c *Config, lookup func(string) (string, bool), errs *[]error) {
	for key, dst := range map[string]*string{
		"TASUKI_PUBLIC_URL": &c.PublicURL, "TASUKI_SMTP_HOST": &c.SMTP.Host, "TASUKI_SMTP_FROM": &c.SMTP.From,
		"TASUKI_SMTP_USER": &c.SMTP.User, "TASUKI_SMTP_PASSWORD_SECRET": &c.SMTP.PasswordSecret, "TASUKI_SMTP_CA": &c.SMTP.CA,
	} {
		if v, ok := lookup(key); ok && v != "" {
			*dst = v
		}
	}
	if v, ok := lookup("TASUKI_SMTP_PORT"); ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("TASUKI_SMTP_PORT: expected a number, got %q", v))
		} else {
			c.SMTP.Port = n
		}
	}
	if v, ok := lookup("TASUKI_SMTP_STARTTLS"); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("TASUKI_SMTP_STARTTLS: expected true or false, got %q", v))
		} else {
			c.SMTP.StartTLS = &b
		}
	}
	if v, ok := lookup("TASUKI_NOTIFY"); ok && v != "" {
		var routes []notify.Destination
		if err := yaml.UnmarshalWithOptions([]byte(v), &routes, yaml.DisallowUnknownField()); err != nil {
			*errs = append(*errs, fmt.Errorf("TASUKI_NOTIFY: expected a list of destinations such as [{slack: '${ops_slack}', on: [failed]}]: %s", yaml.FormatError(err, false, false)))
		} else {
			c.Notify = routes
		}
	}
}

// validateNotify checks the routes, the SMTP settings and the public URL.
func (c *Config) validateNotify() []error {
	var errs []error
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			errs = append(errs, fmt.Errorf("public_url %q: expected a URL like https://tasuki.example.com", c.PublicURL))
		}
	}
	for i, d := range c.Notify {
		if err := d.Check(); err != nil {
			errs = append(errs, fmt.Errorf("notify #%d: %w", i+1, err))
			continue
		}
		if d.Email != "" && c.SMTP.Host == "" {
			errs = append(errs, fmt.Errorf("notify #%d: email %s needs a mail server: set smtp.host", i+1, d.Email))
		}
	}
	m := c.SMTP
	if m.Host == "" {
		if m.From != "" || m.User != "" || m.PasswordSecret != "" || m.CA != "" || m.Port != 0 {
			errs = append(errs, errors.New("smtp: settings without smtp.host, the mail server"))
		}
		return errs
	}
	if strings.ContainsAny(m.Host, "/: ") && net.ParseIP(m.Host) == nil {
		errs = append(errs, fmt.Errorf("smtp.host %q: expected a host name or an IP address (the port goes in smtp.port)", m.Host))
	}
	if m.Port < 0 || m.Port > 65535 {
		errs = append(errs, fmt.Errorf("smtp.port: expected 1 to 65535, got %d", m.Port))
	}
	if a, err := mail.ParseAddress(m.From); err != nil || a.Address != m.From {
		errs = append(errs, fmt.Errorf("smtp.from %q: expected the sender's address, such as tasuki@example.com", m.From))
	}
	if (m.User == "") != (m.PasswordSecret == "") {
		errs = append(errs, errors.New("smtp.user and smtp.password_secret: give both (the password is the named secret) or neither"))
	}
	if m.PasswordSecret != "" {
		if err := store.CheckSecretName(m.PasswordSecret); err != nil {
			errs = append(errs, fmt.Errorf("smtp.password_secret: %w", err))
		}
	}
	if m.User != "" && !m.startTLS() && !isLoopbackHost(m.Host) {
		errs = append(errs, fmt.Errorf("smtp.user with smtp.starttls false would send the password in clear to %s; only a relay on this machine may be used without TLS", m.Host))
	}
	if m.CA != "" {
		if _, err := loadCAs(m.CA); err != nil {
			errs = append(errs, fmt.Errorf("smtp.ca: %w", err))
		}
	}
	return errs
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// loadCAs reads a PEM file of certificates into a pool.
func loadCAs(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// notifier is the server's notifications: the outbox events are written
// to, and the deliverer that sends them while this server leads.
type notifier struct {
	outbox    *notify.Outbox
	deliverer *notify.Deliverer

	mu   sync.Mutex
	stop context.CancelFunc // ends the delivery loop; nil while none runs
	done chan struct{}
}

// setupNotify makes the outbox the server's publisher of events, and the
// deliverer that sends them (started when this server leads).
func (s *Server) setupNotify() error {
	var mailer *notify.SMTP
	if m := s.cfg.SMTP; m.Host != "" {
		mailer = &notify.SMTP{Host: m.Host, Port: m.Port, From: m.From, User: m.User, PasswordSecret: m.PasswordSecret,
			StartTLS: m.startTLS(), LocalName: hostname()}
		if m.CA != "" {
			pool, err := loadCAs(m.CA)
			if err != nil {
				return fmt.Errorf("smtp.ca: %w", err)
			}
			mailer.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
	}
	var b [4]byte
	rand.Read(b[:])
	host, _ := os.Hostname()
	d := &notify.Deliverer{
		Store: s.store,
		// Signatures and mail dates are read by other machines' clocks: the
		// real time, not the clock schedules are decided by.
		Sender: &notify.Sender{SMTP: mailer, Secrets: s.runner.Secrets, UserAgent: "tasuki"},
		Holder: fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:])),
		Now:    s.now,
		Log:    s.log,
	}
	box := &notify.Outbox{Store: s.store, Routes: s.notifyRoutes, Base: s.publicURL, Wake: d.Wake}
	s.notes = &notifier{outbox: box, deliverer: d}
	s.alerts = box
	return nil
}

// hostname is this machine's name for EHLO, "localhost" when unknown.
func hostname() string {
	if h, err := os.Hostname(); err == nil && h != "" && !strings.ContainsAny(h, " \t\r\n") {
		return h
	}
	return "localhost"
}

// publicURL is where people reach this server: public_url, advertise, or
// the address the API listens on.
func (s *Server) publicURL() string {
	switch {
	case s.cfg.PublicURL != "":
		return s.cfg.PublicURL
	case s.cfg.Advertise != "":
		return s.cfg.Advertise
	}
	return s.URL()
}

// startDelivering runs the deliverer until stopDelivering or ctx ends:
// only the leader sends (the store's claims keep a delivery to one server
// at a time even when two briefly both think they lead).
func (s *Server) startDelivering(ctx context.Context) {
	n := s.notes
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stop != nil {
		return
	}
	ctx, n.stop = context.WithCancel(ctx)
	n.done = make(chan struct{})
	done := n.done
	go func() {
		defer close(done)
		n.deliverer.Run(ctx, s.cfg.TickInterval.D())
	}()
}

// stopDelivering ends the delivery loop and waits for it: a send in
// flight is interrupted and its delivery handed back, due, for the next
// leader.
func (s *Server) stopDelivering() {
	n := s.notes
	n.mu.Lock()
	stop, done := n.stop, n.done
	n.stop, n.done = nil, nil
	n.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// notifyRoutes are the destinations an event may go to: the notify list of
// the run's pipeline version (for an event without a run, the pipeline's
// current version), then the server's routes.
func (s *Server) notifyRoutes(ctx context.Context, ev notify.Event) []notify.Destination {
	var p *spec.Pipeline
	if ev.RunID != 0 {
		r, err := s.store.Run(ctx, ev.RunID)
		if err == nil && r.VersionID != 0 {
			p, err = s.runner.Pipeline(ctx, r.VersionID)
		}
		if err != nil {
			s.log.Warn("read the notify list of a run's pipeline; using the server's routes only", "run", ev.RunID, "err", err)
		}
	} else if l, ok := s.reg.Get(ev.Pipeline); ok {
		p = l.Pipeline
	}
	var out []notify.Destination
	if p != nil {
		for _, n := range p.Notify {
			d := notify.Destination{Webhook: n.Webhook, Secret: n.Secret, Slack: n.Slack, Email: n.Email}
			for _, k := range n.On {
				d.On = append(d.On, notify.Kind(k))
			}
			out = append(out, d)
		}
	}
	return append(out, s.cfg.Notify...)
}

// runEnded publishes the end of a run: failed, or succeeded and (when the
// run had an open incident, which the outbox knows) recovered. It sees
// each end once: the batch that holds the run_finished record.
func (s *Server) runEnded(p runner.Progress) {
	if s.notes == nil || !slices.ContainsFunc(p.Records, func(r engine.Record) bool { return r.Kind == engine.RecRunFinished }) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev := notify.Event{Pipeline: p.Run.Pipeline, RunID: p.Run.ID, State: string(p.Run.State), At: p.Run.FinishedAt,
		Deadline: p.Run.Deadline}
	if ev.At.IsZero() {
		ev.At = s.now()
	}
	switch p.Run.State {
	case engine.RunFailed:
		ev.Kind, ev.Reason = notify.Failed, failureReason(p)
		s.publish(ctx, ev)
	case engine.RunSucceeded:
		ev.Kind, ev.Reason = notify.Recovered, "the run succeeded"
		s.publish(ctx, ev)
		ev.Kind = notify.Succeeded
		s.publish(ctx, ev)
	}
}

// failureReason says which tasks failed and how, in a sentence: "load
// failed: exit status 1; check timed out" (at most three named).
func failureReason(p runner.Progress) string {
	if p.Task == nil || p.TaskID == nil {
		return "the run failed"
	}
	var parts []string
	more := 0
	for i := range p.Run.TaskCount {
		t := p.Task(i)
		var what string
		switch t.State {
		case engine.TaskFailed:
			what = p.TaskID(i) + " failed"
		case engine.TaskTimedOut:
			what = p.TaskID(i) + " timed out"
		default:
			continue
		}
		if len(parts) == 3 {
			more++
			continue
		}
		if msg := firstLine(t.Message); msg != "" {
			what += ": " + msg
		}
		parts = append(parts, what)
	}
	if len(parts) == 0 {
		return "the run failed"
	}
	s := strings.Join(parts, "; ")
	if more > 0 {
		s += fmt.Sprintf("; and %d more", more)
	}
	return s
}

// firstLine is the first line of a task's message, at most 200 bytes.
func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return s
}

// alertsAPI serves GET /runs/{id}/alerts from the outbox.
type alertsAPI struct{ s *Server }

func (a alertsAPI) RunAlerts(ctx context.Context, runID int64) ([]api.Alert, error) {
	ds, err := a.s.store.RunDeliveries(ctx, runID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.NotFound("no run %d", runID)
	}
	if err != nil {
		return nil, err
	}
	out := make([]api.Alert, len(ds))
	for i, d := range ds {
		out[i] = api.NewAlert(d)
	}
	return out, nil
}

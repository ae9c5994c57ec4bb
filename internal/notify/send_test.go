package notify_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	smtpd "github.com/emersion/go-smtp"

	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/notify"
)

// secrets is a secret lookup over a map.
type secrets map[string]string

func (s secrets) Secret(_ context.Context, name string) (string, error) {
	if v, ok := s[name]; ok {
		return v, nil
	}
	return "", fmt.Errorf("secret %q is not set", name)
}

var (
	signedAt = time.Date(2026, 3, 14, 11, 20, 0, 0, time.UTC)
	jst      = time.FixedZone("JST", 9*3600)
)

func atRisk() []byte {
	p := notify.NewPayload(notify.Event{Kind: notify.AtRisk, Pipeline: "trades", RunID: 42, State: "running",
		Deadline: time.Date(2026, 3, 14, 20, 0, 0, 0, jst), PredictedFinish: time.Date(2026, 3, 14, 20, 7, 0, 0, jst),
		Reason: "wait-london waits for /data/london/*.csv (nothing yet); then merge (8s)", At: signedAt}, "https://tasuki.example.com/")
	b, err := p.Encode()
	if err != nil {
		panic(err)
	}
	return b
}

// received is one request a test receiver got.
type received struct {
	header http.Header
	body   []byte
}

// receiver is an HTTP server on loopback that records what it receives
// and answers with the statuses given, then 200.
func receiver(t *testing.T, statuses ...int) (*httptest.Server, <-chan received) {
	t.Helper()
	ch := make(chan received, 10)
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- received{r.Header.Clone(), b}
		mu.Lock()
		status := http.StatusOK
		if len(statuses) > 0 {
			status, statuses = statuses[0], statuses[1:]
		}
		mu.Unlock()
		w.WriteHeader(status)
		fmt.Fprintf(w, "answer %d", status)
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func TestWebhookSigned(t *testing.T) {
	srv, got := receiver(t)
	s := &notify.Sender{Secrets: secrets{"hook_key": "whsec-k3y", "hook_token": "tok-123"}, Now: func() time.Time { return signedAt }}
	body := atRisk()
	err := s.Send(t.Context(), notify.Message{ID: 7, Body: body,
		To: notify.Destination{Webhook: srv.URL + "/hooks/tasuki?token=${hook_token}", Secret: "hook_key"}})
	if err != nil {
		t.Fatal(err)
	}
	r := <-got
	if err := notify.Verify([]byte("whsec-k3y"), r.header.Get(notify.SignatureHeader), r.body, signedAt.Add(time.Second), 0); err != nil {
		t.Errorf("signature: %v (header %q)", err, r.header.Get(notify.SignatureHeader))
	}
	if string(r.body) != string(body) {
		t.Errorf("body = %s, want the payload as kept", r.body)
	}
	if r.header.Get("X-Tasuki-Delivery") != "7" || r.header.Get("X-Tasuki-Event") != "at_risk" || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("headers = %v", r.header)
	}
	var p map[string]any
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"event": "at_risk", "pipeline": "trades", "run": 42.0, "state": "running",
		"deadline": "2026-03-14T20:00:00+09:00", "predicted_finish": "2026-03-14T20:07:00+09:00",
		"reason": "wait-london waits for /data/london/*.csv (nothing yet); then merge (8s)",
		"url":    "https://tasuki.example.com/api/v1/runs/42", "at": "2026-03-14T11:20:00Z",
	}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("body %s = %v, want %v", k, p[k], v)
		}
	}
	if len(p) != len(want) {
		t.Errorf("body has %d fields, want %d: %s", len(p), len(want), r.body)
	}
}

func TestWebhookUnsigned(t *testing.T) {
	srv, got := receiver(t)
	s := &notify.Sender{}
	if err := s.Send(t.Context(), notify.Message{ID: 1, Body: atRisk(), To: notify.Destination{Webhook: srv.URL}}); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.header.Get(notify.SignatureHeader) != "" {
		t.Errorf("a webhook without a secret is signed: %v", r.header)
	}
}

// TestWebhookFailures sorts answers into retried and permanent failures,
// and never lets a secret or a URL's path into an error.
func TestWebhookFailures(t *testing.T) {
	redirect := httptest.NewServer(http.RedirectHandler("https://elsewhere.example/", http.StatusFound))
	t.Cleanup(redirect.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	for _, tt := range []struct {
		name      string
		status    int    // of the receiver; 0: use url
		url       string // with status 0
		permanent bool
		msg       string
	}{
		{"server error", http.StatusServiceUnavailable, "", false, "answered 503 Service Unavailable: answer 503"},
		{"too many requests", http.StatusTooManyRequests, "", false, "answered 429"},
		{"not found", http.StatusNotFound, "", true, "answered 404 Not Found"},
		{"gone", http.StatusGone, "", true, "answered 410"},
		{"redirect", 0, redirect.URL + "/p/${tok}", true, "redirects are not followed"},
		{"refused", 0, closedURL + "/p/${tok}", false, "connection refused"},
		{"missing secret", 0, "https://a.example/${nope}", false, `secret "nope" is not set`},
		{"secret is no URL", 0, "${tok}", true, "the URL made from ${tok}: expected an http:// or https:// URL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.url
			if tt.status != 0 {
				srv, _ := receiver(t, tt.status)
				u = srv.URL + "/p/${tok}"
			}
			s := &notify.Sender{Secrets: secrets{"tok": "s3cr3t-token", "key": "k3y"}}
			err := s.Send(t.Context(), notify.Message{ID: 1, Body: atRisk(), To: notify.Destination{Webhook: u, Secret: "key"}})
			if err == nil {
				t.Fatal("no error")
			}
			if notify.IsPermanent(err) != tt.permanent {
				t.Errorf("permanent = %v, want %v: %v", notify.IsPermanent(err), tt.permanent, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
			for _, leak := range []string{"s3cr3t-token", "k3y", "/p/"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error %q shows %q", err, leak)
				}
			}
		})
	}
}

func TestSlackMessage(t *testing.T) {
	srv, got := receiver(t)
	s := &notify.Sender{Secrets: secrets{"ops_slack": srv.URL + "/services/T0/B0/XYZ"}}
	if err := s.Send(t.Context(), notify.Message{ID: 3, Body: atRisk(), To: notify.Destination{Slack: "${ops_slack}"}}); err != nil {
		t.Fatal(err)
	}
	r := <-got
	var m map[string]string
	if err := json.Unmarshal(r.body, &m); err != nil || len(m) != 1 {
		t.Fatalf("Slack body %s: %v", r.body, err)
	}
	want := ":warning: *trades run 42 is at risk of missing its deadline 2026-03-14 20:00 +09:00 (predicted finish 2026-03-14 20:07 +09:00)*\n" +
		"Why: wait-london waits for /data/london/*.csv (nothing yet); then merge (8s)\n" +
		"<https://tasuki.example.com/api/v1/runs/42|Run 42>"
	if m["text"] != want {
		t.Errorf("Slack text =\n%s\nwant\n%s", m["text"], want)
	}
	if r.header.Get(notify.SignatureHeader) != "" {
		t.Error("a Slack message is signed")
	}
	// Slack's own characters are escaped.
	p := notify.NewPayload(notify.Event{Kind: notify.Failed, Pipeline: "p", RunID: 1, Reason: "a <b> & c", At: signedAt}, "")
	b, _ := p.Encode()
	if err := s.Send(t.Context(), notify.Message{ID: 4, Body: b, To: notify.Destination{Slack: srv.URL}}); err != nil {
		t.Fatal(err)
	}
	r = <-got
	if !strings.Contains(string(r.body), `Why: a \u0026lt;b\u0026gt; \u0026amp; c`) {
		t.Errorf("Slack body %s: reason not escaped", r.body)
	}
}

// mailbox is an SMTP server on loopback (github.com/emersion/go-smtp)
// that offers STARTTLS with a test certificate, allows AUTH PLAIN only
// after it, and records the messages it accepts.
type mailbox struct {
	addr   string
	caFile string
	user   string
	pass   string
	mu     sync.Mutex
	mails  []mailMsg
	got    chan struct{}
	reject atomic.Int32 // RCPT reply code to give (0: accept)
}

type mailMsg struct {
	from, to string
	data     []byte
	tls      bool
	authed   bool
}

func newMailbox(t *testing.T, user, pass string) *mailbox {
	t.Helper()
	pki := apitest.NewPKI(t)
	certFile, keyFile, _ := pki.Server("smtp")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	m := &mailbox{caFile: pki.CAFile, user: user, pass: pass, got: make(chan struct{}, 10)}
	srv := smtpd.NewServer(smtpd.BackendFunc(func(c *smtpd.Conn) (smtpd.Session, error) {
		return &mailSession{m: m, c: c}, nil
	}))
	srv.Domain = "localhost"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0) // clients that hang up are part of the tests
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return m
}

func (m *mailbox) smtp(t *testing.T) *notify.SMTP {
	t.Helper()
	host, port, _ := net.SplitHostPort(m.addr)
	var p int
	fmt.Sscan(port, &p)
	pem, err := os.ReadFile(m.caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	return &notify.SMTP{Host: host, Port: p, From: "tasuki@example.com", User: m.user, PasswordSecret: "smtp_password",
		StartTLS: true, TLS: &tls.Config{RootCAs: roots}}
}

type mailSession struct {
	m      *mailbox
	c      *smtpd.Conn
	authed bool
	msg    mailMsg
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.m.user || pass != s.m.pass {
			return smtpd.ErrAuthFailed
		}
		s.authed = true
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtpd.MailOptions) error {
	if s.m.user != "" && !s.authed {
		return smtpd.ErrAuthRequired
	}
	s.msg.from = from
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtpd.RcptOptions) error {
	if code := s.m.reject.Load(); code != 0 {
		return &smtpd.SMTPError{Code: int(code), Message: "no such mailbox"}
	}
	s.msg.to = to
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, s.msg.tls = s.c.TLSConnectionState()
	s.msg.authed, s.msg.data = s.authed, b
	s.m.mu.Lock()
	s.m.mails = append(s.m.mails, s.msg)
	s.m.mu.Unlock()
	s.m.got <- struct{}{}
	return nil
}

func (s *mailSession) Reset()        { s.msg = mailMsg{} }
func (s *mailSession) Logout() error { return nil }

func TestEmailOverSTARTTLS(t *testing.T) {
	mb := newMailbox(t, "tasuki", "smtp-pa55")
	s := &notify.Sender{SMTP: mb.smtp(t), Secrets: secrets{"smtp_password": "smtp-pa55"}, Now: func() time.Time { return signedAt }}
	if err := s.Send(t.Context(), notify.Message{ID: 9, Body: atRisk(), To: notify.Destination{Email: "oncall@example.com"}}); err != nil {
		t.Fatal(err)
	}
	<-mb.got
	m := mb.mails[0]
	if !m.tls || !m.authed || m.from != "tasuki@example.com" || m.to != "oncall@example.com" {
		t.Errorf("mail from %s to %s, tls %v, authenticated %v", m.from, m.to, m.tls, m.authed)
	}
	msg, err := mail.ReadMessage(strings.NewReader(string(m.data)))
	if err != nil {
		t.Fatal(err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || subject != "[tasuki] trades run 42 is at risk of missing its deadline 2026-03-14 20:00 +09:00 (predicted finish 2026-03-14 20:07 +09:00)" {
		t.Errorf("Subject = %q, %v", subject, err)
	}
	if msg.Header.Get("Message-ID") != "<tasuki-delivery-9@example.com>" || msg.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("headers = %v", msg.Header)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Why: wait-london waits for /data/london/*.csv (nothing yet); then merge (8s)\r\n",
		"Deadline: 2026-03-14 20:00 +09:00\r\n",
		"https://tasuki.example.com/api/v1/runs/42\r\n",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body does not say %q:\n%s", want, body)
		}
	}
}

func TestEmailFailures(t *testing.T) {
	mb := newMailbox(t, "tasuki", "smtp-pa55")
	for _, tt := range []struct {
		name      string
		change    func(c *notify.SMTP, s *notify.Sender)
		permanent bool
		msg       string
	}{
		{"wrong password", func(c *notify.SMTP, s *notify.Sender) { s.Secrets = secrets{"smtp_password": "wr0ng-pa55"} }, true, "AUTH: the server replied 535"},
		{"untrusted certificate", func(c *notify.SMTP, s *notify.Sender) { c.TLS = nil }, false, "STARTTLS"},
		{"no password secret", func(c *notify.SMTP, s *notify.Sender) { s.Secrets = secrets{} }, false, `SMTP password secret "smtp_password" is not set`},
		{"no server", func(c *notify.SMTP, s *notify.Sender) { c.Port = 1 }, false, "connection refused"},
		{"recipient refused", func(c *notify.SMTP, s *notify.Sender) { mb.reject.Store(550) }, true, "RCPT TO: the server replied 550"},
		{"busy", func(c *notify.SMTP, s *notify.Sender) { mb.reject.Store(451) }, false, "RCPT TO: the server replied 451"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mb.reject.Store(0)
			s := &notify.Sender{SMTP: mb.smtp(t), Secrets: secrets{"smtp_password": "smtp-pa55"}}
			tt.change(s.SMTP, s)
			err := s.Send(t.Context(), notify.Message{ID: 1, Body: atRisk(), To: notify.Destination{Email: "oncall@example.com"}})
			if err == nil {
				t.Fatal("no error")
			}
			if notify.IsPermanent(err) != tt.permanent || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q (permanent %v), want %q (permanent %v)", err, notify.IsPermanent(err), tt.msg, tt.permanent)
			}
			if strings.Contains(err.Error(), "pa55") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
	s := &notify.Sender{}
	if err := s.Send(t.Context(), notify.Message{ID: 1, Body: atRisk(), To: notify.Destination{Email: "a@example.com"}}); err == nil || !strings.Contains(err.Error(), "no SMTP server is configured") {
		t.Errorf("e-mail without SMTP: %v", err)
	}
}

// TestEmailRequiresSTARTTLS: a server that offers no STARTTLS gets
// nothing, password least of all.
func TestEmailRequiresSTARTTLS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	heard := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprint(c, "220 plain ESMTP\r\n")
		var all strings.Builder
		buf := make([]byte, 512)
		for {
			n, err := c.Read(buf)
			all.Write(buf[:n])
			if strings.Contains(all.String(), "EHLO") && strings.HasSuffix(all.String(), "\r\n") {
				fmt.Fprint(c, "250-plain\r\n250 AUTH PLAIN\r\n")
			}
			if strings.Contains(all.String(), "QUIT") {
				fmt.Fprint(c, "221 bye\r\n")
			}
			if err != nil {
				heard <- all.String()
				return
			}
		}
	}()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	var p int
	fmt.Sscan(port, &p)
	s := &notify.Sender{SMTP: &notify.SMTP{Host: host, Port: p, From: "t@example.com", User: "u", PasswordSecret: "pw", StartTLS: true},
		Secrets: secrets{"pw": "pa55"}}
	err = s.Send(t.Context(), notify.Message{ID: 1, Body: atRisk(), To: notify.Destination{Email: "a@example.com"}})
	if err == nil || !notify.IsPermanent(err) || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Errorf("Send to a server without STARTTLS: %v", err)
	}
	if got := <-heard; strings.Contains(got, "AUTH") || strings.Contains(got, "MAIL") {
		t.Errorf("the client went on without TLS:\n%s", got)
	}
}

package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds one try of one delivery: a webhook or Slack request
// with its answer, an SMTP session.
const DefaultTimeout = 10 * time.Second

// Message is one delivery of an event to one destination.
type Message struct {
	// ID is the delivery's ID in the outbox: webhooks receive it in
	// X-Tasuki-Delivery, e-mails in their Message-ID, so a receiver can
	// recognise a message it already had (a delivery interrupted by a
	// crash after the receiver took it is sent again).
	ID int64
	To Destination
	// Body is the event as JSON, exactly as kept in the outbox: what a
	// webhook posts and signs.
	Body []byte
}

// Secrets looks up a secret's value by name (secret.Resolver: the server's
// TASUKI_SECRET_<NAME> variables, its secrets_dir, then the secret store).
type Secrets interface {
	Secret(ctx context.Context, name string) (string, error)
}

// Sender sends messages to webhooks, Slack and e-mail. Errors it returns
// never hold a secret's value or a URL's path or query: they are recorded
// in the outbox and the run's timeline, which viewers read.
type Sender struct {
	// Client sends webhook and Slack requests (nil: a client with
	// DefaultTimeout). Redirects are never followed: a signed request goes
	// where it was configured to, or fails.
	Client *http.Client
	// SMTP is the mail server of e-mail destinations; nil: they fail
	// saying SMTP is not configured.
	SMTP *SMTP
	// Secrets resolves ${NAME} in URLs, webhook signing secrets and the
	// SMTP password; nil: a destination that needs one fails.
	Secrets Secrets
	// Now is the clock of signatures and e-mail dates (default time.Now).
	Now func() time.Time
	// UserAgent is sent with HTTP requests (default "tasuki").
	UserAgent string
}

// permanentError is a failure that trying again will not mend: a 4xx
// answer, an address the mail server refuses.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as a failure that retrying will not mend, so the
// outbox gives the delivery up at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Send delivers m once. A nil error means the destination took it; an
// error marked Permanent means trying again is useless; any other error
// may be tried again later.
func (s *Sender) Send(ctx context.Context, m Message) error {
	var used []string // secret values, removed from any error
	lookup := func(name string) (string, error) {
		if s.Secrets == nil {
			return "", fmt.Errorf("secret %q: this server has no secrets", name)
		}
		v, err := s.Secrets.Secret(ctx, name)
		if err != nil {
			return "", err
		}
		used = append(used, v)
		return v, nil
	}
	var err error
	switch m.To.Type() {
	case TypeWebhook:
		err = s.webhook(ctx, m, lookup)
	case TypeSlack:
		err = s.slack(ctx, m, lookup)
	case TypeEmail:
		err = s.email(ctx, m, lookup)
	default:
		err = Permanent(errors.New("no destination"))
	}
	return scrub(err, used)
}

// scrub replaces the values of secrets in err's message by "***", keeping
// whether it is permanent.
func scrub(err error, values []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	changed := false
	for _, v := range values {
		if v != "" && strings.Contains(msg, v) {
			msg = strings.ReplaceAll(msg, v, "***")
			changed = true
		}
	}
	if !changed {
		return err
	}
	if IsPermanent(err) {
		return Permanent(errors.New(msg))
	}
	return errors.New(msg)
}

func (s *Sender) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Sender) client() *http.Client {
	c := s.Client
	if c == nil {
		c = &http.Client{Timeout: DefaultTimeout}
	}
	if c.CheckRedirect == nil {
		cc := *c
		cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		c = &cc
	}
	return c
}

// target expands a URL template and checks what came out.
func target(tmpl string, lookup func(string) (string, error)) (string, error) {
	u, _, err := expand(tmpl, lookup)
	if err != nil {
		return "", err
	}
	if err := checkHTTPURL(u); err != nil {
		return "", Permanent(fmt.Errorf("the URL made from %s: %w", MaskURL(tmpl), err))
	}
	return u, nil
}

func (s *Sender) webhook(ctx context.Context, m Message, lookup func(string) (string, error)) error {
	u, err := target(m.To.Webhook, lookup)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(m.Body))
	if err != nil {
		return Permanent(fmt.Errorf("webhook %s: build the request: %v", MaskURL(m.To.Webhook), stripURL(err)))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Tasuki-Delivery", strconv.FormatInt(m.ID, 10))
	if p, err := DecodePayload(m.Body); err == nil {
		req.Header.Set("X-Tasuki-Event", string(p.Event))
	}
	if m.To.Secret != "" {
		key, err := lookup(m.To.Secret)
		if err != nil {
			return fmt.Errorf("webhook signing %w", err)
		}
		req.Header.Set(SignatureHeader, Sign([]byte(key), s.now(), m.Body))
	}
	return s.post(req, "webhook "+MaskURL(m.To.Webhook))
}

// slackMessage is the body of a Slack incoming webhook.
type slackMessage struct {
	Text string `json:"text"`
}

func (s *Sender) slack(ctx context.Context, m Message, lookup func(string) (string, error)) error {
	p, err := DecodePayload(m.Body)
	if err != nil {
		return Permanent(err)
	}
	body, err := jsonBody(slackMessage{Text: p.slackText()})
	if err != nil {
		return Permanent(err)
	}
	u, err := target(m.To.Slack, lookup)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("slack %s: build the request: %v", MaskURL(m.To.Slack), stripURL(err)))
	}
	req.Header.Set("Content-Type", "application/json")
	return s.post(req, "slack "+MaskURL(m.To.Slack))
}

// post sends req and sorts the answer: 2xx is delivered; 408, 429 and 5xx
// and connection errors may be tried again; any other answer is permanent.
func (s *Sender) post(req *http.Request, what string) error {
	ua := s.UserAgent
	if ua == "" {
		ua = "tasuki"
	}
	req.Header.Set("User-Agent", ua)
	resp, err := s.client().Do(req)
	if err != nil {
		return fmt.Errorf("%s: %v", what, stripURL(err))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16)) // let the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("%s answered %s%s", what, resp.Status, quoteBody(snippet))
	switch {
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return err
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return Permanent(fmt.Errorf("%w (redirects are not followed: configure the final URL)", err))
	}
	return Permanent(err)
}

// quoteBody shows the start of an answer's body in an error, on one line.
func quoteBody(b []byte) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "?")), " ")
	if s == "" {
		return ""
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return ": " + s
}

// stripURL drops the URL an *url.Error quotes (its path and query may be
// secret), keeping what went wrong.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return errors.New("no answer in time")
		}
		return ue.Err
	}
	return err
}

package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/smtp"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// DefaultSMTPPort is the submission port, where mail clients send with
// STARTTLS.
const DefaultSMTPPort = 587

// SMTP is the mail server e-mail destinations are sent through.
type SMTP struct {
	Host string
	Port int // 0: DefaultSMTPPort
	// From is the sender's address.
	From string
	// User and PasswordSecret authenticate (AUTH PLAIN, only over TLS or to
	// localhost); the password is the value of the secret PasswordSecret.
	// Without User, no authentication.
	User           string
	PasswordSecret string
	// StartTLS requires the server to offer STARTTLS and upgrades the
	// connection before anything else is sent; false sends in clear (a
	// relay on this machine).
	StartTLS bool
	// TLS is the configuration of the upgrade (nil: the system's roots);
	// its ServerName defaults to Host.
	TLS *tls.Config
	// Timeout bounds a whole session (0: DefaultTimeout).
	Timeout time.Duration
	// LocalName is the name this host gives in EHLO (default "localhost").
	LocalName string
}

func (c *SMTP) addr() string {
	port := c.Port
	if port == 0 {
		port = DefaultSMTPPort
	}
	return net.JoinHostPort(c.Host, strconv.Itoa(port))
}

func (s *Sender) email(ctx context.Context, m Message, lookup func(string) (string, error)) error {
	c := s.SMTP
	if c == nil || c.Host == "" {
		return errors.New("email: no SMTP server is configured (smtp.host in the server configuration)")
	}
	p, err := DecodePayload(m.Body)
	if err != nil {
		return Permanent(err)
	}
	var password string
	if c.User != "" && c.PasswordSecret != "" {
		if password, err = lookup(c.PasswordSecret); err != nil {
			return fmt.Errorf("email: SMTP password %w", err)
		}
	}
	msg, err := s.mail(m, p)
	if err != nil {
		return Permanent(err)
	}
	if err := c.send(ctx, m.To.Email, msg, password); err != nil {
		return fmt.Errorf("email %s via %s: %w", m.To.Email, c.addr(), err)
	}
	return nil
}

// mail builds the message: plain UTF-8 text, quoted-printable, CRLF lines.
func (s *Sender) mail(m Message, p Payload) ([]byte, error) {
	from := s.SMTP.From
	domain := "tasuki"
	if _, d, ok := strings.Cut(from, "@"); ok && d != "" {
		domain = d
	}
	var b bytes.Buffer
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	hdr("From", from)
	hdr("To", m.To.Email)
	hdr("Subject", mime.QEncoding.Encode("utf-8", p.emailSubject()))
	hdr("Date", s.now().Format(time.RFC1123Z))
	hdr("Message-ID", fmt.Sprintf("<tasuki-delivery-%d@%s>", m.ID, domain))
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	hdr("X-Tasuki-Event", string(p.Event))
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(p.Text())); err != nil {
		return nil, fmt.Errorf("email: encode the message: %w", err)
	}
	if err := qp.Close(); err != nil {
		return nil, fmt.Errorf("email: encode the message: %w", err)
	}
	return b.Bytes(), nil
}

// send runs one SMTP session: EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, QUIT.
// A 5xx reply is permanent; a 4xx reply or a lost connection may be tried
// again.
func (c *SMTP) send(ctx context.Context, to string, msg []byte, password string) error {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", c.addr())
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	cl, err := smtp.NewClient(conn, c.Host)
	if err != nil {
		conn.Close()
		return smtpErr("greeting", err)
	}
	defer cl.Close()
	local := c.LocalName
	if local == "" {
		local = "localhost"
	}
	if err := cl.Hello(local); err != nil {
		return smtpErr("EHLO", err)
	}
	if c.StartTLS {
		if ok, _ := cl.Extension("STARTTLS"); !ok {
			return Permanent(errors.New("the server does not offer STARTTLS, which is required (smtp.starttls)"))
		}
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.TLS != nil {
			cfg = c.TLS.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = c.Host
		}
		if err := cl.StartTLS(cfg); err != nil {
			return smtpErr("STARTTLS", err)
		}
	}
	if c.User != "" {
		if ok, _ := cl.Extension("AUTH"); !ok {
			return Permanent(errors.New("the server offers no authentication, and smtp.user is set"))
		}
		if err := cl.Auth(smtp.PlainAuth("", c.User, password, c.Host)); err != nil {
			return smtpErr("AUTH", err)
		}
	}
	if err := cl.Mail(c.From); err != nil {
		return smtpErr("MAIL FROM", err)
	}
	if err := cl.Rcpt(to); err != nil {
		return smtpErr("RCPT TO", err)
	}
	w, err := cl.Data()
	if err != nil {
		return smtpErr("DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return smtpErr("DATA", err)
	}
	if err := w.Close(); err != nil {
		return smtpErr("DATA", err)
	}
	if err := cl.Quit(); err != nil {
		// The message was accepted at the end of DATA; a lost QUIT does
		// not undo that.
		return nil
	}
	return nil
}

// smtpErr names the step that failed; a 5xx reply is permanent.
func smtpErr(step string, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) {
		err = fmt.Errorf("%s: the server replied %d %s", step, te.Code, te.Msg)
		if te.Code >= 500 {
			return Permanent(err)
		}
		return err
	}
	return fmt.Errorf("%s: %w", step, err)
}

// jsonBody encodes v as a request body.
func jsonBody(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode the message: %w", err)
	}
	return b, nil
}

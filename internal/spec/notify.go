package spec

import (
	"fmt"
	"net/mail"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
)

// Notify is one destination of a pipeline's notifications: exactly one of
// Webhook, Slack and Email, with the events it wants. internal/notify
// sends them (notify.Destination has the same keys).
type Notify struct {
	Webhook string   `yaml:"webhook,omitempty" doc:"A URL that receives each event as a JSON POST (event, pipeline, run, state, deadline, predicted_finish, reason, url, at), retried with backoff on 5xx and connection errors. ${NAME} in it is replaced by the value of the secret NAME when it is sent." aka:"url,http,hook,webhook_url"`
	Secret  string   `yaml:"secret,omitempty" doc:"webhook: the secret whose value signs each request: X-Tasuki-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">. Without it, requests are not signed." pattern:"secret" aka:"signing_secret,hmac,signing_key"`
	Slack   string   `yaml:"slack,omitempty" doc:"A Slack incoming-webhook URL; the message says what happened, why, and links to the run. The URL is itself a credential: write it as ${NAME}, the secret NAME holding it." aka:"slack_webhook,slack_url,chat"`
	Email   string   `yaml:"email,omitempty" doc:"An e-mail address; mail goes over the server's SMTP settings (smtp: in the server configuration) with STARTTLS." aka:"mail,to,address"`
	On      []string `yaml:"on,omitempty" doc:"The events this destination receives: at_risk, missed, failed, recovered, repaired, succeeded, slo_breach. Default: at_risk, missed, failed, recovered. One alert per incident: a run retried that fails again, or at risk twice, is not told again." enum:"at_risk,missed,failed,recovered,repaired,succeeded,slo_breach" aka:"events,when,kinds,triggers"`
}

// notifyPlaceholder is ${NAME} in a URL: the value of the secret NAME.
var notifyPlaceholder = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// notify checks the notify list: exactly one destination in each entry, a
// URL or an address that can be sent to, a signing secret only for a
// webhook, known events, each at its key.
func (c *checker) notify(p *Pipeline) {
	events := c.f.objectShape(reflect.TypeFor[Notify]()).byKey["on"].enum
	seen := map[string]int{} // destination to the entry that first named it
	for i := range p.Notify {
		n := &p.Notify[i]
		at, ok := c.at(n)
		if !ok {
			continue
		}
		label := fmt.Sprintf("notify #%d", i+1)
		if dest := n.Webhook + "\x00" + n.Slack + "\x00" + n.Email; dest != "\x00\x00" {
			if first, dup := seen[dest]; dup {
				c.errorf(at, "%s: the same destination as notify #%d; list its events once, in one entry", label, first+1)
			} else {
				seen[dest] = i
			}
		}
		if oat, given := c.locs.at(&n.On); given && !oat.bad && len(n.On) == 0 {
			c.errorf(oat.pos, "%s: on: expected at least one event (leave on out for at_risk, missed, failed, recovered)", label)
		}
		var set []string
		for _, f := range []struct{ key, v string }{{"webhook", n.Webhook}, {"slack", n.Slack}, {"email", n.Email}} {
			if f.v != "" {
				set = append(set, f.key)
			}
		}
		switch len(set) {
		case 0:
			c.errorf(at, "%s: expected one of webhook, slack and email: where to send", label)
		case 1:
		default:
			c.errorf(at, "%s: expected one of webhook, slack and email, got %s; give each its own entry", label, strings.Join(set, " and "))
		}
		for _, f := range []struct {
			key string
			v   *string
		}{{"webhook", &n.Webhook}, {"slack", &n.Slack}} {
			if *f.v == "" {
				continue
			}
			if fat, ok := c.at(f.v); ok {
				if err := checkNotifyURL(*f.v); err != nil {
					c.errorf(fat, "%s: %s: %v", label, f.key, err)
				}
			}
		}
		if n.Email != "" {
			if eat, ok := c.at(&n.Email); ok {
				if a, err := mail.ParseAddress(n.Email); err != nil || a.Address != n.Email || a.Name != "" {
					c.errorf(eat, "%s: email %s: expected one e-mail address such as oncall@example.com", label, quoteShort(n.Email))
				}
			}
		}
		if n.Secret != "" && n.Webhook == "" && len(set) == 1 {
			sat, _ := c.at(&n.Secret)
			c.errorf(sat, "%s: secret signs webhook requests; a %s destination has none (a Slack URL that is a secret is written slack: ${NAME})", label, set[0])
		}
		for j, ev := range n.On {
			if slices.Contains(events, ev) {
				continue
			}
			eat, _ := c.at(&n.On[j])
			msg := fmt.Sprintf("%s: on: unknown event %s: expected one of %s", label, quoteShort(ev), strings.Join(events, ", "))
			if hint := closest(ev, events); hint != "" {
				msg += fmt.Sprintf("; did you mean %q?", hint)
			}
			c.errorf(eat, "%s", msg)
		}
	}
}

// checkNotifyURL checks a webhook or Slack URL: an http or https URL with
// a host, where ${NAME} may stand for any part, or one ${NAME} alone (the
// whole URL is the secret's value, checked when it is sent). It agrees
// with notify.CheckURL.
func checkNotifyURL(s string) error {
	rest := s
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			break
		}
		m := notifyPlaceholder.FindStringIndex(rest[i:])
		if m == nil || m[0] != 0 {
			end := strings.IndexByte(rest[i:], '}')
			if end < 0 {
				return fmt.Errorf("${ is not closed by }: expected ${NAME}, NAME the name of a secret")
			}
			return fmt.Errorf("%s: expected ${NAME}, NAME the name of a secret (letters, digits and '_', not starting with a digit)", rest[i:i+end+1])
		}
		rest = rest[i+m[1]:]
	}
	if m := notifyPlaceholder.FindStringIndex(s); m != nil && m[0] == 0 && m[1] == len(s) {
		return nil
	}
	u, err := url.Parse(notifyPlaceholder.ReplaceAllString(s, "x"))
	switch {
	case err != nil:
		return fmt.Errorf("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("expected an http:// or https:// URL (or ${NAME} for a URL kept in a secret)")
	case u.Host == "":
		return fmt.Errorf("expected a URL with a host")
	}
	return nil
}

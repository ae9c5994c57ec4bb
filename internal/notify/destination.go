package notify

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Destination types: what Destination.Type returns and the outbox keeps.
const (
	TypeWebhook = "webhook"
	TypeSlack   = "slack"
	TypeEmail   = "email"
)

// DefaultKinds are the events a destination that lists none receives: the
// problems and the end of them, not every success.
func DefaultKinds() []Kind { return []Kind{AtRisk, Missed, Failed, Recovered} }

// ParseKind returns the kind called s, or an error that lists the kinds.
func ParseKind(s string) (Kind, error) {
	k := Kind(s)
	if slices.Contains(Kinds(), k) {
		return k, nil
	}
	names := make([]string, 0, len(Kinds()))
	for _, k := range Kinds() {
		names = append(names, string(k))
	}
	return "", fmt.Errorf("unknown event %q: expected one of %s", s, strings.Join(names, ", "))
}

// Destination is one place messages go: exactly one of Webhook, Slack and
// Email is set. Pipelines list them under notify:, the server's
// configuration under notify: for every pipeline.
//
// Webhook and Slack URLs may hold ${NAME}: the value of the secret NAME,
// looked up when a message is sent (a Slack incoming-webhook URL is itself
// a credential, so it is usually written slack: ${ops_slack}). Only the
// template is ever stored or shown; values are never.
type Destination struct {
	// Webhook is a URL that receives each event as a signed JSON POST.
	Webhook string `yaml:"webhook,omitempty" json:"webhook,omitempty"`
	// Secret names the secret whose value signs webhook requests
	// (X-Tasuki-Signature); empty: unsigned.
	Secret string `yaml:"secret,omitempty" json:"secret,omitempty"`
	// Slack is a Slack incoming-webhook URL.
	Slack string `yaml:"slack,omitempty" json:"slack,omitempty"`
	// Email is an address that receives each event as a mail, over the
	// server's SMTP settings.
	Email string `yaml:"email,omitempty" json:"email,omitempty"`
	// On are the events the destination wants; empty means DefaultKinds.
	On []Kind `yaml:"on,omitempty" json:"on,omitempty"`
}

// Type says which kind of destination d is: TypeWebhook, TypeSlack,
// TypeEmail, or "" when none is set.
func (d Destination) Type() string {
	switch {
	case d.Webhook != "":
		return TypeWebhook
	case d.Slack != "":
		return TypeSlack
	case d.Email != "":
		return TypeEmail
	}
	return ""
}

// Wants reports whether d receives events of kind k.
func (d Destination) Wants(k Kind) bool {
	if len(d.On) == 0 {
		return slices.Contains(DefaultKinds(), k)
	}
	return slices.Contains(d.On, k)
}

// Target is d without its event list: what the outbox keeps of a
// destination, so two routes to the same place deliver once.
func (d Destination) Target() Destination {
	d.On = nil
	return d
}

// String names d for people and logs without what could be secret: the
// type and the host of a URL, its path and query left out
// ("slack hooks.slack.com/…"), a URL that is a secret by its name
// ("slack ${ops_slack}"), an address in full.
func (d Destination) String() string {
	switch d.Type() {
	case TypeWebhook:
		return "webhook " + MaskURL(d.Webhook)
	case TypeSlack:
		return "slack " + MaskURL(d.Slack)
	case TypeEmail:
		return "email " + d.Email
	}
	return "no destination"
}

// MaskURL shows a URL template as its host, with "/…" when a path or a
// query follows, and a template that starts with a secret as the secret's
// name: never a path, a query or credentials, which may be secret.
func MaskURL(s string) string {
	if strings.HasPrefix(s, "${") {
		end := strings.IndexByte(s, '}')
		switch {
		case end < 0:
			return "(invalid URL)"
		case end == len(s)-1:
			return s
		}
		return s[:end+1] + "…"
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return "(invalid URL)"
	}
	host, tail := rest, ""
	if end := strings.IndexAny(rest, "/?#"); end >= 0 {
		host, tail = rest[:end], rest[end:]
	}
	if at := strings.LastIndexByte(host, '@'); at >= 0 {
		host = host[at+1:] // credentials are never shown
	}
	if host == "" || strings.Contains(host, "${") {
		host = "…"
	}
	if tail != "" && tail != "/" {
		return host + "/…"
	}
	return host
}

// placeholderRE matches ${NAME} in a URL template; NAME has the syntax of a
// secret's name.
var placeholderRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// Placeholders returns the names of the secrets a URL template refers to,
// in order, or an error for a "${" that does not start a valid ${NAME}.
func Placeholders(s string) ([]string, error) {
	var names []string
	rest := s
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			return names, nil
		}
		m := placeholderRE.FindStringSubmatchIndex(rest[i:])
		if m == nil || m[0] != 0 {
			end := strings.IndexByte(rest[i:], '}')
			if end < 0 {
				return nil, errors.New("${ is not closed by }: expected ${NAME}, NAME the name of a secret")
			}
			return nil, fmt.Errorf("%s: expected ${NAME}, NAME the name of a secret (letters, digits and '_', not starting with a digit)", rest[i:i+end+1])
		}
		names = append(names, rest[i+m[2]:i+m[3]])
		rest = rest[i+m[1]:]
	}
}

// CheckURL checks a webhook or Slack URL template: an absolute http or
// https URL with a host, where ${NAME} may stand for any part; a template
// that is one ${NAME} alone is the URL held by that secret, checked when
// it is sent.
func CheckURL(s string) error {
	if _, err := Placeholders(s); err != nil {
		return err
	}
	if m := placeholderRE.FindStringIndex(s); m != nil && m[0] == 0 && m[1] == len(s) {
		return nil
	}
	return checkHTTPURL(placeholderRE.ReplaceAllString(s, "x"))
}

// checkHTTPURL checks a URL to send to.
func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("expected an http:// or https:// URL")
	}
	if u.Host == "" {
		return errors.New("expected a URL with a host")
	}
	return nil
}

// CheckEmail checks an address: one plain address such as
// oncall@example.com, without a display name.
func CheckEmail(s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return errors.New("expected one e-mail address such as oncall@example.com")
	}
	return nil
}

// Check checks d: exactly one destination, a valid URL or address, a
// signing secret only for a webhook, known events.
func (d Destination) Check() error {
	var set []string
	for _, f := range []struct{ key, v string }{{"webhook", d.Webhook}, {"slack", d.Slack}, {"email", d.Email}} {
		if f.v != "" {
			set = append(set, f.key)
		}
	}
	switch len(set) {
	case 0:
		return errors.New("expected one of webhook, slack and email")
	case 1:
	default:
		return fmt.Errorf("expected one of webhook, slack and email, got %s", strings.Join(set, " and "))
	}
	switch {
	case d.Webhook != "":
		if err := CheckURL(d.Webhook); err != nil {
			return fmt.Errorf("webhook: %w", err)
		}
	case d.Slack != "":
		if err := CheckURL(d.Slack); err != nil {
			return fmt.Errorf("slack: %w", err)
		}
	default:
		if err := CheckEmail(d.Email); err != nil {
			return fmt.Errorf("email %q: %w", d.Email, err)
		}
	}
	if d.Secret != "" {
		if d.Webhook == "" {
			return errors.New("secret: signs webhook requests; a " + set[0] + " destination has none")
		}
		if !secretNameRE.MatchString(d.Secret) {
			return fmt.Errorf("secret %q: expected the name of a secret (letters, digits and '_', not starting with a digit)", d.Secret)
		}
	}
	for _, k := range d.On {
		if _, err := ParseKind(string(k)); err != nil {
			return fmt.Errorf("on: %w", err)
		}
	}
	return nil
}

var secretNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expand replaces each ${NAME} of a URL template by the value of the
// secret NAME, and returns the values it used, so errors can be cleaned of
// them.
func expand(s string, lookup func(name string) (string, error)) (string, []string, error) {
	names, err := Placeholders(s)
	if err != nil {
		return "", nil, err
	}
	if len(names) == 0 {
		return s, nil, nil
	}
	values := map[string]string{}
	var used []string
	for _, n := range names {
		if _, ok := values[n]; ok {
			continue
		}
		v, err := lookup(n)
		if err != nil {
			return "", used, err
		}
		values[n] = v
		used = append(used, v)
	}
	out := placeholderRE.ReplaceAllStringFunc(s, func(m string) string { return values[m[2:len(m)-1]] })
	return out, used, nil
}

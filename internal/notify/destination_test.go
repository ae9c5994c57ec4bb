package notify_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/notify"
)

func TestDestinationCheck(t *testing.T) {
	for _, tt := range []struct {
		name string
		d    notify.Destination
		err  string // "" for valid
	}{
		{"webhook", notify.Destination{Webhook: "https://ops.example.com/hooks/tasuki", Secret: "hook_key"}, ""},
		{"webhook with a secret token", notify.Destination{Webhook: "https://ops.example.com/hooks?token=${hook_token}"}, ""},
		{"slack secret", notify.Destination{Slack: "${ops_slack}", On: []notify.Kind{notify.Failed}}, ""},
		{"slack url", notify.Destination{Slack: "https://hooks.slack.com/services/T0/B0/XYZ"}, ""},
		{"email", notify.Destination{Email: "oncall@example.com"}, ""},
		{"nothing", notify.Destination{}, "expected one of webhook, slack and email"},
		{"two", notify.Destination{Webhook: "https://a.example", Email: "a@example.com"}, "got webhook and email"},
		{"not http", notify.Destination{Webhook: "ftp://a.example/x"}, "expected an http:// or https:// URL"},
		{"no host", notify.Destination{Slack: "https:///x"}, "expected a URL with a host"},
		{"relative", notify.Destination{Webhook: "/hooks"}, "expected an http:// or https:// URL"},
		{"open placeholder", notify.Destination{Slack: "${ops_slack"}, "${ is not closed"},
		{"bad placeholder", notify.Destination{Slack: "${ops-slack}"}, "${ops-slack}: expected ${NAME}"},
		{"two secrets glued", notify.Destination{Slack: "${a}${b}"}, "expected an http:// or https:// URL"},
		{"display name", notify.Destination{Email: "Ops <ops@example.com>"}, "expected one e-mail address"},
		{"not an address", notify.Destination{Email: "ops"}, "expected one e-mail address"},
		{"secret of slack", notify.Destination{Slack: "${s}", Secret: "k"}, "a slack destination has none"},
		{"bad secret name", notify.Destination{Webhook: "https://a.example", Secret: "9k"}, `secret "9k"`},
		{"unknown event", notify.Destination{Email: "a@example.com", On: []notify.Kind{"failure"}}, `unknown event "failure"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.d.Check()
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("Check: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("Check = %v, want an error with %q", err, tt.err)
			}
		})
	}
}

func TestMaskURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.slack.com/services/T0/B0/XYZ": "hooks.slack.com/…",
		"https://ops.example.com":                    "ops.example.com",
		"https://ops.example.com/":                   "ops.example.com",
		"https://ops.example.com?token=abc":          "ops.example.com/…",
		"https://user:pw@ops.example.com:8443/x":     "ops.example.com:8443/…",
		"${ops_slack}":                               "${ops_slack}",
		"${base}/hooks/x":                            "${base}…",
		"https://${host}/x":                          "…/…",
		"ftp://x":                                    "(invalid URL)",
		"${open":                                     "(invalid URL)",
	} {
		if got := notify.MaskURL(in); got != want {
			t.Errorf("MaskURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDestinationWants(t *testing.T) {
	var d notify.Destination
	for _, k := range notify.Kinds() {
		if got, want := d.Wants(k), slices.Contains(notify.DefaultKinds(), k); got != want {
			t.Errorf("a destination without on: Wants(%s) = %v", k, got)
		}
	}
	d.On = []notify.Kind{notify.Succeeded}
	if !d.Wants(notify.Succeeded) || d.Wants(notify.Failed) {
		t.Errorf("on: [succeeded] wants %v", d.On)
	}
	if got := (notify.Destination{Slack: "https://hooks.slack.com/services/x"}).String(); got != "slack hooks.slack.com/…" {
		t.Errorf("String = %q", got)
	}
}

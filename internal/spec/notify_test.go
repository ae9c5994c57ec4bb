package spec

import (
	"strings"
	"testing"
)

// TestParseNotify reads the destinations of the issue.
func TestParseNotify(t *testing.T) {
	src := `name: trades
notify:
  - webhook: https://ops.example.com/hooks/tasuki
    secret: ops_hook_key
    on: [at_risk, missed, failed, recovered, repaired, succeeded, slo_breach]
  - slack: ${ops_slack}
    on: [failed]
  - email: oncall@example.com
tasks:
  - id: a
    run: "true"
`
	p, err := Parse("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []Notify{
		{Webhook: "https://ops.example.com/hooks/tasuki", Secret: "ops_hook_key",
			On: []string{"at_risk", "missed", "failed", "recovered", "repaired", "succeeded", "slo_breach"}},
		{Slack: "${ops_slack}", On: []string{"failed"}},
		{Email: "oncall@example.com"},
	}
	if len(p.Notify) != len(want) {
		t.Fatalf("notify = %+v", p.Notify)
	}
	for i := range want {
		if g, w := p.Notify[i], want[i]; g.Webhook != w.Webhook || g.Secret != w.Secret || g.Slack != w.Slack || g.Email != w.Email ||
			strings.Join(g.On, ",") != strings.Join(w.On, ",") {
			t.Errorf("notify #%d = %+v, want %+v", i+1, g, w)
		}
	}
}

// TestNotifyErrors: every mistake is reported at the key it is about.
func TestNotifyErrors(t *testing.T) {
	for _, tt := range []struct {
		name, notify, want string
	}{
		{"none", "  - on: [failed]", "p.yaml:3:5: notify #1: expected one of webhook, slack and email: where to send"},
		{"two", "  - {webhook: 'https://a.example', email: a@example.com}", "p.yaml:3:6: notify #1: expected one of webhook, slack and email, got webhook and email; give each its own entry"},
		{"scheme", "  - webhook: ftp://a.example/x", "p.yaml:3:14: notify #1: webhook: expected an http:// or https:// URL (or ${NAME} for a URL kept in a secret)"},
		{"no host", "  - slack: 'https:///services/x'", "p.yaml:3:12: notify #1: slack: expected a URL with a host"},
		{"placeholder", "  - slack: ${ops-slack}", "p.yaml:3:12: notify #1: slack: ${ops-slack}: expected ${NAME}, NAME the name of a secret (letters, digits and '_', not starting with a digit)"},
		{"open placeholder", "  - slack: https://x.example/${tok", "p.yaml:3:12: notify #1: slack: ${ is not closed by }: expected ${NAME}, NAME the name of a secret"},
		{"email", "  - email: 'Ops <ops@example.com>'", "p.yaml:3:12: notify #1: email \"Ops <ops@example.com>\": expected one e-mail address such as oncall@example.com"},
		{"secret of slack", "  - slack: ${s}\n    secret: k", "p.yaml:4:13: notify #1: secret signs webhook requests; a slack destination has none (a Slack URL that is a secret is written slack: ${NAME})"},
		{"secret name", "  - webhook: https://a.example\n    secret: 9k", "p.yaml:4:13: invalid notify secret \"9k\": expected letters, digits and '_', not starting with a digit"},
		{"event", "  - email: a@example.com\n    on: [failed, faild]", "p.yaml:4:18: notify #1: on: unknown event \"faild\": expected one of at_risk, missed, failed, recovered, repaired, succeeded, slo_breach; did you mean \"failed\"?"},
		{"unknown key", "  - email: a@example.com\n    events_on: [failed]", `p.yaml:4:5: unknown key "events_on" in notify`},
		{"alias key", "  - email: a@example.com\n    events: [failed]", `p.yaml:4:5: unknown key "events" in notify; did you mean "on"?`},
		{"not a list", "  email: a@example.com", "p.yaml:3:3: notify: expected a list of notifys, got a mapping"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := "name: p\nnotify:\n" + tt.notify + "\ntasks: [{id: a, run: b}]\n"
			_, err := Parse("p.yaml", []byte(src))
			if err == nil {
				t.Fatalf("no error for\n%s", src)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error\n  %v\nwant\n  %s", err, tt.want)
			}
		})
	}
	// alerts, a word other tools use, points at notify.
	_, err := Parse("p.yaml", []byte("name: p\nalerts: []\ntasks: [{id: a, run: b}]\n"))
	if err == nil || !strings.Contains(err.Error(), `unknown key "alerts" in pipeline; did you mean "notify"?`) {
		t.Errorf("alerts: %v", err)
	}
}

package spec_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/notify"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

// TestNotifyAgreesWithSender keeps the checker of pipeline files and the
// sender (internal/notify, which spec cannot import) in step: the same
// events, and the same destinations accepted.
func TestNotifyAgreesWithSender(t *testing.T) {
	src := "name: p\nnotify:\n  - email: a@example.com\n    on: [%s]\ntasks: [{id: a, run: b}]\n"
	for _, k := range notify.Kinds() {
		if _, err := spec.Parse("p.yaml", fmt.Appendf(nil, src, k)); err != nil {
			t.Errorf("event %s: %v", k, err)
		}
	}
	if _, err := spec.Parse("p.yaml", fmt.Appendf(nil, src, "finished")); err == nil {
		t.Error("an unknown event is accepted")
	}
	if !slices.Equal(notify.DefaultKinds(), []notify.Kind{notify.AtRisk, notify.Missed, notify.Failed, notify.Recovered}) {
		t.Errorf("the default events changed (%v): docs/pipeline-reference.md and the doc of on say at_risk, missed, failed, recovered", notify.DefaultKinds())
	}
	for _, d := range []notify.Destination{
		{Webhook: "https://a.example/x"}, {Webhook: "http://127.0.0.1:9/x?t=${tok}"}, {Slack: "${ops_slack}"},
		{Slack: "${base}/services/x"}, {Webhook: "ftp://a.example"}, {Webhook: "https:///x"}, {Slack: "${a-b}"},
		{Slack: "https://a.example/${tok"}, {Slack: "${a}${b}"}, {Webhook: "a.example/x"}, {Email: "a@example.com"},
		{Email: "A <a@example.com>"}, {Email: "a"}, {Webhook: "https://a.example", Secret: "k"}, {Slack: "${s}", Secret: "k"},
	} {
		yaml := fmt.Sprintf("name: p\nnotify:\n  - {webhook: %q, slack: %q, email: %q, secret: %q}\ntasks: [{id: a, run: b}]\n",
			d.Webhook, d.Slack, d.Email, d.Secret)
		yaml = stripEmpty(yaml)
		_, perr := spec.Parse("p.yaml", []byte(yaml))
		cerr := d.Check()
		if (perr == nil) != (cerr == nil) {
			t.Errorf("%+v: the checker says %v, the sender %v", d, perr, cerr)
		}
	}
}

// stripEmpty drops the keys given as "" from a flow mapping.
func stripEmpty(s string) string {
	for _, k := range []string{`webhook: "", `, `slack: "", `, `email: "", `, `, secret: ""`} {
		s = strings.ReplaceAll(s, k, "")
	}
	return s
}

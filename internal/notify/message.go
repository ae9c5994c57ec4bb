package notify

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Payload is what every destination is told about an event, and the JSON
// body a webhook receives. It is built once, when the event is published,
// and kept in the outbox, so a delivery retried after a restart says what
// was true when the event happened.
type Payload struct {
	Event    Kind   `json:"event"`
	Pipeline string `json:"pipeline"`
	// Run is the run's ID; 0 for an objective's breach no run caused.
	Run   int64  `json:"run"`
	State string `json:"state"`
	// Deadline and PredictedFinish are the run's, null when it has none.
	Deadline        *time.Time `json:"deadline"`
	PredictedFinish *time.Time `json:"predicted_finish"`
	Reason          string     `json:"reason"`
	// Objective names the breached objective of a slo_breach.
	Objective string `json:"objective,omitempty"`
	// URL leads back to the run in the API (the server's public_url).
	URL string    `json:"url"`
	At  time.Time `json:"at"`
}

// NewPayload describes ev; base is the server's public URL, which the
// run's link starts with ("" for none).
func NewPayload(ev Event, base string) Payload {
	p := Payload{
		Event: ev.Kind, Pipeline: ev.Pipeline, Run: ev.RunID, State: ev.State,
		Reason: ev.Reason, Objective: ev.Objective, At: ev.At.UTC(),
	}
	if !ev.Deadline.IsZero() {
		d := ev.Deadline
		p.Deadline = &d
	}
	if !ev.PredictedFinish.IsZero() {
		f := ev.PredictedFinish
		p.PredictedFinish = &f
	}
	if base != "" && ev.RunID != 0 {
		p.URL = RunURL(base, ev.RunID)
	}
	return p
}

// RunURL is the link to a run: its resource in the API of the server at
// base.
func RunURL(base string, run int64) string {
	return fmt.Sprintf("%s/api/v1/runs/%d", strings.TrimRight(base, "/"), run)
}

// Encode is the JSON body of p.
func (p Payload) Encode() ([]byte, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode %s event: %w", p.Event, err)
	}
	return b, nil
}

// DecodePayload reads a payload kept in the outbox.
func DecodePayload(b []byte) (Payload, error) {
	var p Payload
	if err := json.Unmarshal(b, &p); err != nil {
		return Payload{}, fmt.Errorf("decode event: %w", err)
	}
	return p, nil
}

// subject names the run or objective in a title: "nightly run 42".
func (p Payload) subject() string {
	switch {
	case p.Run != 0:
		return fmt.Sprintf("%s run %d", p.Pipeline, p.Run)
	case p.Pipeline != "":
		return p.Pipeline
	}
	return "tasuki"
}

// Title says in one line what happened, the way a person would say it:
// "nightly run 42 is at risk of missing its deadline 20:00 +09:00
// (predicted 20:07 +09:00)".
func (p Payload) Title() string {
	s := p.subject()
	switch p.Event {
	case AtRisk:
		t := s + " is at risk of missing its deadline"
		if p.Deadline != nil {
			t += " " + clock(*p.Deadline)
		}
		if p.PredictedFinish != nil {
			t += " (predicted finish " + clock(*p.PredictedFinish) + ")"
		}
		return t
	case Missed:
		if p.Deadline != nil {
			return s + " missed its deadline " + clock(*p.Deadline)
		}
		return s + " missed its deadline"
	case Failed:
		return s + " failed"
	case Recovered:
		return s + " recovered"
	case Repaired:
		return s + " was repaired: tasuki retried what failed once its data arrived"
	case Succeeded:
		return s + " succeeded"
	case SLOBreach:
		if p.Objective != "" {
			return fmt.Sprintf("objective %s of %s breached", p.Objective, p.Pipeline)
		}
		return "objective of " + p.Pipeline + " breached"
	}
	return fmt.Sprintf("%s: %s", s, p.Event)
}

// icon marks the title of chat messages by how bad the event is.
func (p Payload) icon() string {
	switch p.Event {
	case AtRisk:
		return ":warning:"
	case Missed, Failed, SLOBreach:
		return ":rotating_light:"
	case Repaired:
		return ":wrench:"
	case Recovered, Succeeded:
		return ":white_check_mark:"
	}
	return ":information_source:"
}

// clock shows a time as people read it in a message: to the minute, with
// its date and the offset of the zone it was given in.
func clock(t time.Time) string {
	return t.Format("2006-01-02 15:04 -07:00")
}

// Text is the plain text of a message: the title, why, the details and
// the link. E-mails are this text.
func (p Payload) Text() string {
	var b strings.Builder
	b.WriteString(p.Title())
	b.WriteString("\n\n")
	if p.Reason != "" {
		fmt.Fprintf(&b, "Why: %s\n\n", p.Reason)
	}
	fmt.Fprintf(&b, "Pipeline: %s\n", p.Pipeline)
	if p.Run != 0 {
		fmt.Fprintf(&b, "Run: %d\n", p.Run)
	}
	if p.Objective != "" {
		fmt.Fprintf(&b, "Objective: %s\n", p.Objective)
	}
	if p.State != "" {
		fmt.Fprintf(&b, "State: %s\n", p.State)
	}
	if p.Deadline != nil {
		fmt.Fprintf(&b, "Deadline: %s\n", clock(*p.Deadline))
	}
	if p.PredictedFinish != nil {
		fmt.Fprintf(&b, "Predicted finish: %s\n", clock(*p.PredictedFinish))
	}
	fmt.Fprintf(&b, "Event: %s at %s\n", p.Event, p.At.Format(time.RFC3339))
	if p.URL != "" {
		fmt.Fprintf(&b, "\n%s\n", p.URL)
	}
	return b.String()
}

// slackText is the message of a Slack incoming webhook, in Slack's mrkdwn:
// the title in bold, why, and a link to the run.
func (p Payload) slackText() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s *%s*", p.icon(), slackEscape(p.Title()))
	if p.Reason != "" {
		fmt.Fprintf(&b, "\nWhy: %s", slackEscape(p.Reason))
	}
	if p.URL != "" {
		label := "Open in tasuki"
		if p.Run != 0 {
			label = fmt.Sprintf("Run %d", p.Run)
		}
		fmt.Fprintf(&b, "\n<%s|%s>", p.URL, label)
	}
	return b.String()
}

// slackEscape escapes the three characters Slack gives a meaning in text.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// emailSubject is the subject line of an e-mail: "[tasuki] nightly run 42
// failed", on one line.
func (p Payload) emailSubject() string {
	s := "[tasuki] " + p.Title()
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

package timeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Text bounds for the words of a record.
const (
	maxMessageRunes = 400 // a message in a record's words
	maxArrivedRunes = 200 // what a wait saw arrive, in its success's words
	maxDataRunes    = 200 // the data of a record of an unknown kind
)

// words says in plain text what a record means, without the task (which
// has a column of its own): "attempt 2 failed after 1.5s (exit 3): ...".
// Known kinds get their own wording; any other kind is shown by name with
// its message and data, so records written by newer parts of tasuki are
// never lost.
func (t *Timeline) words(e store.Event) string {
	msg := cutRunes(oneLine(e.Message), maxMessageRunes)
	withMsg := func(s string) string {
		if msg == "" {
			return s
		}
		return s + ": " + msg
	}
	wait := e.Task >= 0 && t.scan.waits[e.Task]
	took := ""
	if a, ok := t.attemptOf(e); ok {
		if d, ok := attemptDuration(a); ok {
			took = " after " + Duration(d)
		}
	}
	var s string
	switch e.Kind {
	case store.RecRunCreated:
		s = "run created (" + nonEmpty(t.run.Trigger, "manual")
		if e.Actor != "" {
			s += ", by " + e.Actor
		}
		s += ")"
	case engine.EvRunStarted:
		s = "run started"
	case engine.RecTaskReady:
		s = "ready to start"
	case engine.EvTaskStarted:
		s = fmt.Sprintf("attempt %d started", e.Attempt)
		if a, ok := t.attemptOf(e); ok && a.Worker != "" {
			s += " on " + a.Worker
		}
	case engine.RecTaskWaiting:
		s = fmt.Sprintf("attempt %d: waiting for its condition", e.Attempt)
	case engine.EvWaitPoked:
		s = "check saw: " + nonEmpty(msg, "nothing to report")
	case engine.EvTaskSucceeded:
		if wait {
			s = withMsg("condition met" + took)
			if res := t.arrived(e.Task, e.Attempt); res != nil {
				s += "; arrived: " + cutRunes(compactJSON(res), maxArrivedRunes)
			}
		} else {
			s = withMsg(fmt.Sprintf("attempt %d succeeded%s", e.Attempt, took))
		}
	case engine.EvTaskFailed:
		if e.ExitCode != nil && msg == fmt.Sprintf("exit status %d", *e.ExitCode) {
			msg = "" // said by the exit code
		}
		s = withMsg(fmt.Sprintf("attempt %d failed%s%s", e.Attempt, took, exitText(e.ExitCode)))
	case engine.EvTaskTimedOut:
		if wait {
			s = withMsg("wait timed out" + took)
		} else {
			s = withMsg(fmt.Sprintf("attempt %d timed out%s%s", e.Attempt, took, exitText(e.ExitCode)))
		}
	case engine.EvTaskLost:
		s = withMsg(fmt.Sprintf("attempt %d lost%s", e.Attempt, took))
	case engine.EvTaskPreempted:
		s = withMsg(fmt.Sprintf("attempt %d handed back (preempted; not charged to its retries)", e.Attempt))
	case engine.EvTaskCancelled:
		s = withMsg(fmt.Sprintf("attempt %d cancelled", e.Attempt))
	case engine.RecRetryScheduled:
		s = withMsg("retry scheduled")
	case engine.EvRetryDue:
		s = "retry due"
	case engine.RecTaskUpstreamFailed:
		s = withMsg("not run")
	case engine.EvCancel:
		s = withMsg("cancel requested" + byText(e.Actor))
	case engine.EvRetryFailed:
		s = withMsg("retry of the failed tasks requested" + byText(e.Actor))
	case engine.EvMarkSucceeded:
		s = withMsg("marked succeeded" + byText(e.Actor))
	case engine.EvMarkSkipped:
		s = withMsg("marked skipped" + byText(e.Actor))
	case engine.RecRunFinished:
		s = "run finished: " + nonEmpty(msg, "ended")
	case KindDeadlineOnTrack:
		s = withMsg("deadline on track")
	case KindDeadlineAtRisk:
		s = withMsg("deadline at risk")
	case KindDeadlineMissed:
		s = withMsg("deadline missed")
	case KindDeadlineMet:
		s = withMsg("deadline met")
	case KindAlertSent:
		s = withMsg("alert sent")
	case KindAlertFailed:
		s = withMsg("alert not delivered")
	case KindRepairWatching:
		s = "repair: " + nonEmpty(msg, "watching for the missing data")
	case KindRepairStarted:
		s = "repair: " + nonEmpty(msg, "the data arrived; the failed part runs again")
	case KindRepairGaveUp:
		s = withMsg("repair gave up")
	default:
		s = withMsg(strings.ReplaceAll(string(e.Kind), "_", " "))
		if len(e.Data) > 0 {
			s += " [" + cutRunes(compactJSON(e.Data), maxDataRunes) + "]"
		}
	}
	if e.Actor != "" && !isOperatorAction(e.Kind) && e.Kind != store.RecRunCreated {
		s += " (by " + e.Actor + ")"
	}
	return s
}

// actionWord names an operator action in a sentence.
func actionWord(kind engine.EventKind) string {
	switch kind {
	case engine.EvCancel:
		return "cancel"
	case engine.EvRetryFailed:
		return "retry of the failed tasks"
	case engine.EvMarkSucceeded:
		return "marked succeeded"
	case engine.EvMarkSkipped:
		return "marked skipped"
	}
	return strings.ReplaceAll(string(kind), "_", " ")
}

// alarming reports whether a record is bad news, which the Markdown shows
// in bold.
func alarming(e store.Event) bool {
	switch e.Kind {
	case engine.EvTaskFailed, engine.EvTaskTimedOut, engine.EvTaskLost,
		KindDeadlineAtRisk, KindDeadlineMissed, KindAlertFailed, KindRepairGaveUp:
		return true
	case engine.RecRunFinished:
		return e.Message != string(engine.RunSucceeded)
	}
	return false
}

// key reports whether a record is listed even past the Markdown's row
// budget: what a review must not miss.
func key(e store.Event) bool {
	switch e.Kind {
	case engine.EvRunStarted, engine.RecTaskReady, engine.EvTaskStarted, engine.RecTaskWaiting,
		engine.EvWaitPoked, engine.EvTaskSucceeded, engine.EvRetryDue, engine.RecRetryScheduled,
		engine.RecTaskUpstreamFailed, engine.EvTaskPreempted, engine.EvTaskCancelled, store.RecRunCreated,
		KindDeadlineOnTrack, KindAlertSent:
		return false
	}
	return true // failures, operator actions, risks and misses, repairs, the end, and unknown kinds
}

// routine reports whether a record is one of those a large fan-out writes
// by the thousand, which the Markdown counts instead of listing when many
// come in a row. A wait's success is not: it says what arrived.
func (t *Timeline) routine(e store.Event) bool {
	switch e.Kind {
	case engine.RecTaskReady, engine.EvTaskStarted, engine.RecTaskWaiting, engine.EvRetryDue:
		return true
	case engine.EvTaskSucceeded:
		return !t.scan.waits[e.Task]
	}
	return false
}

// Duration writes a duration the way the timeline does: to the
// millisecond under a second, to a tenth of a second under a minute, to
// the second above, without zero units at the end ("350ms", "1.5s",
// "1m32s", "2h", "26h3m").
func Duration(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	switch {
	case d < time.Second:
		d = d.Round(time.Millisecond)
	case d < time.Minute:
		d = d.Round(100 * time.Millisecond)
	default:
		d = d.Round(time.Second)
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	if neg && d != 0 {
		s = "-" + s
	}
	return s
}

func exitText(code *int) string {
	if code == nil {
		return ""
	}
	return fmt.Sprintf(" (exit %d)", *code)
}

func byText(actor string) string {
	if actor == "" {
		return ""
	}
	return " by " + actor
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// oneLine joins the lines of a message with " / " so it fits a table row.
func oneLine(s string) string {
	s = strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n"))
	if !strings.ContainsAny(s, "\n\r") {
		return s
	}
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return strings.Join(parts, " / ")
}

// cutRunes cuts s to at most n characters, marking the cut with "…".
func cutRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, count := 0, 0
	for i = range s {
		if count == n-1 {
			break
		}
		count++
	}
	return s[:i] + "…"
}

// compactJSON writes a JSON value on one line; what is not valid JSON is
// shown as text.
func compactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return oneLine(string(raw))
	}
	return b.String()
}

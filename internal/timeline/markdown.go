package timeline

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// collapseAt is the longest stretch of routine records listed one by one
// in a run with more records than the row budget; a longer one becomes a
// single counted line. A run that fits the budget is listed whole.
const collapseAt = 8

// maxAttemptRows bounds the Markdown's table of attempts; past it, only the
// attempts that did not succeed and those of tasks tried more than once
// are listed.
const maxAttemptRows = 200

// taskStateOrder is the order tasks are counted by state in the summary:
// how they ended first, then where the others stand.
var taskStateOrder = []engine.TaskState{
	engine.TaskSucceeded, engine.TaskFailed, engine.TaskTimedOut, engine.TaskUpstreamFailed, engine.TaskCancelled,
	engine.TaskSkipped, engine.TaskRunning, engine.TaskWaiting, engine.TaskRetryWait, engine.TaskReady, engine.TaskPending,
}

// WriteMarkdown writes the timeline as a Markdown document meant to be
// pasted into a review: a title and the run's facts, a summary, the table
// of events, the attempts, and the last lines of each failed attempt's log
// in fenced blocks. The records are read from the store as they are
// written.
func (t *Timeline) WriteMarkdown(ctx context.Context, w io.Writer) error {
	m := &markdown{t: t, w: bufio.NewWriterSize(w, 32<<10), loc: t.opts.Location, origin: t.origin(), elided: map[engine.EventKind]int64{}}
	m.header()
	m.summary()
	if err := m.events(ctx); err != nil {
		return err
	}
	m.attempts()
	if err := m.logs(ctx); err != nil {
		return err
	}
	return m.w.Flush()
}

// markdown is the state of one Markdown export.
type markdown struct {
	t      *Timeline
	w      *bufio.Writer
	loc    *time.Location
	origin time.Time

	lastDate string // the date of the latest time shown in the table
	rows     int    // event rows written
	elided   map[engine.EventKind]int64
	skipped  int64 // records not listed (elided counts them by kind)
	collapse bool  // the run has more records than the row budget: count routine stretches
	run      stretch
}

// row is a record with the time since the one before it.
type row struct {
	e   store.Event
	gap time.Duration
}

// stretch is a run of consecutive routine records not yet written: kept
// whole while short, counted once it is longer than collapseAt.
type stretch struct {
	rows  []row
	n     int64
	first row
	last  time.Time
	kinds map[engine.EventKind]int64
	tasks []string // the first few tasks named
}

func (m *markdown) printf(format string, args ...any) { fmt.Fprintf(m.w, format, args...) }

// when writes an instant in the export's time zone, to the second, with
// the zone's name.
func (m *markdown) when(t time.Time) string {
	return t.In(m.loc).Format("2006-01-02 15:04:05 MST")
}

func (m *markdown) header() {
	t, r := m.t, m.t.run
	m.printf("# Run %d of %s: %s\n\n", r.ID, escape(r.Pipeline), outcomeWord(r))
	m.printf("- **Pipeline:** %s\n", escape(r.Pipeline))
	who := ""
	if t.scan.creator != "" {
		who = ", by " + escape(t.scan.creator)
	}
	bf := ""
	if r.BackfillID != 0 {
		bf = fmt.Sprintf(", backfill %d", r.BackfillID)
	}
	m.printf("- **Run:** %d (trigger %s%s%s)\n", r.ID, escape(nonEmpty(r.Trigger, "manual")), who, bf)
	if !r.IntervalStart.IsZero() || !r.IntervalEnd.IsZero() {
		m.printf("- **Interval:** %s to %s\n", m.when(r.IntervalStart), m.when(r.IntervalEnd))
	} else {
		m.printf("- **Interval:** none\n")
	}
	m.printf("- **Created:** %s\n", m.when(r.CreatedAt))
	if !r.StartedAt.IsZero() {
		m.printf("- **Started:** %s\n", m.when(r.StartedAt))
	}
	if !r.FinishedAt.IsZero() {
		m.printf("- **Finished:** %s\n", m.when(r.FinishedAt))
	}
	m.printf("- **Outcome:** %s\n", m.outcome())
	m.printf("- **Deadline:** %s\n\n", m.deadline())
}

// outcomeWord is the run's state in the title.
func outcomeWord(r store.Run) string {
	if r.Cancelling && !r.State.Terminal() {
		return string(r.State) + " (cancelling)"
	}
	return string(r.State)
}

func (m *markdown) outcome() string {
	r := m.t.run
	d, ok := m.t.runDuration()
	switch {
	case r.State.Terminal() && ok:
		return fmt.Sprintf("**%s**, %s after it started", r.State, Duration(d))
	case r.State.Terminal():
		return fmt.Sprintf("**%s** without starting", r.State)
	case ok:
		return fmt.Sprintf("%s for %s as of %s (not finished)", r.State, Duration(d), m.when(m.t.opts.Now()))
	}
	return fmt.Sprintf("%s as of %s (not started)", r.State, m.when(m.t.opts.Now()))
}

func (m *markdown) deadline() string {
	d := m.t.deadlineJSON()
	if d == nil {
		return "none"
	}
	s := "time not recorded"
	if d.Deadline != nil {
		s = m.when(*d.Deadline)
	}
	switch d.State {
	case "":
		s += ", not judged yet"
	case "at_risk", "missed":
		s += ", **" + strings.ReplaceAll(d.State, "_", " ") + "**"
	default:
		s += ", " + strings.ReplaceAll(d.State, "_", " ")
	}
	if d.Since != nil {
		s += " as of " + m.when(*d.Since)
	}
	if d.Message != "" {
		s += ": " + escape(cutRunes(oneLine(d.Message), maxMessageRunes))
	}
	if d.PredictedFinish != nil {
		s += "; predicted finish " + m.when(*d.PredictedFinish)
	}
	if len(d.CriticalPath) > 0 {
		path := make([]string, len(d.CriticalPath))
		for i, id := range d.CriticalPath {
			path[i] = code(id)
		}
		s += "; critical path " + strings.Join(path, " → ")
	}
	if d.FirstAtRisk != nil {
		s += "; first at risk " + m.when(*d.FirstAtRisk)
	}
	return s
}

func (m *markdown) summary() {
	s := m.t.summary()
	m.printf("## Summary\n\n")
	var states []string
	for _, st := range taskStateOrder {
		if n := s.TaskStates[st]; n > 0 {
			states = append(states, fmt.Sprintf("%d %s", n, strings.ReplaceAll(string(st), "_", " ")))
		}
	}
	m.printf("- **Tasks:** %d", s.Tasks)
	if len(states) > 0 {
		m.printf(": %s", strings.Join(states, ", "))
	}
	m.printf(".\n")
	m.printf("- **Attempts:** %d", s.Attempts)
	if s.FailedAttempts > 0 {
		m.printf(", %d of them failed (%s)", s.FailedAttempts, m.failedAttempts())
	}
	m.printf("; %s scheduled by retry policies.\n", plural(s.Retries, "retry", "retries"))
	if len(s.Failed) > 0 {
		m.printf("- **Failed:**")
		for i, f := range s.Failed {
			sep := ";"
			if i == 0 {
				sep = ""
			}
			m.printf("%s %s %s on attempt %d%s", sep, code(f.Task), strings.ReplaceAll(string(f.State), "_", " "), f.Attempt, exitText(f.ExitCode))
			if f.Message != "" {
				m.printf(": %s", escape(cutRunes(oneLine(f.Message), maxMessageRunes)))
			}
		}
		if s.FailedOmitted > 0 {
			m.printf("; and %d more", s.FailedOmitted)
		}
		m.printf(".\n")
	}
	if len(s.OperatorActions) == 0 {
		m.printf("- **Operator actions:** none.\n")
	} else {
		m.printf("- **Operator actions:**")
		for i, a := range s.OperatorActions {
			sep := ";"
			if i == 0 {
				sep = ""
			}
			m.printf("%s %s", sep, actionWord(a.Kind))
			if a.Task != "" {
				m.printf(" %s", code(a.Task))
			}
			if a.Actor != "" {
				m.printf(" by %s", escape(a.Actor))
			}
			m.printf(" at %s", m.when(a.Time))
		}
		if s.OperatorActionsOmitted > 0 {
			m.printf("; and %d more", s.OperatorActionsOmitted)
		}
		m.printf(".\n")
	}
	switch {
	case s.AlertsSent == 0 && s.AlertsFailed == 0:
		m.printf("- **Alerts:** none recorded.\n")
	case s.AlertsFailed == 0:
		m.printf("- **Alerts:** %d sent.\n", s.AlertsSent)
	default:
		m.printf("- **Alerts:** %d sent, **%d not delivered**.\n", s.AlertsSent, s.AlertsFailed)
	}
	m.printf("- **Records:** %d in the run's timeline.\n\n", s.Events)
}

// maxNamed is how many failed attempts the summary names.
const maxNamed = 10

// failedAttempts names the first failed attempts: "`load` 1, `load` 2".
func (m *markdown) failedAttempts() string {
	var names []string
	n := 0
	for _, a := range m.t.attempts {
		if !failedAttempt(a) {
			continue
		}
		if n++; n <= maxNamed {
			names = append(names, fmt.Sprintf("%s #%d", code(m.t.taskID(a.Index)), a.Attempt))
		}
	}
	if n > maxNamed {
		names = append(names, fmt.Sprintf("and %d more", n-maxNamed))
	}
	return strings.Join(names, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func (m *markdown) events(ctx context.Context) error {
	m.printf("## Events\n\n")
	if m.t.scan.events == 0 {
		m.printf("The run has no records.\n\n")
		return nil
	}
	zone := m.origin.In(m.loc).Format("MST")
	m.printf("Times are %s. *Since start* counts from the run's start, *gap* from the record before.\n\n", zone)
	m.printf("| Time | Since start | Gap | Task | What happened |\n|---|--:|--:|---|---|\n")
	m.collapse = m.t.scan.events > int64(m.t.opts.MaxRows)
	err := m.t.records(ctx, func(e store.Event, gap time.Duration) error {
		r := row{e, gap}
		if m.collapse && m.t.routine(e) {
			m.add(r)
			return nil
		}
		m.flushStretch()
		m.record(r)
		return nil
	})
	if err != nil {
		return err
	}
	m.flushStretch()
	m.printf("\n")
	if m.skipped > 0 {
		kinds := make([]engine.EventKind, 0, len(m.elided))
		for k := range m.elided {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		parts := make([]string, len(kinds))
		for i, k := range kinds {
			parts[i] = fmt.Sprintf("%d %s", m.elided[k], escape(string(k)))
		}
		m.printf("%d records are not listed (%s): past %d rows only failures, operator actions, deadlines, alerts, repairs and the end are. The JSON export (`--format json`) has them all.\n\n",
			m.skipped, strings.Join(parts, ", "), m.t.opts.MaxRows)
	}
	return nil
}

// add puts a routine record into the current stretch.
func (m *markdown) add(r row) {
	s := &m.run
	if s.n == 0 {
		s.first, s.kinds = r, map[engine.EventKind]int64{}
	}
	s.n++
	s.last = r.e.Time
	s.kinds[r.e.Kind]++
	if r.e.TaskID != "" && len(s.tasks) < 3 && !slices.Contains(s.tasks, r.e.TaskID) {
		s.tasks = append(s.tasks, r.e.TaskID)
	}
	if s.n <= collapseAt+1 {
		s.rows = append(s.rows, r)
	}
}

// flushStretch writes the current stretch: its records one by one when it
// is short, one counted line otherwise.
func (m *markdown) flushStretch() {
	s := m.run
	m.run = stretch{rows: m.run.rows[:0]}
	if s.n == 0 {
		return
	}
	if s.n <= collapseAt {
		for _, r := range s.rows {
			m.record(r)
		}
		return
	}
	if m.rows >= m.t.opts.MaxRows {
		for k, n := range s.kinds {
			m.elided[k] += n
		}
		m.skipped += s.n
		return
	}
	var parts []string
	for _, k := range []engine.EventKind{engine.RecTaskReady, engine.RecTaskWaiting, engine.EvTaskStarted, engine.EvTaskSucceeded, engine.EvRetryDue} {
		if n := s.kinds[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, routineWord(k, n)))
		}
	}
	text := fmt.Sprintf("%d routine records over %s: %s", s.n, Duration(s.last.Sub(s.first.e.Time)), strings.Join(parts, ", "))
	if len(s.tasks) > 0 {
		text += " (" + strings.Join(s.tasks, ", ") + ", …)"
	}
	m.line(s.first, "", "*"+escape(text)+"*")
}

// routineWord says what n routine records of kind k were.
func routineWord(k engine.EventKind, n int64) string {
	switch {
	case k == engine.RecTaskReady:
		return "ready"
	case k == engine.RecTaskWaiting && n == 1:
		return "wait begun"
	case k == engine.RecTaskWaiting:
		return "waits begun"
	case k == engine.EvTaskStarted:
		return "started"
	case k == engine.EvTaskSucceeded:
		return "succeeded"
	case k == engine.EvRetryDue && n == 1:
		return "retry due"
	case k == engine.EvRetryDue:
		return "retries due"
	}
	return string(k)
}

// record writes one record as a row, unless the row budget says to count
// it instead.
func (m *markdown) record(r row) {
	limit := m.t.opts.MaxRows
	if m.rows >= limit && (!key(r.e) || m.rows >= 2*limit) {
		m.elided[r.e.Kind]++
		m.skipped++
		return
	}
	text := escape(m.t.words(r.e))
	if alarming(r.e) {
		text = "**" + text + "**"
	}
	task := ""
	if r.e.TaskID != "" {
		task = code(r.e.TaskID)
	}
	m.line(r, task, text)
}

// line writes one row of the table of events.
func (m *markdown) line(r row, task, text string) {
	m.rows++
	at := r.e.Time.In(m.loc)
	stamp := at.Format("15:04:05.000")
	if date := at.Format("2006-01-02"); date != m.lastDate {
		stamp, m.lastDate = date+" "+stamp, date
	}
	gap := "" // none for the first record, and for one at the same instant
	if d := Duration(r.gap); d != "0s" {
		gap = "+" + d
	}
	m.printf("| %s | %s | %s | %s | %s |\n", stamp, Duration(r.e.Time.Sub(m.origin)), gap, task, text)
}

func (m *markdown) attempts() {
	t := m.t
	if len(t.attempts) == 0 {
		return
	}
	shown := t.attempts
	if len(shown) > maxAttemptRows {
		tries := map[int]int{}
		for _, a := range t.attempts {
			tries[a.Index]++
		}
		shown = nil
		for _, a := range t.attempts {
			if len(shown) == maxAttemptRows {
				break
			}
			if a.Outcome != store.OutcomeSucceeded || tries[a.Index] > 1 {
				shown = append(shown, a)
			}
		}
	}
	m.printf("## Attempts\n\n")
	if len(shown) < len(t.attempts) {
		m.printf("%d of %d attempts: those that did not succeed and those of tasks tried more than once. The JSON export has them all.\n\n", len(shown), len(t.attempts))
	}
	m.printf("| Task | Attempt | Worker | Started | Duration | Outcome | Exit | Message |\n|---|--:|---|---|--:|---|--:|---|\n")
	for _, a := range shown {
		n := strconv.Itoa(a.Attempt)
		if t.scan.waits[a.Index] {
			n += " (wait)"
		}
		dur := ""
		if d, ok := attemptDuration(a); ok {
			dur = Duration(d)
		}
		outcome := string(a.Outcome)
		switch {
		case a.Outcome == "":
			outcome = "running"
		case failedAttempt(a):
			outcome = "**" + outcome + "**"
		}
		exit := ""
		if a.ExitCode != nil {
			exit = strconv.Itoa(*a.ExitCode)
		}
		m.printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", code(t.taskID(a.Index)), n, escape(a.Worker),
			a.StartedAt.In(m.loc).Format("15:04:05.000"), dur, outcome, exit, escape(cutRunes(oneLine(a.Message), maxMessageRunes)))
	}
	m.printf("\n")
}

func (m *markdown) logs(ctx context.Context) error {
	t := m.t
	tails := t.tailed()
	if len(tails) == 0 {
		return nil
	}
	m.printf("## Logs of failed attempts\n\n")
	for _, a := range t.attempts {
		if !tails[attemptKey{a.Index, a.Attempt}] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		head := fmt.Sprintf("### %s attempt %d: %s", code(t.taskID(a.Index)), a.Attempt, strings.ReplaceAll(string(a.Outcome), "_", " "))
		if a.ExitCode != nil {
			head += fmt.Sprintf(" (exit %d)", *a.ExitCode)
		}
		if d, ok := attemptDuration(a); ok {
			head += " after " + Duration(d)
		}
		m.printf("%s\n\n", head)
		tail := t.logTail(ctx, a)
		switch {
		case tail.Error != "":
			m.printf("*%s.*\n\n", escape(tail.Error))
			continue
		case len(tail.Lines) == 0:
			m.printf("*The attempt wrote nothing to its log.*\n\n")
			continue
		case tail.Truncated:
			m.printf("Its last %s (earlier lines not shown):\n\n", plural(len(tail.Lines), "line", "lines"))
		default:
			m.printf("Its whole log:\n\n")
		}
		body := strings.Join(tail.Lines, "\n")
		fence := strings.Repeat("`", max(3, longestRun(body, '`')+1))
		m.printf("%stext\n%s\n%s\n\n", fence, body, fence)
	}
	if n := t.tailCandidates() - len(tails); n > 0 {
		m.printf("The logs of %d more failed attempts are not shown: `tasuki logs RUN TASK --attempt N` prints one.\n\n", n)
	}
	return nil
}

// longestRun is the length of the longest run of c in s.
func longestRun(s string, c byte) int {
	best, cur := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			cur++
			best = max(best, cur)
		} else {
			cur = 0
		}
	}
	return best
}

// escape makes text safe in Markdown prose and table cells: characters
// that would start emphasis, code, links or HTML, or end a cell, are
// backslash-escaped, so a message shows as it was written.
func escape(s string) string {
	if !strings.ContainsAny(s, "\\`*_[]<>|~") {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\\`*_[]<>|~", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// code writes an identifier (a task id) as inline code, which needs no
// escaping but of the cell separator.
func code(s string) string {
	fence := strings.Repeat("`", longestRun(s, '`')+1)
	pad := ""
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		pad = " "
	}
	return fence + pad + strings.ReplaceAll(s, "|", "\\|") + pad + fence
}

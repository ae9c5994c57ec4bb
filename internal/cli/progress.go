package cli

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// compactAbove is the task count above which "auto" progress switches from a
// line per event to a compact progress line.
const compactAbove = 40

// progress prints a run's progress. In "tasks" mode every start, finish and
// retry is a line; in "compact" mode a progress line is refreshed (in place on
// a terminal, every few seconds otherwise) and only failures get lines.
type progress struct {
	w       io.Writer
	quiet   bool
	mode    string
	tty     bool
	started time.Time

	mu       sync.Mutex
	last     runner.Progress
	lastLine time.Time
	width    int
}

func newProgress(w io.Writer, ef *execFlags) *progress {
	p := &progress{w: w, quiet: ef.quiet, mode: ef.progress, started: time.Now()}
	if f, ok := w.(*os.File); ok {
		p.tty = isatty.IsTerminal(f.Fd())
	}
	return p
}

func (p *progress) observe(pr runner.Progress) {
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = pr
	compact := p.mode == "compact" || (p.mode != "tasks" && pr.Run.TaskCount > compactAbove)
	for _, rec := range pr.Records {
		if rec.Task < 0 {
			continue
		}
		if line := describe(rec, pr); line != "" && (!compact || important(rec.Kind)) {
			p.clearLine()
			fmt.Fprintf(p.w, "%s %s\n", stamp(rec.Time), line)
		}
	}
	if compact {
		interval := 2 * time.Second
		if p.tty {
			interval = 200 * time.Millisecond
		}
		if time.Since(p.lastLine) >= interval || pr.Run.State.Terminal() {
			p.printLine(pr)
		}
	}
}

// important reports whether compact mode still prints a record as a line.
func important(k engine.EventKind) bool {
	switch k {
	case engine.EvTaskFailed, engine.EvTaskTimedOut, engine.EvTaskLost, engine.RecRetryScheduled:
		return true
	}
	return false
}

func (p *progress) clearLine() {
	if p.tty && p.width > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.width))
		p.width = 0
	}
}

func (p *progress) printLine(pr runner.Progress) {
	c := pr.Counts
	done := c[engine.TaskSucceeded] + c[engine.TaskSkipped]
	bad := c[engine.TaskFailed] + c[engine.TaskTimedOut] + c[engine.TaskUpstreamFailed] + c[engine.TaskCancelled]
	line := fmt.Sprintf("[%s] %d/%d done · %d running · %d ready · %d retrying · %d failed",
		time.Since(p.started).Round(100*time.Millisecond), done, pr.Run.TaskCount,
		c[engine.TaskRunning], c[engine.TaskReady], c[engine.TaskRetryWait], bad)
	if n := c[engine.TaskWaiting]; n > 0 {
		line += fmt.Sprintf(" · %d waiting for data", n)
	}
	p.lastLine = time.Now()
	if p.tty {
		p.clearLine()
		fmt.Fprint(p.w, line)
		p.width = len(line)
		return
	}
	fmt.Fprintln(p.w, line)
}

func (p *progress) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.width > 0 {
		fmt.Fprintln(p.w)
		p.width = 0
	}
}

func stamp(t time.Time) string { return t.Local().Format("15:04:05") }

// describe renders one timeline record for a person.
func describe(rec engine.Record, pr runner.Progress) string {
	id := pr.TaskID(rec.Task)
	t := pr.Task(rec.Task)
	switch rec.Kind {
	case engine.EvTaskStarted:
		if rec.Attempt > 1 {
			return fmt.Sprintf("▶ %s started (attempt %d)", id, rec.Attempt)
		}
		return fmt.Sprintf("▶ %s started", id)
	case engine.EvTaskSucceeded:
		return fmt.Sprintf("✓ %s succeeded in %s", id, taskDuration(t))
	case engine.EvTaskFailed:
		return fmt.Sprintf("✗ %s failed: %s (attempt %d)", id, rec.Message, rec.Attempt)
	case engine.EvTaskTimedOut:
		return fmt.Sprintf("⏱ %s %s (attempt %d)", id, rec.Message, rec.Attempt)
	case engine.EvTaskLost:
		return fmt.Sprintf("? %s attempt %d lost: %s", id, rec.Attempt, rec.Message)
	case engine.RecRetryScheduled:
		return fmt.Sprintf("↻ %s will retry: %s", id, rec.Message)
	case engine.RecTaskUpstreamFailed:
		return fmt.Sprintf("⊘ %s not run: %s", id, rec.Message)
	case engine.EvTaskCancelled:
		return fmt.Sprintf("■ %s cancelled", id)
	}
	return ""
}

func taskDuration(t engine.Task) string {
	if t.StartedAt.IsZero() {
		return "-"
	}
	end := t.FinishedAt
	if end.IsZero() {
		end = time.Now()
	}
	return fmtDuration(end.Sub(t.StartedAt))
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// summaryRows is how many task rows the summary prints before it only counts.
const summaryRows = 40

// printSummary prints the end of a run: a table of tasks (or, for big runs,
// counts by state and the tasks that did not succeed), then one line.
func printSummary(w io.Writer, run store.Run, tasks []store.TaskRow, v view) {
	rows := tasks
	if len(tasks) > summaryRows {
		counts := map[engine.TaskState]int{}
		rows = nil
		for _, t := range tasks {
			counts[t.State]++
			if (!t.State.Satisfies() || v.under[t.TaskID] != nil) && len(rows) < 20 {
				rows = append(rows, t)
			}
		}
		states := make([]string, 0, len(counts))
		for s, n := range counts {
			states = append(states, fmt.Sprintf("%s %d", s, n))
		}
		sort.Strings(states)
		fmt.Fprintf(w, "tasks: %s\n", strings.Join(states, ", "))
	}
	if len(rows) > 0 {
		lines := make([]taskLine, len(rows))
		for i, t := range rows {
			exit := "-"
			if t.ExitCode != nil {
				exit = fmt.Sprint(*t.ExitCode)
			}
			lines[i] = taskLine{t.TaskID, string(t.State), fmt.Sprint(t.Attempt), taskDuration(t.Task), exit, t.Message}
		}
		v.printTasks(w, lines)
	}
	dur := "-"
	if !run.StartedAt.IsZero() && !run.FinishedAt.IsZero() {
		dur = fmtDuration(run.FinishedAt.Sub(run.StartedAt))
	}
	fmt.Fprintf(w, "run %d of %s %s in %s\n", run.ID, run.Pipeline, run.State, dur)
}

func truncate(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

package cli

// How runs and their tasks are printed for a person: times in the
// pipeline's time zone with the zone named, and task messages never cut.

import (
	"bytes"
	"context"
	"io"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mattn/go-isatty"
	"golang.org/x/sys/unix"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// view is how a run is printed: in its pipeline's time zone, and, on a
// terminal, with task messages wrapped to its width. Off a terminal (a
// pipe, a file, a CI log) messages are printed whole on their task's line,
// so nothing a failure said is lost to a column width.
type view struct {
	loc   *time.Location
	width int // the terminal's columns; 0 when not printing to a terminal
	// under holds the lines printed under a task's row, by task id: a map
	// task's counts and first failed items (see mapUnder).
	under map[string][]string
}

// timeLayout names the zone: "2026-11-22 02:30:00 JST".
const timeLayout = "2006-01-02 15:04:05 MST"

// at formats a time in the view's zone.
func (v view) at(t time.Time) string {
	loc := v.loc
	if loc == nil {
		loc = time.Local
	}
	return t.In(loc).Format(timeLayout)
}

// terminalWidth is the width of w when it is a terminal, else 0.
func terminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok || !isatty.IsTerminal(f.Fd()) {
		return 0
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return 80
	}
	return int(ws.Col)
}

// zoneOf is the time zone a pipeline's times are shown in: its schedule's,
// else the zone of this machine.
func zoneOf(name string) *time.Location {
	if name != "" {
		if loc, err := time.LoadLocation(name); err == nil {
			return loc
		}
	}
	return time.Local
}

// layout is the view of a local run: the zone comes from the pipeline
// version the run executes, and under its map tasks go their counts and
// first failed items.
func (a *app) layout(ctx context.Context, l *local, run store.Run) view {
	pv, err := l.store.PipelineVersion(ctx, run.VersionID)
	if err != nil {
		return a.layoutOf(ctx, l, run, nil)
	}
	p, err := spec.Parse(pv.File, pv.Source)
	if err != nil {
		p = nil
	}
	return a.layoutOf(ctx, l, run, p)
}

// layoutOf is layout with the run's pipeline already parsed (nil when it
// could not be read): 'tasuki run' has it from its runner, and a pipeline
// of 10,000 tasks takes a tenth of a second to parse again.
func (a *app) layoutOf(ctx context.Context, l *local, run store.Run, p *spec.Pipeline) view {
	v := view{loc: time.Local, width: terminalWidth(a.io.Out)}
	if p == nil {
		return v
	}
	if p.Schedule != nil {
		v.loc = zoneOf(p.Schedule.Timezone)
	}
	if slices.ContainsFunc(p.Tasks, func(t spec.Task) bool { return t.Map != nil }) {
		if tasks, err := l.store.Tasks(ctx, run.ID); err == nil {
			v.under = localUnder(ctx, l.store, run, tasks, p)
		}
	}
	return v
}

// runView is a local run with its tasks in the API's JSON shape, so that
// -o json prints the same document with or without a server.
func runView(run store.Run, tasks []store.TaskRow) api.Run {
	v := api.NewRun(run)
	v.Tasks = make([]api.Task, len(tasks))
	for i, t := range tasks {
		v.Tasks[i] = api.NewTask(t)
	}
	return v
}

// taskLine is one task as the task table prints it.
type taskLine struct{ id, state, attempts, duration, exit, message string }

// minMessageWidth is the narrowest the message column gets on a terminal.
const minMessageWidth = 24

// printTasks prints the task table. On a terminal a message wraps within
// the columns left; off one it stays whole, its line breaks shown as ⏎.
// The lines v.under holds for a task go right under its row, from the
// state column on, without widening any column.
func (v view) printTasks(w io.Writer, rows []taskLine) {
	var buf bytes.Buffer
	t := newTable(&buf, "TASK", "STATE", "ATTEMPTS", "DURATION", "EXIT", "MESSAGE")
	avail := 0
	if v.width > 0 {
		widths := []int{len("TASK"), len("STATE"), len("ATTEMPTS"), len("DURATION"), len("EXIT")}
		for _, r := range rows {
			for i, c := range []string{r.id, r.state, r.attempts, r.duration, r.exit} {
				widths[i] = max(widths[i], utf8.RuneCountInString(c))
			}
		}
		used := 0
		for _, n := range widths {
			used += n + 2 // the table's padding
		}
		avail = max(v.width-used-1, minMessageWidth)
	}
	lines := 1                // the table's lines so far, with its header
	under := map[int]string{} // the task under the table's line of this number
	for _, r := range rows {
		if avail == 0 {
			t.row(r.id, r.state, r.attempts, r.duration, r.exit, oneLine(r.message))
			lines++
		} else {
			parts := wrap(r.message, avail)
			t.row(r.id, r.state, r.attempts, r.duration, r.exit, parts[0])
			for _, p := range parts[1:] {
				t.row("", "", "", "", "", p)
			}
			lines += len(parts)
		}
		if len(v.under[r.id]) > 0 {
			under[lines] = r.id
		}
	}
	t.flush()
	out := strings.SplitAfter(buf.String(), "\n")
	indent := strings.Repeat(" ", strings.Index(out[0], "STATE"))
	for i, line := range out {
		io.WriteString(w, line)
		if id, ok := under[i+1]; ok {
			for _, u := range v.under[id] {
				io.WriteString(w, indent+u+"\n")
			}
		}
	}
}

// oneLine keeps a message whole on one line.
func oneLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return strings.ReplaceAll(s, "\n", " ⏎ ")
}

// wrap breaks s into lines of at most width runes, at spaces where it can
// and inside words longer than a line. Line breaks in s are kept.
func wrap(s string, width int) []string {
	var out []string
	for _, para := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		line := ""
		for _, word := range strings.Fields(para) {
			for utf8.RuneCountInString(word) > width {
				r := []rune(word)
				if line != "" {
					// Fill the rest of the line with the word's start,
					// when there is room for a useful piece of it.
					if room := width - utf8.RuneCountInString(line) - 1; room >= 8 {
						line += " " + string(r[:room])
						r = r[room:]
					}
					out = append(out, line)
					line = ""
				} else {
					out = append(out, string(r[:width]))
					r = r[width:]
				}
				word = string(r)
			}
			switch {
			case line == "":
				line = word
			case utf8.RuneCountInString(line)+1+utf8.RuneCountInString(word) <= width:
				line += " " + word
			default:
				out = append(out, line)
				line = word
			}
		}
		out = append(out, line)
	}
	if len(out) == 0 {
		out = []string{""}
	}
	return out
}

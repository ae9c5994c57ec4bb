package web

// The run page's Gantt chart: one row per task that has started, its
// attempts as bars on a shared time axis coloured by outcome (with a glyph
// and a tooltip, so it reads without colour), the waits between attempts
// and the waits of wait tasks and of tasks queued for a slot as hatched
// bars. Rows are paged: a page draws at most ganttPage tasks.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// RunAttempts gives the attempts of some tasks of a run (by task index) in
// one call, which api.Service.Run leaves out. Options.Graphs may implement
// it (the server's does); otherwise the run page asks api.Service.Task for
// each task of the chart's page.
type RunAttempts interface {
	RunAttempts(ctx context.Context, runID int64, indexes []int) (map[int][]api.Attempt, error)
}

const (
	ganttPage   = 50  // task rows per page
	ganttLabelW = 190 // the task ids' column
	ganttW      = 880 // the time axis
	ganttRowH   = 22
	ganttBarH   = 14
	ganttAxisH  = 22
)

// ganttView is the chart as drawn.
type ganttView struct {
	Width, Height int
	Rows          []ganttRow
	Ticks         []ganttTick
	Start, End    time.Time
	// Paging over the rows: From is the first row's position among the
	// started tasks, Total their number, Prev/Next the From of the pages
	// around (-1: none).
	From, Total, Prev, Next int
}

type ganttRow struct {
	Task  string
	Href  string
	Y     int // top of the row
	TextY int
	Bars  []ganttBar
	Label string // the row's accessible summary
}

type ganttBar struct {
	X, Y, W, H int
	Class      string // bar s-<outcome> | bar wait
	Glyph      string
	GlyphX     int
	Title      string
}

type ganttTick struct {
	X     int
	Label string
}

// ganttRows picks the tasks the chart shows, in the order they started
// (tasks that never started have no row).
func ganttRows(tasks []api.Task) []int {
	var rows []int
	for i, t := range tasks {
		if t.StartedAt != nil || t.State == "waiting" || (t.State == "ready" && t.ReadyAt != nil) {
			rows = append(rows, i)
		}
	}
	start := func(t api.Task) time.Time {
		switch {
		case t.StartedAt != nil:
			return *t.StartedAt
		case t.ReadyAt != nil:
			return *t.ReadyAt
		}
		return time.Time{}
	}
	slices.SortStableFunc(rows, func(a, b int) int { return start(tasks[a]).Compare(start(tasks[b])) })
	return rows
}

// buildGantt draws the rows [from, from+ganttPage) of the chart.
func buildGantt(runID int64, run api.Run, rows []int, from int, attempts map[int][]api.Attempt, now time.Time) ganttView {
	g := ganttView{Total: len(rows), From: from, Prev: -1, Next: -1}
	if from > 0 {
		g.Prev = max(0, from-ganttPage)
	}
	end := min(from+ganttPage, len(rows))
	if end < len(rows) {
		g.Next = end
	}
	if from >= len(rows) {
		return g
	}
	page := rows[from:end]

	// The axis spans the run (or the rows, if they reach outside it).
	t0 := run.CreatedAt
	if run.StartedAt != nil {
		t0 = *run.StartedAt
	}
	t1 := now
	if run.FinishedAt != nil {
		t1 = *run.FinishedAt
	}
	for _, i := range page {
		t := run.Tasks[i]
		for _, a := range attempts[t.Index] {
			t0 = minTime(t0, a.StartedAt)
			if a.FinishedAt != nil {
				t1 = maxTime(t1, *a.FinishedAt)
			}
		}
		if t.StartedAt != nil {
			t0 = minTime(t0, *t.StartedAt)
		}
	}
	if !t1.After(t0) {
		t1 = t0.Add(time.Second)
	}
	g.Start, g.End = t0, t1
	span := t1.Sub(t0)
	x := func(t time.Time) int {
		return ganttLabelW + int(float64(ganttW)*float64(t.Sub(t0))/float64(span))
	}
	bar := func(y int, a, b time.Time, class, gl, title string) ganttBar {
		xa, xb := x(a), x(b)
		w := max(xb-xa, 2)
		return ganttBar{X: xa, Y: y + (ganttRowH-ganttBarH)/2, W: w, H: ganttBarH, Class: class, Glyph: gl, GlyphX: xa + w + 2, Title: title}
	}

	for k, i := range page {
		t := run.Tasks[i]
		y := ganttAxisH + k*ganttRowH
		row := ganttRow{Task: t.ID, Href: fmt.Sprintf("/runs/%d/tasks/%s", runID, t.ID), Y: y, TextY: y + ganttRowH/2 + 4}
		atts := attempts[t.Index]
		var said []string
		if len(atts) == 0 && t.StartedAt != nil && t.State != "waiting" {
			// No attempts known: the task's span as one bar.
			fin := now
			if t.FinishedAt != nil {
				fin = *t.FinishedAt
			}
			st := string(t.State)
			row.Bars = append(row.Bars, bar(y, *t.StartedAt, fin, "bar s-"+st, glyph(st), fmt.Sprintf("%s: %s, %s", t.ID, words(st), humanDuration(fin.Sub(*t.StartedAt)))))
			said = append(said, words(st))
		}
		for n, a := range atts {
			if n > 0 && atts[n-1].FinishedAt != nil && a.StartedAt.After(*atts[n-1].FinishedAt) {
				prev := *atts[n-1].FinishedAt
				row.Bars = append(row.Bars, bar(y, prev, a.StartedAt, "bar wait", "", fmt.Sprintf("waited %s before attempt %d", humanDuration(a.StartedAt.Sub(prev)), a.Attempt)))
			}
			outcome := string(a.Outcome)
			fin := now
			if a.FinishedAt != nil {
				fin = *a.FinishedAt
			}
			if outcome == "" {
				outcome = "running"
			}
			title := fmt.Sprintf("attempt %d: %s, %s", a.Attempt, words(outcome), humanDuration(fin.Sub(a.StartedAt)))
			if a.ExitCode != nil && *a.ExitCode != 0 {
				title += fmt.Sprintf(", exit %d", *a.ExitCode)
			}
			if a.Worker != "" {
				title += ", on " + a.Worker
			}
			if a.Message != "" {
				title += ": " + a.Message
			}
			row.Bars = append(row.Bars, bar(y, a.StartedAt, fin, "bar s-"+outcome, glyph(outcome), title))
			said = append(said, fmt.Sprintf("attempt %d %s", a.Attempt, words(outcome)))
		}
		switch {
		case t.State == "waiting" && t.StartedAt != nil:
			row.Bars = append(row.Bars, bar(y, *t.StartedAt, now, "bar wait", glyph("waiting"), "waiting for its condition since "+t.StartedAt.UTC().Format(time.RFC3339)))
			said = append(said, "waiting")
		case t.State == "retry_wait" && len(atts) > 0 && atts[len(atts)-1].FinishedAt != nil:
			from, to := *atts[len(atts)-1].FinishedAt, now
			if t.ReadyAt != nil && t.ReadyAt.After(to) {
				to = *t.ReadyAt
			}
			row.Bars = append(row.Bars, bar(y, from, to, "bar wait", glyph("retry_wait"), "waiting to retry"))
			said = append(said, "waiting to retry")
		case t.State == "ready" && t.ReadyAt != nil:
			row.Bars = append(row.Bars, bar(y, *t.ReadyAt, now, "bar wait", glyph("ready"), "ready, waiting for a slot"+colonThen(t.Waiting)))
			said = append(said, "waiting for a slot")
		}
		row.Label = t.ID + ": " + strings.Join(said, ", ")
		g.Rows = append(g.Rows, row)
	}
	g.Width = ganttLabelW + ganttW + 30
	g.Height = ganttAxisH + len(page)*ganttRowH + 4
	g.Ticks = ganttTicks(t0, t1, x)
	return g
}

// ganttTicks puts about six labelled ticks on the axis, at round steps.
func ganttTicks(t0, t1 time.Time, x func(time.Time) int) []ganttTick {
	span := t1.Sub(t0)
	steps := []time.Duration{time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute,
		15 * time.Minute, 30 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour}
	step := 24 * time.Hour * ((span/(24*time.Hour) + 5) / 6) // whole days past the list
	for _, s := range steps {
		if span/s <= 6 {
			step = s
			break
		}
	}
	var out []ganttTick
	for d := time.Duration(0); d <= span; d += step {
		out = append(out, ganttTick{X: x(t0.Add(d)), Label: "+" + humanDuration(d)})
		if len(out) > 40 {
			break
		}
	}
	return out
}

func colonThen(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

func words(state string) string { return strings.ReplaceAll(state, "_", " ") }

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

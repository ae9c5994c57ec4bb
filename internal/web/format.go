package web

import (
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// funcs are the template functions every page may use.
func funcs() template.FuncMap {
	return template.FuncMap{
		"when":     when,
		"whenZone": whenZone,
		"dur":      humanDuration,
		"since":    since,
		"state":    stateBadge,
		"glyph":    glyph,
		"add":      func(a, b int) int { return a + b },
	}
}

// when renders a time as a <time> element: its text in UTC, which the
// page's script rewrites in the viewer's time zone (what the viewer reads),
// the exact instant in the title.
func when(t any) template.HTML { return whenZone(t, "") }

// whenZone is when with the time also given, on hover, in the named zone
// (the pipeline's schedule's).
func whenZone(t any, zone string) template.HTML {
	tt, ok := asTime(t)
	if !ok || tt.IsZero() {
		return template.HTML(`<span class="muted">—</span>`)
	}
	title := tt.UTC().Format("2006-01-02 15:04:05 MST")
	if zone != "" && zone != "UTC" {
		if loc, err := loadZone(zone); err == nil {
			title = tt.In(loc).Format("2006-01-02 15:04:05 MST") + " (" + zone + ") · " + title
		}
	}
	return template.HTML(fmt.Sprintf(`<time datetime="%s" title="%s">%s</time>`,
		tt.UTC().Format(time.RFC3339Nano), template.HTMLEscapeString(title), tt.UTC().Format("2006-01-02 15:04 UTC")))
}

func asTime(t any) (time.Time, bool) {
	switch v := t.(type) {
	case time.Time:
		return v, true
	case *time.Time:
		if v == nil {
			return time.Time{}, false
		}
		return *v, true
	}
	return time.Time{}, false
}

// since is the duration from a to b (b zero: now), in human units.
func since(a any, b any, now time.Time) string {
	at, ok := asTime(a)
	if !ok || at.IsZero() {
		return ""
	}
	bt, ok := asTime(b)
	if !ok || bt.IsZero() {
		bt = now
	}
	return humanDuration(bt.Sub(at))
}

// humanDuration writes d the way people say it: "850 ms", "42 s",
// "3 min 05 s", "2 h 04 min", "3 d 2 h".
func humanDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "—"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		s := d.Seconds()
		if s < 10 {
			return fmt.Sprintf("%.1f s", s)
		}
		return fmt.Sprintf("%d s", int(s))
	case d < time.Hour:
		return fmt.Sprintf("%d min %02d s", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %02d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d d %d h", int(d.Hours())/24, int(d.Hours())%24)
}

// glyph is the shape of a state, so that a state reads without its colour:
// a check for success, a cross for failure, a ring for running, ...
func glyph(state string) string {
	switch state {
	case "succeeded", "met", "on_track":
		return "✓"
	case "failed", "timed_out", "lost", "breached", "missed":
		return "✗"
	case "upstream_failed":
		return "⊘"
	case "running":
		return "◐"
	case "retry_wait", "preempted", "at_risk":
		return "↻"
	case "waiting":
		return "⧗"
	case "ready", "queued":
		return "○"
	case "cancelled":
		return "■"
	case "skipped", "cached":
		return "»"
	case "pending":
		return "·"
	}
	return "•"
}

// stateBadge renders a state by colour, word and shape.
func stateBadge(state any) template.HTML {
	s := fmt.Sprint(state)
	if s == "" {
		s = "unknown"
	}
	return template.HTML(fmt.Sprintf(`<span class="badge s-%s"><span aria-hidden="true">%s</span> %s</span>`,
		template.HTMLEscapeString(s), glyph(s), template.HTMLEscapeString(strings.ReplaceAll(s, "_", " "))))
}

// pct is part as a whole percentage of whole, rounded down.
func pct(part, whole int) string {
	if whole <= 0 {
		return "0"
	}
	return strconv.Itoa(int(int64(part) * 100 / int64(whole)))
}

// humanBytes writes n bytes the way people read sizes: "812 B", "4.2 KiB",
// "1.0 GiB".
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// clip shortens s to at most n bytes for a message, at a character
// boundary, marking the cut with "…".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// badRequest is a 400 for a request a page cannot use.
func badRequest(format string, args ...any) error {
	return api.Errorf(http.StatusBadRequest, api.CodeInvalid, format, args...)
}

// zones keeps the time zones pages name: a page of runs renders hundreds of
// times in one zone, and time.LoadLocation reads the zone's file each call.
var zones sync.Map // name → *time.Location

// loadZone is time.LoadLocation, remembered.
func loadZone(name string) (*time.Location, error) {
	if l, ok := zones.Load(name); ok {
		return l.(*time.Location), nil
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil, err
	}
	zones.Store(name, l)
	return l, nil
}

package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// printDeadline prints a run's deadline and the server's judgement of it,
// for 'tasuki status':
//
//	deadline: 2026-12-07 20:00:00 JST, at risk: predicted finish 2026-12-07 20:03:10 JST (3m10s late)
//	critical path: wait-london -> merge -> publish
//
// Nothing for a run without a deadline.
func printDeadline(w io.Writer, run api.Run, v view) {
	if run.Deadline == nil {
		return
	}
	line := "deadline: " + v.at(*run.Deadline)
	state := strings.ReplaceAll(run.DeadlineState, "_", " ")
	switch run.DeadlineState {
	case "":
		line += " (not judged yet)"
	case store.DeadlineOnTrack, store.DeadlineAtRisk:
		line += ", " + state
		if p := run.PredictedFinish; p != nil {
			line += ": predicted finish " + v.at(*p)
			if late := p.Sub(*run.Deadline); late > 0 {
				line += fmt.Sprintf(" (%s late)", late.Round(time.Second))
			} else {
				line += fmt.Sprintf(" (%s to spare)", (-late).Round(time.Second))
			}
		}
	default:
		line += ", " + state
	}
	fmt.Fprintln(w, line)
	if len(run.CriticalPath) > 0 {
		fmt.Fprintf(w, "critical path: %s\n", strings.Join(run.CriticalPath, " -> "))
	}
}

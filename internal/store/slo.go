package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
)

// Freshness objectives (package slo) are judged by the leader from dataset
// updates and runs; the store keeps what it decided, so a restart or a new
// leader neither loses a breach nor alerts twice: each objective and since
// when it holds, each closed window as judged (compliance is summed from
// them), and each breach with its cause as it was seen.

// SLOObjective is a freshness objective as the store keeps it.
type SLOObjective struct {
	// Pipeline declares the objective.
	Pipeline string
	// Objective names what it is about within the pipeline:
	// SLOPipelineObjective for the pipeline's success, "dataset:" and the
	// dataset's name for a dataset (SLODatasetObjective).
	Objective string
	// Definition is the objective in canonical form: a changed one starts
	// afresh.
	Definition string
	// Since is when the server first judged it in this Definition.
	Since time.Time
}

// SLOPipelineObjective is the Objective of a pipeline's own slo.
const SLOPipelineObjective = "pipeline"

// SLODatasetObjective is the Objective of a dataset's objective.
func SLODatasetObjective(dataset string) string { return "dataset:" + dataset }

// SLOWindow is one closed window of an objective, as judged.
type SLOWindow struct {
	Pipeline, Objective string
	Start, End          time.Time
	Met                 bool
	// Judged and Compliant are, for max_age, the time of the window judged
	// and how much of it the data was fresh; zero for fresh_by.
	Judged, Compliant time.Duration
}

// SLOBreach is one breach of an objective with its cause as it was seen
// when the breach was first recorded.
type SLOBreach struct {
	ID                     int64 // assigned by the store
	Pipeline, Objective    string
	WindowStart, WindowEnd time.Time
	Start                  time.Time
	End                    time.Time // zero while the breach is open
	// RunID is the run that should have made the data fresh: the newest
	// run of the pipeline by the start of the breach (0: none). It is not a
	// reference the store keeps up: the run may since have been pruned.
	RunID    int64
	RunState string
	// TaskID is the task that explains the run's state (one failed, one
	// still waiting or running), TaskState its state and Message what it
	// said (a failure, what a wait last saw).
	TaskID    string
	TaskState string
	Message   string
	// Cause says it all in a sentence.
	Cause string
}

// SLOBreachFilter selects breaches for SLOBreaches, newest first (by
// start). The filters combine with AND.
type SLOBreachFilter struct {
	Pipeline  string    // "" for all
	Objective string    // "" for all; needs Pipeline
	Since     time.Time // only breaches that started at or after it (zero: all)
	Open      bool      // only open breaches
	Limit     int       // DefaultSLOBreachesLimit, MaxSLOBreachesLimit
}

// Page sizes of SLOBreaches.
const (
	DefaultSLOBreachesLimit = 50
	MaxSLOBreachesLimit     = 1000
)

// MaxSLOText bounds the free text of a breach (its message and cause): a
// task's message can be long, a breach only needs its gist.
const MaxSLOText = 2000

// RecSLOBreached is the timeline record the server writes to the run that
// should have made an objective's data fresh when the objective is
// breached.
const RecSLOBreached engine.EventKind = "slo_breached"

// SLOs is the part of a Store that keeps what freshness objectives
// decided.
type SLOs interface {
	// DeclareSLO records that the server judges o. A new objective is
	// stored with Since now (zero: the current time); one stored with
	// another Definition takes o's and Since now (a changed objective
	// starts afresh); one stored with the same Definition is left as it
	// is. It returns the objective as stored.
	DeclareSLO(ctx context.Context, o SLOObjective, now time.Time) (SLOObjective, error)
	// SLOObjectives returns every stored objective, by pipeline and
	// objective. There is one per objective ever declared, so the list is
	// not paginated.
	SLOObjectives(ctx context.Context) ([]SLOObjective, error)
	// RecordSLOWindow stores a closed window once: a window of the same
	// pipeline, objective and start is left as it is. It reports whether
	// it stored this one.
	RecordSLOWindow(ctx context.Context, w SLOWindow) (bool, error)
	// SLOWindows returns the windows of one objective that end after
	// endAfter, oldest first: at most one per day for 90 days is what
	// compliance reads.
	SLOWindows(ctx context.Context, pipeline, objective string, endAfter time.Time) ([]SLOWindow, error)
	// RecordSLOBreach stores a breach once per pipeline, objective and
	// start, and returns it as stored with whether it is new (an existing
	// one is returned unchanged).
	RecordSLOBreach(ctx context.Context, b SLOBreach) (SLOBreach, bool, error)
	// EndSLOBreach records when an open breach ended; a breach that has
	// ended keeps its end. ErrNotFound for an unknown id.
	EndSLOBreach(ctx context.Context, id int64, end time.Time) error
	// SLOBreaches returns breaches newest first (by start, then id).
	SLOBreaches(ctx context.Context, f SLOBreachFilter) ([]SLOBreach, error)
	// PruneSLO deletes the windows that ended before before and the
	// breaches that ended before it (open ones are kept), and returns how
	// many rows it deleted.
	PruneSLO(ctx context.Context, before time.Time) (int64, error)
}

// PrepareSLOObjective checks o for DeclareSLO.
func PrepareSLOObjective(o *SLOObjective) error {
	if o.Pipeline == "" || o.Objective == "" || o.Definition == "" {
		return errors.New("objective: pipeline, objective and definition must not be empty")
	}
	for _, f := range []struct{ what, s string }{{"pipeline", o.Pipeline}, {"objective", o.Objective}, {"definition", o.Definition}} {
		if err := CheckText(f.what, f.s); err != nil {
			return err
		}
	}
	return nil
}

// PrepareSLOWindow checks w for RecordSLOWindow and normalises its times.
func PrepareSLOWindow(w *SLOWindow) error {
	if w.Pipeline == "" || w.Objective == "" {
		return errors.New("objective window: pipeline and objective must not be empty")
	}
	w.Start, w.End = NormTime(w.Start), NormTime(w.End)
	if w.Start.IsZero() || !w.End.After(w.Start) {
		return fmt.Errorf("objective window: end %s is not after start %s", w.End, w.Start)
	}
	if w.Judged < 0 || w.Compliant < 0 || w.Compliant > w.Judged {
		return fmt.Errorf("objective window: compliant time %s is not within the judged %s", w.Compliant, w.Judged)
	}
	w.Judged, w.Compliant = w.Judged.Truncate(time.Microsecond), w.Compliant.Truncate(time.Microsecond)
	if err := CheckText("pipeline", w.Pipeline); err != nil {
		return err
	}
	return CheckText("objective", w.Objective)
}

// PrepareSLOBreach checks b for RecordSLOBreach, normalises its times and
// makes its free text storable (see Text), at most MaxSLOText bytes each.
func PrepareSLOBreach(b *SLOBreach) error {
	if b.Pipeline == "" || b.Objective == "" {
		return errors.New("objective breach: pipeline and objective must not be empty")
	}
	b.WindowStart, b.WindowEnd, b.Start, b.End = NormTime(b.WindowStart), NormTime(b.WindowEnd), NormTime(b.Start), NormTime(b.End)
	if b.WindowStart.IsZero() || b.WindowEnd.Before(b.WindowStart) {
		return fmt.Errorf("objective breach: window %s to %s is not a window", b.WindowStart, b.WindowEnd)
	}
	if b.Start.IsZero() || (!b.End.IsZero() && b.End.Before(b.Start)) {
		return fmt.Errorf("objective breach: end %s is before start %s", b.End, b.Start)
	}
	if err := CheckText("pipeline", b.Pipeline); err != nil {
		return err
	}
	if err := CheckText("objective", b.Objective); err != nil {
		return err
	}
	for _, s := range []*string{&b.RunState, &b.TaskID, &b.TaskState, &b.Message, &b.Cause} {
		*s = clipText(Text(*s), MaxSLOText)
	}
	return nil
}

// clipText cuts s to at most n bytes at a rune boundary, marking the cut.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return strings.TrimRight(s[:cut], " ") + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

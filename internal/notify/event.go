package notify

import (
	"context"
	"time"
)

// Kind is what an event says happened. The values are what pipeline files
// list in notify[].on and what webhooks receive in "event".
type Kind string

// Event kinds.
const (
	AtRisk    Kind = "at_risk"    // a run is predicted to finish after its deadline
	Missed    Kind = "missed"     // a run passed its deadline unfinished (or finished after it)
	Failed    Kind = "failed"     // a run ended failed
	Recovered Kind = "recovered"  // a run with an open incident (at_risk, failed, missed) succeeded
	Repaired  Kind = "repaired"   // tasuki retried a failed run by itself once its data arrived
	Succeeded Kind = "succeeded"  // a run succeeded
	SLOBreach Kind = "slo_breach" // a freshness objective's window was breached
)

// Kinds lists every kind, in the order documentation shows them.
func Kinds() []Kind {
	return []Kind{AtRisk, Missed, Failed, Recovered, Repaired, Succeeded, SLOBreach}
}

// Event is one thing to tell people about.
type Event struct {
	Kind     Kind
	Pipeline string
	// RunID is the run the event is about; 0 for an objective's breach
	// that no run caused.
	RunID int64
	// State is the run's state (or the objective's) when the event was
	// decided.
	State string
	// Deadline and PredictedFinish are the run's, when it has a deadline.
	Deadline        time.Time
	PredictedFinish time.Time
	// Reason says why, in a sentence: which task, which wait, what it saw.
	Reason string
	// Objective names the objective of a slo_breach.
	Objective string
	At        time.Time
}

// Publisher takes events to deliver. The server's publisher writes them to
// the outbox; Discard drops them (a server without notifications, tests).
type Publisher interface {
	Publish(ctx context.Context, ev Event) error
}

// Discard is a Publisher that delivers nothing.
type Discard struct{}

// Publish implements Publisher.
func (Discard) Publish(context.Context, Event) error { return nil }

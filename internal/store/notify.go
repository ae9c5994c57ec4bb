package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
)

// The outbox of notifications (migration 0009): each event people are
// told about is written as one row per destination in the same
// transaction that decides whether it is told at all (the run's
// incidents), then delivered by whichever server claims the row. The
// store knows nothing of webhooks or e-mail: a destination and an event
// are JSON objects internal/notify writes and reads.

// Delivery states.
const (
	DeliveryPending = "pending" // waiting for its first or next try
	DeliverySent    = "sent"    // the destination took it
	DeliveryFailed  = "failed"  // given up: a permanent error, or too many tries
)

// How an event bears on its run's incidents (Notification.Incident). An
// incident is one problem of one run (the problem is the event's kind:
// at_risk, missed, failed); it is open from the event that raised it until
// an event closes it.
const (
	// IncidentNone: the event is delivered whatever the incidents
	// (a success, an objective's breach).
	IncidentNone = ""
	// IncidentOpen opens the incident of the event's kind; the event is
	// delivered only when that incident was not open already, so a second
	// failure of a retried run, or a second at-risk prediction, is not.
	IncidentOpen = "open"
	// IncidentRepair marks the open incidents repaired; the event is
	// delivered only when an incident is open and not yet repaired. It
	// closes nothing: the run has yet to succeed.
	IncidentRepair = "repair"
	// IncidentClose closes every open incident of the run; the event is
	// delivered only when one was open (a success after a failure is a
	// recovery, any other success is not).
	IncidentClose = "close"
)

// Notification is one event to deliver: what Publish writes.
type Notification struct {
	// RunID is the run the event is about; 0 for none (an objective's
	// breach that no run caused), which has no incidents.
	RunID    int64
	Pipeline string
	Kind     string // the event's kind: at_risk, failed, ...
	Incident string // IncidentNone, IncidentOpen, IncidentRepair or IncidentClose
	// Payload is the event as every destination is told it: a JSON object.
	Payload json.RawMessage
	// At is when the event was decided: its deliveries are due from then
	// (zero: now).
	At time.Time
	// Targets are the destinations, one delivery each.
	Targets []Target
}

// Target is one destination of a notification.
type Target struct {
	// Destination says where and how: a JSON object that names secrets,
	// never holds their values.
	Destination json.RawMessage
	// Label is how people see it: its type and an address without what may
	// be secret ("slack hooks.slack.com/…").
	Label string
}

// Delivery is one row of the outbox: one event to one destination.
type Delivery struct {
	ID          int64
	RunID       int64 // 0: no run
	Pipeline    string
	Kind        string
	Payload     json.RawMessage
	Destination json.RawMessage
	Label       string
	State       string // DeliveryPending, DeliverySent, DeliveryFailed
	// Attempts counts the claims of the delivery: each is one try, also
	// one a crash interrupted.
	Attempts  int
	CreatedAt time.Time
	// NextAt is when a pending delivery is due.
	NextAt time.Time
	// LastError is what the last failed try said ("" after a success).
	LastError string
	// FinishedAt is when it was sent or given up; zero while pending.
	FinishedAt time.Time
	// ClaimedBy and ClaimedUntil are the claim of the server sending it
	// now; empty and zero when unclaimed.
	ClaimedBy    string
	ClaimedUntil time.Time
}

// DeliveryOutcome is how one claimed try of a delivery ended.
type DeliveryOutcome struct {
	ID int64
	// Holder and Attempt are the claim (Delivery.ClaimedBy and Attempts as
	// ClaimDeliveries returned them): only the claim's holder finishes a
	// try, and only the try it claimed.
	Holder  string
	Attempt int
	At      time.Time // when the try ended (zero: now)
	// Error is why it failed; "" means sent.
	Error string
	// RetryAt, with an Error, is when to try again; zero gives the
	// delivery up (failed).
	RetryAt time.Time
	// Record, when set, is written on the delivery's run's timeline in
	// the same transaction (the delivery's run; ignored for a delivery
	// without a run).
	Record *engine.Record
}

// Incident is one problem of one run, kept so a restart or another server
// knows what was already told.
type Incident struct {
	RunID   int64
	Problem string // the kind of the event that opened it
	// OpenedAt is when it was last opened; ClosedAt zero while open.
	OpenedAt   time.Time
	ClosedAt   time.Time
	RepairedAt time.Time // when a repair of it was told; zero: none
	// Opened counts how many times it was opened (reopened after a
	// recovery).
	Opened int
}

// Notifications is the part of a Store that keeps the outbox of
// notifications and the incidents of runs.
type Notifications interface {
	// Publish applies n's incident step to its run's incidents and, when
	// the step says the event is to be told, writes one pending delivery
	// per target, due at n.At; all in one transaction, so of two servers
	// publishing the same problem of a run at once exactly one writes its
	// deliveries. It returns the deliveries written (none when the event
	// is not told, or has no targets). A run that does not exist is
	// ErrNotFound.
	Publish(ctx context.Context, n Notification) ([]Delivery, error)
	// ClaimDeliveries claims up to limit pending deliveries due at now
	// whose previous claim (if any) ended, oldest due first, for holder
	// until now+lease, counting one more attempt on each; it returns them.
	// A delivery is claimed by one holder at a time, so it is sent by one
	// server at a time, and by another only after the claim's lease ran
	// out (its holder died). limit as for runs (0: 50, at most 1000).
	ClaimDeliveries(ctx context.Context, holder string, now time.Time, lease time.Duration, limit int) ([]Delivery, error)
	// FinishDelivery records the end of a claimed try: sent, failed to
	// try again at RetryAt, or given up; the claim ends. With o.Record, it
	// writes the record on the run's timeline in the same transaction. It
	// fails with ErrConflict, writing nothing, when the delivery is no
	// longer claimed by o.Holder for o.Attempt (its lease ran out and
	// someone else claimed it), and ErrNotFound when it is gone.
	FinishDelivery(ctx context.Context, o DeliveryOutcome) error
	// RunDeliveries returns every delivery of a run, by ID; ErrNotFound
	// when the run does not exist.
	RunDeliveries(ctx context.Context, runID int64) ([]Delivery, error)
	// Incidents returns the incidents of a run, by problem.
	Incidents(ctx context.Context, runID int64) ([]Incident, error)
}

// Default and maximum of ClaimDeliveries' limit.
const (
	DefaultClaimLimit = 50
	MaxClaimLimit     = 1000
)

// PrepareNotification checks n for Publish and fills in what the store
// decides (a zero At becomes now), the same for both drivers.
func PrepareNotification(n *Notification) error {
	if n.Kind == "" {
		return errors.New("publish: empty event kind")
	}
	if err := CheckText("pipeline", n.Pipeline); err != nil {
		return fmt.Errorf("publish %s: %w", n.Kind, err)
	}
	if err := CheckText("event kind", n.Kind); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	switch n.Incident {
	case IncidentNone, IncidentOpen, IncidentRepair, IncidentClose:
	default:
		return fmt.Errorf("publish %s: unknown incident step %q", n.Kind, n.Incident)
	}
	if n.RunID < 0 {
		return fmt.Errorf("publish %s: run id %d", n.Kind, n.RunID)
	}
	if err := checkObject("payload", n.Payload); err != nil {
		return fmt.Errorf("publish %s: %w", n.Kind, err)
	}
	for i, t := range n.Targets {
		if err := checkObject("destination", t.Destination); err != nil {
			return fmt.Errorf("publish %s: target %d: %w", n.Kind, i, err)
		}
		if err := CheckText("label", t.Label); err != nil {
			return fmt.Errorf("publish %s: target %d: %w", n.Kind, i, err)
		}
	}
	if n.At.IsZero() {
		n.At = time.Now()
	}
	n.At = NormTime(n.At)
	return nil
}

// checkObject checks that raw is a JSON object the store can keep.
func checkObject(what string, raw json.RawMessage) error {
	if len(raw) == 0 {
		return fmt.Errorf("empty %s", what)
	}
	if err := CheckJSON(what, raw); err != nil {
		return err
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return fmt.Errorf("%s is not a JSON object", what)
	}
	return nil
}

// PrepareOutcome checks o for FinishDelivery and fills in a zero At.
func PrepareOutcome(o *DeliveryOutcome) error {
	if o.Holder == "" {
		return fmt.Errorf("finish delivery %d: empty holder", o.ID)
	}
	if o.At.IsZero() {
		o.At = time.Now()
	}
	o.At = NormTime(o.At)
	o.RetryAt = NormTime(o.RetryAt)
	o.Error = Text(o.Error)
	if o.Record != nil {
		if err := CheckJSON("data of "+string(o.Record.Kind)+" record", o.Record.Data); err != nil {
			return fmt.Errorf("finish delivery %d: %w", o.ID, err)
		}
	}
	return nil
}

// CheckClaim checks the arguments of ClaimDeliveries and returns the limit
// to use.
func CheckClaim(holder string, now time.Time, lease time.Duration, limit int) (int, error) {
	switch {
	case holder == "":
		return 0, errors.New("claim deliveries: empty holder")
	case now.IsZero():
		return 0, errors.New("claim deliveries: no time given")
	case lease <= 0:
		return 0, fmt.Errorf("claim deliveries: lease %s is not positive", lease)
	}
	if limit <= 0 {
		limit = DefaultClaimLimit
	}
	return min(limit, MaxClaimLimit), nil
}

package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Timeline records of deliveries: each try that ends writes one on the
// run's timeline, saying the event and the destination (masked as
// Destination.String does) and, for a failure, why and what happens next.
const (
	RecAlertSent   engine.EventKind = "alert_sent"
	RecAlertFailed engine.EventKind = "alert_failed"
)

// IncidentStep says how an event of kind k bears on its run's incidents
// (see store.Notification.Incident): at_risk, missed and failed open the
// incident of their kind, so a retried run that fails again or a second
// at-risk prediction is not told twice; repaired is told only while an
// incident is open (once); recovered only when one was open, and closes
// them all; succeeded and slo_breach are always told.
func IncidentStep(k Kind) string {
	switch k {
	case AtRisk, Missed, Failed:
		return store.IncidentOpen
	case Repaired:
		return store.IncidentRepair
	case Recovered:
		return store.IncidentClose
	}
	return store.IncidentNone
}

// Outbox is the Publisher of a server: it writes each event with its
// destinations into the store's outbox, in the transaction that decides
// whether the event is told at all (the run's incidents). A Deliverer
// sends what it wrote.
type Outbox struct {
	Store store.Notifications
	// Routes returns the destinations an event may go to: the run's
	// pipeline's notify list and the server's routes. The Outbox keeps
	// those that want the event's kind, each place once.
	Routes func(ctx context.Context, ev Event) []Destination
	// Base returns the server's public URL, which links to runs start
	// with (nil: no links). It is asked at each event: the address may be
	// known only once the server listens.
	Base func() string
	// Wake, when set, is called after deliveries were written, so they
	// are sent at once rather than at the Deliverer's next pass.
	Wake func()
}

// Publish implements Publisher.
func (o *Outbox) Publish(ctx context.Context, ev Event) error {
	if _, err := ParseKind(string(ev.Kind)); err != nil {
		return err
	}
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	var dests []Destination
	if o.Routes != nil {
		dests = o.Routes(ctx, ev)
	}
	base := ""
	if o.Base != nil {
		base = o.Base()
	}
	payload, err := NewPayload(ev, base).Encode()
	if err != nil {
		return err
	}
	n := store.Notification{RunID: ev.RunID, Pipeline: ev.Pipeline, Kind: string(ev.Kind), Incident: IncidentStep(ev.Kind),
		Payload: payload, At: ev.At}
	var seen []string
	for _, d := range dests {
		if !d.Wants(ev.Kind) {
			continue
		}
		b, err := json.Marshal(d.Target())
		if err != nil {
			return fmt.Errorf("encode destination %s: %w", d, err)
		}
		if slices.Contains(seen, string(b)) {
			continue
		}
		seen = append(seen, string(b))
		n.Targets = append(n.Targets, store.Target{Destination: b, Label: d.String()})
	}
	if len(n.Targets) == 0 && n.Incident == store.IncidentNone {
		return nil // nobody to tell, and no incident to keep
	}
	ds, err := o.Store.Publish(ctx, n)
	if err != nil {
		return fmt.Errorf("record %s of %s run %d in the outbox: %w", ev.Kind, ev.Pipeline, ev.RunID, err)
	}
	if len(ds) > 0 && o.Wake != nil {
		o.Wake()
	}
	return nil
}

// Retry defaults: a delivery that fails is tried again after 10s, 20s,
// 40s, ... (at most 10 minutes apart), 8 tries in all, about 20 minutes.
const (
	DefaultMinDelay    = 10 * time.Second
	DefaultMaxDelay    = 10 * time.Minute
	DefaultMaxAttempts = 8
	// DefaultLease is how long a claimed delivery is the claimer's alone:
	// a server that dies while sending is taken over after it.
	DefaultLease = time.Minute
	// DefaultParallel is how many deliveries a Deliverer sends at once.
	DefaultParallel = 8
)

// Deliverer sends the due deliveries of the outbox: it claims them in the
// store (so each is sent by one server at a time, whatever the number of
// servers), sends each with Sender, and records the end of each try with
// a timeline record on the run, retrying failures with exponential backoff
// up to MaxAttempts tries. What is pending survives restarts: a try a
// crash interrupted is claimed again when its lease runs out.
type Deliverer struct {
	Store  store.Notifications
	Sender *Sender
	// Holder names this server in claims; it must differ between servers
	// (the leadership holder does).
	Holder string
	// Now is the clock of due times and claims (default time.Now).
	Now func() time.Time
	// Lease, MinDelay, MaxDelay, MaxAttempts and Parallel default to the
	// Default* constants.
	Lease       time.Duration
	MinDelay    time.Duration
	MaxDelay    time.Duration
	MaxAttempts int
	Parallel    int
	Log         *slog.Logger

	wakeOnce sync.Once
	wake     chan struct{}
}

func (d *Deliverer) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Deliverer) log() *slog.Logger {
	if d.Log != nil {
		return d.Log
	}
	return slog.Default()
}

func (d *Deliverer) wakeCh() chan struct{} {
	d.wakeOnce.Do(func() { d.wake = make(chan struct{}, 1) })
	return d.wake
}

// Wake asks a running Deliverer for a pass now.
func (d *Deliverer) Wake() {
	select {
	case d.wakeCh() <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends: at once, when woken, and every interval
// (for retries that came due and claims that ran out).
func (d *Deliverer) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		d.Pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.wakeCh():
		}
	}
}

// Pass claims and sends what is due now, and returns how many tries it
// made.
func (d *Deliverer) Pass(ctx context.Context) int {
	par := d.Parallel
	if par <= 0 {
		par = DefaultParallel
	}
	lease := d.Lease
	if lease <= 0 {
		lease = DefaultLease
	}
	// A destination's claimed deliveries are sent one after another, each
	// allowed DefaultTimeout: the claim must outlast them all, or another
	// server could claim and send one of them again meanwhile.
	if least := time.Duration(par)*DefaultTimeout + 30*time.Second; lease < least {
		lease = least
	}
	tries := 0
	for ctx.Err() == nil {
		claimed, err := d.Store.ClaimDeliveries(ctx, d.Holder, d.now(), lease, par)
		if err != nil {
			if ctx.Err() == nil {
				d.log().Error("claim notifications to deliver", "err", err)
			}
			return tries
		}
		// Destinations are sent to at once, each one's deliveries in
		// order: a channel reads "failed" before "recovered".
		var order []string
		byDest := map[string][]store.Delivery{}
		for _, dl := range claimed {
			k := string(dl.Destination)
			if _, ok := byDest[k]; !ok {
				order = append(order, k)
			}
			byDest[k] = append(byDest[k], dl)
		}
		var wg sync.WaitGroup
		for _, k := range order {
			wg.Go(func() {
				for _, dl := range byDest[k] {
					d.deliver(ctx, dl)
				}
			})
		}
		wg.Wait()
		tries += len(claimed)
		if len(claimed) < par {
			break
		}
	}
	return tries
}

// delay is the wait before the try after try n (n >= 1).
func (d *Deliverer) delay(n int) time.Duration {
	lo, hi := d.MinDelay, d.MaxDelay
	if lo <= 0 {
		lo = DefaultMinDelay
	}
	if hi <= 0 {
		hi = DefaultMaxDelay
	}
	dl := lo
	for i := 1; i < n && dl < hi; i++ {
		dl *= 2
	}
	return min(dl, hi)
}

// deliver sends one claimed delivery and records how it went.
func (d *Deliverer) deliver(ctx context.Context, dl store.Delivery) {
	var to Destination
	err := json.Unmarshal(dl.Destination, &to)
	if err != nil {
		err = Permanent(fmt.Errorf("the stored destination cannot be read: %v", err))
	} else {
		err = d.Sender.Send(ctx, Message{ID: dl.ID, To: to, Body: dl.Payload})
	}
	now := d.now()
	o := store.DeliveryOutcome{ID: dl.ID, Holder: d.Holder, Attempt: dl.Attempts, At: now}
	limit := d.MaxAttempts
	if limit <= 0 {
		limit = DefaultMaxAttempts
	}
	data := map[string]any{"delivery": dl.ID, "event": dl.Kind, "destination": dl.Label, "attempt": dl.Attempts}
	kind, msg := RecAlertSent, fmt.Sprintf("%s → %s", dl.Kind, dl.Label)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		// The server is stopping: hand the delivery back, due now, for
		// whoever delivers next; the interrupted try is no failure.
		o.Error, o.RetryAt = "interrupted: the server stopped while sending", now
		d.finish(o)
		return
	default:
		kind = RecAlertFailed
		o.Error = err.Error()
		data["error"] = o.Error
		if !IsPermanent(err) && dl.Attempts < limit {
			o.RetryAt = now.Add(d.delay(dl.Attempts))
			data["retry_at"] = o.RetryAt.UTC()
			msg += fmt.Sprintf(": %s (try %d of %d; next at %s)", o.Error, dl.Attempts, limit, o.RetryAt.UTC().Format(time.RFC3339))
		} else {
			msg += fmt.Sprintf(": %s (given up after %d tries)", o.Error, dl.Attempts)
			if IsPermanent(err) {
				msg = fmt.Sprintf("%s → %s: %s (not retried)", dl.Kind, dl.Label, o.Error)
			}
		}
	}
	raw, _ := json.Marshal(data)
	o.Record = &engine.Record{Time: now, Kind: kind, Task: -1, Attempt: dl.Attempts, Message: msg, Data: raw}
	d.finish(o)
	attrs := []any{"delivery", dl.ID, "event", dl.Kind, "run", dl.RunID, "destination", dl.Label, "try", dl.Attempts}
	switch {
	case err == nil:
		d.log().Info("notification sent", attrs...)
	case o.RetryAt.IsZero():
		d.log().Error("notification failed; given up", append(attrs, "err", o.Error)...)
	default:
		d.log().Warn("notification failed; will retry", append(attrs, "err", o.Error, "retry_at", o.RetryAt)...)
	}
}

// finish records a try's end. It runs even while the server stops, so a
// try that was made is never forgotten.
func (d *Deliverer) finish(o store.DeliveryOutcome) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := d.Store.FinishDelivery(ctx, o)
	switch {
	case errors.Is(err, store.ErrConflict):
		d.log().Warn("notification delivery was taken over by another server while this one sent it", "delivery", o.ID, "err", err)
	case errors.Is(err, store.ErrNotFound):
		// The run was pruned meanwhile.
	case err != nil:
		d.log().Error("record notification delivery", "delivery", o.ID, "err", err)
	}
}

package api

// The alerts of a run: each notification about it (at risk, missed,
// failed, recovered, ...) to each destination, with how its delivery went,
// so "was anyone told?" has an answer.

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// Alerts serves GET /runs/{id}/alerts.
type Alerts interface {
	// RunAlerts returns the deliveries of the run's notifications, oldest
	// first. A run that does not exist is an *Error with CodeNotFound.
	RunAlerts(ctx context.Context, runID int64) ([]Alert, error)
}

// Alert is one notification about a run to one destination: the JSON
// shape of GET /runs/{id}/alerts.
type Alert struct {
	ID int64 `json:"id"`
	// Event is what happened: at_risk, missed, failed, recovered,
	// repaired, succeeded or slo_breach.
	Event string `json:"event"`
	// Destination is where it goes, without what may be secret: its type
	// and a URL's host ("slack hooks.slack.com/…", "email a@example.com").
	Destination string `json:"destination"`
	// State is pending (to be tried, or tried again at NextAt), sent or
	// failed (given up).
	State string `json:"state"`
	// Attempts counts the tries so far.
	Attempts  int       `json:"attempts"`
	CreatedAt time.Time `json:"created_at"`
	// NextAt is when a pending alert is tried (again).
	NextAt *time.Time `json:"next_at,omitempty"`
	// FinishedAt is when it was sent or given up.
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// LastError is why the last try failed.
	LastError string `json:"last_error,omitempty"`
}

// Alert states.
const (
	AlertPending = "pending"
	AlertSent    = "sent"
	AlertFailed  = "failed"
)

// NewAlert describes a stored delivery.
func NewAlert(d store.Delivery) Alert {
	a := Alert{ID: d.ID, Event: d.Kind, Destination: d.Label, State: d.State, Attempts: d.Attempts,
		CreatedAt: d.CreatedAt, FinishedAt: TimePtr(d.FinishedAt), LastError: d.LastError}
	if d.State == store.DeliveryPending {
		a.NextAt = TimePtr(d.NextAt)
	}
	return a
}

// WithAlerts serves GET /runs/{id}/alerts over a. Without it the route
// answers 503 unavailable.
func WithAlerts(a Alerts) Option {
	return func(h *handler) { h.alerts = a }
}

func (h *handler) runAlerts(w http.ResponseWriter, r *http.Request) error {
	if h.alerts == nil {
		return Errorf(http.StatusServiceUnavailable, CodeUnavailable, "this server sends no notifications")
	}
	id, err := pathID(r, "id", "run id")
	if err != nil {
		return err
	}
	// A run that does not exist is 404 whatever the alerts say.
	if _, err := h.svc.Run(r.Context(), id); err != nil {
		return err
	}
	list, err := h.alerts.RunAlerts(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Page[Alert]{Items: nonNil(list)})
	return nil
}

// RunAlerts lists the notifications about a run and how each was
// delivered.
func (c *Client) RunAlerts(ctx context.Context, runID int64) ([]Alert, error) {
	var p Page[Alert]
	err := c.do(ctx, request{method: http.MethodGet, path: fmt.Sprintf("/runs/%d/alerts", runID)}, &p)
	return p.Items, err
}

package apitest

import (
	"context"
	"slices"
	"sync"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// Alerts is a fake api.Alerts in memory: the alerts a test sets per run.
// It does not know which runs exist (the handler asks the Service first,
// as it does for every route about a run); a run without alerts has none.
type Alerts struct {
	mu    sync.Mutex
	byRun map[int64][]api.Alert
}

var _ api.Alerts = (*Alerts)(nil)

// NewAlerts returns a fake without alerts.
func NewAlerts() *Alerts { return &Alerts{byRun: map[int64][]api.Alert{}} }

// Set gives run its alerts, oldest first.
func (a *Alerts) Set(run int64, alerts ...api.Alert) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.byRun[run] = slices.Clone(alerts)
}

// RunAlerts implements api.Alerts.
func (a *Alerts) RunAlerts(_ context.Context, run int64) ([]api.Alert, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.byRun[run]), nil
}

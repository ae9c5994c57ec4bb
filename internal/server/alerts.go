package server

import (
	"context"

	"github.com/tasuki-dev/tasuki/internal/notify"
)

// publish hands an event to the notifications; a failure to record it is
// logged, never a reason to stop what decided it.
func (s *Server) publish(ctx context.Context, ev notify.Event) {
	if ev.At.IsZero() {
		ev.At = s.now()
	}
	if err := s.alerts.Publish(ctx, ev); err != nil {
		s.log.Error("record notification", "event", ev.Kind, "pipeline", ev.Pipeline, "run", ev.RunID, "err", err)
	}
}

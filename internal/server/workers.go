package server

import (
	"context"
	"net/http"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// workerList lists the executors of this server's broker, for GET
// /api/v1/workers and the web UI's workers page. Only the leader hands
// out work, so only its broker knows the workers: the API's route is
// forwarded to it (leaderOnly); a follower's UI says where to look.
type workerList struct{ s *Server }

func (l workerList) Workers(ctx context.Context) ([]api.WorkerInfo, error) {
	if !l.s.leading() {
		msg := "this server does not lead: the workers lease from the leader, whose web UI lists them"
		if addr := l.s.elector.current().Address; addr != "" {
			msg += " (" + addr + ")"
		}
		return nil, api.Errorf(http.StatusServiceUnavailable, api.CodeUnavailable, "%s", msg)
	}
	return l.s.broker.Workers(), nil
}

package api

// The executors a server knows (GET /workers): the remote workers it has
// heard from within a lease timeout and its own in-process executor, each
// with what it runs now. Only the leader hands out work, so only the
// leader knows its workers; a follower forwards the route to it.

import (
	"context"
	"net/http"
	"slices"
	"time"
)

// WorkerList lists the executors a server knows.
type WorkerList interface {
	// Workers lists them by name.
	Workers(ctx context.Context) ([]WorkerInfo, error)
}

// WithWorkerList serves GET /workers over l. Without it the route answers
// 503 unavailable.
func WithWorkerList(l WorkerList) Option {
	return func(h *handler) { h.workerList = l }
}

// WorkerInfo is an executor the server knows: a remote worker (by the
// name it leases under, host:pid) or the server's own in-process executor
// (Local, named "local").
type WorkerInfo struct {
	Name   string   `json:"name"`
	Local  bool     `json:"local,omitempty"`
	Labels []string `json:"labels"`
	// Slots is how many attempts it runs at once: the in-process
	// executor's setting, or what a remote worker's last lease request
	// showed (its free slots then, plus the leases it held); 0 when the
	// worker has only sent heartbeats since the server started.
	Slots int `json:"slots"`
	// InUse is how many attempts it holds now, of every namespace.
	InUse int `json:"in_use"`
	// LastHeartbeat is when a remote worker last called (a lease request
	// or a heartbeat); absent for the in-process executor.
	LastHeartbeat *time.Time `json:"last_heartbeat,omitempty"`
	// Running are the attempts it holds, oldest first; for a token
	// confined to a namespace, only that namespace's.
	Running []WorkerAttempt `json:"running"`
}

// WorkerAttempt is an attempt an executor holds.
type WorkerAttempt struct {
	Run      int64  `json:"run"`
	Pipeline string `json:"pipeline"`
	Task     string `json:"task"`
	Attempt  int    `json:"attempt"`
	// Item is the map item it runs, for an attempt of a map's items
	// (absent for a task that is not a map).
	Item *int `json:"item,omitempty"`
	// Since is when the executor took it.
	Since time.Time `json:"since"`
}

func (h *handler) listWorkers(w http.ResponseWriter, r *http.Request) error {
	if h.workerList == nil {
		return Errorf(http.StatusServiceUnavailable, CodeUnavailable, "this server lists no workers")
	}
	list, err := h.workerList.Workers(r.Context())
	if err != nil {
		return err
	}
	sees, err := h.visible(r.Context())
	if err != nil {
		return err
	}
	list = nonNil(list)
	for i := range list {
		list[i].Labels = nonNil(list[i].Labels)
		list[i].Running = nonNil(filter(list[i].Running, func(a WorkerAttempt) bool { return sees(a.Pipeline) }))
	}
	slices.SortFunc(list, func(a, b WorkerInfo) int {
		// The server's own executor first, then the workers by name.
		switch {
		case a.Local != b.Local && a.Local:
			return -1
		case a.Local != b.Local:
			return 1
		}
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	writeJSON(w, http.StatusOK, WorkerListBody{Items: list})
	return nil
}

// WorkerListBody answers GET /workers.
type WorkerListBody struct {
	Items []WorkerInfo `json:"items"`
}

// Workers lists the executors the server knows, with what each runs.
func (c *Client) Workers(ctx context.Context) ([]WorkerInfo, error) {
	var b WorkerListBody
	err := c.do(ctx, request{method: http.MethodGet, path: "/workers"}, &b)
	return b.Items, err
}

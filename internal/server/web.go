package server

// The web UI (internal/web) beside the API: what it needs from the server
// that api.Service does not give, namely the shape of a run's graph and a
// wake-up when a run this server executes changes.

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/web"
)

// site serves the API under /api/ and the web UI everywhere else.
func (s *Server) site(apiHandler http.Handler, people *users) (http.Handler, error) {
	ui, err := web.New(web.Options{
		Service:   &service{s: s},
		Sessions:  people,
		Graphs:    webGraphs{s},
		History:   s.store,
		SLOs:      sloAPI{s},
		Live:      s.live,
		Audit:     auditLog{s},
		Logs:      s.logs,
		Logger:    s.log,
		Now:       s.now,
		OIDC:      s.cfg.OIDC.Issuer != "",
		Workers:   workerList{s},
		Inventory: s.inventory,
	})
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == api.Prefix || strings.HasPrefix(r.URL.Path, "/api/") {
			apiHandler.ServeHTTP(w, r) // the API answers its unknown paths as JSON
			return
		}
		ui.ServeHTTP(w, r)
	}), nil
}

// webGraphs gives the UI the graph of a run from its pipeline version.
type webGraphs struct{ s *Server }

func (g webGraphs) RunGraph(ctx context.Context, runID int64) ([]web.GraphTask, error) {
	run, err := g.s.store.Run(ctx, runID)
	if err != nil {
		return nil, err
	}
	p, err := g.s.runner.Pipeline(ctx, run.VersionID)
	if err != nil {
		return nil, err
	}
	out := make([]web.GraphTask, len(p.Tasks))
	for i, t := range p.Tasks {
		out[i] = web.GraphTask{ID: t.ID, Kind: t.Kind(), Needs: t.Needs}
		if t.Map != nil {
			out[i].Kind += " · map"
		}
	}
	return out, nil
}

// RunAttempts implements web.RunAttempts: the attempts of some tasks of a
// run for the run page's chart: a page of the chart (50 tasks) one
// indexed query per task, which costs less than reading the attempts of a
// big run whole; more tasks than that, in one query of the whole run.
func (g webGraphs) RunAttempts(ctx context.Context, runID int64, indexes []int) (map[int][]api.Attempt, error) {
	out := make(map[int][]api.Attempt, len(indexes))
	add := func(as []store.Attempt) {
		for _, a := range as {
			out[a.Index] = append(out[a.Index], api.NewAttempt(a))
		}
	}
	if len(indexes) > 64 {
		want := make(map[int]bool, len(indexes))
		for _, i := range indexes {
			want[i] = true
		}
		as, err := g.s.store.Attempts(ctx, runID, -1)
		if err != nil {
			return nil, fmt.Errorf("read the attempts of run %d: %w", runID, err)
		}
		add(slices.DeleteFunc(as, func(a store.Attempt) bool { return !want[a.Index] }))
		return out, nil
	}
	for _, i := range indexes {
		as, err := g.s.store.Attempts(ctx, runID, i)
		if err != nil {
			return nil, fmt.Errorf("read the attempts of run %d task %d: %w", runID, i, err)
		}
		add(as)
	}
	return out, nil
}

// liveHub wakes the UI's live views of runs this server executes, from the
// runner's progress: a wake-up says only "look again", so a view that
// misses one (its buffer of one is full) loses nothing.
type liveHub struct {
	mu    sync.Mutex
	watch map[int64]map[chan struct{}]struct{}
}

func newLiveHub() *liveHub { return &liveHub{watch: map[int64]map[chan struct{}]struct{}{}} }

// Watch implements web.Live.
func (h *liveHub) Watch(runID int64) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.watch[runID] == nil {
		h.watch[runID] = map[chan struct{}]struct{}{}
	}
	h.watch[runID][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.watch[runID], ch)
		if len(h.watch[runID]) == 0 {
			delete(h.watch, runID)
		}
	}
}

// progress wakes the watchers of p's run.
func (h *liveHub) progress(p runner.Progress) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.watch[p.Run.ID] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

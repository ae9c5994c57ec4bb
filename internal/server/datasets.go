package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// This file starts the runs of pipelines scheduled on datasets
// (schedule.datasets): a run when all (or, with any, one) of the datasets
// were updated since the updates the pipeline last consumed. What a
// pipeline consumed is its DatasetCursor in the store, moved on in the same
// transaction as the run is created (a compare-and-set), so each set of
// updates starts one run, across restarts and several servers.

// initCursor makes a pipeline's dataset cursor cover exactly the datasets
// its schedule names: one it did not cover starts at the newest update
// there is, so updates from before the pipeline was scheduled on it start
// nothing. Called whenever the pipeline is recorded (load, change, a new
// leader).
func (s *Server) initCursor(ctx context.Context, p *spec.Pipeline, cur store.PipelineState) error {
	var names []string
	if p != nil && p.Schedule != nil {
		names = p.Schedule.Datasets
	}
	if len(names) == 0 && len(cur.DatasetCursor) == 0 {
		return nil
	}
	next := make(map[string]int64, len(names))
	var missing []string
	for _, n := range names {
		if id, ok := cur.DatasetCursor[n]; ok {
			next[n] = id
		} else {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		latest, err := s.store.LatestDatasetUpdates(ctx, missing)
		if err != nil {
			return err
		}
		for _, n := range missing {
			next[n] = latest[n].ID
		}
	}
	a, err := store.EncodeCursor(next)
	if err != nil {
		return err
	}
	if b, _ := store.EncodeCursor(cur.DatasetCursor); bytes.Equal(a, b) {
		return nil
	}
	err = s.store.SetDatasetCursor(ctx, p.Name, cur.DatasetCursor, next)
	if errors.Is(err, store.ErrConflict) {
		return nil // another server moved it on meanwhile: it covers them
	}
	return err
}

// datasetsDue reports whether a pipeline's datasets were updated as its
// schedule asks since its cursor, and the cursor after consuming them. It
// reads the newest update of each dataset, one index lookup each.
func (s *Server) datasetsDue(ctx context.Context, sch *spec.Schedule, cursor map[string]int64) (bool, map[string]int64, []string, error) {
	latest, err := s.store.LatestDatasetUpdates(ctx, sch.Datasets)
	if err != nil {
		return false, nil, nil, err
	}
	next := maps.Clone(cursor)
	if next == nil {
		next = map[string]int64{}
	}
	var fresh []string
	for _, n := range sch.Datasets {
		if u, ok := latest[n]; ok && u.ID > cursor[n] {
			fresh = append(fresh, fmt.Sprintf("%s #%d", n, u.ID))
			next[n] = u.ID
		}
	}
	due := len(fresh) > 0 && (sch.Any || len(fresh) == len(sch.Datasets))
	return due, next, fresh, nil
}

// scheduleDatasets starts a run of a pipeline scheduled on datasets only,
// when its datasets are due.
func (s *Server) scheduleDatasets(ctx context.Context, st store.PipelineState, p *spec.Pipeline) error {
	due, next, fresh, err := s.datasetsDue(ctx, p.Schedule, st.DatasetCursor)
	if err != nil || !due {
		return err
	}
	nr, err := s.runner.NewRun(ctx, p, nil, store.TriggerDataset)
	if err != nil {
		return err
	}
	nr.Actor = "scheduler: " + strings.Join(fresh, ", ")
	nr.Datasets = &store.DatasetAdvance{Expect: st.DatasetCursor, Next: next}
	s.setDeadline(p, &nr)
	run, err := s.store.CreateRun(ctx, nr)
	if errors.Is(err, store.ErrConflict) {
		return nil // another pass or server consumed them, or a pause
	}
	if err != nil {
		return err
	}
	s.log.Info("dataset-started run created", "pipeline", p.Name, "run", run.ID, "updates", strings.Join(fresh, ", "))
	return nil
}

// datasetsUpdated is told of updates recorded by this server's runs and
// API: the scheduler looks at once rather than at its next tick.
func (s *Server) datasetsUpdated([]string) { s.poke() }

package api

// Freshness objectives: every objective the loaded pipelines declare (on a
// pipeline's success, on a dataset its tasks produce), how it stands,
// its compliance and its last breaches with their causes. Objectives
// follow the rule of the datasets routes: a dataset's consumers may be in
// several namespaces, so the route is for global tokens (a confined token
// gets 403).

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// SLOs serves GET /slo.
type SLOs interface {
	// ListSLOs describes every objective of the loaded pipelines (of one
	// pipeline when pipeline is not ""), by pipeline, then the pipeline's
	// own objective before its datasets'.
	ListSLOs(ctx context.Context, pipeline string) ([]SLO, error)
}

// Objective states.
const (
	SLOMet      = "met"      // the current window's promise is kept
	SLOBreached = "breached" // it is broken now
	SLOPending  = "pending"  // nothing to judge yet: its deadline is ahead, or its period has not begun
)

// SLO is the JSON shape of one freshness objective.
type SLO struct {
	// Name identifies the objective: "pipeline:NAME" for a pipeline's
	// success, "dataset:NAME" for a dataset.
	Name     string `json:"name"`
	Pipeline string `json:"pipeline"`
	// Dataset is the dataset it is about; absent for a pipeline's success.
	Dataset string `json:"dataset,omitempty"`
	// Kind is fresh_by or max_age; Definition says the whole objective in
	// a line ("fresh by 09:00 Asia/Tokyo, weekdays").
	Kind       string   `json:"kind"`
	Definition string   `json:"definition"`
	FreshBy    string   `json:"fresh_by,omitempty"`
	MaxAge     string   `json:"max_age,omitempty"`
	During     string   `json:"during,omitempty"`
	Days       []string `json:"days"`
	Timezone   string   `json:"timezone"`
	// Since is when the server first judged it in this form.
	Since time.Time `json:"since"`
	// State is how the current window stands (met, breached or pending),
	// and Window that window: the one whose deadline passed while its
	// breach is still open, else the one in progress (or the next max_age
	// period).
	State  string    `json:"state"`
	Window SLOWindow `json:"window"`
	// LastUpdate is when the data was last updated (for a pipeline: a run
	// of it last succeeded); absent when never.
	LastUpdate *time.Time    `json:"last_update,omitempty"`
	Compliance SLOCompliance `json:"compliance"`
	// Breaches are the last breaches, newest first.
	Breaches []SLOBreach `json:"breaches"`
}

// SLOWindow is one window of an objective: (start, end] for fresh_by,
// [start, end) for max_age.
type SLOWindow struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// SLOCompliance is the share of the last 7, 30 and 90 days' closed
// windows that were met (fresh_by), or of their judged time the data was
// fresh (max_age), as a percentage; absent when no window closed in the
// period.
type SLOCompliance struct {
	Days7  *float64 `json:"7d,omitempty"`
	Days30 *float64 `json:"30d,omitempty"`
	Days90 *float64 `json:"90d,omitempty"`
}

// SLOBreach is one breach of an objective, with its cause as the server
// saw it when the breach began.
type SLOBreach struct {
	Window SLOWindow `json:"window"`
	Start  time.Time `json:"start"`
	// End is when it ended; absent while it is open.
	End  *time.Time `json:"end,omitempty"`
	Open bool       `json:"open"`
	// Seconds is how long it lasted, so far while open.
	Seconds float64 `json:"seconds"`
	// RunID is the run that should have made the data fresh (the newest
	// of the pipeline when the breach began), with its state then; the
	// task that explains it, its state and what it said (a failure, what
	// a wait last saw).
	RunID     int64  `json:"run_id,omitempty"`
	RunState  string `json:"run_state,omitempty"`
	Task      string `json:"task,omitempty"`
	TaskState string `json:"task_state,omitempty"`
	Message   string `json:"message,omitempty"`
	// Cause says it in a sentence.
	Cause string `json:"cause"`
}

// WithSLOs serves GET /slo over o. Without it the route answers 503
// unavailable.
func WithSLOs(o SLOs) Option {
	return func(h *handler) { h.slos = o }
}

func (h *handler) listSLOs(w http.ResponseWriter, r *http.Request) error {
	if h.slos == nil {
		return Errorf(http.StatusServiceUnavailable, CodeUnavailable, "this server judges no freshness objectives")
	}
	pipeline, err := queryValue(r, "pipeline")
	if err != nil {
		return err
	}
	if pipeline != "" {
		if err := checkDatasetName("pipeline name", pipeline); err != nil {
			return err
		}
	}
	list, err := h.slos.ListSLOs(r.Context(), pipeline)
	if err != nil {
		return err
	}
	for i := range list {
		list[i].Days, list[i].Breaches = nonNil(list[i].Days), nonNil(list[i].Breaches)
	}
	writeJSON(w, http.StatusOK, Page[SLO]{Items: nonNil(list)})
	return nil
}

// ListSLOs lists the server's freshness objectives (of one pipeline when
// pipeline is not "").
func (c *Client) ListSLOs(ctx context.Context, pipeline string) ([]SLO, error) {
	q := url.Values{}
	if pipeline != "" {
		q.Set("pipeline", pipeline)
	}
	var p Page[SLO]
	err := c.do(ctx, request{method: http.MethodGet, path: "/slo", query: q}, &p)
	return p.Items, err
}

package datawait

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// DatasetStore is what the dataset wait reads of the store.
type DatasetStore interface {
	Run(ctx context.Context, id int64) (store.Run, error)
	DatasetUpdates(ctx context.Context, f store.DatasetUpdateFilter) ([]store.DatasetUpdate, error)
}

// Dataset is the dataset wait condition ("wait.dataset"): the dataset was
// updated at or after the start of the run's interval (for a run without an
// interval, at or after the run was created). The newest such update is the
// task's result. It implements attempt.Condition.
type Dataset struct {
	Store DatasetStore
}

var _ attempt.Condition = Dataset{}

// datasetBody is the Spec.Body of a dataset wait.
type datasetBody struct {
	Dataset string `json:"dataset"`
}

// datasetMemo keeps the time updates count from between the checks of an
// attempt, so the run is read once, not at every poke.
type datasetMemo struct {
	Since time.Time `json:"since"`
}

// datasetResult is the task's result when the wait is met: the update.
type datasetResult struct {
	ID       int64           `json:"id"`
	Dataset  string          `json:"dataset"`
	At       time.Time       `json:"at"`
	Run      int64           `json:"run,omitempty"`
	Pipeline string          `json:"pipeline,omitempty"`
	Task     string          `json:"task,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// Name implements attempt.Condition: spec.Task.Kind of a dataset wait.
func (Dataset) Name() string { return "wait.dataset" }

// Body implements attempt.Condition.
func (Dataset) Body(t *spec.Task) (json.RawMessage, error) {
	if t.Wait == nil || t.Wait.Dataset == "" {
		return nil, errors.New("the task has no dataset to wait for (wait.dataset)")
	}
	return json.Marshal(datasetBody{Dataset: t.Wait.Dataset})
}

// Check implements attempt.Condition: one read of the newest update since
// the interval's start, from the (dataset, at) index.
func (w Dataset) Check(ctx context.Context, s *attempt.Spec, _ *attempt.Host, prev json.RawMessage) attempt.Observation {
	var b datasetBody
	if err := json.Unmarshal(s.Body, &b); err != nil {
		return attempt.Observation{Fail: fmt.Sprintf("read the dataset wait of the attempt: %v", err)}
	}
	if b.Dataset == "" {
		return attempt.Observation{Fail: "the dataset wait names no dataset"}
	}
	if w.Store == nil {
		return attempt.Observation{Fail: "this executor has no store to check a dataset wait in"}
	}
	var m datasetMemo
	if len(prev) > 0 && json.Unmarshal(prev, &m) != nil {
		m = datasetMemo{}
	}
	if m.Since.IsZero() {
		obs, ok := w.since(ctx, s, &m)
		if !ok {
			return obs
		}
	}
	memo, err := json.Marshal(m)
	if err != nil {
		return attempt.Observation{Fail: fmt.Sprintf("encode the memo: %v", err)}
	}
	us, err := w.Store.DatasetUpdates(ctx, store.DatasetUpdateFilter{Dataset: b.Dataset, Since: m.Since, Limit: 1})
	if err != nil {
		obs := unreadable(ctx, "the updates of "+b.Dataset, err)
		obs.Memo = memo
		return obs
	}
	if len(us) == 0 {
		return attempt.Observation{Seen: fmt.Sprintf("no update of %s since %s", b.Dataset, stamp(m.Since)), Memo: memo}
	}
	u := us[0]
	out, err := json.Marshal(datasetResult{ID: u.ID, Dataset: u.Dataset, At: u.At, Run: u.RunID, Pipeline: u.Pipeline,
		Task: u.TaskID, Metadata: u.Metadata})
	if err != nil {
		return attempt.Observation{Fail: fmt.Sprintf("encode the result: %v", err)}
	}
	return attempt.Observation{Met: true, Seen: fmt.Sprintf("update %d of %s at %s", u.ID, u.Dataset, stamp(u.At)),
		Result: out, Memo: memo}
}

// since sets m.Since: the start of the attempt's interval, or when its run
// was created. ok is false when it cannot, with the observation to return.
func (w Dataset) since(ctx context.Context, s *attempt.Spec, m *datasetMemo) (attempt.Observation, bool) {
	start, _, hasInterval, fail := interval(s)
	if fail != "" {
		return attempt.Observation{Fail: fail}, false
	}
	if hasInterval {
		m.Since = start.UTC()
		return attempt.Observation{}, true
	}
	id, fail := runID(s)
	if fail != "" {
		return attempt.Observation{Fail: fail}, false
	}
	r, err := w.Store.Run(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return attempt.Observation{Fail: fmt.Sprintf("run %d of the attempt does not exist", id)}, false
	}
	if err != nil {
		return unreadable(ctx, fmt.Sprintf("run %d", id), err), false
	}
	m.Since = r.CreatedAt
	return attempt.Observation{}, true
}

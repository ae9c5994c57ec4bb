package attempt

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/tasuki-dev/tasuki/internal/spec"
)

// Noop is the kind of the tasks that do nothing (noop: {}): an attempt
// succeeds at once, with no result, no log and no process, wherever it
// runs. It joins branches like Airflow's EmptyOperator, and makes a map
// whose items cost only their orchestration (what the benchmarks of the
// worker protocol measure).
type Noop struct{}

const noopKind = "noop"

// Name implements Kind.
func (Noop) Name() string { return noopKind }

// Body implements Kind: there is nothing to describe.
func (Noop) Body(t *spec.Task) (json.RawMessage, error) {
	if t.Noop == nil {
		return nil, fmt.Errorf("task %s is not a noop task", t.ID)
	}
	return json.RawMessage(`{}`), nil
}

// Run implements Kind. It succeeds even when ctx is done: the attempt
// had nothing to stop, so it ended by itself.
func (Noop) Run(context.Context, *Spec, *Host) Result {
	return Result{Outcome: Succeeded}
}

package runner

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/engine"
)

// TestPriorityDecidesFirstSlot runs three tasks that become ready in the same
// step (the run's start) through one slot: the one with the highest priority
// must take the free slot, not the first in file order.
func TestPriorityDecidesFirstSlot(t *testing.T) {
	for _, tt := range []struct {
		name  string
		pools map[string]int
		pool  string
	}{
		{"parallelism of 1", nil, ""},
		{"pool of 1", map[string]int{"db": 1}, "db"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			parallel := 1
			if tt.pools != nil {
				parallel = 4
			}
			e.r.Dispatcher = NewDispatcher(parallel, tt.pools)
			var (
				mu    sync.Mutex
				order []string
			)
			e.r.Executor = func(_ context.Context, a *Attempt) AttemptResult {
				mu.Lock()
				order = append(order, a.TaskID)
				mu.Unlock()
				return AttemptResult{Outcome: attempt.Succeeded}
			}
			pool := ""
			if tt.pool != "" {
				pool = ", pool: " + tt.pool
			}
			run, _ := e.run(t.Context(), "name: prio\ntasks:\n"+
				"  - {id: a, run: 'true'"+pool+"}\n"+
				"  - {id: b, run: 'true'"+pool+"}\n"+
				"  - {id: c, run: 'true', priority: 10"+pool+"}\n", nil)
			if run.State != engine.RunSucceeded {
				t.Fatalf("run %s", run.State)
			}
			if got := strings.Join(order, " "); got != "c a b" {
				t.Fatalf("start order %q, want c (priority 10) first, then a and b", got)
			}
		})
	}
}

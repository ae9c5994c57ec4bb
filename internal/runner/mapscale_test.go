package runner

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/engine"
)

func TestMapScaleProbe(t *testing.T) {
	n := os.Getenv("MAP_PROBE")
	if n == "" {
		t.Skip("MAP_PROBE=N")
	}
	e := newEnv(t)
	e.r.Parallel = 16
	e.r.Executor = func(ctx context.Context, a *Attempt) AttemptResult { return AttemptResult{Outcome: attempt.Succeeded} }
	start := time.Now()
	run, tasks := e.run(t.Context(), "name: m\ntasks:\n  - id: each\n    run: \"true\"\n    map: {range: {stop: "+n+"}}\n", nil)
	el := time.Since(start)
	if run.State != engine.RunSucceeded {
		t.Fatalf("%s %+v", run.State, tasks)
	}
	k, _ := strconv.Atoi(n)
	t.Logf("%d items in %s (%.1f µs/item)", k, el, float64(el.Microseconds())/float64(k))
}

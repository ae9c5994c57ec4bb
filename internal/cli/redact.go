package cli

import (
	"context"

	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// redactLocalRun shows a run read from the local store as a server would:
// the values of the parameters its pipeline declares secret as "***", and
// no parameters at all when its pipeline version cannot be read.
func redactLocalRun(ctx context.Context, st store.Store, run *store.Run) {
	if len(run.Params) == 0 {
		return
	}
	v, err := st.PipelineVersion(ctx, run.VersionID)
	if err != nil {
		run.Params = nil
		return
	}
	p, err := spec.Parse(v.File, v.Source)
	if err != nil {
		run.Params = nil
		return
	}
	run.Params = runner.RedactParams(p, run.Params)
}

// redactRun is redactLocalRun with the run's pipeline already parsed (nil
// when it could not be read).
func redactRun(p *spec.Pipeline, run *store.Run) {
	if len(run.Params) == 0 {
		return
	}
	if p == nil {
		run.Params = nil
		return
	}
	run.Params = runner.RedactParams(p, run.Params)
}

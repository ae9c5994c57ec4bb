package runner

import (
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

// Graph builds the engine's graph of a parsed pipeline.
func Graph(p *spec.Pipeline) (*engine.Graph, error) {
	defs := make([]engine.NodeDef, len(p.Tasks))
	for i, t := range p.Tasks {
		defs[i] = engine.NodeDef{ID: t.ID, Needs: t.Needs, Retry: retryPolicy(t.Retry)}
		if t.Map != nil {
			// A map's items are retried one by one (fanout); the map
			// itself is not run again as a whole.
			defs[i].Retry = engine.RetryPolicy{Attempts: 1}
			if t.Map.Zip {
				// It starts beside the map it reads (zip.go).
				defs[i].Zip = []string{t.Map.From}
			}
		}
		if w := t.Wait; w != nil {
			defs[i].Wait = &engine.WaitPolicy{Poke: w.PokeEvery(), Timeout: w.Timeout.D()}
		}
	}
	return engine.NewGraph(defs)
}

// retryPolicy maps a parsed retry policy (its defaults already applied by
// the parser, explicit zeros kept) to the engine's.
func retryPolicy(r *spec.Retry) engine.RetryPolicy {
	if r == nil {
		return engine.RetryPolicy{Attempts: 1}
	}
	return engine.RetryPolicy{
		Attempts:   r.Attempts,
		Backoff:    r.Backoff.D(),
		MaxBackoff: r.MaxBackoff.D(),
		Multiplier: r.Multiplier,
		Jitter:     r.Jitter,
	}
}

package runner

import (
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

// Graph builds the engine's graph of a parsed pipeline, applying the retry
// defaults of the format.
func Graph(p *spec.Pipeline) (*engine.Graph, error) {
	defs := make([]engine.NodeDef, len(p.Tasks))
	for i, t := range p.Tasks {
		defs[i] = engine.NodeDef{ID: t.ID, Needs: t.Needs, Timeout: t.Timeout.D(), Retry: retryPolicy(t.Retry)}
	}
	return engine.NewGraph(defs)
}

func retryPolicy(r *spec.Retry) engine.RetryPolicy {
	if r == nil {
		return engine.RetryPolicy{Attempts: 1}
	}
	p := engine.RetryPolicy{
		Attempts:   r.Attempts,
		Backoff:    r.Backoff.D(),
		MaxBackoff: r.MaxBackoff.D(),
		Multiplier: r.Multiplier,
		Jitter:     r.Jitter,
	}
	if p.Backoff == 0 {
		p.Backoff = spec.DefaultBackoff
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = spec.DefaultMaxBackoff
	}
	if p.Multiplier == 0 {
		p.Multiplier = spec.DefaultMultiplier
	}
	if r.Jitter == 0 {
		p.Jitter = spec.DefaultJitter
	}
	return p
}

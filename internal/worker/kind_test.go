package worker

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	attemptpkg "github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

// greetKind is a kind of work that runs no process: it writes a greeting
// for the name in its body and publishes it as its result.
type greetKind struct{}

func (greetKind) Name() string                               { return "greet" }
func (greetKind) Body(t *spec.Task) (json.RawMessage, error) { return json.Marshal(t.ID) }
func (greetKind) Run(ctx context.Context, s *attemptpkg.Spec, h *attemptpkg.Host) attemptpkg.Result {
	var name string
	if err := json.Unmarshal(s.Body, &name); err != nil {
		return attemptpkg.Failedf("greet: %v", err)
	}
	h.Stdout.Write([]byte("hello " + name + "\n"))
	return attemptpkg.Result{Outcome: attemptpkg.Succeeded, Result: s.Body}
}

// TestKinds runs leases of a kind the worker was given, with no other
// wiring, and of a kind it does not know, which fails with the reason.
func TestKinds(t *testing.T) {
	h := newHarness(t)
	w := h.worker()
	kinds, err := attemptpkg.NewRegistry(attemptpkg.Shell{}, greetKind{})
	if err != nil {
		t.Fatal(err)
	}
	w.Kinds = kinds
	greet := shellLease("14.greet.1", "")
	greet.Spec.Kind, greet.Spec.Body = "greet", json.RawMessage(`"tasuki"`)
	unknown := shellLease("14.query.1", "")
	unknown.Spec.Kind, unknown.Spec.Body = "sql", json.RawMessage(`{"query": "select 1"}`)
	h.fake.Add(greet, unknown)
	h.start(t, w)
	if c := h.completion(t, greet.ID); c.Outcome != api.OutcomeSucceeded || string(c.Result) != `"tasuki"` {
		t.Errorf("greet: %+v", c)
	}
	h.waitLog(t, greet.ID, "out hello tasuki")
	if c := h.completion(t, unknown.ID); c.Outcome != api.OutcomeFailed || !strings.Contains(c.Message, `kind "sql"`) {
		t.Errorf("unknown kind: %+v", c)
	}
	if err := h.stop(t); err != nil {
		t.Error(err)
	}
}

package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
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

// TestHTTPAttemptsShareConnections: the worker's http attempts (the items
// of a map calling one service) reuse connections: 30 requests, two at a
// time, open at most a connection per slot, not one each.
func TestHTTPAttemptsShareConnections(t *testing.T) {
	var opened atomic.Int64
	svc := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	svc.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	svc.Start()
	defer svc.Close()
	h := newHarness(t)
	var leases []api.Lease
	for i := range 30 {
		l := shellLease(fmt.Sprintf("15.call.%d", i+1), "")
		l.Spec.Kind, l.Spec.Body = "http", json.RawMessage(fmt.Sprintf(`{"url": %q}`, svc.URL+"/noop"))
		leases = append(leases, l)
	}
	h.fake.Add(leases...)
	h.start(t, h.worker()) // 2 slots
	for _, l := range leases {
		if c := h.completion(t, l.ID); c.Outcome != api.OutcomeSucceeded {
			t.Fatalf("%s: %+v", l.ID, c)
		}
	}
	if err := h.stop(t); err != nil {
		t.Error(err)
	}
	if n := opened.Load(); n > 2 {
		t.Errorf("30 requests two at a time opened %d connections, want at most 2", n)
	}
}

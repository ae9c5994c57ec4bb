package runner

import (
	"context"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/engine"
)

// TestResultTheStoreCannotKeep: a task whose result is valid JSON the store
// refuses (the escape \u0000, which PostgreSQL's jsonb cannot hold, refused
// by every driver alike) fails, with a message that says why, and the run
// goes on to its end; the store's refusal must not stop the run.
func TestResultTheStoreCannotKeep(t *testing.T) {
	e := newEnv(t)
	run, tasks := e.run(context.Background(), `
name: nul
tasks:
  - id: a
    run: |
      printf '{"s": "a\\u0000b"}' > "$TASUKI_RESULT"
  - id: b
    needs: [a]
    run: "true"
  - id: c
    run: "true"
`, nil)
	if run.State != engine.RunFailed {
		t.Fatalf("run %s, want failed: %+v", run.State, tasks)
	}
	if a := tasks["a"]; a.State != engine.TaskFailed || !strings.Contains(a.Message, `\u0000`) || a.Result != nil {
		t.Errorf("task a: %s, message %q, result %s; want failed, naming \\u0000, no result", a.State, a.Message, a.Result)
	}
	if b := tasks["b"]; b.State == engine.TaskSucceeded || b.Attempt != 0 {
		t.Errorf("task b: %s after %d attempts; want it never started", b.State, b.Attempt)
	}
	if c := tasks["c"]; c.State != engine.TaskSucceeded {
		t.Errorf("task c: %s, want succeeded", c.State)
	}
}

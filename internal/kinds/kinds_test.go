package kinds

import (
	"testing"

	"github.com/tasuki-dev/tasuki/internal/spec"
)

// TestEveryTaskKindIsRegistered: each kind of task a pipeline file can
// declare has an executor in the builtin registry (except the waits that
// need a store).
func TestEveryTaskKindIsRegistered(t *testing.T) {
	r := Builtin()
	for _, task := range []spec.Task{
		{ID: "a", Run: spec.Command{Shell: "true"}},
		{ID: "b", HTTP: &spec.HTTP{URL: "http://127.0.0.1/"}},
		{ID: "c", Wait: &spec.Wait{File: "x"}},
		{ID: "d", Wait: &spec.Wait{HTTP: "http://127.0.0.1/"}},
		{ID: "e", SQL: &spec.SQL{DSN: "sqlite:x.db", Query: "select 1"}},
		{ID: "g", Noop: &spec.Noop{}},
		{ID: "f", Wait: &spec.Wait{SQL: "select 1", DSN: "sqlite:x.db"}},
	} {
		if _, err := r.Describe(&task, nil, nil); err != nil {
			t.Errorf("task %s (%s): %v", task.ID, task.Kind(), err)
		}
	}
}

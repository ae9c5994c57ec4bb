package runner

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

// recordingKind stands in for the shell kind: it records the Spec and Host
// each attempt is run with instead of starting a process.
type recordingKind struct {
	mu    sync.Mutex
	specs map[string]attempt.Spec
	dirs  map[string]string
}

func (k *recordingKind) Name() string { return "shell" }
func (k *recordingKind) Body(t *spec.Task) (json.RawMessage, error) {
	return json.Marshal(map[string]string{"recorded": t.Run.Shell})
}
func (k *recordingKind) Run(ctx context.Context, s *attempt.Spec, h *attempt.Host) attempt.Result {
	k.mu.Lock()
	defer k.mu.Unlock()
	id := s.Env["TASUKI_TASK_ID"]
	k.specs[id], k.dirs[id] = *s, h.WorkingDir(s)
	return attempt.Result{Outcome: attempt.Succeeded, Result: json.RawMessage(`{"from":"` + id + `"}`)}
}

// TestKindsDescribeAndRun checks that the runner describes each attempt
// with the kind's Body, its variables, workdir, timeout and needs' results,
// and runs it through the registry it was given.
func TestKindsDescribeAndRun(t *testing.T) {
	e := newEnv(t)
	k := &recordingKind{specs: map[string]attempt.Spec{}, dirs: map[string]string{}}
	kinds, err := attempt.NewRegistry(k)
	if err != nil {
		t.Fatal(err)
	}
	e.r.Kinds = kinds
	run, tasks := e.run(context.Background(), `name: kinds
params: [{name: day, type: date}]
env: {A: pipeline}
tasks:
  - {id: first, run: 'echo one', workdir: sub, timeout: 90s}
  - {id: second, run: 'echo two', needs: [first], env: {A: task}}
`, map[string]string{"day": "2026-11-01"})
	if run.State != engine.RunSucceeded || string(tasks["second"].Result) != `{"from":"second"}` {
		t.Fatalf("run %s, tasks %+v", run.State, tasks)
	}
	first, second := k.specs["first"], k.specs["second"]
	if first.Kind != "shell" || string(first.Body) != `{"recorded":"echo one"}` || first.Workdir != "sub" || first.Timeout.D().Seconds() != 90 {
		t.Errorf("first: %+v", first)
	}
	if !strings.HasSuffix(k.dirs["first"], "/sub") {
		t.Errorf("first ran in %q, want the pipeline's directory/sub", k.dirs["first"])
	}
	if first.Env["A"] != "pipeline" || second.Env["A"] != "task" || second.Env["TASUKI_PARAM_DAY"] != "2026-11-01" || second.Env["TASUKI_ATTEMPT"] != "1" {
		t.Errorf("variables: first %v, second %v", first.Env, second.Env)
	}
	if string(second.Needs["first"]) != `{"from":"first"}` || len(first.Needs) != 0 {
		t.Errorf("needs: first %v, second %v", first.Needs, second.Needs)
	}
}

// TestExecutorWithoutOutcome checks that an executor answering no known
// outcome fails the attempt, saying so, rather than corrupt the record.
func TestExecutorWithoutOutcome(t *testing.T) {
	e := newEnv(t)
	e.r.Executor = func(context.Context, *Attempt) AttemptResult {
		return AttemptResult{Outcome: "exploded", Message: "boom"}
	}
	run, tasks := e.run(context.Background(), "name: x\ntasks: [{id: a, run: 'true'}]\n", nil)
	if run.State != engine.RunFailed || !strings.Contains(tasks["a"].Message, `unknown outcome "exploded" (boom)`) {
		t.Fatalf("run %s, task %+v", run.State, tasks["a"])
	}
	atts, _ := e.st.Attempts(context.Background(), run.ID, 0)
	if len(atts) != 1 || atts[0].Outcome != attempt.Failed {
		t.Fatalf("attempts %+v", atts)
	}
}

// TestSpecBuiltOnce checks that an attempt is described once, on first
// use, and that every caller (a broker's lease, the in-process executor)
// gets that one Spec; an attempt nobody described says so.
func TestSpecBuiltOnce(t *testing.T) {
	calls := 0
	a := &Attempt{TaskID: "t", Number: 2, describe: func() (attempt.Spec, error) {
		calls++
		return attempt.Spec{Kind: "shell", Env: map[string]string{"N": strconv.Itoa(calls)}}, nil
	}}
	first, err1 := a.Spec()
	second, err2 := a.Spec()
	if err1 != nil || err2 != nil || calls != 1 || first != second || first.Env["N"] != "1" {
		t.Fatalf("described %d times: %v %v %+v %+v", calls, err1, err2, first, second)
	}
	if _, err := (&Attempt{TaskID: "t", Number: 1}).Spec(); err == nil || !strings.Contains(err.Error(), "not described") {
		t.Errorf("undescribed attempt: %v", err)
	}
	var nop Runner
	if res := nop.RunProcess(context.Background(), &Attempt{TaskID: "t", Number: 1}); res.Outcome != attempt.Failed || !strings.Contains(res.Message, "not described") {
		t.Errorf("RunProcess of an undescribed attempt: %+v", res)
	}
}

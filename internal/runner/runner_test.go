package runner

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
)

type env struct {
	t    *testing.T
	home string
	st   *sqlite.DB
	logs *logs.Files
	r    *Runner
}

func newEnv(t *testing.T) *env {
	t.Helper()
	home := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(home, "tasuki.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	lf := logs.NewFiles(filepath.Join(home, "logs"))
	return &env{t: t, home: home, st: st, logs: lf, r: &Runner{Store: st, Logs: lf, Home: home, Parallel: 4, Grace: 500 * time.Millisecond}}
}

func (e *env) pipeline(src string) *spec.Pipeline {
	e.t.Helper()
	file := filepath.Join(e.home, "pipeline.yaml")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		e.t.Fatal(err)
	}
	p, err := spec.Parse(file, []byte(src))
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// run creates and executes a run of src and returns it with its tasks by id.
func (e *env) run(ctx context.Context, src string, params map[string]string) (store.Run, map[string]store.TaskRow) {
	e.t.Helper()
	run, err := e.r.Create(ctx, e.pipeline(src), params, "manual")
	if err != nil {
		e.t.Fatal(err)
	}
	run, err = e.r.Execute(ctx, run.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return run, e.tasks(run.ID)
}

func (e *env) tasks(id int64) map[string]store.TaskRow {
	e.t.Helper()
	rows, err := e.st.Tasks(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]store.TaskRow{}
	for _, r := range rows {
		out[r.TaskID] = r
	}
	return out
}

func (e *env) log(id int64, task string, attempt int) string {
	e.t.Helper()
	rc, err := e.logs.Open(context.Background(), logs.Key{RunID: id, TaskID: task, Attempt: attempt}, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

func TestParamsEnvAndResults(t *testing.T) {
	e := newEnv(t)
	run, tasks := e.run(context.Background(), `
name: results
params:
  - {name: date, type: date, required: true}
  - {name: note, default: "a; rm -rf / #"}
env: {SHARED: pipeline, OVERRIDE: pipeline}
tasks:
  - id: produce
    run: |
      printf '{"rows": 42, "date": "%s"}' "$TASUKI_PARAM_DATE" > "$TASUKI_RESULT"
  - id: consume
    needs: [produce]
    env: {OVERRIDE: task}
    run: |
      set -e
      cat "$TASUKI_NEED_PRODUCE"; echo
      echo "note=$TASUKI_PARAM_NOTE shared=$SHARED override=$OVERRIDE attempt=$TASUKI_ATTEMPT task=$TASUKI_TASK_ID"
      grep -q '"rows": 42' "$TASUKI_NEED_PRODUCE"
  - id: argv
    run: [printf, "%s|", "$TASUKI_PARAM_DATE", two words]
`, map[string]string{"date": "2026-11-21"})
	if run.State != engine.RunSucceeded {
		t.Fatalf("run %s: %+v", run.State, tasks)
	}
	if got := string(tasks["produce"].Result); !strings.Contains(got, `"date": "2026-11-21"`) {
		t.Errorf("produce result = %s", got)
	}
	log := e.log(run.ID, "consume", 1)
	for _, want := range []string{`"rows": 42`, "note=a; rm -rf / # shared=pipeline override=task attempt=1 task=consume"} {
		if !strings.Contains(log, want) {
			t.Errorf("consume log lacks %q:\n%s", want, log)
		}
	}
	// An argv task gets no shell: "$TASUKI_PARAM_DATE" stays literal text.
	if log := e.log(run.ID, "argv", 1); !strings.Contains(log, "$TASUKI_PARAM_DATE|two words|") {
		t.Errorf("argv log = %q", log)
	}
}

func TestRetryThenSucceed(t *testing.T) {
	e := newEnv(t)
	run, tasks := e.run(context.Background(), `
name: flaky
tasks:
  - id: flaky
    retry: {attempts: 3, backoff: 10ms, multiplier: 2}
    run: '[ "$TASUKI_ATTEMPT" -ge 2 ] || { echo "not yet" >&2; exit 75; }'
  - id: after
    needs: [flaky]
    run: "true"
`, nil)
	if run.State != engine.RunSucceeded {
		t.Fatalf("run %s", run.State)
	}
	if a := tasks["flaky"].Attempt; a != 2 {
		t.Fatalf("flaky attempts = %d, want 2", a)
	}
	atts, err := e.st.Attempts(context.Background(), run.ID, tasks["flaky"].Index)
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) != 2 || atts[0].Outcome != store.OutcomeFailed || *atts[0].ExitCode != 75 || atts[1].Outcome != store.OutcomeSucceeded {
		t.Fatalf("attempts = %+v", atts)
	}
	if log := e.log(run.ID, "flaky", 1); !strings.Contains(log, " err not yet") {
		t.Errorf("attempt 1 log = %q", log)
	}
}

func TestFailureStopsDownstreamAndTimeline(t *testing.T) {
	e := newEnv(t)
	run, tasks := e.run(context.Background(), `
name: broken
tasks:
  - {id: a, run: "exit 3"}
  - {id: b, needs: [a], run: "true"}
  - {id: c, run: "true"}
`, nil)
	if run.State != engine.RunFailed {
		t.Fatalf("run %s", run.State)
	}
	if tasks["a"].State != engine.TaskFailed || *tasks["a"].ExitCode != 3 || tasks["b"].State != engine.TaskUpstreamFailed || tasks["c"].State != engine.TaskSucceeded {
		t.Fatalf("tasks = %+v", tasks)
	}
	evs, err := e.st.Events(context.Background(), run.ID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range evs {
		if ev.TaskID == "a" || ev.TaskID == "" || ev.TaskID == "b" {
			kinds = append(kinds, ev.TaskID+":"+string(ev.Kind))
		}
	}
	want := ":run_created :run_started a:task_ready a:task_started a:task_failed b:task_upstream_failed :run_finished"
	if got := strings.Join(kinds, " "); got != want {
		t.Fatalf("timeline\n got %s\nwant %s", got, want)
	}
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	e := newEnv(t)
	pidFile := filepath.Join(e.home, "pids")
	run, tasks := e.run(context.Background(), `
name: slow
tasks:
  - id: slow
    timeout: 300ms
    run: |
      sleep 60 & echo $! >> "$PIDS"
      sh -c 'trap "" TERM; sleep 60' & echo $! >> "$PIDS"
      wait
    env: {PIDS: `+pidFile+`}
`, nil)
	if run.State != engine.RunFailed || tasks["slow"].State != engine.TaskTimedOut {
		t.Fatalf("run %s, task %s", run.State, tasks["slow"].State)
	}
	assertDead(t, pidFile)
}

func TestCancelEndsProcessesAndRun(t *testing.T) {
	e := newEnv(t)
	pidFile := filepath.Join(e.home, "pids")
	fifo := filepath.Join(e.home, "started")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Opening a fifo for reading blocks until the task opens it to write.
		b, err := os.ReadFile(fifo)
		if err != nil || len(b) == 0 {
			t.Errorf("read fifo: %q %v", b, err)
		}
		cancel()
	}()
	run, tasks := e.run(ctx, `
name: long
tasks:
  - id: long
    run: 'sleep 60 & echo $! >> "$PIDS"; echo started > "$FIFO"; wait'
    env: {PIDS: `+pidFile+`, FIFO: `+fifo+`}
  - {id: next, needs: [long], run: "true"}
`, nil)
	if run.State != engine.RunCancelled || tasks["long"].State != engine.TaskCancelled || tasks["next"].State != engine.TaskCancelled {
		t.Fatalf("run %s, tasks %+v", run.State, tasks)
	}
	assertDead(t, pidFile)
}

func TestMissingBinary(t *testing.T) {
	e := newEnv(t)
	run, tasks := e.run(context.Background(), `
name: missing
tasks:
  - {id: a, run: [no-such-binary-tasuki]}
`, nil)
	if run.State != engine.RunFailed || !strings.Contains(tasks["a"].Message, "no-such-binary-tasuki") {
		t.Fatalf("run %s, message %q", run.State, tasks["a"].Message)
	}
}

func TestBadParamsRefused(t *testing.T) {
	e := newEnv(t)
	p := e.pipeline(`
name: typed
params: [{name: n, type: int, required: true}]
tasks: [{id: a, run: "true"}]
`)
	if _, err := e.r.Create(context.Background(), p, map[string]string{"n": "many"}, "manual"); err == nil || !strings.Contains(err.Error(), `"n"`) {
		t.Fatalf("err = %v", err)
	}
	if runs, _ := e.st.ListRuns(context.Background(), store.RunFilter{}); len(runs) != 0 {
		t.Fatalf("a refused run was stored: %+v", runs)
	}
}

func TestExecuteLocksRun(t *testing.T) {
	e := newEnv(t)
	run, err := e.r.Create(context.Background(), e.pipeline("name: x\ntasks: [{id: a, run: \"true\"}]\n"), nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := e.r.lock(run.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := e.r.Execute(context.Background(), run.ID); !errors.Is(err, ErrBusy) {
		t.Fatalf("err = %v, want ErrBusy", err)
	}
}

// TestResumeAfterCrash simulates the state a killed process leaves (a task
// running, one succeeded) and checks that resuming records the lost attempt,
// retries it under its policy and does not rerun what succeeded.
func TestResumeAfterCrash(t *testing.T) {
	e := newEnv(t)
	marks := filepath.Join(e.home, "marks")
	p := e.pipeline(`
name: crashy
env: {MARKS: ` + marks + `}
tasks:
  - {id: done, run: 'echo done >> "$MARKS"'}
  - id: inflight
    needs: [done]
    retry: {attempts: 2, backoff: 1ms}
    run: 'echo "inflight $TASUKI_ATTEMPT" >> "$MARKS"'
`)
	run, err := e.r.Create(context.Background(), p, nil, "manual")
	if err != nil {
		t.Fatal(err)
	}
	// Drive the run by hand to "done succeeded, inflight running (attempt 1)".
	e.r.defaults()
	c, err := e.r.load(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	steps := []engine.Event{
		{Kind: engine.EvRunStarted, Task: -1},
		{Kind: engine.EvTaskStarted, Task: 0},
		{Kind: engine.EvTaskSucceeded, Task: 0, Attempt: 1},
		{Kind: engine.EvTaskStarted, Task: 1},
	}
	for _, ev := range steps {
		if _, err := c.apply(ev, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(marks, []byte("done\n"), 0o644)

	got, err := e.r.Execute(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	tasks := e.tasks(run.ID)
	if got.State != engine.RunSucceeded || tasks["inflight"].Attempt != 2 {
		t.Fatalf("run %s, inflight attempt %d", got.State, tasks["inflight"].Attempt)
	}
	b, _ := os.ReadFile(marks)
	if string(b) != "done\ninflight 2\n" {
		t.Fatalf("side effects = %q, want done once and inflight attempt 2", b)
	}
	atts, _ := e.st.Attempts(context.Background(), run.ID, 1)
	if len(atts) != 2 || atts[0].Outcome != store.OutcomeLost {
		t.Fatalf("attempts = %+v", atts)
	}
}

// assertDead checks that every pid listed in path is gone.
func assertDead(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		if alive(pid) {
			t.Errorf("process %d outlived its task", pid)
		}
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

package runner

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/shell"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

// RunProcess runs a shell task attempt as a process in its own process group,
// with its output in the attempt's log, and reads the result it published.
func (r *Runner) RunProcess(ctx context.Context, a *Attempt) AttemptResult {
	fail := func(format string, args ...any) AttemptResult {
		return AttemptResult{Kind: engine.EvTaskFailed, Message: fmt.Sprintf(format, args...)}
	}
	env := r.environment(a)
	w, err := r.Logs.Create(ctx, a.Log, nil)
	if err != nil {
		return fail("open log: %v", err)
	}
	dir := a.Dir
	if a.Task.Workdir != "" {
		dir = a.Task.Workdir
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(a.Dir, dir)
		}
	}
	res := shell.Run(ctx, shell.Command{
		Script:  a.Task.Run.Shell,
		Argv:    a.Task.Run.Argv,
		Env:     env,
		Dir:     dir,
		Timeout: a.Task.Timeout.D(),
		Grace:   r.Grace,
		Stdout:  w.Stdout(),
		Stderr:  w.Stderr(),
	})
	if err := w.Close(); err != nil && res.StartErr == nil {
		return fail("close log: %v", err)
	}
	code := res.ExitCode
	switch {
	case res.StartErr != nil:
		return AttemptResult{Kind: engine.EvTaskFailed, Message: res.StartErr.Error()}
	case res.Cancelled:
		return AttemptResult{Kind: engine.EvTaskCancelled, ExitCode: &code, Message: "cancelled: process group ended"}
	case res.TimedOut:
		return AttemptResult{Kind: engine.EvTaskTimedOut, ExitCode: &code, Message: fmt.Sprintf("timed out after %s: process group ended", a.Task.Timeout)}
	case code != 0:
		msg := "exit status " + strconv.Itoa(code)
		if res.Signal != "" {
			msg = "killed by signal " + res.Signal
		}
		return AttemptResult{Kind: engine.EvTaskFailed, ExitCode: &code, Message: msg}
	}
	result, err := shell.ReadResult(a.resultFile())
	if err != nil {
		return AttemptResult{Kind: engine.EvTaskFailed, ExitCode: &code, Message: "read result: " + err.Error()}
	}
	return AttemptResult{Kind: engine.EvTaskSucceeded, ExitCode: &code, Result: result}
}

// environment is the attempt's full environment: this process's, then the
// pipeline's env, the task's env, parameters and tasuki's own variables (later
// entries win). Parameter values only ever travel as variables, never as
// shell text.
func (r *Runner) environment(a *Attempt) []string {
	env := os.Environ()
	for _, k := range slices.Sorted(maps.Keys(a.Pipeline.Env)) {
		env = append(env, k+"="+a.Pipeline.Env[k])
	}
	for _, k := range slices.Sorted(maps.Keys(a.Task.Env)) {
		env = append(env, k+"="+a.Task.Env[k])
	}
	for _, k := range slices.Sorted(maps.Keys(a.Params)) {
		env = append(env, k+"="+a.Params[k])
	}
	env = append(env,
		"TASUKI_HOME="+r.home(),
		"TASUKI_RUN_ID="+strconv.FormatInt(a.RunID, 10),
		"TASUKI_PIPELINE="+a.Pipeline.Name,
		"TASUKI_TASK_ID="+a.Task.ID,
		"TASUKI_ATTEMPT="+strconv.Itoa(a.Number),
		"TASUKI_RESULT="+a.resultFile(),
		"TASUKI_TRIGGER="+a.Trigger,
	)
	for _, k := range slices.Sorted(maps.Keys(a.Interval)) {
		env = append(env, k+"="+a.Interval[k])
	}
	for _, id := range slices.Sorted(maps.Keys(a.NeedFiles)) {
		env = append(env, "TASUKI_NEED_"+spec.EnvSafe(id)+"="+a.NeedFiles[id])
	}
	return env
}

// resultFile is where the attempt may write its JSON result.
func (a *Attempt) resultFile() string {
	return filepath.Join(a.WorkDir, a.Task.ID+"."+strconv.Itoa(a.Number)+".result.json")
}

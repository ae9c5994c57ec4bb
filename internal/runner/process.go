package runner

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

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
	env, err := r.environment(a)
	if err != nil {
		return fail("%v", err)
	}
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
	// The process's end decides the outcome; a log that could not be
	// written (a full disk) is reported beside it, never turned into a
	// failure of work that was done.
	var logNote string
	if err := w.Close(); err != nil && res.StartErr == nil {
		logNote = " (log incomplete: " + err.Error() + ")"
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
		return AttemptResult{Kind: engine.EvTaskFailed, ExitCode: &code, Message: msg + logNote}
	}
	result, err := shell.ReadResult(a.resultFile())
	if err != nil {
		return AttemptResult{Kind: engine.EvTaskFailed, ExitCode: &code, Message: "read result: " + err.Error() + logNote}
	}
	return AttemptResult{Kind: engine.EvTaskSucceeded, ExitCode: &code, Result: result, Message: strings.TrimPrefix(logNote, " ")}
}

// environment is the attempt's full environment: this process's, then the
// attempt's own variables (TaskEnv).
func (r *Runner) environment(a *Attempt) ([]string, error) {
	env := os.Environ()
	vars := r.TaskEnv(a)
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		env = append(env, k+"="+vars[k])
	}
	if len(a.NeedResults) > 0 {
		nf := a.needs
		if nf == nil { // an Attempt built outside a coordinator
			nf = &needFiles{dir: filepath.Join(a.WorkDir, "needs"), at: map[string]string{}}
		}
		paths, err := nf.paths(a.NeedResults)
		if err != nil {
			return nil, err
		}
		for _, id := range slices.Sorted(maps.Keys(paths)) {
			env = append(env, "TASUKI_NEED_"+spec.EnvSafe(id)+"="+paths[id])
		}
	}
	return append(env, "TASUKI_RESULT="+a.resultFile()), nil
}

// TaskEnv is what an attempt adds to its executor's environment: the
// pipeline's env, the task's env, parameters, the run's interval and
// tasuki's own variables, each overriding the one before. Parameter values
// only ever travel as variables, never as shell text. The executor adds
// TASUKI_RESULT and TASUKI_NEED_* itself, since they name its own files.
func (r *Runner) TaskEnv(a *Attempt) map[string]string {
	vars := make(map[string]string, len(a.Pipeline.Env)+len(a.Task.Env)+len(a.Params)+10)
	for _, m := range []map[string]string{a.Pipeline.Env, a.Task.Env, a.Params, a.Interval} {
		maps.Copy(vars, m)
	}
	vars["TASUKI_HOME"] = r.home()
	vars["TASUKI_RUN_ID"] = strconv.FormatInt(a.RunID, 10)
	vars["TASUKI_PIPELINE"] = a.Pipeline.Name
	vars["TASUKI_TASK_ID"] = a.Task.ID
	vars["TASUKI_ATTEMPT"] = strconv.Itoa(a.Number)
	vars["TASUKI_TRIGGER"] = a.Trigger
	return vars
}

// resultFile is where the attempt may write its JSON result.
func (a *Attempt) resultFile() string {
	return filepath.Join(a.WorkDir, a.Task.ID+"."+strconv.Itoa(a.Number)+".result.json")
}

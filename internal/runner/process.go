package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

// RunProcess runs an attempt on this machine with its kind (the shell kind:
// a process in its own process group), its output in the attempt's log.
func (r *Runner) RunProcess(ctx context.Context, a *Attempt) AttemptResult {
	r.defaults()
	s, err := a.Spec()
	if err != nil {
		return attempt.Failedf("%v", err)
	}
	w, err := r.Logs.Create(ctx, a.Log, s.MaskValues())
	if err != nil {
		if ctx.Err() != nil {
			return stoppedBeforeStart(ctx)
		}
		return attempt.Failedf("open log: %v", err)
	}
	h := &attempt.Host{
		Environ:      os.Environ(),
		Dir:          a.dir,
		ResultFile:   a.resultFile(),
		Stdout:       w.Stdout(),
		Stderr:       w.Stderr(),
		Grace:        r.Grace,
		DatasetFiles: attempt.DatasetFiles(a.workDir, a.stem(), s.Produces),
	}
	if len(s.Needs) > 0 {
		nf := a.needs
		if nf == nil { // an Attempt built outside a coordinator
			nf = &needFiles{dir: filepath.Join(a.workDir, "needs"), at: map[string]string{}}
		}
		if h.NeedFiles, err = nf.paths(s.Needs); err != nil {
			w.Close()
			return attempt.Failedf("%v", err)
		}
	}
	cleanup, err := r.placeArtifacts(ctx, a, s, h)
	if err != nil {
		w.Close()
		if ctx.Err() != nil {
			return stoppedBeforeStart(ctx)
		}
		return attempt.Failedf("%v", err)
	}
	defer cleanup()
	res := r.Kinds.Run(ctx, s, h)
	res = r.collectOutputs(ctx, s, h, res)
	// The attempt's end decides the outcome; a log that could not be
	// written (a full disk) is reported beside it, never turned into a
	// failure of work that was done.
	if err := w.Close(); err != nil {
		note := "log incomplete: " + err.Error()
		if res.Message != "" {
			note = res.Message + " (" + note + ")"
		}
		res.Message = note
	}
	return res
}

// stoppedBeforeStart is the result of an attempt stopped while it was being
// set up (its log opened, its needs' files placed), before any process of
// it started: what stopped it says what it is, as for a process ended
// (attempt.ProcessResult), never a failure charged to the task. (A drain's
// hand-back or a lost lease in that moment was recorded failed.)
func stoppedBeforeStart(ctx context.Context) AttemptResult {
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, attempt.ErrLost):
		return AttemptResult{Outcome: attempt.Preempted, Message: "lease lost before the process started"}
	case errors.Is(cause, attempt.ErrPreempted):
		return AttemptResult{Outcome: attempt.Preempted, Message: "handed back before the process started: " + cause.Error()}
	}
	return AttemptResult{Outcome: attempt.Cancelled, Message: "cancelled before the process started"}
}

// taskEnv is what an attempt adds to its executor's environment: the
// pipeline's env, the task's env, parameters, the run's interval and
// tasuki's own variables, each overriding the one before. Parameter values
// only ever travel as variables, never as shell text. The executor adds
// TASUKI_RESULT and TASUKI_NEED_* itself, since they name its own files.
// It runs off the coordinator's goroutine and reads only what never changes
// while the run executes.
func (c *coordinator) taskEnv(a *Attempt, t *spec.Task, trigger string) map[string]string {
	vars := make(map[string]string, len(c.pipeline.Env)+len(t.Env)+len(c.params)+len(c.interval)+6)
	for _, m := range []map[string]string{c.pipeline.Env, t.Env, c.params, c.interval} {
		maps.Copy(vars, m)
	}
	vars["TASUKI_HOME"] = c.r.home()
	vars["TASUKI_RUN_ID"] = strconv.FormatInt(a.RunID, 10)
	vars["TASUKI_PIPELINE"] = c.pipeline.Name
	vars["TASUKI_TASK_ID"] = t.ID
	vars["TASUKI_ATTEMPT"] = strconv.Itoa(a.Number)
	vars["TASUKI_TRIGGER"] = trigger
	return vars
}

// secretLookupTimeout bounds looking up an attempt's secrets (a store
// query each, at most).
const secretLookupTimeout = 30 * time.Second

// addSecrets gives the Spec of an attempt of task t its secret variables,
// looked up now, and the values of the run's secret parameters to mask. A
// secret that cannot be found fails the description with an error naming
// it, never a value. It runs off the coordinator's goroutine and reads only
// what never changes while the run executes.
func (c *coordinator) addSecrets(s *attempt.Spec, t *spec.Task) error {
	for _, name := range c.pipeline.SecretParams() {
		if v := c.params[spec.Param{Name: name}.EnvName()]; v != "" {
			s.Mask = append(s.Mask, v)
		}
	}
	vars := c.pipeline.SecretVars(t)
	if len(vars) == 0 {
		return nil
	}
	if c.r.Secrets == nil {
		return fmt.Errorf("task %s: this tasuki has no secrets, and the task needs %s", t.ID, quoteNames(vars))
	}
	ctx, cancel := context.WithTimeout(context.Background(), secretLookupTimeout)
	defer cancel()
	s.Secrets = make(attempt.SecretEnv, len(vars))
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		v, err := c.r.Secrets.Secret(ctx, vars[k])
		if err != nil {
			s.Secrets = nil
			return fmt.Errorf("task %s: %w", t.ID, err)
		}
		s.Secrets[k] = v
	}
	return nil
}

// quoteNames lists the secret names of vars, quoted and sorted.
func quoteNames(vars map[string]string) string {
	names := slices.Sorted(maps.Values(vars))
	for i, n := range names {
		names[i] = strconv.Quote(n)
	}
	return strings.Join(slices.Compact(names), ", ")
}

// stem names the attempt's files in the run's scratch directory: its log
// key's task (the task, or "task.ITEM" for a map item) and number.
func (a *Attempt) stem() string {
	id := a.Log.TaskID
	if id == "" {
		id = a.TaskID
	}
	return id + "." + strconv.Itoa(a.Number)
}

// resultFile is where the attempt may write its JSON result.
func (a *Attempt) resultFile() string {
	return filepath.Join(a.workDir, a.stem()+".result.json")
}

// RedactParams returns a run's stored parameter values (a JSON object) with
// the values of the parameters p declares secret replaced by "***", for
// whatever shows a run (API answers, 'tasuki status'). The store keeps the
// values, which retries and reruns need.
func RedactParams(p *spec.Pipeline, raw json.RawMessage) json.RawMessage {
	names := p.SecretParams()
	if len(names) == 0 || len(raw) == 0 {
		return raw
	}
	var values map[string]json.RawMessage
	if err := json.Unmarshal(raw, &values); err != nil {
		return json.RawMessage(`{}`) // not an object: show nothing rather than a secret
	}
	changed := false
	for _, n := range names {
		if _, ok := values[n]; ok {
			values[n] = json.RawMessage(`"` + logs.Mask + `"`)
			changed = true
		}
	}
	if !changed {
		return raw
	}
	out, err := json.Marshal(values)
	if err != nil {
		return json.RawMessage(`{}`)
	}
	return out
}

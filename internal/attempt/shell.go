package attempt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/tasuki-dev/tasuki/internal/shell"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

// shellKind is the name of the shell kind, spec.Task.Kind's "shell".
const shellKind = "shell"

// Shell is the kind of tasks that run a command as a process group
// (internal/shell): a script for /bin/sh -c, or an argv run directly.
type Shell struct {
	// Exec runs the commands, keeping what they can share from one
	// attempt to the next (shell.Executor); nil runs each with shell.Run,
	// which keeps nothing. Builtin gives each registry one.
	Exec *shell.Executor
}

// shellBody is the Spec.Body of a shell attempt. Exactly one field is set.
type shellBody struct {
	Shell string   `json:"shell,omitempty"`
	Argv  []string `json:"argv,omitempty"`
}

// Name implements Kind.
func (Shell) Name() string { return shellKind }

// Body implements Kind.
func (Shell) Body(t *spec.Task) (json.RawMessage, error) {
	return json.Marshal(shellBody{Shell: t.Run.Shell, Argv: t.Run.Argv})
}

// Run implements Kind: it runs the command in its own process group and
// returns once the whole group is gone.
func (k Shell) Run(ctx context.Context, s *Spec, h *Host) Result {
	var b shellBody
	if err := json.Unmarshal(s.Body, &b); err != nil {
		return Failedf("read the shell command of the attempt: %v", err)
	}
	var stdin io.Reader
	if len(s.Items) > 0 {
		// A batch of map items: one JSON line each, on standard input.
		var buf bytes.Buffer
		for _, it := range s.Items {
			buf.Write(it)
			buf.WriteByte('\n')
		}
		stdin = &buf
	}
	run := shell.Run
	if k.Exec != nil {
		run = k.Exec.Run
	}
	res := run(ctx, shell.Command{
		Stdin:   stdin,
		Script:  b.Shell,
		Argv:    b.Argv,
		Env:     h.Environment(s),
		Dir:     h.WorkingDir(s),
		Timeout: s.Timeout.D(),
		Grace:   h.Grace,
		Stdout:  h.Stdout,
		Stderr:  h.Stderr,
	})
	resultFile := h.ResultFile
	if len(s.Items) > 0 {
		resultFile = "" // read below as one line per item
	}
	r := ProcessResult(context.Cause(ctx), res, resultFile, s.Timeout)
	if r.Outcome == Succeeded && len(s.Items) > 0 && h.ResultFile != "" {
		results, err := shell.ReadResultLines(h.ResultFile, len(s.Items))
		if err != nil {
			r = Result{Outcome: Failed, ExitCode: r.ExitCode, Message: "read batch results: " + err.Error()}
		}
		r.Results = results
	}
	if r.Outcome == Succeeded && len(h.DatasetFiles) > 0 {
		ds, err := ReadDatasets(h.DatasetFiles)
		if err != nil {
			r = Result{Outcome: Failed, ExitCode: r.ExitCode, Message: err.Error()}
		}
		r.Datasets = ds
	}
	if res.CleanupErr != nil {
		// Every process ended; only a cgroup could not be released. Said
		// beside the outcome, never turned into a failure of the work.
		r.Message = strings.TrimPrefix(r.Message+"; cleanup: "+res.CleanupErr.Error(), "; ")
	}
	return r
}

// ProcessResult turns how a process group ended into the attempt's Result:
// the rules every kind that runs a process shares. cause is why the
// executor stopped it (context.Cause of the attempt's context; nil if it
// did not), resultFile where it may have written its result.
//
// A hand-back (ErrPreempted, ErrLost) ends the process group with SIGKILL at
// once (they match shell.ErrKill): no signal the task could answer by exiting
// 0 without having done its work. So a process that exited 0 ended by
// itself, before the kill, and did its work: it is recorded as succeeded,
// not run twice. Any other end is preempted (not charged: a non-zero exit in
// that moment may answer a SIGTERM from elsewhere, a machine shutting down),
// recorded only now that nothing of it runs, so no side effect can follow
// the hand-back. An attempt the watchdog killed while this process was
// frozen (shell.Result.Watchdog) is preempted too: neither the task nor
// anyone's decision ended it, and another server may have taken it over.
func ProcessResult(cause error, res shell.Result, resultFile string, timeout Duration) Result {
	code := res.ExitCode
	var exit *int
	if res.PID != 0 {
		exit = &code
	}
	handBack := errors.Is(cause, ErrPreempted) || errors.Is(cause, ErrLost)
	switch {
	case res.StartErr != nil:
		return Result{Outcome: Failed, Message: res.StartErr.Error()}
	case res.Watchdog:
		return Result{Outcome: Preempted, ExitCode: exit, Message: "killed by the watchdog while its executor did not answer (frozen or stuck): not charged, runs again"}
	case res.TimedOut:
		return Result{Outcome: TimedOut, ExitCode: exit, Message: fmt.Sprintf("timed out after %s: process group ended", timeout)}
	case res.Cancelled && handBack && res.PID != 0 && res.Signal == "" && code == 0:
		r := succeeded(exit, resultFile)
		if r.Outcome == Succeeded {
			r.Message = "finished by itself while being handed back (" + cause.Error() + ")"
		}
		return r
	case res.Cancelled && handBack:
		msg := "handed back: " + cause.Error() + "; process group ended"
		if errors.Is(cause, ErrLost) {
			msg = "lease lost: process group ended"
		}
		return Result{Outcome: Preempted, ExitCode: exit, Message: msg}
	case res.Cancelled:
		return Result{Outcome: Cancelled, ExitCode: exit, Message: "cancelled: process group ended"}
	case res.Signal != "":
		return Result{Outcome: Failed, ExitCode: exit, Message: "killed by signal " + res.Signal}
	case code != 0:
		return Result{Outcome: Failed, ExitCode: exit, Message: "exit status " + strconv.Itoa(code)}
	}
	return succeeded(exit, resultFile)
}

// succeeded reads the result a process that exited 0 published; one it
// cannot read fails the attempt.
func succeeded(exit *int, resultFile string) Result {
	if resultFile == "" {
		return Result{Outcome: Succeeded, ExitCode: exit}
	}
	value, err := shell.ReadResult(resultFile)
	if err != nil {
		return Result{Outcome: Failed, ExitCode: exit, Message: "read result: " + err.Error()}
	}
	return Result{Outcome: Succeeded, ExitCode: exit, Result: value}
}

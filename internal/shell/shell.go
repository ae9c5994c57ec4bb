package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultGrace is the time between SIGTERM and SIGKILL when Command.Grace is
// zero: long enough for a well-behaved program to flush and exit, short
// enough that a stuck one does not hold a worker slot for long.
const DefaultGrace = 10 * time.Second

// DefaultShell interprets Command.Script when Command.Shell is empty. POSIX sh
// is present on every system tasuki targets; tasks that want bash say so.
const DefaultShell = "/bin/sh"

// Command describes one process to run. Exactly one of Script and Argv is set.
type Command struct {
	// Script is run as `Shell -c Script`, so pipelines, redirections and
	// variables work as they do in a terminal. A script of MaxArgString
	// bytes or more, which the kernel would refuse as an argument, is
	// given to the shell on descriptor 3 and run as `Shell -c '. /dev/fd/3'
	// Shell`, so Shell must be a POSIX shell for such a script.
	Script string
	// Shell interprets Script; empty means DefaultShell. A name without a
	// slash is looked up in the PATH of Env.
	Shell string
	// Argv runs a program directly, without a shell: Argv[0] is looked up in
	// the PATH of Env (not tasuki's own PATH, so a task's PATH is honoured)
	// unless it contains a slash; relative PATH entries are ignored so that a
	// task's working directory cannot shadow a system program.
	Argv []string

	// Env is the complete environment as KEY=VALUE. Nil inherits tasuki's
	// environment (as exec.Cmd does); an empty, non-nil slice is empty.
	Env []string
	// Dir is the working directory; empty means tasuki's own.
	Dir string

	// Timeout bounds the attempt's wall-clock time; zero means none.
	Timeout time.Duration
	// Grace is how long the process group has between SIGTERM and SIGKILL
	// after a timeout or cancellation, and how long Run waits for output
	// pipes that a leftover process keeps open. Zero means DefaultGrace.
	Grace time.Duration

	// Stdout and Stderr receive the process's output; nil discards it.
	// They are written from separate goroutines unless they are the same
	// value, so a shared destination must be safe for concurrent use; the
	// two streams of one OrderedStream sink (a log) are instead read by one
	// goroutine, in the order the output arrives (output.go).
	Stdout, Stderr io.Writer
	// Stdin is the process's standard input (a batch of map items); nil
	// reads nothing (/dev/null).
	Stdin io.Reader
}

// Result tells how an attempt ended. Exactly one of these holds: StartErr is
// set (the process never ran); Signal is set (it was killed); or ExitCode is
// the status it exited with. TimedOut and Cancelled say why tasuki stopped it.
type Result struct {
	// ExitCode is the process's exit status, or -1 when it did not exit on
	// its own (killed by a signal) or never started.
	ExitCode int
	// Signal names the signal that killed the process ("SIGKILL"), if any.
	Signal string
	// TimedOut is true when Run stopped the process because Timeout elapsed.
	TimedOut bool
	// Cancelled is true when Run stopped the process because ctx was done.
	Cancelled bool
	// StartErr is set when the process could not be started at all (program
	// not found, working directory missing, ...). Such a failure is the
	// task's configuration, not a flaky run, which callers may treat
	// differently when deciding whether to retry.
	StartErr error
	// PID is the process id of the main process, which is also its process
	// group id; zero if it never started. Useful in logs and events.
	PID int
	// Duration is the wall-clock time from start until the process exited
	// and its output was collected.
	Duration time.Duration
	// CleanupErr says what could not be released after the attempt (its
	// cgroup); every process of it has ended all the same. Callers report it
	// beside the outcome, never as the attempt's failure.
	CleanupErr error
	// Watchdog is true when the process was killed by the watchdog
	// (StartWatchdog) while tasuki did not answer it (frozen, stuck),
	// before tasuki itself stopped it: neither the task's doing nor a
	// decision of tasuki's. Signal says SIGKILL.
	Watchdog bool
}

// OK reports whether the attempt succeeded: started, exited with status 0,
// and was not stopped by tasuki.
func (r Result) OK() bool {
	return r.StartErr == nil && r.ExitCode == 0 && r.Signal == "" && !r.TimedOut && !r.Cancelled
}

// Err describes a failed attempt as an error for logs and events, or returns
// nil if the attempt succeeded.
func (r Result) Err() error {
	switch {
	case r.StartErr != nil:
		return r.StartErr
	case r.Watchdog:
		return errors.New("killed by the watchdog: tasuki did not answer it (frozen)")
	case r.TimedOut:
		return fmt.Errorf("timed out after %s", r.Duration.Round(time.Millisecond))
	case r.Cancelled:
		return errors.New("cancelled")
	case r.Signal != "":
		return fmt.Errorf("killed by %s", r.Signal)
	case r.ExitCode != 0:
		return fmt.Errorf("exit status %d", r.ExitCode)
	}
	return nil
}

// errTimedOut is the cancellation cause Run gives its own timeout, to tell
// it apart from the caller cancelling ctx.
var errTimedOut = errors.New("shell: attempt timed out")

// ErrKill, matched by the cause with which ctx is cancelled
// (context.WithCancelCause and errors.Is), makes Run end the attempt with
// SIGKILL at once instead of SIGTERM and a grace period. Callers use it when
// nothing the processes would do after a signal may happen: an attempt
// handed back to run again elsewhere must not finish its work (and so its
// side effects) after the hand-back, and a process cannot exit 0 in answer to
// SIGKILL, so an exit status still says it ended by itself.
var ErrKill = errors.New("shell: kill at once")

// Run starts the command, waits for it, and returns how it ended. It never
// returns before the process has exited. If ctx is done or Timeout elapses,
// every process of the attempt (its process group, and those that left it
// but not the attempt's cage: see CurrentContainment) gets SIGTERM and,
// Grace later, SIGKILL; Run returns as soon as they are all gone. When the
// main process exits on its own, whatever it left running is killed at
// once.
//
// Run keeps nothing for the next command; a caller that runs many uses an
// Executor, whose Run is the same with less work per command.
func Run(ctx context.Context, c Command) Result {
	var e Executor
	defer e.Close()
	return e.Run(ctx, c)
}

// Run is the package's Run, with what e keeps between commands.
func (e *Executor) Run(ctx context.Context, c Command) Result {
	ct := e.ct
	if ct == nil {
		ct = processContainer()
	}
	wd := ct.watch.Load() // nil: no watchdog (StartWatchdog)
	res := Result{ExitCode: -1}
	name, argv, err := c.argv()
	if err != nil {
		res.StartErr = err
		return res
	}
	grace := c.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	env := c.Env
	if env == nil {
		env = os.Environ()
	}
	var script *os.File // a script too long for an argument (args.go)
	if c.Script != "" {
		if argv, script, err = passScript(name, c.Script, env); err != nil {
			res.StartErr = fmt.Errorf("start %q: %w", name, err)
			return res
		}
		if script != nil {
			defer script.Close()
		}
	}
	if err := checkArgs(argv, env); err != nil {
		res.StartErr = fmt.Errorf("start %q: %w", name, err)
		return res
	}
	path, err := e.paths.lookPath(name, env, time.Now())
	if err != nil {
		res.StartErr = fmt.Errorf("start %q: %w", name, err)
		return res
	}
	if c.Dir != "" {
		// Checked here because a bad directory otherwise surfaces as
		// "fork/exec /bin/sh: no such file or directory", which blames the
		// program.
		fi, err := os.Stat(c.Dir)
		if err != nil {
			res.StartErr = fmt.Errorf("start %q: working directory: %w", name, err)
			return res
		}
		if !fi.IsDir() {
			res.StartErr = fmt.Errorf("start %q: working directory %s is not a directory", name, c.Dir)
			return res
		}
	}

	runCtx, cancel := ctx, context.CancelFunc(func() {})
	if c.Timeout > 0 {
		runCtx, cancel = context.WithTimeoutCause(ctx, c.Timeout, errTimedOut)
	}
	defer cancel()

	cmd := exec.CommandContext(runCtx, path)
	cmd.Args = argv
	cmd.Env = env
	cmd.Dir = c.Dir
	cmd.Stdin = c.Stdin
	if c.Stdin == nil {
		if f := e.devNull(); f != nil {
			cmd.Stdin = f // else os/exec opens /dev/null for each process
		}
	}
	if script != nil {
		cmd.ExtraFiles = []*os.File{script} // descriptor 3
	}
	out, err := wireOutput(cmd, c.Stdout, c.Stderr, &e.epolls) // see output.go
	if err != nil {
		res.StartErr = fmt.Errorf("start %q: %w", name, err)
		return res
	}
	defer out.close()
	// Pdeathsig fires when the thread that started the child exits; Go
	// only retires threads of goroutines that exit while locked to them,
	// which Run never is, so in practice it fires when tasuki dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// WaitDelay bounds how long Wait waits for the output pipes after the
	// process exited or ctx was done: a leftover that keeps them open cannot
	// make Run hang.
	cmd.WaitDelay = grace

	var (
		stop stopper
		cg   cage
	)
	cmd.Cancel = func() error {
		return stop.terminate(cmd.Process.Pid, cg, grace, context.Cause(runCtx))
	}

	if runCtx.Err() != nil {
		// Not an error of the command: it was stopped before it began.
		res.TimedOut = errors.Is(context.Cause(runCtx), errTimedOut)
		res.Cancelled = !res.TimedOut
		return res
	}
	cg, err = ct.open()
	if err != nil {
		res.StartErr = fmt.Errorf("start %q: %w", name, err)
		return res
	}
	defer func() {
		// Everything was killed; this waits for the dead to be gone.
		res.CleanupErr = cg.close(res.PID)
	}()
	start := time.Now()
	if err := cg.start(cmd); err != nil {
		res.StartErr = fmt.Errorf("start %q: %w", name, err)
		return res
	}
	out.started()
	pgid := cmd.Process.Pid
	res.PID = pgid
	if wd != nil {
		wd.started(pgid)
	}
	awaitLeaderExit(pgid)
	if !stop.stopping() {
		// The task is over. Kill what it left behind now, while its
		// unreaped main process still holds the group id, rather than let
		// a leftover holding the output pipes keep Wait for WaitDelay.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		cg.kill(pgid)
	}
	_ = cmd.Wait() // how it ended is read from ProcessState below
	out.wait(grace)
	res.Duration = time.Since(start)

	stop.finish(pgid, cg)

	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		res.Signal = unix.SignalName(ws.Signal())
		if res.Signal == "" {
			res.Signal = ws.Signal().String()
		}
	} else {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	res.TimedOut, res.Cancelled = stop.reason()
	if wd != nil {
		wd.ended(pgid)
		if at, ok := wd.firedSince(start); ok {
			// The watchdog may have killed the cage from outside.
			cg.spoil()
			if watchdogFirst(ws.Signaled(), at, stop.at()) {
				res.Watchdog = true
				res.TimedOut, res.Cancelled = false, false
			}
		}
	}
	return res
}

// watchdogFirst reports whether the end of a process that fired after its
// start was the watchdog's: it was killed by a signal, and tasuki had not
// stopped it before the watchdog fired. (A timer that goes off as this
// process wakes up stops a process that is already dead: not a timeout. A
// timeout's grace the watchdog cut short is still a timeout.)
func watchdogFirst(signaled bool, fired, stopped time.Time) bool {
	return signaled && (stopped.IsZero() || fired.Before(stopped))
}

// stopper holds the state of stopping one process group: whether (and why)
// it was asked to stop, and the timer that escalates to SIGKILL.
type stopper struct {
	mu       sync.Mutex
	cause    error       // why terminate was called; nil if it was not
	when     time.Time   // when terminate was called
	deadline time.Time   // when the grace period ends
	kill     *time.Timer // sends SIGKILL at deadline
}

// terminate sends SIGTERM to the group and the rest of the cage, and
// arranges SIGKILL after grace; for a cause matching ErrKill it sends
// SIGKILL at once. It is cmd.Cancel, called at most once, when ctx is done
// before Wait returns.
func (s *stopper) terminate(pgid int, cg cage, grace time.Duration, cause error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if errors.Is(cause, ErrKill) {
		// No signal it could answer: the whole attempt ends now.
		if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill process group %d: %w", pgid, err)
		}
		cg.kill(pgid)
		s.cause, s.when = cause, time.Now()
		return nil
	}
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			// Already gone and reaped: it ended on its own.
			return os.ErrProcessDone
		}
		return fmt.Errorf("signal process group %d: %w", pgid, err)
	}
	cg.signal(pgid, syscall.SIGTERM)
	s.cause, s.when = cause, time.Now()
	s.deadline = s.when.Add(grace)
	s.kill = time.AfterFunc(grace, func() {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		cg.kill(pgid)
	})
	return nil
}

// finish makes sure no process of the group or the cage outlives the
// attempt. It runs after Wait: the main process has exited and been reaped.
// If the attempt was being terminated, the rest of the cage keeps its grace
// period (a child that got SIGTERM may be cleaning up); then, and in any
// case, whatever is left gets SIGKILL. (Run has already killed the
// leftovers of an attempt that ended on its own; the second kill costs
// little.)
//
// The group id is the reaped main process's id. Linux allocates ids
// cyclically and does not reuse one while a process still has it as group
// id, so signalling -pgid cannot hit an unrelated group in practice.
func (s *stopper) finish(pgid int, cg cage) {
	s.mu.Lock()
	deadline, kill := s.deadline, s.kill
	s.mu.Unlock()
	if kill != nil {
		kill.Stop()
		// Let the rest of the cage use what is left of its grace period.
		cg.wait(pgid, deadline)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	cg.kill(pgid)
}

// at reports when terminate was called; zero if it was not.
func (s *stopper) at() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.when
}

// stopping reports whether terminate has been called.
func (s *stopper) stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cause != nil
}

// awaitLeaderExit returns when process pid has exited, without reaping it
// (waitid with WNOWAIT), so that its id stays reserved and signals to its
// group cannot reach an unrelated process.
func awaitLeaderExit(pid int) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return // exited, or not waitable: Wait reports either way
		}
	}
}

// reason reports whether the group was stopped because of Run's timeout or
// because the caller's ctx was done.
func (s *stopper) reason() (timedOut, cancelled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cause == nil {
		return false, false
	}
	if errors.Is(s.cause, errTimedOut) {
		return true, false
	}
	return false, true
}

// argv returns the program to look up and the argument vector to give it.
func (c Command) argv() (string, []string, error) {
	switch {
	case c.Script != "" && len(c.Argv) > 0:
		return "", nil, errors.New("start: command has both a script and argv; set one")
	case c.Script != "":
		sh := c.Shell
		if sh == "" {
			sh = DefaultShell
		}
		return sh, []string{sh, "-c", c.Script}, nil
	case len(c.Argv) > 0 && c.Argv[0] != "":
		return c.Argv[0], c.Argv, nil
	}
	return "", nil, errors.New("start: command has neither a script nor argv")
}

// unwrapExecError drops exec.Error's own "exec: name:" prefix, which Run's
// "start name:" prefix already says.
func unwrapExecError(err error) error {
	if e, ok := errors.AsType[*exec.Error](err); ok {
		return e.Err
	}
	return err
}

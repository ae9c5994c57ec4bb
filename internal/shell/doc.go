// Package shell runs one attempt of a shell task as a real operating-system
// process, and makes sure that when the attempt is over nothing it started is
// left running.
//
// A task is rarely a single process: `sh -c 'a | b & c; wait'` is a tree of
// them, and a plain exec.CommandContext only kills the direct child, leaving
// the rest to run on (and to hold the output pipes open, so Wait hangs). Run
// therefore starts every attempt in a process group of its own and signals
// the whole group: SIGTERM first, so tasks can clean up, then SIGKILL after a
// grace period. When the main process has exited, whatever is left in its
// group is killed as well, so a finished, timed-out or cancelled attempt
// leaves no orphans behind. The direct child also gets SIGKILL if tasuki
// itself dies (Pdeathsig).
//
// A descendant that moves to a new session or group (setsid, a daemon)
// escapes a group kill, so each attempt is also contained by the strongest
// mechanism this system lets tasuki use (contain.go): a cgroup v2 of its
// own, created with the process (CLONE_INTO_CGROUP) and ended with
// cgroup.kill; else a cgroup of the v1 freezer hierarchy, frozen and
// killed; else tasuki is a child subreaper and ends the orphans it adopts
// from the attempt. CurrentContainment says which one is in use. When the
// attempt ends, its cage is emptied: whatever it left, in its group or
// not, is killed.
//
// None of this helps while tasuki is alive but frozen (SIGSTOP, a paused
// machine, stuck in the kernel): its attempts run on, and on a shared store
// another server runs them again. A Watchdog (watchdog.go) is a companion
// process that tasuki keeps alive with keepalives over a pipe and tells of
// each attempt's process group; when the keepalives stop for its timeout,
// or the pipe closes, it kills the attempts (companion.go), and Run reports
// such an end as Result.Watchdog rather than the task's failure.
//
// Run keeps nothing from one command to the next. An Executor runs commands
// the same way and keeps what they can share (epoll instances, where
// programs were found in PATH, /dev/null), for as long as it lives: a
// registry of attempt kinds holds one.
package shell

package shell

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// MaxArgString is the kernel's limit on one argument or environment string,
// its terminating NUL included (MAX_ARG_STRLEN, 32 pages): execve fails
// with E2BIG ("argument list too long") on a longer one.
const MaxArgString = 32 * 4096

// scriptPath is where a shell finds a script passed on descriptor 3.
const scriptPath = "/dev/fd/3"

// passScript decides how a script reaches the shell. A script short enough
// is an argument, `sh -c SCRIPT`. A longer one, or one that with the
// environment would exceed the kernel's total (argMax), is put in an
// anonymous in-memory file given to the shell as descriptor 3 and read with
// `sh -c '. /dev/fd/3' sh`: $0 is the shell as with -c, there are no
// positional parameters either way, and the script runs in the shell
// itself, as with -c. The file is nil when the script is an argument;
// otherwise the caller passes it as the child's descriptor 3 and closes it
// after the start.
func passScript(sh, script string, env []string) (argv []string, file *os.File, err error) {
	argv = []string{sh, "-c", script}
	if len(script) < MaxArgString && argSpace(argv, env) <= argMax() {
		return argv, nil, nil
	}
	f, err := scriptFile(script)
	if err != nil {
		return nil, nil, fmt.Errorf("pass a script of %d bytes: %w", len(script), err)
	}
	return []string{sh, "-c", ". " + scriptPath, sh}, f, nil
}

// scriptFile returns a read-only, sealed in-memory file holding script.
func scriptFile(script string) (*os.File, error) {
	fd, err := unix.MemfdCreate("tasuki-script", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		// No memfd (Linux before 3.17): an unlinked temporary file does
		// the same, on disk.
		f, err := os.CreateTemp("", "tasuki-script-*")
		if err != nil {
			return nil, err
		}
		_ = os.Remove(f.Name())
		if _, err := f.WriteString(script); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
	f := os.NewFile(uintptr(fd), "tasuki-script")
	if _, err := f.WriteString(script); err != nil {
		f.Close()
		return nil, err
	}
	// Sealed, the script cannot change while the shell reads it, whatever
	// the task does with /dev/fd/3.
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal script file: %w", err)
	}
	return f, nil
}

// argSpace is about what execve counts against argMax, rounded up: the
// strings of argv and env with their NULs, and a pointer for each.
func argSpace(argv, env []string) int {
	n := 4096 // the program's path and alignment, with room to spare
	for _, s := range argv {
		n += len(s) + 1 + 8
	}
	for _, s := range env {
		n += len(s) + 1 + 8
	}
	return n
}

// argMax is the kernel's bound on argSpace: a quarter of the stack limit,
// at least 128 KiB and at most 6 MiB (three quarters of the 8 MiB stack the
// kernel assumes when the limit is larger).
func argMax() int {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_STACK, &lim); err != nil {
		return 128 << 10
	}
	return int(min(max(lim.Cur/4, 128<<10), 6<<20))
}

// checkArgs refuses an argument vector and environment that execve would
// refuse, saying which string is too long, rather than let the start fail
// with "argument list too long".
func checkArgs(argv, env []string) error {
	for i, s := range argv {
		if len(s) >= MaxArgString {
			return fmt.Errorf("argument %d is %d bytes; the kernel takes at most %d per argument", i, len(s), MaxArgString-1)
		}
	}
	for _, s := range env {
		if len(s) >= MaxArgString {
			name, _, _ := strings.Cut(s, "=")
			return fmt.Errorf("environment variable %s is %d bytes; the kernel takes at most %d per variable", name, len(s), MaxArgString-1)
		}
	}
	if n, limit := argSpace(argv, env), argMax(); n > limit {
		return fmt.Errorf("arguments and environment take %d bytes; the kernel takes at most %d (a quarter of the stack limit, ulimit -s)", n, limit)
	}
	return nil
}

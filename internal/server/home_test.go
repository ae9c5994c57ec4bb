package server_test

// Tests of who may use a data directory, and of what its files let others
// see, with real tasuki processes: a server owns its embedded store alone,
// 'tasuki run' processes share theirs, and nothing in it is readable by
// other users.

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cliProc is a tasuki command running as its own process.
type cliProc struct {
	cmd         *exec.Cmd
	out, errOut bytes.Buffer
	done        chan struct{}
	code        int
}

// startCLI starts the tasuki command with args; a command line starting
// with "sh" runs through the shell (to set a umask first), with the tasuki
// executable as $0.
func startCLI(t *testing.T, env []string, args ...string) *cliProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &cliProc{done: make(chan struct{})}
	if args[0] == "sh" {
		p.cmd = exec.Command("sh", append([]string{"-c", args[1], exe}, args[2:]...)...)
	} else {
		p.cmd = exec.Command(exe, args...)
	}
	p.cmd.Env = serverEnv(env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errOut
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits for the command to end and returns its exit status.
func (p *cliProc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("%v did not end within %s\nstderr:\n%s", p.cmd.Args, within, p.errOut.String())
	}
	return p.code
}

// runCLI runs the tasuki command to its end.
func runCLI(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	p := startCLI(t, env, args...)
	code = p.wait(t, time.Minute)
	return code, p.out.String(), p.errOut.String()
}

// readFifo waits for a task of p to write to the FIFO.
func readFifo(t *testing.T, fifo string, p *cliProc) {
	t.Helper()
	got := make(chan error, 1)
	go func() {
		_, err := os.ReadFile(fifo)
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-p.done:
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		t.Fatalf("%v ended (%d) before its task wrote to %s\n%s", p.cmd.Args, p.code, fifo, p.errOut.String())
	}
}

func mkfifoNamed(t *testing.T, path string) string {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestProcessRunPriorityFirstSlot runs three tasks that are ready at once
// through one slot with 'tasuki run': the one with priority 10 must start
// first, then the others in file order.
func TestProcessRunPriorityFirstSlot(t *testing.T) {
	for _, tt := range []struct{ name, pool, flags string }{
		{"-j 1", "", "-j 1"},
		{"pool of 1", ", pool: db", "-j 4 --pool db=1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			order := filepath.Join(dir, "order")
			file := writeFile(t, dir, "prio.yaml", `name: prio
tasks:
  - {id: a, run: 'echo a >> "$ORDER"'`+tt.pool+`}
  - {id: b, run: 'echo b >> "$ORDER"'`+tt.pool+`}
  - {id: c, run: 'echo c >> "$ORDER"', priority: 10`+tt.pool+`}
`)
			args := append([]string{"run", "--home", filepath.Join(dir, "home"), "-q"}, strings.Fields(tt.flags)...)
			code, _, stderr := runCLI(t, []string{"ORDER=" + order}, append(args, file)...)
			if code != 0 {
				t.Fatalf("tasuki run: exit %d\n%s", code, stderr)
			}
			b, err := os.ReadFile(order)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Fields(string(b)); strings.Join(got, " ") != "c a b" {
				t.Fatalf("start order %v, want c (priority 10) first, then a and b", got)
			}
		})
	}
}

// TestProcessOneServerPerHome checks that the embedded store of a data
// directory has one server: a second server, and 'tasuki run', are refused
// while it runs, naming it; 'tasuki run' processes share the store with
// each other, and keep a server out while they run.
func TestProcessOneServerPerHome(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	pipelines := filepath.Join(dir, "pipelines")
	if err := os.Mkdir(pipelines, 0o755); err != nil {
		t.Fatal(err)
	}
	quick := writeFile(t, dir, "quick.yaml", "name: quick\ntasks:\n  - {id: q, run: 'true'}\n")

	first := startServer(t, home, pipelines, nil)
	pid := strconv.Itoa(first.cmd.Process.Pid)

	code, _, stderr := runCLI(t, nil, "server", "--home", home, "--pipelines", pipelines, "--addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(stderr, "process "+pid) || !strings.Contains(stderr, "--home") {
		t.Fatalf("second server: exit %d, want 1 and a message naming process %s\n%s", code, pid, stderr)
	}
	if strings.Contains(stderr, "listening") {
		t.Fatalf("the second server started listening:\n%s", stderr)
	}
	code, _, stderr = runCLI(t, nil, "run", "--home", home, quick)
	for _, want := range []string{"process " + pid, "TASUKI_SERVER", "tasuki trigger"} {
		if code != 1 || !strings.Contains(stderr, want) {
			t.Fatalf("tasuki run beside a server: exit %d, want 1 and a message with %q\n%s", code, want, stderr)
		}
	}
	if first.exited() {
		t.Fatalf("the first server exited: %v\n%s", first.err, first.logs())
	}
	first.term(30 * time.Second)

	// Without a server, runs share the store: one holds a task running
	// while another runs to its end, and a server cannot start meanwhile.
	started, release := mkfifoNamed(t, filepath.Join(dir, "started")), mkfifoNamed(t, filepath.Join(dir, "go"))
	hold := writeFile(t, dir, "hold.yaml", `name: hold
tasks:
  - {id: h, run: 'echo started > "$STARTED" && read line < "$GO"'}
`)
	long := startCLI(t, []string{"STARTED=" + started, "GO=" + release}, "run", "--home", home, "-q", hold)
	readFifo(t, started, long)
	if code, _, stderr := runCLI(t, nil, "run", "--home", home, "-q", quick); code != 0 {
		t.Fatalf("a second tasuki run beside a running one: exit %d\n%s", code, stderr)
	}
	code, _, stderr = runCLI(t, nil, "server", "--home", home, "--pipelines", pipelines, "--addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(stderr, "'tasuki run'") {
		t.Fatalf("server beside a tasuki run: exit %d, want 1 and a message about tasuki run\n%s", code, stderr)
	}
	if err := os.WriteFile(release, []byte("go\n"), 0); err != nil {
		t.Fatal(err)
	}
	if code := long.wait(t, time.Minute); code != 0 {
		t.Fatalf("the held run: exit %d\n%s", code, long.errOut.String())
	}

	// Once the runs have ended, a server starts on the directory again.
	startServer(t, home, pipelines, nil).term(30 * time.Second)
}

// TestProcessHomeIsPrivate runs a pipeline whose tasks pass a result under
// umask 022 and checks that nothing the run leaves in the data directory,
// nor the scratch files its tasks see, is open to the group or others.
func TestProcessHomeIsPrivate(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	seen := filepath.Join(dir, "seen")
	file := writeFile(t, dir, "private.yaml", `name: private
params:
  - {name: secret, type: string, default: hunter2}
tasks:
  - id: a
    run: |
      printf '{"token": "%s"}' "$TASUKI_PARAM_SECRET" > "$TASUKI_RESULT"
  - id: b
    needs: [a]
    run: |
      stat -c '%a %n' "$TASUKI_NEED_A" "$(dirname "$TASUKI_NEED_A")" "$(dirname "$TASUKI_RESULT")" > "$SEEN"
`)
	code, _, stderr := runCLI(t, []string{"SEEN=" + seen}, "sh", `umask 022 && exec "$0" "$@"`, "run", "--home", home, "-q", file)
	if code != 0 {
		t.Fatalf("tasuki run: exit %d\n%s", code, stderr)
	}
	b, err := os.ReadFile(seen)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 {
		t.Fatalf("task b saw %q, want three files", b)
	}
	for _, line := range lines {
		mode, name, _ := strings.Cut(line, " ")
		perm, err := strconv.ParseUint(mode, 8, 32)
		if err != nil || perm&0o077 != 0 {
			t.Errorf("%s has mode %s while the run runs, want no access for group and others", name, mode)
		}
	}

	var files int
	err = filepath.WalkDir(home, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files++
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v, want no access for group and others", path, perm)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 6 { // home, tasuki.db and its lock, logs/1/..., locks/...
		t.Fatalf("walked only %d entries of %s", files, home)
	}
}

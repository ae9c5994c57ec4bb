package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Instance is a PostgreSQL server of one test's own (Private): a test may
// stop and restart it without disturbing the shared server other tests
// use.
type Instance struct {
	dir    string // the instance's directory (data, socket, log)
	port   int
	pgCtl  string
	cred   *syscall.Credential // the user the server runs as; nil: this process's
	logOut string
}

// Private starts a PostgreSQL server of the test's own: initdb and pg_ctl
// (from $PATH, else /usr/lib/postgresql/*/bin) in a temporary directory, on
// a free port of 127.0.0.1, trust authentication, no fsync (it is thrown
// away). PostgreSQL refuses to run as root, so as root it runs as the
// postgres user. It is stopped and removed when the test ends.
//
// Without the binaries (or the user) the test is skipped with a message
// saying what is missing, except under CI=true, where it fails.
func Private(t testing.TB) *Instance {
	t.Helper()
	skip := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...) + "\nA private PostgreSQL needs initdb and pg_ctl (package postgresql) and, as root, a user named postgres."
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s\n(CI=true: the tests that restart PostgreSQL must run, not be skipped.)", msg)
		}
		t.Skip(msg)
	}
	initdb, pgCtl := findBin("initdb"), findBin("pg_ctl")
	if initdb == "" || pgCtl == "" {
		skip("initdb or pg_ctl not found in $PATH or /usr/lib/postgresql/*/bin")
	}
	dir, err := os.MkdirTemp("", "tasuki-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	in := &Instance{dir: dir, pgCtl: pgCtl, logOut: filepath.Join(dir, "server.log")}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			skip("running as root and there is no postgres user to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		in.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := in.command(initdb, "-D", in.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	in.port = freePort(t)
	t.Cleanup(func() {
		_ = in.command(pgCtl, "-D", in.data(), "-m", "immediate", "-w", "stop").Run()
	})
	in.Start(t)
	return in
}

// DSN is the URL of the instance's postgres database, as user postgres.
func (in *Instance) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", in.port)
}

// Addr is the instance's host:port.
func (in *Instance) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(in.port)) }

// Start starts the server (again) and waits until it accepts connections.
func (in *Instance) Start(t testing.TB) {
	t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off", in.port, in.dir)
	if out, err := in.command(in.pgCtl, "-D", in.data(), "-o", opts, "-l", in.logOut, "-w", "-t", "60", "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(in.logOut)
		t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	in.await(t)
}

// Stop stops the server: "fast" ends the sessions (they get 57P01
// admin_shutdown) and shuts down cleanly; "immediate" is a crash.
func (in *Instance) Stop(t testing.TB, mode string) {
	t.Helper()
	if out, err := in.command(in.pgCtl, "-D", in.data(), "-m", mode, "-w", "-t", "60", "stop").CombinedOutput(); err != nil {
		t.Fatalf("pg_ctl stop -m %s: %v\n%s", mode, err, out)
	}
}

// Restart is pg_ctl restart -m fast: every session is ended and the server
// starts again on the same port.
func (in *Instance) Restart(t testing.TB) {
	t.Helper()
	in.Stop(t, "fast")
	in.Start(t)
}

// Log is what the server wrote to its log, for a failing test's message.
func (in *Instance) Log() string {
	b, _ := os.ReadFile(in.logOut)
	return string(b)
}

func (in *Instance) data() string { return filepath.Join(in.dir, "data") }

func (in *Instance) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = in.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if in.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: in.cred}
	}
	return cmd
}

// await waits until the server answers a query.
func (in *Instance) await(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, in.DSN())
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("private PostgreSQL at %s did not answer: %v\n%s", in.Addr(), err, in.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// findBin finds a PostgreSQL server program.
func findBin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	if len(matches) == 0 {
		return ""
	}
	return matches[len(matches)-1] // the newest version, by name
}

// freePort returns a TCP port of 127.0.0.1 nothing listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := strings.Cut(ln.Addr().String(), ":")
	n, _ := strconv.Atoi(port)
	return n
}

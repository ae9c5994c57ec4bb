package cli

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair: what the master writes, a program
// reading the slave reads as typed on a terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// TestReadSecretValueFromTerminal: on a terminal, 'secret set' reads one
// line with echo off (the terminal shows nothing of the value), then puts
// the terminal back as it was.
func TestReadSecretValueFromTerminal(t *testing.T) {
	master, slave := openPTY(t)
	before, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if before.Lflag&unix.ECHO == 0 {
		t.Fatal("a new terminal does not echo")
	}
	var prompt bytes.Buffer
	a := &app{io: IO{In: slave, Err: &prompt}}
	type answer struct {
		v   string
		err error
	}
	got := make(chan answer, 1)
	go func() {
		v, err := a.readSecretValue("db_password")
		got <- answer{v, err}
	}()
	// Type once echo is off: the line discipline echoes what arrives
	// while it is on.
	deadline := time.Now().Add(10 * time.Second)
	for {
		tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if tio.Lflag&unix.ECHO == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("echo was never turned off")
		}
		time.Sleep(time.Millisecond) // polling a terminal's mode: no event to wait on
	}
	if _, err := master.WriteString("typed-s3cret\n"); err != nil {
		t.Fatal(err)
	}
	res := <-got
	if res.err != nil || res.v != "typed-s3cret" {
		t.Fatalf("read %q, %v", res.v, res.err)
	}
	if !strings.Contains(prompt.String(), "not echoed") {
		t.Errorf("prompt = %q", prompt.String())
	}
	after, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err != nil || after.Lflag != before.Lflag {
		t.Errorf("terminal flags after = %#x, before %#x (%v)", after.Lflag, before.Lflag, err)
	}
	// What the terminal echoed is on the master, before a marker written
	// to the terminal now: nothing of the value may be there.
	if _, err := slave.WriteString("END-OF-ECHO\n"); err != nil {
		t.Fatal(err)
	}
	var echoed []byte
	buf := make([]byte, 256)
	for !bytes.Contains(echoed, []byte("END-OF-ECHO")) {
		n, err := master.Read(buf)
		if err != nil {
			t.Fatalf("read the terminal: %v (so far %q)", err, echoed)
		}
		echoed = append(echoed, buf[:n]...)
	}
	if bytes.Contains(echoed, []byte("typed-s3cret")) {
		t.Errorf("the terminal echoed the value: %q", echoed)
	}
}

// TestReadSecretValueFromPipe: from a pipe or a file the whole input is the
// value, less one trailing newline; an empty one is refused.
func TestReadSecretValueFromPipe(t *testing.T) {
	for in, want := range map[string]string{"v\n": "v", "line1\nline2\n": "line1\nline2", "v\r\n": "v", "v": "v"} {
		a := &app{io: IO{In: strings.NewReader(in), Err: &bytes.Buffer{}}}
		if got, err := a.readSecretValue("x"); err != nil || got != want {
			t.Errorf("input %q: %q, %v; want %q", in, got, err, want)
		}
	}
	a := &app{io: IO{In: strings.NewReader("\n"), Err: &bytes.Buffer{}}}
	if _, err := a.readSecretValue("x"); err == nil || !strings.Contains(err.Error(), "standard input is empty") {
		t.Errorf("empty input: %v", err)
	}
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestStatusOnATerminal runs 'tasuki status' of a failed run under a real
// terminal 70 columns wide (script(1) gives it a pseudo-terminal) and
// through a pipe: on the terminal the failure's message wraps within the
// width, whole; through the pipe it is printed whole on one line.
func TestStatusOnATerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tasuki")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to build tasuki with")
	}
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("no script(1) to run tasuki on a terminal")
	}
	bin := tasukiBinary(t)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	missing := "a-program-that-does-not-exist-" + strings.Repeat("x", 60)
	file := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(file, []byte("name: z\ntasks:\n  - {id: a, run: ["+missing+"]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command(bin, "--home", home, "run", file).Run(); err == nil {
		t.Fatal("the run of a missing program succeeded")
	}
	piped, err := exec.Command(bin, "--home", home, "status", "1").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(piped), `"`+missing+`": executable file not found`) {
		t.Errorf("through a pipe, status cut the message:\n%s", piped)
	}
	shown, err := exec.Command("script", "-qec", "stty cols 70; '"+bin+"' --home '"+home+"' status 1", "/dev/null").Output()
	if err != nil {
		t.Fatalf("script: %v\n%s", err, shown)
	}
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(shown), "\r", ""), "\n"), "\n")
	col := -1
	var msg strings.Builder
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n > 70 {
			t.Errorf("a line is %d wide on a 70-column terminal:\n%s", n, shown)
		}
		if i := strings.Index(l, "MESSAGE"); i >= 0 {
			col = i
			continue
		}
		if col >= 0 && len(l) > col && !strings.HasPrefix(l, "run ") {
			msg.WriteString(l[col:])
		}
	}
	if !strings.Contains(msg.String(), missing) {
		t.Errorf("on a terminal, the message column does not hold the whole message:\n%s", shown)
	}
}

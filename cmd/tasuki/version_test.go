package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestVersionNamesTheCommit builds tasuki the way a user does and checks
// that --version and 'tasuki version' name the commit it was built from,
// which Go records from git (vcs.revision) without any -ldflags.
func TestVersionNamesTheCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tasuki")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to build tasuki with")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	bin := tasukiBinary(t)
	flag, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("tasuki --version: %v", err)
	}
	cmd, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("tasuki version: %v", err)
	}
	// 'tasuki version' says the same, then how attempts are contained.
	if !strings.HasPrefix(string(cmd), string(flag)) || !strings.Contains(string(cmd), "\nattempt containment: ") {
		t.Errorf("--version printed %q, version printed %q", flag, cmd)
	}
	// Another commit may land between the build and the rev-parse in a
	// shared checkout; the recorded commit is then HEAD's parent or older,
	// so compare with the build's own record when they differ.
	want := strings.TrimSpace(string(head))[:12]
	if !strings.HasPrefix(string(flag), "tasuki ") {
		t.Fatalf("--version = %q", flag)
	}
	if strings.Contains(string(flag), want) {
		return
	}
	m := regexp.MustCompile(`(?:commit |-)([0-9a-f]{12})\b`).FindStringSubmatch(string(flag))
	if m == nil {
		t.Fatalf("--version = %q, want the commit it was built from (%s)", flag, want)
	}
	if err := exec.Command("git", "merge-base", "--is-ancestor", m[1], "HEAD").Run(); err != nil {
		t.Errorf("--version = %q names %s, which is not HEAD (%s) nor before it", flag, m[1], want)
	}
}

package main

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The release build is written in two places that must agree: the
// "Release builds" section of docs/operations.md, which people copy, and the
// build stage of deploy/Dockerfile. These tests hold them to one command and
// run it.

// buildLine finds the release build command in a file: the line holding
// "CGO_ENABLED=0 go build", from there on.
func buildLine(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.Index(line, "CGO_ENABLED=0 go build"); i >= 0 {
			found = append(found, strings.TrimSpace(line[i:]))
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d lines with the release build (CGO_ENABLED=0 go build), want 1: %q", path, len(found), found)
	}
	return found[0]
}

// buildArgs splits a release build command into its words, quotes removed
// and ${VAR} written $VAR, without the output file (-o FILE), which each
// place names its own way.
func buildArgs(t *testing.T, line string) []string {
	t.Helper()
	line = regexp.MustCompile(`\$\{([A-Z_]+)\}`).ReplaceAllString(line, "$$$1")
	var words []string
	var cur strings.Builder
	quote := byte(0)
	in := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '"' || c == '\''):
			quote, in = c, true
		case quote == 0 && (c == ' ' || c == '\t'):
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		t.Fatalf("unbalanced quotes in %q", line)
	}
	if in {
		words = append(words, cur.String())
	}
	if i := slices.Index(words, "-o"); i >= 0 && i+1 < len(words) {
		words = slices.Delete(words, i, i+2)
	}
	return words
}

func TestReleaseBuildDocumentedAsBuilt(t *testing.T) {
	doc := buildArgs(t, buildLine(t, "../../docs/operations.md"))
	docker := buildArgs(t, buildLine(t, "../../deploy/Dockerfile"))
	if !slices.Equal(doc, docker) {
		t.Errorf("the release build differs:\ndocs/operations.md: %q\ndeploy/Dockerfile:  %q", doc, docker)
	}
	joined := strings.Join(doc, " ")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=$VERSION",
		"-X github.com/tasuki-dev/tasuki/internal/cli.buildCommit=$COMMIT",
		"-X github.com/tasuki-dev/tasuki/internal/cli.buildDate=$BUILD_DATE", "./cmd/tasuki"} {
		if !strings.Contains(joined, want) {
			t.Errorf("the release build %q lacks %q", joined, want)
		}
	}
}

var (
	releaseOnce sync.Once
	releaseBin  string
	releaseErr  error
)

// releaseValues are what the test's release build is given.
var releaseValues = map[string]string{
	"VERSION":    "v9.8.7-test",
	"COMMIT":     "0123456789abcdef0123456789abcdef01234567",
	"BUILD_DATE": "2026-12-24T09:00:00Z",
}

// releaseBinary runs the documented release build once, with
// releaseValues, into a temporary directory.
func releaseBinary(t *testing.T) string {
	t.Helper()
	releaseOnce.Do(func() {
		words := buildArgs(t, buildLine(t, "../../docs/operations.md"))
		dir, err := os.MkdirTemp("", "tasuki-release-")
		if err != nil {
			releaseErr = err
			return
		}
		releaseBin = filepath.Join(dir, "tasuki")
		var env []string
		for len(words) > 0 && strings.Contains(words[0], "=") {
			env = append(env, words[0])
			words = words[1:]
		}
		for i, w := range words {
			words[i] = os.Expand(w, func(k string) string { return releaseValues[k] })
		}
		// go build FLAGS... PACKAGE, run from the repository's root, with
		// the output given before the package.
		n := len(words)
		args := append(append(slices.Clone(words[1:n-1]), "-o", releaseBin), words[n-1])
		cmd := exec.Command(words[0], args...)
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			releaseErr = fmt.Errorf("%s: %w\n%s", cmd, err, out)
		}
	})
	if releaseErr != nil {
		t.Fatal(releaseErr)
	}
	return releaseBin
}

// TestReleaseBuild runs the release build and checks what it promises: a
// static binary (it runs on scratch or distroless static), whose version
// names the version, commit and date it was given.
func TestReleaseBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tasuki")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to build tasuki with")
	}
	bin := releaseBinary(t)
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(bin)) })
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the release binary names a program interpreter: it is not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the release binary needs shared libraries: %v", libs)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("tasuki version: %v", err)
	}
	want := fmt.Sprintf("tasuki %s (commit %s, %s, ", releaseValues["VERSION"], releaseValues["COMMIT"][:12], releaseValues["BUILD_DATE"])
	if !strings.HasPrefix(string(out), want) {
		t.Errorf("tasuki version printed %q, want it to start with %q", out, want)
	}
}

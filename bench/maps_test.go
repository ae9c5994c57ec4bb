package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMapInprocess runs the in-process map measurement at a small size, so
// that what the map-1m row reports is known to be measured: the run
// succeeded with every item counted, status reads were timed while it ran,
// and the row is filled in.
func TestMapInprocess(t *testing.T) {
	o := &options{work: t.TempDir(), outDir: t.TempDir()}
	const n = 30_000
	m, err := mapInprocess(context.Background(), o, "map-test", n, false)
	if err != nil {
		t.Fatal(err)
	}
	if m.statusErrs != 0 || len(m.status) == 0 {
		t.Errorf("%d status reads timed, %d failed; want some and none", len(m.status), m.statusErrs)
	}
	if want := "30000 items: succeeded 30000"; m.counts != want {
		t.Errorf("counts after the end = %q, want %q", m.counts, want)
	}
	if m.exec <= 0 || m.hwm <= 0 {
		t.Errorf("execute %s, VmHWM %d: not measured", m.exec, m.hwm)
	}
}

// TestGenUsers checks the example's generator: the files it writes, that a
// change rewrites exactly the users it says and nothing else, that the same
// arguments give the same bytes, and that bad arguments write nothing.
func TestGenUsers(t *testing.T) {
	script, err := filepath.Abs(filepath.Join("..", "examples", "per-user-agent", "gen-users.sh"))
	if err != nil {
		t.Fatal(err)
	}
	gen := func(t *testing.T, args ...string) (string, error) {
		t.Helper()
		out, err := exec.Command("sh", append([]string{script}, args...)...).CombinedOutput()
		return string(out), err
	}
	read := func(t *testing.T, dir string) map[string]string {
		t.Helper()
		files := map[string]string{}
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			files[strings.TrimPrefix(path, dir+"/")] = string(b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return files
	}

	dir := t.TempDir()
	if out, err := gen(t, dir, "40"); err != nil {
		t.Fatalf("gen-users.sh %s 40: %v\n%s", dir, err, out)
	}
	first := read(t, dir)
	if got := strings.Count(first["users.txt"], "\n"); got != 40 {
		t.Errorf("users.txt has %d lines, want 40", got)
	}
	if len(first) != 42 { // 40 users, users.txt, shared/context.json
		t.Errorf("%d files written, want 42", len(first))
	}
	if u := first["users/u000017.json"]; !strings.Contains(u, `"id": "u000017"`) || !strings.Contains(u, `"revision": 1`) {
		t.Errorf("users/u000017.json = %q", u)
	}

	again := t.TempDir()
	if out, err := gen(t, again, "40"); err != nil {
		t.Fatalf("gen-users.sh again: %v\n%s", err, out)
	}
	if second := read(t, again); len(second) != len(first) {
		t.Errorf("a second directory got %d files, want %d", len(second), len(first))
	} else {
		for name, b := range first {
			if second[name] != b {
				t.Errorf("%s differs between two runs with the same arguments", name)
			}
		}
	}

	if out, err := gen(t, dir, "40", "4"); err != nil {
		t.Fatalf("gen-users.sh %s 40 4: %v\n%s", dir, err, out)
	}
	var changed []string
	for name, b := range read(t, dir) {
		if first[name] != b {
			changed = append(changed, name)
			if !strings.Contains(b, `"revision": 2`) {
				t.Errorf("%s changed without a new revision: %q", name, b)
			}
		}
	}
	if len(changed) != 4 {
		t.Errorf("a change of 4 rewrote %d files (%v), want 4", len(changed), changed)
	}

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"N not a number", []string{"abc"}, "N must be a number"},
		{"CHANGE not a number", []string{"10", "x"}, "CHANGE must be a number"},
		{"CHANGE above N", []string{"10", "11"}, "CHANGE <= N"},
		{"N zero", []string{"0"}, "1 <= N"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "data")
			out, err := gen(t, append([]string{d}, tt.args...)...)
			if err == nil || !strings.Contains(out, tt.want) {
				t.Errorf("gen-users.sh %v: err %v, output %q; want a failure saying %q", tt.args, err, out, tt.want)
			}
			if _, err := os.Stat(d); !os.IsNotExist(err) {
				t.Errorf("bad arguments created %s", d)
			}
		})
	}
}

// TestAgentAwk runs the example's agent over a generated user: one JSON line
// naming the user, and a clear failure without prepare's result.
func TestAgentAwk(t *testing.T) {
	example := filepath.Join("..", "examples", "per-user-agent")
	dir := t.TempDir()
	if out, err := exec.Command("sh", filepath.Join(example, "gen-users.sh"), dir, "3").CombinedOutput(); err != nil {
		t.Fatalf("gen-users.sh: %v\n%s", err, out)
	}
	need := filepath.Join(dir, "prepare.json")
	if err := os.WriteFile(need, []byte(`{"context": "1234"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		need    string
		wantOut string
		wantErr string
	}{
		{"scores the user", need, `{"user": "u000002", "events": 48, "score": `, ""},
		{"no result of prepare", filepath.Join(dir, "missing.json"), "", "cannot read prepare's result"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("awk", "-f", filepath.Join(example, "agent.awk"), filepath.Join(dir, "users", "u000002.json"))
			cmd.Env = append(os.Environ(), "TASUKI_NEED_PREPARE="+tt.need)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(stderr.String(), tt.wantErr) {
					t.Errorf("err %v, stderr %q; want a failure saying %q", err, stderr.String(), tt.wantErr)
				}
				return
			}
			if err != nil || !strings.HasPrefix(stdout.String(), tt.wantOut) || strings.Count(stdout.String(), "\n") != 1 {
				t.Errorf("err %v, stdout %q, stderr %q; want one line starting %q", err, stdout.String(), stderr.String(), tt.wantOut)
			}
		})
	}
}

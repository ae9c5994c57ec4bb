package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
)

// TestProcessJSONLogAndSIGHUP: `tasuki server --log-format json` writes its
// own log as JSON objects, and the lines about an attempt name its run,
// pipeline, task and attempt; SIGHUP switches to debug while it runs (the
// map items' lines appear), and back.
func TestProcessJSONLogAndSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	home, pipelines := t.TempDir(), t.TempDir()
	writeFile(t, pipelines, "logged.yaml", `
name: logged
tasks:
  - id: one
    run: "true"
  - id: each
    run: "true"
    map: {items: [a, b, c]}
`)
	s := startServer(t, home, pipelines, nil, "--log-format", "json")
	trigger := func() {
		t.Helper()
		run, err := s.c.Trigger(context.Background(), "logged", nil, "test")
		if err != nil {
			t.Fatal(err)
		}
		if got := waitRunEnd(t, s.c, run.ID); got.State != engine.RunSucceeded {
			t.Fatalf("run: %s", got.State)
		}
	}
	type line map[string]any
	lines := func() []line {
		var out []line
		for _, text := range strings.Split(s.logs(), "\n") {
			if strings.HasPrefix(text, "time=") {
				t.Fatalf("a text line in a JSON log: %s", text)
			}
			if !strings.HasPrefix(text, "{") {
				continue // the first admin token notice and the listening line are for people
			}
			var l line
			if err := json.Unmarshal([]byte(text), &l); err != nil {
				t.Fatalf("log line %q: %v", text, err)
			}
			out = append(out, l)
		}
		return out
	}
	// The lines about attempts run here are debug: a run of 10,000 short
	// tasks would otherwise write 20,000 lines.
	attemptLines := func() (n int) {
		for _, l := range lines() {
			if l["msg"] != "attempt started" {
				continue
			}
			n++
			for _, k := range []string{"run", "pipeline", "task", "attempt", "worker"} {
				if l[k] == nil {
					t.Errorf("line %v lacks %q", l, k)
				}
			}
			if l["task"] == "each" && l["item"] == nil {
				t.Errorf("a map item's line %v lacks its item", l)
			}
		}
		return n
	}
	trigger()
	if n := attemptLines(); n != 0 {
		t.Fatalf("at info, %d lines about attempts, want none:\n%s", n, s.logs())
	}
	for _, l := range lines() {
		if l["msg"] == "run triggered" && (l["pipeline"] != "logged" || l["run"] == nil) {
			t.Errorf("the trigger's line does not name its run and pipeline: %v", l)
		}
	}

	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the level change to be logged", func() (bool, string) {
		return strings.Contains(s.logs(), `"log level changed (SIGHUP)","level":"DEBUG"`), s.logs()
	})
	trigger()
	if n := attemptLines(); n != 4 {
		t.Errorf("at debug, %d lines about attempts, want 4 (a task and 3 items)", n)
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the level back to info", func() (bool, string) {
		return strings.Contains(s.logs(), `"log level changed (SIGHUP)","level":"INFO"`), s.logs()
	})
	trigger()
	if n := attemptLines(); n != 4 {
		t.Errorf("back at info, %d lines about attempts, want still 4", n)
	}
}

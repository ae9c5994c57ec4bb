package filewait

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/attempt"
)

// TestMaxMatches: a pattern matching more paths than the bound fails the
// wait instead of being stat-ed at every check.
func TestMaxMatches(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a", "b", "c", "d"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := &attempt.Spec{Kind: "wait.file", Body: json.RawMessage(`{"file": "*"}`)}
	h := &attempt.Host{Dir: dir}
	if obs := (Wait{}).check(t.Context(), s, h, nil, 4); !obs.Met {
		t.Fatalf("at the bound: %+v", obs)
	}
	obs := Wait{}.check(t.Context(), s, h, nil, 3)
	if obs.Met || !strings.Contains(obs.Fail, "file * matches 4 paths, more than the 3") {
		t.Errorf("over the bound: %+v", obs)
	}
}

// TestStopped: a check whose context is done returns at once, not met, and
// keeps the memo so stable_for's clock is not lost.
func TestStopped(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	memo := json.RawMessage(`{"fingerprint":"f","since":"2024-05-01T12:00:00Z"}`)
	s := &attempt.Spec{Kind: "wait.file", Body: json.RawMessage(`{"file": "*", "stable_for": "1s"}`)}
	obs := Wait{}.Check(ctx, s, &attempt.Host{Dir: dir}, memo)
	if obs.Met || obs.Fail != "" || string(obs.Memo) != string(memo) {
		t.Errorf("stopped check: %+v", obs)
	}
}

func TestEscapeMeta(t *testing.T) {
	for in, want := range map[string]string{
		"/plain/dir":  "/plain/dir",
		"/a*/b?[c]":   `/a\*/b\?\[c]`,
		`/back\slash`: `/back\\slash`,
	} {
		if got := escapeMeta(in); got != want {
			t.Errorf("escapeMeta(%q) = %q, want %q", in, got, want)
		}
	}
}

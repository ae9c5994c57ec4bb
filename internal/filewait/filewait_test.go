package filewait_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/filewait"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

// clock is a settable clock for stable_for.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time             { return c.now }
func (c *clock) advance(d time.Duration)    { c.now = c.now.Add(d) }
func newClock() *clock                      { return &clock{now: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)} }
func (c *clock) wait() filewait.Wait        { return filewait.Wait{Now: c.Now} }
func taskOf(w spec.Wait) *spec.Task         { return &spec.Task{ID: "arrive", Wait: &w} }
func hostAt(dir string) *attempt.Host       { return &attempt.Host{Dir: dir} }
func write(t *testing.T, path, data string) { t.Helper(); writeFile(t, path, data, os.O_TRUNC) }
func appendTo(t *testing.T, path, data string) {
	t.Helper()
	writeFile(t, path, data, os.O_APPEND)
}

func writeFile(t *testing.T, path, data string, flag int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|flag, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// describe builds the attempt's Spec through a registry, as the runner
// does.
func describe(t *testing.T, reg *attempt.Registry, task *spec.Task, env map[string]string) *attempt.Spec {
	t.Helper()
	s, err := reg.Describe(task, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &s
}

// specOf builds the Spec of a file wait directly from the condition.
func specOf(t *testing.T, w spec.Wait) *attempt.Spec {
	t.Helper()
	b, err := filewait.Wait{}.Body(taskOf(w))
	if err != nil {
		t.Fatal(err)
	}
	return &attempt.Spec{Kind: "wait.file", Body: b}
}

type listing struct {
	Files []struct {
		Path     string `json:"path"`
		Size     int64  `json:"size"`
		Modified string `json:"modified"`
	} `json:"files"`
	Count     int  `json:"count"`
	Truncated bool `json:"truncated"`
}

func decode(t *testing.T, obs attempt.Observation) listing {
	t.Helper()
	if !obs.Met {
		t.Fatalf("not met: %+v", obs)
	}
	var l listing
	if err := json.Unmarshal(obs.Result, &l); err != nil {
		t.Fatalf("result %s: %v", obs.Result, err)
	}
	return l
}

func paths(l listing) []string {
	var out []string
	for _, f := range l.Files {
		out = append(out, f.Path)
	}
	return out
}

func TestNameIsTheTaskKind(t *testing.T) {
	if got, want := (filewait.Wait{}).Name(), taskOf(spec.Wait{File: "x"}).Kind(); got != want {
		t.Errorf("Name() = %q, want the task's kind %q", got, want)
	}
}

func TestBody(t *testing.T) {
	b, err := filewait.Wait{}.Body(taskOf(spec.Wait{File: "in/*.csv", MinSize: 10, NonEmpty: true, Marker: "_SUCCESS", StableFor: spec.Duration(30 * time.Second)}))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"file": "in/*.csv", "min_size": 10.0, "non_empty": true, "marker": "_SUCCESS", "stable_for": "30s"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("body = %s, want %v", b, want)
	}
	for _, task := range []*spec.Task{{ID: "run", Run: spec.Command{Shell: "true"}}, taskOf(spec.Wait{HTTP: "http://x"})} {
		if _, err := (filewait.Wait{}).Body(task); err == nil {
			t.Errorf("Body of a task without a file wait (%s) succeeded", task.Kind())
		}
	}
}

// TestArrives: nothing matches, then the file appears; the wait goes
// through a registry as the executor's does.
func TestArrives(t *testing.T) {
	dir := t.TempDir()
	reg, err := attempt.NewRegistry(filewait.Wait{Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	s := describe(t, reg, taskOf(spec.Wait{File: "data/in/*.csv"}), nil)
	h := hostAt(dir)

	obs := reg.Check(t.Context(), s, h, nil)
	if obs.Met || obs.Fail != "" || obs.Seen != "no file matches data/in/*.csv" {
		t.Fatalf("before the file: %+v", obs)
	}
	write(t, filepath.Join(dir, "data/in/a.txt"), "not a csv")
	if obs := reg.Check(t.Context(), s, h, obs.Memo); obs.Met || obs.Seen != "no file matches data/in/*.csv" {
		t.Fatalf("with a file the glob does not match: %+v", obs)
	}

	path := filepath.Join(dir, "data/in/a.csv")
	write(t, path, "id,name\n1,x\n")
	mod := time.Date(2024, 5, 1, 11, 59, 0, 0, time.UTC)
	if err := os.Chtimes(path, mod, mod); err != nil {
		t.Fatal(err)
	}
	obs = reg.Check(t.Context(), s, h, obs.Memo)
	l := decode(t, obs)
	if obs.Seen != "1 file matches data/in/*.csv" {
		t.Errorf("Seen = %q", obs.Seen)
	}
	if l.Count != 1 || l.Truncated || len(l.Files) != 1 {
		t.Fatalf("result = %s", obs.Result)
	}
	if f := l.Files[0]; f.Path != "data/in/a.csv" || f.Size != 12 || f.Modified != "2024-05-01T11:59:00Z" {
		t.Errorf("file = %+v", f)
	}
}

// TestGlob: every matching file is in the result, in path order;
// directories that match do not count.
func TestGlob(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "in/b.csv"), "2")
	write(t, filepath.Join(dir, "in/a.csv"), "1")
	if err := os.MkdirAll(filepath.Join(dir, "in/dir.csv"), 0o755); err != nil {
		t.Fatal(err)
	}
	obs := filewait.Wait{}.Check(t.Context(), specOf(t, spec.Wait{File: "in/*.csv"}), hostAt(dir), nil)
	l := decode(t, obs)
	if want := []string{"in/a.csv", "in/b.csv"}; !reflect.DeepEqual(paths(l), want) || l.Count != 2 {
		t.Errorf("result = %s, want paths %q", obs.Result, want)
	}
	if obs.Seen != "2 files match in/*.csv" {
		t.Errorf("Seen = %q", obs.Seen)
	}

	// A pattern that matches only a directory matches no file.
	obs = filewait.Wait{}.Check(t.Context(), specOf(t, spec.Wait{File: "in/dir.csv"}), hostAt(dir), nil)
	if obs.Met || obs.Seen != "no file matches in/dir.csv" {
		t.Errorf("directory only: %+v", obs)
	}
}

// TestSizes: min_size and non_empty hold for every matched file, and the
// first file that fails one is named.
func TestSizes(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "in/a.csv"), strings.Repeat("x", 12))
	write(t, filepath.Join(dir, "in/b.csv"), strings.Repeat("x", 200))
	write(t, filepath.Join(dir, "in/c.csv"), "")
	cases := []struct {
		name string
		wait spec.Wait
		met  bool
		seen string
	}{
		{"min_size below", spec.Wait{File: "in/[ab].csv", MinSize: 100}, false, "in/a.csv has 12 bytes, fewer than min_size 100"},
		{"min_size met", spec.Wait{File: "in/[ab].csv", MinSize: 12}, true, "2 files match in/[ab].csv"},
		{"non_empty with an empty file", spec.Wait{File: "in/*.csv", NonEmpty: true}, false, "in/c.csv is empty"},
		{"non_empty met", spec.Wait{File: "in/[ab].csv", NonEmpty: true}, true, "2 files match in/[ab].csv"},
		{"empty file without non_empty", spec.Wait{File: "in/c.csv"}, true, "1 file matches in/c.csv"},
		{"min_size and an empty file", spec.Wait{File: "in/c.csv", MinSize: 1}, false, "in/c.csv has 0 bytes, fewer than min_size 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := specOf(t, c.wait)
			obs := filewait.Wait{}.Check(t.Context(), s, hostAt(dir), nil)
			if obs.Met != c.met || obs.Seen != c.seen || obs.Fail != "" {
				t.Errorf("got met=%v seen=%q fail=%q, want met=%v seen=%q", obs.Met, obs.Seen, obs.Fail, c.met, c.seen)
			}
			// The same files give the same Seen at the next check.
			if again := (filewait.Wait{}).Check(t.Context(), s, hostAt(dir), obs.Memo); again.Seen != obs.Seen {
				t.Errorf("Seen changed between checks: %q, then %q", obs.Seen, again.Seen)
			}
		})
	}
}

// TestMarker: the marker must exist in every directory holding a match,
// and is not itself one of the files it marks.
func TestMarker(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "out/d1/part-0"), "a")
	write(t, filepath.Join(dir, "out/d2/part-0"), "b")
	write(t, filepath.Join(dir, "out/d2/part-1"), "c")
	s := specOf(t, spec.Wait{File: "out/*/part-*", Marker: "_SUCCESS"})
	h := hostAt(dir)

	obs := filewait.Wait{}.Check(t.Context(), s, h, nil)
	if obs.Met || obs.Seen != "marker _SUCCESS missing in out/d1" {
		t.Fatalf("no marker: %+v", obs)
	}
	write(t, filepath.Join(dir, "out/d1/_SUCCESS"), "")
	obs = filewait.Wait{}.Check(t.Context(), s, h, obs.Memo)
	if obs.Met || obs.Seen != "marker _SUCCESS missing in out/d2" {
		t.Fatalf("one marker of two: %+v", obs)
	}
	write(t, filepath.Join(dir, "out/d2/_SUCCESS"), "")
	obs = filewait.Wait{}.Check(t.Context(), s, h, obs.Memo)
	if l := decode(t, obs); l.Count != 3 {
		t.Errorf("result = %s", obs.Result)
	}

	// A pattern that matches the (empty) marker too: non_empty applies to
	// the data files only.
	obs = filewait.Wait{}.Check(t.Context(), specOf(t, spec.Wait{File: "out/d2/*", Marker: "_SUCCESS", NonEmpty: true}), h, nil)
	if l := decode(t, obs); !reflect.DeepEqual(paths(l), []string{"out/d2/part-0", "out/d2/part-1"}) {
		t.Errorf("result = %s", obs.Result)
	}

	// Files at the top of the working directory.
	write(t, filepath.Join(dir, "top.csv"), "x")
	obs = filewait.Wait{}.Check(t.Context(), specOf(t, spec.Wait{File: "top.csv", Marker: "_DONE"}), h, nil)
	if obs.Seen != "marker _DONE missing in the working directory" {
		t.Errorf("Seen = %q", obs.Seen)
	}
}

// TestStableFor: a file that arrives half-written is not taken while it
// grows; once it stayed unchanged for stable_for, it is.
func TestStableFor(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	w := c.wait()
	s := specOf(t, spec.Wait{File: "in/*.csv", StableFor: spec.Duration(30 * time.Second)})
	h := hostAt(dir)
	path := filepath.Join(dir, "in/a.csv")
	const waiting = "1 file, waiting for it to stay unchanged for 30s"

	write(t, path, "id,name\n1,")
	obs := w.Check(t.Context(), s, h, nil)
	if obs.Met || obs.Seen != waiting || obs.Memo == nil {
		t.Fatalf("first sight: %+v", obs)
	}

	// More arrives 20s later: the clock starts over.
	c.advance(20 * time.Second)
	appendTo(t, path, "x\n2,y\n")
	obs = w.Check(t.Context(), s, h, obs.Memo)
	if obs.Met || obs.Seen != waiting {
		t.Fatalf("after growing: %+v", obs)
	}

	// 30s after the first sight but 10s after the change: still waiting.
	c.advance(10 * time.Second)
	obs = w.Check(t.Context(), s, h, obs.Memo)
	if obs.Met || obs.Seen != waiting {
		t.Fatalf("10s after the change: %+v", obs)
	}

	// Rewritten with the same size and a new time: starts over again.
	mod := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, mod, mod); err != nil {
		t.Fatal(err)
	}
	c.advance(25 * time.Second)
	obs = w.Check(t.Context(), s, h, obs.Memo)
	if obs.Met {
		t.Fatalf("after a new modification time: %+v", obs)
	}

	// Unchanged for 30s since then: met.
	c.advance(29 * time.Second)
	if obs2 := w.Check(t.Context(), s, h, obs.Memo); obs2.Met {
		t.Fatalf("29s unchanged: %+v", obs2)
	} else {
		obs = obs2
	}
	c.advance(time.Second)
	obs = w.Check(t.Context(), s, h, obs.Memo)
	if l := decode(t, obs); l.Count != 1 || l.Files[0].Size != 16 {
		t.Errorf("result = %s", obs.Result)
	}

	// A second file joins: the set changed, the clock starts over.
	write(t, filepath.Join(dir, "in/b.csv"), "z")
	obs = w.Check(t.Context(), s, h, obs.Memo)
	if obs.Met || obs.Seen != "2 files, waiting for them to stay unchanged for 30s" {
		t.Fatalf("with a second file: %+v", obs)
	}

	// Without the memo (an executor restarted) the clock starts over too.
	c.advance(time.Minute)
	if obs := w.Check(t.Context(), s, h, nil); obs.Met {
		t.Fatalf("without memo: %+v", obs)
	}
	if obs := w.Check(t.Context(), s, h, json.RawMessage(`{"garbage`)); obs.Met || obs.Fail != "" {
		t.Fatalf("with a memo that is not one: %+v", obs)
	}
}

// TestStableWhileMarkerMissing: the stability clock runs while the marker
// is still missing, so data that stayed put is taken as soon as the
// marker arrives.
func TestStableWhileMarkerMissing(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	s := specOf(t, spec.Wait{File: "in/*.csv", Marker: "_SUCCESS", StableFor: spec.Duration(time.Minute)})
	h := hostAt(dir)
	write(t, filepath.Join(dir, "in/a.csv"), "data")
	obs := c.wait().Check(t.Context(), s, h, nil)
	if obs.Met || obs.Seen != "marker _SUCCESS missing in in" {
		t.Fatalf("first: %+v", obs)
	}
	c.advance(time.Minute)
	write(t, filepath.Join(dir, "in/_SUCCESS"), "")
	if obs = c.wait().Check(t.Context(), s, h, obs.Memo); !obs.Met {
		t.Fatalf("marker after a stable minute: %+v", obs)
	}
}

// TestWhere: a relative pattern starts at the attempt's working directory
// (Host.Dir joined with Spec.Workdir); an absolute one is used as is and
// its paths are reported absolute.
func TestWhere(t *testing.T) {
	base := t.TempDir()
	write(t, filepath.Join(base, "pipelines/sales/in/a.csv"), "1")
	reg, err := attempt.NewRegistry(filewait.Wait{})
	if err != nil {
		t.Fatal(err)
	}

	task := taskOf(spec.Wait{File: "in/*.csv"})
	task.Workdir = "pipelines/sales"
	obs := reg.Check(t.Context(), describe(t, reg, task, nil), hostAt(base), nil)
	if l := decode(t, obs); !reflect.DeepEqual(paths(l), []string{"in/a.csv"}) {
		t.Errorf("relative workdir: %s", obs.Result)
	}

	// Through the parent of the working directory.
	obs = reg.Check(t.Context(), describe(t, reg, taskOf(spec.Wait{File: "../sales/in/*.csv"}), nil), hostAt(filepath.Join(base, "pipelines/other")), nil)
	if l := decode(t, obs); !reflect.DeepEqual(paths(l), []string{"../sales/in/a.csv"}) {
		t.Errorf("with ..: %s", obs.Result)
	}

	abs := filepath.Join(base, "pipelines/sales/in/*.csv")
	obs = reg.Check(t.Context(), describe(t, reg, taskOf(spec.Wait{File: abs}), nil), hostAt(t.TempDir()), nil)
	if l := decode(t, obs); !reflect.DeepEqual(paths(l), []string{filepath.Join(base, "pipelines/sales/in/a.csv")}) {
		t.Errorf("absolute pattern: %s", obs.Result)
	}

	// A working directory whose name holds glob characters matches only
	// itself.
	odd := filepath.Join(base, "we[ir]d*")
	write(t, filepath.Join(odd, "x.csv"), "1")
	write(t, filepath.Join(base, "weird", "x.csv"), "1") // what the name would match as a pattern
	obs = reg.Check(t.Context(), describe(t, reg, taskOf(spec.Wait{File: "*.csv"}), nil), hostAt(odd), nil)
	if l := decode(t, obs); !reflect.DeepEqual(paths(l), []string{"x.csv"}) {
		t.Errorf("odd working directory: %s", obs.Result)
	}
}

// TestVariables: ${VAR} in the path takes the attempt's variable; messages
// show the pattern as written.
func TestVariables(t *testing.T) {
	dir := t.TempDir()
	reg, err := attempt.NewRegistry(filewait.Wait{})
	if err != nil {
		t.Fatal(err)
	}
	task := taskOf(spec.Wait{File: "in/${DAY}/*.csv"})
	s := describe(t, reg, task, map[string]string{"DAY": "2024-05-01"})
	h := hostAt(dir)
	write(t, filepath.Join(dir, "in/2024-04-30/a.csv"), "old")

	obs := reg.Check(t.Context(), s, h, nil)
	if obs.Met || obs.Seen != "no file matches in/2024-05-01/*.csv" {
		t.Fatalf("before: %+v", obs)
	}
	write(t, filepath.Join(dir, "in/2024-05-01/a.csv"), "new")
	obs = reg.Check(t.Context(), s, h, obs.Memo)
	if l := decode(t, obs); !reflect.DeepEqual(paths(l), []string{"in/2024-05-01/a.csv"}) {
		t.Errorf("result = %s", obs.Result)
	}

	// A variable the attempt does not have can never be there: the wait
	// fails.
	obs = reg.Check(t.Context(), describe(t, reg, task, nil), h, nil)
	if obs.Met || !strings.Contains(obs.Fail, "${DAY}") {
		t.Errorf("unknown variable: %+v", obs)
	}
}

// TestFails: what can never hold ends the wait at once.
func TestFails(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "in/a.csv"), "1")
	reg, err := attempt.NewRegistry(filewait.Wait{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		s    *attempt.Spec
		fail string
	}{
		{"malformed pattern", describe(t, reg, taskOf(spec.Wait{File: "in/[a-.csv"}), nil), "file in/[a-.csv is not a valid pattern"},
		{"malformed pattern in a missing directory", describe(t, reg, taskOf(spec.Wait{File: "nowhere/[.csv"}), nil), "not a valid pattern"},
		{"malformed body", &attempt.Spec{Kind: "wait.file", Body: json.RawMessage(`{"file": 3}`)}, "read the file wait"},
		{"no file", &attempt.Spec{Kind: "wait.file", Body: json.RawMessage(`{}`)}, "names no file"},
		{"negative min_size", &attempt.Spec{Kind: "wait.file", Body: json.RawMessage(`{"file": "a", "min_size": -1}`)}, "min_size -1 is negative"},
		{"absolute marker", describe(t, reg, taskOf(spec.Wait{File: "in/*.csv", Marker: "/tmp/_SUCCESS"}), nil), "must be relative"},
		{"empty after expansion", describe(t, reg, taskOf(spec.Wait{File: "${EMPTY}"}), map[string]string{"EMPTY": ""}), "is empty once"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			obs := reg.Check(t.Context(), c.s, hostAt(dir), nil)
			if obs.Met || !strings.Contains(obs.Fail, c.fail) {
				t.Errorf("got %+v, want Fail containing %q", obs, c.fail)
			}
		})
	}
}

// TestTruncated: the result lists at most 1000 files, with the full count.
func TestTruncated(t *testing.T) {
	dir := t.TempDir()
	for i := range 1001 {
		write(t, filepath.Join(dir, "in", fmt.Sprintf("f%04d.csv", i)), "")
	}
	obs := filewait.Wait{}.Check(t.Context(), specOf(t, spec.Wait{File: "in/*.csv"}), hostAt(dir), nil)
	l := decode(t, obs)
	if l.Count != 1001 || !l.Truncated || len(l.Files) != 1000 || l.Files[0].Path != "in/f0000.csv" || l.Files[999].Path != "in/f0999.csv" {
		t.Errorf("count=%d truncated=%v listed=%d", l.Count, l.Truncated, len(l.Files))
	}
}

// TestSecretsMasked: a path built from a secret is masked in what the
// registry reports; the Seen shows the pattern as written.
func TestSecretsMasked(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "drop/s3cr3t-token/a.csv"), "1")
	reg, err := attempt.NewRegistry(filewait.Wait{})
	if err != nil {
		t.Fatal(err)
	}
	s := describe(t, reg, taskOf(spec.Wait{File: "drop/${TOKEN}/*.csv"}), nil)
	s.Secrets = attempt.SecretEnv{"TOKEN": "s3cr3t-token"}
	obs := reg.Check(context.Background(), s, hostAt(dir), nil)
	if !obs.Met || strings.Contains(string(obs.Result), "s3cr3t-token") || strings.Contains(obs.Seen, "s3cr3t-token") {
		t.Errorf("secret in what was reported: %+v (result %s)", obs, obs.Result)
	}
}

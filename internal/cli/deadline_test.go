package cli

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
)

// TestPrintDeadline covers each deadline state as 'tasuki status' prints it.
func TestPrintDeadline(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Date(2026, 12, 7, 20, 0, 0, 0, tokyo)
	at := func(d time.Duration) *time.Time { x := deadline.Add(d); return &x }
	tests := []struct {
		name string
		run  api.Run
		want string
	}{
		{"none", api.Run{}, ""},
		{"not judged", api.Run{Deadline: &deadline}, "deadline: 2026-12-07 20:00:00 JST (not judged yet)\n"},
		{"on track", api.Run{Deadline: &deadline, DeadlineState: "on_track", PredictedFinish: at(-20 * time.Minute), CriticalPath: []string{"a", "b"}},
			"deadline: 2026-12-07 20:00:00 JST, on track: predicted finish 2026-12-07 19:40:00 JST (20m0s to spare)\ncritical path: a -> b\n"},
		{"at risk", api.Run{Deadline: &deadline, DeadlineState: "at_risk", PredictedFinish: at(190 * time.Second), CriticalPath: []string{"wait-london", "merge"}},
			"deadline: 2026-12-07 20:00:00 JST, at risk: predicted finish 2026-12-07 20:03:10 JST (3m10s late)\ncritical path: wait-london -> merge\n"},
		{"missed", api.Run{Deadline: &deadline, DeadlineState: "missed"}, "deadline: 2026-12-07 20:00:00 JST, missed\n"},
		{"met", api.Run{Deadline: &deadline, DeadlineState: "met"}, "deadline: 2026-12-07 20:00:00 JST, met\n"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		printDeadline(&b, tt.run, view{loc: tokyo})
		if b.String() != tt.want {
			t.Errorf("%s:\n got  %q\n want %q", tt.name, b.String(), tt.want)
		}
	}
}

// TestStatusShowsDeadline: 'tasuki status' against a server prints the
// run's deadline, its state, the predicted finish and the critical path;
// -o json has them as the API gives them.
func TestStatusShowsDeadline(t *testing.T) {
	s := newTestServer(t)
	deadline := time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC)
	predicted := deadline.Add(3 * time.Minute)
	run := s.fake.AddRun(api.Run{Pipeline: "hello", State: engine.RunRunning, Trigger: "manual",
		Deadline: &deadline, DeadlineState: "at_risk", PredictedFinish: &predicted, CriticalPath: []string{"greet", "after"},
		Tasks: []api.Task{{ID: "greet", State: engine.TaskRunning}, {ID: "after", Index: 1, State: engine.TaskPending}}})
	r := call("--server", s.url, "status", itoa(run.ID))
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"deadline: ", ", at risk: predicted finish ", "(3m0s late)", "critical path: greet -> after"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	r = call("--server", s.url, "status", itoa(run.ID), "-o", "json")
	var got api.Run
	mustDecode(t, r.stdout, &got)
	if got.DeadlineState != "at_risk" || got.Deadline == nil || !got.Deadline.Equal(deadline) || got.PredictedFinish == nil ||
		len(got.CriticalPath) != 2 {
		t.Errorf("json: %+v", got)
	}
	for _, key := range []string{`"deadline":`, `"deadline_state": "at_risk"`, `"predicted_finish":`, `"critical_path":`} {
		if !strings.Contains(r.stdout, key) {
			t.Errorf("json lacks %s:\n%s", key, r.stdout)
		}
	}
}

// TestBackfillDeadlineFlag: --deadline goes with the request, read like
// --to; without it the request has none.
func TestBackfillDeadlineFlag(t *testing.T) {
	s := newTestServer(t)
	r := call("--server", s.url, "backfill", "nightly", "--from", "2026-11-01", "--to", "2026-11-03", "--deadline", "2026-12-24T06:00:00+09:00")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	req := s.lastArgs(t, "CreateBackfill")[0].(api.BackfillRequest)
	if req.Deadline == nil || !req.Deadline.Equal(time.Date(2026, 12, 23, 21, 0, 0, 0, time.UTC)) {
		t.Errorf("deadline %v", req.Deadline)
	}
	r = call("--server", s.url, "backfill", "nightly", "--from", "2026-11-01", "--to", "2026-11-03")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if req := s.lastArgs(t, "CreateBackfill")[0].(api.BackfillRequest); req.Deadline != nil {
		t.Errorf("a backfill without --deadline asked for %v", req.Deadline)
	}
	r = call("--server", s.url, "backfill", "nightly", "--from", "2026-11-01", "--to", "2026-11-03", "--deadline", "soon")
	if r.code != 2 || !strings.Contains(r.stderr, "--deadline") {
		t.Errorf("a bad --deadline: exit %d, %s", r.code, r.stderr)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

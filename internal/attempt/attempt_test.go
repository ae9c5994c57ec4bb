package attempt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/shell"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

// TestOutcomeEvent checks the one mapping from outcomes to engine events,
// and which outcomes an executor may report.
func TestOutcomeEvent(t *testing.T) {
	cases := []struct {
		o          Outcome
		ev         engine.EventKind
		reportable bool
	}{
		{Succeeded, engine.EvTaskSucceeded, true},
		{Failed, engine.EvTaskFailed, true},
		{TimedOut, engine.EvTaskTimedOut, true},
		{Lost, engine.EvTaskLost, false},
		{Preempted, engine.EvTaskPreempted, true},
		{Cancelled, engine.EvTaskCancelled, true},
		{"", "", false},
		{"exploded", "", false},
	}
	for _, c := range cases {
		if got := c.o.Event(); got != c.ev {
			t.Errorf("%q.Event() = %q, want %q", c.o, got, c.ev)
		}
		if got := c.o.Reportable(); got != c.reportable {
			t.Errorf("%q.Reportable() = %v, want %v", c.o, got, c.reportable)
		}
	}
	if len(Outcomes()) != 6 {
		t.Errorf("Outcomes() = %v", Outcomes())
	}
	// The string values are in databases and on the wire: they never change.
	want := []string{"succeeded", "failed", "timed_out", "lost", "preempted", "cancelled"}
	for i, o := range Outcomes() {
		if string(o) != want[i] {
			t.Errorf("outcome %d is %q, want %q", i, o, want[i])
		}
	}
}

// TestProcessResult checks the rules that turn how a process group ended
// into an outcome, for every way it can end.
func TestProcessResult(t *testing.T) {
	dir := t.TempDir()
	okFile := filepath.Join(dir, "ok.json")
	badFile := filepath.Join(dir, "bad.json")
	os.WriteFile(okFile, []byte(` {"rows": 3} `), 0o600)
	os.WriteFile(badFile, []byte(`{`), 0o600)
	exited := func(code int) shell.Result { return shell.Result{PID: 42, ExitCode: code} }
	stopped := func(r shell.Result) shell.Result { r.Cancelled = true; return r }
	killed := shell.Result{PID: 42, ExitCode: -1, Signal: "SIGKILL"}
	cases := []struct {
		name    string
		cause   error
		res     shell.Result
		file    string
		outcome Outcome
		exit    int // -2: no exit code
		message string
		result  string
	}{
		{"exit 0", nil, exited(0), okFile, Succeeded, 0, "", `{"rows": 3}`},
		{"exit 0 no result file", nil, exited(0), filepath.Join(dir, "none.json"), Succeeded, 0, "", ""},
		{"exit 0 bad result", nil, exited(0), badFile, Failed, 0, "read result", ""},
		{"exit 3", nil, exited(3), okFile, Failed, 3, "exit status 3", ""},
		{"killed by itself", nil, killed, okFile, Failed, -1, "killed by signal SIGKILL", ""},
		{"never started", nil, shell.Result{ExitCode: -1, StartErr: errors.New(`start "x": not found`)}, okFile, Failed, -2, "not found", ""},
		{"timed out", nil, shell.Result{PID: 42, ExitCode: -1, Signal: "SIGTERM", TimedOut: true}, okFile, TimedOut, -1, "timed out after 1s", ""},
		{"cancelled", ErrCancelled, stopped(killed), okFile, Cancelled, -1, "cancelled", ""},
		{"cancelled, exit 0", ErrCancelled, stopped(exited(0)), okFile, Cancelled, 0, "cancelled", ""},
		{"cancelled before start", ErrCancelled, shell.Result{ExitCode: -1, Cancelled: true}, okFile, Cancelled, -2, "cancelled", ""},
		{"handed back, killed", ErrPreempted, stopped(killed), okFile, Preempted, -1, "handed back: the executor is shutting down", ""},
		{"handed back, exit 143 after SIGTERM", ErrPreempted, stopped(exited(143)), okFile, Preempted, 143, "handed back", ""},
		// The defect: it finished its work while being stopped.
		{"handed back, finished by itself", ErrPreempted, stopped(exited(0)), okFile, Succeeded, 0, "finished by itself", `{"rows": 3}`},
		{"handed back, finished with a bad result", ErrPreempted, stopped(exited(0)), badFile, Failed, 0, "read result", ""},
		{"handed back before start", ErrPreempted, shell.Result{ExitCode: -1, Cancelled: true}, okFile, Preempted, -2, "handed back", ""},
		{"lease lost", ErrLost, stopped(killed), okFile, Preempted, -1, "lease lost", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ProcessResult(c.cause, c.res, c.file, Duration(time.Second))
			if got.Outcome != c.outcome || !strings.Contains(got.Message, c.message) {
				t.Errorf("outcome %q message %q, want %q with %q", got.Outcome, got.Message, c.outcome, c.message)
			}
			switch {
			case c.exit == -2 && got.ExitCode != nil:
				t.Errorf("exit code %d, want none", *got.ExitCode)
			case c.exit != -2 && (got.ExitCode == nil || *got.ExitCode != c.exit):
				t.Errorf("exit code %v, want %d", got.ExitCode, c.exit)
			}
			if string(got.Result) != c.result {
				t.Errorf("result %s, want %s", got.Result, c.result)
			}
		})
	}
}

// TestHostEnvironment checks what an attempt's process sees: the
// executor's environment, the attempt's variables (not its idea of the
// executor's files), the needs' files and the result file, in that order.
func TestHostEnvironment(t *testing.T) {
	h := &Host{
		Environ:    []string{"PATH=/bin", "A=host"},
		Dir:        "/base",
		NeedFiles:  map[string]string{"load-data": "/n/1.json", "b": "/n/2.json"},
		ResultFile: "/r/result.json",
	}
	s := &Spec{Env: map[string]string{"A": "task", "Z": "1", "TASUKI_RESULT": "/elsewhere", "TASUKI_NEED_X": "/elsewhere"}}
	got := strings.Join(h.Environment(s), " ")
	want := "PATH=/bin A=host A=task Z=1 TASUKI_NEED_B=/n/2.json TASUKI_NEED_LOAD_DATA=/n/1.json TASUKI_RESULT=/r/result.json"
	if got != want {
		t.Errorf("environment\n got %s\nwant %s", got, want)
	}
	for workdir, want := range map[string]string{"": "/base", "sub/dir": "/base/sub/dir", "/abs": "/abs"} {
		if got := h.WorkingDir(&Spec{Workdir: workdir}); got != want {
			t.Errorf("workdir %q on the host: %q, want %q", workdir, got, want)
		}
	}
}

// TestDescribeAndRunShell describes a task once and runs the description,
// after a trip through JSON as a lease makes it, as a real process.
func TestDescribeAndRunShell(t *testing.T) {
	src := `name: p
tasks:
  - id: t
    run: 'echo "$GREETING from $(pwd)"; printf "{\"n\": 1}" > "$TASUKI_RESULT"'
    workdir: sub
    timeout: 1m
`
	p, err := spec.Parse("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	r := Builtin()
	s, err := r.Describe(&p.Tasks[0], map[string]string{"GREETING": "hello"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind != "shell" || s.Workdir != "sub" || s.Timeout.D() != time.Minute {
		t.Errorf("spec %+v", s)
	}
	wire, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Spec
	if err := json.Unmarshal(wire, &back); err != nil {
		t.Fatalf("%s: %v", wire, err)
	}
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	var out strings.Builder
	res := r.Run(context.Background(), &back, &Host{Environ: os.Environ(), Dir: dir, ResultFile: filepath.Join(dir, "result.json"), Stdout: &out})
	if res.Outcome != Succeeded || string(res.Result) != `{"n": 1}` {
		t.Fatalf("result %+v", res)
	}
	if want := "hello from " + filepath.Join(dir, "sub") + "\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}

// echoKind is a kind of work that is not a process: it writes its body.
type echoKind struct{}

func (echoKind) Name() string                               { return "echo" }
func (echoKind) Body(t *spec.Task) (json.RawMessage, error) { return json.Marshal(t.ID) }
func (echoKind) Run(ctx context.Context, s *Spec, h *Host) Result {
	h.Stdout.Write(s.Body)
	return Result{Outcome: Succeeded, Result: s.Body}
}

// TestRegistry checks lookups by name: a registered kind runs, an unknown
// one fails the attempt with a reason, a name registered twice is refused.
func TestRegistry(t *testing.T) {
	r, err := NewRegistry(Shell{}, echoKind{})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if res := r.Run(context.Background(), &Spec{Kind: "echo", Body: json.RawMessage(`"hi"`)}, &Host{Stdout: &out}); res.Outcome != Succeeded || out.String() != `"hi"` {
		t.Errorf("echo kind: %+v, wrote %q", res, out.String())
	}
	if res := r.Run(context.Background(), &Spec{Kind: "sql"}, &Host{}); res.Outcome != Failed || !strings.Contains(res.Message, `kind "sql"`) {
		t.Errorf("unknown kind: %+v", res)
	}
	if _, err := NewRegistry(Shell{}, Shell{}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a kind registered twice: %v", err)
	}
	only, _ := NewRegistry(echoKind{})
	if _, err := only.Describe(&spec.Task{ID: "t"}, nil, nil); err == nil || !strings.Contains(err.Error(), `kind "shell"`) {
		t.Errorf("describe a task of a kind not registered: %v", err)
	}
}

// TestDurationJSON checks the wire form of durations and its errors.
func TestDurationJSON(t *testing.T) {
	b, err := json.Marshal(Duration(90 * time.Second))
	if err != nil || string(b) != `"1m30s"` {
		t.Errorf("marshal: %s %v", b, err)
	}
	var d Duration
	if err := json.Unmarshal([]byte(`"250ms"`), &d); err != nil || d.D() != 250*time.Millisecond {
		t.Errorf("unmarshal: %v %v", d, err)
	}
	for _, bad := range []string{`30`, `"thirty seconds"`} {
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("unmarshal %s: no error", bad)
		}
	}
}

// TestHostEnvironmentSecrets: an attempt's secrets are variables that
// override its env, and the executor's own TASUKI_SECRET_* variables (its
// secrets and the secret key) never reach the attempt.
func TestHostEnvironmentSecrets(t *testing.T) {
	h := &Host{Environ: []string{"PATH=/bin", "TASUKI_SECRET_KEY=k", "TASUKI_SECRET_DB=v", "HOME=/h"}}
	s := &Spec{Env: map[string]string{"PGPASSWORD": "plain", "A": "1"}, Secrets: SecretEnv{"PGPASSWORD": "hunter2", "TOKEN": "t0k"}}
	got := strings.Join(h.Environment(s), " ")
	want := "PATH=/bin HOME=/h A=1 PGPASSWORD=plain PGPASSWORD=hunter2 TOKEN=t0k"
	if got != want {
		t.Errorf("environment\n got %s\nwant %s", got, want)
	}
	if mv := s.MaskValues(); len(mv) != 2 || mv[0] != "hunter2" || mv[1] != "t0k" {
		t.Errorf("MaskValues = %q", mv)
	}
}

// TestSecretEnvNeverFormatsValues: a Spec printed in a message or logged
// with slog shows how many secrets it has, not what they are; only its
// JSON (the lease) carries them.
func TestSecretEnvNeverFormatsValues(t *testing.T) {
	s := Spec{Kind: "shell", Env: map[string]string{"A": "1"}, Secrets: SecretEnv{"DB": "hunter2"}}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("spec", "secrets", s.Secrets, "spec", s)
	for _, out := range []string{fmt.Sprintf("%v", s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), fmt.Sprint(s.Secrets), logged.String()} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("a secret value is formatted: %s", out)
		}
	}
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Spec
	if err := json.Unmarshal(data, &back); err != nil || back.Secrets["DB"] != "hunter2" {
		t.Errorf("the lease's JSON does not carry the secret: %s, %v", data, err)
	}
}

// TestRedact: what an attempt reports (its message, its JSON result) has
// its secrets replaced, and a result stays valid JSON.
func TestRedact(t *testing.T) {
	s := &Spec{Secrets: SecretEnv{"A": "hunter2", "N": "12345678"}, Mask: []string{"param-secret"}}
	res := s.Redact(Result{
		Outcome: Failed,
		Message: "login hunter2 refused",
		Result:  json.RawMessage(`{"pw": "x hunter2 y", "hunter2": 1, "n": 12345678, "list": ["param-secret", 2], "ok": "fine"}`),
	})
	if res.Message != "login *** refused" {
		t.Errorf("message = %q", res.Message)
	}
	var got map[string]any
	if err := json.Unmarshal(res.Result, &got); err != nil {
		t.Fatalf("result is not JSON: %s", res.Result)
	}
	for _, leak := range []string{"hunter2", "12345678", "param-secret"} {
		if strings.Contains(string(res.Result), leak) {
			t.Errorf("result holds %q: %s", leak, res.Result)
		}
	}
	if got["ok"] != "fine" || got["pw"] != "x *** y" || got["n"] != "***" {
		t.Errorf("result = %s", res.Result)
	}
	// Without secrets, nothing is touched.
	plain := Result{Message: "m", Result: json.RawMessage(`{"a": 1}`)}
	if r := (&Spec{}).Redact(plain); r.Message != "m" || string(r.Result) != `{"a": 1}` {
		t.Errorf("Redact without secrets changed %+v", r)
	}
}

package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/shell"
)

func TestDescribeBuild(t *testing.T) {
	settings := func(kv ...string) []debug.BuildSetting {
		var out []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			out = append(out, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	rev := "0123456789abcdef0123456789abcdef01234567"
	cases := []struct {
		name    string
		version string
		bi      *debug.BuildInfo
		want    string
	}{
		{"no build info", "", nil, "(devel)"},
		{"link-time version wins", "v1.2.0", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"},
			Settings: settings("vcs.revision", rev, "vcs.modified", "false")}, "v1.2.0 (commit 0123456789ab, go1.26.0)"},
		{"clean checkout", "", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"},
			Settings: settings("vcs.revision", rev, "vcs.modified", "false")}, "(devel) (commit 0123456789ab, go1.26.0)"},
		{"modified tree", "", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"},
			Settings: settings("vcs.revision", rev, "vcs.modified", "true")}, "(devel) (commit 0123456789ab, modified, go1.26.0)"},
		{"go install of a tag", "", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.3.1"}}, "v0.3.1 (go1.26.0)"},
		{"pseudo-version from the commit", "", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.0.0-20261207031500-0123456789ab+dirty"},
			Settings: settings("vcs.revision", rev, "vcs.modified", "true")}, "v0.0.0-20261207031500-0123456789ab+dirty (go1.26.0)"},
		{"short revision", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: settings("vcs.revision", "abc")}, "(devel) (commit abc)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := describeBuild(c.version, c.bi); got != c.want {
				t.Errorf("describeBuild = %q, want %q", got, c.want)
			}
		})
	}
}

func TestVersionFlagAndCommand(t *testing.T) {
	flag, cmd := call("--version"), call("version")
	if flag.code != 0 || cmd.code != 0 {
		t.Fatalf("exit %d and %d\n%s%s", flag.code, cmd.code, flag.stderr, cmd.stderr)
	}
	// 'tasuki version' says the same, then how attempts are contained here
	// (which --version, read on every start of a script, does not probe).
	if !strings.HasPrefix(cmd.stdout, flag.stdout) || !strings.HasPrefix(flag.stdout, "tasuki test") {
		t.Errorf("--version printed %q, version printed %q", flag.stdout, cmd.stdout)
	}
	if rest := strings.TrimPrefix(cmd.stdout, flag.stdout); !strings.HasPrefix(rest, "attempt containment: "+string(shell.CurrentContainment().Mechanism)) {
		t.Errorf("version printed %q after the version, want the attempt containment", rest)
	}
}

// commands lists every command of the tree with its path of arguments.
func commands(c *cobra.Command, path []string) [][]string {
	var out [][]string
	if c.Runnable() || c.HasSubCommands() {
		out = append(out, path)
	}
	for _, sub := range c.Commands() {
		if sub.Name() == "__complete" || sub.Name() == "__completeNoDesc" {
			continue
		}
		out = append(out, commands(sub, append(slices.Clone(path), sub.Name()))...)
	}
	return out
}

// TestUsageErrorsExitTwo calls every command with a flag it does not have
// and with too many arguments (and, where it takes some, none): each is a
// usage error, exit status 2, with a pointer at the command's help.
func TestUsageErrorsExitTwo(t *testing.T) {
	home := t.TempDir()
	a := &app{io: IO{In: strings.NewReader(""), Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}}
	all := commands(a.root(), nil)
	if len(all) < 20 {
		t.Fatalf("found only %d commands: %v", len(all), all)
	}
	// help takes any words (topics it does not know are reported as such).
	anyArgs := map[string]bool{"help": true}
	for _, path := range all {
		name := strings.Join(path, " ")
		t.Run("tasuki "+name+" --no-such-flag", func(t *testing.T) {
			r := call(append(append([]string{"--home", home}, path...), "--no-such-flag")...)
			if r.code != 2 || !strings.Contains(r.stderr, "unknown flag") || !strings.Contains(r.stderr, "--help' for usage") {
				t.Errorf("exit %d, want 2 with the flag and a pointer at the help\n%s", r.code, r.stderr)
			}
		})
		if len(path) == 0 || anyArgs[path[0]] {
			continue
		}
		t.Run("tasuki "+name+" with too many arguments", func(t *testing.T) {
			args := append(append([]string{"--home", home}, path...), "a", "b", "c", "d", "e")
			r := call(args...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2\n%s%s", r.code, r.stdout, r.stderr)
			}
		})
		c, _, err := a.root().Find(path)
		if err != nil {
			t.Fatal(err)
		}
		if use := strings.Fields(c.Use); len(use) > 1 && regexp.MustCompile(`^[A-Z_]+(\.\.\.)?$`).MatchString(use[1]) {
			t.Run("tasuki "+name+" without arguments", func(t *testing.T) {
				r := call(append([]string{"--home", home}, path...)...)
				if r.code != 2 {
					t.Errorf("exit %d, want 2\n%s%s", r.code, r.stdout, r.stderr)
				}
			})
		}
	}
	// A run that fails is not a usage error.
	dir := t.TempDir()
	file := writeFile(t, dir, "f.yaml", "name: f\ntasks: [{id: a, run: 'exit 3'}]\n")
	if r := call("--home", home, "run", file); r.code != 1 {
		t.Errorf("a failed run exited %d, want 1", r.code)
	}
}

// flakyPipeline fails its first task until a file exists beside it.
const flakyPipeline = `
name: flaky
params: [{name: n, type: int, default: 1}]
tasks:
  - id: fetch
    run: |
      echo "$TASUKI_PARAM_N $TASUKI_TRIGGER" >> marks
      test -e input.csv || { echo "input.csv is not there yet" >&2; exit 1; }
  - id: report
    needs: [fetch]
    run: echo report >> marks
`

// TestLocalRetryAndRerun retries and reruns runs of the local data
// directory without a server: the run executes in the foreground, the
// tasks that succeeded are kept, and the exit status says how it ended.
func TestLocalRetryAndRerun(t *testing.T) {
	t.Setenv("USER", "tester")
	home, dir := t.TempDir(), t.TempDir()
	file := writeFile(t, dir, "flaky.yaml", flakyPipeline)
	marks := filepath.Join(dir, "marks")
	r := call("--home", home, "run", file, "-p", "n=7")
	if r.code != 1 {
		t.Fatalf("first run: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := call("--home", home, "retry", "1"); r.code != 1 || !strings.Contains(r.stdout, "run 1 of flaky failed") {
		t.Fatalf("retry with the cause not fixed: exit %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	writeFile(t, dir, "input.csv", "a,b\n")
	r = call("--home", home, "retry", "1", "-j", "1", "--progress", "tasks")
	if r.code != 0 || !strings.Contains(r.stdout, "run 1 of flaky succeeded") || !strings.Contains(r.stderr, "▶ fetch started (attempt 3)") {
		t.Fatalf("retry: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if b, _ := os.ReadFile(marks); string(b) != "7 manual\n7 manual\n7 manual\nreport\n" {
		t.Fatalf("marks after retries = %q: fetch three times, report once", b)
	}
	if r := call("--home", home, "retry", "1"); r.code != 2 || !strings.Contains(r.stderr, "succeeded") {
		t.Errorf("retry of a run that succeeded: exit %d, want 2\n%s", r.code, r.stderr)
	}
	r = call("--home", home, "rerun", "1", "-o", "json")
	var run struct {
		ID      int64
		State   string
		Trigger string
		Params  map[string]any
		Tasks   []struct{ ID, State string }
	}
	if r.code != 0 {
		t.Fatalf("rerun: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stdout), &run); err != nil {
		t.Fatalf("rerun -o json: %v\n%s", err, r.stdout)
	}
	if run.ID != 2 || run.State != "succeeded" || run.Trigger != "rerun" || run.Params["n"] != float64(7) || len(run.Tasks) != 2 {
		t.Errorf("rerun = %+v", run)
	}
	if !strings.Contains(r.stderr, "a rerun of run 1") {
		t.Errorf("rerun does not say what it reran:\n%s", r.stderr)
	}
	if b, _ := os.ReadFile(marks); !strings.HasSuffix(string(b), "7 rerun\nreport\n") {
		t.Errorf("marks after the rerun = %q", b)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"retry", "9"}, "no run 9"},
		{[]string{"rerun", "9"}, "no run 9"},
		{[]string{"rerun", "x"}, "positive number"},
		{[]string{"retry", "1", "--pool", "bad"}, "name=slots"},
		{[]string{"retry", "1", "--server", "http://127.0.0.1:1", "-j", "2"}, "--parallel applies to a run executed here"},
		{[]string{"cancel", "1"}, "needs a server"},
	} {
		if r := call(append([]string{"--home", home}, c.args...)...); r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("tasuki %v: exit %d, want 2 and %q\n%s", c.args, r.code, c.want, r.stderr)
		}
	}
}

// TestLocalRetryOfARunExecutingElsewhere refuses to retry a run another
// tasuki process is executing, rather than running it twice.
func TestLocalRetryOfARunExecutingElsewhere(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	fifo := filepath.Join(dir, "started")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	release := filepath.Join(dir, "release")
	if err := syscall.Mkfifo(release, 0o600); err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, dir, "p.yaml", `
name: busy
env: {STARTED: `+fifo+`, RELEASE: `+release+`}
tasks:
  - id: wait
    run: 'echo started > "$STARTED"; read line < "$RELEASE"'
`)
	cmd := tasuki(t, home, "run", file)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(fifo); err != nil { // the task runs
		t.Fatal(err)
	}
	r := call("--home", home, "retry", "1")
	if err := os.WriteFile(release, []byte("go\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the run: %v\n%s", err, out.String())
	}
	if r.code != 1 || !strings.Contains(r.stderr, "being executed by another tasuki process") {
		t.Errorf("retry of a running run: exit %d, want 1\n%s", r.code, r.stderr)
	}
}

func TestLocalRunsFilters(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	ok := writeFile(t, dir, "ok.yaml", "name: ok\ntasks: [{id: a, run: 'true'}]\n")
	bad := writeFile(t, dir, "bad.yaml", "name: bad\ntasks: [{id: a, run: 'false'}]\n")
	for _, f := range []string{ok, bad, ok} {
		call("--home", home, "run", f)
	}
	ids := func(args ...string) []int64 {
		t.Helper()
		r := call(append([]string{"--home", home, "runs", "-o", "json"}, args...)...)
		if r.code != 0 {
			t.Fatalf("runs %v: exit %d\n%s", args, r.code, r.stderr)
		}
		var runs []struct{ ID int64 }
		if err := json.Unmarshal([]byte(r.stdout), &runs); err != nil {
			t.Fatalf("runs %v: %v\n%s", args, err, r.stdout)
		}
		var out []int64
		for _, run := range runs {
			out = append(out, run.ID)
		}
		return out
	}
	for _, c := range []struct {
		args []string
		want []int64
	}{
		{nil, []int64{3, 2, 1}},
		{[]string{"--state", "failed"}, []int64{2}},
		{[]string{"--state", "succeeded,failed", "--limit", "2"}, []int64{3, 2}},
		{[]string{"--pipeline", "ok"}, []int64{3, 1}},
		{[]string{"--pipeline", "ok", "--state", "failed"}, nil},
		{[]string{"--backfill", "1"}, nil},
	} {
		if got := ids(c.args...); !slices.Equal(got, c.want) {
			t.Errorf("runs %v = %v, want %v", c.args, got, c.want)
		}
	}
	if r := call("--home", home, "runs", "-o", "json", "--state", "failed"); !strings.HasPrefix(r.stdout, "[") {
		t.Errorf("runs -o json is not an array:\n%s", r.stdout)
	}
	if r := call("--home", home, "runs", "--state", "done"); r.code != 2 || !strings.Contains(r.stderr, "expected queued, running") {
		t.Errorf("bad --state: exit %d\n%s", r.code, r.stderr)
	}
}

// TestStatusKeepsMessagesAndNamesTheZone: off a terminal a task's message
// is printed whole; times are in the pipeline's time zone, named.
func TestStatusKeepsMessagesAndNamesTheZone(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	missing := "a-program-that-does-not-exist-and-whose-name-is-longer-than-any-column-" + strings.Repeat("x", 40)
	file := writeFile(t, dir, "p.yaml", `
name: zoned
schedule: {cron: "30 2 * * *", timezone: Asia/Tokyo}
tasks:
  - {id: a, run: [`+missing+`]}
`)
	if r := call("--home", home, "run", file); r.code != 1 || !strings.Contains(r.stdout, missing) {
		t.Errorf("the run's summary cut the message (exit %d):\n%s", r.code, r.stdout)
	}
	r := call("--home", home, "status", "1")
	if r.code != 0 || !strings.Contains(r.stdout, missing) {
		t.Errorf("status cut the message (exit %d):\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !regexp.MustCompile(`created 20\d\d-\d\d-\d\d \d\d:\d\d:\d\d JST\)`).MatchString(r.stdout) {
		t.Errorf("status does not show the creation time in Tokyo, named:\n%s", r.stdout)
	}
}

// TestWrapOnATerminal: on a terminal a long message wraps under its
// column, every word kept in order, no line wider than the terminal.
func TestWrapOnATerminal(t *testing.T) {
	msg := "read result: the result file is not valid JSON: invalid character 'h' looking for beginning of value\nsecond line " + strings.Repeat("y", 70)
	var b bytes.Buffer
	view{width: 80}.printTasks(&b, []taskLine{{"fetch", "failed", "1", "20ms", "0", msg}, {"b", "succeeded", "1", "1s", "0", ""}})
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	col := strings.Index(lines[0], "MESSAGE")
	var shown strings.Builder
	for i, l := range lines {
		if n := utf8.RuneCountInString(strings.TrimRight(l, " ")); n > 80 {
			t.Errorf("line %d is %d wide:\n%s", i, n, b.String())
		}
		if i > 0 && len(l) > col && !strings.HasPrefix(l, "b ") {
			shown.WriteString(l[col:])
		}
	}
	squeeze := func(s string) string { return strings.Join(strings.Fields(s), "") }
	if squeeze(shown.String()) != squeeze(msg) {
		t.Errorf("the wrapped message is not the message:\n%s", b.String())
	}
	if len(lines) < 6 {
		t.Errorf("the message did not wrap:\n%s", b.String())
	}
	if got := wrap("", 10); len(got) != 1 || got[0] != "" {
		t.Errorf("wrap of nothing = %q", got)
	}
	if got := wrap("abcdefghij klm", 4); !slices.Equal(got, []string{"abcd", "efgh", "ij", "klm"}) {
		t.Errorf("wrap of a long word = %q", got)
	}
	if got := wrap("exec: abcdefghijklmnopqrstuvwxyz0123456789", 20); !slices.Equal(got, []string{"exec: abcdefghijklmn", "opqrstuvwxyz01234567", "89"}) {
		t.Errorf("a long word does not fill the line it starts on: %q", got)
	}
	if got := wrap("one two\nthree", 20); !slices.Equal(got, []string{"one two", "three"}) {
		t.Errorf("wrap keeps line breaks: %q", got)
	}
}

// TestTaskEnvironmentIsDocumented runs a task that lists the TASUKI_
// variables it gets: each must be in the reference's table.
func TestTaskEnvironmentIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/pipeline-reference.md")
	if err != nil {
		t.Fatal(err)
	}
	home, dir := t.TempDir(), t.TempDir()
	out := filepath.Join(dir, "env")
	file := writeFile(t, dir, "p.yaml", `
name: envs
params: [{name: who, default: x}]
env: {OUT: `+out+`}
tasks:
  - {id: first, run: 'true'}
  - {id: second, needs: [first], run: 'env | grep ^TASUKI_ | cut -d= -f1 > "$OUT"'}
`)
	if r := call("--home", home, "run", file); r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	generic := map[string]string{"TASUKI_PARAM_WHO": "TASUKI_PARAM_<NAME>", "TASUKI_NEED_FIRST": "TASUKI_NEED_<ID>"}
	names := strings.Fields(string(b))
	if len(names) < 8 {
		t.Fatalf("the task saw only %v", names)
	}
	for _, name := range names {
		if g, ok := generic[name]; ok {
			name = g
		}
		if !strings.Contains(string(doc), "| `"+name+"` |") {
			t.Errorf("docs/pipeline-reference.md's task environment table lacks %s", name)
		}
	}
}

// TestHelpSaysWhatHappens pins help texts that once said something else
// than the code does.
func TestHelpSaysWhatHappens(t *testing.T) {
	for _, c := range []struct {
		args         []string
		want, unwant []string
	}{
		{[]string{"run", "--help"}, []string{"not charged to the task's retry budget", "tasuki retry RUN_ID"}, []string{"follow their retry policy"}},
		{[]string{"resume", "--help"}, []string{"without being charged to the\ntask's retry budget"}, []string{"retried if their policy allows"}},
		{[]string{"unpause", "--help"}, []string{"scheduled runs again", "catchup"}, []string{"Runs already started go on"}},
		{[]string{"pause", "--help"}, []string{"Runs already started go on"}, nil},
		{[]string{"retry", "--help"}, []string{"Without a server", "--parallel"}, nil},
		{[]string{"runs", "--help"}, []string{"JSON array of runs", "--state", "--backfill"}, nil},
		{[]string{"backfill", "--help"}, []string{"--to takes in all of it"}, []string{"[--from, --to)"}},
	} {
		r := call(c.args...)
		if r.code != 0 {
			t.Errorf("%v: exit %d", c.args, r.code)
		}
		for _, w := range c.want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%v lacks %q:\n%s", c.args, w, r.stdout)
			}
		}
		for _, w := range c.unwant {
			if strings.Contains(r.stdout, w) {
				t.Errorf("%v still says %q", c.args, w)
			}
		}
	}
}

// TestLocalRetryOfAnInterruptedRun: a run whose tasuki was killed has not
// ended; retry says so and points at resume, which continues it.
func TestLocalRetryOfAnInterruptedRun(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	fifo := filepath.Join(dir, "started")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, dir, "p.yaml", `
name: cut
env: {STARTED: `+fifo+`}
tasks:
  - id: a
    run: 'if [ "$TASUKI_ATTEMPT" = 1 ]; then echo started > "$STARTED"; exec sleep 300; fi'
`)
	cmd := tasuki(t, home, "run", file)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(fifo); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	r := call("--home", home, "retry", "1")
	if r.code != 2 || !strings.Contains(r.stderr, "has not ended") || !strings.Contains(r.stderr, "tasuki resume 1") {
		t.Errorf("retry of an interrupted run: exit %d, want 2 and a pointer at resume\n%s", r.code, r.stderr)
	}
	if r := call("--home", home, "resume", "1"); r.code != 0 {
		t.Errorf("resume: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestCountRuns: a backfill of one run says "1 run", not "1 runs".
func TestCountRuns(t *testing.T) {
	for n, want := range map[int]string{0: "0 runs", 1: "1 run", 7: "7 runs"} {
		if got := countRuns(n); got != want {
			t.Errorf("countRuns(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestAdminTokenStaysOnThisMachine: the admin.token of the data directory
// is sent, unasked, only to a server on this machine; to any other host the
// CLI sends nothing unless --token or $TASUKI_TOKEN says so.
func TestAdminTokenStaysOnThisMachine(t *testing.T) {
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, "admin.token"), []byte("tsk_admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TASUKI_TOKEN", "")
	a := &app{home: home}
	cmd := &cobra.Command{}
	for u, want := range map[string]string{
		"http://127.0.0.1:8080":         "tsk_admin",
		"https://localhost:8443":        "tsk_admin",
		"http://[::1]:8080":             "tsk_admin",
		"http://tasuki.internal:8080":   "",
		"https://10.0.0.5:8080":         "",
		"http://127.0.0.1.evil.example": "",
	} {
		got, err := a.apiToken(cmd, u)
		if err != nil || got != want {
			t.Errorf("apiToken(%s) = %q, %v; want %q", u, got, err, want)
		}
	}
}

package web_test

// Browser tests: a real 'tasuki server' process (this test binary acting as
// the CLI), driven through Debian's Chromium with chromedp, every page
// checked by axe-core (vendored in testdata) for WCAG A and AA violations
// and saved as a screenshot under the artifact directory (see
// screenshotDir) for a person to look at.
//
// Without Chromium the tests skip and say how to install it; under CI=true
// a missing Chromium is a failure (.ci/run installs it).

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/tasuki-dev/tasuki/internal/cli"
)

// TestMain lets the test binary act as the tasuki command
// (TASUKI_TEST_AS_CLI=1), so the browser tests start a real server.
func TestMain(m *testing.M) {
	if os.Getenv("TASUKI_TEST_AS_CLI") == "1" {
		os.Exit(cli.Main(os.Args[1:], cli.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, "test"))
	}
	os.Exit(m.Run())
}

//go:embed testdata/axe.min.js
var axeSource string

// chromium finds the browser, or skips (fails under CI=true).
func chromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser tests do not run with -short")
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium on PATH: install it to run the browser tests (Debian: apt-get install chromium; .ci/run does)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// screenshotDir is where the browser tests save a screenshot of every page
// they visit: $TASUKI_SCREENSHOTS, else .artifacts/screenshots at the
// repository's root (ignored by git).
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("TASUKI_SCREENSHOTS")
	if dir == "" {
		_, file, _, _ := runtime.Caller(0)
		dir = filepath.Join(filepath.Dir(file), "..", "..", ".artifacts", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// uiServer is a real tasuki server process.
type uiServer struct {
	t    *testing.T
	url  string
	home string
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  strings.Builder
	done chan struct{}
}

func cliEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TASUKI_") {
			env = append(env, kv)
		}
	}
	env = append(env, "TASUKI_TEST_AS_CLI=1", "TASUKI_TICK_INTERVAL=100ms", "TASUKI_RELOAD_INTERVAL=100ms")
	return append(env, extra...)
}

// startUIServer starts 'tasuki server' on pipelines and waits until it
// listens.
func startUIServer(t *testing.T, pipelines string) *uiServer {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	cmd := exec.Command(exe, "server", "--home", home, "--pipelines", pipelines, "--addr", "127.0.0.1:0", "--workers", "4")
	cmd.Env = cliEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &uiServer{t: t, home: home, cmd: cmd, done: make(chan struct{})}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log.WriteString(line + "\n")
			s.mu.Unlock()
			if rest, ok := strings.CutPrefix(line, "tasuki server listening on "); ok {
				u, _, _ := strings.Cut(rest, " ")
				select {
				case listening <- u:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			s.mu.Lock()
			t.Logf("server log:\n%s", s.log.String())
			s.mu.Unlock()
		}
	})
	select {
	case s.url = <-listening:
	case <-s.done:
		t.Fatalf("the server exited before listening:\n%s", s.log.String())
	case <-time.After(60 * time.Second):
		t.Fatal("the server did not listen within a minute")
	}
	return s
}

// cli runs a tasuki command against the server with its admin token,
// stdin given.
func (s *uiServer) cli(stdin string, args ...string) string {
	s.t.Helper()
	exe, _ := os.Executable()
	cmd := exec.Command(exe, append(args, "--server", s.url)...)
	cmd.Env = cliEnv("TASUKI_HOME=" + s.home)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("tasuki %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// addUser adds a user with a role; the password is the name repeated.
func (s *uiServer) addUser(name, role string) {
	s.cli(name+name+name+"\n", "user", "add", name, "--role", role)
}

// browser is one Chromium with its own profile (so its own cookies).
type browser struct {
	t   *testing.T
	ctx context.Context
	dir string // screenshots
}

func newBrowser(t *testing.T, exe string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, // tests may run as root in a container
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// Start the browser now, so a test's first step is not its start-up.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	// axe is injected by evaluation, which the pages' policy would refuse.
	if _, err := chromedp.Call(ctx, page.SetBypassCSP, page.SetBypassCSPParams{Enabled: true}); err != nil {
		t.Fatalf("bypass the policy for axe: %v", err)
	}
	return &browser{t: t, ctx: ctx, dir: screenshotDir(t)}
}

// run runs steps with a time limit.
func (b *browser) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		b.t.Fatalf("%s (at %s): %v", what, loc, err)
	}
}

// get runs one action that gives a value, with a time limit.
func value[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		b.t.Fatalf("%s (at %s): %v", what, loc, err)
	}
	return v
}

// css is a CSS selector.
func css(s string) chromedp.CSS { return chromedp.CSS(s) }

// login logs in through the login form.
func (b *browser) login(base, user, next string) {
	b.t.Helper()
	b.run("log in as "+user,
		chromedp.Navigate(base+next),
		chromedp.WaitVisible(css(`#login`)),
		chromedp.SendKeys(css(`#user`), user),
		chromedp.SendKeys(css(`#password`), user+user+user),
		chromedp.Click(css(`#login button[type=submit]`)),
		chromedp.WaitNotPresent(css(`#login`)),
		chromedp.WaitVisible(css(`main h1`)),
	)
}

// axeResult is what axe.run answers, the parts the test reads.
type axeResult struct {
	Violations []struct {
		ID      string   `json:"id"`
		Impact  string   `json:"impact"`
		Help    string   `json:"help"`
		Tags    []string `json:"tags"`
		HelpURL string   `json:"helpUrl"`
		Nodes   []struct {
			Target []any  `json:"target"`
			HTML   string `json:"html"`
		} `json:"nodes"`
	} `json:"violations"`
}

// check runs axe-core on the page shown (WCAG 2.x A and AA rules), in the
// light and then the dark theme, failing the test on any violation, and
// saves a screenshot of each theme (name.png, name-dark.png).
func (b *browser) check(name string) {
	b.t.Helper()
	for _, theme := range []string{"light", "dark"} {
		if _, err := chromedp.Call(b.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: theme}},
		}); err != nil {
			b.t.Fatalf("emulate the %s theme: %v", theme, err)
		}
		shot := name
		if theme == "dark" {
			shot += "-dark"
		}
		b.axe(shot)
		b.screenshot(shot)
	}
	if _, err := chromedp.Call(b.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{}); err != nil {
		b.t.Fatal(err)
	}
}

// axe runs axe-core on the page shown and fails the test on a violation.
func (b *browser) axe(name string) {
	b.t.Helper()
	if !value(b, "find axe on "+name, chromedp.Evaluate[bool]("typeof window.axe === 'object'")) {
		value(b, "load axe on "+name, chromedp.Evaluate[any](axeSource+"\n;0"))
	}
	out := value(b, "axe on "+name, chromedp.Evaluate[string](
		`axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]}}).then(r => JSON.stringify(r))`,
		chromedp.EvalAwaitPromise))
	var res axeResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		b.t.Fatalf("axe on %s: %v", name, err)
	}
	for _, v := range res.Violations {
		var where []string
		for _, n := range v.Nodes {
			where = append(where, fmt.Sprintf("%v %s", n.Target, clip(n.HTML, 160)))
		}
		b.t.Errorf("page %s: axe %s (%s): %s\n  %s", name, v.ID, v.Impact, v.Help, strings.Join(where, "\n  "))
	}
}

// screenshot saves the whole page as name.png.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	png := value(b, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(b.dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// pipelines the browser tests run.
var browserPipelines = map[string]string{
	"fan.yaml": `name: fan
description: A map of six items, one of which fails.
tasks:
  - id: each
    map: {range: {stop: 6}, tolerate: {count: 1}}
    run: 'echo "item $TASUKI_ITEM"; [ "$TASUKI_ITEM_INDEX" != 3 ] || { echo "ERROR: item 3"; exit 1; }'
`,
	"nightly.yaml": `name: nightly
description: A nightly job in Tokyo, for backfills.
schedule: {cron: "30 2 * * *", timezone: Asia/Tokyo}
tasks:
  - id: load
    run: 'echo "loading $TASUKI_INTERVAL_START"'
`,
	"greet.yaml": `name: greet
description: Greets someone after a wait the test controls.
params:
  - {name: who, type: string, required: true, description: Whom to greet}
  - {name: times, type: int, default: 1, description: How many greetings}
  - {name: hold, type: string, default: /dev/null, description: A file the first task reads to its end}
tasks:
  - id: hold
    run: 'cat "$TASUKI_PARAM_HOLD" > /dev/null'
  - id: greet
    needs: [hold]
    run: 'for i in $(seq "$TASUKI_PARAM_TIMES"); do echo "hello $TASUKI_PARAM_WHO"; done; echo "ERROR: not really"'
`,
}

func TestBrowserPages(t *testing.T) {
	exe := chromium(t)
	dir := t.TempDir()
	for name, text := range browserPipelines {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv := startUIServer(t, dir)
	srv.addUser("olivia", "operator")
	srv.addUser("victor", "viewer")
	srv.addUser("ada", "admin")

	b := newBrowser(t, exe)
	b.run("open the login page", chromedp.Navigate(srv.url+"/"), chromedp.WaitVisible(css(`#login`)))
	b.check("login")
	b.run("a wrong password", chromedp.SendKeys(css(`#user`), "olivia"), chromedp.SendKeys(css(`#password`), "wrong-password"),
		chromedp.Click(css(`#login button[type=submit]`)), chromedp.WaitVisible(css(`#login-error`)))
	b.login(srv.url, "olivia", "/")
	b.run("the pipelines page", chromedp.WaitVisible(css(`a[href="/pipelines/greet"]`)))
	h1 := value(b, "the heading", chromedp.Text(css(`main h1`)))
	if h1 != "Pipelines" {
		t.Errorf("after login: h1 %q", h1)
	}
	b.check("pipelines")

	// A finished run's task: its log, searched.
	run := strings.TrimSpace(srv.cli("", "trigger", "greet", "-p", "who=Ada", "-p", "times=3", "--wait"))
	b.run("open a task's log",
		chromedp.Navigate(srv.url+"/runs/"+run+"/tasks/greet"),
		chromedp.WaitVisible(css(`#attempts-table`)),
		chromedp.WaitVisible(css(`#log`)),
	)
	if log := value(b, "read the log", chromedp.Text(css(`#log`))); !strings.Contains(log, "hello Ada") {
		t.Errorf("the task page's log shows %q", log)
	}
	b.check("task")
	b.run("search the log",
		chromedp.SendKeys(css(`#log-q`), "not really"),
		chromedp.Click(css(`#log-search button[type=submit]`)),
		chromedp.WaitVisible(css(`#log-hits ol.hits li a[data-at]`)),
	)
	if hits := value(b, "read the hits", chromedp.Text(css(`#log-hits`))); !strings.Contains(hits, "ERROR: not really") {
		t.Errorf("the search found %q", hits)
	}
	b.check("task-search")

	// A map: the run's map section, the task's items and an item's log.
	fan := strings.TrimSpace(srv.cli("", "trigger", "fan", "--wait"))
	b.run("a map's run", chromedp.Navigate(srv.url+"/runs/"+fan), chromedp.WaitVisible(css(`#map-each`)))
	b.check("run-map")
	b.run("a map's items", chromedp.Navigate(srv.url+"/runs/"+fan+"/tasks/each"), chromedp.WaitVisible(css(`#items-table`)),
		chromedp.WaitVisible(css(`#item-3`)))
	b.check("task-map")
	b.run("a failed item's log", chromedp.Navigate(srv.url+"/runs/"+fan+"/tasks/each?item=3"), chromedp.WaitVisible(css(`#log`)))
	if log := value(b, "read the item's log", chromedp.Text(css(`#log`))); !strings.Contains(log, "ERROR: item 3") {
		t.Errorf("item 3's log shows %q", log)
	}
	b.check("task-map-item")

	// Backfills, workers, hosts.
	out := srv.cli("", "backfill", "nightly", "--from", "2026-11-01", "--to", "2026-11-03")
	var bf int
	if _, err := fmt.Sscanf(out, "backfill %d", &bf); err != nil {
		t.Fatalf("backfill said %q: %v", out, err)
	}
	b.run("the backfills", chromedp.Navigate(srv.url+"/backfills"), chromedp.WaitVisible(css(`#backfills`)))
	b.check("backfills")
	b.run("one backfill", chromedp.Navigate(fmt.Sprintf("%s/backfills/%d", srv.url, bf)), chromedp.WaitVisible(css(`#backfill-facts`)))
	b.check("backfill")
	b.run("the workers", chromedp.Navigate(srv.url+"/workers"), chromedp.WaitVisible(css(`#workers`)))
	b.check("workers")
	token := strings.TrimSpace(srv.cli("", "token", "create", "agent-1"))
	srv.cli("", "agent", "--token", token, "--root", "../hostfacts/testdata/root-debian", "--once")
	b.run("the hosts", chromedp.Navigate(srv.url+"/hosts?package=dnsmasq"), chromedp.WaitVisible(css(`#hosts tr.host`)))
	b.check("hosts")
	b.run("one host", chromedp.Click(css(`#hosts tr.host a`)), chromedp.WaitVisible(css(`#host-facts`)))
	b.check("host")

	// The audit log is for admins: an operator is refused, an admin reads it.
	b.run("the audit log as an operator", chromedp.Navigate(srv.url+"/audit"), chromedp.WaitVisible(css(`p.error`)))
	admin := newBrowser(t, exe)
	admin.login(srv.url, "ada", "/audit")
	admin.run("the audit log", chromedp.WaitVisible(css(`#audit tr.entry`)))
	admin.check("audit")
}

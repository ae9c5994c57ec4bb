package cli

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/attempt"
)

// workerServer is the real API handler with the worker routes over fakes,
// on a loopback port, with one valid token (w1) and one revoked (old).
type workerServer struct {
	fake   *apitest.Workers
	tokens *apitest.Tokens
	url    string
	secret string // a worker token
	admin  string // an admin API token
	viewer string // a viewer API token
}

func newWorkerServer(t *testing.T, wrap func(http.Handler) http.Handler) *workerServer {
	t.Helper()
	s := &workerServer{fake: apitest.NewWorkers(), tokens: apitest.NewTokens()}
	s.secret = s.tokens.Add("w1")
	s.admin = s.tokens.AddAPI("root", api.RoleAdmin, "")
	s.viewer = s.tokens.AddAPI("eve", api.RoleViewer, "")
	s.tokens.Add("old")
	if err := s.tokens.RevokeToken(context.Background(), "old", "test"); err != nil {
		t.Fatal(err)
	}
	var h http.Handler = api.NewHandler(apitest.NewSeeded(), nil, api.WithLogger(slog.New(slog.DiscardHandler)), api.WithWorkers(s.fake, s.tokens))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// longLease is a lease of a task that prints "started" and sleeps.
func longLease(id string) api.Lease {
	run, task, n, _ := api.ParseLeaseID(id)
	return api.Lease{ID: id, RunID: run, Pipeline: "p", Task: task, Attempt: n,
		Spec: attempt.Spec{Kind: "shell", Body: json.RawMessage(`{"shell":"echo started; exec sleep 60"}`), Env: map[string]string{}}, HeartbeatEvery: api.Duration(100 * time.Millisecond), LeaseTimeout: api.Duration(5 * time.Second)}
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestTokenCommands runs the token commands against the server.
func TestTokenCommands(t *testing.T) {
	t.Setenv("USER", "tester")
	type tc struct {
		name   string
		args   []string
		remote bool   // the server sees the client as another host
		auth   string // the credential: "" --token of an admin; "viewer"; "home" (admin.token); "env" ($TASUKI_TOKEN); "none"
		code   int
		stdout []string
		stderr []string
		check  func(t *testing.T, s *workerServer, r result)
	}
	cases := []tc{
		{name: "create", args: []string{"token", "create", "w2"}, stderr: []string{`created worker token "w2"`, "only this once"},
			check: func(t *testing.T, s *workerServer, r result) {
				lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
				secret := lines[len(lines)-1]
				if len(lines) != 1 || !strings.HasPrefix(secret, "tsk_") {
					t.Errorf("stdout %q: want the token alone", r.stdout)
				}
				if who, err := s.tokens.Authenticate(context.Background(), secret); err != nil || who.Name != "w2" || who.Kind != api.KindWorker {
					t.Errorf("the printed token authenticates as %+v: %v", who, err)
				}
				calls := s.tokens.Calls()
				if last := calls[len(calls)-1]; last.Args[0] != "w2" || last.Args[1] != "root" { // the credential's name
					t.Errorf("CreateToken%v", last.Args)
				}
			}},
		{name: "create duplicate", args: []string{"token", "create", "w1"}, code: 2, stderr: []string{"exists"}},
		{name: "create bad name", args: []string{"token", "create", "a b"}, code: 2, stderr: []string{"no spaces"}},
		{name: "create from another host", args: []string{"token", "create", "w2"}, remote: true, stderr: []string{`created worker token "w2"`}},
		{name: "create an API token", args: []string{"token", "create", "ci", "--role", "operator", "--namespace", "finance", "--expires", "30d"},
			stderr: []string{`created operator API token of namespace "finance" "ci"`},
			check: func(t *testing.T, s *workerServer, r result) {
				who, err := s.tokens.Authenticate(context.Background(), strings.TrimSpace(r.stdout))
				if err != nil || who != (api.Principal{Name: "ci", Kind: api.KindAPI, Role: api.RoleOperator, Namespace: "finance"}) {
					t.Errorf("the printed token authenticates as %+v: %v", who, err)
				}
				toks, _ := s.tokens.ListTokens(context.Background())
				exp := toks[len(toks)-1].ExpiresAt
				if exp == nil || exp.Sub(time.Now()) < 29*24*time.Hour || exp.Sub(time.Now()) > 30*24*time.Hour {
					t.Errorf("expires at %v, want in 30 days", exp)
				}
			}},
		{name: "create an agent token", args: []string{"token", "create", "agent-dns1", "--kind", "agent"},
			stderr: []string{`created agent token (host reports only) "agent-dns1"`},
			check: func(t *testing.T, s *workerServer, r result) {
				who, err := s.tokens.Authenticate(context.Background(), strings.TrimSpace(r.stdout))
				if err != nil || who != (api.Principal{Name: "agent-dns1", Kind: api.KindAgent}) {
					t.Errorf("the printed token authenticates as %+v: %v", who, err)
				}
			}},
		{name: "create an agent token with a role", args: []string{"token", "create", "a", "--kind", "agent", "--role", "viewer"}, code: 2, stderr: []string{"--role is for API tokens"}},
		{name: "create with a bad kind", args: []string{"token", "create", "a", "--kind", "robot"}, code: 2, stderr: []string{`--kind "robot": expected worker, agent or api`}},
		{name: "create an api token without a role", args: []string{"token", "create", "a", "--kind", "api"}, code: 2, stderr: []string{"--kind api needs --role"}},
		{name: "create with a bad role", args: []string{"token", "create", "ci", "--role", "root"}, code: 2, stderr: []string{"--role"}},
		{name: "create with a bad expiry", args: []string{"token", "create", "ci", "--role", "viewer", "--expires", "soon"}, code: 2, stderr: []string{"--expires"}},
		{name: "create a worker token with a namespace", args: []string{"token", "create", "ci", "--namespace", "x"}, code: 2, stderr: []string{"give --role too"}},
		{name: "create without a token", auth: "none", args: []string{"token", "create", "w2"}, code: 2, stderr: []string{"admin.token"}},
		{name: "create as a viewer", auth: "viewer", args: []string{"token", "create", "w2"}, code: 2, stderr: []string{"needs admin"}},
		{name: "create with the admin.token of --home", auth: "home", args: []string{"token", "create", "w2"}, stderr: []string{`created worker token "w2"`}},
		{name: "create with $TASUKI_TOKEN", auth: "env", args: []string{"token", "create", "w2"}, stderr: []string{`created worker token "w2"`}},
		{name: "--token before $TASUKI_TOKEN", auth: "env-and-flag", args: []string{"token", "create", "w2"}, code: 2, stderr: []string{"needs admin"}},
		{name: "create without a name", args: []string{"token", "create"}, code: 2, stderr: []string{"accepts 1 arg"}},
		{name: "list", args: []string{"token", "list"}, stdout: []string{"NAME", "KIND", "w1", "worker", "valid", "old", "revoked", "never", "root", "admin", "(all)"},
			check: func(t *testing.T, s *workerServer, r result) {
				if strings.Contains(r.stdout, s.secret) {
					t.Error("the list shows a secret")
				}
			}},
		{name: "list json", args: []string{"token", "list", "-o", "json"},
			check: func(t *testing.T, s *workerServer, r result) {
				var toks []api.TokenInfo
				mustDecode(t, r.stdout, &toks)
				if len(toks) != 4 || toks[0].Name != "w1" || toks[1].Role != api.RoleAdmin || toks[3].RevokedAt == nil {
					t.Errorf("tokens %+v", toks)
				}
			}},
		{name: "revoke", args: []string{"token", "revoke", "w1"}, stdout: []string{"token w1 revoked"},
			check: func(t *testing.T, s *workerServer, r result) {
				if _, err := s.tokens.Authenticate(context.Background(), s.secret); err == nil {
					t.Error("the revoked token still authenticates")
				}
			}},
		{name: "revoke unknown", args: []string{"token", "revoke", "nope"}, code: 2, stderr: []string{`no token named "nope"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var wrap func(http.Handler) http.Handler
			if c.remote {
				wrap = func(h http.Handler) http.Handler {
					return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						r.RemoteAddr = "192.0.2.7:4000"
						h.ServeHTTP(w, r)
					})
				}
			}
			s := newWorkerServer(t, wrap)
			home := t.TempDir() // no admin.token unless the case writes one
			args := append(c.args, "--server", s.url, "--home", home)
			switch c.auth {
			case "":
				args = append(args, "--token", s.admin)
			case "viewer":
				args = append(args, "--token", s.viewer)
			case "home":
				if err := os.WriteFile(filepath.Join(home, "admin.token"), []byte(s.admin+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			case "env":
				t.Setenv("TASUKI_TOKEN", s.admin)
			case "env-and-flag":
				t.Setenv("TASUKI_TOKEN", s.admin)
				args = append(args, "--token", s.viewer)
			}
			r := call(args...)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, c.code, r.stdout, r.stderr)
			}
			for _, want := range c.stdout {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
				}
			}
			for _, want := range c.stderr {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
				}
			}
			if c.check != nil {
				c.check(t, s, r)
			}
		})
	}
	t.Run("needs a server", func(t *testing.T) {
		if r := call("token", "list"); r.code != 2 || !strings.Contains(r.stderr, "needs a server") {
			t.Errorf("exit %d: %s", r.code, r.stderr)
		}
	})
}

// TestWorkerCommandErrors checks what the worker command refuses before it
// starts.
func TestWorkerCommandErrors(t *testing.T) {
	s := newWorkerServer(t, nil)
	file := writeFile(t, t.TempDir(), "token", s.secret+"\n")
	cases := []struct {
		name   string
		env    string // $TASUKI_TOKEN
		args   []string
		code   int
		stderr string
	}{
		{name: "no server", args: []string{"worker", "--token", "x"}, code: 2, stderr: "needs a server"},
		{name: "no token", args: []string{"worker", "--server", s.url}, code: 2, stderr: "worker token is required"},
		{name: "token and file", args: []string{"worker", "--server", s.url, "--token", "x", "--token-file", file}, code: 2, stderr: "give one"},
		{name: "missing token file", args: []string{"worker", "--server", s.url, "--token-file", "/nonexistent"}, code: 2, stderr: "--token-file"},
		{name: "no slots", env: s.secret, args: []string{"worker", "--server", s.url, "--slots", "0"}, code: 2, stderr: "--slots"},
		{name: "bad label", env: s.secret, args: []string{"worker", "--server", s.url, "--labels", "gpu,,spot"}, code: 2, stderr: "--labels"},
		{name: "bad dir", env: s.secret, args: []string{"worker", "--server", s.url, "--dir", "/nonexistent"}, code: 2, stderr: "--dir"},
		{name: "refused token", env: "tsk_wrong", args: []string{"worker", "--server", s.url}, code: 2, stderr: "valid worker token is required"},
		{name: "unknown token flag", args: []string{"worker", "--server", s.url, "--token", "tsk_revoked"}, code: 2, stderr: "valid worker token"},
		{name: "bad server in a list", env: s.secret, args: []string{"worker", "--server", s.url + ",ftp://x"}, code: 2, stderr: "--server: server URL \"ftp://x\""},
		{name: "empty list", env: s.secret, args: []string{"worker", "--server", ","}, code: 2, stderr: "needs a server"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(tokenEnv, c.env)
			r := call(c.args...)
			if r.code != c.code || !strings.Contains(r.stderr, c.stderr) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and %q", r.code, r.stderr, c.code, c.stderr)
			}
			for _, secret := range []string{s.secret, "tsk_wrong", "tsk_revoked"} {
				if strings.Contains(r.stdout+r.stderr, secret) {
					t.Errorf("the output shows the token %q", secret)
				}
			}
		})
	}
}

// execute runs the command line in process with ctx as the root context,
// as Main does with its signal context.
func execute(ctx context.Context, stdout, stderr *lockedBuffer, args ...string) error {
	a := &app{io: IO{In: strings.NewReader(""), Out: stdout, Err: stderr}, version: "test"}
	root := a.root()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}

// TestWorkerCommand runs `tasuki worker` in process with the token from
// the environment and from a file: it runs a lease, and cancelling its
// context (the first signal) drains it.
func TestWorkerCommand(t *testing.T) {
	for _, from := range []string{"env", "file"} {
		t.Run(from, func(t *testing.T) {
			s := newWorkerServer(t, nil)
			args := []string{"worker", "--server", s.url, "--labels", "gpu,spot", "--slots", "3", "--name", "box:7", "--dir", t.TempDir()}
			if from == "env" {
				t.Setenv(tokenEnv, s.secret)
			} else {
				t.Setenv(tokenEnv, "")
				args = append(args, "--token-file", writeFile(t, t.TempDir(), "token", s.secret+"\n"))
			}
			l := api.Lease{ID: "1.hello.1", RunID: 1, Pipeline: "p", Task: "hello", Attempt: 1,
				Spec: attempt.Spec{Kind: "shell", Body: json.RawMessage(`{"shell":"echo \"hello from $(pwd)\""}`), Env: map[string]string{}}, HeartbeatEvery: api.Duration(time.Second), LeaseTimeout: api.Duration(5 * time.Second)}
			s.fake.Add(l)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stdout, stderr := &lockedBuffer{}, &lockedBuffer{}
			errc := make(chan error, 1)
			go func() { errc <- execute(ctx, stdout, stderr, args...) }()
			c, err := s.fake.WaitComplete(waitCtx(t), l.ID)
			if err != nil || c.Outcome != api.OutcomeSucceeded {
				t.Fatalf("completion %+v: %v\n%s", c, err, stderr.String())
			}
			if !strings.Contains(string(s.fake.Log(l.ID)), "hello from /") {
				t.Errorf("log %q", s.fake.Log(l.ID))
			}
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("worker after drain: %v\n%s", err, stderr.String())
			}
			req := s.fake.LeaseRequests()[0]
			if req.Worker != "box:7" || strings.Join(req.Labels, ",") != "gpu,spot" || req.Free != 3 {
				t.Errorf("lease request %+v", req)
			}
			if names := s.fake.TokenNames(); names[0] != "w1" {
				t.Errorf("authenticated as %v", names)
			}
			out := stdout.String() + stderr.String()
			if strings.Contains(out, s.secret) {
				t.Errorf("the output shows the token:\n%s", out)
			}
			for _, want := range []string{"worker started", "draining", "worker drained"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestWorkerCommandServers runs `tasuki worker` given a server that is
// down and one that answers, in each form a list may take: it runs its
// lease through the second, and says once that it moved.
func TestWorkerCommandServers(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	for _, form := range []string{"repeated", "commas", "env", "before the command"} {
		t.Run(form, func(t *testing.T) {
			s := newWorkerServer(t, nil)
			t.Setenv(tokenEnv, s.secret)
			t.Setenv(serverEnv, "")
			args := []string{"worker", "--name", "box:7", "--dir", t.TempDir()}
			switch form {
			case "repeated":
				args = append(args, "--server", down.URL, "--server", s.url)
			case "commas":
				args = append(args, "--server", down.URL+","+s.url)
			case "env":
				t.Setenv(serverEnv, down.URL+", "+s.url)
			case "before the command":
				args = append([]string{"--server", down.URL + "," + s.url}, args...)
			}
			l := api.Lease{ID: "1.hello.1", RunID: 1, Pipeline: "p", Task: "hello", Attempt: 1,
				Spec: attempt.Spec{Kind: "shell", Body: json.RawMessage(`{"shell":"echo hello"}`), Env: map[string]string{}}, HeartbeatEvery: api.Duration(time.Second), LeaseTimeout: api.Duration(5 * time.Second)}
			s.fake.Add(l)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stdout, stderr := &lockedBuffer{}, &lockedBuffer{}
			errc := make(chan error, 1)
			go func() { errc <- execute(ctx, stdout, stderr, args...) }()
			c, err := s.fake.WaitComplete(waitCtx(t), l.ID)
			if err != nil || c.Outcome != api.OutcomeSucceeded {
				t.Fatalf("completion %+v: %v\n%s", c, err, stderr.String())
			}
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("worker after drain: %v\n%s", err, stderr.String())
			}
			out := stderr.String()
			if n := strings.Count(out, "moved to another server"); n != 1 {
				t.Errorf("said %d times that it moved, want once:\n%s", n, out)
			}
			if want := "from=" + down.URL + " to=" + s.url; !strings.Contains(out, want) {
				t.Errorf("the log does not say %q:\n%s", want, out)
			}
			if strings.Contains(out, s.secret) {
				t.Errorf("the output shows the token:\n%s", out)
			}
		})
	}
}

// lines collects what a process writes and lets a test wait for a text.
type lines struct{ lockedBuffer }

func newLines() *lines { return &lines{lockedBuffer{changed: make(chan struct{}, 1)}} }

func (l *lines) await(t *testing.T, text string) {
	t.Helper()
	ctx := waitCtx(t)
	for !strings.Contains(l.String(), text) {
		select {
		case <-ctx.Done():
			t.Fatalf("never printed %q:\n%s", text, l.String())
		case <-l.changed:
		}
	}
}

// startWorker starts `tasuki worker` as a process of its own against s.
func startWorker(t *testing.T, s *workerServer, args ...string) (*exec.Cmd, *lines) {
	t.Helper()
	cmd := tasuki(t, t.TempDir(), append([]string{"worker", "--server", s.url, "--kill-grace", "1s"}, args...)...)
	cmd.Env = append(cmd.Env, tokenEnv+"="+s.secret)
	out := newLines()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, out
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestWorkerProcessDrainsOnSIGTERM sends SIGTERM to a real worker process
// running a long task: it stops leasing, hands the task back as preempted
// after the grace period, and exits 0.
func TestWorkerProcessDrainsOnSIGTERM(t *testing.T) {
	s := newWorkerServer(t, nil)
	l := longLease("1.long.1")
	s.fake.Add(l)
	cmd, out := startWorker(t, s, "--grace", "300ms")
	if err := s.fake.WaitLog(waitCtx(t), l.ID, "out started"); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(cmd.Wait()); code != 0 {
		t.Errorf("exit %d after drain:\n%s", code, out.String())
	}
	c, ok := s.fake.Completion(l.ID)
	if !ok || c.Outcome != api.OutcomePreempted {
		t.Errorf("completion %+v (reported: %v)\n%s", c, ok, out.String())
	}
	if strings.Contains(out.String(), s.secret) {
		t.Error("the worker printed its token")
	}
}

// TestWorkerProcessSecondSignal drains a worker with a long grace period,
// then signals again: it stops at once, still handing the task back, and
// exits 130.
func TestWorkerProcessSecondSignal(t *testing.T) {
	s := newWorkerServer(t, nil)
	l := longLease("2.long.1")
	s.fake.Add(l)
	cmd, out := startWorker(t, s, "--grace", "5m")
	if err := s.fake.WaitLog(waitCtx(t), l.ID, "out started"); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	out.await(t, "send the signal again")
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(cmd.Wait()); code != 130 {
		t.Errorf("exit %d after the second signal, want 130:\n%s", code, out.String())
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("stopping took %s", d)
	}
	c, ok := s.fake.Completion(l.ID)
	if !ok || c.Outcome != api.OutcomePreempted {
		t.Errorf("completion %+v (reported: %v)\n%s", c, ok, out.String())
	}
	if !strings.Contains(out.String(), "stopped at once") {
		t.Errorf("output:\n%s", out.String())
	}
}

// TestWorkerHelpMentionsDrain keeps the help honest about signals and
// tokens.
func TestWorkerHelpMentionsDrain(t *testing.T) {
	r := call("worker", "--help")
	for _, want := range []string{"--grace", "--kill-grace", "--labels", "--slots", "$TASUKI_TOKEN", "SIGTERM", "preempted"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

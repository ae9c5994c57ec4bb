package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestCLIUsesAdminToken runs a real server and real CLI processes: on the
// server's machine the CLI finds the admin token in the data directory and
// the user notices nothing; elsewhere it is refused, and a viewer token
// reads but cannot act. What was done is in the audit log, under the
// credential's name.
func TestCLIUsesAdminToken(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	writeFile(t, dir, "p.yaml", "name: p\ntasks: [{id: a, run: 'true'}]\n")
	s := startServer(t, home, dir, nil)
	if strings.Count(s.logs(), s.token) != 1 {
		t.Errorf("the server's output holds its admin token %d times, want once", strings.Count(s.logs(), s.token))
	}

	if code, out, errOut := runCLI(t, nil, "trigger", "p", "--wait", "--server", s.url, "--home", home); code != 0 {
		t.Fatalf("trigger with the data directory's admin.token: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut := runCLI(t, nil, "runs", "--server", s.url, "--home", t.TempDir())
	if code != 2 || !strings.Contains(errOut, "admin.token") {
		t.Errorf("runs without a token: exit %d, stderr %q; want 2 saying where the admin token is", code, errOut)
	}

	code, viewer, errOut := runCLI(t, nil, "token", "create", "grafana", "--role", "viewer", "--server", s.url, "--home", home)
	if code != 0 {
		t.Fatalf("token create: exit %d: %s", code, errOut)
	}
	viewer = strings.TrimSpace(viewer)
	env := []string{"TASUKI_TOKEN=" + viewer}
	if code, _, errOut := runCLI(t, env, "runs", "--server", s.url); code != 0 {
		t.Errorf("runs as a viewer: exit %d: %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, env, "trigger", "p", "--server", s.url); code != 2 || !strings.Contains(errOut, "needs operator") {
		t.Errorf("trigger as a viewer: exit %d, stderr %q; want 2 and a 403", code, errOut)
	}

	// Raw HTTP: 401 without a credential, JSON either way.
	req, _ := http.NewRequest(http.MethodGet, s.url+"/api/v1/runs", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("GET /runs without a token: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	code, out, errOut := runCLI(t, nil, "audit", "--server", s.url, "--home", home)
	if code != 0 {
		t.Fatalf("audit: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// Newest first: the viewer's refused trigger, the token, the trigger.
	want := [][]string{
		{"TIME", "ACTOR", "FROM", "ACTION", "TARGET", "STATUS"},
		{"grafana", "127.0.0.1:", "POST /pipelines/{name}/runs", "name=p", "403"},
		{"admin", "POST /tokens", "201"},
		{"admin", "POST /pipelines/{name}/runs", "name=p", "201"},
	}
	if len(lines) != len(want) {
		t.Fatalf("audit printed:\n%s", out)
	}
	for i, w := range want {
		for _, s := range w {
			if !strings.Contains(lines[i], s) {
				t.Errorf("audit line %d %q lacks %q", i, lines[i], s)
			}
		}
	}
	if code, _, errOut := runCLI(t, env, "audit", "--server", s.url); code != 2 || !strings.Contains(errOut, "needs admin") {
		t.Errorf("audit as a viewer: exit %d: %s", code, errOut)
	}
}

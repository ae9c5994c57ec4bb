package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/hostfacts"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
)

// copyTree copies a fixture root as it is, symbolic links included.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", src, dst, err, out)
	}
}

// runAgent runs `tasuki agent ... --once` as a process of its own and
// returns what it printed.
func runAgent(t *testing.T, s *serverProc, token, root string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "agent", "--server", s.url, "--token", token, "--root", root, "--once")
	cmd.Env = serverEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tasuki agent: %v\n%s", err, out)
	}
	return string(out)
}

// TestProcessInventory runs the inventory end to end: a real server with
// the OSV fixtures as its advisories and a Rocky host whose last report is
// four hours old in its store; a real `tasuki agent`, with an agent token
// (which may not lease work), reports the Debian
// fixture root; the CLI finds it by `--package dnsmasq --version-lt 2.83`
// through the source package of dnsmasq-base, and by the advisory; an
// upgrade reported by a second agent run is in the host's history and
// ends both matches; an advisory file added to the directory is loaded
// and matches; a long-running agent reports at start.
func TestProcessInventory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	home, pipelines, advisories, roots := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	for _, f := range []string{"DSA-4844-1.json", "USN-4698-1.json"} {
		b, err := os.ReadFile(filepath.Join("../osv/testdata/advisories", f))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, advisories, f, string(b))
	}
	root := filepath.Join(roots, "root-debian")
	copyTree(t, "../hostfacts/testdata/root-debian", root)

	// A Rocky host that last reported four hours ago, straight into the
	// store before the server starts.
	rocky := &hostfacts.Report{Version: hostfacts.ReportVersion, CollectedAt: time.Now().Add(-4 * time.Hour), Hostname: "rocky1",
		MachineID: "feedfacefeedfacefeedfacefeedface", OS: hostfacts.OS{ID: "rocky", VersionID: "9.4"}, Scheme: "rpm",
		Packages: []hostfacts.Package{{Name: "dnsmasq", Version: "2.85-16.el9_4", Arch: "x86_64"}}}
	db, err := sqlite.Open(ctx, filepath.Join(home, "tasuki.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.PutHostReport(ctx, rocky, "old-agent", time.Now().Add(-4*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := startServer(t, home, pipelines, []string{"TASUKI_ADVISORIES=" + advisories, "TASUKI_ADVISORIES_INTERVAL=100ms"})
	token, _, err := s.c.CreateToken(ctx, api.CreateTokenRequest{Name: "agent-1", Kind: api.KindAgent}, "test")
	if err != nil {
		t.Fatal(err)
	}
	// An agent token reports its host and does nothing else: no lease.
	req, err := http.NewRequest(http.MethodPost, s.url+api.Prefix+"/worker/lease", strings.NewReader(`{"worker":"w","free":1}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a lease with an agent token: %d, want 403", resp.StatusCode)
	}
	out := runAgent(t, s, token, root)
	if !strings.Contains(out, "reported dns1.example.internal to "+s.url+"/api/v1: its first report") {
		t.Fatalf("the agent printed:\n%s", out)
	}

	// Which hosts run dnsmasq older than 2.83? The Debian host has
	// dnsmasq 2.80-1 and dnsmasq-base 2.80-1+b1 (source dnsmasq 2.80-1);
	// the Rocky host's 2.85 is newer.
	r := tasukiCLI(t, s, "hosts", "--package", "dnsmasq", "--version-lt", "2.83")
	r.expect(t, 0, "HOST", "PACKAGE", "dns1.example.internal", "debian 10", "dnsmasq-base (dnsmasq 2.80-1)", "2.80-1+b1",
		"dnsmasq.service", "udp/53")
	if strings.Contains(r.out, "rocky1") {
		t.Errorf("rocky1 has dnsmasq 2.85:\n%s", r.out)
	}
	var found []api.HostMatch
	r = tasukiCLI(t, s, "hosts", "--package", "dnsmasq-base", "--version-lt", "2.83", "-o", "json")
	r.expect(t, 0)
	if err := json.Unmarshal([]byte(r.out), &found); err != nil || len(found) != 1 || found[0].Packages[0].Name != "dnsmasq-base" ||
		found[0].Host.ReportedBy != "agent-1" || found[0].Host.Stale {
		t.Fatalf("json: %v\n%s", err, r.out)
	}
	tasukiCLI(t, s, "hosts", "--advisory", "CVE-2020-25681").expect(t, 0, "dns1.example.internal", "DSA-4844-1", "2.80-1+deb10u1")
	tasukiCLI(t, s, "hosts", "--stale").expect(t, 0, "rocky1", "(stale)")
	tasukiCLI(t, s, "hosts", "--os", "rocky:9", "-o", "csv").expect(t, 0,
		"host,machine_id,os,release,package,version", "rocky1,feedfacefeedfacefeedfacefeedface,rocky,9.4")
	tasukiCLI(t, s, "hosts", "show", "dns1.example.internal").expect(t, 0, "HOST            dns1.example.internal",
		"dnsmasq-base    2.80-1+b1", "agent-1")
	tasukiCLI(t, s, "hosts", "--version-lt", "2.83").expect(t, 2, "--version-lt needs --package")
	tasukiCLI(t, s, "hosts", "--package", "dnsmasq", "--version-lt", "x:y:z").expect(t, 2, "not a version")
	tasukiCLI(t, s, "hosts", "show", "nowhere").expect(t, 2, `no host named "nowhere"`)

	// The upgrade, reported by the agent again: recorded, and the host is
	// no longer affected.
	status := filepath.Join(root, "var/lib/dpkg/status")
	b, err := os.ReadFile(status)
	if err != nil {
		t.Fatal(err)
	}
	upgraded := strings.NewReplacer("Version: 2.80-1+b1", "Version: 2.80-1+deb10u1", "Version: 2.80-1\n", "Version: 2.80-1+deb10u1\n",
		"Source: dnsmasq (2.80-1)", "Source: dnsmasq (2.80-1+deb10u1)").Replace(string(b))
	replaceFile(t, status, upgraded)
	out = runAgent(t, s, token, root)
	if !strings.Contains(out, "reported dns1.example.internal to "+s.url+"/api/v1: 2 changes") {
		t.Fatalf("the second agent run printed:\n%s", out)
	}
	tasukiCLI(t, s, "hosts", "history", "dns1.example.internal").expect(t, 0,
		"package_upgraded", "dnsmasq-base", "2.80-1+b1", "2.80-1+deb10u1", "first_report")
	r = tasukiCLI(t, s, "hosts", "--advisory", "CVE-2020-25681")
	r.expect(t, 0, "no host matches")
	if strings.Contains(r.out, "dns1") {
		t.Errorf("the upgraded host still matches:\n%s", r.out)
	}

	// A new advisory file is loaded at the next look, and matches.
	tasukiCLI(t, s, "hosts", "advisories").expect(t, 0, "2 advisories from "+advisories)
	writeFile(t, advisories, "LOCAL-2026-0001.json", `{"id": "LOCAL-2026-0001", "modified": "2026-12-01T00:00:00Z",
		"aliases": ["CVE-2026-99999"], "summary": "dnsmasq up to 2.80-1+deb10u1",
		"affected": [{"package": {"ecosystem": "Debian:10", "name": "dnsmasq"},
			"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.80-1+deb10u2"}]}]}]}`)
	writeFile(t, advisories, "broken.json", `{"id": `)
	eventually(t, 15*time.Second, "the new advisory", func() (bool, string) {
		r := tasukiCLI(t, s, "hosts", "--advisory", "CVE-2026-99999")
		return r.code == 0 && strings.Contains(r.out, "dns1.example.internal"), r.out + r.errOut
	})
	tasukiCLI(t, s, "hosts", "advisories").expect(t, 1, "3 advisories", "not loaded: "+filepath.Join(advisories, "broken.json"))
	if !strings.Contains(s.logs(), "advisories: a file did not load") {
		t.Errorf("the server did not log the file that did not load:\n%s", s.logs())
	}

	// A long-running agent reports at start, and keeps running.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	agent := exec.Command(exe, "agent", "--server", s.url, "--token", token, "--root", root, "--every", "1h")
	agent.Env = serverEnv()
	stderr, err := agent.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	reported := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "host inventory: reported") {
				reported <- sc.Text()
				break
			}
		}
		for sc.Scan() {
		}
	}()
	select {
	case line := <-reported:
		if !strings.Contains(line, "host=dns1.example.internal") || !strings.Contains(line, "changes=0") {
			t.Errorf("the agent logged %s", line)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the long-running agent did not report within 30s")
	}
	if err := agent.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := agent.Wait(); err != nil {
		t.Errorf("the agent ended with %v after SIGINT", err)
	}
}

// TestProcessInventoryTask runs inventory tasks on a real server with
// workers: 0 and one remote worker, after a real agent reported the Debian
// fixture root with the worker's token (a worker token reports too): the sweep for an advisory runs in the server's process
// (the worker, which takes every other attempt, never gets it: it has no
// inventory), and a map over its result runs one item per affected host on
// the worker, with the host's keys as TASUKI_ITEM_<KEY>. A sweep with
// fail_if_found fails its run, naming the hosts; one that finds nothing
// succeeds.
func TestProcessInventoryTask(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	home, pipelines, advisories, roots := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	b, err := os.ReadFile("../osv/testdata/advisories/DSA-4844-1.json")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, advisories, "DSA-4844-1.json", string(b))
	root := filepath.Join(roots, "root-debian")
	copyTree(t, "../hostfacts/testdata/root-debian", root)
	writeFile(t, pipelines, "sweep.yaml", `
name: sweep
params:
  - {name: cve, type: string, default: CVE-2020-25681}
tasks:
  - id: affected
    inventory: {advisory: "${TASUKI_PARAM_CVE}"}
  - id: page
    map: {from: affected}
    run: |
      printf '{"host":"%s","fixed":"%s","w":"%s"}\n' "$TASUKI_ITEM_HOST" "$TASUKI_ITEM_FIXED" "$W" > "$TASUKI_RESULT"
`)
	writeFile(t, pipelines, "gate.yaml", `
name: gate
params:
  - {name: package, type: string, default: dnsmasq}
tasks:
  - id: old-dnsmasq
    inventory: {package: "${TASUKI_PARAM_PACKAGE}", version_lt: "2.83", fail_if_found: true}
`)
	s := startServer(t, home, pipelines, []string{"TASUKI_ADVISORIES=" + advisories}, "--workers", "0")
	serverTokens.Store(s.url, s.token)
	token, tokenFile := createToken(t, s.url, "w1")
	runAgent(t, s, token, root)
	startWorker(t, s.url, tokenFile, "w1", nil)

	run, err := s.c.Trigger(ctx, "sweep", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if run = waitRunEnd(t, s.c, run.ID); run.State != engine.RunSucceeded {
		detail, _ := s.c.Run(ctx, run.ID)
		for _, task := range detail.Tasks {
			t.Logf("%s: %s %s", task.ID, task.State, task.Message)
		}
		t.Fatalf("sweep ended %s", run.State)
	}
	affected, err := s.c.Task(ctx, run.ID, "affected")
	if err != nil {
		t.Fatal(err)
	}
	if len(affected.Attempts) != 1 || !strings.HasPrefix(affected.Attempts[0].Worker, "local:") {
		t.Errorf("the sweep's attempts %+v: want one, by the server's own executor", affected.Attempts)
	}
	if affected.Message != "1 host matches advisory=CVE-2020-25681" || !strings.Contains(string(affected.Result), `"host":"dns1.example.internal"`) {
		t.Errorf("sweep: %q %s", affected.Message, affected.Result)
	}
	if log := runLog(t, s.c, run.ID, "affected"); !strings.Contains(log, "dns1.example.internal  debian 10  dnsmasq") {
		t.Errorf("log of the sweep:\n%s", log)
	}
	page, err := s.c.Task(ctx, run.ID, "page")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(page.Message, "1 items: 1 succeeded") {
		t.Errorf("page: %q", page.Message)
	}
	// The item: the host, on the remote worker, with the host's keys.
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s%s/runs/%d/tasks/page/items", s.url, api.Prefix, run.ID), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var items api.Page[api.Item]
	err = json.NewDecoder(resp.Body).Decode(&items)
	resp.Body.Close()
	if err != nil || len(items.Items) != 1 {
		t.Fatalf("items of page: %+v, %v", items, err)
	}
	if it := items.Items[0]; it.Worker != "w1" || string(it.Result) != `{"host":"dns1.example.internal","fixed":"2.80-1+deb10u1","w":"w1"}` {
		t.Errorf("item: worker %q, result %s", it.Worker, it.Result)
	}
	// A gate: fail_if_found fails the run, naming the host.
	run, err = s.c.Trigger(ctx, "gate", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if run = waitRunEnd(t, s.c, run.ID); run.State != engine.RunFailed {
		t.Fatalf("gate ended %s, want failed", run.State)
	}
	gate, err := s.c.Task(ctx, run.ID, "old-dnsmasq")
	if err != nil {
		t.Fatal(err)
	}
	if gate.Message != "1 host matches package=dnsmasq version_lt=2.83 (fail_if_found): dns1.example.internal" ||
		!strings.HasPrefix(gate.Attempts[0].Worker, "local:") {
		t.Errorf("gate: %q %+v", gate.Message, gate.Attempts)
	}
	run, err = s.c.Trigger(ctx, "gate", map[string]string{"package": "rsync"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if run = waitRunEnd(t, s.c, run.ID); run.State != engine.RunSucceeded {
		t.Fatalf("gate for rsync ended %s, want succeeded", run.State)
	}
}

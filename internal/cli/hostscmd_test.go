package cli

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/hostfacts"
)

const debianFixture = "../hostfacts/testdata/root-debian"

func TestHostsCompareVersions(t *testing.T) {
	for _, c := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{args: []string{"--scheme", "deb", "2.80-1+deb10u1", "2.83"}, stdout: "<\n"},
		{args: []string{"--scheme", "deb", "1.0~rc1", "1.0"}, stdout: "<\n"},
		{args: []string{"--scheme", "deb", "1:0.1", "2.0"}, stdout: ">\n"},
		{args: []string{"--scheme", "deb", "1.0-0", "0:1.0"}, stdout: "=\n"},
		{args: []string{"--scheme", "rpm", "1.0^git1", "1.0"}, stdout: ">\n"},
		{args: []string{"--scheme", "RPM", "2.0.1a", "2.0.1a"}, stdout: "=\n"},
		{args: []string{"--scheme", "rpm", "2.79-13.el8", "2.79-13.el8_3.1"}, stdout: "<\n"},
		{args: []string{"--scheme", "deb", "2.80-", "2.83"}, code: 2, stderr: `tasuki: deb version "2.80-": revision number is empty`},
		{args: []string{"--scheme", "deb", "1.0", "a1.0"}, code: 2, stderr: `tasuki: deb version "a1.0": version number does not start with digit`},
		{args: []string{"--scheme", "rpm", "1-2-3", "1"}, code: 2, stderr: `tasuki: rpm version "1-2-3": more than one hyphen`},
		{args: []string{"--scheme", "apk", "1", "2"}, code: 2, stderr: `tasuki: --scheme: version scheme "apk": expected deb or rpm`},
		{args: []string{"1", "2"}, code: 2, stderr: "tasuki: --scheme is required: deb (dpkg's rules) or rpm (rpm's)"},
		{args: []string{"--scheme", "deb", "1"}, code: 2, stderr: "accepts 2 arg(s), received 1"},
	} {
		r := call(append([]string{"hosts", "compare-versions"}, c.args...)...)
		if r.code != c.code || r.stdout != c.stdout && c.code == 0 || c.stderr != "" && !strings.Contains(r.stderr, c.stderr) {
			t.Errorf("compare-versions %q: exit %d, stdout %q, stderr %q; want exit %d, %q, %q", c.args, r.code, r.stdout, r.stderr, c.code, c.stdout, c.stderr)
		}
	}
}

func TestHostsCollect(t *testing.T) {
	r := call("hosts", "collect", "--root", debianFixture)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{
		"HOST            dns1.example.internal\n",
		"os              Debian GNU/Linux 10 (buster)\n",
		"cpu             2 × Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz\n",
		"dnsmasq-base    2.80-1+b1           amd64  dnsmasq 2.80-1\n",
		"openssh-server  1:7.9p1-10+deb10u4  amd64  openssh\n",
		"udp 0.0.0.0:53      dnsmasq  812  /usr/sbin/dnsmasq  dnsmasq-base\n",
		"tcp6 [::]:22        sshd     640  /usr/sbin/sshd     openssh-server\n",
		"/srv/dns zones  /dev/sdb1  xfs   -     -     -\n",
		"container runtime: containerd (/run/containerd/containerd.sock)\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("collect: no %q in\n%s", want, r.stdout)
		}
	}

	// The services are read by systemctl where it is installed, else from
	// the unit files: the same states, checked by field, not by column.
	if !slices.ContainsFunc(strings.Split(r.stdout, "\n"), func(l string) bool {
		return slices.Equal(strings.Fields(l), []string{"dnsmasq.service", "enabled", "-"})
	}) {
		t.Errorf("collect: no row for dnsmasq.service in\n%s", r.stdout)
	}

	r = call("hosts", "collect", "--root", debianFixture, "-o", "json")
	if r.code != 0 {
		t.Fatalf("-o json: exit %d: %s", r.code, r.stderr)
	}
	rep, err := hostfacts.Decode(strings.NewReader(r.stdout))
	if err != nil {
		t.Fatalf("-o json is not a report a server takes: %v", err)
	}
	if rep.Hostname != "dns1.example.internal" || rep.Scheme != "deb" || len(rep.Packages) != 7 {
		t.Errorf("report: host %q, scheme %q, %d packages", rep.Hostname, rep.Scheme, len(rep.Packages))
	}

	if r := call("hosts", "collect", "-o", "yaml"); r.code != 2 || !strings.Contains(r.stderr, `--output "yaml": expected text or json`) {
		t.Errorf("-o yaml: exit %d, %q", r.code, r.stderr)
	}
	if r := call("hosts", "collect", "--root", t.TempDir()+"/missing"); r.code != 1 || !strings.Contains(r.stderr, "host facts: ") {
		t.Errorf("missing root: exit %d, %q", r.code, r.stderr)
	}
}

func TestHostsGroup(t *testing.T) {
	if r := call("hosts"); r.code != 0 || !strings.Contains(r.stdout, "compare-versions") {
		t.Errorf("hosts: exit %d, %q", r.code, r.stdout)
	}
	if r := call("hosts", "bogus"); r.code != 2 || !strings.Contains(r.stderr, `unknown command "bogus" for "tasuki hosts"`) {
		t.Errorf("hosts bogus: exit %d, %q", r.code, r.stderr)
	}
}

// TestHostsSearchUsage checks the search's and the agent's flags before
// any server is asked.
func TestHostsSearchUsage(t *testing.T) {
	for _, c := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"hosts", "--version-lt", "2.83"}, "--version-lt needs --package"},
		{[]string{"hosts", "--package", "dnsmasq", "--version-lt", "2.83", "--version-eq", "2.80"}, "give one version bound"},
		{[]string{"hosts", "--package", "dnsmasq", "--version-le", "a:b:c"}, `--version-le "a:b:c": not a version`},
		{[]string{"hosts", "--active"}, "--active needs --service"},
		{[]string{"hosts", "--port", "70000"}, "--port 70000: expected 1 to 65535"},
		{[]string{"hosts", "--os", "debian:12:x"}, `--os "debian:12:x": expected a distribution`},
		{[]string{"hosts", "--stale", "-o", "yaml"}, `--output "yaml": expected table, json or csv`},
		{[]string{"hosts", "--stale"}, "needs a server"},
		{[]string{"hosts", "history", "dns1", "--limit", "0"}, "--limit 0: expected 1 or more"},
		{[]string{"agent", "--server", "http://127.0.0.1:1"}, "a worker token is required"},
		{[]string{"agent", "--server", "http://127.0.0.1:1", "--token", "x", "--every", "10s"}, "--every 10s: expected 1m or more"},
		{[]string{"agent", "--server", "http://127.0.0.1:1", "--token", "x", "--root", "/nonexistent"}, "--root /nonexistent: not a directory"},
		{[]string{"worker", "--server", "http://127.0.0.1:1", "--token", "x", "--inventory-every", "5s"}, "--inventory-every 5s: expected 1m or more"},
	} {
		r := call(c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.stderr) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", c.args, r.code, r.stderr, c.stderr)
		}
	}
}

// TestAgentOnceServers: `tasuki agent --once` given a server that is down
// and one that answers reports to the second, and says so.
func TestAgentOnceServers(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	var reports atomic.Int64
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/worker/hosts" || r.Header.Get("Authorization") != "Bearer tsk_agent" {
			http.Error(w, `{"error":{"code":"not_found","message":"no"}}`, http.StatusNotFound)
			return
		}
		reports.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"host":"dns1.example.internal","first":true,"changes":0,"reported_at":"2026-01-01T00:00:00Z"}`)
	}))
	t.Cleanup(live.Close)
	t.Setenv(tokenEnv, "tsk_agent")
	r := call("agent", "--once", "--root", debianFixture, "--server", down.URL, "--server", live.URL)
	if r.code != 0 || reports.Load() != 1 {
		t.Fatalf("exit %d, %d reports:\n%s%s", r.code, reports.Load(), r.stdout, r.stderr)
	}
	if want := "reported dns1.example.internal to " + live.URL + "/api/v1: its first report\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	if !strings.Contains(r.stderr, "moved to another server") {
		t.Errorf("stderr does not say it moved:\n%s", r.stderr)
	}
}

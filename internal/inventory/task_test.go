package inventory_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/inventory"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
)

// sweepAttempt describes the attempt of the inventory task of a pipeline
// file, as the runner does, with env as its variables.
func sweepAttempt(t *testing.T, kinds *attempt.Registry, yaml string, env map[string]string) *attempt.Spec {
	t.Helper()
	p, err := spec.Parse("sweep.yaml", []byte("name: sweep\ntasks:\n  - id: sweep\n    inventory: "+yaml+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := kinds.Describe(&p.Tasks[0], env, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &s
}

// TestTask runs the inventory kind over a store with the Debian and Rocky
// fixture hosts reported, and two more Debian hosts: its result is one
// flat object per matching host, fail_if_found fails it (with the hosts
// still its result), more hosts than max_hosts fail it, and what cannot
// be searched fails it saying why.
func TestTask(t *testing.T) {
	ctx := t.Context()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "tasuki.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := &clock{t: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)}
	svc := newService(t, db, c)
	deb, rocky := fixture(t, "root-debian"), fixture(t, "root-rocky")
	if _, err := svc.ReportHost(ctx, deb, "agent-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.ReportHost(ctx, rocky, "agent-1"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		clone := *deb
		clone.Hostname = fmt.Sprintf("dns%d.example.internal", i+2)
		clone.MachineID = fmt.Sprintf("%032d", i+2)
		if _, err := svc.ReportHost(ctx, &clone, "agent-2"); err != nil {
			t.Fatal(err)
		}
	}
	kinds, err := attempt.Builtin().With(inventory.Task{Service: svc})
	if err != nil {
		t.Fatal(err)
	}
	if !kinds.ServerOnly("inventory") {
		t.Fatal("the inventory kind is not server-only")
	}
	run := func(yaml string, env map[string]string) (attempt.Result, []inventory.SweepHost, string) {
		t.Helper()
		var log strings.Builder
		res := kinds.Run(ctx, sweepAttempt(t, kinds, yaml, env), &attempt.Host{Stdout: &log})
		var hosts []inventory.SweepHost
		if len(res.Result) > 0 {
			if err := json.Unmarshal(res.Result, &hosts); err != nil {
				t.Fatalf("result %s: %v", res.Result, err)
			}
		}
		return res, hosts, log.String()
	}

	res, hosts, log := run(`{advisory: "${TASUKI_PARAM_CVE}"}`, map[string]string{"TASUKI_PARAM_CVE": "CVE-2020-25681"})
	if res.Outcome != attempt.Succeeded || len(hosts) != 3 {
		t.Fatalf("advisory: %+v", res)
	}
	h := hosts[0]
	if h.Host != "dns1.example.internal" || h.OS != "debian" || h.Release != "10" || h.Advisory != "DSA-4844-1" || h.Fixed != "2.80-1+deb10u1" ||
		h.Package == "" || !strings.Contains(h.Packages, "dnsmasq-base 2.80-1+b1") || h.ReportedBy != "agent-1" || h.Stale {
		t.Errorf("first host: %+v", h)
	}
	if hosts[1].Host != "dns2.example.internal" || hosts[2].Host != "dns3.example.internal" {
		t.Errorf("hosts: %+v", hosts)
	}
	if res.Message != "3 hosts match advisory=CVE-2020-25681" || !strings.Contains(log, "inventory search advisory=CVE-2020-25681: 3 hosts match") ||
		!strings.Contains(log, "dns2.example.internal  debian 10") {
		t.Errorf("message %q, log:\n%s", res.Message, log)
	}
	// Flat: every value a string, a number or a boolean, so a map's item
	// gets each key as TASUKI_ITEM_<KEY>.
	var raw []map[string]any
	if err := json.Unmarshal(res.Result, &raw); err != nil {
		t.Fatal(err)
	}
	for k, v := range raw[0] {
		switch v.(type) {
		case map[string]any, []any:
			t.Errorf("key %s is not flat: %v", k, v)
		}
	}

	res, hosts, _ = run(`{package: dnsmasq, version_lt: "2.83", service: dnsmasq, port: 53}`, nil)
	if res.Outcome != attempt.Succeeded || len(hosts) != 3 || hosts[0].Services == "" || !strings.Contains(hosts[0].Ports, "/53") {
		t.Errorf("package and service: %+v %+v", res, hosts)
	}
	res, hosts, _ = run(`{os: "rocky:9"}`, nil)
	if res.Outcome != attempt.Succeeded || len(hosts) != 1 || hosts[0].Host != rocky.Hostname || hosts[0].Package != "" {
		t.Errorf("os: %+v %+v", res, hosts)
	}
	res, hosts, _ = run(`{package: no-such-package}`, nil)
	if res.Outcome != attempt.Succeeded || string(res.Result) != "[]" || len(hosts) != 0 || res.Message != "0 hosts match package=no-such-package" {
		t.Errorf("no match: %+v", res)
	}
	res, _, _ = run(`{package: no-such-package, fail_if_found: true}`, nil)
	if res.Outcome != attempt.Succeeded {
		t.Errorf("fail_if_found without a match: %+v", res)
	}
	res, hosts, _ = run(`{advisory: CVE-2020-25681, fail_if_found: true}`, nil)
	if res.Outcome != attempt.Failed || len(hosts) != 3 ||
		res.Message != "3 hosts match advisory=CVE-2020-25681 (fail_if_found): dns1.example.internal, dns2.example.internal, dns3.example.internal" {
		t.Errorf("fail_if_found: %+v", res)
	}
	res, _, _ = run(`{advisory: CVE-2020-25681, max_hosts: 2}`, nil)
	if res.Outcome != attempt.Failed || !strings.Contains(res.Message, "more than max_hosts (2) hosts match") {
		t.Errorf("max_hosts: %+v", res)
	}
	for yaml, want := range map[string]string{
		`{advisory: CVE-1999-0001}`:                     `no advisory "CVE-1999-0001" among the`,
		`{advisory: "${CVE}"}`:                          "inventory.advisory: ${CVE}: the task has no variable CVE",
		`{package: p, version_lt: "${V}"}`:              "inventory.version_lt: ${V}: the task has no variable V",
		`{package: p, version_lt: "${TASUKI_TASK_ID}"}`: `inventory.version_lt: version "x:y"`,
	} {
		res, _, _ := run(yaml, map[string]string{"TASUKI_TASK_ID": "x:y"})
		if res.Outcome != attempt.Failed || !strings.Contains(res.Message, want) {
			t.Errorf("%s: %+v, want a failure saying %q", yaml, res, want)
		}
	}

	// Stopped: the search ends with the attempt.
	stopped, cancel := context.WithCancelCause(ctx)
	cancel(attempt.ErrCancelled)
	if res := kinds.Run(stopped, sweepAttempt(t, kinds, `{advisory: CVE-2020-25681}`, nil), &attempt.Host{}); res.Outcome != attempt.Cancelled {
		t.Errorf("cancelled: %+v", res)
	}

	// Where no inventory is kept ('tasuki run'), the attempt says so.
	none, err := attempt.Builtin().With(inventory.Task{})
	if err != nil {
		t.Fatal(err)
	}
	res = none.Run(ctx, sweepAttempt(t, none, `{package: dnsmasq}`, nil), &attempt.Host{})
	if res.Outcome != attempt.Failed || !strings.Contains(res.Message, "inventory tasks run on a server") {
		t.Errorf("without an inventory: %+v", res)
	}
}

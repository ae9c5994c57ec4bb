package spec

import (
	"strings"
	"testing"
)

// TestParseInventory: an inventory task takes the filters of 'tasuki
// hosts' under the same names (version_lt for --version-lt), and is a
// task of kind inventory that a map can take its items from.
func TestParseInventory(t *testing.T) {
	src := `name: sweep
params:
  - {name: cve, type: string, default: CVE-2020-25681}
tasks:
  - id: affected
    inventory:
      advisory: ${TASUKI_PARAM_CVE}
      os: debian:10
      service: dnsmasq
      active: true
      port: 53
      stale: false
      fail_if_found: false
      max_hosts: 200
  - id: old
    inventory: {package: dnsmasq, version_lt: "2.83"}
  - id: page
    map: {from: affected}
    run: ./page.sh "$TASUKI_ITEM_HOST"
`
	p, err := Parse("sweep.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	inv := p.Tasks[0].Inventory
	want := Inventory{Advisory: "${TASUKI_PARAM_CVE}", OS: "debian:10", Service: "dnsmasq", Active: true, Port: 53, MaxHosts: 200}
	if inv == nil || *inv != want {
		t.Fatalf("inventory = %+v, want %+v", inv, want)
	}
	if k := p.Tasks[0].Kind(); k != "inventory" {
		t.Errorf("kind %q, want inventory", k)
	}
	if old := p.Tasks[1].Inventory; old.Package != "dnsmasq" || old.VersionLT != "2.83" {
		t.Errorf("old = %+v", old)
	}
	if needs := p.Tasks[2].Needs; len(needs) != 1 || needs[0] != "affected" {
		t.Errorf("the map's needs: %v", needs)
	}
	if err := p.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	schema, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"inventory"`, `"version_lt"`, `"fail_if_found"`, `"max_hosts"`} {
		if !strings.Contains(string(schema), key) {
			t.Errorf("the JSON schema has no %s", key)
		}
	}
}

// TestParseInventoryErrors: what 'tasuki hosts' refuses as flags, an
// inventory task refuses at its line and column.
func TestParseInventoryErrors(t *testing.T) {
	head := "name: x\ntasks:\n  - id: a\n"
	tests := []struct {
		name, src string
		want      []string
	}{
		{"two bounds", head + "    inventory: {package: p, version_lt: '2', version_le: '3'}\n",
			[]string{`4:58: inventory.version_le: give one version bound`}},
		{"bound without package", head + "    inventory: {version_lt: '2.83'}\n",
			[]string{`4:29: inventory.version_lt needs package (or advisory): the version of which package?`}},
		{"bad version", head + "    inventory:\n      package: dnsmasq\n      version_lt: 'x:y:z'\n",
			[]string{`6:19: inventory.version_lt: "x:y:z" is not a version by dpkg's or rpm's rules`}},
		{"version from a variable", head + "    inventory: {package: p, version_lt: '${FIXED}'}\n", nil},
		{"active without service", head + "    inventory: {package: p, active: true}\n",
			[]string{`4:37: inventory.active needs service`}},
		{"bad os", head + "    inventory: {os: 'debian 10'}\n",
			[]string{`4:21: inventory.os: expected a distribution as os-release names it`}},
		{"port out of range", head + "    inventory: {port: 70000}\n",
			[]string{`4:23: inventory.port: `}},
		{"max_hosts too large", head + "    inventory: {package: p, max_hosts: 100000}\n",
			[]string{`4:40: inventory.max_hosts: `}},
		{"unknown key", head + "    inventory: {pakage: p}\n",
			[]string{`4:17: unknown key "pakage" in inventory; did you mean "package"?`}},
		{"with run", head + "    run: x\n    inventory: {package: p}\n",
			[]string{`3:5: task "a" has run and inventory: a task does exactly one of run, wait, sql, http, noop and inventory`}},
		{"labels", head + "    inventory: {package: p}\n    labels: [gpu]\n",
			[]string{`5:13: labels: an inventory task runs on the server, which keeps the inventory, never on a worker`}},
		{"not a mapping", head + "    inventory: dnsmasq\n",
			[]string{`4:16: inventory: expected a mapping (inventory), got the string "dnsmasq"`}},
		{"everything", head + "    inventory: {}\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseErrors(t, tt.src)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i, w := range tt.want {
				if !matchError(got[i], w) {
					t.Errorf("error %d:\n got  %s\n want %s", i, got[i], w)
				}
			}
		})
	}
}

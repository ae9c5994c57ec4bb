package sqlite

import (
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/store"
)

// TestInventoryQueriesUseIndexes checks the plans of the inventory's hot
// queries: a report's package versions are found by probes of the unique
// index, a search by package reads the name and source indexes and the
// hosts of the versions from host_packages_by_package, and pages hosts in
// name order without a sort.
func TestInventoryQueriesUseIndexes(t *testing.T) {
	db := openTemp(t)
	search, args, err := searchHostsQuery(store.HostQuery{Port: 53, Service: "dnsmasq", Active: true, Limit: 100}, "[1,2,3]")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, q string
		args    []any
		want    []string
	}{
		{"look up package versions", lookupPackagesSQL, []any{`[["a","1","amd64","a","1"]]`, "deb"},
			[]string{"INDEX sqlite_autoindex_package_versions_1 (name=? AND version=? AND arch=? AND source=? AND source_version=? AND scheme=?)"}},
		{"package versions by name", packageVersionsSQL, []any{`["dnsmasq"]`},
			[]string{"INDEX sqlite_autoindex_package_versions_1 (name=?)", "INDEX package_versions_by_source (source=?)"}},
		{"search", search, args, []string{"SCAN h USING INDEX hosts_by_name", "host_packages_by_package (package_id=?)",
			"host_services_by_unit (unit=?)", "host_listeners_by_port (port=?)"}},
	} {
		text := queryPlan(t, db, tt.q, tt.args...)
		for _, w := range tt.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: plan\n%s\nwant %s", tt.name, text, w)
			}
		}
		if strings.Contains(text, "TEMP B-TREE FOR ORDER BY") {
			t.Errorf("%s: plan sorts:\n%s", tt.name, text)
		}
		t.Logf("%s:\n%s", tt.name, text)
	}
}

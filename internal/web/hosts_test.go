package web_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/hostfacts"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/web"
)

// inventory is the fake inventory with the repository's two fixture
// hosts, with a history for one and paged events.
type inventory struct {
	*apitest.Inventory
	events []api.HostEvent
}

func (i *inventory) HostEvents(ctx context.Context, name, cursor string, limit int) (api.Page[api.HostEvent], error) {
	if _, err := i.Inventory.HostEvents(ctx, name, cursor, limit); err != nil {
		return api.Page[api.HostEvent]{}, err
	}
	switch cursor {
	case "":
		return api.Page[api.HostEvent]{Items: i.events[:1], Next: "p2"}, nil
	case "p2":
		return api.Page[api.HostEvent]{Items: i.events[1:]}, nil
	}
	return api.Page[api.HostEvent]{}, api.Errorf(http.StatusBadRequest, api.CodeInvalid, "cursor %q: expected the next of an earlier page", cursor)
}

func newInventory(t *testing.T) *inventory {
	t.Helper()
	inv := &inventory{Inventory: apitest.NewInventory()}
	for _, f := range []string{"root-debian.json", "root-rocky.json"} {
		fh, err := os.Open("../hostfacts/testdata/" + f)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := hostfacts.Decode(fh)
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := inv.ReportHost(context.Background(), rep, "w1"); err != nil {
			t.Fatal(err)
		}
	}
	inv.events = []api.HostEvent{
		{ID: 2, Kind: "package_upgraded", Subject: "dnsmasq-base", From: "2.80-1+b1", To: "2.85-1"},
		{ID: 1, Kind: "first_report", Subject: "dns1"},
	}
	return inv
}

// fixtureHost is the hostname and a package of the Debian fixture.
func fixtureHost(t *testing.T, inv *inventory) (string, hostfacts.Package) {
	t.Helper()
	page, err := inv.SearchHosts(context.Background(), api.HostQuery{})
	if err != nil || len(page.Items) == 0 {
		t.Fatal(page, err)
	}
	d, err := inv.Host(context.Background(), page.Items[0].Host.Name)
	if err != nil || len(d.Report.Packages) == 0 {
		t.Fatal(d, err)
	}
	return d.Host.Name, d.Report.Packages[0]
}

func TestHostsPage(t *testing.T) {
	inv := newInventory(t)
	name, pkg := fixtureHost(t, inv)
	srv := newUI(t, apitest.New(), func(o *web.Options) { o.Inventory = inv })

	status, body, _ := get(t, srv, "viewer", "/hosts")
	if status != http.StatusOK {
		t.Fatalf("%d %s", status, body)
	}
	mustHave(t, body, `id="host-search"`, `for="f-package"`, `for="f-version"`, `for="f-service"`, `for="f-active"`, `for="f-port"`,
		`for="f-os"`, `for="f-stale"`, `for="f-advisory"`, `id="hosts"`, `href="/hosts/`+name+`"`, `aria-current="page">Hosts`)

	// A search by package: the query reaches the inventory as the API's
	// would, and the row shows the package.
	_, body, _ = get(t, srv, "viewer", "/hosts?package="+pkg.Name+"&op=le&version="+pkg.Version+"&port=53&os=debian:10&stale=true&service=dnsmasq&active=true")
	q := inv.Queries[len(inv.Queries)-1]
	if want := (api.HostQuery{Package: pkg.Name, Op: store.VersionLE, Version: pkg.Version, Port: 53, OS: "debian:10", Stale: true, Service: "dnsmasq", Active: true, Limit: 100}); q != want {
		t.Errorf("query %+v, want %+v", q, want)
	}
	mustHave(t, body, "<code>"+pkg.Name+"</code>", `value="`+pkg.Name+`"`, `<option value="le" selected>`, `value="53"`, "Clear")
	// The API's own parameter names work too (links from elsewhere).
	get(t, srv, "viewer", "/hosts?package=dnsmasq&version_lt=2.83")
	if q := inv.Queries[len(inv.Queries)-1]; q.Op != store.VersionLT || q.Version != "2.83" || q.Package != "dnsmasq" {
		t.Errorf("version_lt: %+v", q)
	}

	// Bad input: the form again, with the error beside the field, 400,
	// and no search.
	asked := len(inv.Queries)
	for query, field := range map[string]string{
		"port=70000":                          "port",
		"port=x":                              "port",
		"os=debian:12:1":                      "os",
		"version=2.83":                        "version",
		"package=a&version=a%20b":             "version",
		"package=a&op=gt&version=1":           "version",
		"active=true":                         "service",
		"stale=maybe":                         "stale",
		"package=a&version_lt=1&version_eq=2": "version",
	} {
		status, body, _ := get(t, srv, "viewer", "/hosts?"+query)
		if status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", query, status)
		}
		mustHave(t, body, `id="host-search"`, `id="e-`+field+`"`, `aria-describedby="e-`+field+`"`)
		mustLack(t, body, `id="hosts"`)
	}
	if len(inv.Queries) != asked {
		t.Errorf("bad input was searched")
	}
	// What the inventory refuses shows above the form.
	inv.Err = api.Errorf(http.StatusBadRequest, api.CodeInvalid, "advisory %q: no such advisory", "CVE-1")
	status, body, _ = get(t, srv, "viewer", "/hosts?advisory=CVE-1")
	if status != http.StatusBadRequest || !strings.Contains(body, `id="form-error"`) || !strings.Contains(body, "no such advisory") {
		t.Errorf("an inventory's 400: %d", status)
	}
	inv.Err = nil

	// Hosts are in no namespace.
	if status, _, _ := get(t, srv, "ns-viewer", "/hosts"); status != http.StatusForbidden {
		t.Errorf("a confined viewer: %d, want 403", status)
	}
	_, body, _ = get(t, srv, "ns-viewer", "/backfills")
	mustLack(t, body, `href="/hosts"`)
	_, body, _ = get(t, newUI(t, apitest.New()), "viewer", "/hosts")
	mustHave(t, body, `id="hosts-notice"`)
}

func TestHostPage(t *testing.T) {
	inv := newInventory(t)
	name, pkg := fixtureHost(t, inv)
	srv := newUI(t, apitest.New(), func(o *web.Options) { o.Inventory = inv })
	status, body, _ := get(t, srv, "viewer", "/hosts/"+name)
	if status != http.StatusOK {
		t.Fatalf("%d %s", status, body)
	}
	mustHave(t, body, "Host "+name, `id="host-facts"`, `id="host-events"`, "package_upgraded", "2.85-1",
		`id="host-services"`, `id="host-listeners"`, `id="host-packages"`, "<code>"+pkg.Name+"</code>", `rel="next"`, `href="/hosts/`+name+`?cursor=p2"`)
	mustLack(t, body, "first_report")
	_, body, _ = get(t, srv, "viewer", "/hosts/"+name+"?cursor=p2")
	mustHave(t, body, "first_report", `rel="first"`)
	mustLack(t, body, "package_upgraded")

	for path, want := range map[string]int{
		"/hosts/nosuchhost":              http.StatusNotFound,
		"/hosts/" + name + "?cursor=bad": http.StatusBadRequest,
	} {
		if status, _, _ := get(t, srv, "viewer", path); status != want {
			t.Errorf("%s: %d, want %d", path, status, want)
		}
	}
	if status, _, _ := get(t, srv, "ns-viewer", "/hosts/"+name); status != http.StatusForbidden {
		t.Errorf("a confined viewer: %d, want 403", status)
	}
}

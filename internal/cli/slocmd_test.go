package cli

import (
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/logs"
)

// newSLOServer serves the real API handler over the fake objectives on a
// loopback port and returns its URL and a token of the role and namespace
// given.
func newSLOServer(t *testing.T, o *apitest.SLOs, namespace string) (url, token string) {
	t.Helper()
	tokens := apitest.NewTokens()
	token = tokens.AddAPI("viewer", api.RoleViewer, namespace)
	h := api.NewHandler(apitest.NewSeeded(), logs.NewFiles(t.TempDir()), api.WithTokens(tokens), api.WithSLOs(o),
		api.WithLogger(slog.New(slog.DiscardHandler)))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, token
}

// TestSLOCommand runs 'tasuki slo' against a server and checks its exit
// status, output, and what the server was asked.
func TestSLOCommand(t *testing.T) {
	t.Setenv("TZ", "UTC")
	for _, c := range []struct {
		name      string
		args      []string
		namespace string
		setup     func(o *apitest.SLOs)
		code      int
		stdout    []string
		stderr    []string
		check     func(t *testing.T, o *apitest.SLOs, r result)
	}{
		{name: "table", args: []string{"slo"},
			stdout: []string{"OBJECTIVE", "STATE", "7D", "30D", "90D", "LAST UPDATE", "RULE",
				"pipeline:orders-elt", "orders-elt", "met", "100.0%", "max age 15m0s during 09:00-15:00 Asia/Tokyo, daily",
				"dataset:warehouse.sales_mart", "sales-mart", "breached", "80.0%", "93.3%", "97.8%", "fresh by 09:00 Asia/Tokyo, weekdays",
				"BREACHED AT", "FOR", "CAUSE",
				"2026-03-09 09:00 JST", "1h20m0s (open)", "run 12 is running: task wait-london is waiting: no file matches /data/london/*.csv",
				"2026-03-05 09:00 JST", "40m0s", "run 9 failed: task load failed: exit status 1"},
			check: func(t *testing.T, o *apitest.SLOs, r result) {
				// Compliance not yet judged shows as "-"; the open breach
				// is listed first.
				lines := strings.Split(r.stdout, "\n")
				if !strings.Contains(lines[1], "100.0%  -") {
					t.Errorf("orders-elt row: %q", lines[1])
				}
				if i, j := strings.Index(r.stdout, "(open)"), strings.Index(r.stdout, "40m0s"); i < 0 || j < i {
					t.Errorf("breaches out of order:\n%s", r.stdout)
				}
			}},
		{name: "one pipeline", args: []string{"slo", "--pipeline", "sales-mart"},
			check: func(t *testing.T, o *apitest.SLOs, r result) {
				if strings.Contains(r.stdout, "orders-elt") || !strings.Contains(r.stdout, "sales-mart") {
					t.Errorf("stdout:\n%s", r.stdout)
				}
				if got := o.Asked(); !slices.Equal(got, []string{"sales-mart"}) {
					t.Errorf("asked %q", got)
				}
			}},
		{name: "no breaches", args: []string{"slo", "--pipeline", "orders-elt"},
			check: func(t *testing.T, o *apitest.SLOs, r result) {
				if strings.Contains(r.stdout, "BREACHED AT") {
					t.Errorf("a breaches table without breaches:\n%s", r.stdout)
				}
			}},
		{name: "none", args: []string{"slo"}, setup: func(o *apitest.SLOs) { o.Set(nil) },
			stdout: []string{"no freshness objectives"}},
		{name: "json", args: []string{"slo", "-o", "json"},
			check: func(t *testing.T, o *apitest.SLOs, r result) {
				var list []api.SLO
				mustDecode(t, r.stdout, &list)
				if len(list) != 2 || list[1].State != "breached" || list[1].Breaches[0].Task != "wait-london" || *list[1].Compliance.Days30 < 93 {
					t.Errorf("slo = %+v", list)
				}
				if !strings.Contains(r.stdout, `"7d": 80`) {
					t.Errorf("json:\n%s", r.stdout)
				}
			}},
		{name: "json none", args: []string{"slo", "-o", "json"}, setup: func(o *apitest.SLOs) { o.Set(nil) },
			check: func(t *testing.T, o *apitest.SLOs, r result) {
				if strings.TrimSpace(r.stdout) != "[]" {
					t.Errorf("no objectives printed %q, want []", r.stdout)
				}
			}},
		{name: "bad pipeline", args: []string{"slo", "--pipeline", "a b"}, code: 2, stderr: []string{`--pipeline: pipeline name "a b": expected letters`}},
		{name: "bad output", args: []string{"slo", "-o", "yaml"}, code: 2, stderr: []string{"expected table or json"}},
		{name: "arguments", args: []string{"slo", "sales-mart"}, code: 2, stderr: []string{"unknown command"}},
		{name: "confined token", args: []string{"slo"}, namespace: "finance", code: 2, stderr: []string{"global tokens"}},
		{name: "server error", args: []string{"slo"}, code: 1, setup: func(o *apitest.SLOs) { o.Fail(apitest.ErrBoom) },
			stderr: []string{"internal error"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := apitest.NewSLOs()
			if c.setup != nil {
				c.setup(o)
			}
			url, token := newSLOServer(t, o, c.namespace)
			r := call(append([]string{"--server", url, "--token", token}, c.args...)...)
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
				c.check(t, o, r)
			}
		})
	}
	t.Run("needs a server", func(t *testing.T) {
		t.Setenv(serverEnv, "")
		if r := call("slo"); r.code != 2 || !strings.Contains(r.stderr, "needs a server") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

package cli

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/store/sqlite"
	"github.com/tasuki-dev/tasuki/internal/timeline"
)

// timelinePipeline fails on its first attempt and succeeds on its retry,
// with a log that says why; it is scheduled in Tokyo, so its timeline's
// times are Tokyo's unless --tz says otherwise.
const timelinePipeline = `
name: relay
schedule: {cron: "0 20 * * 1-5", timezone: Asia/Tokyo}
tasks:
  - id: fetch
    retry: {attempts: 2, backoff: 10ms}
    run: |
      if [ "$TASUKI_ATTEMPT" = 1 ]; then echo "relay tokyo: connection reset" >&2; exit 7; fi
      echo "fetched 42 quotes"
  - id: merge
    needs: [fetch]
    run: echo merged
`

// TestTimelineCommand exports a run's timeline from the data directory and
// from a server that reads the same store, in both formats.
func TestTimelineCommand(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	file := writeFile(t, dir, "relay.yaml", timelinePipeline)
	if r := call("--home", home, "run", file); r.code != 0 {
		t.Fatalf("run: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	// The server variant: the real handler over the home's store and logs.
	st, err := sqlite.Open(context.Background(), filepath.Join(home, "tasuki.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fake := apitest.New()
	fake.AddPipeline(api.Pipeline{Name: "relay", File: "pipelines/relay.yaml", Schedule: "0 20 * * 1-5", Timezone: "Asia/Tokyo"})
	fake.AddRun(api.Run{ID: 1, Pipeline: "relay", State: engine.RunSucceeded})
	tokens := apitest.NewTokens()
	token := tokens.AddAPI("viewer", api.RoleViewer, "")
	srv := httptest.NewServer(api.NewHandler(fake, logs.NewFiles(filepath.Join(home, "logs")), api.WithTokens(tokens),
		api.WithTimelines(st, nil), api.WithLogger(slog.New(slog.DiscardHandler))))
	t.Cleanup(srv.Close)

	for _, where := range []struct {
		name string
		args []string
	}{
		{"local", []string{"--home", home}},
		{"server", []string{"--server", srv.URL, "--token", token}},
	} {
		t.Run(where.name, func(t *testing.T) {
			r := call(append(where.args, "timeline", "1")...)
			if r.code != 0 {
				t.Fatalf("timeline: %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			for _, want := range []string{
				"# Run 1 of relay: succeeded\n",
				" JST\n",
				"Times are JST.",
				"**attempt 1 failed after ",
				"(exit 7)**",
				"retry scheduled: attempt 2 of 2 in ",
				"### `fetch` attempt 1: failed (exit 7) after ",
				" err relay tokyo: connection reset\n```",
				"- **Attempts:** 3, 1 of them failed (`fetch` #1); 1 retry scheduled by retry policies.",
			} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("the timeline lacks %q:\n%s", want, r.stdout)
				}
			}

			r = call(append(where.args, "timeline", "1", "--tz", "UTC")...)
			if r.code != 0 || !strings.Contains(r.stdout, "Times are UTC.") {
				t.Errorf("--tz UTC: %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}

			r = call(append(where.args, "timeline", "1", "--format", "json")...)
			var doc timeline.Document
			dec := json.NewDecoder(strings.NewReader(r.stdout))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&doc); r.code != 0 || err != nil {
				t.Fatalf("--format json: %d %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
			}
			if doc.Run.ID != 1 || doc.Run.State != engine.RunSucceeded || doc.Summary.Retries != 1 || len(doc.Attempts) != 3 ||
				doc.Attempts[0].LogTail == nil || doc.Events[len(doc.Events)-1].Kind != engine.RecRunFinished {
				t.Errorf("document %+v", doc)
			}

			for _, c := range []struct {
				args []string
				want string
			}{
				{[]string{"timeline", "9"}, "no run 9"},
				{[]string{"timeline", "1", "--format", "html"}, `--format "html": expected markdown or json`},
				{[]string{"timeline", "1", "--tz", "Mars/Olympus"}, `--tz "Mars/Olympus": expected a time zone name`},
				{[]string{"timeline", "x"}, `run id "x"`},
				{[]string{"timeline"}, "accepts 1 arg(s)"},
			} {
				r := call(append(where.args, c.args...)...)
				if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
					t.Errorf("%q: %d %q, want exit 2 with %q", c.args, r.code, r.stderr, c.want)
				}
			}
		})
	}
}

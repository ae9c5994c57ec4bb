package server_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// TestProcessObjectives asks a real server for its freshness objectives,
// through the client and 'tasuki slo': a dataset's max_age objective is
// met once the dataset is updated, a pipeline's fresh_by objective is
// listed with its rule; a token confined to a namespace is refused.
func TestProcessObjectives(t *testing.T) {
	t.Parallel()
	home, dir := t.TempDir(), t.TempDir()
	writeFile(t, dir, "feed.yaml", `name: feed
slo: {fresh_by: "09:00", timezone: Asia/Tokyo, days: weekdays}
datasets:
  - name: raw.quotes
    slo: {max_age: 1h, timezone: UTC}
tasks:
  - {id: pull, run: 'true', produces: [raw.quotes]}
`)
	s := startServer(t, home, dir, nil)
	ctx := t.Context()
	if _, err := s.c.RecordDatasetUpdate(ctx, "raw.quotes", json.RawMessage(`{"rows": 3}`)); err != nil {
		t.Fatal(err)
	}
	list, err := s.c.ListSLOs(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "pipeline:feed" || list[0].Definition != "fresh by 09:00 Asia/Tokyo, weekdays" ||
		list[1].Name != "dataset:raw.quotes" || list[1].State != api.SLOMet || list[1].LastUpdate == nil {
		t.Fatalf("objectives: %+v", list)
	}
	// Both objectives are exported once judged: the dataset's as met (it
	// was just updated); the pipeline's fresh_by may be met or breached,
	// depending on the time of day the test runs at.
	eventually(t, 30*time.Second, "the objectives in the metrics", func() (bool, string) {
		m := scrape(t, s)
		ds, dsOK := m[`tasuki_slo_breached{objective="dataset:raw.quotes",pipeline="feed"}`]
		_, pOK := m[`tasuki_slo_breached{objective="pipeline",pipeline="feed"}`]
		return dsOK && ds == 0 && pOK, fmt.Sprint(keysWith(m, "tasuki_slo"))
	})
	code, out, errOut := runCLI(t, nil, "slo", "--server", s.url, "--home", home)
	if code != 0 || !strings.Contains(out, "dataset:raw.quotes") || !strings.Contains(out, "max age 1h0m0s during 00:00-24:00 UTC, daily") ||
		!strings.Contains(out, "pipeline:feed") {
		t.Fatalf("tasuki slo: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, nil, "slo", "--pipeline", "feed", "-o", "json", "--server", s.url, "--home", home)
	var got []api.SLO
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || len(got) != 2 {
		t.Fatalf("tasuki slo -o json: exit %d, %v\n%s", code, err, out)
	}
	code, fin, errOut := runCLI(t, nil, "token", "create", "fin", "--role", "viewer", "--namespace", "finance", "--server", s.url, "--home", home)
	if code != 0 {
		t.Fatalf("token create: exit %d: %s", code, errOut)
	}
	env := []string{"TASUKI_TOKEN=" + strings.TrimSpace(fin)}
	if code, _, errOut := runCLI(t, env, "slo", "--server", s.url); code != 2 || !strings.Contains(errOut, "global tokens") {
		t.Errorf("tasuki slo with a confined token: exit %d, stderr %q; want 2 and a 403", code, errOut)
	}
}

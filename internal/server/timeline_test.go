package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/timeline"
)

// TestProcessTimeline: a real server exports a run's timeline from its
// store and logs, through the client and 'tasuki timeline', in the
// pipeline's time zone by default.
func TestProcessTimeline(t *testing.T) {
	t.Parallel()
	home, dir := t.TempDir(), t.TempDir()
	writeFile(t, dir, "relay.yaml", `name: relay
schedule: {cron: "0 20 * * 1-5", timezone: Asia/Tokyo}
tasks:
  - id: fetch
    retry: {attempts: 2, backoff: 10ms}
    run: |
      if [ "$TASUKI_ATTEMPT" = 1 ]; then echo "relay tokyo: connection reset" >&2; exit 7; fi
      echo "fetched 42 quotes"
`)
	s := startServer(t, home, dir, nil)
	ctx := t.Context()
	run, err := s.c.Trigger(ctx, "relay", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if end := waitRunEnd(t, s.c, run.ID); end.State != engine.RunSucceeded {
		t.Fatalf("run %s", end.State)
	}

	var out bytes.Buffer
	if err := s.c.Timeline(ctx, run.ID, api.TimelineJSON, "", &out); err != nil {
		t.Fatal(err)
	}
	var doc timeline.Document
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Run.ID != run.ID || doc.Run.Actor != "admin" || doc.Summary.Retries != 1 || len(doc.Attempts) != 2 ||
		doc.Attempts[0].LogTail == nil || len(doc.Attempts[0].LogTail.Lines) != 1 {
		t.Fatalf("document %+v", doc)
	}
	tasukiCLI(t, s, "timeline", fmt.Sprint(run.ID)).expect(t, 0,
		fmt.Sprintf("# Run %d of relay: succeeded", run.ID), "Times are JST.", "(trigger manual, by admin)",
		"**attempt 1 failed after ", " err relay tokyo: connection reset")
}

package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/notify"
	"github.com/tasuki-dev/tasuki/internal/server"
)

// alertSink is a webhook receiver that checks each delivery's signature
// and keeps what it received, in order.
type alertSink struct {
	t      *testing.T
	secret []byte
	mu     sync.Mutex
	got    []map[string]any
	signal chan struct{}
}

func (s *alertSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := notify.Verify(s.secret, r.Header.Get("X-Tasuki-Signature"), body, time.Now(), 0); err != nil {
		s.t.Errorf("webhook with a bad signature: %v", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var ev map[string]any
	if err := json.Unmarshal(body, &ev); err != nil {
		s.t.Errorf("webhook body is not JSON: %s", body)
	}
	s.mu.Lock()
	s.got = append(s.got, ev)
	s.mu.Unlock()
	select {
	case s.signal <- struct{}{}:
	default:
	}
}

func (s *alertSink) events() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, ev := range s.got {
		out = append(out, fmt.Sprint(ev["event"]))
	}
	return out
}

// await waits until the sink has received an event of kind and returns it.
func (s *alertSink) await(kind string, within time.Duration) map[string]any {
	s.t.Helper()
	timeout := time.After(within)
	for {
		s.mu.Lock()
		for _, ev := range s.got {
			if ev["event"] == kind {
				s.mu.Unlock()
				return ev
			}
		}
		s.mu.Unlock()
		select {
		case <-s.signal:
		case <-timeout:
			s.t.Fatalf("no %q alert within %s; received %v", kind, within, s.events())
		}
	}
}

// TestProcessIncidentStory is the founding story, end to end, with a real
// server process and a real webhook receiver: the relay stalls; at-risk is
// delivered before the deadline (no later than 12 s into a 20 s deadline
// with an 8 s task still to come); the wait times out and the run fails;
// the file lands; tasuki reruns only the failed part by itself; the run
// finishes before its deadline; recovered is delivered; and the timeline
// export tells it in that order.
func TestProcessIncidentStory(t *testing.T) {
	if testing.Short() {
		t.Skip("the story takes about 15 s of real time")
	}
	sink := &alertSink{t: t, secret: []byte("story-signing-key"), signal: make(chan struct{}, 1)}
	receiver := httptest.NewServer(sink)
	defer receiver.Close()
	data := t.TempDir()
	dir := t.TempDir()
	writeFile(t, dir, "trading.yaml", `name: trading
deadline: {after: 20s}
repair: {on_data: true, poke: 200ms}
notify:
  - webhook: `+receiver.URL+`/hooks/tasuki
    secret: hook_key
    on: [at_risk, missed, failed, recovered, repaired]
tasks:
  - id: relay-london
    wait: {file: `+data+`/london.csv, poke: 1s, timeout: 13s}
  - id: relay-tokyo
    run: echo tokyo > `+data+`/tokyo.csv
  - id: merge
    needs: [relay-london, relay-tokyo]
    expected_duration: 8s
    run: cat `+data+`/london.csv `+data+`/tokyo.csv
`)
	s := startServer(t, t.TempDir(), dir, []string{"TASUKI_SECRET_HOOK_KEY=story-signing-key", "TASUKI_DEADLINE_INTERVAL=200ms"})
	ctx := context.Background()
	started := time.Now()
	run, err := s.c.Trigger(ctx, "trading", nil, "")
	if err != nil {
		t.Fatal(err)
	}

	atRisk := sink.await(string(notify.AtRisk), 20*time.Second)
	if took := time.Since(started); took > 13*time.Second {
		t.Errorf("at_risk arrived %s after the start; want no later than 12 s", took.Round(time.Millisecond))
	}
	if fmt.Sprint(atRisk["run"]) != fmt.Sprint(run.ID) || atRisk["pipeline"] != "trading" || atRisk["deadline"] == nil || atRisk["predicted_finish"] == nil {
		t.Errorf("at_risk webhook %v: want the run, its deadline and predicted finish", atRisk)
	}
	if reason := fmt.Sprint(atRisk["reason"]); !strings.Contains(reason, "relay-london") {
		t.Errorf("at_risk reason %q does not name the stuck relay", reason)
	}

	sink.await(string(notify.Failed), 20*time.Second)
	if r, err := s.c.Run(ctx, run.ID); err != nil || r.State != engine.RunFailed {
		t.Fatalf("after the failed alert the run is %v (%v)", r.State, err)
	}
	// The data lands; nobody does anything else.
	if err := os.WriteFile(filepath.Join(data, "london.csv"), []byte("london\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sink.await(string(notify.Recovered), 20*time.Second)
	final := waitRunEnd(t, s.c, run.ID)
	if final.State != engine.RunSucceeded {
		t.Fatalf("run ended %s, want succeeded", final.State)
	}
	if finished := final.FinishedAt; finished == nil || time.Since(started) > 20*time.Second {
		t.Errorf("the run finished %s after the start: not before its 20 s deadline", time.Since(started).Round(time.Millisecond))
	}
	byID := map[string]api.Task{}
	for _, task := range final.Tasks {
		byID[task.ID] = task
	}
	if byID["relay-tokyo"].Attempt != 1 || byID["relay-london"].Attempt != 2 || byID["merge"].Attempt != 1 {
		t.Errorf("attempts tokyo %d, london %d, merge %d: want 1, 2, 1 (only the failed part runs again)",
			byID["relay-tokyo"].Attempt, byID["relay-london"].Attempt, byID["merge"].Attempt)
	}
	kinds := sink.events()
	if n := countOf(kinds, string(notify.AtRisk)); n != 1 {
		t.Errorf("%d at_risk alerts, want 1 (one per incident): %v", n, kinds)
	}
	if order := positions(kinds, "at_risk", "failed", "recovered"); order == nil {
		t.Errorf("alerts %v: want at_risk, then failed, then recovered", kinds)
	}

	// The deadline watcher judges the ended run met on its next look.
	eventually(t, 20*time.Second, "the run to be judged met", func() (bool, string) {
		r, err := s.c.Run(ctx, run.ID)
		if err != nil {
			return false, err.Error()
		}
		return r.DeadlineState == "met", r.DeadlineState
	})
	// The export tells the story in order.
	var buf bytes.Buffer
	if err := s.c.Timeline(ctx, run.ID, "json", "", &buf); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Events []struct {
			Kind engine.EventKind `json:"kind"`
			Task string           `json:"task"`
		} `json:"events"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("timeline JSON: %v", err)
	}
	var story []string
	for _, ev := range doc.Events {
		switch {
		case ev.Kind == "deadline_at_risk", ev.Kind == engine.EvTaskTimedOut && ev.Task == "relay-london",
			ev.Kind == engine.RecRunFinished, ev.Kind == server.RecRepairWatching, ev.Kind == server.RecRepairStarted,
			ev.Kind == engine.EvTaskSucceeded && ev.Task == "merge", ev.Kind == "deadline_met":
			story = append(story, string(ev.Kind))
		}
	}
	want := []string{"deadline_at_risk", "task_timed_out", "run_finished", "repair_watching", "repair_started", "task_succeeded", "run_finished", "deadline_met"}
	if positions(story, want...) == nil {
		t.Errorf("timeline tells %v; want in order %v", story, want)
	}
	var md bytes.Buffer
	if err := s.c.Timeline(ctx, run.ID, "markdown", "", &md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "relay-london") || !strings.Contains(md.String(), "repair") {
		t.Errorf("the markdown export lacks the relay or the repair:\n%s", md.String())
	}
}

func countOf(list []string, v string) int {
	n := 0
	for _, x := range list {
		if x == v {
			n++
		}
	}
	return n
}

// positions reports whether want appears in list in order (not
// necessarily adjacent), returning their indexes, or nil.
func positions(list []string, want ...string) []int {
	var at []int
	i := 0
	for _, w := range want {
		for i < len(list) && list[i] != w {
			i++
		}
		if i == len(list) {
			return nil
		}
		at = append(at, i)
		i++
	}
	return at
}

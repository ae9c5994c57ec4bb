package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// mapServer is the real API handler over a fake whose run 10 (of hello)
// has a task "list" and a map "each" of 3000 items ({"n": i}): 0 to 9
// succeeded, 17 and 2500 failed, 1500 timed out, 21 running, the rest
// from 2990 on not started.
type mapServer struct {
	maps   *apitest.Maps
	logs   *logs.Files
	url    string
	values []json.RawMessage
	rows   []store.MapItem
	info   store.MapInfo
}

func newMapServer(t *testing.T) *mapServer {
	t.Helper()
	f := apitest.NewSeeded()
	now := f.Now()
	f.AddRun(api.Run{ID: 10, Pipeline: "hello", State: engine.RunRunning, Trigger: "manual", CreatedAt: now, StartedAt: &now, TaskCount: 2, Remaining: 1,
		Tasks: []api.Task{
			{ID: "list", Index: 0, State: engine.TaskSucceeded, Attempt: 1, StartedAt: &now, FinishedAt: &now},
			{ID: "each", Index: 1, State: engine.TaskRunning, Attempt: 1, StartedAt: &now},
		}})
	s := &mapServer{maps: apitest.NewMaps(f), logs: logs.NewFiles(t.TempDir())}
	s.maps.Logs = s.logs
	s.values = make([]json.RawMessage, 3000)
	for i := range s.values {
		s.values[i] = json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))
	}
	three := 3
	for i := range 10 {
		s.rows = append(s.rows, store.MapItem{Item: i, State: engine.TaskSucceeded, Attempt: 1, StartedAt: now, FinishedAt: now.Add(time.Duration(i+1) * time.Second)})
	}
	s.rows = append(s.rows,
		store.MapItem{Item: 17, State: engine.TaskFailed, Attempt: 1, StartedAt: now, FinishedAt: now, ExitCode: &three, Message: "no data for 17"},
		store.MapItem{Item: 1500, State: engine.TaskTimedOut, Attempt: 1, StartedAt: now, FinishedAt: now, Message: "timed out after 1m0s"},
		store.MapItem{Item: 2500, State: engine.TaskFailed, Attempt: 1, StartedAt: now, FinishedAt: now, ExitCode: &three, Message: "no data for 2500"})
	s.maps.AddMap(10, "each", s.values, 2990, s.rows...)
	s.info, _ = s.mapInfo()
	for _, l := range []struct {
		key  logs.Key
		line string
	}{{logs.Key{RunID: 10, TaskID: "each.17", Attempt: 1}, "17: no data"}} {
		w, err := s.logs.Create(context.Background(), l.key, nil)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(w.Stdout(), l.line)
		w.Close()
	}
	tokens := apitest.NewTokens()
	admin := tokens.AddAPI("admin", api.RoleAdmin, "")
	h := api.NewHandler(s.maps, s.logs, api.WithLogger(slog.New(slog.DiscardHandler)), api.WithTokens(tokens))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+admin)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *mapServer) mapInfo() (store.MapInfo, error) {
	infos, err := s.maps.Store.MapInfos(context.Background(), 10)
	if err != nil || len(infos) != 1 {
		return store.MapInfo{}, fmt.Errorf("infos %v, %v", infos, err)
	}
	return infos[0], nil
}

// setItem replaces (or adds) the kept row of an item of map each.
func (s *mapServer) setItem(row store.MapItem) {
	row.RunID, row.Index = 10, 1
	for i := range s.rows {
		if s.rows[i].Item == row.Item {
			s.rows = append(s.rows[:i], s.rows[i+1:]...)
			break
		}
	}
	s.rows = append(s.rows, row)
	s.maps.Store.Put(s.info, s.values, s.rows...)
}

// TestMapCommands runs the commands about map tasks against a server and
// checks their exit status and what they print.
func TestMapCommands(t *testing.T) {
	s := newMapServer(t)
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
		check  func(t *testing.T, r result)
	}{
		{name: "status", args: []string{"status", "10"}, stdout: []string{
			"each  running    1",
			"      map 3000 items: 10 succeeded, 2 failed, 1 timed out, 2977 running, 10 pending; slowest 9 (10s)\n",
			`        item 17 ({"n":17}): failed: no data for 17` + "\n",
			`        item 1500 ({"n":1500}): timed out: timed out after 1m0s` + "\n",
			`        item 2500 ({"n":2500}): failed: no data for 2500` + "\n",
			"        list them: tasuki items 10 each --state failed,timed_out\n",
			"run 10 of hello running in"}},
		{name: "status json", args: []string{"status", "10", "-o", "json"}, check: func(t *testing.T, r result) {
			var run api.Run
			mustDecode(t, r.stdout, &run)
			if m := run.Tasks[1].Map; m == nil || m.Items != 3000 || m.Counts["failed"] != 2 || run.Tasks[0].Map != nil {
				t.Errorf("tasks %+v", run.Tasks)
			}
		}},
		{name: "failed items", args: []string{"items", "10", "each", "--state", "failed"}, stdout: []string{
			"ITEM  STATE   ATTEMPT  DURATION  EXIT  VALUE       MESSAGE\n17    failed  1        0s        3     {\"n\":17}    no data for 17\n2500  failed  1        0s        3     {\"n\":2500}  no data for 2500\n"}},
		{name: "a page", args: []string{"items", "10", "each", "--after", "0", "--limit", "2", "--state", "failed,timed_out"},
			stdout: []string{"17    failed", "1500  timed_out"}, stderr: []string{"more: tasuki items 10 each --after 1500 --state failed,timed_out --limit 2\n"}},
		{name: "the last page", args: []string{"items", "10", "each", "--after", "1500", "--limit", "2", "--state", "failed,timed_out"},
			stdout: []string{"2500  failed"}, check: func(t *testing.T, r result) {
				if r.stderr != "" {
					t.Errorf("the last page says more follow: %s", r.stderr)
				}
			}},
		{name: "in order", args: []string{"items", "10", "each", "--after", "2988", "--limit", "3"},
			stdout: []string{"2989  running  -", "2990  pending  -", "2991  pending  -"}, stderr: []string{"more: tasuki items 10 each --after 2991 --limit 3"}},
		{name: "json", args: []string{"items", "10", "each", "--state", "timed_out", "-o", "json"}, check: func(t *testing.T, r result) {
			var items []api.Item
			mustDecode(t, r.stdout, &items)
			var value struct{ N int }
			if len(items) != 1 || items[0].Item != 1500 || json.Unmarshal(items[0].Value, &value) != nil || value.N != 1500 {
				t.Errorf("items %+v", items)
			}
		}},
		{name: "json of none", args: []string{"items", "10", "each", "--state", "skipped", "-o", "json"}, stdout: []string{"[]\n"}},
		{name: "a state without rows", args: []string{"items", "10", "each", "--state", "running"}, code: 2,
			stderr: []string{`--state "running": expected one of failed, timed_out`}},
		{name: "bad limit", args: []string{"items", "10", "each", "--limit", "0"}, code: 2, stderr: []string{"--limit 0: expected 1 to 1000"}},
		{name: "bad after", args: []string{"items", "10", "each", "--after", "-5"}, code: 2, stderr: []string{"--after -5"}},
		{name: "not a map", args: []string{"items", "10", "list"}, code: 2, stderr: []string{`task "list" of run 10 is not a map task`}},
		{name: "no run", args: []string{"items", "99", "each"}, code: 2, stderr: []string{"no run 99"}},
		{name: "an item's log", args: []string{"logs", "10", "each", "--item", "17"}, stdout: []string{"out 17: no data"}},
		{name: "an item's log by name", args: []string{"logs", "10", "each.17", "--attempt", "1"}, stdout: []string{"out 17: no data"}},
		{name: "two items", args: []string{"logs", "10", "each.17", "--item", "3"}, code: 2, stderr: []string{`"each.17" names item 17; --item 3 names another`}},
		{name: "an item not started", args: []string{"logs", "10", "each", "--item", "2995"}, code: 2, stderr: []string{"item 2995 of map task \"each\" of run 10 has not started yet"}},
		{name: "the map's own log", args: []string{"logs", "10", "each"}, code: 2,
			stderr: []string{`task "each" of run 10 is a map: each item has its own log (tasuki logs 10 each --item N; its items: tasuki items 10 each)`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := call(append([]string{"--server", s.url}, c.args...)...)
			if r.code != c.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, c.code, r.stdout, r.stderr)
			}
			for _, w := range c.stdout {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
				}
			}
			for _, w := range c.stderr {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if c.check != nil {
				c.check(t, r)
			}
		})
	}
}

// TestItemLogFollow follows an item against a server while it runs its
// first attempt, waits for its retry, and succeeds at its second: both
// attempts are printed, with the boundary between them.
func TestItemLogFollow(t *testing.T) {
	s := newMapServer(t)
	now := time.Now()
	out := &lockedBuffer{changed: make(chan struct{}, 1)}
	var errb lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main([]string{"--server", s.url, "logs", "-f", "10", "each", "--item", "21"}, IO{In: strings.NewReader(""), Out: out, Err: &errb}, "test")
	}()
	w, err := s.logs.Create(context.Background(), logs.Key{RunID: 10, TaskID: "each.21", Attempt: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(w.Stdout(), "one 1")
	awaitText(t, out, "out one 1\n", done)
	fmt.Fprintln(w.Stdout(), "one 2")
	w.Close()
	one := 1
	s.setItem(store.MapItem{Item: 21, State: engine.TaskRetryWait, Attempt: 1, StartedAt: now, FinishedAt: now, ReadyAt: now, ExitCode: &one, Message: "exit status 1"})
	w2, err := s.logs.Create(context.Background(), logs.Key{RunID: 10, TaskID: "each.21", Attempt: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(w2.Stdout(), "two 1")
	w2.Close()
	s.setItem(store.MapItem{Item: 21, State: engine.TaskSucceeded, Attempt: 2, StartedAt: now, FinishedAt: now})
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("logs -f did not end with the item")
	}
	got := stripStamps(out.String())
	// How an earlier attempt of an item ended is not kept: its row holds
	// the latest.
	want := "out one 1\nout one 2\n--- attempt 1 ended: not kept for a map item ---\n--- attempt 2 ---\nout two 1\n"
	if got != want {
		t.Fatalf("followed:\n%s\nwant:\n%s", got, want)
	}
}

// TestMapCommandsLocal runs a map with 'tasuki run' and reads it back from
// the data directory: the summary and 'tasuki status' under the map task,
// 'tasuki items' and 'tasuki logs --item'.
func TestMapCommandsLocal(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	file := writeFile(t, dir, "fan.yaml", `name: fan
tasks:
  - id: list
    run: "true"
  - id: each
    needs: [list]
    map:
      items: [{"id": "u1"}, {"id": "u2"}, {"id": "u3"}, {"id": "u4"}, {"id": "u5"}]
      tolerate: {count: 2}
    run: |
      echo "user $TASUKI_ITEM_ID"
      case "$TASUKI_ITEM_ID" in u2|u4) echo "no profile for $TASUKI_ITEM_ID" >&2; exit 4;; esac
`)
	summary := "      map 5 items: 3 succeeded, 2 failed; slowest "
	r := call("--home", home, "run", file)
	if r.code != 0 || !strings.Contains(r.stdout, summary) {
		t.Fatalf("run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, c := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"status", "1"}, 0, []string{summary, `        item 1 ({"id":"u2"}): failed: exit status 4`, `        item 3 ({"id":"u4"}): failed: exit status 4`,
			"        list them: tasuki items 1 each --state failed"}},
		{[]string{"status", "1", "-o", "json"}, 0, []string{`"map": {`, `"items": 5`, `"failed": 2`}},
		{[]string{"items", "1", "each"}, 0, []string{"0     succeeded", `{"id":"u1"}`, "1     failed     1        ", "exit status 4"}},
		{[]string{"items", "1", "each", "--state", "failed", "-o", "json"}, 0, []string{`"item": 1`, `"item": 3`, `"exit_code": 4`}},
		{[]string{"items", "1", "list"}, 2, []string{`task "list" of run 1 is not a map task`}},
		{[]string{"items", "1", "nope"}, 2, []string{`run 1 has no task "nope"`}},
		{[]string{"logs", "1", "each", "--item", "3"}, 0, []string{"out user u4", "err no profile for u4"}},
		{[]string{"logs", "1", "each.0"}, 0, []string{"out user u1"}},
		{[]string{"logs", "-f", "1", "each", "--item", "1"}, 0, []string{"err no profile for u2"}},
		{[]string{"logs", "1", "each", "--item", "5"}, 2, []string{"has 5 items (0 to 4): no item 5"}},
		{[]string{"logs", "1", "each"}, 2, []string{"is a map: each item has its own log"}},
	} {
		r := call(append([]string{"--home", home}, c.args...)...)
		if r.code != c.code {
			t.Errorf("%v: exit %d, want %d\n%s%s", c.args, r.code, c.code, r.stdout, r.stderr)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(r.stdout+r.stderr, w) {
				t.Errorf("%v lacks %q:\n%s%s", c.args, w, r.stdout, r.stderr)
			}
		}
	}
}

// TestDescribeItemEvents: 'trigger --wait' says a map item's failure and
// retry in words, the item named by the record's message.
func TestDescribeItemEvents(t *testing.T) {
	for _, c := range []struct {
		e    api.Event
		want string
	}{
		{api.Event{Kind: runner.RecItemFailed, Task: "render", Attempt: 1, Message: "item 17: exit status 3"}, "✗ render: item 17: exit status 3"},
		{api.Event{Kind: runner.RecItemRetry, Task: "render", Attempt: 1, Message: "item 3: exit status 1; attempt 2 of 2 in 10ms"},
			"↻ render: item 3: exit status 1; attempt 2 of 2 in 10ms"},
	} {
		if got := describeEvent(c.e); got != c.want {
			t.Errorf("describeEvent(%s) = %q, want %q", c.e.Kind, got, c.want)
		}
	}
}

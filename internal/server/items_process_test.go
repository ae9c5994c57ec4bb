package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
)

// TestProcessMapItems runs a map on a real server and reads it back as an
// operator would, through real HTTP and the CLI: the map's counts in the
// run, a page of its failed items with their values, an item's log (its
// secret masked) by ?item= and by its name, an item retried once, and
// 'tasuki status', 'tasuki items' and 'tasuki logs --item'.
func TestProcessMapItems(t *testing.T) {
	t.Parallel()
	home, dir := t.TempDir(), t.TempDir()
	const pin = "pin-4r7c-5150"
	writeFile(t, dir, "tiles.yaml", `name: tiles
params:
  - {name: pin, secret: true, default: `+pin+`}
tasks:
  - id: list
    run: echo '["a"]' > "$TASUKI_RESULT"
  - id: render
    needs: [list]
    map:
      range: {stop: 60}
      tolerate: {count: 5}
    retry: {attempts: 2, backoff: 10ms}
    run: |
      echo "tile $TASUKI_ITEM with $TASUKI_PARAM_PIN"
      if [ $((TASUKI_ITEM % 20)) = 7 ]; then echo "no data for tile $TASUKI_ITEM" >&2; exit 3; fi
      if [ "$TASUKI_ITEM" = 3 ] && [ "$TASUKI_ATTEMPT" = 1 ]; then echo "flaky" >&2; exit 1; fi
      echo "{\"tile\": $TASUKI_ITEM}" > "$TASUKI_RESULT"
`)
	s := startServer(t, home, dir, nil)
	ctx := context.Background()
	run, err := s.c.Trigger(ctx, "tiles", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	end := waitRunEnd(t, s.c, run.ID)
	if end.State != engine.RunSucceeded {
		t.Fatalf("run %s: %+v", end.State, end.Tasks)
	}
	m := end.Tasks[1].Map
	if m == nil || m.Items != 60 || m.Started != 60 || !reflect.DeepEqual(m.Counts, map[string]int{"succeeded": 57, "failed": 3}) || len(m.Slowest) == 0 {
		t.Fatalf("the map of task render: %+v", m)
	}
	if end.Tasks[0].Map != nil {
		t.Errorf("task list has a map: %+v", end.Tasks[0].Map)
	}

	failed, err := s.c.Items(ctx, run.ID, "render", api.ItemQuery{States: []engine.TaskState{engine.TaskFailed}, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := itemsOf(failed.Items); !slices.Equal(got, []int{7, 27}) || failed.Next != "27" {
		t.Fatalf("failed items %v, next %q", got, failed.Next)
	}
	if it := failed.Items[0]; string(it.Value) != "7" || it.Attempt != 2 || it.ExitCode == nil || *it.ExitCode != 3 || it.Duration == nil {
		t.Errorf("item 7 = %+v", it)
	}
	rest, err := s.c.Items(ctx, run.ID, "render", api.ItemQuery{States: []engine.TaskState{engine.TaskFailed}, From: 28})
	if err != nil || !slices.Equal(itemsOf(rest.Items), []int{47}) || rest.Next != "" {
		t.Fatalf("the next page: %+v, %v", rest, err)
	}
	flaky, err := s.c.Item(ctx, run.ID, "render", 3)
	if err != nil || flaky.State != engine.TaskSucceeded || flaky.Attempt != 2 || string(flaky.Result) != `{"tile":3}` {
		t.Fatalf("item 3 = %+v, %v", flaky, err)
	}

	// An item's log over plain HTTP, by ?item= and by its name; each of
	// its attempts; the secret masked.
	get := func(path string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, s.url+api.Prefix+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+s.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		path   string
		status int
		want   []string
	}{
		{fmt.Sprintf("/runs/%d/tasks/render/logs?item=7", run.ID), 200, []string{"out tile 7 with ***", "err no data for tile 7"}},
		{fmt.Sprintf("/runs/%d/tasks/render.7/logs", run.ID), 200, []string{"out tile 7 with ***"}},
		{fmt.Sprintf("/runs/%d/tasks/render/logs?item=3&attempt=1", run.ID), 200, []string{"err flaky"}},
		{fmt.Sprintf("/runs/%d/tasks/render/logs?item=3", run.ID), 200, []string{"out tile 3 with ***"}},
		{fmt.Sprintf("/runs/%d/tasks/render/logs?item=3&attempt=3", run.ID), 404, []string{"has no attempt 3 (latest is 2)"}},
		{fmt.Sprintf("/runs/%d/tasks/render/logs?item=60", run.ID), 404, []string{"has 60 items (0 to 59): no item 60"}},
		{fmt.Sprintf("/runs/%d/tasks/list/logs?item=0", run.ID), 404, []string{`task \"list\" of run 1 is not a map task`}},
		{fmt.Sprintf("/runs/%d/tasks/render/items?state=running", run.ID), 400, []string{"items pending or running have no kept state"}},
		{fmt.Sprintf("/runs/%d/tasks/list/items", run.ID), 404, []string{"is not a map task"}},
	} {
		status, body := get(c.path)
		if status != c.status {
			t.Errorf("GET %s: %d %s, want %d", c.path, status, body, c.status)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s lacks %q:\n%s", c.path, w, body)
			}
		}
		if strings.Contains(body, pin) {
			t.Errorf("GET %s shows the secret:\n%s", c.path, body)
		}
	}
	var b bytes.Buffer
	if err := s.c.FollowLog(ctx, run.ID, api.ItemLogName("render", 27), 2, &b); err != nil || !strings.Contains(b.String(), "no data for tile 27") {
		t.Errorf("following item 27's log: %q, %v", b.String(), err)
	}

	id := fmt.Sprint(run.ID)
	tasukiCLI(t, s, "status", id).expect(t, 0,
		"map 60 items: 57 succeeded, 3 failed; slowest ",
		"item 7 (7): failed: exit status 3",
		"item 47 (47): failed: exit status 3",
		"list them: tasuki items "+id+" render --state failed")
	tasukiCLI(t, s, "items", id, "render", "--state", "failed").expect(t, 0, "ITEM", "7  ", "27  ", "47  ", "exit status 3")
	r := tasukiCLI(t, s, "items", id, "render", "--limit", "5")
	r.expect(t, 0, "more: tasuki items "+id+" render --after 4 --limit 5")
	if !strings.Contains(r.out, "3     succeeded  2") {
		t.Errorf("items: item 3 is not shown succeeded at its second attempt:\n%s", r.out)
	}
	tasukiCLI(t, s, "logs", id, "render", "--item", "47").expect(t, 0, "no data for tile 47", "tile 47 with ***")
	tasukiCLI(t, s, "logs", id, "render.3", "--attempt", "1").expect(t, 0, "err flaky")
	tasukiCLI(t, s, "logs", "-f", id, "render", "--item", "3").expect(t, 0, "out tile 3 with ***") // the latest attempt, as for a task
	tasukiCLI(t, s, "logs", id, "render").expect(t, 2, `task "render" of run `+id+" is a map: each item has its own log")
	tasukiCLI(t, s, "items", id, "list").expect(t, 2, `task "list" of run `+id+" is not a map task")
	tasukiCLI(t, s, "items", id, "render", "--state", "running").expect(t, 2, `--state "running": expected one of`)
}

func itemsOf(items []api.Item) []int {
	out := []int{}
	for _, it := range items {
		out = append(out, it.Item)
	}
	return out
}

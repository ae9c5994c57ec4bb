package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
)

// mapActPipeline is a map of 8 items, 3 at a time, whose items wait for
// the file $GO before they end; item 2 fails at once in its first attempt.
// So while GO is absent, items 0, 1 and 3 run, 2 has failed, and 4 to 7
// have not started.
const mapActPipeline = `name: tiles
env: {GO: %q}
tasks:
  - id: list
    run: "true"
  - id: render
    needs: [list]
    map:
      range: {stop: 8}
      concurrency: 3
      tolerate: {count: 3}
    run: |
      if [ "$TASUKI_ITEM" = 2 ] && [ "$TASUKI_ATTEMPT" = 1 ]; then echo "no data for tile 2" >&2; exit 3; fi
      echo "tile $TASUKI_ITEM waits"
      while [ ! -e "$GO" ]; do sleep 0.05; done
      echo "tile $TASUKI_ITEM rendered"
  - id: publish
    needs: [render]
    run: echo published
`

// post sends POST path (under the API's prefix) with body to a server,
// with its admin token, and returns the status and the answer.
func post(t *testing.T, url, token, path, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(http.MethodPost, url+api.Prefix+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitMap waits until the map task render of a run has counts that cond
// accepts, and returns the run.
func waitMap(t *testing.T, c *api.Client, id int64, what string, cond func(m *api.MapState) bool) api.Run {
	t.Helper()
	var run api.Run
	eventually(t, 30*time.Second, what, func() (bool, string) {
		var err error
		if run, err = c.Run(context.Background(), id); err != nil {
			return false, err.Error()
		}
		for _, task := range run.Tasks {
			if task.ID == "render" && task.Map != nil {
				return cond(task.Map), fmt.Sprintf("%s %v", task.State, task.Map.Counts)
			}
		}
		return false, "no map yet"
	})
	return run
}

// item reads one item of map render.
func item(t *testing.T, c *api.Client, id int64, n int) api.Item {
	t.Helper()
	it, err := c.Item(context.Background(), id, "render", n)
	if err != nil {
		t.Fatalf("item %d: %v", n, err)
	}
	return it
}

// TestProcessMapActions runs a map on a real server and acts on it as an
// operator would, through real HTTP and the CLI, while its items run: one
// running item cancelled, a failed one retried, one not started marked
// skipped, actions that do not apply refused with why, and at last the
// whole map cancelled. Then the outcome: the items' states and messages,
// the run's timeline with who did what, a map that ended refusing actions
// with the way to take it up again, and a retry of the run that runs its
// unsuccessful items again and keeps the rest.
func TestProcessMapActions(t *testing.T) {
	t.Parallel()
	home, dir, work := t.TempDir(), t.TempDir(), t.TempDir()
	goFile := filepath.Join(work, "go")
	writeFile(t, dir, "tiles.yaml", fmt.Sprintf(mapActPipeline, goFile))
	s := startServer(t, home, dir, nil)
	ctx := context.Background()
	run, err := s.c.Trigger(ctx, "tiles", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprint(run.ID)
	base := fmt.Sprintf("/runs/%d/tasks/render", run.ID)
	waitMap(t, s.c, run.ID, "items 0, 1 and 3 running, 2 failed", func(m *api.MapState) bool {
		return m.Counts["running"] == 3 && m.Counts["failed"] == 1
	})

	// A running item, cancelled through the CLI: it is stopped, and the
	// next item takes its slot.
	tasukiCLI(t, s, "cancel", id, "--task", "render", "--item", "1").expect(t, 0,
		"item 1 of map task render (run "+id+"): cancelled", "run "+id+" of tiles: running; map 8 items: ")
	waitMap(t, s.c, run.ID, "item 1 cancelled and item 4 running in its place", func(m *api.MapState) bool {
		return m.Counts["cancelled"] == 1 && m.Counts["running"] == 3
	})
	if it := item(t, s.c, run.ID, 1); it.State != engine.TaskCancelled {
		t.Errorf("item 1 after its cancel: %+v", it)
	}

	// The failed item, retried over HTTP: the answer is the run.
	status, body := post(t, s.url, s.token, base+"/items/2/retry", "")
	var answered api.Run
	if status != 200 || json.Unmarshal([]byte(body), &answered) != nil || answered.ID != run.ID {
		t.Fatalf("retry item 2: %d %s", status, body)
	}
	if it := item(t, s.c, run.ID, 2); it.State == engine.TaskFailed {
		t.Errorf("item 2 is still failed after its retry: %+v", it)
	}

	// An item not started, marked skipped through the CLI.
	tasukiCLI(t, s, "mark", id, "render", "skipped", "--item", "7").expect(t, 0, "item 7 of map task render (run "+id+"): marked skipped", "1 skipped")

	// What does not apply is refused, and says why.
	for _, c := range []struct {
		path, body string
		status     int
		want       string
	}{
		{base + "/items/0/retry", "", 409, "item 0 is running: only a failed, timed out or cancelled item can be retried"},
		{base + "/items/0/mark", `{"state":"succeeded"}`, 409, "item 0 is running: cancel it first, or wait for it"},
		{base + "/items/7/mark", `{"state":"succeeded"}`, 409, "item 7 is already skipped"},
		{base + "/items/7/cancel", "", 409, "item 7 is skipped: only a pending, waiting or running item can be cancelled"},
		{base + "/items/2/mark", `{"state":"failed"}`, 400, `expected \"succeeded\" or \"skipped\"`},
		{base + "/items/8/cancel", "", 404, "has 8 items (0 to 7): no item 8"},
		{base + "/items/x/cancel", "", 400, `item \"x\": expected an item's position`},
		{fmt.Sprintf("/runs/%d/tasks/list/cancel", run.ID), "", 400, "is not a map task: a task is cancelled with its run"},
		{fmt.Sprintf("/runs/%d/tasks/publish/items/0/retry", run.ID), "", 404, "is not a map task"},
		{fmt.Sprintf("/runs/%d/tasks/nope/cancel", run.ID), "", 404, `has no task \"nope\"`},
		{"/runs/999/tasks/render/cancel", "", 404, "no run 999"},
	} {
		status, body := post(t, s.url, s.token, c.path, c.body)
		if status != c.status || !strings.Contains(body, c.want) {
			t.Errorf("POST %s %s: %d %s, want %d saying %q", c.path, c.body, status, body, c.status, c.want)
		}
	}
	tasukiCLI(t, s, "retry", id, "--task", "render").expect(t, 2, "needs --item N")

	// The whole map, cancelled: its running items stop, nothing more
	// starts, and the run goes on without it.
	tasukiCLI(t, s, "cancel", id, "--task", "render").expect(t, 0, "map task render of run "+id+": cancelled")
	end := waitRunEnd(t, s.c, run.ID)
	states := map[string]engine.TaskState{}
	for _, task := range end.Tasks {
		states[task.ID] = task.State
	}
	if states["render"] != engine.TaskCancelled || states["list"] != engine.TaskSucceeded || states["publish"].Satisfies() {
		t.Errorf("after the map's cancel, run %s: tasks %v", end.State, states)
	}
	if end.State == engine.RunSucceeded || end.State == engine.RunRunning {
		t.Errorf("run %s after its map was cancelled", end.State)
	}
	if it := item(t, s.c, run.ID, 7); it.State != engine.TaskSkipped || it.Message != "marked skipped by admin" {
		t.Errorf("item 7 = %+v", it)
	}
	for _, n := range []int{0, 3, 4} {
		if it := item(t, s.c, run.ID, n); it.State != engine.TaskCancelled {
			t.Errorf("item %d, running when the map was cancelled: %+v", n, it)
		}
	}

	// The timeline says who did what.
	var did []string
	for _, e := range allEvents(t, s.c, run.ID) {
		if e.Kind == runner.RecItemAction || e.Kind == runner.RecMapCancelled {
			did = append(did, e.Actor+": "+e.Message)
		}
	}
	if want := []string{"admin: item 1: cancel asked", "admin: item 2: retry", "admin: item 7: marked skipped", "admin: map cancelled"}; !slices.Equal(did, want) {
		t.Errorf("operator actions in the timeline:\n%q\nwant\n%q", did, want)
	}

	// A map that ended takes no action, and says how to take it up again.
	status, body = post(t, s.url, s.token, base+"/items/0/retry", "")
	want := fmt.Sprintf(`map \"render\" of run %d is not running; to run its failed items again, retry the run: POST /api/v1/runs/%d/retry`, run.ID, run.ID)
	if status != 409 || !strings.Contains(body, want) {
		t.Errorf("an action on a map that ended: %d %s", status, body)
	}
	tasukiCLI(t, s, "cancel", id, "--task", "render", "--item", "0").expect(t, 2, "is not running", "(with the command line: tasuki retry "+id+")")

	// Retrying the run runs the map's unsuccessful items again and keeps
	// the others.
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tasukiCLI(t, s, "retry", id).expect(t, 0, "run "+id+" of tiles: running")
	end = waitRunEnd(t, s.c, run.ID)
	if end.State != engine.RunSucceeded {
		t.Fatalf("run %s after its retry: %+v", end.State, end.Tasks)
	}
	m := end.Tasks[1].Map
	if m == nil || m.Counts["succeeded"] != 7 || m.Counts["skipped"] != 1 {
		t.Errorf("the map after the run's retry: %+v", m)
	}
	if it := item(t, s.c, run.ID, 7); it.State != engine.TaskSkipped {
		t.Errorf("item 7, skipped, after the run's retry: %+v", it)
	}
}

// TestFailoverMapActionsThroughAFollower: with two servers on PostgreSQL,
// actions on a map sent to the follower reach the leader, which executes
// the run (the follower's runner does not have it, and would answer that
// the map is not running).
func TestFailoverMapActionsThroughAFollower(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two servers on PostgreSQL")
	}
	dsn := pgtest.DSN(t)
	dir, work := t.TempDir(), t.TempDir()
	goFile := filepath.Join(work, "go")
	writeFile(t, dir, "tiles.yaml", fmt.Sprintf(mapActPipeline, goFile))
	a := startPGServer(t, dsn, "", dir, nil)
	b := startPGServer(t, dsn, "", dir, nil)
	var follower *pgServer
	eventually(t, 10*time.Second, "one of the servers to lead", func() (bool, string) {
		switch {
		case strings.Contains(a.logs(), "leading:"):
			follower = b
		case strings.Contains(b.logs(), "leading:"):
			follower = a
		}
		return follower != nil, "no leading: line yet"
	})
	follower.waitLine("following: another server leads", 10*time.Second)
	token, _ := serverTokens.Load(follower.url)

	ctx := context.Background()
	run, err := follower.c.Trigger(ctx, "tiles", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprint(run.ID)
	waitMap(t, follower.c, run.ID, "items 0, 1 and 3 running, 2 failed", func(m *api.MapState) bool {
		return m.Counts["running"] == 3 && m.Counts["failed"] == 1
	})
	if status, body := post(t, follower.url, token.(string), fmt.Sprintf("/runs/%d/tasks/render/items/1/cancel", run.ID), ""); status != 200 {
		t.Fatalf("cancel item 1 through the follower: %d %s", status, body)
	}
	cliAt(t, follower.url, "mark", id, "render", "skipped", "--item", "7").expect(t, 0, "marked skipped")
	cliAt(t, follower.url, "retry", id, "--task", "render", "--item", "2").expect(t, 0, "runs again")
	cliAt(t, follower.url, "cancel", id, "--task", "render").expect(t, 0, "map task render of run "+id+": cancelled")
	end := waitRunEnd(t, follower.c, run.ID)
	if end.Tasks[1].State != engine.TaskCancelled {
		t.Errorf("map render %s after its cancel through the follower", end.Tasks[1].State)
	}
	var did []string
	for _, e := range allEvents(t, follower.c, run.ID) {
		if e.Kind == runner.RecItemAction || e.Kind == runner.RecMapCancelled {
			did = append(did, e.Actor+": "+e.Message)
		}
	}
	if want := []string{"admin: item 1: cancel asked", "admin: item 7: marked skipped", "admin: item 2: retry", "admin: map cancelled"}; !slices.Equal(did, want) {
		t.Errorf("operator actions in the timeline:\n%q\nwant\n%q", did, want)
	}
}

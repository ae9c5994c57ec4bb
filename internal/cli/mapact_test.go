package cli

import (
	"cmp"
	"reflect"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
)

// TestMapActionCommands runs cancel, retry and mark on a map and its items
// against a server (newMapServer's map each of run 10) and checks the exit
// status, what they print and what the server was asked; without --task
// or --item the commands act on runs and tasks as before.
func TestMapActionCommands(t *testing.T) {
	t.Setenv("USER", "tester")
	type tc struct {
		name   string
		args   []string
		setup  func(s *mapServer)
		code   int
		stdout []string
		stderr []string
		asked  *api.MapAction // what the server was asked, when it was
		task   string         // about which task (default each)
	}
	act := func(kind api.MapActionKind, item int, state engine.TaskState) *api.MapAction {
		return &api.MapAction{Kind: kind, Item: item, State: state}
	}
	cases := []tc{
		{name: "cancel an item", args: []string{"cancel", "10", "--task", "each", "--item", "2995"}, asked: act(api.MapCancel, 2995, ""),
			stdout: []string{"item 2995 of map task each (run 10): cancelled (if it runs, once it has stopped)\n",
				"run 10 of hello: running; map 3000 items: 10 succeeded, 2 failed, 1 timed out, 1 cancelled, 2977 running, 9 pending\n"}},
		{name: "cancel an item by its name", args: []string{"cancel", "10", "--task", "each.21"}, asked: act(api.MapCancel, 21, ""),
			stdout: []string{"item 21 of map task each (run 10): cancelled"}},
		{name: "cancel the map", args: []string{"cancel", "10", "--task", "each"}, asked: act(api.MapCancel, api.WholeMap, ""),
			stdout: []string{"map task each of run 10: cancelled (once its running items have stopped)\n", "2987 cancelled"}},
		{name: "cancel json", args: []string{"cancel", "10", "--task", "each", "--item", "21", "-o", "json"}, asked: act(api.MapCancel, 21, ""),
			stdout: []string{`"id": 10`, `"cancelled": 1`}},
		{name: "retry an item", args: []string{"retry", "10", "--task", "each", "--item", "17"}, asked: act(api.MapRetry, 17, ""),
			stdout: []string{"item 17 of map task each (run 10): runs again\n", "1 failed, 1 timed out, 2977 running, 11 pending"}},
		{name: "mark an item", args: []string{"mark", "10", "each", "skipped", "--item", "2500"}, asked: act(api.MapMark, 2500, engine.TaskSkipped),
			stdout: []string{"item 2500 of map task each (run 10): marked skipped\n", "1 failed, 1 timed out, 1 skipped"}},
		{name: "mark an item by its name", args: []string{"mark", "10", "each.1500", "succeeded"}, asked: act(api.MapMark, 1500, engine.TaskSucceeded),
			stdout: []string{"item 1500 of map task each (run 10): marked succeeded"}},

		{name: "retry a map without an item", args: []string{"retry", "10", "--task", "each"}, code: 2,
			stderr: []string{"tasuki retry --task needs --item N", "'tasuki retry 10' runs its failed items again"}},
		{name: "an item without a task", args: []string{"cancel", "10", "--item", "3"}, code: 2, stderr: []string{"--item needs --task"}},
		{name: "a negative item", args: []string{"cancel", "10", "--task", "each", "--item", "-1"}, code: 2, stderr: []string{"--item -1: expected an item's position"}},
		{name: "two items", args: []string{"cancel", "10", "--task", "each.3", "--item", "4"}, code: 2, stderr: []string{`"each.3" names item 3; --item 4 names another`}},
		{name: "an empty task", args: []string{"cancel", "10", "--task", ""}, code: 2, stderr: []string{"--task: expected a map task's id"}},
		{name: "mark an item failed", args: []string{"mark", "10", "each", "failed", "--item", "17"}, code: 2, stderr: []string{"expected succeeded or skipped"}},
		{name: "a bad run id", args: []string{"cancel", "x", "--task", "each"}, code: 2, stderr: []string{`run id "x"`}},
		{name: "the flags of local execution", args: []string{"retry", "10", "--task", "each", "--item", "17", "-j", "2"}, code: 2,
			stderr: []string{"--parallel applies to a run executed here"}},
		{name: "an item that does not fit", args: []string{"retry", "10", "--task", "each", "--item", "3"}, code: 2, asked: act(api.MapRetry, 3, ""),
			stderr: []string{`map "each" of run 10: item 3 is succeeded: only a failed, timed out or cancelled item can be retried`}},
		{name: "mark a running item", args: []string{"mark", "10", "each", "skipped", "--item", "21"}, code: 2, asked: act(api.MapMark, 21, engine.TaskSkipped),
			stderr: []string{"item 21 is running: cancel it first"}},
		{name: "an item past the end", args: []string{"cancel", "10", "--task", "each", "--item", "3000"}, code: 2, asked: act(api.MapCancel, 3000, ""),
			stderr: []string{"has 3000 items (0 to 2999): no item 3000"}},
		{name: "a task that is not a map", args: []string{"cancel", "10", "--task", "list"}, code: 2, task: "list", asked: act(api.MapCancel, api.WholeMap, ""),
			stderr: []string{"a task is cancelled with its run"}},
		{name: "a map that ended", args: []string{"retry", "10", "--task", "each", "--item", "17"}, setup: func(s *mapServer) { s.maps.SetRunState(10, engine.RunFailed) },
			asked: act(api.MapRetry, 17, ""), code: 2, stderr: []string{`map "each" of run 10 is not running; to run its failed items again, retry the run`, "(with the command line: tasuki retry 10)"}},

		// Without the flags, the commands are what they were.
		{name: "cancel a run", args: []string{"cancel", "3"}, stdout: []string{"run 3 of hello: cancelled"}},
		{name: "mark a task", args: []string{"mark", "2", "load", "skipped"}, stdout: []string{"task load of run 2 marked skipped"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newMapServer(t)
			if c.setup != nil {
				c.setup(s)
			}
			r := call(append([]string{"--server", s.url}, c.args...)...)
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
			call, asked := s.maps.LastCall("ActOnMap")
			switch {
			case c.asked == nil && asked:
				t.Errorf("the server was asked %v", call.Args)
			case c.asked != nil && !asked:
				t.Fatal("the server was not asked")
			case c.asked != nil:
				if want := []any{int64(10), cmp.Or(c.task, "each"), *c.asked, "admin"}; !reflect.DeepEqual(call.Args, want) {
					t.Errorf("asked %v, want %v", call.Args, want)
				}
			}
		})
	}
}

// TestMapActionsNeedTheServer: without a server, the actions on a map say
// that they need the server that executes the run, retry included (which
// retries a whole run here).
func TestMapActionsNeedTheServer(t *testing.T) {
	t.Setenv(serverEnv, "")
	home := t.TempDir()
	for _, args := range [][]string{
		{"cancel", "1", "--task", "render"},
		{"cancel", "1", "--task", "render", "--item", "3"},
		{"retry", "1", "--task", "render", "--item", "3"},
		{"mark", "1", "render", "skipped", "--item", "3"},
		{"mark", "1", "render.3", "skipped"},
	} {
		r := call(append([]string{"--home", home}, args...)...)
		want := "tasuki " + args[0] + ": actions on a map and its items need the server that executes the run (they act on the map while it runs there): pass --server URL or set TASUKI_SERVER"
		if r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}

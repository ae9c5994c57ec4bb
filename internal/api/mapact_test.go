package api_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/engine"
)

// TestMapActionRoutes sends each action on a map and its items every
// request the routes take and every error they answer, and checks the
// status, the code, what the message says, what the service was asked
// and the map's counts after it. The map is newMapEnv's "each" of run 10:
// item 0 succeeded, 17 failed, 20 waiting for a retry, 100 running, 2995
// not started.
func TestMapActionRoutes(t *testing.T) {
	type tc struct {
		name, path, body string
		task             string // the task the service is asked about (default each)
		setup            func(e *mapEnv)
		status           int
		code             string
		contains         string
		act              *api.MapAction // what the service is asked, when it is
		counts           map[string]int // of map each in the answer
		taskState        engine.TaskState
	}
	base := "/runs/10/tasks/each"
	act := func(kind api.MapActionKind, item int, state engine.TaskState) *api.MapAction {
		return &api.MapAction{Kind: kind, Item: item, State: state}
	}
	cases := []tc{
		{name: "cancel a pending item", path: base + "/items/2995/cancel", status: 200, act: act(api.MapCancel, 2995, ""),
			counts: map[string]int{"cancelled": 1, "pending": 9}},
		{name: "cancel a running item", path: base + "/items/100/cancel", status: 200, act: act(api.MapCancel, 100, ""),
			counts: map[string]int{"cancelled": 1, "running": 2975}},
		{name: "cancel an item waiting for its retry", path: base + "/items/20/cancel", status: 200, act: act(api.MapCancel, 20, ""),
			counts: map[string]int{"cancelled": 1, "retry_wait": 0}},
		{name: "cancel an item that ended", path: base + "/items/0/cancel", status: 409, code: api.CodeConflict,
			contains: `map "each" of run 10: item 0 is succeeded: only a pending, waiting or running item can be cancelled`, act: act(api.MapCancel, 0, "")},
		{name: "retry a failed item", path: base + "/items/17/retry", status: 200, act: act(api.MapRetry, 17, ""),
			counts: map[string]int{"failed": 1, "pending": 11}},
		{name: "retry a timed out item", path: base + "/items/1500/retry", status: 200, act: act(api.MapRetry, 1500, ""),
			counts: map[string]int{"timed_out": 0}},
		{name: "retry a succeeded item", path: base + "/items/3/retry", status: 409, code: api.CodeConflict,
			contains: "only a failed, timed out or cancelled item can be retried"},
		{name: "mark a failed item skipped", path: base + "/items/2500/mark", body: `{"state":"skipped"}`, status: 200,
			act: act(api.MapMark, 2500, engine.TaskSkipped), counts: map[string]int{"failed": 1, "skipped": 1}},
		{name: "mark a pending item succeeded", path: base + "/items/2999/mark", body: `{"state":"succeeded"}`, status: 200,
			act: act(api.MapMark, 2999, engine.TaskSucceeded), counts: map[string]int{"succeeded": 11, "pending": 9}},
		{name: "mark a running item", path: base + "/items/100/mark", body: `{"state":"skipped"}`, status: 409, code: api.CodeConflict,
			contains: "item 100 is running: cancel it first, or wait for it"},
		{name: "mark an item already done", path: base + "/items/1/mark", body: `{"state":"skipped"}`, status: 409, code: api.CodeConflict,
			contains: "item 1 is already succeeded"},
		{name: "mark failed", path: base + "/items/17/mark", body: `{"state":"failed"}`, status: 400, code: api.CodeInvalid,
			contains: `field "state": expected "succeeded" or "skipped", got "failed"`},
		{name: "mark without a body", path: base + "/items/17/mark", status: 400, code: api.CodeInvalid, contains: "missing JSON request body"},
		{name: "mark an unknown field", path: base + "/items/17/mark", body: `{"state":"skipped","item":3}`, status: 400, code: api.CodeInvalid,
			contains: `unknown field "item"`},
		{name: "cancel the map", path: base + "/cancel", status: 200, act: act(api.MapCancel, api.WholeMap, ""),
			counts: map[string]int{"running": 0, "pending": 0, "cancelled": 2987}, taskState: engine.TaskCancelled},

		{name: "item past the end", path: base + "/items/3000/cancel", status: 404, code: api.CodeNotFound,
			contains: `map task "each" of run 10 has 3000 items (0 to 2999): no item 3000`},
		{name: "item not a number", path: base + "/items/x/retry", status: 400, code: api.CodeInvalid, contains: `item "x": expected an item's position`},
		{name: "item negative", path: base + "/items/-1/cancel", status: 400, code: api.CodeInvalid, contains: `item "-1"`},
		{name: "item with a sign", path: base + "/items/+1/cancel", status: 400, code: api.CodeInvalid, contains: `item "+1"`},
		{name: "item with a leading zero", path: base + "/items/017/retry", status: 400, code: api.CodeInvalid, contains: `item "017"`},
		{name: "item too large", path: base + "/items/99999999999/cancel", status: 400, code: api.CodeInvalid, contains: `item "99999999999"`},
		{name: "an item's log name as the task", path: "/runs/10/tasks/each.17/items/17/retry", status: 400, code: api.CodeInvalid,
			contains: "name the map task; item 17 of each is acted on at /api/v1/runs/10/tasks/each/items/17/..."},
		{name: "an item's log name cancelled", path: "/runs/10/tasks/each.17/cancel", status: 400, code: api.CodeInvalid, contains: "name the map task"},
		{name: "cancel a task that is not a map", path: "/runs/10/tasks/list/cancel", status: 400, code: api.CodeInvalid, task: "list",
			contains: `task "list" of run 10 is not a map task: a task is cancelled with its run (POST /api/v1/runs/10/cancel)`, act: act(api.MapCancel, api.WholeMap, "")},
		{name: "an item of a task that is not a map", path: "/runs/10/tasks/list/items/0/cancel", status: 404, code: api.CodeNotFound,
			contains: `task "list" of run 10 is not a map task`},
		{name: "a map not started", path: "/runs/10/tasks/later/items/0/cancel", status: 409, code: api.CodeConflict,
			contains: `map "later" of run 10 is not running; to run its failed items again, retry the run: POST /api/v1/runs/10/retry`},
		{name: "a map whose run ended", path: base + "/items/17/retry", setup: func(e *mapEnv) { e.maps.SetRunState(10, engine.RunFailed) },
			status: 409, code: api.CodeConflict, contains: `map "each" of run 10 is not running; to run its failed items again, retry the run: POST /api/v1/runs/10/retry`},
		{name: "no such task", path: "/runs/10/tasks/nope/items/0/cancel", status: 404, code: api.CodeNotFound, contains: `run 10 has no task "nope"`},
		{name: "no such run", path: "/runs/99/tasks/each/cancel", status: 404, code: api.CodeNotFound, contains: "no run 99"},
		{name: "bad run id", path: "/runs/x/tasks/each/cancel", status: 400, code: api.CodeInvalid, contains: `run id "x"`},
		{name: "a query parameter", path: base + "/items/17/retry?item=3", status: 400, code: api.CodeInvalid, contains: "this route takes none"},
		{name: "an internal error", path: base + "/items/17/retry", setup: func(e *mapEnv) { e.maps.Fail("ActOnMap", apitest.ErrBoom) },
			status: 500, code: api.CodeInternal, contains: "internal error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newMapEnv(t)
			if c.setup != nil {
				c.setup(e)
			}
			rq := request{method: http.MethodPost, path: c.path, body: c.body}
			if c.body != "" {
				rq.header = map[string]string{"Content-Type": "application/json"}
			}
			resp, b := serve(e.handler, rq)
			if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("%d %s %s, want %d", resp.StatusCode, resp.Header.Get("Content-Type"), b, c.status)
			}
			if c.code != "" && errorCode(b) != c.code {
				t.Errorf("code %q, want %q: %s", errorCode(b), c.code, b)
			}
			var eb api.ErrorBody
			_ = json.Unmarshal(b, &eb)
			if c.status != 200 && !strings.Contains(eb.Error.Message, c.contains) {
				t.Errorf("message lacks %q: %s", c.contains, b)
			}
			if strings.Contains(string(b), "boom") {
				t.Errorf("an internal detail reached the client: %s", b)
			}
			call, called := e.maps.LastCall("ActOnMap")
			switch {
			case c.act == nil && called && c.status == 400:
				t.Errorf("a request refused as bad reached the service: %v", call.Args)
			case c.act != nil && !called:
				t.Fatal("the service was not asked")
			case c.act != nil:
				task := cmp.Or(c.task, "each")
				if want := []any{int64(10), task, *c.act, "admin"}; !reflect.DeepEqual(call.Args, want) {
					t.Errorf("ActOnMap%v, want %v", call.Args, want)
				}
			}
			if c.status != 200 {
				return
			}
			var run api.Run
			mustJSON(t, b, &run)
			each := run.Tasks[1]
			if run.ID != 10 || each.ID != "each" || each.Map == nil {
				t.Fatalf("answer is not run 10 with its map: %s", b)
			}
			for state, n := range c.counts {
				if got := each.Map.Counts[state]; got != n {
					t.Errorf("%d items %s, want %d: %v", got, state, n, each.Map.Counts)
				}
			}
			if c.taskState != "" && each.State != c.taskState {
				t.Errorf("task each is %s, want %s", each.State, c.taskState)
			}
		})
	}
}

// TestMapActionsOtherMethods checks that the action routes take POST only.
func TestMapActionsOtherMethods(t *testing.T) {
	e := newMapEnv(t)
	for _, path := range []string{"/runs/10/tasks/each/cancel", "/runs/10/tasks/each/items/3/cancel", "/runs/10/tasks/each/items/3/retry", "/runs/10/tasks/each/items/3/mark"} {
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
			resp, b := serve(e.handler, request{method: method, path: path})
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" || errorCode(b) != api.CodeMethodNotAllowed {
				t.Errorf("%s %s: %d Allow %q %s", method, path, resp.StatusCode, resp.Header.Get("Allow"), b)
			}
		}
	}
	if _, called := e.maps.LastCall("ActOnMap"); called {
		t.Error("a refused method reached the service")
	}
}

// TestMapActionsActorAndAudit checks that the actor of a map action is the
// credential's name, whatever X-Tasuki-Actor says, and that the audit log
// names the item acted on.
func TestMapActionsActorAndAudit(t *testing.T) {
	e := newMapEnv(t)
	tokens := apitest.NewTokens()
	ops := tokens.AddAPI("ops", api.RoleOperator, "")
	viewer := tokens.AddAPI("watcher", api.RoleViewer, "")
	audit := &apitest.AuditLog{}
	h := api.NewHandler(e.maps, e.logs, api.WithTokens(tokens), api.WithAuditLog(audit), api.WithLogger(slog.New(slog.DiscardHandler)))
	send := func(secret, path, body string) int {
		header := map[string]string{"Authorization": "Bearer " + secret, api.ActorHeader: "somebody-else"}
		if body != "" {
			header["Content-Type"] = "application/json"
		}
		resp, _ := serve(h, request{method: http.MethodPost, path: path, body: body, header: header, remote: "198.51.100.7:4242"})
		return resp.StatusCode
	}
	for _, c := range []struct {
		secret, path, body string
		status             int
		target             string
	}{
		{ops, "/runs/10/tasks/each/items/2995/cancel", "", 200, "id=10 task=each item=2995"},
		{ops, "/runs/10/tasks/each/items/17/retry", "", 200, "id=10 task=each item=17"},
		{ops, "/runs/10/tasks/each/items/2500/mark", `{"state":"skipped"}`, 200, "id=10 task=each item=2500"},
		{viewer, "/runs/10/tasks/each/items/1500/retry", "", 403, "id=10 task=each"},
		{ops, "/runs/10/tasks/each/items/x/retry", "", 400, "id=10 task=each"},
		{ops, "/runs/10/tasks/each/cancel", "", 200, "id=10 task=each"},
	} {
		if got := send(c.secret, c.path, c.body); got != c.status {
			t.Errorf("POST %s: %d, want %d", c.path, got, c.status)
		}
	}
	var actors []string
	for _, call := range e.maps.Calls() {
		if call.Method == "ActOnMap" {
			actors = append(actors, call.Args[3].(string))
		}
	}
	if !reflect.DeepEqual(actors, []string{"ops", "ops", "ops", "ops"}) {
		t.Errorf("actors %v, want the token's name, ops, for each action that reached the service", actors)
	}
	got := audit.Entries()
	want := []struct {
		actor, route, target string
		status               int
	}{
		{"ops", "POST /api/v1/runs/{id}/tasks/{task}/items/{item}/cancel", "id=10 task=each item=2995", 200},
		{"ops", "POST /api/v1/runs/{id}/tasks/{task}/items/{item}/retry", "id=10 task=each item=17", 200},
		{"ops", "POST /api/v1/runs/{id}/tasks/{task}/items/{item}/mark", "id=10 task=each item=2500", 200},
		{"watcher", "POST /api/v1/runs/{id}/tasks/{task}/items/{item}/retry", "id=10 task=each", 403},
		{"ops", "POST /api/v1/runs/{id}/tasks/{task}/items/{item}/retry", "id=10 task=each", 400},
		{"ops", "POST /api/v1/runs/{id}/tasks/{task}/cancel", "id=10 task=each", 200},
	}
	if len(got) != len(want) {
		t.Fatalf("%d audit entries, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Actor != w.actor || g.Route != w.route || g.Target != w.target || g.Status != w.status || g.Remote != "198.51.100.7:4242" {
			t.Errorf("audit entry %d = %+v, want %+v", i, g, w)
		}
	}
}

// TestMapActionsClient runs each action through the Client over loopback
// HTTP: the request it sends, the run it reads back, and the errors as
// *api.Error with the server's status and message. What it can tell is
// wrong without asking is refused before any request.
func TestMapActionsClient(t *testing.T) {
	e := newMapEnv(t)
	ctx := context.Background()
	for _, c := range []struct {
		task     string
		act      api.MapAction
		status   int
		contains string
	}{
		{"each", api.MapAction{Kind: api.MapCancel, Item: 2995}, 200, ""},
		{"each", api.MapAction{Kind: api.MapRetry, Item: 17}, 200, ""},
		{"each", api.MapAction{Kind: api.MapMark, Item: 2500, State: engine.TaskSkipped}, 200, ""},
		{"each", api.MapAction{Kind: api.MapRetry, Item: 0}, 409, "only a failed, timed out or cancelled item can be retried"},
		{"each", api.MapAction{Kind: api.MapCancel, Item: 3000}, 404, "no item 3000"},
		{"list", api.MapAction{Kind: api.MapCancel, Item: api.WholeMap}, 400, "a task is cancelled with its run"},
		{"each", api.MapAction{Kind: api.MapCancel, Item: api.WholeMap}, 200, ""},
		{"each", api.MapAction{Kind: api.MapRetry, Item: api.WholeMap}, 400, "retry applies to one item of a map: give the item"},
		{"each", api.MapAction{Kind: api.MapMark, Item: 3, State: engine.TaskFailed}, 400, `expected "succeeded" or "skipped"`},
		{"each", api.MapAction{Kind: api.MapCancel, Item: -2}, 400, "item -2: expected an item's position"},
		{"each", api.MapAction{Kind: "pause", Item: 3}, 400, `map action "pause": expected cancel, retry or mark`},
		{"each", api.MapAction{Kind: api.MapRetry, Item: 3, State: engine.TaskSkipped}, 400, "retry takes no state"},
	} {
		before := len(e.maps.Calls())
		run, err := e.client.ActOnMap(ctx, 10, c.task, c.act, "")
		if c.status == 200 {
			if err != nil || run.ID != 10 || run.Tasks[1].Map == nil {
				t.Errorf("%s %+v: %+v, %v", c.task, c.act, run, err)
			}
			if call, _ := e.maps.LastCall("ActOnMap"); !reflect.DeepEqual(call.Args[2], c.act) {
				t.Errorf("%+v reached the service as %+v", c.act, call.Args[2])
			}
			continue
		}
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != c.status || !strings.Contains(ae.Message, c.contains) {
			t.Errorf("%s %+v: %v, want %d saying %q", c.task, c.act, err, c.status, c.contains)
		}
		if c.status == 400 && c.task == "each" && len(e.maps.Calls()) != before {
			t.Errorf("%+v was sent, though the client can tell it is wrong", c.act)
		}
	}
}

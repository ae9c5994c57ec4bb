package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// mapEnv is the real handler over a fake whose run 10 (of hello) has a
// task "list", a map "each" of 3000 items and a map "later" that has not
// started, with the logs of some items.
type mapEnv struct {
	maps    *apitest.Maps
	logs    *logs.Files
	handler http.Handler // sends the admin token
	srv     *httptest.Server
	client  *api.Client
	t0      time.Time
}

// The items of map "each" of run 10: 3000, each {"n": i}; items from
// 2990 on have not started; rows for 0 to 9 (succeeded, item 3 from the
// cache), 17 and 2500 (failed), 1500 (timed out), 20 (waiting for its
// second attempt, which has begun); the others below 2990 are running.
const mapItems, mapNext = 3000, 2990

func newMapEnv(t testing.TB) *mapEnv {
	t.Helper()
	f := apitest.NewSeeded()
	now := f.Now()
	later := now.Add(time.Minute)
	f.AddRun(api.Run{ID: 10, Pipeline: "hello", State: engine.RunRunning, Trigger: "manual", CreatedAt: now, StartedAt: &now, TaskCount: 3, Remaining: 2,
		Tasks: []api.Task{
			{ID: "list", Index: 0, State: engine.TaskSucceeded, Attempt: 1, StartedAt: &now, FinishedAt: &now},
			{ID: "each", Index: 1, State: engine.TaskRunning, Attempt: 1, StartedAt: &now},
			{ID: "later", Index: 2, State: engine.TaskPending},
		}})
	e := &mapEnv{maps: apitest.NewMaps(f), logs: logs.NewFiles(t.TempDir()), t0: now}
	e.maps.Logs = e.logs
	values := make([]json.RawMessage, mapItems)
	for i := range values {
		values[i] = json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))
	}
	one, three := 1, 3
	var rows []store.MapItem
	for i := range 10 {
		row := store.MapItem{Item: i, State: engine.TaskSucceeded, Attempt: 1, Worker: "local", StartedAt: now,
			FinishedAt: now.Add(time.Duration(i+1) * 100 * time.Millisecond), Result: json.RawMessage(fmt.Sprint(i * i))}
		if i == 3 {
			row.CachedFrom = 7
		}
		rows = append(rows, row)
	}
	rows = append(rows,
		store.MapItem{Item: 17, State: engine.TaskFailed, Attempt: 2, Worker: "w1", StartedAt: now, FinishedAt: later, ExitCode: &three, Message: "no data for 17"},
		store.MapItem{Item: 20, State: engine.TaskRetryWait, Attempt: 1, StartedAt: now, FinishedAt: now, ReadyAt: later, ExitCode: &one, Message: "flaky"},
		store.MapItem{Item: 1500, State: engine.TaskTimedOut, Attempt: 1, StartedAt: now, FinishedAt: later, Message: "timed out after 1m0s"},
		store.MapItem{Item: 2500, State: engine.TaskFailed, Attempt: 1, StartedAt: now, FinishedAt: now, ExitCode: &one, Message: "no data for 2500"},
	)
	e.maps.AddMap(10, "each", values, mapNext, rows...)
	e.maps.AddMap(10, "later", nil, 0)

	for _, l := range []struct {
		task    string
		attempt int
		line    string
	}{{"each.17", 1, "17: first try"}, {"each.17", 2, "17: no data"}, {"each.20", 1, "20: flaky"}, {"each.20", 2, "20: trying again"}} {
		w, err := e.logs.Create(context.Background(), logs.Key{RunID: 10, TaskID: l.task, Attempt: l.attempt}, nil)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(w.Stdout(), l.line)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}

	tokens := apitest.NewTokens()
	admin := tokens.AddAPI("admin", api.RoleAdmin, "")
	e.handler = asToken(api.NewHandler(e.maps, e.logs, api.WithTokens(tokens), api.WithLogger(slog.New(slog.DiscardHandler))), admin)
	e.srv = httptest.NewServer(e.handler)
	t.Cleanup(e.srv.Close)
	c, err := api.NewClient(e.srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.client = c
	return e
}

func (e *mapEnv) get(path string, header map[string]string) (*http.Response, []byte) {
	return serve(e.handler, request{method: http.MethodGet, path: path, header: header})
}

func itemNumbers(items []api.Item) []int {
	out := []int{}
	for _, it := range items {
		out = append(out, it.Item)
	}
	return out
}

// TestItemsRoute pages the items of a map task every way the route takes,
// and checks what each answer holds and what each error says.
func TestItemsRoute(t *testing.T) {
	e := newMapEnv(t)
	type tc struct {
		name  string
		path  string
		items []int  // the items of the page, in order
		next  string // its cursor
		// status and code of an error, with what its message says.
		status   int
		code     string
		contains string
		check    func(t *testing.T, p api.Page[api.Item])
	}
	base := "/runs/10/tasks/each/items"
	cases := []tc{
		{name: "first page", path: base + "?limit=3", items: []int{0, 1, 2}, next: "2",
			check: func(t *testing.T, p api.Page[api.Item]) {
				it := p.Items[1]
				if string(it.Value) != `{"n":1}` || it.State != engine.TaskSucceeded || it.Attempt != 1 || it.Worker != "local" ||
					it.Duration == nil || *it.Duration != api.Duration(200*time.Millisecond) || string(it.Result) != "1" {
					t.Errorf("item 1 = %+v", it)
				}
			}},
		{name: "default page size", path: base, check: func(t *testing.T, p api.Page[api.Item]) {
			if len(p.Items) != api.DefaultItemsLimit || p.Next != fmt.Sprint(api.DefaultItemsLimit-1) {
				t.Errorf("%d items, next %q", len(p.Items), p.Next)
			}
		}},
		{name: "after", path: base + "?after=2&limit=2", items: []int{3, 4}, next: "4",
			check: func(t *testing.T, p api.Page[api.Item]) {
				if p.Items[0].CachedFrom != 7 {
					t.Errorf("item 3 = %+v, want cached from run 7", p.Items[0])
				}
			}},
		{name: "running and pending items", path: base + "?after=2987&limit=4", items: []int{2988, 2989, 2990, 2991}, next: "2991",
			check: func(t *testing.T, p api.Page[api.Item]) {
				want := []engine.TaskState{engine.TaskRunning, engine.TaskRunning, engine.TaskPending, engine.TaskPending}
				for i, it := range p.Items {
					if it.State != want[i] || it.Attempt != 0 || string(it.Value) != fmt.Sprintf(`{"n":%d}`, it.Item) {
						t.Errorf("item %+v, want %s with its value", it, want[i])
					}
				}
			}},
		{name: "last page", path: base + "?after=2996", items: []int{2997, 2998, 2999}},
		{name: "past the end", path: base + "?after=2999", items: []int{}},
		{name: "failed", path: base + "?state=failed", items: []int{17, 2500},
			check: func(t *testing.T, p api.Page[api.Item]) {
				it := p.Items[0]
				if string(it.Value) != `{"n":17}` || it.Attempt != 2 || it.ExitCode == nil || *it.ExitCode != 3 || it.Message != "no data for 17" {
					t.Errorf("item 17 = %+v", it)
				}
				if string(p.Items[1].Value) != `{"n":2500}` {
					t.Errorf("item 2500's value = %s", p.Items[1].Value)
				}
			}},
		{name: "failed and timed out, paged", path: base + "?state=failed,timed_out&limit=2", items: []int{17, 1500}, next: "1500"},
		{name: "the next page", path: base + "?state=failed,timed_out&limit=2&after=1500", items: []int{2500}},
		{name: "states repeated", path: base + "?state=timed_out&state=failed&state=failed", items: []int{17, 1500, 2500}},
		{name: "retry_wait", path: base + "?state=retry_wait", items: []int{20},
			check: func(t *testing.T, p api.Page[api.Item]) {
				if p.Items[0].ReadyAt == nil || !p.Items[0].ReadyAt.Equal(e.t0.Add(time.Minute)) {
					t.Errorf("item 20 = %+v, want ready_at", p.Items[0])
				}
			}},
		{name: "none in a state", path: base + "?state=skipped", items: []int{}},

		{name: "a state without rows", path: base + "?state=running", status: 400, code: api.CodeInvalid,
			contains: `query parameter state \"running\": expected one of failed, timed_out, cancelled, succeeded, skipped, retry_wait (items pending or running`},
		{name: "an unknown state", path: base + "?state=failed,broken", status: 400, code: api.CodeInvalid, contains: `state \"broken\"`},
		{name: "limit zero", path: base + "?limit=0", status: 400, code: api.CodeInvalid, contains: "limit"},
		{name: "limit too large", path: base + "?limit=5000", status: 400, code: api.CodeInvalid, contains: "from 1 to 1000"},
		{name: "negative after", path: base + "?after=-1", status: 400, code: api.CodeInvalid, contains: "after"},
		{name: "after twice", path: base + "?after=1&after=2", status: 400, code: api.CodeInvalid, contains: "given 2 times"},
		{name: "stray query", path: base + "?item=3", status: 400, code: api.CodeInvalid, contains: "takes state, after, limit"},
		{name: "not a map", path: "/runs/10/tasks/list/items", status: 404, code: api.CodeNotFound,
			contains: `task \"list\" of run 10 is not a map task`},
		{name: "a map not started", path: "/runs/10/tasks/later/items", status: 404, code: api.CodeNotFound,
			contains: `map task \"later\" of run 10 has no items yet: it is pending`},
		{name: "no such task", path: "/runs/10/tasks/nope/items", status: 404, code: api.CodeNotFound, contains: `no task \"nope\"`},
		{name: "no such run", path: "/runs/99/tasks/each/items", status: 404, code: api.CodeNotFound, contains: "no run 99"},
		{name: "bad run id", path: "/runs/x/tasks/each/items", status: 400, code: api.CodeInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := e.get(c.path, nil)
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if c.status != 0 {
				var eb api.ErrorBody
				mustJSON(t, body, &eb)
				if resp.StatusCode != c.status || eb.Error.Code != c.code || !strings.Contains(string(body), c.contains) {
					t.Fatalf("%d %s, want %d %s with %q", resp.StatusCode, body, c.status, c.code, c.contains)
				}
				return
			}
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			var p api.Page[api.Item]
			mustJSON(t, body, &p)
			if c.items != nil && !reflect.DeepEqual(itemNumbers(p.Items), c.items) {
				t.Errorf("items %v, want %v", itemNumbers(p.Items), c.items)
			}
			if c.items != nil && p.Next != c.next {
				t.Errorf("next %q, want %q", p.Next, c.next)
			}
			if strings.Contains(string(body), `"items":null`) {
				t.Errorf("an empty page is null: %s", body)
			}
			if c.check != nil {
				c.check(t, p)
			}
		})
	}
}

// TestItemsRouteCost: a page in item order is one read of the rows and
// one of the values, whatever its size; a filtered page reads the values
// of rows far apart separately, never the chunks between them.
func TestItemsRouteCost(t *testing.T) {
	e := newMapEnv(t)
	cases := []struct {
		path                string
		wantItems, wantVals int
	}{
		{"/runs/10/tasks/each/items?limit=1000&after=1000", 1, 1},
		{"/runs/10/tasks/each/items?state=succeeded", 1, 1},                  // items 0 to 9: one cluster
		{"/runs/10/tasks/each/items?state=failed,timed_out,succeeded", 1, 2}, // 0 to 17; 1500 and 2500
	}
	for _, c := range cases {
		before := e.maps.Store.Reads()
		if resp, body := e.get(c.path, nil); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", c.path, resp.StatusCode, body)
		}
		after := e.maps.Store.Reads()
		if n := after["MapItems"] - before["MapItems"]; n != c.wantItems {
			t.Errorf("%s: %d MapItems calls, want %d", c.path, n, c.wantItems)
		}
		if n := after["MapValues"] - before["MapValues"]; n != c.wantVals {
			t.Errorf("%s: %d MapValues calls, want %d", c.path, n, c.wantVals)
		}
	}
}

// TestRunShowsMap: a run's detail and a task's carry the map's counts.
func TestRunShowsMap(t *testing.T) {
	e := newMapEnv(t)
	for _, path := range []string{"/runs/10", "/runs/10/tasks/each"} {
		resp, body := e.get(path, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		var task api.Task
		if path == "/runs/10" {
			var run api.Run
			mustJSON(t, body, &run)
			if run.Tasks[0].Map != nil || run.Tasks[2].Map != nil {
				t.Errorf("tasks list and later have a map: %s", body)
			}
			task = run.Tasks[1]
		} else {
			mustJSON(t, body, &task)
		}
		m := task.Map
		want := map[string]int{"succeeded": 10, "cached": 1, "failed": 2, "timed_out": 1, "retry_wait": 1, "running": mapNext - 14, "pending": mapItems - mapNext}
		if m == nil || m.Items != mapItems || m.Started != mapNext || !reflect.DeepEqual(m.Counts, want) {
			t.Fatalf("%s: map %+v, want counts %v", path, m, want)
		}
		if len(m.Slowest) == 0 || m.Slowest[0].Item != 9 || m.Slowest[0].Duration != api.Duration(time.Second) ||
			!strings.Contains(string(body), `"slowest":[{"item":9,"attempt":1,"duration":"1s"}`) {
			t.Errorf("%s: slowest %+v in %s", path, m.Slowest, body)
		}
	}
}

// TestItemLogs reads the logs of items through the task log route: by
// ?item= or by the item's log name, each attempt, live, and the errors.
func TestItemLogs(t *testing.T) {
	e := newMapEnv(t)
	cases := []struct {
		name, path string
		status     int
		code       string
		contains   string // in the log, or in the error
	}{
		{"latest attempt", "/runs/10/tasks/each/logs?item=17", 200, "", "17: no data"},
		{"by its name", "/runs/10/tasks/each.17/logs", 200, "", "17: no data"},
		{"an earlier attempt", "/runs/10/tasks/each/logs?item=17&attempt=1", 200, "", "17: first try"},
		{"the attempt under way of an item waiting for a retry", "/runs/10/tasks/each/logs?item=20", 200, "", "20: trying again"},
		{"a range of it", "/runs/10/tasks/each/logs?item=20&attempt=1&offset=10", 206, "", "20: flaky"},
		{"no such attempt", "/runs/10/tasks/each/logs?item=17&attempt=3", 404, api.CodeNotFound, "has no attempt 3 (latest is 2)"},
		{"an item not started", "/runs/10/tasks/each/logs?item=2995", 404, api.CodeNotFound, `item 2995 of map task \"each\" of run 10 has not started yet`},
		{"an item past the end", "/runs/10/tasks/each/logs?item=3000", 404, api.CodeNotFound, "has 3000 items (0 to 2999): no item 3000"},
		{"an item running that has written nothing yet", "/runs/10/tasks/each/logs?item=100", 200, "", ""},
		{"a negative item", "/runs/10/tasks/each/logs?item=-1", 400, api.CodeInvalid, "item"},
		{"an item and an item's name", "/runs/10/tasks/each.17/logs?item=1", 400, api.CodeInvalid, "name the map task"},
		{"an item of a task that is not a map", "/runs/10/tasks/list/logs?item=0", 404, api.CodeNotFound, "is not a map task"},
		{"an item of a map not started", "/runs/10/tasks/later/logs?item=0", 404, api.CodeNotFound, "has no items yet"},
		{"a task's log is the task's", "/runs/1/tasks/greet/logs?attempt=2", 404, api.CodeNotFound, `task \"greet\" of run 1 has no attempt 2`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := e.get(c.path, nil)
			if resp.StatusCode != c.status || !strings.Contains(string(body), c.contains) {
				t.Fatalf("%d %s, want %d with %q", resp.StatusCode, body, c.status, c.contains)
			}
			if c.code != "" {
				var eb api.ErrorBody
				mustJSON(t, body, &eb)
				if eb.Error.Code != c.code {
					t.Errorf("code %q, want %q", eb.Error.Code, c.code)
				}
			}
		})
	}

	// Live: the follow of an item's attempt under way ends when its writer
	// closes.
	w, err := e.logs.Create(context.Background(), logs.Key{RunID: 10, TaskID: "each.21", Attempt: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w.Stdout(), "21: one\n"); err != nil {
		t.Fatal(err)
	}
	events, _ := follow(t, e.srv, "runs/10/tasks/each/logs?item=21&follow=1", nil)
	if ev := next(t, events); !strings.HasSuffix(ev.data, " out 21: one") {
		t.Fatalf("first event %+v", ev)
	}
	if _, err := io.WriteString(w.Stdout(), "21: two\n"); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, events); !strings.HasSuffix(ev.data, " out 21: two") {
		t.Fatalf("second event %+v", ev)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, events); ev.event != "end" {
		t.Fatalf("after the writer closed: %+v, want the end", ev)
	}
}

// TestItemsClient: the Go client pages items, gets one, and reads an
// item's log by its name.
func TestItemsClient(t *testing.T) {
	e := newMapEnv(t)
	ctx := context.Background()
	p, err := e.client.Items(ctx, 10, "each", api.ItemQuery{States: []engine.TaskState{engine.TaskFailed, engine.TaskTimedOut}, From: 18, Limit: 1})
	if err != nil || !reflect.DeepEqual(itemNumbers(p.Items), []int{1500}) || p.Next != "1500" {
		t.Fatalf("Items = %+v, %v", p, err)
	}
	c, _ := e.maps.LastCall("Items")
	if want := (api.ItemQuery{States: []engine.TaskState{engine.TaskFailed, engine.TaskTimedOut}, From: 18, Limit: 1}); !reflect.DeepEqual(c.Args[2], want) {
		t.Errorf("the server was asked %+v, want %+v", c.Args[2], want)
	}
	it, err := e.client.Item(ctx, 10, "each", 2995)
	if err != nil || it.Item != 2995 || it.State != engine.TaskPending || string(it.Value) != `{"n":2995}` {
		t.Errorf("Item(2995) = %+v, %v", it, err)
	}
	if _, err := e.client.Item(ctx, 10, "each", 3000); err == nil || !strings.Contains(err.Error(), "no item 3000") {
		t.Errorf("Item(3000) = %v", err)
	}
	if _, err := e.client.Items(ctx, 10, "list", api.ItemQuery{}); err == nil || !strings.Contains(err.Error(), "not a map task") {
		t.Errorf("Items of a task that is not a map: %v", err)
	}
	var b bytes.Buffer
	if _, err := e.client.ReadLog(ctx, 10, api.ItemLogName("each", 17), 1, 0, &b); err != nil || !strings.Contains(b.String(), "17: first try") {
		t.Errorf("ReadLog(each.17, 1) = %q, %v", b.String(), err)
	}
}

// TestParseItemLogName: an item's log name is TASK.ITEM with ITEM a
// position as the runner writes it; anything else is not one.
func TestParseItemLogName(t *testing.T) {
	cases := []struct {
		name string
		task string
		item int
		ok   bool
	}{
		{"each.17", "each", 17, true},
		{"each.0", "each", 0, true},
		{"load-users.2147483647", "load-users", 1<<31 - 1, true},
		{"each", "", 0, false},
		{"each.", "", 0, false},
		{".17", "", 0, false},
		{"each.017", "", 0, false},
		{"each.-1", "", 0, false},
		{"each.+1", "", 0, false},
		{"each.1x", "", 0, false},
		{"a.b.1", "", 0, false},
		{"each.2147483648", "", 0, false},
		{"each.99999999999999999999", "", 0, false},
	}
	for _, c := range cases {
		task, item, ok := api.ParseItemLogName(c.name)
		if task != c.task || item != c.item || ok != c.ok {
			t.Errorf("ParseItemLogName(%q) = %q, %d, %v; want %q, %d, %v", c.name, task, item, ok, c.task, c.item, c.ok)
		}
		if ok && api.ItemLogName(task, item) != c.name {
			t.Errorf("ItemLogName(%q, %d) = %q", task, item, api.ItemLogName(task, item))
		}
	}
}

// TestItemLogKeyBatch: the items of a batch share the log their row
// names; a name that cannot be a log's is not used.
func TestItemLogKeyBatch(t *testing.T) {
	ms := apitest.NewMapStore()
	info := store.MapInfo{RunID: 1, Index: 0, Items: 8, Next: 8, Counts: map[engine.TaskState]int{engine.TaskRunning: 1}}
	ms.Put(info, make([]json.RawMessage, 8),
		store.MapItem{RunID: 1, Item: 5, State: engine.TaskSucceeded, Attempt: 1, Log: "b.4"},
		store.MapItem{RunID: 1, Item: 6, State: engine.TaskSucceeded, Attempt: 1, Log: "../../etc/passwd"})
	ctx := context.Background()
	for item, want := range map[int]string{5: "b.4", 6: "b.6", 7: "b.7"} {
		k, err := api.ItemLogKey(ctx, ms, nil, info, "b", item, 0)
		if err != nil || k != (logs.Key{RunID: 1, TaskID: want, Attempt: 1}) {
			t.Errorf("item %d: %+v, %v; want %s attempt 1", item, k, err, want)
		}
	}
}

// TestStoppedMap: a map that stopped early (too many failures) left the
// items it had queued pending behind its cursor: without items in flight,
// an item without a row has not started, whatever the cursor says.
func TestStoppedMap(t *testing.T) {
	ms := apitest.NewMapStore()
	info := store.MapInfo{RunID: 1, Index: 0, Items: 4, Next: 4,
		Counts: map[engine.TaskState]int{engine.TaskFailed: 2, engine.TaskPending: 2}}
	values := []json.RawMessage{json.RawMessage(`"a"`), json.RawMessage(`"b"`), json.RawMessage(`"c"`), json.RawMessage(`"d"`)}
	ms.Put(info, values,
		store.MapItem{RunID: 1, Item: 0, State: engine.TaskFailed, Attempt: 1},
		store.MapItem{RunID: 1, Item: 1, State: engine.TaskFailed, Attempt: 1})
	ctx := context.Background()
	p, err := api.ReadItems(ctx, ms, info, api.ItemQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var got []engine.TaskState
	for _, it := range p.Items {
		got = append(got, it.State)
	}
	if want := []engine.TaskState{engine.TaskFailed, engine.TaskFailed, engine.TaskPending, engine.TaskPending}; !reflect.DeepEqual(got, want) {
		t.Errorf("states %v, want %v", got, want)
	}
	if _, err := api.ItemLogKey(ctx, ms, nil, info, "m", 3, 0); err == nil || !strings.Contains(err.Error(), "has not started yet") {
		t.Errorf("the log of item 3: %v", err)
	}
}

// FuzzItemsQuery sends arbitrary query strings to the items route and the
// item log route: whatever they hold, the answer is a page or a JSON
// error of the client's, never a failure of the server.
func FuzzItemsQuery(f *testing.F) {
	for _, q := range []string{"", "state=failed", "state=failed,timed_out&after=17&limit=2", "after=-1", "limit=0",
		"state=%ZZ", "state=running", "after=99999999999999999999", "item=3", "item=17&attempt=2", "item=-1&follow=1"} {
		f.Add(q, false)
		f.Add(q, true)
	}
	e := newMapEnv(f)
	f.Fuzz(func(t *testing.T, query string, logRoute bool) {
		path := "/runs/10/tasks/each/items?"
		if logRoute {
			if v, err := url.ParseQuery(query); err == nil && v.Has("follow") {
				return // a follow of a log that is never written waits: not this fuzz's business
			}
			path = "/runs/10/tasks/each/logs?"
		}
		req := httptest.NewRequest(http.MethodGet, api.Prefix+path, nil)
		req.URL.RawQuery = query
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s%s: %d %s", path, query, rec.Code, rec.Body)
		}
		if rec.Code >= 300 {
			var eb api.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error.Code == "" {
				t.Fatalf("%s%s: %d %q is not an ErrorBody", path, query, rec.Code, rec.Body)
			}
		}
		if !logRoute && rec.Code == 200 {
			var p api.Page[api.Item]
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Items == nil || len(p.Items) > api.MaxItemsLimit {
				t.Fatalf("%s%s: %s", path, query, rec.Body)
			}
		}
	})
}

package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/web"
)

// putLog stores data as the log of k through the store's raw sink.
func putLog(t testing.TB, f *logs.Files, k logs.Key, data []byte) {
	t.Helper()
	s, err := f.Sink(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	for len(data) > 0 {
		n := min(len(data), 4<<20)
		if _, err := s.Write(data[:n]); err != nil {
			t.Fatal(err)
		}
		data = data[n:]
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// taskWorld is the seeded fake with a map task and logs:
//
//   - run 2 task load (failed, 2 attempts): attempt 2's log is about 3 MB
//     of lines "line N: ...", line 20000 says ERROR, attempt 1's is short;
//   - run 3 task greet (running): a short log;
//   - run 4 of hello, running: map task fan of 120 items, 0-99 started:
//     item 1 failed (its log says so), 2 succeeded, 3 in retry_wait;
//   - pipeline fin in namespace finance with run 5, task work.
func taskWorld(t testing.TB) (*apitest.Maps, *logs.Files, []byte) {
	t.Helper()
	f := apitest.NewSeeded()
	m := apitest.NewMaps(f)
	ls := logs.NewFiles(t.TempDir())
	m.Logs = ls
	var b bytes.Buffer
	for i := 1; b.Len() < 3<<20; i++ {
		if i == 20000 {
			fmt.Fprintf(&b, "line %d: ERROR: the disk is full\n", i)
			continue
		}
		fmt.Fprintf(&b, "line %d: copied a block of the table\n", i)
	}
	big := b.Bytes()
	putLog(t, ls, logs.Key{RunID: 2, TaskID: "load", Attempt: 2}, big)
	putLog(t, ls, logs.Key{RunID: 2, TaskID: "load", Attempt: 1}, []byte("first try\nfailed: exit 2\n"))
	putLog(t, ls, logs.Key{RunID: 3, TaskID: "greet", Attempt: 1}, []byte("hello so far\n"))

	t0 := f.Now().Add(-time.Minute)
	f.AddRun(api.Run{ID: 4, Pipeline: "hello", State: engine.RunRunning, CreatedAt: t0, StartedAt: &t0,
		Tasks: []api.Task{{ID: "fan", State: engine.TaskRunning, Attempt: 0, StartedAt: &t0}}})
	values := make([]json.RawMessage, 120)
	for i := range values {
		values[i] = json.RawMessage(strconv.Quote(fmt.Sprintf("s3://bucket/part-%04d", i)))
	}
	one := 1
	t1 := t0.Add(3 * time.Second)
	m.AddMap(4, "fan", values, 100,
		store.MapItem{Item: 1, State: engine.TaskFailed, Attempt: 1, Worker: "w1", StartedAt: t0, FinishedAt: t1, ExitCode: &one, Message: "exit status 1"},
		store.MapItem{Item: 2, State: engine.TaskSucceeded, Attempt: 1, StartedAt: t0, FinishedAt: t1},
		store.MapItem{Item: 3, State: engine.TaskRetryWait, Attempt: 1, StartedAt: t0, FinishedAt: t1, ReadyAt: t1.Add(time.Minute)},
	)
	putLog(t, ls, logs.Key{RunID: 4, TaskID: "fan.1", Attempt: 1}, []byte("reading part-0001\nTraceback (most recent call last):\n"))

	f.AddPipeline(api.Pipeline{Name: "fin", Namespace: "finance", Tasks: 1})
	f.AddRun(api.Run{ID: 5, Pipeline: "fin", State: engine.RunSucceeded, CreatedAt: t0,
		Tasks: []api.Task{{ID: "work", State: engine.TaskSucceeded, Attempt: 1, Attempts: []api.Attempt{{Attempt: 1, StartedAt: t0, FinishedAt: &t1, Outcome: "succeeded"}}}}})
	putLog(t, ls, logs.Key{RunID: 5, TaskID: "work", Attempt: 1}, []byte("ok\n"))
	return m, ls, big
}

func newTaskUI(t testing.TB) (*httptest.Server, []byte) {
	m, ls, big := taskWorld(t)
	o := web.Options{Service: m, Sessions: sessions{}, Logs: ls}
	ui, err := web.New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ui)
	t.Cleanup(srv.Close)
	return srv, big
}

// getHX fetches a fragment as htmx does.
func getHX(t *testing.T, srv *httptest.Server, as, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("HX-Request", "true")
	req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: as})
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func attr(body, id, name string) string {
	re := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*\b` + regexp.QuoteMeta(name) + `="([^"]*)"`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

func TestTaskPage(t *testing.T) {
	srv, big := newTaskUI(t)
	status, body, _ := get(t, srv, "viewer", "/runs/2/tasks/load")
	if status != http.StatusOK {
		t.Fatalf("got %d: %s", status, body)
	}
	for _, want := range []string{
		`id="attempts-table"`, `id="attempt-1"`, `id="attempt-2"`, `href="/runs/2/tasks/load?attempt=1#log-section"`,
		`<th scope="col" class="num">Exit code</th>`, "exit status 2",
		`id="log"`, `data-src="/api/v1/runs/2/tasks/load/logs?attempt=2"`,
		`id="log-download" href="/api/v1/runs/2/tasks/load/logs?attempt=2" download="run-2-load-attempt-2.log"`,
		`id="log-first-error" href="/runs/2/tasks/load?attempt=2&amp;find=errors#log-search"`,
		`id="log-earlier" href="/runs/2/tasks/load?attempt=2&amp;at=`, `id="log-tail" href="/runs/2/tasks/load?attempt=2#log" hidden>`, `<form id="log-search"`, `<label for="log-q">`,
		`id="task-mark-succeeded"`, `disabled aria-describedby="task-actions-reason"`, "your role is viewer",
		`<script src="/static/log.js" defer></script>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	// The tail of the log, from a line's start to the end, at most logTail.
	start, _ := strconv.ParseInt(attr(body, "log", "data-start"), 10, 64)
	end, _ := strconv.ParseInt(attr(body, "log", "data-end"), 10, 64)
	if end != int64(len(big)) || start <= 0 || end-start > 256<<10 || big[start-1] != '\n' {
		t.Errorf("the log shown is bytes %d-%d of %d", start, end, len(big))
	}
	if !strings.Contains(body, html.EscapeString(string(big[end-200:]))) {
		t.Errorf("the page does not show the log's end")
	}
	if strings.Contains(body, "data-live") {
		t.Errorf("a finished attempt's log is followed")
	}

	_, body, _ = get(t, srv, "operator", "/runs/2/tasks/load?attempt=1")
	if !strings.Contains(body, "first try\nfailed: exit 2\n") || !strings.Contains(body, `aria-current="true">attempt 1</a>`) {
		t.Errorf("attempt 1's page does not show its log or mark it chosen")
	}
	if strings.Contains(body, `id="task-mark-succeeded" `+"data-action") && strings.Contains(body, `task-actions-reason`) {
		t.Errorf("an operator's mark button is disabled")
	}

	// A running attempt is followed.
	_, body, _ = get(t, srv, "viewer", "/runs/3/tasks/greet")
	if !strings.Contains(body, `data-live="1"`) || !strings.Contains(body, "hello so far") || strings.Contains(body, `id="task-mark-succeeded"`) {
		t.Errorf("the running task's page: no live log, or a mark button")
	}
}

func TestTaskPageAt(t *testing.T) {
	srv, big := newTaskUI(t)
	at := bytes.Index(big, []byte("ERROR: the disk"))
	status, body, _ := get(t, srv, "viewer", fmt.Sprintf("/runs/2/tasks/load?attempt=2&at=%d", at))
	if status != http.StatusOK {
		t.Fatalf("got %d", status)
	}
	if !strings.Contains(body, `<mark class="hit-current" id="log-hit">line 20000: ERROR: the disk is full</mark>`) ||
		attr(body, "log", "data-hit") != strconv.Itoa(at) || !strings.Contains(body, `id="log-tail" href="/runs/2/tasks/load?attempt=2#log">`) {
		t.Errorf("the page opened at a match does not show it")
	}
}

func TestTaskPageErrors(t *testing.T) {
	srv, _ := newTaskUI(t)
	for path, want := range map[string]int{
		"/runs/99/tasks/load":                              404,
		"/runs/x/tasks/load":                               404,
		"/runs/2/tasks/nope":                               404,
		"/runs/2/tasks/load?attempt=3":                     404,
		"/runs/2/tasks/load?attempt=x":                     400,
		"/runs/2/tasks/load?attempt=0":                     400,
		"/runs/2/tasks/load?attempt=-1":                    400,
		"/runs/2/tasks/load?at=-5":                         400,
		"/runs/2/tasks/load?find=bugs":                     400,
		"/runs/2/tasks/load?item=1":                        404, // not a map
		"/runs/4/tasks/fan?item=500":                       404,
		"/runs/4/tasks/fan?state=running":                  400, // not a kept state
		"/runs/4/tasks/fan?from=x":                         400,
		"/runs/2/tasks/load?q=" + strings.Repeat("a", 201): 400,
		"/runs/2/tasks/load/logsearch?attempt=2":           400, // nothing to search for
		"/runs/99/tasks/load/logsearch?q=a":                404,
		"/runs/2/tasks/load/logsearch?q=a&attempt=9":       404,
		"/runs/2/tasks/load/items":                         404, // not a map (as a fragment)
	} {
		status, body := getHX(t, srv, "viewer", path)
		if status != want {
			t.Errorf("%s: %d, want %d (%s)", path, status, want, body)
		}
	}
	status, body, _ := get(t, srv, "viewer", "/runs/2/tasks/load?attempt=x")
	if status != 400 || !strings.Contains(body, "attempt") {
		t.Errorf("a bad attempt: %d, want a 400 page that names the parameter", status)
	}
	// Another namespace's run is not found, as in the API; its own is.
	for _, path := range []string{"/runs/2/tasks/load", "/runs/2/tasks/load/logsearch?q=error", "/runs/4/tasks/fan/items"} {
		if status, _ := getHX(t, srv, "ns-viewer", path); status != http.StatusNotFound {
			t.Errorf("%s as a viewer confined to finance: %d, want 404", path, status)
		}
	}
	if status, body, _ := get(t, srv, "ns-viewer", "/runs/5/tasks/work"); status != 200 || !strings.Contains(body, "ok\n") {
		t.Errorf("a run of the viewer's own namespace: %d", status)
	}
	if status, _, h := get(t, srv, "", "/runs/2/tasks/load"); status != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/login") {
		t.Errorf("without a session: %d", status)
	}
}

var (
	hitRE  = regexp.MustCompile(`<a href="([^"]*)" data-at="(\d+)">line (\d+)</a>`)
	moreRE = regexp.MustCompile(`data-more="([^"]*)"`)
)

// searchToEnd runs a search through the logsearch fragment, following its
// "continue" links (a request may stop early when it runs out of time on
// a busy machine), and returns the hits and every page.
func searchToEnd(t *testing.T, srv *httptest.Server, path string) ([][]string, string) {
	t.Helper()
	var hits [][]string
	var pages strings.Builder
	for range 1000 {
		status, body := getHX(t, srv, "viewer", path)
		if status != 200 {
			t.Fatalf("%s: %d %s", path, status, body)
		}
		pages.WriteString(body)
		hits = append(hits, hitRE.FindAllStringSubmatch(body, -1)...)
		m := moreRE.FindStringSubmatch(body)
		if m == nil {
			return hits, pages.String()
		}
		path = html.UnescapeString(m[1])
	}
	t.Fatal("the search never ends")
	return nil, ""
}

func TestLogSearchRoute(t *testing.T) {
	srv, big := newTaskUI(t)
	hits, body := searchToEnd(t, srv, "/runs/2/tasks/load/logsearch?attempt=2&q=disk+IS+FULL")
	at := bytes.Index(big, []byte("disk is full"))
	if len(hits) != 1 || hits[0][2] != strconv.Itoa(at) || hits[0][3] != "20000" ||
		html.UnescapeString(hits[0][1]) != fmt.Sprintf("/runs/2/tasks/load?attempt=2&at=%d#log", at) {
		t.Fatalf("hits %q, want one at %d on line 20000", hits, at)
	}
	if !strings.Contains(body, "<mark>disk is full</mark>") || !strings.Contains(body, "to the end of the log") {
		t.Errorf("the fragment lacks the match or the end: %s", body)
	}

	// Jump to first error: the same search for the error words.
	if hits, _ := searchToEnd(t, srv, "/runs/2/tasks/load/logsearch?attempt=2&find=errors"); len(hits) != 1 || hits[0][3] != "20000" {
		t.Errorf("find=errors: %q", hits)
	}
	// From an offset past the match, with its line number carried.
	hits, body = searchToEnd(t, srv, fmt.Sprintf("/runs/2/tasks/load/logsearch?attempt=2&find=errors&after=%d&line=20001", at+20))
	if len(hits) != 0 || !strings.Contains(body, "to the end of the log") {
		t.Errorf("after the only match: %q", hits)
	}
	// An item's log.
	if hits, _ := searchToEnd(t, srv, "/runs/4/tasks/fan/logsearch?item=1&find=errors"); len(hits) != 1 || hits[0][3] != "2" || !strings.Contains(hits[0][1], "item=1") {
		t.Errorf("an item's log: %q", hits)
	}
	// Without htmx the search is the task page's.
	status, _, h := get(t, srv, "viewer", "/runs/2/tasks/load/logsearch?attempt=2&q=disk")
	if status != http.StatusSeeOther || h.Get("Location") != "/runs/2/tasks/load?attempt=2&q=disk#log-search" {
		t.Errorf("without htmx: %d to %q", status, h.Get("Location"))
	}
	_, body, _ = get(t, srv, "viewer", "/runs/2/tasks/load?attempt=2&q=disk")
	if hits := hitRE.FindAllStringSubmatch(body, -1); len(hits) != 1 || !strings.Contains(body, `value="disk"`) {
		t.Errorf("the page's own search: %q", hits)
	}
}

// TestLogSearchBound searches a log larger than one request reads: the
// first answer says how far it came and links the next, which goes on
// from there and finds the match past the first request's reach.
func TestLogSearchBound(t *testing.T) {
	m, ls, _ := taskWorld(t)
	line := []byte("nothing to see in this line of the log, move along\n")
	data := bytes.Repeat(line, (40<<20)/len(line))
	data = append(data, "and then a Panic at the end\n"...)
	putLog(t, ls, logs.Key{RunID: 3, TaskID: "after", Attempt: 1}, data)
	m.Fake.AddRun(api.Run{ID: 6, Pipeline: "hello", State: engine.RunFailed,
		Tasks: []api.Task{{ID: "after", State: engine.TaskFailed, Attempt: 1, Attempts: []api.Attempt{{Attempt: 1}}}}})
	putLog(t, ls, logs.Key{RunID: 6, TaskID: "after", Attempt: 1}, data)
	ui, err := web.New(web.Options{Service: m, Sessions: sessions{}, Logs: ls})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ui)
	defer srv.Close()

	path := "/runs/6/tasks/after/logsearch?attempt=1&find=errors"
	requests := 0
	for {
		requests++
		status, body := getHX(t, srv, "viewer", path)
		if status != 200 {
			t.Fatalf("%s: %d %s", path, status, body)
		}
		if hits := hitRE.FindAllStringSubmatch(body, -1); len(hits) > 0 {
			want := bytes.Index(data, []byte("Panic"))
			if hits[0][2] != strconv.Itoa(want) || hits[0][3] != strconv.Itoa(len(data)/len(line)+1) {
				t.Errorf("after %d requests: %q, want the match at %d", requests, hits, want)
			}
			break
		}
		mm := moreRE.FindStringSubmatch(body)
		if mm == nil {
			t.Fatalf("no match and no way on: %s", body)
		}
		path = html.UnescapeString(mm[1])
		after, _ := strconv.Atoi(regexp.MustCompile(`after=(\d+)`).FindStringSubmatch(path)[1])
		if after > requests*32<<20 {
			t.Fatalf("request %d went on to %d, past its bound of 32 MiB a request", requests, after)
		}
	}
}

func TestMapTaskPage(t *testing.T) {
	srv, _ := newTaskUI(t)
	status, body, _ := get(t, srv, "operator", "/runs/4/tasks/fan")
	if status != http.StatusOK {
		t.Fatalf("got %d: %s", status, body)
	}
	for _, want := range []string{
		`id="items-table"`, `id="item-counts"`, `id="item-0"`, `id="item-49"`, "s3://bucket/part-0001",
		`href="/runs/4/tasks/fan?item=1#log-section"`,
		`data-action="POST /runs/4/tasks/fan/items/1/retry"`, `data-action="POST /runs/4/tasks/fan/items/3/cancel"`,
		`data-action="POST /runs/4/tasks/fan/items/1/mark" data-body="{&#34;state&#34;:&#34;succeeded&#34;}"`,
		`id="map-cancel"`, `id="items-more"`, `hx-get="/runs/4/tasks/fan/items?from=50"`,
		"choose an item below",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the map's page lacks %s", want)
		}
	}
	if strings.Contains(body, `id="item-50"`) || strings.Contains(body, `data-action="POST /runs/4/tasks/fan/items/2/`) {
		t.Errorf("the first page holds item 50, or a succeeded item has actions")
	}
	if i := strings.Index(body, "s-failed"); i < 0 || i > strings.Index(body, "s-succeeded") {
		t.Errorf("the counts do not put failures first")
	}
	// A viewer sees the actions disabled, with the reason.
	_, body, _ = get(t, srv, "viewer", "/runs/4/tasks/fan")
	if !strings.Contains(body, `disabled aria-describedby="items-reason"`) || !strings.Contains(body, `id="items-reason">your role is viewer`) {
		t.Errorf("a viewer's item actions are not disabled with the reason")
	}
	// The next page and the filter as fragments.
	status, frag := getHX(t, srv, "viewer", "/runs/4/tasks/fan/items?from=50")
	if status != 200 || !strings.Contains(frag, `id="item-50"`) || !strings.Contains(frag, `id="item-99"`) || !strings.Contains(frag, "from=100") || strings.Contains(frag, "<html") {
		t.Errorf("the items fragment from 50: %d", status)
	}
	_, frag = getHX(t, srv, "viewer", "/runs/4/tasks/fan/items?state=failed")
	if !strings.Contains(frag, `id="item-1"`) || strings.Contains(frag, `id="item-2"`) || strings.Contains(frag, "items-more") {
		t.Errorf("the failed items: %s", frag)
	}
	if status, _, h := get(t, srv, "viewer", "/runs/4/tasks/fan/items?state=failed"); status != http.StatusSeeOther || h.Get("Location") != "/runs/4/tasks/fan?state=failed#items" {
		t.Errorf("the items route without htmx: %d %q", status, h.Get("Location"))
	}
	// An item's page: its facts and its log.
	status, body, _ = get(t, srv, "viewer", "/runs/4/tasks/fan?item=1")
	if status != 200 || !strings.Contains(body, `id="item-facts"`) || !strings.Contains(body, "Traceback (most recent call last):") ||
		!strings.Contains(body, `data-src="/api/v1/runs/4/tasks/fan/logs?attempt=1&amp;item=1"`) || !strings.Contains(body, `download="run-4-fan-item-1-attempt-1.log"`) {
		t.Errorf("item 1's page: %d", status)
	}
	// An item not started has no log yet, said so.
	_, body, _ = get(t, srv, "viewer", "/runs/4/tasks/fan?item=110")
	if !strings.Contains(body, `id="log-note"`) {
		t.Errorf("an item not started: no note where its log would be")
	}
}

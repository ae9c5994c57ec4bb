package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/web"
)

// fakeLive is a web.Live the test wakes by hand.
type fakeLive struct {
	mu    sync.Mutex
	chans map[int64][]chan struct{}
}

func (l *fakeLive) Watch(id int64) (<-chan struct{}, func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.chans == nil {
		l.chans = map[int64][]chan struct{}{}
	}
	ch := make(chan struct{}, 1)
	l.chans[id] = append(l.chans[id], ch)
	return ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.chans[id] = slices.DeleteFunc(l.chans[id], func(c chan struct{}) bool { return c == ch })
	}
}

func (l *fakeLive) wake(id int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ch := range l.chans[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// sse reads a stream of Server-Sent Events.
type sse struct {
	t   *testing.T
	res *http.Response
	r   *bufio.Reader
}

type sseEvent struct {
	ID, Event string
	Data      liveData
}

// liveData is the part of an event the tests read.
type liveData struct {
	Run struct {
		State  string `json:"state"`
		Ended  bool   `json:"ended"`
		Counts []struct {
			State string `json:"state"`
			N     int    `json:"n"`
		} `json:"counts"`
	} `json:"run"`
	Tasks []struct {
		ID    string `json:"id"`
		State string `json:"state"`
		Sub   string `json:"sub"`
	} `json:"tasks"`
	Full bool `json:"full"`
}

func (d liveData) ids() []string {
	var out []string
	for _, t := range d.Tasks {
		out = append(out, t.ID+"="+t.State)
	}
	slices.Sort(out)
	return out
}

func openSSE(t *testing.T, srv *httptest.Server, as, path, lastID string) *sse {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: api.SessionCookie, Value: as})
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("GET %s: %d %s\n%s", path, res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	return &sse{t: t, res: res, r: bufio.NewReader(res.Body)}
}

// next reads the next event; ok is false at the end of the stream.
func (s *sse) next() (sseEvent, bool) {
	s.t.Helper()
	var ev sseEvent
	var data string
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			if err == io.EOF {
				return ev, false
			}
			s.t.Fatalf("read the stream: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if data == "" && ev.Event == "" {
				continue // a retry field or a comment's end
			}
			if err := json.Unmarshal([]byte(data), &ev.Data); err != nil {
				s.t.Fatalf("event data %q: %v", data, err)
			}
			return ev, true
		case strings.HasPrefix(line, ":"), strings.HasPrefix(line, "retry:"):
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.Event = line[7:]
		case strings.HasPrefix(line, "data: "):
			data = line[6:]
		}
	}
}

func (s *sse) expect(what string) sseEvent {
	s.t.Helper()
	ev, ok := s.next()
	if !ok {
		s.t.Fatalf("the stream ended before %s", what)
	}
	return ev
}

// setTasks replaces the states of run 3's tasks (and the run's).
func setTasks(f *apitest.Fake, run engine.RunState, greet, after engine.TaskState, attempt int) {
	r, _ := f.Run(context.Background(), 3)
	r.State = run
	r.Tasks[0].State, r.Tasks[1].State = greet, after
	r.Tasks[1].Attempt = attempt
	f.AddRun(r)
}

func TestLiveStream(t *testing.T) {
	f := apitest.NewSeeded()
	f.AddEvents(3, api.Event{Kind: engine.EvRunStarted}, api.Event{Kind: engine.EvTaskStarted, Task: "greet", Attempt: 1})
	live := &fakeLive{}
	srv := newUI(t, f, func(o *web.Options) { o.Live, o.PollEvery, o.Graphs = live, time.Hour, seededGraphs() })

	// From the page's point (?after=0): the tasks the timeline names since.
	s := openSSE(t, srv, "viewer", "/runs/3/live?after=0", "")
	ev := s.expect("the first event")
	if ev.ID != "2" || ev.Event != "change" || !slices.Equal(ev.Data.ids(), []string{"greet=running"}) || ev.Data.Run.State != "running" || ev.Data.Full {
		t.Fatalf("first event: %+v", ev)
	}
	if ev.Data.Tasks[0].Sub != "◐ running · run" {
		t.Errorf("the node's line: %q", ev.Data.Tasks[0].Sub)
	}

	// greet succeeds, after starts: both are sent.
	setTasks(f, engine.RunRunning, engine.TaskSucceeded, engine.TaskRunning, 1)
	f.AddEvents(3, api.Event{Kind: engine.EvTaskSucceeded, Task: "greet", Attempt: 1}, api.Event{Kind: engine.EvTaskStarted, Task: "after", Attempt: 1})
	woke := time.Now()
	live.wake(3)
	ev = s.expect("greet's change")
	t.Logf("the change arrived %s after the wake-up", time.Since(woke))
	if ev.ID != "4" || !slices.Equal(ev.Data.ids(), []string{"after=running", "greet=succeeded"}) {
		t.Fatalf("second event: %+v", ev)
	}

	// A reconnection from id 2 gets what the timeline named since.
	s2 := openSSE(t, srv, "viewer", "/runs/3/live?after=0", "2")
	if ev2 := s2.expect("the resumed event"); ev2.ID != "4" || !slices.Equal(ev2.Data.ids(), []string{"after=running", "greet=succeeded"}) {
		t.Errorf("resumed from 2: %+v", ev2)
	}
	s3 := openSSE(t, srv, "viewer", "/runs/3/live", "4")
	if ev3 := s3.expect("the resumed event"); ev3.ID != "4" || len(ev3.Data.Tasks) != 0 {
		t.Errorf("resumed from the newest: %+v", ev3)
	}

	// Only what changed: after fails an attempt (no timeline entry needed).
	setTasks(f, engine.RunRunning, engine.TaskSucceeded, engine.TaskRetryWait, 2)
	live.wake(3)
	ev = s.expect("after's retry")
	if !slices.Equal(ev.Data.ids(), []string{"after=retry_wait"}) {
		t.Errorf("third event: %+v", ev.Data.ids())
	}

	// The run ends: the last change, then "end", then the stream closes.
	setTasks(f, engine.RunSucceeded, engine.TaskSucceeded, engine.TaskSucceeded, 2)
	f.AddEvents(3, api.Event{Kind: engine.EvTaskSucceeded, Task: "after", Attempt: 2}, api.Event{Kind: engine.RecRunFinished, Message: "succeeded"})
	live.wake(3)
	ev = s.expect("the run's end")
	if ev.ID != "6" || !ev.Data.Run.Ended || ev.Data.Run.State != "succeeded" || !slices.Equal(ev.Data.ids(), []string{"after=succeeded"}) {
		t.Errorf("last change: %+v", ev)
	}
	if ev = s.expect("end"); ev.Event != "end" {
		t.Errorf("want the end event, got %+v", ev)
	}
	if _, ok := s.next(); ok {
		t.Errorf("the stream goes on after the end")
	}
	// The other streams end too (woken by the same change).
	for _, x := range []*sse{s2, s3} {
		for {
			ev, ok := x.next()
			if !ok {
				t.Errorf("a stream ended without the end event")
				break
			}
			if ev.Event == "end" {
				break
			}
		}
	}

	// Resuming a finished run: a run-wide entry (run_finished) came since
	// 4, so every task is sent, then the end.
	s4 := openSSE(t, srv, "viewer", "/runs/3/live", "4")
	if ev := s4.expect("the resumed event"); !ev.Data.Full || len(ev.Data.Tasks) != 2 {
		t.Errorf("resumed across the end: %+v", ev)
	}
	if ev := s4.expect("end"); ev.Event != "end" {
		t.Errorf("want the end event, got %+v", ev)
	}
}

// TestLivePolls: without a Live, a stream checks every PollEvery.
func TestLivePolls(t *testing.T) {
	f := apitest.NewSeeded()
	srv := newUI(t, f, func(o *web.Options) { o.PollEvery = 20 * time.Millisecond })
	s := openSSE(t, srv, "viewer", "/runs/3/live", "")
	if ev := s.expect("the first event"); len(ev.Data.Tasks) != 0 || ev.Data.Run.State != "running" {
		t.Errorf("a stream without a point to resume from sends tasks: %+v", ev)
	}
	setTasks(f, engine.RunRunning, engine.TaskSucceeded, engine.TaskPending, 0)
	if ev := s.expect("the change"); !slices.Equal(ev.Data.ids(), []string{"greet=succeeded"}) {
		t.Errorf("%+v", ev)
	}
}

func TestLiveNotFound(t *testing.T) {
	srv := newUI(t, apitest.NewSeeded())
	for _, c := range []struct{ as, path string }{{"viewer", "/runs/77/live"}, {"ns-viewer", "/runs/3/live"}} {
		if status, _, _ := get(t, srv, c.as, c.path); status != http.StatusNotFound {
			t.Errorf("%s as %s: %d", c.path, c.as, status)
		}
	}
	if status, _, _ := get(t, srv, "", "/runs/3/live"); status != http.StatusUnauthorized {
		t.Errorf("a stream without a session: %d, want 401", status)
	}
}

// TestLiveStreamEndsForTheSessionCheck: a stream of a run that goes on ends
// after Options.StreamFor, without an end event, so the browser reconnects
// through the session check (a logout or a changed role reaches it).
func TestLiveStreamEndsForTheSessionCheck(t *testing.T) {
	srv := newUI(t, apitest.NewSeeded(), func(o *web.Options) { o.StreamFor = 100 * time.Millisecond })
	status, body, _ := get(t, srv, "viewer", "/runs/3/live")
	if status != http.StatusOK || strings.Contains(body, "event: end") || !strings.Contains(body, "data:") {
		t.Errorf("got %d:\n%s", status, body)
	}
}

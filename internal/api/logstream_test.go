package api_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/logs"
)

// TestLogRange reads a finished log whole and in byte ranges.
func TestLogRange(t *testing.T) {
	e := newEnv(t)
	log := string(e.log)
	n := len(log)
	first := strings.Index(log, "\n") + 1
	cases := []struct {
		name, query, rng string
		status           int
		body             string
		contentRange     string
	}{
		{name: "whole", status: 200, body: log},
		{name: "attempt given", query: "?attempt=1", status: 200, body: log},
		{name: "from start", rng: "bytes=0-", status: 206, body: log, contentRange: fmt.Sprintf("bytes 0-%d/%d", n-1, n)},
		{name: "from second line", rng: fmt.Sprintf("bytes=%d-", first), status: 206, body: log[first:],
			contentRange: fmt.Sprintf("bytes %d-%d/%d", first, n-1, n)},
		{name: "closed range", rng: "bytes=2-5", status: 206, body: log[2:6], contentRange: fmt.Sprintf("bytes 2-5/%d", n)},
		{name: "end past the log", rng: "bytes=5-999999", status: 206, body: log[5:], contentRange: fmt.Sprintf("bytes 5-%d/%d", n-1, n)},
		{name: "suffix", rng: "bytes=-10", status: 206, body: log[n-10:], contentRange: fmt.Sprintf("bytes %d-%d/%d", n-10, n-1, n)},
		{name: "suffix longer than the log", rng: "bytes=-999999", status: 206, body: log, contentRange: fmt.Sprintf("bytes 0-%d/%d", n-1, n)},
		{name: "offset", query: fmt.Sprintf("?offset=%d", first), status: 206, body: log[first:],
			contentRange: fmt.Sprintf("bytes %d-%d/%d", first, n-1, n)},
		{name: "offset zero", query: "?offset=0", status: 206, body: log, contentRange: fmt.Sprintf("bytes 0-%d/%d", n-1, n)},
		{name: "offset at the end", query: fmt.Sprintf("?offset=%d", n), status: 200, body: ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := map[string]string{}
			if c.rng != "" {
				h["Range"] = c.rng
			}
			resp := e.do(http.MethodGet, "runs/1/tasks/greet/logs"+c.query, "", h)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status || string(body) != c.body {
				t.Fatalf("status %d body %q, want %d %q", resp.StatusCode, body, c.status, c.body)
			}
			if got := resp.Header.Get("Content-Range"); got != c.contentRange {
				t.Errorf("Content-Range %q, want %q", got, c.contentRange)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(c.body)) {
				t.Errorf("Content-Length %q, want %d", cl, len(c.body))
			}
			if ar := resp.Header.Get("Accept-Ranges"); ar != "bytes" {
				t.Errorf("Accept-Ranges %q", ar)
			}
		})
	}
}

// sseEvent is one event read off the wire.
type sseEvent struct {
	event, id, data string
	comment         bool
}

// readSSE parses a stream into events (and heartbeat comments), sending
// each on out until the stream ends. It is written from the format, apart
// from the client's parser, so the two check each other.
func readSSE(r io.Reader, out chan<- sseEvent) {
	defer close(out)
	br := bufio.NewReader(r)
	var ev sseEvent
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if len(data) > 0 || ev.event != "" {
				ev.data = strings.Join(data, "\n")
				out <- ev
			}
			ev, data = sseEvent{}, nil
		case strings.HasPrefix(line, ":"):
			out <- sseEvent{comment: true}
		default:
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "event":
				ev.event = v
			case "id":
				ev.id = v
			case "data":
				data = append(data, v)
			}
		}
	}
}

// follow opens a log follow and returns its events.
func follow(t *testing.T, srv *httptest.Server, path string, header map[string]string) (<-chan sseEvent, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+api.Prefix+"/"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("follow: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	ch := make(chan sseEvent, 16)
	go readSSE(resp.Body, ch)
	return ch, resp
}

// next returns the next event that is not a comment.
func next(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("stream ended early")
			}
			if !ev.comment {
				return ev
			}
		case <-timeout:
			t.Fatal("no event within 20s")
		}
	}
}

// TestLogFollow follows a log over SSE while a writer produces it: the log
// does not exist yet when the follow starts; each line written arrives as
// an event whose id is the log's size after it; closing the writer ends
// the stream with an end event.
func TestLogFollow(t *testing.T) {
	e := newEnv(t, api.WithHeartbeat(time.Hour))
	srv := httptest.NewServer(e.handler)
	defer srv.Close()
	key := logs.Key{RunID: 3, TaskID: "greet", Attempt: 1}

	events, resp := follow(t, srv, "runs/3/tasks/greet/logs", map[string]string{"Accept": "text/event-stream"})
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control %q", cc)
	}
	w, err := e.logs.Create(context.Background(), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	for i := range 5 {
		fmt.Fprintf(w.Stdout(), "line %d\n", i)
		ev := next(t, events)
		size, err := e.logs.Size(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		if ev.event != "" || !strings.HasSuffix(ev.data, fmt.Sprintf(" out line %d", i)) || ev.id != strconv.FormatInt(size, 10) {
			t.Fatalf("event %d = %+v (log size %d)", i, ev, size)
		}
		got.WriteString(ev.data + "\n")
	}
	fmt.Fprint(w.Stderr(), "two\nlines\n") // one write, one event of two lines
	ev := next(t, events)
	if lines := strings.Split(ev.data, "\n"); len(lines) != 2 || !strings.HasSuffix(lines[0], "err two") || !strings.HasSuffix(lines[1], "err lines") {
		t.Fatalf("two-line event = %+v", ev)
	}
	got.WriteString(ev.data + "\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	end := next(t, events)
	full := readAll(t, e.logs, key)
	if end.event != "end" || end.id != strconv.Itoa(len(full)) || end.data != strconv.Itoa(len(full)) {
		t.Fatalf("end event = %+v, log size %d", end, len(full))
	}
	if got.String() != string(full) {
		t.Fatalf("events carried %q, log is %q", got.String(), full)
	}
	if _, ok := <-events; ok {
		t.Fatal("stream goes on after end")
	}
}

// TestLogFollowResume resumes a follow from an offset given as the SSE
// Last-Event-ID, or as ?offset with ?follow=1.
func TestLogFollowResume(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewServer(e.handler)
	defer srv.Close()
	log := string(e.log)
	first := strings.Index(log, "\n") + 1
	for _, c := range []struct {
		name, path string
		header     map[string]string
	}{
		{"Last-Event-ID", "runs/1/tasks/greet/logs", map[string]string{"Accept": "text/event-stream", "Last-Event-ID": strconv.Itoa(first)}},
		{"offset", fmt.Sprintf("runs/1/tasks/greet/logs?follow=1&offset=%d", first), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			events, _ := follow(t, srv, c.path, c.header)
			var got strings.Builder
			for {
				ev := next(t, events)
				if ev.event == "end" {
					break
				}
				got.WriteString(ev.data + "\n")
			}
			if got.String() != log[first:] {
				t.Fatalf("resumed with %q, want %q", got.String(), log[first:])
			}
		})
	}
}

// TestLogFollowHeartbeat checks that a quiet follow sends comments.
func TestLogFollowHeartbeat(t *testing.T) {
	e := newEnv(t, api.WithHeartbeat(10*time.Millisecond))
	srv := httptest.NewServer(e.handler)
	defer srv.Close()
	w, err := e.logs.Create(context.Background(), logs.Key{RunID: 3, TaskID: "greet", Attempt: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	events, _ := follow(t, srv, "runs/3/tasks/greet/logs?follow=true", nil)
	comments := 0
	for comments < 2 {
		select {
		case ev := <-events:
			if !ev.comment {
				t.Fatalf("unexpected event %+v", ev)
			}
			comments++
		case <-time.After(20 * time.Second):
			t.Fatal("no heartbeat")
		}
	}
	w.Close()
	if ev := next(t, events); ev.event != "end" {
		t.Fatalf("after close: %+v", ev)
	}
}

// TestLogFollowClientLeaves checks that a client going away ends the
// follow on the server quietly: the handler returns and logs no error.
func TestLogFollowClientLeaves(t *testing.T) {
	e := newEnv(t, api.WithHeartbeat(5*time.Millisecond))
	returned := make(chan struct{}, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.handler.ServeHTTP(w, r)
		returned <- struct{}{}
	}))
	defer srv.Close()
	w, err := e.logs.Create(context.Background(), logs.Key{RunID: 3, TaskID: "greet", Attempt: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	fmt.Fprintln(w.Stdout(), "first")
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+api.Prefix+"/runs/3/tasks/greet/logs?follow=1", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan sseEvent, 16)
	go readSSE(resp.Body, events)
	if ev := next(t, events); !strings.HasSuffix(ev.data, "out first") {
		t.Fatalf("first event %+v", ev)
	}
	cancel()
	resp.Body.Close()
	select {
	case <-returned:
	case <-time.After(20 * time.Second):
		t.Fatal("the handler still runs after the client left")
	}
	if strings.Contains(e.logged.String(), "level=ERROR") {
		t.Fatalf("a client leaving was logged as an error:\n%s", e.logged)
	}
}

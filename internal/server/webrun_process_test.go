package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProcessRunPageLive opens a running run's page and its live stream
// on a real server, as a logged-in viewer, and sees a task's change come
// over the stream when the task ends: the task waits on a FIFO the test
// writes to, so nothing waits on time. It logs how long the change took
// from the test's write to the event (the task's exit, the runner's
// commit and the stream's read included).
func TestProcessRunPageLive(t *testing.T) {
	home, dir, fifos := t.TempDir(), t.TempDir(), t.TempDir()
	started := mkfifo(t, fifos)
	release := filepath.Join(fifos, "release")
	if err := syscall.Mkfifo(release, 0o600); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "p.yaml", fmt.Sprintf(`name: p
tasks:
  - {id: hold, run: "echo up > %s; cat %s > /dev/null"}
  - {id: after, needs: [hold], run: "true"}
`, started, release))
	s := startServer(t, home, dir, nil)
	if r := secretCLI(t, s, "viewer-password\n", "user", "add", "vera", "--role", "viewer"); r.code != 0 {
		t.Fatalf("user add: exit %d: %s", r.code, r.errOut)
	}
	vera := newBrowser(t, s.url)
	if code, out := vera.login("vera", "viewer-password"); code != 200 {
		t.Fatalf("login: %d %s", code, out)
	}
	run, err := s.c.Trigger(t.Context(), "p", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	awaitFifo(t, started, s, 30*time.Second)

	// The page: the graph with the running task, the stream's address.
	res, err := vera.c.Get(fmt.Sprintf("%s/runs/%d", s.url, run.ID))
	if err != nil {
		t.Fatal(err)
	}
	page := readBody(t, res)
	for _, want := range []string{`id="node-hold" class="node s-running"`, `id="node-after" class="node s-pending"`, `<path class="edge"`, "data-live-url="} {
		if res.StatusCode != 200 || !strings.Contains(page, want) {
			t.Fatalf("the run page (%d) lacks %q\n%s", res.StatusCode, want, page)
		}
	}
	after := page[strings.Index(page, "data-live-url=")+len(`data-live-url="`):]
	after = after[:strings.Index(after, `"`)]

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url+strings.ReplaceAll(after, "&amp;", "&"), nil)
	stream, err := vera.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if stream.StatusCode != 200 || stream.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("the live stream: %d %s", stream.StatusCode, stream.Header.Get("Content-Type"))
	}
	events := make(chan string, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(stream.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		var ev string
		for sc.Scan() {
			switch line := sc.Text(); {
			case line == "" && ev != "":
				events <- ev
				ev = ""
			case strings.HasPrefix(line, "event: "), strings.HasPrefix(line, "data: "):
				ev += line + "\n"
			}
		}
	}()
	next := func(what string) string {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the stream ended before %s", what)
			}
			return ev
		case <-ctx.Done():
			t.Fatalf("no %s within 30s", what)
		}
		return ""
	}
	if ev := next("the first event"); !strings.Contains(ev, `"state":"running"`) {
		t.Fatalf("first event: %s", ev)
	}

	// Let the task end: the stream says so.
	f, err := os.OpenFile(release, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	f.Close()
	var took time.Duration
	for took == 0 {
		ev := next("hold's change")
		var d struct {
			Tasks []struct{ ID, State string } `json:"tasks"`
		}
		_ = json.Unmarshal([]byte(ev[strings.Index(ev, "data: ")+6:]), &d)
		for _, task := range d.Tasks {
			if task.ID == "hold" && task.State == "succeeded" {
				took = time.Since(released)
			}
		}
	}
	arrived := released.Add(took)
	final := waitRunEnd(t, s.c, run.ID)
	var since time.Duration
	for _, task := range final.Tasks {
		if task.ID == "hold" && task.FinishedAt != nil {
			since = arrived.Sub(*task.FinishedAt)
		}
	}
	t.Logf("hold's success reached the stream %s after its FIFO was released, %s after its recorded finish", took, since)
	for {
		if ev := next("the end event"); strings.HasPrefix(ev, "event: end") {
			break
		}
	}
}

func readBody(t *testing.T, res *http.Response) string {
	t.Helper()
	defer res.Body.Close()
	var b strings.Builder
	if _, err := bufio.NewReader(res.Body).WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

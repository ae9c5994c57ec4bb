package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// fakeServer is one server of a cluster as a worker sees it: it answers
// every call the same way (how), and counts the calls it got.
type fakeServer struct {
	url   string
	calls atomic.Int64
	how   atomic.Pointer[string]
	mu    sync.Mutex
	waits []int         // wait_seconds of the lease requests it got
	body  []byte        // the last upload's body
	rest  chan struct{} // closed: send the second half of a download
}

// How a fake server answers.
const (
	answerOK    = "ok"
	answer503   = "503"   // a follower that cannot reach the leader (after reading the request)
	answer409   = "409"   // a lease the cluster no longer holds
	answerStuck = "stuck" // a frozen process: never answers
	answerDead  = "dead"  // nothing listens
)

func newFakeServer(t *testing.T, how string) *fakeServer {
	t.Helper()
	s := &fakeServer{rest: make(chan struct{})}
	s.set(how)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/api/v1/worker/lease" {
			var req api.LeaseRequest
			_ = json.Unmarshal(body, &req)
			s.mu.Lock()
			s.waits = append(s.waits, req.WaitSeconds)
			s.mu.Unlock()
		}
		writeErr := func(status int, code, msg string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, code, msg)
		}
		switch *s.how.Load() {
		case answer503:
			writeErr(http.StatusServiceUnavailable, api.CodeUnavailable, "the leader did not answer")
			return
		case answer409:
			writeErr(http.StatusConflict, api.CodeLeaseLost, "lease 1.t.1 is not held")
			return
		case answerStuck:
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		switch {
		case r.URL.Path == "/api/v1/worker/heartbeat":
			_ = json.NewEncoder(w).Encode(api.HeartbeatResponse{Cancel: []string{s.url}})
		case r.URL.Path == "/api/v1/worker/lease":
			_ = json.NewEncoder(w).Encode(api.LeaseResponse{Leases: []api.Lease{{ID: "1.t.1", Task: s.url}}})
		case r.Method == http.MethodPut:
			s.mu.Lock()
			s.body = body
			s.mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/v1/worker/artifacts/"):
			// Half now, the rest when the reader has waited past the
			// try's share: the share bounds the answer, not the transfer.
			w.Header().Set("Content-Type", "application/octet-stream")
			io.WriteString(w, "first half, ")
			w.(http.Flusher).Flush()
			select {
			case <-s.rest:
			case <-r.Context().Done():
				return
			}
			io.WriteString(w, "second half")
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(func() {
		close(release)
		srv.Close()
	})
	s.url = srv.URL
	if how == answerDead {
		srv.Close()
	}
	return s
}

// set changes how the server answers from now on.
func (s *fakeServer) set(how string) { s.how.Store(&how) }

// failover returns a Failover over servers and what it logs.
func failover(t *testing.T, servers ...*fakeServer) (*api.Failover, *lockedLog) {
	t.Helper()
	var clients []*api.Client
	for _, s := range servers {
		c, err := api.NewClient(s.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c.WithToken("tsk_secret"))
	}
	out := &lockedLog{}
	f, err := api.NewFailover(clients, slog.New(slog.NewTextHandler(out, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return f, out
}

type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func heartbeat(t *testing.T, f *api.Failover, within time.Duration) (api.HeartbeatResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	return f.Heartbeat(ctx, api.HeartbeatRequest{Worker: "w1", Leases: []string{"1.t.1"}})
}

// TestFailoverMovesOn: a call goes to the next server when one does not
// answer (dead, 503, stuck past its share of the call's time), and stays
// with the one that answered; an answer that refuses (409) is returned as
// is, without asking another server.
func TestFailoverMovesOn(t *testing.T) {
	cases := []struct {
		first  string
		within time.Duration
		moved  bool // the second server answered
		status int  // of the *api.Error returned, when not moved
	}{
		{first: answerDead, within: 5 * time.Second, moved: true},
		{first: answer503, within: 5 * time.Second, moved: true},
		{first: answerStuck, within: 2 * time.Second, moved: true},
		{first: answer409, within: 5 * time.Second, status: http.StatusConflict},
	}
	for _, c := range cases {
		t.Run(c.first, func(t *testing.T) {
			a, b := newFakeServer(t, c.first), newFakeServer(t, answerOK)
			f, log := failover(t, a, b)
			began := time.Now()
			resp, err := heartbeat(t, f, c.within)
			if !c.moved {
				var e *api.Error
				if !errors.As(err, &e) || e.Status != c.status {
					t.Fatalf("heartbeat: %v, want the first server's %d as is", err, c.status)
				}
				if b.calls.Load() != 0 {
					t.Errorf("the second server got %d calls after the first answered %d", b.calls.Load(), c.status)
				}
				if strings.Contains(log.String(), "moved") {
					t.Errorf("logged a move:\n%s", log)
				}
				return
			}
			if err != nil || len(resp.Cancel) != 1 || resp.Cancel[0] != b.url {
				t.Fatalf("heartbeat: %+v, %v; want the answer of %s", resp, err, b.url)
			}
			if took := time.Since(began); took >= c.within {
				t.Errorf("the call took %s, all of its %s", took, c.within)
			}
			// The next calls go to the server that answered at once.
			before := a.calls.Load()
			for range 3 {
				if _, err := heartbeat(t, f, c.within); err != nil {
					t.Fatal(err)
				}
			}
			if n := a.calls.Load() - before; n != 0 {
				t.Errorf("the server that did not answer got %d more calls", n)
			}
			if n := strings.Count(log.String(), "moved to another server"); n != 1 {
				t.Errorf("logged %d moves, want 1:\n%s", n, log)
			}
			if want := "from=" + a.url + " to=" + b.url; !strings.Contains(log.String(), want) {
				t.Errorf("the log does not say %q:\n%s", want, log)
			}
		})
	}
}

// TestFailoverNoneAnswers: when no server answers, each is tried once and
// the last error comes back, naming that server.
func TestFailoverNoneAnswers(t *testing.T) {
	dead, busy := newFakeServer(t, answerDead), newFakeServer(t, answer503)
	f, log := failover(t, dead, busy)
	_, err := heartbeat(t, f, 5*time.Second)
	var e *api.Error
	if !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable {
		t.Fatalf("heartbeat: %v, want the last server's 503", err)
	}
	if !strings.Contains(err.Error(), "none of 2 servers answered") || !strings.Contains(err.Error(), busy.url) {
		t.Errorf("error %q does not say no server answered, nor name the last", err)
	}
	if busy.calls.Load() != 1 {
		t.Errorf("the 503 server got %d calls, want 1", busy.calls.Load())
	}
	if strings.Contains(log.String(), "moved") {
		t.Errorf("logged a move when none answered:\n%s", log)
	}
}

// TestFailoverSaysEachMoveOnce: a move is said once each time the server
// changes, not at each call, and not once per call of those failing over
// together.
func TestFailoverSaysEachMoveOnce(t *testing.T) {
	a, b := newFakeServer(t, answerOK), newFakeServer(t, answerOK)
	f, log := failover(t, a, b)
	calls := func(n int) {
		t.Helper()
		for range n {
			if _, err := heartbeat(t, f, 5*time.Second); err != nil {
				t.Fatal(err)
			}
		}
	}
	calls(3)
	if a.calls.Load() != 3 || b.calls.Load() != 0 || log.String() != "" {
		t.Fatalf("calls %d, %d; log %q: want all on the first server, nothing logged", a.calls.Load(), b.calls.Load(), log)
	}
	a.set(answer503)
	calls(3)
	b.set(answer503)
	a.set(answerOK)
	calls(3)
	moves := strings.Count(log.String(), "moved to another server")
	if moves != 2 || !strings.Contains(log.String(), "from="+a.url+" to="+b.url) || !strings.Contains(log.String(), "from="+b.url+" to="+a.url) {
		t.Errorf("logged %d moves, want 2, there and back:\n%s", moves, log)
	}
	if a.calls.Load() != 3+1+3 || b.calls.Load() != 3+1 {
		t.Errorf("calls %d, %d; want 7 (3 answered, 1 not, 3 answered), 4 (3 answered, 1 not)", a.calls.Load(), b.calls.Load())
	}

	f2, log2 := failover(t, newFakeServer(t, answerDead), newFakeServer(t, answerOK))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := heartbeat(t, f2, 5*time.Second); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := strings.Count(log2.String(), "moved to another server"); n != 1 {
		t.Errorf("logged %d moves for concurrent calls, want 1:\n%s", n, log2)
	}
}

// TestFailoverLeaseWait: a lease request tried after a stuck server asks
// the next one for a shorter wait, so that it answers within the call.
func TestFailoverLeaseWait(t *testing.T) {
	stuck, ok := newFakeServer(t, answerStuck), newFakeServer(t, answerOK)
	f, _ := failover(t, stuck, ok)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := f.Lease(ctx, api.LeaseRequest{Worker: "w1", Free: 1, WaitSeconds: 1})
	if err != nil || len(resp.Leases) != 1 || resp.Leases[0].Task != ok.url {
		t.Fatalf("lease: %+v, %v", resp, err)
	}
	ok.mu.Lock()
	defer ok.mu.Unlock()
	stuck.mu.Lock()
	defer stuck.mu.Unlock()
	// 2s: the first gets the 1s wait and half of the other 1s; the second
	// what is left (about 0.5s), half of it to wait, in whole seconds: 0.
	if len(stuck.waits) != 1 || stuck.waits[0] != 1 || len(ok.waits) != 1 || ok.waits[0] != 0 {
		t.Errorf("waits asked: stuck %v, then %v; want [1], then [0]", stuck.waits, ok.waits)
	}
}

// TestFailoverUpload: an upload goes to the next server when the first
// read none of it (down); one that read it and failed is not sent again
// (the body is read once: the caller starts the upload again).
func TestFailoverUpload(t *testing.T) {
	const digest = "sha256:ab00000000000000000000000000000000000000000000000000000000000000"
	data := "the file's bytes"
	t.Run("dead", func(t *testing.T) {
		dead, ok := newFakeServer(t, answerDead), newFakeServer(t, answerOK)
		f, _ := failover(t, dead, ok)
		if err := f.UploadArtifact(context.Background(), digest, int64(len(data)), strings.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		ok.mu.Lock()
		defer ok.mu.Unlock()
		if string(ok.body) != data {
			t.Errorf("the second server got %q, want %q", ok.body, data)
		}
	})
	t.Run("503 after reading it", func(t *testing.T) {
		read, ok := newFakeServer(t, answer503), newFakeServer(t, answerOK)
		f, _ := failover(t, read, ok)
		err := f.UploadArtifact(context.Background(), digest, int64(len(data)), strings.NewReader(data))
		var e *api.Error
		if !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable {
			t.Fatalf("upload: %v, want the 503", err)
		}
		if ok.calls.Load() != 0 {
			t.Errorf("the rest of a body read by the first server went to the second")
		}
	})
}

// TestFailoverDownload: a download answered by the second server after a
// stuck one is read to its end after the try's share of the time: the
// share bounds the wait for the answer, not the transfer.
func TestFailoverDownload(t *testing.T) {
	const digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	ok, stuck := newFakeServer(t, answerOK), newFakeServer(t, answerStuck)
	f, _ := failover(t, ok, stuck)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	body, err := f.DownloadArtifact(ctx, digest)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	first := make([]byte, len("first half, "))
	if _, err := io.ReadFull(body, first); err != nil {
		t.Fatal(err)
	}
	// The first server's share (half of the call) ends; the body goes on.
	deadline, _ := ctx.Deadline()
	time.Sleep(time.Until(deadline)/2 + 100*time.Millisecond) // a span of time is what is tested, not an event
	close(ok.rest)
	rest, err := io.ReadAll(body)
	if err != nil || string(first)+string(rest) != "first half, second half" {
		t.Errorf("read %q then %q, %v", first, rest, err)
	}
	if stuck.calls.Load() != 0 {
		t.Errorf("the stuck server was asked too")
	}
}

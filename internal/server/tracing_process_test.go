package server_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tasuki-dev/tasuki/internal/engine"
)

// otlpReceiver is an OTLP/HTTP endpoint that keeps the spans it receives:
// the tracing backend a server exports to, which cannot run here.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
	got   chan struct{} // capacity 1: spans arrived
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var req coltrace.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(body, &req)
	}
	if err != nil || r.URL.Path != "/v1/traces" {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			o.spans = append(o.spans, ss.Spans...)
		}
	}
	o.mu.Unlock()
	select {
	case o.got <- struct{}{}:
	default:
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	b, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Write(b)
}

// waitFor waits until the spans received satisfy ok.
func (o *otlpReceiver) waitFor(t *testing.T, what string, ok func([]*tracepb.Span) bool) []*tracepb.Span {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		o.mu.Lock()
		spans := append([]*tracepb.Span(nil), o.spans...)
		o.mu.Unlock()
		if ok(spans) {
			return spans
		}
		select {
		case <-o.got:
		case <-deadline:
			var names []string
			for _, s := range spans {
				names = append(names, s.Name)
			}
			t.Fatalf("never received %s; spans: %v", what, names)
		}
	}
}

func attr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			if v := kv.Value.GetStringValue(); v != "" {
				return v
			}
			if v := kv.Value.GetIntValue(); v != 0 {
				return strconv.FormatInt(v, 10)
			}
		}
	}
	return ""
}

// TestProcessTraces: a server configured only by the OTEL_* variables
// exports a run as one trace: the run's root span, one span per attempt
// (a failed one and its retry on a remote worker, with the hand-off as an
// event) as its children, the store's transactions and the API's
// requests; the task's process sees its attempt's span as TRACEPARENT.
func TestProcessTraces(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and a worker")
	}
	rec := &otlpReceiver{got: make(chan struct{}, 1)}
	collector := httptest.NewServer(rec)
	defer collector.Close()
	home, pipelines := t.TempDir(), t.TempDir()
	writeFile(t, pipelines, "traced.yaml", `
name: traced
tasks:
  - id: flaky
    labels: [remote]
    run: |
      echo "traceparent=$TRACEPARENT"
      m="$TASUKI_RUN_ID.mark"; test -f "$m" || { touch "$m"; exit 3; }
    retry: {attempts: 2, backoff: 10ms, max_backoff: 10ms}
  - id: arrived
    wait: {file: `+filepath.Join(pipelines, "traced.yaml")+`}
`)
	s := startServer(t, home, pipelines, []string{
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=" + collector.URL + "/v1/traces",
		"OTEL_BSP_SCHEDULE_DELAY=50",
		"OTEL_SERVICE_NAME=tasuki-test",
	})
	serverTokens.Store(s.url, s.token)
	_, tokenFile := createToken(t, s.url, "w1")
	startWorker(t, s.url, tokenFile, "w1", nil, "--labels", "remote")
	run, err := s.c.Trigger(context.Background(), "traced", nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if got := waitRunEnd(t, s.c, run.ID); got.State != engine.RunSucceeded {
		t.Fatalf("run: %s", got.State)
	}
	spans := rec.waitFor(t, "the run's root span", func(spans []*tracepb.Span) bool {
		for _, sp := range spans {
			if sp.Name == "run traced" {
				return true
			}
		}
		return false
	})
	var root *tracepb.Span
	var attempts []*tracepb.Span
	stores, requests := 0, 0
	for _, sp := range spans {
		switch {
		case sp.Name == "run traced":
			root = sp
		case sp.Name == "attempt flaky":
			attempts = append(attempts, sp)
		}
	}
	if len(attempts) != 2 {
		t.Fatalf("%d attempt spans, want 2 (a failure and its retry)", len(attempts))
	}
	for _, sp := range spans {
		switch {
		case sp.Name == "store apply" && string(sp.TraceId) == string(root.TraceId):
			stores++
			if string(sp.ParentSpanId) != string(root.SpanId) {
				t.Errorf("a store transaction of the run is not a child of its root span")
			}
		case strings.HasPrefix(sp.Name, "POST /api/v1/pipelines/traced/runs"):
			requests++
		}
	}
	if stores == 0 || requests != 1 {
		t.Errorf("%d store spans in the run's trace, %d trigger request spans; want some and 1", stores, requests)
	}
	if root.StartTimeUnixNano == 0 || root.EndTimeUnixNano < root.StartTimeUnixNano || attr(root, "tasuki.state") != "succeeded" {
		t.Errorf("root span %+v", root)
	}
	outcomes := map[string]bool{}
	for _, a := range attempts {
		if string(a.TraceId) != string(root.TraceId) || string(a.ParentSpanId) != string(root.SpanId) {
			t.Errorf("attempt span %s is not a child of the run's root span", a.Name)
		}
		outcomes[attr(a, "tasuki.outcome")] = true
		if attr(a, "tasuki.worker") != "w1" {
			t.Errorf("attempt span's worker %q, want w1", attr(a, "tasuki.worker"))
		}
		leased := false
		for _, ev := range a.Events {
			leased = leased || ev.Name == "leased"
		}
		if !leased {
			t.Error("an attempt span has no leased event")
		}
		// The task's process saw this span as its TRACEPARENT.
		want := "traceparent=00-" + hex.EncodeToString(a.TraceId) + "-" + hex.EncodeToString(a.SpanId) + "-01"
		n, _ := strconv.Atoi(attr(a, "tasuki.attempt"))
		var log bytes.Buffer
		if _, err := s.c.ReadLog(context.Background(), run.ID, "flaky", n, 0, &log); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(log.String(), want) {
			t.Errorf("attempt %d's log %q lacks %q", n, log.String(), want)
		}
	}
	if !outcomes["failed"] || !outcomes["succeeded"] {
		t.Errorf("attempt outcomes %v, want failed and succeeded", outcomes)
	}
	// The wait is a span of its own under the root.
	waits := 0
	for _, sp := range spans {
		if sp.Name == "wait arrived" {
			waits++
			if string(sp.ParentSpanId) != string(root.SpanId) || attr(sp, "tasuki.outcome") != "succeeded" {
				t.Errorf("wait span %+v", sp)
			}
		}
	}
	if waits != 1 {
		t.Errorf("%d wait spans, want 1", waits)
	}
}

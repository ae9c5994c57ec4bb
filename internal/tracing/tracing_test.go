package tracing

import (
	"context"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestEnabled(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, false},
		{map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, false},
		{map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, true}, // and refused by FromEnv
	} {
		if got := Enabled(func(k string) string { return c.env[k] }); got != c.want {
			t.Errorf("%v: %v, want %v", c.env, got, c.want)
		}
	}
	if _, ok, err := FromEnv(t.Context(), "x", func(string) string { return "" }); ok || err != nil {
		t.Errorf("no variables: tracing on %v %v", ok, err)
	}
	if _, _, err := FromEnv(t.Context(), "x", func(k string) string {
		return map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"}[k]
	}); err == nil {
		t.Error("an unknown protocol was accepted")
	}
	for _, env := range []map[string]string{
		{"OTEL_TRACES_EXPORTER": "zipkin"},
		{"OTEL_TRACES_EXPORTER": "console"},
	} {
		if _, _, err := FromEnv(t.Context(), "x", func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "OTLP only") {
			t.Errorf("%v: %v, want a refusal", env, err)
		}
	}
	_, _, err := FromEnv(t.Context(), "x", func(k string) string {
		return map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "bogus"}[k]
	})
	if err == nil || !strings.Contains(err.Error(), "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") {
		t.Errorf("the error names another variable than the one set: %v", err)
	}
}

// TestRunSpan: a run's root span has the same ids on every server (they
// derive from the run), a different run gets others, and a span started
// with WithIDs takes them, so attempts recorded earlier name it as parent.
func TestRunSpan(t *testing.T) {
	created := time.Date(2026, 12, 7, 1, 2, 3, 4, time.UTC)
	a, b := RunSpanContext(7, created), RunSpanContext(7, created)
	if !a.Equal(b) || !a.IsValid() || a.Equal(RunSpanContext(8, created)) || a.Equal(RunSpanContext(7, created.Add(time.Nanosecond))) {
		t.Fatalf("run span contexts: %v %v", a, b)
	}
	exp := tracetest.NewInMemoryExporter()
	tp := NewProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	tr := tp.Tracer("test")
	_, child := tr.Start(trace.ContextWithRemoteSpanContext(context.Background(), a), "attempt")
	child.End()
	_, root := tr.Start(WithIDs(context.Background(), a), "run")
	root.End()
	_, other := tr.Start(context.Background(), "other")
	other.End()
	spans := exp.GetSpans()
	if spans[0].Parent.SpanID() != a.SpanID() || spans[0].SpanContext.TraceID() != a.TraceID() {
		t.Errorf("attempt span not under the run: %v", spans[0].Parent)
	}
	if spans[1].SpanContext.SpanID() != a.SpanID() || spans[1].SpanContext.TraceID() != a.TraceID() {
		t.Errorf("root span ids %v, want %v", spans[1].SpanContext, a)
	}
	if spans[2].SpanContext.TraceID() == a.TraceID() || !spans[2].SpanContext.IsValid() {
		t.Errorf("an unrelated span joined the run's trace")
	}
	if got, want := Traceparent(a), "00-"+a.TraceID().String()+"-"+a.SpanID().String()+"-01"; got != want {
		t.Errorf("Traceparent %q, want %q", got, want)
	}
}

// TestSampleWholeRuns: with a ratio sampler, a run's attempts follow the
// decision for its root span: a run is kept or dropped whole.
func TestSampleWholeRuns(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := NewProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.5))))
	defer tp.Shutdown(context.Background())
	tr := tp.Tracer("test")
	kept, dropped := 0, 0
	for run := int64(1); run <= 200; run++ {
		sc := Sample(tr, RunSpanContext(run, time.Unix(0, 0)))
		for range 3 {
			_, a := tr.Start(trace.ContextWithRemoteSpanContext(context.Background(), sc), "attempt")
			a.End()
		}
		_, root := tr.Start(WithIDs(context.Background(), sc), "run")
		root.End()
		if sc.IsSampled() {
			kept++
		} else {
			dropped++
		}
	}
	byTrace := map[trace.TraceID]int{}
	for _, s := range exp.GetSpans() {
		byTrace[s.SpanContext.TraceID()]++
	}
	for id, n := range byTrace {
		if n != 4 {
			t.Errorf("trace %s kept %d spans, want a run's 4 or none", id, n)
		}
	}
	if kept == 0 || dropped == 0 || len(byTrace) != kept {
		t.Errorf("kept %d runs, dropped %d, exported %d traces", kept, dropped, len(byTrace))
	}
}

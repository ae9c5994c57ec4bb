package tracing

import (
	"context"
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

package server

import (
	"context"
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/runner"
	"github.com/tasuki-dev/tasuki/internal/tracing"
)

// setupTracing connects the tracer provider of Options (nil: tracing is
// off, and nothing here runs) to the broker, which records attempts.
func (s *Server) setupTracing(tp trace.TracerProvider) {
	if tp == nil {
		return
	}
	s.tp = tp
	s.tracer = tp.Tracer("github.com/tasuki-dev/tasuki/internal/server")
	s.broker.Tracer = tp.Tracer("github.com/tasuki-dev/tasuki/internal/lease")
	s.broker.RunTrace = s.runTrace
}

// runTrace is the root span of a run this server executes.
func (s *Server) runTrace(run int64) (trace.SpanContext, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.executing[run]
	return e.trace, ok && e.trace.IsValid()
}

// traceRunEnded records a run's root span once the run ended, with its
// real start and end, under the ids its attempts named as their parent.
func (s *Server) traceRunEnded(p runner.Progress) {
	if s.tracer == nil {
		return
	}
	ended := false
	for _, r := range p.Records {
		ended = ended || r.Kind == engine.RecRunFinished
	}
	if !ended {
		return
	}
	r := p.Run
	sc := tracing.RunSpanContext(r.ID, r.CreatedAt)
	start := r.StartedAt
	if start.IsZero() {
		start = r.CreatedAt
	}
	attrs := []attribute.KeyValue{
		attribute.String("tasuki.pipeline", r.Pipeline), attribute.Int64("tasuki.run", r.ID),
		attribute.String("tasuki.trigger", r.Trigger), attribute.String("tasuki.state", string(r.State)),
	}
	if !r.IntervalEnd.IsZero() {
		attrs = append(attrs, attribute.String("tasuki.interval_start", r.IntervalStart.UTC().Format("2006-01-02T15:04:05Z07:00")),
			attribute.String("tasuki.interval_end", r.IntervalEnd.UTC().Format("2006-01-02T15:04:05Z07:00")))
	}
	_, span := s.tracer.Start(tracing.WithIDs(context.Background(), sc), "run "+r.Pipeline,
		trace.WithTimestamp(start), trace.WithAttributes(attrs...), trace.WithSpanKind(trace.SpanKindInternal))
	if r.State != engine.RunSucceeded {
		span.SetStatus(codes.Error, string(r.State))
	}
	end := r.FinishedAt
	if end.IsZero() {
		end = s.now()
	}
	span.End(trace.WithTimestamp(end))
}

// traceHTTP traces the API's requests when tracing is on.
func (s *Server) traceHTTP(h http.Handler) http.Handler {
	if s.tp == nil {
		return h
	}
	return otelhttp.NewHandler(h, "tasuki", otelhttp.WithTracerProvider(s.tp),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }))
}

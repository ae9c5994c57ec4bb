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
	"github.com/tasuki-dev/tasuki/internal/spec"
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

// traceWaits records each wait task that ended in the batch as a span,
// child of its run's root span, from its start to its end: a wait is
// poked by the runner, not handed to an executor, so the broker has no
// attempt span of it.
func (s *Server) traceWaits(p runner.Progress) {
	if s.tracer == nil || p.Task == nil || p.TaskID == nil {
		return
	}
	sc, ok := s.runTrace(p.Run.ID)
	if !ok {
		return
	}
	var pl *spec.Pipeline
	for _, r := range p.Records {
		if r.Task < 0 || !taskEnding(r.Kind) || r.Kind == engine.RecTaskUpstreamFailed {
			continue
		}
		if pl == nil {
			var err error
			if pl, err = s.runner.Pipeline(context.Background(), p.Run.VersionID); err != nil {
				return
			}
		}
		if r.Task >= len(pl.Tasks) || pl.Tasks[r.Task].Wait == nil {
			continue
		}
		t := p.Task(r.Task)
		if t.StartedAt.IsZero() {
			continue
		}
		ctx := trace.ContextWithRemoteSpanContext(context.Background(), sc)
		_, span := s.tracer.Start(ctx, "wait "+p.TaskID(r.Task), trace.WithTimestamp(t.StartedAt), trace.WithAttributes(
			attribute.String("tasuki.pipeline", p.Run.Pipeline), attribute.Int64("tasuki.run", p.Run.ID),
			attribute.String("tasuki.task", p.TaskID(r.Task)), attribute.Int("tasuki.attempt", t.Attempt),
			attribute.String("tasuki.outcome", string(t.State))))
		if t.State != engine.TaskSucceeded {
			span.SetStatus(codes.Error, t.Message)
		}
		span.End(trace.WithTimestamp(r.Time))
	}
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

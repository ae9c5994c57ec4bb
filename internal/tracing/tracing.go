package tracing

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// Enabled reports whether the OTEL_* variables (read with getenv) ask for
// traces: OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint for traces, and
// neither OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none.
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))) {
	case "none":
		return false
	case "":
	default: // otlp, and the exporters FromEnv refuses
		return true
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// FromEnv returns the tracer provider the OTEL_* variables describe (OTLP
// over HTTP by default, gRPC with OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL=grpc;
// the exporter reads the endpoint, headers and TLS settings itself, the SDK
// the sampler and the batch settings), named service unless
// OTEL_SERVICE_NAME says otherwise. ok is false when tracing is off: then
// there is no provider. The caller shuts the provider down, which flushes
// the spans still buffered.
func FromEnv(ctx context.Context, service string, getenv func(string) string) (tp *sdktrace.TracerProvider, ok bool, err error) {
	if !Enabled(getenv) {
		return nil, false, nil
	}
	if e := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))); e != "" && e != "otlp" {
		return nil, false, fmt.Errorf("OTEL_TRACES_EXPORTER %q: tasuki exports traces over OTLP only (otlp, or none)", e)
	}
	protoVar := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	proto := getenv(protoVar)
	if proto == "" {
		protoVar = "OTEL_EXPORTER_OTLP_PROTOCOL"
		proto = getenv(protoVar)
	}
	var exp sdktrace.SpanExporter
	switch strings.ToLower(strings.TrimSpace(proto)) {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, false, fmt.Errorf("%s %q: expected http/protobuf or grpc", protoVar, proto)
	}
	if err != nil {
		return nil, false, fmt.Errorf("traces: OTLP exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		return nil, false, fmt.Errorf("traces: resource: %w", err)
	}
	if name := getenv("OTEL_SERVICE_NAME"); name != "" {
		res, _ = resource.Merge(res, resource.NewSchemaless(semconv.ServiceName(name)))
	}
	return NewProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), true, nil
}

// NewProvider returns an SDK tracer provider with IDGenerator and opts
// (tests pass an in-memory exporter).
func NewProvider(opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	return sdktrace.NewTracerProvider(append([]sdktrace.TracerProviderOption{sdktrace.WithIDGenerator(&IDGenerator{})}, opts...)...)
}

// RunSpanContext is the span context of a run's root span, the same on
// every server: derived from the run's id and creation time (two databases
// both have a run 1).
func RunSpanContext(run int64, created time.Time) trace.SpanContext {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(run))
	binary.BigEndian.PutUint64(b[8:], uint64(created.UnixNano()))
	sum := sha256.Sum256(append([]byte("tasuki run "), b[:]...))
	var tid trace.TraceID
	var sid trace.SpanID
	copy(tid[:], sum[:16])
	copy(sid[:], sum[16:24])
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
}

// Traceparent is sc in the W3C traceparent format, the TRACEPARENT a task
// reads to join its spans to the run's trace.
func Traceparent(sc trace.SpanContext) string {
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), carrier)
	return carrier.Get("traceparent")
}

type forcedKey struct{}

// WithIDs makes the next span started from ctx without a parent take the
// ids of sc (a run's root span, recorded at its end with RunSpanContext's
// ids); IDGenerator does it.
func WithIDs(ctx context.Context, sc trace.SpanContext) context.Context {
	return context.WithValue(ctx, forcedKey{}, sc)
}

// IDGenerator gives random ids, except the ids WithIDs put in the context.
type IDGenerator struct {
	mu  sync.Mutex
	rng *rand.ChaCha8
}

func (g *IDGenerator) random(b []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.rng == nil {
		var seed [32]byte
		for i := range 4 {
			binary.LittleEndian.PutUint64(seed[i*8:], rand.Uint64())
		}
		g.rng = rand.NewChaCha8(seed)
	}
	_, _ = g.rng.Read(b)
}

// NewIDs implements sdktrace.IDGenerator.
func (g *IDGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if sc, ok := ctx.Value(forcedKey{}).(trace.SpanContext); ok {
		return sc.TraceID(), sc.SpanID()
	}
	var tid trace.TraceID
	var sid trace.SpanID
	for !tid.IsValid() {
		g.random(tid[:])
	}
	for !sid.IsValid() {
		g.random(sid[:])
	}
	return tid, sid
}

// NewSpanID implements sdktrace.IDGenerator.
func (g *IDGenerator) NewSpanID(ctx context.Context, tid trace.TraceID) trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		g.random(sid[:])
	}
	return sid
}

// Describe says where traces go, for the line a process logs when it
// starts with tracing on.
func Describe(getenv func(string) string) (protocol, endpoint string) {
	protocol = getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if protocol == "" {
		protocol = "http/protobuf"
	}
	endpoint = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if endpoint == "" {
		endpoint = getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	if endpoint == "" {
		endpoint = "the OTLP default (localhost)"
	}
	return protocol, endpoint
}

// LogErrors sends the errors of the OpenTelemetry SDK (an export that
// failed) to log instead of Go's standard logger, so they are lines of the
// process's own log, in its format. The SDK's error handler is global to
// the process: there is one provider per process.
func LogErrors(log *slog.Logger) {
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("traces: export failed", "err", err)
	}))
}

// Sample returns sc (a run's root span context) with the sampling decision
// the provider's sampler makes for the run's root span, taken once when
// the run starts executing: the attempts and store transactions that name
// it as their parent follow it (parent-based samplers), so a run is kept
// or dropped whole. A trace-id ratio decides the same for the same run on
// every server. The probe span is never ended, so never exported.
func Sample(tr trace.Tracer, sc trace.SpanContext) trace.SpanContext {
	_, probe := tr.Start(WithIDs(context.Background(), sc), "sampling probe")
	return sc.WithTraceFlags(sc.TraceFlags().WithSampled(probe.SpanContext().IsSampled()))
}

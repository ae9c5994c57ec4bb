// Package tracing sets up OpenTelemetry tracing from the standard OTEL_*
// variables and names the traces of runs.
//
// A run is one trace whatever server executes it, across restarts and
// leader changes: its trace id and its root span id are derived from the
// run's id and creation time (RunSpanContext), so an attempt's span started
// by one server and the run's root span recorded at the end by another
// (with its real start and end times) join in the tracing backend. The
// root span is recorded once the run ends, and attempts name it as their
// parent meanwhile; IDGenerator lets the SDK give that span the derived
// ids.
//
// Tracing is off unless OTEL_TRACES_EXPORTER is "otlp" or an OTLP endpoint
// is set; then the provider is the no-op one and callers skip their spans
// entirely, so tracing off costs nothing.
package tracing

package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Worker is what a `tasuki worker` exports on --metrics-addr.
type Worker struct {
	reg         *prometheus.Registry
	slots       prometheus.Gauge
	running     prometheus.Gauge
	attempts    *prometheus.CounterVec   // outcome
	attemptTime *prometheus.HistogramVec // outcome
	calls       *prometheus.CounterVec   // call, result
}

// NewWorker registers a worker's metrics in a registry of its own.
func NewWorker() *Worker {
	m := &Worker{reg: prometheus.NewRegistry()}
	f := factory{m.reg}
	m.slots = prometheus.NewGauge(prometheus.GaugeOpts{Name: "tasuki_worker_slots", Help: "Attempts this worker runs at once at most (--slots)."})
	m.running = prometheus.NewGauge(prometheus.GaugeOpts{Name: "tasuki_worker_attempts_running", Help: "Attempts this worker holds: running, or ended and not yet reported."})
	m.reg.MustRegister(m.slots, m.running)
	m.attempts = f.counter("tasuki_worker_attempts_total", "Attempts this worker ran to their end, by outcome.", "outcome")
	m.attemptTime = f.histogram("tasuki_worker_attempt_duration_seconds", "Time from an attempt's lease to its end on this worker, by outcome.", durationBuckets, "outcome")
	m.calls = f.counter("tasuki_worker_server_calls_total", "Calls to the server, by call (lease, heartbeat, log, report) and result (ok, error).", "call", "result")
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Worker) Handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

// Registry is where the metrics are, for tests.
func (m *Worker) Registry() *prometheus.Registry { return m.reg }

// Slots records the worker's slot count.
func (m *Worker) Slots(n int) { m.slots.Set(float64(n)) }

// Running records the number of attempts held.
func (m *Worker) Running(n int) { m.running.Set(float64(n)) }

// AttemptEnded records an attempt that ended with outcome after ran.
func (m *Worker) AttemptEnded(outcome string, ran time.Duration) {
	m.attempts.WithLabelValues(outcome).Inc()
	m.attemptTime.WithLabelValues(outcome).Observe(ran.Seconds())
}

// Call records a call to the server; err nil is a success.
func (m *Worker) Call(call string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.calls.WithLabelValues(call, result).Inc()
}

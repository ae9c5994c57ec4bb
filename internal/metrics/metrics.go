package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Buckets of durations that run from a no-op map item to a day-long task.
var durationBuckets = []float64{.001, .005, .025, .1, .5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600}

// Buckets of short latencies: HTTP requests and store transactions.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}

// Server is what a tasuki server exports. Every label is bounded by the
// configuration (pipelines, pools, worker labels, API routes), never by
// runs, attempts, items or workers, so the number of series does not grow
// with the history.
type Server struct {
	reg *prometheus.Registry

	runsStarted  *prometheus.CounterVec   // pipeline
	runsEnded    *prometheus.CounterVec   // pipeline, state
	tasksEnded   *prometheus.CounterVec   // pipeline, state
	attempts     *prometheus.CounterVec   // pipeline, outcome
	attemptTime  *prometheus.HistogramVec // pipeline, outcome
	waitTime     *prometheus.HistogramVec // labels
	poolWait     *prometheus.HistogramVec // pool
	leases       *prometheus.CounterVec   // event: granted, expired, refused
	schedLag     prometheus.Observer
	storeTime    *prometheus.HistogramVec // op
	storeErrors  *prometheus.CounterVec   // op
	logBytes     prometheus.Counter
	httpRequests *prometheus.CounterVec   // route, code
	httpTime     *prometheus.HistogramVec // route
	deadlines    *prometheus.CounterVec   // pipeline, state
	slack        *prometheus.GaugeVec     // pipeline
	sloBreached  *prometheus.GaugeVec     // pipeline, objective
}

// NewServer registers the server's metrics, the Go runtime's and the
// process's in a registry of its own (never the global one: two servers in
// one test process keep their figures apart). gauges, when not nil, adds
// the figures read at scrape time (queue depth, slots, workers, leader).
func NewServer(gauges prometheus.Collector) *Server {
	m := &Server{reg: prometheus.NewRegistry()}
	f := factory{m.reg}
	m.runsStarted = f.counter("tasuki_runs_started_total", "Runs that started executing, by pipeline.", "pipeline")
	m.runsEnded = f.counter("tasuki_runs_ended_total", "Runs that ended, by pipeline and final state.", "pipeline", "state")
	m.tasksEnded = f.counter("tasuki_tasks_ended_total", "Tasks that reached a final state, by pipeline and state (map items are counted as attempts, not tasks).", "pipeline", "state")
	m.attempts = f.counter("tasuki_attempts_total", "Attempts (map items included) that ended, by pipeline and outcome; lost attempts are those whose worker vanished.", "pipeline", "outcome")
	m.attemptTime = f.histogram("tasuki_attempt_duration_seconds", "Time from an attempt's start on its executor to its report, by pipeline and outcome.", durationBuckets, "pipeline", "outcome")
	m.waitTime = f.histogram("tasuki_attempt_wait_seconds", "Time an attempt waited for an executor slot after it was ready, by the labels it asked for (\"\" for none).", durationBuckets, "labels")
	m.poolWait = f.histogram("tasuki_pool_wait_seconds", "Time a ready task (or a unit of a map's items) waited for a slot of its pool, or of the server's parallelism for the default pool.", durationBuckets, "pool")
	m.leases = f.counter("tasuki_lease_events_total", "Leases of attempts to remote workers (not the server's own executor): granted, expired (the worker stopped sending heartbeats: the attempt is lost) and refused reports (a lease no longer held).", "event")
	m.schedLag = f.histogram("tasuki_scheduler_lag_seconds", "How late a scheduled run was created after its planned time (the end of its interval).", durationBuckets).WithLabelValues()
	m.storeTime = f.histogram("tasuki_store_seconds", "Duration of store transactions that record what runs do, by operation.", latencyBuckets, "op")
	m.storeErrors = f.counter("tasuki_store_errors_total", "Store transactions that failed, by operation.", "op")
	m.logBytes = f.counter("tasuki_log_bytes_total", "Bytes of task logs written on this server.").WithLabelValues()
	m.httpRequests = f.counter("tasuki_http_requests_total", "HTTP requests answered, by route (the API's pattern, not the path) and status code.", "route", "code")
	m.httpTime = f.histogram("tasuki_http_request_duration_seconds", "Time to answer HTTP requests, by route; log follows and long polls end when the client or the server does.", latencyBuckets, "route")
	m.deadlines = f.counter("tasuki_deadline_states_total", "Runs whose deadline state changed, by pipeline and the new state (on_track, at_risk, missed, met).", "pipeline", "state")
	m.slack = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tasuki_deadline_slack_seconds", Help: "Deadline minus predicted finish of the pipeline's latest judged run (negative: predicted late)."}, []string{"pipeline"})
	m.sloBreached = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "tasuki_slo_breached", Help: "1 while a freshness objective has an open breach, 0 while it is met."}, []string{"pipeline", "objective"})
	m.reg.MustRegister(m.slack, m.sloBreached)
	// Series that alerts take a rate of exist from the start at 0, so the
	// first event is an increase and dashboards show 0, not "no data".
	for _, e := range []string{LeaseGranted, LeaseExpired, LeaseRefused} {
		m.leases.WithLabelValues(e)
	}
	m.storeErrors.WithLabelValues("apply")
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if gauges != nil {
		m.reg.MustRegister(gauges)
	}
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Server) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry is where the metrics are, for tests and for callers that add
// their own.
func (m *Server) Registry() *prometheus.Registry { return m.reg }

// RunStarted counts a run that began executing.
func (m *Server) RunStarted(pipeline string) { m.runsStarted.WithLabelValues(pipeline).Inc() }

// RunEnded counts a run that ended in state.
func (m *Server) RunEnded(pipeline, state string) { m.runsEnded.WithLabelValues(pipeline, state).Inc() }

// TaskEnded counts n tasks that reached their final state.
func (m *Server) TaskEnded(pipeline, state string, n int) {
	m.tasksEnded.WithLabelValues(pipeline, state).Add(float64(n))
}

// AttemptEnded records an attempt that ended with outcome after running
// for ran.
func (m *Server) AttemptEnded(pipeline, outcome string, ran time.Duration) {
	m.attempts.WithLabelValues(pipeline, outcome).Inc()
	m.attemptTime.WithLabelValues(pipeline, outcome).Observe(ran.Seconds())
}

// AttemptWaited records how long an attempt waited for an executor.
func (m *Server) AttemptWaited(labels string, waited time.Duration) {
	m.waitTime.WithLabelValues(labels).Observe(waited.Seconds())
}

// PoolWaited records how long a task waited for a slot of pool.
func (m *Server) PoolWaited(pool string, waited time.Duration) {
	m.poolWait.WithLabelValues(pool).Observe(waited.Seconds())
}

// Lease events.
const (
	LeaseGranted = "granted"
	LeaseExpired = "expired"
	LeaseRefused = "refused"
)

// LeaseEvent counts a lease event (LeaseGranted, LeaseExpired, LeaseRefused).
func (m *Server) LeaseEvent(event string, n int) { m.leases.WithLabelValues(event).Add(float64(n)) }

// SchedulerLag records how late a scheduled run was created.
func (m *Server) SchedulerLag(late time.Duration) { m.schedLag.Observe(max(late, 0).Seconds()) }

// StoreDone records a store transaction of op.
func (m *Server) StoreDone(op string, took time.Duration, err error) {
	m.storeTime.WithLabelValues(op).Observe(took.Seconds())
	if err != nil {
		m.storeErrors.WithLabelValues(op).Inc()
	}
}

// DeadlineJudged records the judgement of a run's deadline: its
// predicted slack (when predicted) and, when the state changed, the new
// state.
func (m *Server) DeadlineJudged(pipeline, state string, changed bool, slack time.Duration, predicted bool) {
	if predicted {
		m.slack.WithLabelValues(pipeline).Set(slack.Seconds())
	}
	if changed {
		m.deadlines.WithLabelValues(pipeline, state).Inc()
	}
}

// SLOs records which freshness objectives are breached now, by pipeline
// and objective; objectives not given are forgotten (no longer declared).
func (m *Server) SLOs(breached map[[2]string]bool) {
	m.sloBreached.Reset()
	for k, b := range breached {
		v := 0.0
		if b {
			v = 1
		}
		m.sloBreached.WithLabelValues(k[0], k[1]).Set(v)
	}
}

// LogBytes counts bytes of task logs written.
func (m *Server) LogBytes(n int) { m.logBytes.Add(float64(n)) }

// HTTPDone records a request answered on route with status after took.
func (m *Server) HTTPDone(route string, status int, took time.Duration) {
	m.httpRequests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.httpTime.WithLabelValues(route).Observe(took.Seconds())
}

// factory registers metrics in one registry.
type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}

package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Snapshot is the state the server's gauges show, read at each scrape
// rather than kept up to date on every change.
type Snapshot struct {
	// Leader is whether this server leads (always, on the embedded store).
	Leader bool
	// Waiting counts attempts ready but waiting for an executor slot, by
	// the labels they ask for ("" for none).
	Waiting map[string]int
	// PoolWaiting and PoolInUse count, by pool, the attempts waiting for
	// a slot of the pool and those holding one.
	PoolWaiting, PoolInUse map[string]int
	// Running counts attempts held by an executor, in process or remote.
	Running int
	// Workers counts remote workers heard from within a lease timeout, and
	// OldestHeartbeat is the longest any of them has been silent.
	Workers         int
	OldestHeartbeat time.Duration
}

var (
	descLeader  = prometheus.NewDesc("tasuki_leader", "1 when this server leads (schedules and runs), 0 when it follows.", nil, nil)
	descWaiting = prometheus.NewDesc("tasuki_attempts_waiting", "Attempts ready but waiting for an executor slot, by the labels they ask for.", []string{"labels"}, nil)
	descPoolW   = prometheus.NewDesc("tasuki_pool_waiting", "Attempts waiting for a slot of a pool.", []string{"pool"}, nil)
	descPoolU   = prometheus.NewDesc("tasuki_pool_in_use", "Slots of a pool in use.", []string{"pool"}, nil)
	descRunning = prometheus.NewDesc("tasuki_attempts_running", "Attempts held by an executor (the server's own slots or a remote worker).", nil, nil)
	descWorkers = prometheus.NewDesc("tasuki_workers", "Remote workers heard from within the lease timeout.", nil, nil)
	descOldest  = prometheus.NewDesc("tasuki_workers_oldest_heartbeat_seconds", "The longest time any remote worker holding leases has not sent a heartbeat.", nil, nil)
)

// gauges is a collector that reads a Snapshot at each scrape.
type gauges struct{ read func() Snapshot }

// NewGauges returns the collector of the server's gauges; read is called
// once per scrape and must be quick.
func NewGauges(read func() Snapshot) prometheus.Collector { return gauges{read} }

func (gauges) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLeader, descWaiting, descPoolW, descPoolU, descRunning, descWorkers, descOldest} {
		ch <- d
	}
}

func (g gauges) Collect(ch chan<- prometheus.Metric) {
	s := g.read()
	leader := 0.0
	if s.Leader {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(descLeader, prometheus.GaugeValue, leader)
	// The empty label set is always there, so a dashboard shows 0 rather
	// than no data.
	if _, ok := s.Waiting[""]; !ok {
		ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.GaugeValue, 0, "")
	}
	for labels, n := range s.Waiting {
		ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.GaugeValue, float64(n), labels)
	}
	for pool, n := range s.PoolWaiting {
		ch <- prometheus.MustNewConstMetric(descPoolW, prometheus.GaugeValue, float64(n), pool)
	}
	for pool, n := range s.PoolInUse {
		ch <- prometheus.MustNewConstMetric(descPoolU, prometheus.GaugeValue, float64(n), pool)
	}
	ch <- prometheus.MustNewConstMetric(descRunning, prometheus.GaugeValue, float64(s.Running))
	ch <- prometheus.MustNewConstMetric(descWorkers, prometheus.GaugeValue, float64(s.Workers))
	ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, s.OldestHeartbeat.Seconds())
}

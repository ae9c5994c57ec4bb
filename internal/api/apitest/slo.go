package apitest

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// SLOs is a fake api.SLOs in memory: the objectives a test sets, and the
// pipelines it was asked about.
type SLOs struct {
	mu    sync.Mutex
	list  []api.SLO
	asked []string
	fail  error
}

var _ api.SLOs = (*SLOs)(nil)

// NewSLOs returns a fake holding a small world tests can rely on, as of
// Monday 2026-03-09 10:20 in Tokyo:
//
//   - dataset:warehouse.sales_mart of pipeline sales-mart, fresh by 09:00
//     Asia/Tokyo on weekdays, breached since 09:00 (run 12 is running, its
//     wait wait-london sees no file), compliance 80 / 93.3 / 97.8, and an
//     earlier breach of 40 minutes (run 9 failed at task load);
//   - pipeline:orders-elt, a max age of 15m during 09:00-15:00 Asia/Tokyo,
//     met, compliance 100 over 7 days and nothing longer yet, no breaches.
func NewSLOs() *SLOs {
	tokyo := time.FixedZone("JST", 9*3600)
	at := func(day, h, m int) time.Time { return time.Date(2026, 3, day, h, m, 0, 0, tokyo).UTC() }
	pct := func(v float64) *float64 { return &v }
	ended := at(5, 9, 40)
	last := at(6, 8, 30)
	return &SLOs{list: []api.SLO{
		{Name: "pipeline:orders-elt", Pipeline: "orders-elt", Kind: "max_age", Definition: "max age 15m0s during 09:00-15:00 Asia/Tokyo, daily",
			MaxAge: "15m0s", During: "09:00-15:00", Days: []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}, Timezone: "Asia/Tokyo",
			Since: at(3, 12, 0), State: api.SLOMet, Window: api.SLOWindow{Start: at(9, 9, 0), End: at(9, 15, 0)}, LastUpdate: &last,
			Compliance: api.SLOCompliance{Days7: pct(100)}, Breaches: []api.SLOBreach{}},
		{Name: "dataset:warehouse.sales_mart", Pipeline: "sales-mart", Dataset: "warehouse.sales_mart", Kind: "fresh_by",
			Definition: "fresh by 09:00 Asia/Tokyo, weekdays", FreshBy: "09:00", Days: []string{"mon", "tue", "wed", "thu", "fri"}, Timezone: "Asia/Tokyo",
			Since: at(1, 0, 0), State: api.SLOBreached, Window: api.SLOWindow{Start: at(6, 9, 0), End: at(9, 9, 0)}, LastUpdate: &last,
			Compliance: api.SLOCompliance{Days7: pct(80), Days30: pct(93.33333333333333), Days90: pct(97.77777777777777)},
			Breaches: []api.SLOBreach{
				{Window: api.SLOWindow{Start: at(6, 9, 0), End: at(9, 9, 0)}, Start: at(9, 9, 0), Open: true, Seconds: 4800,
					RunID: 12, RunState: "running", Task: "wait-london", TaskState: "waiting", Message: "no file matches /data/london/*.csv",
					Cause: "run 12 is running: task wait-london is waiting: no file matches /data/london/*.csv"},
				{Window: api.SLOWindow{Start: at(4, 9, 0), End: at(5, 9, 0)}, Start: at(5, 9, 0), End: &ended, Seconds: 2400,
					RunID: 9, RunState: "failed", Task: "load", TaskState: "failed", Message: "exit status 1",
					Cause: "run 9 failed: task load failed: exit status 1"},
			}},
	}}
}

// Set replaces the objectives.
func (o *SLOs) Set(list []api.SLO) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.list = slices.Clone(list)
}

// Asked returns the pipeline filters ListSLOs was called with, in order.
func (o *SLOs) Asked() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.asked)
}

// Fail makes every later call return err (nil: succeed again).
func (o *SLOs) Fail(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.fail = err
}

// ListSLOs implements api.SLOs.
func (o *SLOs) ListSLOs(ctx context.Context, pipeline string) ([]api.SLO, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.asked = append(o.asked, pipeline)
	if o.fail != nil {
		return nil, o.fail
	}
	var out []api.SLO
	for _, s := range o.list {
		if pipeline == "" || s.Pipeline == pipeline {
			out = append(out, s)
		}
	}
	return out, nil
}

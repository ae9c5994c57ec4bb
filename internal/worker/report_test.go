package worker

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// batchClient is a worker client whose single reports block until
// released, and which counts both kinds of report.
type batchClient struct {
	api.Workers
	release  chan struct{}
	entered  chan struct{} // a single report is being sent
	mu       sync.Mutex
	singles  []string
	batches  [][]string
	refuse   string // a lease the batch route refuses as lost
	noBatch  bool   // answer 404 on the batch route
	complete map[string]api.CompleteRequest
}

func (c *batchClient) Complete(ctx context.Context, lease string, req api.CompleteRequest) error {
	if c.entered != nil {
		select {
		case c.entered <- struct{}{}:
		default:
		}
	}
	<-c.release
	c.mu.Lock()
	defer c.mu.Unlock()
	c.singles = append(c.singles, lease)
	c.complete[lease] = req
	return nil
}

func (c *batchClient) CompleteBatch(ctx context.Context, reports []api.LeaseReport) ([]api.ReportRefusal, error) {
	if c.noBatch {
		return nil, &api.Error{Status: http.StatusNotFound, Code: "not_found", Message: "no such route"}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	var refused []api.ReportRefusal
	for _, r := range reports {
		ids = append(ids, r.Lease)
		if r.Lease == c.refuse {
			refused = append(refused, api.ReportRefusal{Lease: r.Lease, Code: api.CodeLeaseLost, Message: "lost"})
			continue
		}
		c.complete[r.Lease] = r.CompleteRequest
	}
	c.batches = append(c.batches, ids)
	return refused, nil
}

// TestReporterBatches: reports that arrive while one is being sent go
// together in the next request; a refused one is told so; a server
// without the batch route gets them one by one.
func TestReporterBatches(t *testing.T) {
	for _, noBatch := range []bool{false, true} {
		t.Run(fmt.Sprintf("noBatch=%t", noBatch), func(t *testing.T) {
			c := &batchClient{release: make(chan struct{}), entered: make(chan struct{}, 1), complete: map[string]api.CompleteRequest{}, refuse: "1.t.5", noBatch: noBatch}
			s := &session{w: &Worker{Client: c}, log: slog.New(slog.DiscardHandler), retryMin: 1, retryMax: 1, m: noMetrics{}}
			s.rep = newReporter(s)
			queued := make(chan struct{}, 100)
			s.rep.queued = func() { queued <- struct{}{} }
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() { s.rep.run(context.Background(), stop); close(done) }()

			const n = 20
			errs := make([]error, n)
			var wg sync.WaitGroup
			report := func(i int) {
				a := &leased{lease: api.Lease{ID: fmt.Sprintf("1.t.%d", i)}}
				a.report = context.Background()
				errs[i] = s.rep.complete(a, api.CompleteRequest{Outcome: api.OutcomeSucceeded}, 100)
			}
			if noBatch {
				// Whatever goes together first is refused with 404;
				// from then on every report goes alone.
				close(c.release)
				for i := range n {
					wg.Go(func() { report(i) })
				}
				wg.Wait()
				close(stop)
				<-done
				if len(c.singles) != n || len(c.batches) != 0 {
					t.Errorf("without the batch route: %d singles, %d batches", len(c.singles), len(c.batches))
				}
				for i, err := range errs {
					if err != nil {
						t.Errorf("report %d: %v", i, err)
					}
				}
				return
			}
			// The first report is sent alone and blocks; the others
			// queue up behind it.
			wg.Go(func() { report(0) })
			<-queued
			<-c.entered
			for i := 1; i < n; i++ {
				wg.Go(func() { report(i) })
			}
			for i := 1; i < n; i++ {
				<-queued
			}
			close(c.release)
			wg.Wait()
			close(stop)
			<-done

			if len(c.complete) != n-1 {
				t.Errorf("%d reports taken, want %d", len(c.complete), n-1)
			}
			if len(c.singles) != 1 || len(c.batches) != 1 || len(c.batches[0]) != n-1 {
				t.Errorf("singles %v, batches %v: want the first alone and the other %d together", c.singles, c.batches, n-1)
			}
			for i, err := range errs {
				switch {
				case i == 5 && !isLeaseLost(err):
					t.Errorf("report 5 refused as lost came back as %v", err)
				case i != 5 && err != nil:
					t.Errorf("report %d: %v", i, err)
				}
			}
		})
	}
}

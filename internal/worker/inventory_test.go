package worker

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/api/apitest"
)

// TestWorkerReportsItsHost runs a worker with InventoryEvery against a
// real API handler: its host's report arrives at start, with the worker's
// token as the reporter, while it leases as usual; a server without the
// inventory (503) does not stop it.
func TestWorkerReportsItsHost(t *testing.T) {
	for _, withInventory := range []bool{true, false} {
		h := newHarness(t)
		inv := apitest.NewInventory()
		opts := []api.Option{api.WithLogger(slog.New(slog.NewTextHandler(h.slog, nil))), api.WithWorkers(h.fake, h.tokens)}
		if withInventory {
			opts = append(opts, api.WithInventory(inv))
		}
		srv := httptest.NewServer(api.NewHandler(apitest.NewSeeded(), nil, opts...))
		t.Cleanup(srv.Close)
		c, err := api.NewClient(srv.URL, srv.Client())
		if err != nil {
			t.Fatal(err)
		}
		h.client = c.WithToken(h.secret)
		w := h.worker()
		w.InventoryEvery, w.inventoryRoot = time.Hour, "../hostfacts/testdata/root-debian"
		h.start(t, w)
		if withInventory {
			h.wlog.await(t, "host inventory: reported")
			d, err := inv.Host(context.Background(), "dns1.example.internal")
			if err != nil || d.Report.OS.ID != "debian" || inv.By[0] != "w1" {
				t.Fatalf("the server has %+v (%v), reported by %v", d, err, inv.By)
			}
		} else {
			h.wlog.await(t, "host inventory: the report failed; trying again")
		}
		// The worker still leases and runs attempts.
		h.fake.Add(shellLease("1.a.1", "true"))
		if c := h.completion(t, "1.a.1"); c.Outcome != "succeeded" {
			t.Errorf("the attempt beside the reports: %+v", c)
		}
	}
}

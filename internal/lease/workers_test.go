package lease

import (
	"context"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/runner"
)

// TestWorkers checks what the broker lists of its executors: the
// in-process one with its setting and what it runs, remote workers with
// the labels and slots of their last lease request, their leases and last
// call, and a silent worker dropped after a lease timeout.
func TestWorkers(t *testing.T) {
	b, clk, _ := newBroker(t)
	if ws := b.Workers(); len(ws) != 0 {
		t.Fatalf("a new broker lists %+v", ws)
	}
	ctx, stop := context.WithCancel(context.Background())
	started, release := make(chan string), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.RunLocal(ctx, 2, []string{"local-disk"}, func(ctx context.Context, a *runner.Attempt) runner.AttemptResult {
			started <- a.TaskID
			<-release
			return runner.AttemptResult{Outcome: attempt.Succeeded}
		})
	}()
	defer func() { stop(); <-done }()
	// The local executor takes "one" (no labels needed).
	local := submit(context.Background(), b, offered(1, "one", 0))
	<-started
	// A gpu worker takes the gpu attempts; items of a map show their item.
	g1 := submit(context.Background(), b, offered(2, "train", 5, "gpu"))
	item := offered(2, "shard", 5, "gpu")
	item.Item, item.Items = 7, 1
	item.Log.TaskID = "shard.7"
	g2 := submit(context.Background(), b, item)
	clk.Add(time.Second)
	if got := lease(t, b, "w2:9", 3, "gpu"); len(got) != 2 {
		t.Fatalf("w2 got %+v", got)
	}
	clk.Add(time.Second)
	if got := lease(t, b, "w2:9", 1, "gpu"); len(got) != 0 { // asks again with its last slot free: slots 3
		t.Fatalf("w2 got %+v", got)
	}
	if _, err := b.Heartbeat(context.Background(), api.HeartbeatRequest{Worker: "w1:1"}); err != nil {
		t.Fatal(err)
	}

	ws := b.Workers()
	if len(ws) != 3 || ws[0].Name != "local" || !ws[0].Local || ws[1].Name != "w1:1" || ws[2].Name != "w2:9" {
		t.Fatalf("workers %+v", ws)
	}
	if l := ws[0]; l.Slots != 2 || l.InUse != 1 || len(l.Labels) != 1 || l.LastHeartbeat != nil || len(l.Running) != 1 || l.Running[0].Task != "one" || l.Running[0].Run != 1 {
		t.Errorf("local: %+v", l)
	}
	if w := ws[1]; w.Slots != 0 || w.InUse != 0 || w.Labels == nil || w.Running == nil || w.LastHeartbeat == nil {
		t.Errorf("a worker only heard by heartbeat: %+v", w)
	}
	w := ws[2]
	if w.Slots != 3 || w.InUse != 2 || len(w.Labels) != 1 || w.Labels[0] != "gpu" || !w.LastHeartbeat.Equal(clk.Now()) || len(w.Running) != 2 {
		t.Fatalf("w2: %+v", w)
	}
	for _, a := range w.Running {
		switch a.Task {
		case "train":
			if a.Item != nil || a.Attempt != 1 || a.Pipeline != "p" || !a.Since.Equal(clk.Now().Add(-time.Second)) {
				t.Errorf("train: %+v", a)
			}
		case "shard":
			if a.Item == nil || *a.Item != 7 {
				t.Errorf("shard: %+v", a)
			}
		default:
			t.Errorf("w2 runs %+v", a)
		}
	}

	// Silent past a lease timeout: w1 goes; w2's leases expire with it.
	clk.Add(b.LeaseTimeout + time.Second)
	b.expire()
	<-g1
	<-g2
	if ws := b.Workers(); len(ws) != 1 || ws[0].Name != "local" {
		t.Errorf("after a lease timeout: %+v", ws)
	}
	close(release)
	<-local
}

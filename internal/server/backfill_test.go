package server

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// TestBackfillReopensWhenARunIsRetried checks that a failed backfill runs
// again when one of its runs is retried, and settles on the new outcome.
func TestBackfillReopensWhenARunIsRetried(t *testing.T) {
	tokyo := mustLoad(t, "Asia/Tokyo")
	marker := filepath.Join(t.TempDir(), "fixed")
	dir := pipelineDir(t, map[string]string{"p.yaml": "name: p\nschedule: {cron: '0 9 * * *'}\ntasks: [{id: a, run: 'test -e " + marker + "'}]\n"})
	ts := newTestServer(t, t.TempDir(), dir, time.Date(2026, 11, 20, 8, 0, 0, 0, tokyo))
	svc := &service{s: ts.Server}
	ctx := context.Background()
	b, err := svc.CreateBackfill(ctx, api.BackfillRequest{Pipeline: "p", From: time.Date(2026, 11, 1, 9, 0, 0, 0, tokyo), To: time.Date(2026, 11, 3, 9, 0, 0, 0, tokyo), Parallel: 2}, "test")
	if err != nil || b.Runs != 2 {
		t.Fatalf("backfill %+v %v", b, err)
	}
	settle := func(want string) {
		t.Helper()
		for range 100 {
			ts.pass(ctx)
			ts.wg.Wait()
			ts.pass(ctx)
			if got, _ := ts.store.Backfill(ctx, b.ID); got.State == want {
				return
			}
		}
		got, _ := ts.store.Backfill(ctx, b.ID)
		t.Fatalf("backfill is %s, want %s", got.State, want)
	}
	settle(store.BackfillFailed)
	os.WriteFile(marker, nil, 0o644)
	runs, _ := ts.store.ListRuns(ctx, store.RunFilter{BackfillID: b.ID})
	for _, r := range runs {
		if _, err := svc.RetryFailed(ctx, r.ID, "test"); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := ts.store.Backfill(ctx, b.ID); got.State != store.BackfillRunning {
		t.Fatalf("after a retry the backfill is %s, want running", got.State)
	}
	settle(store.BackfillSucceeded)
	for _, r := range runs {
		if got, _ := ts.store.Run(ctx, r.ID); got.State != engine.RunSucceeded {
			t.Fatalf("run %d is %s", r.ID, got.State)
		}
	}
}

package sqlite

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// TestApplyDiskFull: the store's file system fills up (a small tmpfs).
// Apply fails whole with an error that says so and that Transient counts,
// nothing of the batch is recorded, reads go on, and once space is freed
// the same batch is written.
func TestApplyDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(dir, "tasuki.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r, err := db.CreateRun(ctx, store.NewRun{Run: store.Run{Pipeline: "p", Trigger: "manual",
		Run: engine.Run{State: engine.RunQueued, Remaining: 1}},
		Tasks: []store.TaskRow{{Index: 0, TaskID: "a", Task: engine.Task{State: engine.TaskPending}}}})
	if err != nil {
		t.Fatal(err)
	}
	// Fill the file system.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	// A batch larger than what is left: many records, long messages.
	big := store.Change{RunID: r.ID, Transition: engine.Transition{
		Run: &engine.Run{State: engine.RunRunning, Remaining: 1, StartedAt: time.Now()}}}
	for range 200 {
		big.Transition.Records = append(big.Transition.Records, engine.Record{Time: time.Now(), Kind: engine.EvRunStarted, Task: -1,
			Message: strings.Repeat("x", 4000)})
	}
	err = db.Apply(ctx, big)
	if err == nil {
		t.Fatal("Apply on a full disk succeeded")
	}
	t.Logf("Apply on a full disk: %v", err)
	if !store.Transient(err) || !strings.Contains(err.Error(), "full") {
		t.Errorf("Apply on a full disk = %v; want a transient error saying the disk is full", err)
	}
	// Nothing half recorded, and reads work.
	got, err := db.Run(ctx, r.ID)
	if err != nil || got.State != engine.RunQueued {
		t.Fatalf("Run after the failed Apply = %s, %v; want it queued, as before", got.State, err)
	}
	evs, err := db.Events(ctx, r.ID, 0, 0)
	if err != nil || len(evs) != 1 {
		t.Fatalf("Events after the failed Apply = %d, %v; want only run_created", len(evs), err)
	}
	// Space comes back: the same batch is written.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := db.Apply(ctx, big); err != nil {
		t.Fatalf("Apply once space is freed: %v", err)
	}
	evs, err = db.Events(ctx, r.ID, 0, 0)
	if err != nil || len(evs) != 201 {
		t.Fatalf("Events = %d, %v; want 201", len(evs), err)
	}
}

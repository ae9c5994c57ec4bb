package worker

// A worker reports its host's facts to the server it leases from (the
// host inventory: package agent), at start and every InventoryEvery,
// beside its attempts. A report that fails is tried again later by the
// reporter and never stops the worker; a server that refuses the token
// stops the reports (the lease loop stops the worker then anyway).

import (
	"context"
	"log/slog"

	"github.com/tasuki-dev/tasuki/internal/agent"
)

// startInventory starts reporting the host's facts, when InventoryEvery
// asks for it and the Client can send reports, and returns what stops it
// (and waits for it).
func (w *Worker) startInventory(ctx context.Context, log *slog.Logger) func() {
	if w.InventoryEvery <= 0 {
		return func() {}
	}
	c, ok := w.Client.(agent.Client)
	if !ok {
		log.Warn("host inventory: this worker's client cannot send reports; none are sent")
		return func() {}
	}
	r := &agent.Reporter{Client: c, Root: w.inventoryRoot, Every: w.InventoryEvery, Logger: log}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.Run(ctx) // Run logs why it ends
	}()
	return func() { cancel(); <-done }
}

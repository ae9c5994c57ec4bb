// Package runner executes runs of pipelines on this machine: it creates a run
// in the store, drives the engine with the outcomes of real processes, writes
// every transition through to the store before acting on it, and resumes runs
// that a crash interrupted.
//
// One coordinator goroutine owns the run's in-memory state and the engine;
// task attempts run in their own goroutines and report back on a channel. All
// transitions that arrive while the store is busy are written in one
// transaction (group commit), which keeps the store off the critical path of
// short tasks.
package runner

// Package predict says when a run will finish and which tasks decide it, so
// a run can be called at risk of missing its deadline before it misses it,
// rather than after.
//
// The prediction is the longest remaining path through the run's graph
// (the critical path), each task counting what it still needs: a task not
// started its whole estimate, a running task what remains of it, a wait
// still waiting at least its poke interval, a finished task nothing. A
// task's estimate is a high percentile of its recent successful durations,
// or the duration its pipeline file declares while it has too little
// history (Model.Estimate).
//
// The package is pure: it reads no clock and no store. Callers pass the
// graph, each task's state and estimate, and now.
package predict

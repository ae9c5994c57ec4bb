// Package engine is the heart of tasuki: a deterministic state machine that,
// given a run's state and one event (task succeeded, failed, timed out, lost,
// preempted, retry due, cancel requested, ...), returns the new state of what
// changed, the timeline records that explain it and the actions the caller must
// take. It does no I/O and reads no clock, so it can be tested exhaustively and
// a run's history replayed.
//
// The engine reads state through the small State interface and only touches
// the tasks an event reaches (the task itself, its dependents, and for a final
// failure its descendants), so applying an event costs in proportion to the
// edges it touches, not to the size of the run. The same engine runs over an
// in-memory run (Mem) or over rows read inside a store transaction.
package engine

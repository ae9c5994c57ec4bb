// Package filewait is the file wait condition ("wait.file"): a task that
// waits until files matching a path or glob have arrived, optionally with a
// minimum size, a companion marker file (such as _SUCCESS) beside them, and
// a quiet period during which none of them changed.
//
// A file that exists is not yet a file that arrived: the writer may still be
// appending to it, and a task that starts then reads half the data without
// noticing. The marker (written last by the producer) and stable_for (the
// matched files' sizes and modification times unchanged for a while, kept
// between checks in the observation's memo) are the two ways to take a file
// only once it is whole.
//
// A wait holds no execution slot between checks (see attempt.Condition), so
// each check must be cheap: one glob and one stat per match, never reading
// a file's contents, and a glob that matches more than a bound fails the
// wait rather than being stat-ed in full at every poke.
package filewait

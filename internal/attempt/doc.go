// Package attempt is the one seam between deciding to run a task attempt and
// running it. The runner describes each attempt once, as a Spec (its kind,
// a kind-specific body, environment, working directory, timeout); the same
// Spec is given to the server's in-process executor and sent, inside a
// lease, to remote workers. Whoever runs it looks the kind up in a Registry
// and calls its Run with a Host (what that machine provides: its own
// environment, files for the needs' results, where the output goes); the
// kind answers with a Result whose Outcome is the one vocabulary of how an
// attempt ended, shared by the store, the API and the engine (Event).
//
// A new kind of work (a wait, an HTTP call, a query) implements Kind once
// and is registered; it then runs in-process and on remote workers without
// further wiring.
package attempt

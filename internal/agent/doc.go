// Package agent reports the facts of the host it runs on to a tasuki
// server: at start, then periodically, each report collected afresh
// (internal/hostfacts) and sent with a worker token (POST /worker/hosts).
// `tasuki agent` runs only this, for hosts that run no tasks; `tasuki
// worker` runs it beside its attempts.
//
// A report that fails (the server unreachable, overloaded, or older than
// the route) is tried again later, sooner than the next period, and
// never stops the process it runs in; only a server that refuses the
// token ends Run, since trying again cannot help.
package agent

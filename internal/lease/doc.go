// Package lease hands task attempts to workers and keeps track of them: the
// server side of the worker protocol. Each attempt the runner starts becomes
// an offer; a worker (remote over HTTP, or the server's own in-process
// executor) takes it as a lease, keeps it alive with heartbeats and reports
// how it ended. A lease not heard of for LeaseTimeout is lost: the runner
// records the attempt as lost and retries it elsewhere, and a late report
// from the vanished worker is refused.
package lease

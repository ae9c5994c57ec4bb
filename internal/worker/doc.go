// Package worker runs task attempts that a tasuki server leases to it over
// the worker protocol (api.Workers): `tasuki worker` on any number of
// machines, spot instances included.
//
// A Worker long-polls the server for as many attempts as it has free slots,
// runs each as a process group (internal/shell), streams its log back in
// batches, keeps its leases alive with heartbeats and reports how each
// attempt ended. It is built to lose as little as possible when things go
// wrong:
//
//   - The server is unreachable: attempts keep running, logs are buffered
//     and every call is retried. If the outage outlasts the lease timeout the
//     server declares the attempts lost and runs them again elsewhere; its
//     answers then say so (heartbeat "unknown", 409 lease_lost) and the
//     worker ends them without reporting.
//   - The server cancels a run: the heartbeat says so, the process group is
//     ended and the attempt reported as cancelled.
//   - The machine is going away (SIGTERM, a spot preemption notice): Run's
//     drain channel stops leasing at once, running attempts get a grace
//     period to finish normally, and those still running after it are
//     ended and, once their whole process group is gone, reported as
//     preempted, which the server does not charge to their retry budget.
//     One that finishes by itself while it is being ended is reported as
//     what it was (attempt.ProcessResult), so its work is not done twice.
package worker

// Package metrics defines what tasuki servers and workers export to
// Prometheus: the names, help texts, labels and buckets in one place, each
// in a registry of its own (never the global one), so a dashboard, the
// alert rules and a test can be checked against the one list.
//
// The packages that do the work do not import Prometheus: the server and
// the worker call the small methods here from the hooks those packages
// offer (the runner's Observe, the lease broker's, the store wrapper, the
// API's request observer). Labels are bounded by the configuration —
// pipelines, pools, worker labels, API routes — never by runs, attempts,
// map items or worker names, so /metrics does not grow with the history.
package metrics

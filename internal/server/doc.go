// Package server is tasuki as a long-running service: it loads pipeline files
// from a directory and reloads them when they change, starts runs on their
// schedules (exactly once per interval, catching up after downtime), executes
// them with a shared pool of executors, and answers the JSON API that the CLI
// and the web UI use.
package server

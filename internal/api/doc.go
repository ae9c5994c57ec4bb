// Package api is tasuki's JSON HTTP API under /api/v1: the handlers, the
// OpenAPI document that describes them, the JSON shapes, and a Go client
// that the CLI uses. The handlers only translate HTTP to calls of Service,
// which the server implements over the store, the scheduler and the
// executors; so the API can be tested against any Service.
package api

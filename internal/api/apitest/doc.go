// Package apitest provides a fake api.Service for the tests of what sits on
// top of the Service: the HTTP handler, the Go client and the CLI. The real
// Service lives in the server, over the store and the scheduler; these
// tests are about translating HTTP and printing, so a fake that keeps a few
// runs in memory, records every call and can be told to fail makes them
// fast and precise. It is only imported by tests.
package apitest

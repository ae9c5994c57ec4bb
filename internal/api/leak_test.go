package api_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: every
// handler, log stream and client request a test starts must have ended by
// the time the tests finish.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

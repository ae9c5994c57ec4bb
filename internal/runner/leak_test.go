package runner

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: every
// coordinator, attempt and dispatcher goroutine a test starts must have
// ended by the time the tests finish.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

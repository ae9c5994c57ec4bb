package httptask_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no goroutine of a request outlives the tests: each
// attempt and each check closes its own transport.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

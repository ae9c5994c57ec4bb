package server_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/tasuki-dev/tasuki/internal/cli"
)

// TestMain lets the test binary act as the tasuki command (TASUKI_TEST_AS_CLI=1:
// process_test.go starts servers that way), and otherwise runs the tests and
// fails them when a goroutine outlives them: every scheduler, registry,
// runner and HTTP goroutine a test's server starts must have ended by the
// time the tests finish.
func TestMain(m *testing.M) {
	if os.Getenv("TASUKI_TEST_AS_CLI") == "1" {
		os.Exit(cli.Main(os.Args[1:], cli.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, "test"))
	}
	goleak.VerifyTestMain(m)
}

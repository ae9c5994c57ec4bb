package kinds

import (
	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/filewait"
	"github.com/tasuki-dev/tasuki/internal/httptask"
)

// Builtin returns a registry of the kinds and conditions that need nothing
// but the machine they run on: what a remote worker runs, and what the
// server and 'tasuki run' start from.
func Builtin() *attempt.Registry {
	r, err := attempt.Builtin().With(
		httptask.Task{}, httptask.Wait{},
		filewait.Wait{},
	)
	if err != nil {
		panic("kinds: " + err.Error()) // names are fixed here: a clash is a programming error
	}
	return r
}

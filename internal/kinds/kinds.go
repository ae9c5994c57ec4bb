package kinds

import (
	"net/http"

	"github.com/tasuki-dev/tasuki/internal/attempt"
	"github.com/tasuki-dev/tasuki/internal/datawait"
	"github.com/tasuki-dev/tasuki/internal/filewait"
	"github.com/tasuki-dev/tasuki/internal/httptask"
	"github.com/tasuki-dev/tasuki/internal/inventory"
	"github.com/tasuki-dev/tasuki/internal/sqltask"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Builtin returns a registry of the kinds and conditions that need nothing
// but the machine they run on: what a remote worker runs, and what the
// server and 'tasuki run' start from.
func Builtin() *attempt.Registry { return BuiltinWith(nil) }

// BuiltinWith is Builtin with the HTTP tasks sending through hc (nil: a
// client per attempt). A worker passes one client for all its attempts,
// so a map of requests to one service reuses connections.
func BuiltinWith(hc *http.Client) *attempt.Registry {
	r, err := attempt.Builtin().With(
		httptask.Task{Client: hc}, httptask.Wait{},
		sqltask.Task{}, sqltask.Wait{},
		filewait.Wait{},
	)
	if err != nil {
		panic("kinds: " + err.Error()) // names are fixed here: a clash is a programming error
	}
	return r
}

// WithStore returns the builtin registry with the waits that read the
// store: for another pipeline's run of the same interval, and for a
// dataset's update. The server and 'tasuki run' check waits with it.
// Inventory tasks are there without an inventory: their attempts fail
// saying they run on a server, which replaces the kind with one over its
// inventory (inventory.Task).
// With a pool, SQL waits keep their connections between checks (a wait
// checked every few seconds does not connect each time); the caller
// closes it. SQL tasks always connect per attempt, so what a task leaves
// on its connection (an ATTACH, a temporary table) never reaches another.
func WithStore(st store.Store, sqlWaits *sqltask.Pool) *attempt.Registry {
	r, err := Builtin().With(datawait.Pipeline{Store: st}, datawait.Dataset{Store: st}, sqltask.Wait{Pool: sqlWaits}, inventory.Task{})
	if err != nil {
		panic("kinds: " + err.Error())
	}
	return r
}

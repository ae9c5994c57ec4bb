// Command tasuki runs pipelines: one binary for validating pipeline files,
// running them on this machine on an embedded store, serving them (schedules,
// the JSON API) and working for a server as a remote worker. Everything lives in
// internal/cli; this package only calls cli.Main.
package main

import (
	"os"

	"github.com/tasuki-dev/tasuki/internal/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, version))
}

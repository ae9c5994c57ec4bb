// Package cli is tasuki's command line: the commands, their flags, and how
// they print. cmd/tasuki only calls Main.
package cli

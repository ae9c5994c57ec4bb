package cli

import (
	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/logs"
)

// followLog prints a log and what is appended to it until the attempt's
// writer closes (the attempt ended) or the command is interrupted.
func (a *app) followLog(cmd *cobra.Command, l *local, key logs.Key) error {
	_, err := l.logs.Follow(cmd.Context(), key, 0, a.io.Out)
	if err != nil && cmd.Context().Err() != nil {
		return nil // Ctrl-C ends following; that is not an error
	}
	return err
}

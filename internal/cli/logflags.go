package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// logFlags are --log-format and --log-level of the long-running commands
// (server, worker), which log what they do with log/slog.
type logFlags struct {
	format, level string
}

func (l *logFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&l.format, "log-format", envOr("TASUKI_LOG_FORMAT", "text"), "format of this process's own log on stderr: text (readable, key=value) or json (one object per line); $TASUKI_LOG_FORMAT")
	f.StringVar(&l.level, "log-level", envOr("TASUKI_LOG_LEVEL", "info"), "least level logged: debug, info, warn or error; SIGHUP switches between it and debug while running; $TASUKI_LOG_LEVEL")
}

// envOr is the variable's value, or def when it is unset or empty.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// durationsAsText writes durations as "1.5s" rather than nanoseconds in
// JSON, as the text format does.
func durationsAsText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

// logger returns the process's logger and the level it follows, which
// SIGHUP changes (watchLevel).
func (l *logFlags) logger(w io.Writer) (*slog.Logger, *slog.LevelVar, error) {
	lv := new(slog.LevelVar)
	if err := lv.UnmarshalText([]byte(l.level)); err != nil {
		return nil, nil, usageErr("--log-level %q: expected debug, info, warn or error", l.level)
	}
	opts := &slog.HandlerOptions{Level: lv, ReplaceAttr: durationsAsText}
	switch strings.ToLower(l.format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), lv, nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), lv, nil
	}
	return nil, nil, usageErr("--log-format %q: expected text or json", l.format)
}

// watchLevel switches the level between the one the process started with
// and debug on each SIGHUP, until ctx ends: an operator looking into a
// live problem gets the debug lines (every map item's, every lease's)
// without a restart, and turns them off the same way.
func watchLevel(ctx context.Context, lv *slog.LevelVar, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		base := lv.Level()
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			next := slog.LevelDebug
			if lv.Level() == slog.LevelDebug {
				next = base
			}
			if next == slog.LevelDebug && base == slog.LevelDebug {
				next = slog.LevelInfo
			}
			lv.Set(next)
			// Said at the level that always shows.
			log.Log(ctx, max(slog.LevelWarn, next), "log level changed (SIGHUP)", "level", fmt.Sprint(next))
		}
	}()
}

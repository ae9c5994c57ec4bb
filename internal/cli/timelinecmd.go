package cli

// tasuki timeline RUN: the whole story of a run, for the review after an
// incident, as Markdown to paste into a document or as the API's JSON.

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/spec"
	"github.com/tasuki-dev/tasuki/internal/store"
	"github.com/tasuki-dev/tasuki/internal/timeline"
)

func (a *app) timelineCmd() *cobra.Command {
	var format, tz string
	cmd := &cobra.Command{
		Use:   "timeline RUN_ID",
		Short: "Tell the whole story of a run, for a review: Markdown or JSON",
		Long: `Print everything that happened in a run, in order, for the review that
follows an incident: a title with the pipeline, run, interval, outcome and
deadline; a summary (duration, attempts, retries, what failed, operator
actions, alerts); every record of the run's timeline with its time since the
run started and since the record before (each wait's checks and what arrived,
retries and their causes, deadline predictions, alerts, repairs, operator
actions with who made them); every attempt with its worker, outcome and
duration; and the last 20 lines of the log of each failed attempt.

The Markdown is meant to be pasted into a review document. It lists every
record of a run with up to 1000 of them, and stays readable for larger runs:
stretches of routine records (tasks becoming ready, starting, succeeding) are
counted on one line, and past 1000 rows only what matters is listed.
--format json prints the API's JSON document instead, with every record.

Times are in --tz, by default the time zone of the pipeline's schedule, else UTC.`,
		Example: `  tasuki timeline 42 > review-run-42.md
  tasuki timeline 42 --tz Asia/Tokyo
  tasuki timeline 42 --format json | jq '.events[] | select(.kind == "wait_poked") | .text'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseRunID(args[0])
			if err != nil {
				return err
			}
			if err := checkTimelineFormat(format); err != nil {
				return err
			}
			loc, err := timelineZone(tz)
			if err != nil {
				return err
			}
			l, err := a.openLocal(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			if loc == nil {
				loc = localZone(cmd.Context(), l.store, id)
			}
			tl, err := timeline.Load(cmd.Context(), l.store, id, timeline.Options{Logs: l.logs, Location: loc})
			if err != nil {
				return runLookupErr(id, err)
			}
			if format == api.TimelineJSON {
				return tl.WriteJSON(cmd.Context(), a.io.Out)
			}
			return tl.WriteMarkdown(cmd.Context(), a.io.Out)
		},
	}
	cmd.Flags().StringVar(&format, "format", api.TimelineMarkdown, "markdown or json")
	cmd.Flags().StringVar(&tz, "tz", "", "time zone of the Markdown's times, such as UTC or Asia/Tokyo (default: the pipeline's schedule's, else UTC)")
	return cmd
}

// remoteTimeline is 'tasuki timeline RUN' against a server.
func (a *app) remoteTimeline(*cobra.Command) remoteRunE {
	return func(cmd *cobra.Command, args []string, c *api.Client) error {
		id, err := parseRunID(args[0])
		if err != nil {
			return err
		}
		format, err := flagString(cmd, "format")
		if err != nil {
			return err
		}
		if err := checkTimelineFormat(format); err != nil {
			return err
		}
		tz, err := flagString(cmd, "tz")
		if err != nil {
			return err
		}
		if _, err := timelineZone(tz); err != nil {
			return err
		}
		if tz == "" && format == api.TimelineMarkdown {
			// The pipeline's zone, as the server names it; UTC if that
			// cannot be found out (the export says which zone it uses).
			if run, err := c.Run(cmd.Context(), id); err == nil {
				if p, err := c.Pipeline(cmd.Context(), run.Pipeline); err == nil {
					tz = p.Timezone
				}
			}
		}
		return remoteErr(c, c.Timeline(cmd.Context(), id, format, tz, a.io.Out))
	}
}

func checkTimelineFormat(format string) error {
	if format != api.TimelineMarkdown && format != api.TimelineJSON {
		return usageErr("--format %q: expected markdown or json", format)
	}
	return nil
}

// timelineZone reads --tz; nil (and no error) when it is not given.
func timelineZone(name string) (*time.Location, error) {
	if name == "" {
		return nil, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, usageErr("--tz %q: expected a time zone name such as UTC or Asia/Tokyo", name)
	}
	return loc, nil
}

// localZone is the time zone of a local run's pipeline schedule, else UTC.
func localZone(ctx context.Context, st store.Store, id int64) *time.Location {
	run, err := st.Run(ctx, id)
	if err != nil {
		return time.UTC
	}
	pv, err := st.PipelineVersion(ctx, run.VersionID)
	if err != nil {
		return time.UTC
	}
	p, err := spec.Parse(pv.File, pv.Source)
	if err != nil || p.Schedule == nil || p.Schedule.Timezone == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(p.Schedule.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

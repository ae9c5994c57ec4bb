package cli

// `tasuki slo`: the freshness objectives of a server's pipelines, how each
// stands, its compliance and its last breaches with their causes.

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/api"
)

func (a *app) sloCmd() *cobra.Command {
	var pipeline string
	cmd := &cobra.Command{
		Use:   "slo",
		Short: "List the freshness objectives: state, compliance over 7/30/90 days, last breaches and their causes",
		Long: `List every freshness objective of the server's pipelines: a pipeline's slo (a
run of it succeeded in time) and the objectives of datasets its tasks produce
(datasets: [{name, slo}]). For each:

  STATE      met, breached or pending, for the current window: breached while
             a missed deadline's data has not come (fresh_by) or while the data
             is too old (max_age); pending while the deadline is ahead and
             nothing came yet, or before a max_age period begins.
  7D 30D 90D compliance: the share of the windows that closed in the period
             and were met (fresh_by), or of the judged time the data was fresh
             (max_age); "-" when none closed.

Below, the last breaches, newest first: when each began (in the objective's
time zone), how long it lasted (so far, while open), and its cause: the run
that should have made the data fresh, the task that failed or is still
running, what a stuck wait saw.

With -o json, prints the API's JSON array of objectives.`,
		Example: `  tasuki slo
  tasuki slo --pipeline sales-mart
  tasuki slo -o json | jq '.[] | select(.state == "breached") | .breaches[0].cause'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if pipeline != "" {
				if err := api.CheckDatasetName(pipeline); err != nil {
					return usageErr("--pipeline: %v", strings.Replace(err.Error(), "dataset name", "pipeline name", 1))
				}
			}
			fetch := func(c *api.Client, ctx context.Context) ([]api.SLO, error) { return c.ListSLOs(ctx, pipeline) }
			return listRemote(a, cmd, fetch, func(list []api.SLO) { printSLOs(a.io.Out, list) })
		},
	}
	cmd.Flags().StringVar(&pipeline, "pipeline", "", "only the objectives of this pipeline")
	a.addOutputFlag(cmd)
	return cmd
}

// printSLOs prints the objectives, then their last breaches.
func printSLOs(w io.Writer, list []api.SLO) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no freshness objectives: give a pipeline slo, or its datasets one (see docs/pipeline-reference.md)")
		return
	}
	t := newTable(w, "OBJECTIVE", "PIPELINE", "STATE", "7D", "30D", "90D", "LAST UPDATE", "RULE")
	for _, o := range list {
		last := "never"
		if o.LastUpdate != nil {
			last = inZone(*o.LastUpdate, o.Timezone)
		}
		t.row(o.Name, o.Pipeline, o.State, percent(o.Compliance.Days7), percent(o.Compliance.Days30), percent(o.Compliance.Days90), last, o.Definition)
	}
	t.flush()
	var breached bool
	for _, o := range list {
		breached = breached || len(o.Breaches) > 0
	}
	if !breached {
		return
	}
	fmt.Fprintln(w)
	t = newTable(w, "OBJECTIVE", "BREACHED AT", "FOR", "RUN", "CAUSE")
	for _, o := range list {
		for _, b := range o.Breaches {
			length := (time.Duration(b.Seconds) * time.Second).Round(time.Second).String()
			if b.Open {
				length += " (open)"
			}
			run := "-"
			if b.RunID != 0 {
				run = fmt.Sprint(b.RunID)
			}
			t.row(o.Name, inZone(b.Start, o.Timezone), length, run, b.Cause)
		}
	}
	t.flush()
}

// percent renders a compliance percentage, "-" for none.
func percent(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", *p)
}

// inZone renders t in the IANA zone named (local time if it does not
// load): an objective's times read best in its own zone.
func inZone(t time.Time, zone string) string {
	loc, err := time.LoadLocation(zone)
	if err != nil {
		loc = time.Local
	}
	return t.In(loc).Format("2006-01-02 15:04 MST")
}

package cli

// tasuki alerts RUN: the notifications about a run and how each was
// delivered.

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/api"
)

func (a *app) alertsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alerts RUN_ID",
		Short: "List the notifications about a run and how each was delivered",
		Long: `List every notification about a run (at_risk, missed, failed, recovered,
repaired, succeeded, slo_breach), one line per destination, oldest first: its
state (pending, sent, or failed: given up), the tries so far, when it was
sent or when it is tried next, and why the last try failed. Destinations show
without what may be secret: a URL as its host ("slack hooks.slack.com/…").

One alert per incident: an event that repeats an open incident (a retried run
failing again, a second at-risk prediction) is not sent, so it is not listed.
Each try is also on the run's timeline ('tasuki timeline', alert_sent and
alert_failed).

With -o json, prints the API's JSON array of alerts.`,
		Example: `  tasuki alerts 42
  tasuki alerts 42 -o json | jq '.[] | select(.state != "sent")'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			id, err := parseRunID(args[0])
			if err != nil {
				return err
			}
			l, err := a.openLocal(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			ds, err := l.store.RunDeliveries(cmd.Context(), id)
			if err != nil {
				return runLookupErr(id, err)
			}
			list := make([]api.Alert, len(ds))
			for i, d := range ds {
				list[i] = api.NewAlert(d)
			}
			return a.printAlerts(list)
		},
	}
	a.addOutputFlag(cmd)
	return cmd
}

// remoteAlerts is 'tasuki alerts RUN' against a server.
func (a *app) remoteAlerts(*cobra.Command) remoteRunE {
	return func(cmd *cobra.Command, args []string, c *api.Client) error {
		if err := a.checkOutput(); err != nil {
			return err
		}
		id, err := parseRunID(args[0])
		if err != nil {
			return err
		}
		list, err := c.RunAlerts(cmd.Context(), id)
		if err != nil {
			return remoteErr(c, err)
		}
		return a.printAlerts(list)
	}
}

func (a *app) printAlerts(list []api.Alert) error {
	if a.output == "json" {
		if list == nil {
			list = []api.Alert{}
		}
		return writeJSON(a.io.Out, list)
	}
	printAlerts(a.io.Out, list)
	return nil
}

// printAlerts prints one line per alert; a run without any says so.
func printAlerts(w io.Writer, list []api.Alert) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no alerts")
		return
	}
	t := newTable(w, "ID", "EVENT", "DESTINATION", "STATE", "TRIES", "CREATED", "SENT/NEXT", "ERROR")
	for _, al := range list {
		when := "-"
		switch {
		case al.FinishedAt != nil:
			when = alertTime(*al.FinishedAt)
		case al.NextAt != nil:
			when = "next " + alertTime(*al.NextAt)
		}
		errText := "-"
		if al.LastError != "" {
			errText = al.LastError
		}
		t.row(fmt.Sprint(al.ID), al.Event, al.Destination, al.State, fmt.Sprint(al.Attempts), alertTime(al.CreatedAt), when, errText)
	}
	t.flush()
}

// alertTime shows a delivery's times to the second: tries are seconds
// apart (10s, 20s, ...), which minutes would hide.
func alertTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") }

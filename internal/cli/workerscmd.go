package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/api"
)

func (a *app) workersCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "workers",
		Short: "List the executors a server knows and what each runs",
		Long: `List the executors of a server: its own in-process executor ("local") and
the remote workers it has heard from within a lease timeout, with their
labels, slots in use, last heartbeat and the attempts they run (RUN/TASK#ATTEMPT,
[ITEM] for a map's items, and for how long). Only the leader hands out work:
a follower forwards the request to it. A token confined to a namespace sees
only its namespace's attempts.`,
		Example: `  tasuki workers
  tasuki workers -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			list, err := c.Workers(cmd.Context())
			if err != nil {
				return remoteErr(c, err)
			}
			if a.output == "json" {
				if list == nil {
					list = []api.WorkerInfo{}
				}
				return writeJSON(a.io.Out, list)
			}
			now := time.Now()
			t := newTable(a.io.Out, "WORKER", "LABELS", "IN USE", "LAST HEARTBEAT", "RUNNING")
			for _, w := range list {
				labels := strings.Join(w.Labels, ",")
				if labels == "" {
					labels = "-"
				}
				beat := "in-process"
				if w.LastHeartbeat != nil {
					beat = now.Sub(*w.LastHeartbeat).Round(time.Second).String() + " ago"
				}
				slots := strconv.Itoa(w.Slots)
				if w.Slots == 0 && !w.Local {
					slots = "?"
				}
				var running []string
				for _, r := range w.Running {
					s := fmt.Sprintf("%d/%s#%d", r.Run, r.Task, r.Attempt)
					if r.Item != nil {
						s += fmt.Sprintf("[%d]", *r.Item)
					}
					running = append(running, s+" ("+now.Sub(r.Since).Round(time.Second).String()+")")
				}
				if len(running) == 0 {
					running = []string{"-"}
				}
				t.row(w.Name, labels, fmt.Sprintf("%d/%s", w.InUse, slots), beat, strings.Join(running, " "))
			}
			t.flush()
			return nil
		},
	}
	a.addOutputFlag(cmd)
	return cmd
}

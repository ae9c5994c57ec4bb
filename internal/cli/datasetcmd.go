package cli

// `tasuki datasets`, `tasuki dataset show|update` and `tasuki lineage`:
// the datasets a server's pipelines produce and consume, their updates,
// and the graph they make.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/api"
)

func (a *app) datasetsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "datasets",
		Short: "List the server's datasets: who produces and consumes each, and its last update",
		Long: `List every dataset the server knows: those its pipelines declare (a task's
produces, consumes or wait.dataset, a schedule's datasets) and those that only
have updates recorded from outside ('tasuki dataset update'). For each: the
tasks that produce it (pipeline/task), what consumes it ("(schedule)" for a
pipeline scheduled on it, "(wait)" for a task waiting for it), and its last
update with the run that made it (or who recorded it).

With -o json, prints the API's JSON array of datasets.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listRemote(a, cmd, (*api.Client).ListDatasets, func(list []api.Dataset) {
				t := newTable(a.io.Out, "NAME", "PRODUCERS", "CONSUMERS", "LAST UPDATE", "RUN", "BY")
				for _, ds := range list {
					last, run, by := "-", "-", "-"
					if u := ds.LastUpdate; u != nil {
						last, run, by = localTime(u.At), updateRun(*u), updateBy(*u)
					}
					t.row(ds.Name, refList(ds.Producers), refList(ds.Consumers), last, run, by)
				}
				t.flush()
			})
		},
	}
	a.addOutputFlag(cmd)
	return cmd
}

func (a *app) datasetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dataset",
		Short: "Show a dataset and its updates, or record an update made outside tasuki",
		Long: `A dataset is a name pipelines agree on (raw.orders, warehouse.sales_mart):
a task that declares it in produces records an update each time it succeeds,
and the pipelines scheduled on it (schedule.datasets) or waiting for it
(wait.dataset) start or go on. 'tasuki dataset update' records an update made
outside tasuki, with the same effect. 'tasuki datasets' lists them all;
'tasuki lineage' shows the graph they make with the pipelines.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(a.datasetShowCmd(), a.datasetUpdateCmd())
	return cmd
}

func (a *app) datasetShowCmd() *cobra.Command {
	var (
		cursor string
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a dataset, who produces and consumes it, and its updates (newest first)",
		Long: `Show the dataset NAME: the tasks that produce it, what consumes it, and its
latest updates, newest first, each with when, the run and task that made it
(or who recorded it), the run's interval and the update's metadata.

With -o json, prints the API's JSON: the dataset with "updates" and, when more
follow, "next" (pass it to --cursor).`,
		Example: `  tasuki dataset show raw.orders
  tasuki dataset show raw.orders --limit 100 -o json | jq '.updates[].metadata'`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeDatasets,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			if err := api.CheckDatasetName(args[0]); err != nil {
				return usageErr("%v", err)
			}
			if limit < 0 {
				return usageErr("--limit %d: expected a positive number", limit)
			}
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			ds, err := c.Dataset(cmd.Context(), args[0], cursor, limit)
			if err != nil {
				return remoteErr(c, err)
			}
			if a.output == "json" {
				if ds.Updates == nil {
					ds.Updates = []api.DatasetUpdate{}
				}
				return writeJSON(a.io.Out, ds)
			}
			printDataset(a.io.Out, ds)
			if ds.Next != "" {
				fmt.Fprintf(a.io.Err, "more: tasuki dataset show %s --cursor %s\n", ds.Name, ds.Next)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cursor, "cursor", "", "continue the updates where the previous page ended")
	cmd.Flags().IntVar(&limit, "limit", 20, "most updates to show")
	a.addOutputFlag(cmd)
	return cmd
}

// printDataset prints a dataset and its page of updates.
func printDataset(w io.Writer, ds api.Dataset) {
	fmt.Fprintf(w, "dataset %s\n", ds.Name)
	fmt.Fprintf(w, "produced by: %s\n", refList(ds.Producers))
	fmt.Fprintf(w, "consumed by: %s\n", refList(ds.Consumers))
	if len(ds.Updates) == 0 {
		if ds.LastUpdate == nil {
			fmt.Fprintln(w, "no updates yet")
		}
		return
	}
	fmt.Fprintln(w)
	t := newTable(w, "UPDATE", "AT", "RUN", "BY", "INTERVAL", "METADATA")
	for _, u := range ds.Updates {
		interval := "-"
		if u.IntervalStart != nil && u.IntervalEnd != nil {
			interval = u.IntervalStart.Local().Format(time.RFC3339) + " to " + u.IntervalEnd.Local().Format(time.RFC3339)
		}
		meta := "-"
		if len(u.Metadata) > 0 {
			meta = string(u.Metadata)
		}
		t.row(strconv.FormatInt(u.ID, 10), u.At.Local().Format(time.RFC3339), updateRun(u), updateBy(u), interval, meta)
	}
	t.flush()
}

// refList says who declares a dataset: "a/extract, b (schedule)".
func refList(refs []api.DatasetRef) string {
	if len(refs) == 0 {
		return "-"
	}
	parts := make([]string, len(refs))
	for i, r := range refs {
		s := r.Pipeline
		if r.Task != "" {
			s += "/" + r.Task
		}
		if r.Via == api.ViaSchedule || r.Via == api.ViaWait {
			s += " (" + r.Via + ")"
		}
		parts[i] = s
	}
	return strings.Join(parts, ", ")
}

// updateRun is the run that made an update, "-" for one recorded from
// outside.
func updateRun(u api.DatasetUpdate) string {
	if u.RunID == 0 {
		return "-"
	}
	return strconv.FormatInt(u.RunID, 10)
}

// updateBy is what made an update: the producing pipeline/task, or who
// recorded it.
func updateBy(u api.DatasetUpdate) string {
	switch {
	case u.Pipeline != "":
		return u.Pipeline + "/" + u.Task
	case u.Actor != "":
		return u.Actor
	}
	return "-"
}

func (a *app) datasetUpdateCmd() *cobra.Command {
	var meta string
	cmd := &cobra.Command{
		Use:   "update NAME [--meta JSON]",
		Short: "Record an update of a dataset made outside tasuki",
		Long: `Record that the dataset NAME was updated now, by something outside tasuki (a
load job, a file drop, a vendor feed), with optional metadata: a JSON object of
at most 64 KiB. It starts the pipelines scheduled on the dataset and satisfies
the tasks waiting for it, as a producing task's success does. The update names
the token that recorded it; it needs an operator token of no namespace.`,
		Example: `  tasuki dataset update raw.orders
  tasuki dataset update raw.orders --meta '{"rows": 1204, "path": "s3://bucket/2026-11-21/"}'`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeDatasets,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			if err := api.CheckDatasetName(args[0]); err != nil {
				return usageErr("%v", err)
			}
			var metadata json.RawMessage
			if meta != "" {
				var obj map[string]any
				if err := json.Unmarshal([]byte(meta), &obj); err != nil || obj == nil {
					return usageErr("--meta %q: expected a JSON object such as '{\"rows\": 42}'", truncate(meta, 60))
				}
				metadata = json.RawMessage(meta)
			}
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			u, err := c.RecordDatasetUpdate(cmd.Context(), args[0], metadata)
			if err != nil {
				return remoteErr(c, err)
			}
			if a.output == "json" {
				return writeJSON(a.io.Out, u)
			}
			fmt.Fprintf(a.io.Out, "dataset %s: update %d recorded\n", u.Dataset, u.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&meta, "meta", "", "metadata of the update: a JSON object")
	a.addOutputFlag(cmd)
	return cmd
}

func (a *app) lineageCmd() *cobra.Command {
	var (
		upstream, downstream bool
		depth                int
	)
	cmd := &cobra.Command{
		Use:   "lineage NAME [--upstream|--downstream]",
		Short: "Show the lineage of a dataset or pipeline: what it is made from and what is made from it",
		Long: `Show the graph of datasets and pipelines around NAME, a dataset or, when no
dataset has that name, a pipeline, as an indented tree: upstream (what it is
made from: '<-') and downstream (what is made from it: '->'), or one of them
with --upstream or --downstream. Each line says how the two are linked: a
task's produces or consumes, a pipeline's schedule on a dataset, or a task's
wait for a dataset or another pipeline. A node met again is marked
"(see above)" and not repeated.

The walk stops --depth links from NAME (at most 50); the output says when the
graph goes on. With -o json, prints the API's graph: nodes and edges.`,
		Example: `  tasuki lineage warehouse.sales_mart --upstream
  tasuki lineage raw.orders --downstream --depth 3
  tasuki lineage nightly-elt -o json | jq '.edges[]'`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeDatasets,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			if err := api.CheckDatasetName(args[0]); err != nil {
				return usageErr("%v", err)
			}
			if depth < 0 || depth > api.MaxLineageDepth {
				return usageErr("--depth %d: expected 1 to %d", depth, api.MaxLineageDepth)
			}
			q := api.LineageQuery{Direction: api.LineageBoth, Depth: depth}
			switch {
			case upstream && !downstream:
				q.Direction = api.LineageUpstream
			case downstream && !upstream:
				q.Direction = api.LineageDownstream
			}
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			l, err := c.Lineage(cmd.Context(), args[0], q)
			if err != nil {
				return remoteErr(c, err)
			}
			if a.output == "json" {
				return writeJSON(a.io.Out, l)
			}
			printLineage(a.io.Out, l)
			return nil
		},
	}
	cmd.Flags().BoolVar(&upstream, "upstream", false, "only what NAME is made from")
	cmd.Flags().BoolVar(&downstream, "downstream", false, "only what is made from NAME")
	cmd.Flags().IntVar(&depth, "depth", 0, fmt.Sprintf("most links from NAME (default %d, at most %d)", api.DefaultLineageDepth, api.MaxLineageDepth))
	a.addOutputFlag(cmd)
	return cmd
}

// printLineage prints a lineage graph as indented trees from its root:
// upstream, then downstream, as the answer's direction says.
func printLineage(w io.Writer, l api.Lineage) {
	fmt.Fprintln(w, l.Root)
	both := l.Direction != api.LineageUpstream && l.Direction != api.LineageDownstream
	if l.Direction != api.LineageDownstream {
		if both {
			fmt.Fprintln(w, "upstream:")
		}
		printTree(w, l, true)
	}
	if l.Direction != api.LineageUpstream {
		if both {
			fmt.Fprintln(w, "downstream:")
		}
		printTree(w, l, false)
	}
	if l.Truncated {
		fmt.Fprintf(w, "(the graph goes on beyond depth %d or %d nodes; --depth shows more)\n", l.Depth, api.MaxLineageNodes)
	}
}

// lineageLink is one line of a tree: a node and every edge that links it
// to its parent.
type lineageLink struct {
	node  api.LineageNode
	edges []api.LineageEdge
}

// printTree prints the tree of l's edges from its root, following them
// against their direction when up.
func printTree(w io.Writer, l api.Lineage, up bool) {
	children := map[api.LineageNode][]lineageLink{}
	for _, e := range l.Edges {
		parent, child := e.From, e.To
		if up {
			parent, child = e.To, e.From
		}
		links := children[parent]
		i := 0
		for i < len(links) && links[i].node != child {
			i++
		}
		if i == len(links) {
			links = append(links, lineageLink{node: child})
		}
		links[i].edges = append(links[i].edges, e)
		children[parent] = links
	}
	arrow := "->"
	if up {
		arrow = "<-"
	}
	if len(children[l.Root]) == 0 {
		fmt.Fprintln(w, "  (nothing)")
		return
	}
	shown := map[api.LineageNode]bool{l.Root: true}
	var walk func(n api.LineageNode, indent string)
	walk = func(n api.LineageNode, indent string) {
		for _, link := range children[n] {
			line := fmt.Sprintf("%s%s %s  (%s)", indent, arrow, link.node, edgeLabels(link.edges))
			if shown[link.node] {
				fmt.Fprintln(w, line+" (see above)")
				continue
			}
			fmt.Fprintln(w, line)
			shown[link.node] = true
			walk(link.node, indent+"   ")
		}
	}
	walk(l.Root, "  ")
}

// edgeLabels says how two nodes are linked: "consumes: task transform;
// schedule".
func edgeLabels(edges []api.LineageEdge) string {
	parts := make([]string, len(edges))
	for i, e := range edges {
		parts[i] = e.Via
		if e.Task != "" {
			parts[i] += ": task " + e.Task
		}
	}
	return strings.Join(parts, "; ")
}

// completeDatasets completes a dataset name from the server.
func (a *app) completeDatasets(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := a.remote(cmd)
	if err != nil || c == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completeTimeout)
	defer cancel()
	list, err := c.ListDatasets(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	out := make([]cobra.Completion, 0, len(list))
	for _, ds := range list {
		out = append(out, cobra.CompletionWithDesc(ds.Name, "produced by "+refList(ds.Producers)))
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

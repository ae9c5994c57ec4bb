package cli

// `tasuki cache ls|rm|purge`: the content cache of a server, where tasks
// with `cache:` keep their results and output files by key.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// Cache keys as the CLI shows and takes them.
const (
	// shortKey is how many hex digits of a key a table shows.
	shortKey = 12
	// minKeyPrefix is the shortest start of a key 'cache rm' takes: a
	// shorter one too easily stands for a key one did not mean.
	minKeyPrefix = 8
)

func (a *app) cacheCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "List and delete the entries of a server's content cache",
		Long: `A task with cache: in its pipeline file keeps its result and output files in
the server's content cache, under a key that hashes everything the result
depends on (its definition, parameters, environment, input files, the results
of its needs, the item of a map). A later attempt with the same key, in any
run of any pipeline, is not run: it shows as cached, with the run it came
from, and its result and files are reused.

'cache ls' lists the entries, 'cache rm' deletes some by key, 'cache purge'
those of a pipeline or task (or all). The server evicts expired entries
(cache.ttl, else its cache_ttl) and, past its cache_max_bytes, the least
recently used. Listing needs a viewer token, deleting an operator token; both
of no namespace, since an entry is reused by any pipeline.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(a.cacheListCmd(), a.cacheRmCmd(), a.cachePurgeCmd())
	return cmd
}

func (a *app) cacheListCmd() *cobra.Command {
	var q api.CacheQuery
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the cache's entries, by key, with the size of the whole cache",
		Long: `List the entries of the content cache in key order: the start of each key,
the pipeline, task and map item that computed it, its run, its size (result
and output files), when it was last used and when it expires. The last line
gives the entries and bytes of the whole cache, whatever the filter.

With -o json, prints the API's page: the entries with full keys, "next" when
more follow (pass it to --after) and "stats".`,
		Example: `  tasuki cache ls
  tasuki cache ls --pipeline train --task fit
  tasuki cache ls -o json | jq -r '.items[].key'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			if err := api.CheckCacheFilter(q.Pipeline, q.Task); err != nil {
				return usageErr("%s", cacheFlagMessage(err))
			}
			if q.Limit < 1 || q.Limit > store.MaxCacheLimit {
				return usageErr("--limit %d: expected 1 to %d", q.Limit, store.MaxCacheLimit)
			}
			q.After = strings.ToLower(q.After)
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			page, err := c.ListCache(cmd.Context(), q)
			if err != nil {
				return remoteErr(c, err)
			}
			if a.output == "json" {
				if page.Items == nil {
					page.Items = []api.CacheEntry{}
				}
				return writeJSON(a.io.Out, page)
			}
			printCache(a.io.Out, page)
			if page.Next != "" {
				fmt.Fprintf(a.io.Err, "more: tasuki cache ls%s --after %s\n", filterArgs(q), page.Next)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&q.Pipeline, "pipeline", "", "only the entries this pipeline computed")
	f.StringVar(&q.Task, "task", "", "with --pipeline: only those of this task")
	f.StringVar(&q.After, "after", "", "continue after this key (the 'more:' line of the previous page)")
	f.IntVar(&q.Limit, "limit", store.DefaultCacheLimit, "most entries to show")
	a.addOutputFlag(cmd)
	return cmd
}

// printCache prints a page of entries as a table, then the cache's size.
func printCache(w io.Writer, page api.CachePage) {
	if len(page.Items) > 0 {
		t := newTable(w, "KEY", "PIPELINE", "TASK", "ITEM", "RUN", "SIZE", "USED", "EXPIRES")
		for _, e := range page.Items {
			item, expires := "-", "never"
			if e.Item != nil {
				item = strconv.Itoa(*e.Item)
			}
			if e.ExpiresAt != nil {
				expires = localTime(*e.ExpiresAt)
			}
			t.row(e.Key[:min(shortKey, len(e.Key))], e.Pipeline, e.Task, item, strconv.FormatInt(e.RunID, 10),
				sizeText(e.Size), localTime(e.UsedAt), expires)
		}
		t.flush()
	} else {
		fmt.Fprintln(w, "no entries")
	}
	fmt.Fprintf(w, "cache: %d entries, %s\n", page.Stats.Entries, sizeText(page.Stats.Bytes))
}

// sizeText is a size for people: bytes, or one decimal in the largest
// binary unit below it.
func sizeText(n int64) string {
	if n < 1<<10 {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, unit := float64(n), ""
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		if v < 1<<10 {
			break
		}
		v, unit = v/(1<<10), u
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + unit
}

// filterArgs repeats a listing's filter flags, for the next page's command.
func filterArgs(q api.CacheQuery) string {
	var b strings.Builder
	if q.Pipeline != "" {
		b.WriteString(" --pipeline " + q.Pipeline)
	}
	if q.Task != "" {
		b.WriteString(" --task " + q.Task)
	}
	if q.Limit != store.DefaultCacheLimit {
		b.WriteString(" --limit " + strconv.Itoa(q.Limit))
	}
	return b.String()
}

// cacheFlagMessage says a refused filter in the words of the flags.
func cacheFlagMessage(err error) string {
	msg := api.AsError(err).Message
	return strings.NewReplacer("name its pipeline too", "give --pipeline too").Replace(msg)
}

func (a *app) cacheRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "rm KEY...",
		Aliases: []string{"delete"},
		Short:   "Delete cache entries by key",
		Long: `Delete the entries with these keys: the next attempt with one of them runs
and stores its result again. A KEY is a full key (64 hex digits, as
'cache ls -o json' prints it) or its start, at least 8 digits long, as
'cache ls' shows it, when exactly one entry's key starts so.

Every KEY is tried; the command fails (exit 2) when one of them named no
entry. Needs an operator token of no namespace.`,
		Example: `  tasuki cache rm 3f2a9c01d4e7
  tasuki cache ls --pipeline train -o json | jq -r '.items[].key' | xargs tasuki cache rm`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			keys := make([]string, len(args))
			for i, arg := range args {
				keys[i] = strings.ToLower(arg)
				if len(keys[i]) < minKeyPrefix || len(keys[i]) > 64 || strings.Trim(keys[i], "0123456789abcdef") != "" {
					return usageErr("cache rm %s: expected a cache key (64 hex digits) or its first %d or more", truncate(arg, 70), minKeyPrefix)
				}
			}
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			var failed error
			for _, k := range keys {
				full, err := resolveCacheKey(cmd.Context(), c, k)
				if err == nil {
					err = c.DeleteCacheEntry(cmd.Context(), full)
				}
				if err != nil {
					err = remoteErr(c, err)
					fmt.Fprintf(a.io.Err, "tasuki: %v\n", err)
					if failed == nil {
						failed = err
					}
					continue
				}
				fmt.Fprintf(a.io.Out, "deleted %s\n", full)
			}
			if failed != nil {
				var ee *exitError
				code := exitFailed
				if errors.As(failed, &ee) {
					code = ee.code
				}
				return &exitError{code: code}
			}
			return nil
		},
	}
}

// resolveCacheKey returns the key a full key or the start of one stands
// for: the one entry whose key starts with it. The listing from the
// prefix on holds those keys first, so two entries tell.
func resolveCacheKey(ctx context.Context, c *api.Client, prefix string) (string, error) {
	if len(prefix) == 64 {
		return prefix, nil
	}
	page, err := c.ListCache(ctx, api.CacheQuery{After: prefix, Limit: 2})
	if err != nil {
		return "", err
	}
	var found []string
	for _, e := range page.Items {
		if strings.HasPrefix(e.Key, prefix) {
			found = append(found, e.Key)
		}
	}
	switch len(found) {
	case 0:
		return "", api.NotFound("no cache entry with a key starting %s", prefix)
	case 1:
		return found[0], nil
	}
	return "", &exitError{code: exitUsage, err: fmt.Errorf("%s starts several keys (%s, %s, ...): give more digits", prefix, found[0][:shortKey+4], found[1][:shortKey+4])}
}

func (a *app) cachePurgeCmd() *cobra.Command {
	var req api.CachePurgeRequest
	cmd := &cobra.Command{
		Use:   "purge (--pipeline P [--task T] | --all)",
		Short: "Delete the cache entries of a pipeline, of one task of it, or all",
		Long: `Delete every entry a pipeline computed (--pipeline), those of one of its tasks
(--pipeline and --task), or every entry of the cache (--all). Without a filter
the command refuses: --all says it on purpose. Prints how many entries were
deleted. Needs an operator token of no namespace.`,
		Example: `  tasuki cache purge --pipeline train --task fit
  tasuki cache purge --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			if err := api.CheckCacheFilter(req.Pipeline, req.Task); err != nil {
				return usageErr("%s", cacheFlagMessage(err))
			}
			switch {
			case req.All && req.Pipeline != "":
				return usageErr("give --all or --pipeline, not both")
			case !req.All && req.Pipeline == "":
				return usageErr("cache purge without --pipeline deletes every entry: say so with --all")
			}
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			n, err := c.PurgeCache(cmd.Context(), req)
			if err != nil {
				return remoteErr(c, err)
			}
			if a.output == "json" {
				return writeJSON(a.io.Out, api.CacheDeleted{Deleted: n})
			}
			what := "the cache"
			switch {
			case req.Task != "":
				what = "task " + req.Task + " of pipeline " + req.Pipeline
			case req.Pipeline != "":
				what = "pipeline " + req.Pipeline
			}
			fmt.Fprintf(a.io.Out, "purged %s: %d %s deleted\n", what, n, plural(n, "entry", "entries"))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Pipeline, "pipeline", "", "delete the entries this pipeline computed")
	f.StringVar(&req.Task, "task", "", "with --pipeline: only those of this task")
	f.BoolVar(&req.All, "all", false, "delete every entry of the cache")
	a.addOutputFlag(cmd)
	return cmd
}

// plural picks the word for n.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

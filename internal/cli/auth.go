package cli

// The API credential the CLI sends to a server, and `tasuki audit`.

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// adminTokenFile is where a new server leaves its first admin token in its
// data directory (server.AdminTokenFile).
const adminTokenFile = "admin.token"

// addTokenFlag registers the persistent --token flag. Commands with a
// token of their own (tasuki worker) shadow it with a local flag.
func (a *app) addTokenFlag(root *cobra.Command) {
	root.PersistentFlags().String("token", "",
		"API token to send to the server (default $"+tokenEnv+", else the admin.token of the data directory)")
}

// apiToken is the API token to send to the server at serverURL: --token,
// else $TASUKI_TOKEN, else the admin.token a server left in the data
// directory (--home, $TASUKI_HOME, ./.tasuki), so a user on the server's
// machine needs nothing more; "" when there is none (the server then
// answers 401, saying where tokens come from). The admin token of this
// machine's data directory goes only to a server on this machine
// (loopback): never, unasked, to another host.
func (a *app) apiToken(cmd *cobra.Command, serverURL string) (string, error) {
	if f := cmd.Flag("token"); f != nil && f.Changed {
		return strings.TrimSpace(f.Value.String()), nil
	}
	if t := strings.TrimSpace(os.Getenv(tokenEnv)); t != "" {
		return t, nil
	}
	if !loopbackURL(serverURL) {
		return "", nil
	}
	path := filepath.Join(a.homeDir(), adminTokenFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the admin token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// parseExpiry reads --expires: a duration in days (30d), hours or minutes
// (12h, 90m), or an RFC 3339 time.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return time.Time{}, fmt.Errorf("%q: expected a positive number of days, like 30d", s)
		}
		return now.AddDate(0, 0, n), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%q: expected a positive duration", s)
		}
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: expected a duration (30d, 12h) or an RFC 3339 time", s)
	}
	return t, nil
}

func (a *app) auditCmd() *cobra.Command {
	var limit int
	var cursor string
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show the server's audit log: who changed what, from where, newest first",
		Long: `Show the audit log of a server, newest first: every request that asked to
change something (trigger, cancel, retry, rerun, mark, pause, backfill, token
changes), with when, who (the name of the credential), from where (the
client's address), what (the route and the ids it named) and the answer's
status, refused requests included. Needs an admin token.

A page holds --limit entries; when there are more, the last line on stderr
gives the --cursor of the next page.`,
		Example: `  tasuki audit
  tasuki audit --limit 200 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			page, err := c.ListAudit(cmd.Context(), cursor, limit)
			if err != nil {
				return remoteErr(c, err)
			}
			if a.output == "json" {
				return writeJSON(a.io.Out, nonNilAudit(page.Items))
			}
			t := newTable(a.io.Out, "TIME", "ACTOR", "FROM", "ACTION", "TARGET", "STATUS")
			for _, e := range page.Items {
				actor := e.Actor
				if actor == "" {
					actor = "-"
				}
				_, route, _ := strings.Cut(e.Route, " ")
				t.row(e.At.Local().Format("2006-01-02 15:04:05"), actor, e.Remote, e.Method+" "+strings.TrimPrefix(route, api.Prefix),
					e.Target, strconv.Itoa(e.Status))
			}
			t.flush()
			if page.Next != "" {
				fmt.Fprintf(a.io.Err, "more: tasuki audit --cursor %s\n", page.Next)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 50, "entries per page (at most 1000)")
	cmd.Flags().StringVar(&cursor, "cursor", "", "start after the page that gave this cursor")
	a.addOutputFlag(cmd)
	return cmd
}

func nonNilAudit(es []api.AuditEntry) []api.AuditEntry {
	if es == nil {
		return []api.AuditEntry{}
	}
	return es
}

// loopbackURL reports whether u names a server on this machine: localhost
// or a loopback address.
func loopbackURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	host := p.Hostname()
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

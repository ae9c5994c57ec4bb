package cli

// `tasuki agent`: report this host's facts to a server, and nothing else
// (package agent).

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/agent"
)

func (a *app) agentCmd() *cobra.Command {
	var (
		token, tokenFile, root string
		servers                []string
		every                  time.Duration
		once                   bool
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Report this host's facts to a tasuki server, at start and periodically",
		Long: `Report this host's facts to a tasuki server's host inventory: operating
system, kernel, resources, installed packages with their source packages,
services, listening sockets and container runtimes (what 'tasuki hosts
collect' prints), at start and then every --every, give or take a tenth so
hosts started together spread their reports. It runs no tasks: for hosts that
run no worker ('tasuki worker' reports its host itself).

A report that fails (the server unreachable or busy) is tried again after
30 seconds, then twice as long each time, never later than --every; the
agent keeps running. A server that refuses the token (401, 403) stops it
with an error: trying again cannot help.

The agent authenticates with an agent token, which may send host reports
and nothing else (create one on the server's host with 'tasuki token create
NAME --kind agent'), or a worker token: --token, --token-file, or
$TASUKI_TOKEN. Several servers of one cluster may be given (--server
repeated, or separated by commas): a report goes to the next when one does
not answer. Run it as root to see the process behind every
listening socket. --root reads a host image instead of / (what is read only
from the live host, disk sizes and the state of services, is left out).
--once reports once and exits: for cron, or a first check.

SIGTERM or Ctrl-C stops it.`,
		Example: `  TASUKI_TOKEN=... tasuki agent --server https://tasuki.internal:8080
  tasuki agent --server http://10.0.0.5:8080 --token-file /etc/tasuki/agent.token --every 30m
  tasuki agent --server http://10.0.0.5:8080 --once`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			clients, err := a.serverList(cmd, servers)
			if err != nil {
				return err
			}
			secret, err := workerToken(cmd, token, tokenFile)
			if err != nil {
				return err
			}
			if every < time.Minute {
				return usageErr("--every %s: expected 1m or more", every)
			}
			if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
				return usageErr("--root %s: not a directory", root)
			}
			logger := slog.New(slog.NewTextHandler(a.io.Err, nil))
			c, where, err := connect(clients, secret, logger)
			if err != nil {
				return err
			}
			r := &agent.Reporter{Client: c, Root: root, Every: every, Logger: logger}
			if once {
				out, err := r.Once(cmd.Context())
				if err != nil {
					return remoteErrAt(where, err)
				}
				what := fmt.Sprintf("%d changes", out.Changes)
				if out.First {
					what = "its first report"
				}
				fmt.Fprintf(a.io.Out, "reported %s to %s: %s\n", out.Host, c.BaseURL(), what)
				return nil
			}
			logger.Info("agent started", "server", where, "every", every, "root", root)
			if err := r.Run(cmd.Context()); err != nil {
				return remoteErrAt(where, err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	addServerListFlag(cmd, &servers, "agent")
	f.StringVar(&token, "token", "", "agent (or worker) token (default $"+tokenEnv+")")
	f.StringVar(&tokenFile, "token-file", "", "read the agent (or worker) token from this file")
	f.DurationVar(&every, "every", agent.DefaultEvery, "how often to report")
	f.StringVar(&root, "root", "/", "read the host's files under this directory (a host image)")
	f.BoolVar(&once, "once", false, "report once and exit")
	addClientCertFlags(cmd)
	return cmd
}

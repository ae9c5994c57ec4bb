package cli

// The servers of `tasuki worker` and `tasuki agent`: several servers of
// one cluster may be given, and they move to another when the one they
// talk to does not answer (api.Failover), so that a worker keeps its
// attempts when that server dies. Other commands talk to one server.

import (
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/agent"
	"github.com/tasuki-dev/tasuki/internal/api"
)

// addServerListFlag shadows the root's --server with a list: repeated,
// comma-separated, or both.
func addServerListFlag(cmd *cobra.Command, urls *[]string, who string) {
	cmd.Flags().StringSliceVar(urls, "server", nil,
		"`URL` of a tasuki server, for example http://127.0.0.1:8080; repeat it or separate URLs with commas to give several servers of one cluster: the "+
			who+" moves to another when the one it talks to does not answer (default $"+serverEnv+", a comma-separated list too)")
}

// serverList is the servers given by --server, else $TASUKI_SERVER, each
// checked; the clients have no token yet. None is a usage error.
func (a *app) serverList(cmd *cobra.Command, flagged []string) ([]*api.Client, error) {
	urls := flagged
	if !cmd.Flags().Changed("server") {
		urls = strings.Split(os.Getenv(serverEnv), ",")
	}
	var given []string
	for _, u := range urls {
		if u = strings.TrimSpace(u); u != "" {
			given = append(given, u)
		}
	}
	if len(given) == 0 {
		return nil, usageErr("%s needs a server: pass --server URL or set %s (start one with 'tasuki server')", cmd.CommandPath(), serverEnv)
	}
	hc, err := a.httpClient(cmd) // one transport: its connections are kept per server
	if err != nil {
		return nil, err
	}
	clients := make([]*api.Client, len(given))
	for i, u := range given {
		if clients[i], err = api.NewClient(u, hc); err != nil {
			return nil, usageErr("--server: %v", err)
		}
	}
	return clients, nil
}

// serverConn is what `tasuki worker` and `tasuki agent` talk to.
type serverConn interface {
	api.Workers
	agent.Client
	// BaseURL is the server's API root; of several, the one that last
	// answered.
	BaseURL() string
}

// connect gives the clients token and returns what to talk to: the one
// server's client as it is, or a Failover over several, which says on log
// when it moves to another; where names them in messages.
func connect(clients []*api.Client, token string, log *slog.Logger) (c serverConn, where string, err error) {
	if len(clients) == 1 {
		return clients[0].WithToken(token), clients[0].BaseURL(), nil
	}
	withToken := make([]*api.Client, len(clients))
	for i, c := range clients {
		withToken[i] = c.WithToken(token)
	}
	f, err := api.NewFailover(withToken, log)
	if err != nil {
		return nil, "", err
	}
	return f, f.Servers(), nil
}

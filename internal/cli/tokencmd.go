package cli

// `tasuki token`: the worker tokens of a server.

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/api"
)

func (a *app) tokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke the worker tokens of a server",
		Long: `Worker tokens let 'tasuki worker' processes lease tasks from a server. The
server keeps only a hash of each token; the token itself is printed once,
when it is created.

Until tasuki has users and roles, the server manages tokens only for
requests from its own host (a loopback address, not through a proxy): run
these commands on the server's machine, with --server http://127.0.0.1:PORT.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(a.tokenCreateCmd(), a.tokenListCmd(), a.tokenRevokeCmd())
	return cmd
}

func (a *app) tokenCreateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "create NAME",
		Short: "Create a worker token and print it (once)",
		Long: `Create a worker token named NAME (unique among valid tokens) and print it.
The token is the last line of the output, and the only line on stdout, so
scripts can take it with 'tail -1' or $(...). It is not shown again: keep
it in a secret store and give it to workers as $TASUKI_TOKEN or a file.`,
		Example: `  tasuki token create spot-pool --server http://127.0.0.1:8080
  TOKEN=$(tasuki token create w1 | tail -1)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			secret, info, err := c.CreateToken(cmd.Context(), args[0], actorName())
			if err != nil {
				return remoteErr(c, err)
			}
			fmt.Fprintf(a.io.Err, "created worker token %q; it is shown only this once:\n", info.Name)
			fmt.Fprintln(a.io.Out, secret)
			return nil
		},
	}
}

func (a *app) tokenListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List worker tokens, revoked ones included (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.checkOutput(); err != nil {
				return err
			}
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			toks, err := c.ListTokens(cmd.Context())
			if err != nil {
				return remoteErr(c, err)
			}
			if a.output == "json" {
				if toks == nil {
					toks = []api.TokenInfo{}
				}
				return writeJSON(a.io.Out, toks)
			}
			t := newTable(a.io.Out, "NAME", "CREATED", "LAST USED", "STATUS")
			for _, tok := range toks {
				used, status := "never", "valid"
				if tok.LastUsedAt != nil {
					used = localTime(*tok.LastUsedAt)
				}
				if tok.RevokedAt != nil {
					status = "revoked " + localTime(*tok.RevokedAt)
				}
				t.row(tok.Name, localTime(tok.CreatedAt), used, status)
			}
			t.flush()
			return nil
		},
	}
	a.addOutputFlag(cmd)
	return cmd
}

func localTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04") }

func (a *app) tokenRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a worker token",
		Long: `Revoke the worker token named NAME. Workers using it are refused from their
next request; the attempts they were running are lost at the lease timeout
and run again elsewhere.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			if err := c.RevokeToken(cmd.Context(), args[0], actorName()); err != nil {
				return remoteErr(c, err)
			}
			fmt.Fprintf(a.io.Out, "worker token %s revoked\n", args[0])
			return nil
		},
	}
}

package cli

// `tasuki token`: the API, worker and agent tokens of a server.

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/api"
)

func (a *app) tokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke the API, worker and agent tokens of a server",
		Long: `API tokens let people and scripts use a server, as their role allows:
viewer (read), operator (also trigger, cancel, retry, rerun, mark, pause,
backfill) or admin (also tokens and the audit log), everywhere or confined to
one namespace (the first folder of pipeline files' paths). Worker tokens let
'tasuki worker' processes lease tasks (and report their host), and nothing
else; agent tokens let 'tasuki agent' report its host, and nothing else.
The server keeps
only a hash of each token; the token itself is printed once, when it is
created.

Managing tokens needs an admin token: on the server's machine the CLI finds
the first one in the data directory (admin.token); elsewhere pass --token or
set $TASUKI_TOKEN.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(a.tokenCreateCmd(), a.tokenListCmd(), a.tokenRevokeCmd())
	return cmd
}

func (a *app) tokenCreateCmd() *cobra.Command {
	var role, namespace, expires, kind string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an API token (--role), a worker token or an agent token (--kind agent), and print it (once)",
		Long: `Create a token named NAME (unique among valid tokens) and print it: an API
token with --role viewer|operator|admin (confined to a namespace with
--namespace, expiring with --expires); with --kind agent, an agent token,
which may only report a host's facts ('tasuki agent') and cannot lease
work; else a worker token.

The token is the last line of the output, and the only line on stdout, so
scripts can take it with 'tail -1' or $(...). It is not shown again: keep it
in a secret store and give it as $TASUKI_TOKEN or a file.`,
		Example: `  tasuki token create ci --role operator --namespace finance --expires 30d
  tasuki token create grafana --role viewer
  TOKEN=$(tasuki token create spot-1 | tail -1)     # a worker token
  tasuki token create agent-dns1 --kind agent       # for 'tasuki agent' on host dns1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.CreateTokenRequest{Name: args[0], Role: api.Role(role), Namespace: namespace}
			switch kind {
			case "":
			case api.KindWorker, api.KindAgent:
				if role != "" {
					return usageErr("--role is for API tokens: a %s token has none", kind)
				}
				req.Kind = kind
			case api.KindAPI:
				if role == "" {
					return usageErr("--kind api needs --role viewer, operator or admin")
				}
				req.Kind = kind
			default:
				return usageErr("--kind %q: expected worker, agent or api", kind)
			}
			if role != "" && !req.Role.Valid() {
				return usageErr("--role %q: expected viewer, operator or admin", role)
			}
			if role == "" && (namespace != "" || expires != "") {
				return usageErr("--namespace and --expires are for API tokens: give --role too")
			}
			if expires != "" {
				at, err := parseExpiry(expires, time.Now())
				if err != nil {
					return usageErr("--expires %v", err)
				}
				req.ExpiresAt = &at
			}
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			secret, info, err := c.CreateToken(cmd.Context(), req, actorName())
			if err != nil {
				return remoteErr(c, err)
			}
			what := "worker token"
			if info.Kind == api.KindAgent {
				what = "agent token (host reports only)"
			}
			if info.Kind == api.KindAPI {
				what = fmt.Sprintf("%s API token", info.Role)
				if info.Namespace != "" {
					what += fmt.Sprintf(" of namespace %q", info.Namespace)
				}
			}
			fmt.Fprintf(a.io.Err, "created %s %q; it is shown only this once:\n", what, info.Name)
			fmt.Fprintln(a.io.Out, secret)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", "", "make an API token of this role: viewer, operator or admin (default: a worker token)")
	f.StringVar(&kind, "kind", "", "the kind of token: worker, agent (host reports only, for 'tasuki agent') or api (default: api with --role, else worker)")
	f.StringVar(&namespace, "namespace", "", "confine the API token to this namespace (a folder of the pipelines directory)")
	f.StringVar(&expires, "expires", "", "the API token stops working after this long (30d, 12h) or at this RFC 3339 time")
	return cmd
}

func (a *app) tokenListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tokens, revoked ones included (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listRemote(a, cmd, (*api.Client).ListTokens, func(toks []api.TokenInfo) {
				t := newTable(a.io.Out, "NAME", "KIND", "ROLE", "NAMESPACE", "CREATED", "LAST USED", "STATUS")
				for _, tok := range toks {
					used, status := "never", "valid"
					if tok.LastUsedAt != nil {
						used = localTime(*tok.LastUsedAt)
					}
					switch {
					case tok.RevokedAt != nil:
						status = "revoked " + localTime(*tok.RevokedAt)
					case tok.ExpiresAt != nil && !tok.ExpiresAt.After(time.Now()):
						status = "expired " + localTime(*tok.ExpiresAt)
					case tok.ExpiresAt != nil:
						status = "valid until " + localTime(*tok.ExpiresAt)
					}
					role, ns := string(tok.Role), tok.Namespace
					if role == "" {
						role = "-"
					}
					if ns == "" {
						ns = "-"
						if tok.Kind == api.KindAPI {
							ns = "(all)"
						}
					}
					t.row(tok.Name, tok.Kind, role, ns, localTime(tok.CreatedAt), used, status)
				}
				t.flush()
			})
		},
	}
	a.addOutputFlag(cmd)
	return cmd
}

func localTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04") }

func (a *app) tokenRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token",
		Long: `Revoke the token named NAME, of either kind. It is refused from its next
request (within a few seconds on other servers of the same database). Workers
using a revoked worker token lose the attempts they were running at the lease
timeout, and those run again elsewhere.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			if err := c.RevokeToken(cmd.Context(), args[0], actorName()); err != nil {
				return remoteErr(c, err)
			}
			fmt.Fprintf(a.io.Out, "token %s revoked\n", args[0])
			return nil
		},
	}
}

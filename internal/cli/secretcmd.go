package cli

// `tasuki secret`: the secret store of a server.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/secret"
	"github.com/tasuki-dev/tasuki/internal/store"
)

func (a *app) secretCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Set, list and remove the secrets of a server (admins)",
		Long: `Secrets are the passwords, tokens and keys pipelines refer to
(secrets: [name], or env: {VAR: {secret: name}}). The server keeps them in
its store sealed with AES-256-GCM; a value goes in with 'secret set' and
never comes out: 'secret list' shows names and times, the API never answers
a value, and a task's log has it masked.

A value is read from standard input, never from an argument (arguments are
visible to every user of the machine and kept in shell history). The server
also reads secrets from its TASUKI_SECRET_<NAME> variables and from the files
of its secrets_dir, which win over the store (see docs/server.md).`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(a.secretSetCmd(), a.secretListCmd(), a.secretRmCmd(), a.secretRotateCmd())
	return cmd
}

func (a *app) secretSetCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "set NAME",
		Short: "Set a secret, its value read from standard input",
		Long: `Set the secret NAME (letters, digits and '_', not starting with a digit) to
the value read from standard input, replacing any value it had. One trailing
newline is removed. On a terminal the value is read as one line, without
echo.`,
		Example: `  printf '%s' "$PASSWORD" | tasuki secret set warehouse_password
  tasuki secret set gcp_key < key.json
  tasuki secret set api_token          # on a terminal: type it, then Enter`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := store.CheckSecretName(name); err != nil {
				return usageErr("secret set: %v", err)
			}
			value, err := a.readSecretValue(name)
			if err != nil {
				return err
			}
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			info, err := c.SetSecret(cmd.Context(), name, value)
			if err != nil {
				return remoteErr(c, err)
			}
			fmt.Fprintf(a.io.Err, "secret %q set\n", info.Name)
			return nil
		},
	}
}

// readSecretValue reads a secret's value from the command's input: one
// line without echo from a terminal, else everything, without one
// trailing newline.
func (a *app) readSecretValue(name string) (string, error) {
	in := a.io.In
	if in == nil {
		return "", usageErr("secret set %s: the value is read from standard input, and there is none", name)
	}
	if f, ok := in.(*os.File); ok {
		if old, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			fmt.Fprintf(a.io.Err, "value of secret %s (not echoed): ", name)
			quiet := *old
			quiet.Lflag &^= unix.ECHO
			if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, &quiet); err == nil {
				defer unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, old)
			}
			line, err := bufio.NewReader(io.LimitReader(f, secret.MaxValue+3)).ReadString('\n')
			fmt.Fprintln(a.io.Err)
			if err != nil && !errors.Is(err, io.EOF) {
				return "", fmt.Errorf("read the value of secret %s: %w", name, err)
			}
			return a.checkSecretValue(name, secret.TrimNewline(line))
		}
	}
	data, err := io.ReadAll(io.LimitReader(in, secret.MaxValue+3))
	if err != nil {
		return "", fmt.Errorf("read the value of secret %s from standard input: %w", name, err)
	}
	return a.checkSecretValue(name, secret.TrimNewline(string(data)))
}

func (a *app) checkSecretValue(name, value string) (string, error) {
	if value == "" {
		return "", usageErr("secret set %s: standard input is empty; pipe the value in: printf '%%s' \"$VALUE\" | tasuki secret set %s", name, name)
	}
	if err := secret.CheckValue(value); err != nil {
		return "", usageErr("secret set %s: %v", name, err)
	}
	return value, nil
}

func (a *app) secretListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the server's stored secrets (names and times, never values)",
		Long: `List the secrets of the server's secret store: names and when they were
created and last set, never values. Secrets the server reads from its
environment or its secrets_dir are not listed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listRemote(a, cmd, (*api.Client).ListSecrets, func(list []api.SecretInfo) {
				t := newTable(a.io.Out, "NAME", "CREATED", "UPDATED")
				for _, s := range list {
					t.row(s.Name, localTime(s.CreatedAt), localTime(s.UpdatedAt))
				}
				t.flush()
			})
		},
	}
	a.addOutputFlag(cmd)
	return cmd
}

func (a *app) secretRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"delete"},
		Short:   "Remove a secret from the server's store",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			if err := c.DeleteSecret(cmd.Context(), args[0]); err != nil {
				return remoteErr(c, err)
			}
			fmt.Fprintf(a.io.Err, "secret %q removed\n", args[0])
			return nil
		},
	}
}

func (a *app) secretRotateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rotate-key",
		Short: "Re-seal every stored secret with a new key",
		Long: `With the server's key file ($TASUKI_HOME/secret.key): the server makes a new
key, re-seals every secret with it and replaces the file. A rotation that
stops half way leaves every secret readable; run it again to finish.

With the key in the server's $TASUKI_SECRET_KEY: restart the server with the
new key in TASUKI_SECRET_KEY and the old one in TASUKI_SECRET_OLD_KEY, run
this command, then remove TASUKI_SECRET_OLD_KEY.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			rot, err := c.RotateSecretKey(cmd.Context())
			if err != nil {
				return remoteErr(c, err)
			}
			if rot.NewKey {
				fmt.Fprintf(a.io.Err, "new key %s; %d secrets re-sealed with it\n", rot.KeyID, rot.Resealed)
			} else {
				fmt.Fprintf(a.io.Err, "%d secrets re-sealed with the key of $TASUKI_SECRET_KEY (%s)\n", rot.Resealed, rot.KeyID)
			}
			return nil
		},
	}
}

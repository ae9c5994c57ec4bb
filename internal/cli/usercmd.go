package cli

// `tasuki user`: the people who log in to a server's web UI.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/secret"
)

func (a *app) userCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Add, list and remove the users who log in to a server's web UI (admins)",
		Long: `Users log in to the web UI with a password (or through single sign-on) and
act with a role, like an API token: viewer, operator or admin, everywhere or
confined to one namespace (--namespace). The server keeps only an argon2id
hash of each password.

A password is read from standard input, or typed at a terminal prompt
without echo; never from an argument (arguments are visible to every user of
the machine and kept in shell history). Changing a password or removing a
user closes every session of theirs.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(a.userAddCmd(), a.userListCmd(), a.userRmCmd(), a.userPasswdCmd(), a.userSessionsCmd(), a.userLogoutCmd())
	return cmd
}

func (a *app) userAddCmd() *cobra.Command {
	var role, namespace string
	cmd := &cobra.Command{
		Use:   "add NAME --role viewer|operator|admin",
		Short: "Add a user, the password read from standard input",
		Example: `  printf '%s\n' "$PASSWORD" | tasuki user add alice --role operator
  tasuki user add bob --role viewer --namespace finance   # on a terminal: type it twice`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.CreateUserRequest{Name: args[0], Role: api.Role(role), Namespace: namespace}
			if !req.Role.Valid() {
				return usageErr("user add: --role %q: expected viewer, operator or admin", role)
			}
			pw, err := a.readPassword("user add", args[0])
			if err != nil {
				return err
			}
			req.Password = pw
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			u, err := c.CreateUser(cmd.Context(), req)
			if err != nil {
				return remoteErr(c, err)
			}
			where := "everywhere"
			if u.Namespace != "" {
				where = "in namespace " + u.Namespace
			}
			fmt.Fprintf(a.io.Err, "user %q added: %s %s\n", u.Name, u.Role, where)
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "viewer, operator or admin (required)")
	cmd.Flags().StringVar(&namespace, "namespace", "", "confine the user to this namespace (a folder of the pipelines directory)")
	return cmd
}

func (a *app) userPasswdCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "passwd NAME",
		Short:   "Change a user's password (read from standard input) and close their sessions",
		Example: `  printf '%s\n' "$NEW_PASSWORD" | tasuki user passwd alice`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := a.readPassword("user passwd", args[0])
			if err != nil {
				return err
			}
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			if err := c.SetPassword(cmd.Context(), args[0], pw); err != nil {
				return remoteErr(c, err)
			}
			fmt.Fprintf(a.io.Err, "password of %q changed; their sessions are closed\n", args[0])
			return nil
		},
	}
}

func (a *app) userRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a user and close their sessions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			if err := c.RemoveUser(cmd.Context(), args[0]); err != nil {
				return remoteErr(c, err)
			}
			fmt.Fprintf(a.io.Err, "user %q removed; their sessions are closed\n", args[0])
			return nil
		},
	}
}

func (a *app) userListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List users (names, roles and namespaces; never passwords)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listRemote(a, cmd, (*api.Client).ListUsers, func(list []api.UserInfo) {
				t := newTable(a.io.Out, "NAME", "ROLE", "NAMESPACE", "CREATED")
				for _, u := range list {
					ns := u.Namespace
					if ns == "" {
						ns = "(all)"
					}
					t.row(u.Name, string(u.Role), ns, localTime(u.CreatedAt))
				}
				t.flush()
			})
		},
	}
	a.addOutputFlag(cmd)
	return cmd
}

func (a *app) userSessionsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sessions",
		Short: "List the open web UI sessions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listRemote(a, cmd, (*api.Client).ListSessions, func(list []api.SessionInfo) {
				t := newTable(a.io.Out, "ID", "USER", "STARTED", "EXPIRES")
				for _, s := range list {
					t.row(strconv.FormatInt(s.ID, 10), s.User, localTime(s.CreatedAt), localTime(s.ExpiresAt))
				}
				t.flush()
			})
		},
	}
	a.addOutputFlag(cmd)
	return cmd
}

func (a *app) userLogoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout SESSION-ID",
		Short: "Close a web UI session (ids from 'user sessions')",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || id <= 0 {
				return usageErr("user logout: session id %q: expected a positive number (see 'tasuki user sessions')", args[0])
			}
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			if err := c.RevokeSession(cmd.Context(), id); err != nil {
				return remoteErr(c, err)
			}
			fmt.Fprintf(a.io.Err, "session %d closed\n", id)
			return nil
		},
	}
}

// maxPassword bounds what is read for a password.
const maxPassword = 1024

// readPassword reads a new password for user: at a terminal, typed twice
// without echo; else the whole of standard input without one trailing
// newline.
func (a *app) readPassword(what, user string) (string, error) {
	in := a.io.In
	if in == nil {
		return "", usageErr("%s %s: the password is read from standard input, and there is none", what, user)
	}
	if f, ok := in.(*os.File); ok {
		if old, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			quiet := *old
			quiet.Lflag &^= unix.ECHO
			if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, &quiet); err == nil {
				defer unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, old)
			}
			r := bufio.NewReader(io.LimitReader(f, 2*maxPassword+4))
			var pw [2]string
			for i, prompt := range []string{"password for %s (not echoed): ", "again: "} {
				fmt.Fprintf(a.io.Err, prompt, user)
				line, err := r.ReadString('\n')
				fmt.Fprintln(a.io.Err)
				if err != nil && !errors.Is(err, io.EOF) {
					return "", fmt.Errorf("read the password of %s: %w", user, err)
				}
				pw[i] = secret.TrimNewline(line)
			}
			if pw[0] != pw[1] {
				return "", usageErr("%s %s: the two passwords differ", what, user)
			}
			return a.checkPassword(what, user, pw[0])
		}
	}
	data, err := io.ReadAll(io.LimitReader(in, maxPassword+3))
	if err != nil {
		return "", fmt.Errorf("read the password of %s from standard input: %w", user, err)
	}
	return a.checkPassword(what, user, secret.TrimNewline(string(data)))
}

func (a *app) checkPassword(what, user, pw string) (string, error) {
	switch {
	case pw == "":
		return "", usageErr("%s %s: standard input is empty; pipe the password in: printf '%%s\\n' \"$PASSWORD\" | tasuki %s %s", what, user, what, user)
	case len(pw) < api.MinPassword:
		return "", usageErr("%s %s: the password is shorter than %d characters", what, user, api.MinPassword)
	case len(pw) > maxPassword:
		return "", usageErr("%s %s: the password is longer than %d bytes", what, user, maxPassword)
	}
	return pw, nil
}

package cli

// `tasuki hosts`: what the hosts run. 'collect' prints the facts this host
// would report; 'compare-versions' says how two package versions order by
// dpkg's or rpm's rules.

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tasuki-dev/tasuki/internal/hostfacts"
	"github.com/tasuki-dev/tasuki/internal/pkgver"
)

// hostsCmd is the group of host inventory commands. It has no RunE of its
// own yet, so it prints its help; the search of the hosts' reports
// (tasuki hosts --package NAME ...) will be its RunE, beside these
// subcommands.
func (a *app) hostsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hosts",
		Short: "Host inventory: collect this host's facts, compare package versions",
		Long: `Host inventory: what each host is and runs (operating system, kernel,
resources, installed packages with their source packages, services,
listening sockets, container runtimes).

'hosts collect' prints what this host reports; 'hosts compare-versions' tells
how two package versions order by the rules of dpkg or rpm. See
docs/inventory.md.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(a.hostsCollectCmd(), a.hostsCompareCmd())
	return cmd
}

func (a *app) hostsCollectCmd() *cobra.Command {
	var root, output string
	cmd := &cobra.Command{
		Use:   "collect",
		Short: "Print the facts this host would report",
		Long: `Collect this host's facts and print them: hostname, machine id, os-release,
kernel, architecture, CPUs, memory, disks, installed packages (dpkg's status
database, or rpm -qa), systemd services, listening sockets with their process
and package, and container runtimes. What could not be read is listed as
warnings (run as root to see every socket's process).

--root reads a host image or a test fixture instead of /: files are read
under it, never outside it; disk sizes and the active state of services are
known for the live host only.

-o json prints the report as a worker sends it to the server.`,
		Example: `  tasuki hosts collect
  tasuki hosts collect --root /mnt/image -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return usageErr("--output %q: expected text or json", output)
			}
			r, err := hostfacts.Collect(cmd.Context(), hostfacts.Options{Root: root})
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(a.io.Out, r)
			}
			printHostReport(a.io.Out, r)
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "root", "/", "read the host's files under this directory (a host image or a fixture)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func (a *app) hostsCompareCmd() *cobra.Command {
	var scheme string
	cmd := &cobra.Command{
		Use:   "compare-versions --scheme deb|rpm A B",
		Short: "Print <, = or > as package version A is older than, the same as or newer than B",
		Long: `Compare two package versions by the rules of dpkg (--scheme deb: Debian,
Ubuntu) or rpm (--scheme rpm: Red Hat, Fedora, AlmaLinux, Rocky, SUSE) and
print '<', '=' or '>'. The rules are the tools' own: dpkg --compare-versions
and rpm's rpmvercmp give the same answers. A version the scheme does not
accept is a usage error (exit 2), with the reason.`,
		Example: `  tasuki hosts compare-versions --scheme deb 2.80-1+deb10u1 2.83
  tasuki hosts compare-versions --scheme deb 1.0~rc1 1.0
  tasuki hosts compare-versions --scheme rpm 1.0^git1 1.0`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if scheme == "" {
				return usageErr("--scheme is required: deb (dpkg's rules) or rpm (rpm's)")
			}
			s, err := pkgver.ParseScheme(scheme)
			if err != nil {
				return usageErr("--scheme: %v", err)
			}
			for _, v := range args {
				if err := s.Check(v); err != nil {
					return usageErr("%v", err)
				}
			}
			fmt.Fprintln(a.io.Out, [...]string{"<", "=", ">"}[s.Compare(args[0], args[1])+1])
			return nil
		},
	}
	cmd.Flags().StringVar(&scheme, "scheme", "", "version rules: deb or rpm (required)")
	return cmd
}

// printHostReport writes a report for people: the host's facts, then a
// table per list.
func printHostReport(w io.Writer, r *hostfacts.Report) {
	t := newTable(w, "HOST", r.Hostname)
	os := r.OS.PrettyName
	if os == "" {
		os = strings.TrimSpace(r.OS.ID + " " + r.OS.VersionID)
	}
	for _, kv := range [][2]string{
		{"machine id", r.MachineID},
		{"os", os},
		{"kernel", r.Kernel},
		{"arch", r.Arch},
		{"cpu", cpuText(r.CPU)},
		{"memory", memoryText(r.Memory)},
		{"version scheme", string(r.Scheme)},
	} {
		if kv[1] != "" {
			t.row(kv[0], kv[1])
		}
	}
	t.flush()
	if len(r.Disks) > 0 {
		fmt.Fprintln(w)
		t = newTable(w, "MOUNT", "DEVICE", "TYPE", "SIZE", "USED", "FREE")
		for _, d := range r.Disks {
			size, used, free := "-", "-", "-"
			if d.Size > 0 {
				size, used, free = sizeText(int64(d.Size)), sizeText(int64(d.Used)), sizeText(int64(d.Free))
			}
			t.row(d.Mount, d.Device, d.FSType, size, used, free)
		}
		t.flush()
	}
	fmt.Fprintln(w)
	if len(r.Packages) == 0 {
		fmt.Fprintln(w, "no installed packages found")
	} else {
		t = newTable(w, "PACKAGE", "VERSION", "ARCH", "SOURCE")
		for _, p := range r.Packages {
			src := "-"
			switch {
			case p.Source != p.Name && p.SourceVersion != p.Version:
				src = p.Source + " " + p.SourceVersion
			case p.Source != p.Name:
				src = p.Source
			case p.SourceVersion != p.Version:
				src = p.SourceVersion
			}
			t.row(p.Name, p.Version, orDash(p.Arch), src)
		}
		t.flush()
	}
	if len(r.Services) > 0 {
		fmt.Fprintln(w)
		t = newTable(w, "SERVICE", "ENABLED", "ACTIVE")
		for _, s := range r.Services {
			active := s.Active
			if s.Sub != "" && s.Sub != s.Active {
				active += " (" + s.Sub + ")"
			}
			t.row(s.Unit, orDash(s.Enabled), orDash(active))
		}
		t.flush()
	}
	if len(r.Listeners) > 0 {
		fmt.Fprintln(w)
		t = newTable(w, "LISTEN", "PROCESS", "PID", "EXE", "PACKAGE")
		for _, l := range r.Listeners {
			pid := "-"
			if l.PID > 0 {
				pid = strconv.Itoa(l.PID)
			}
			addr := l.Address + ":" + strconv.Itoa(l.Port)
			if strings.Contains(l.Address, ":") {
				addr = "[" + l.Address + "]:" + strconv.Itoa(l.Port)
			}
			t.row(l.Proto+" "+addr, orDash(l.Process), pid, orDash(l.Exe), orDash(l.Package))
		}
		t.flush()
	}
	fmt.Fprintln(w)
	if len(r.Containers) == 0 {
		fmt.Fprintln(w, "container runtimes: none found")
	}
	for _, c := range r.Containers {
		fmt.Fprintf(w, "container runtime: %s (%s)\n", c.Name, c.Evidence)
	}
	for _, warn := range r.Warnings {
		fmt.Fprintln(w, "warning:", warn)
	}
}

func cpuText(c hostfacts.CPU) string {
	if c.Count == 0 {
		return ""
	}
	if c.Model == "" {
		return strconv.Itoa(c.Count)
	}
	return fmt.Sprintf("%d × %s", c.Count, c.Model)
}

func memoryText(m hostfacts.Memory) string {
	if m.Total == 0 {
		return ""
	}
	return fmt.Sprintf("%s, %s available", sizeText(int64(m.Total)), sizeText(int64(m.Available)))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

package cli

// `tasuki hosts`: what the hosts run. Without a subcommand it searches a
// server's host inventory; 'show' and 'history' print one host's facts and
// changes, 'advisories' the server's advisories; 'collect' prints the facts
// this host would report; 'compare-versions' says how two package versions
// order by dpkg's or rpm's rules.

import (
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/hostfacts"
	"github.com/tasuki-dev/tasuki/internal/pkgver"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// hostsCmd searches the host inventory of a server (its RunE), and groups
// the other host commands: one host's facts and history, the server's
// advisories, what this host would report, and how two versions compare.
func (a *app) hostsCmd() *cobra.Command {
	var (
		f      hostFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "hosts [--package NAME [--version-lt V | --version-le V | --version-eq V]] [--service NAME [--active]] [--port N] [--os DISTRO[:RELEASE]] [--stale] [--advisory ID]",
		Short: "Search the host inventory: which hosts run what (packages, services, ports)",
		Long: `Host inventory: what each host is and runs (operating system, kernel,
resources, installed packages with their source packages, services,
listening sockets, container runtimes), as workers and agents report it to
the server ('tasuki worker', 'tasuki agent').

Without a subcommand, search the server's hosts; the filters combine:

  --package NAME      an installed binary or source package: dnsmasq finds
                      hosts that have only dnsmasq-base, built from dnsmasq
  --version-lt V      with --package: older than V (--version-le: or equal;
                      --version-eq: equal), by each host's rules: dpkg's on
                      Debian-family hosts, rpm's on RPM-family hosts; a
                      package found by its source name compares the source
                      version
  --service NAME      a systemd unit (dnsmasq is dnsmasq.service);
                      --active: only where it is active
  --port N            listening on TCP or UDP port N
  --os DISTRO[:REL]   debian, debian:12, rocky:9 (9.4 is a release of 9)
  --stale             only hosts whose last report is older than the
                      server's host_stale_after
  --advisory ID       the hosts an advisory (or the CVE it names) affects,
                      with the fixed version, from the server's advisories

Each result is a host and a matched package, with its installed version,
the host's distribution and release, the service named after the package
(or --service) and whether it is active, the ports it listens on, and when
the host last reported ("stale" when too long ago). -o json prints the API's
answer, -o csv a row per host and package.

'hosts show NAME' prints one host's facts, 'hosts history NAME' what changed
between its reports, 'hosts advisories [ID]' the server's advisories; 'hosts
collect' prints what this host reports, 'hosts compare-versions' how two
package versions order. See docs/inventory.md.`,
		Example: `  tasuki hosts --package dnsmasq --version-lt 2.83
  tasuki hosts --advisory CVE-2020-25681 -o csv
  tasuki hosts --service sshd --active --port 22 --os debian:12
  tasuki hosts --stale`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if serverURL(cmd) == "" && !anyChanged(cmd) {
				return cmd.Help() // nothing to search without a server: say what there is
			}
			if output != "table" && output != "json" && output != "csv" {
				return usageErr("--output %q: expected table, json or csv", output)
			}
			q, err := f.query(cmd)
			if err != nil {
				return err
			}
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			var all []api.HostMatch
			for {
				page, err := c.SearchHosts(cmd.Context(), q)
				if err != nil {
					return remoteErr(c, err)
				}
				all = append(all, page.Items...)
				if page.Next == "" {
					break
				}
				q.Cursor = page.Next
			}
			switch output {
			case "json":
				if all == nil {
					all = []api.HostMatch{}
				}
				return writeJSON(a.io.Out, all)
			case "csv":
				return writeHostsCSV(a.io.Out, all, q.Advisory != "")
			}
			printHostMatches(a.io.Out, all, q.Advisory != "")
			if len(all) == 0 {
				fmt.Fprintln(a.io.Err, "no host matches")
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.pkg, "package", "", "an installed binary or source package")
	fl.StringVar(&f.lt, "version-lt", "", "with --package: installed version lower than this one")
	fl.StringVar(&f.le, "version-le", "", "with --package: installed version lower than or equal to this one")
	fl.StringVar(&f.eq, "version-eq", "", "with --package: installed version equal to this one")
	fl.StringVar(&f.service, "service", "", "a systemd unit (dnsmasq is dnsmasq.service)")
	fl.BoolVar(&f.active, "active", false, "with --service: only hosts where it is active")
	fl.IntVar(&f.port, "port", 0, "listening on this TCP or UDP port")
	fl.StringVar(&f.os, "os", "", "distribution, and release after a colon: debian, debian:12, rocky:9")
	fl.BoolVar(&f.stale, "stale", false, "only hosts whose last report is older than the server's host_stale_after")
	fl.StringVar(&f.advisory, "advisory", "", "the hosts this advisory (or a CVE it names) affects")
	fl.StringVarP(&output, "output", "o", "table", "output format: table, json or csv")
	cmd.AddCommand(a.hostsShowCmd(), a.hostsHistoryCmd(), a.hostsAdvisoriesCmd(), a.hostsCollectCmd(), a.hostsCompareCmd())
	return cmd
}

// anyChanged reports whether a flag of the command itself was given.
func anyChanged(cmd *cobra.Command) bool {
	changed := false
	cmd.LocalFlags().VisitAll(func(f *pflag.Flag) { changed = changed || f.Changed })
	return changed
}

// hostFlags are the search's flags.
type hostFlags struct {
	pkg, lt, le, eq, service, os, advisory string
	active, stale                          bool
	port                                   int
}

// query checks the flags and makes the API's query of them.
func (f hostFlags) query(cmd *cobra.Command) (api.HostQuery, error) {
	q := api.HostQuery{Package: f.pkg, Service: f.service, Active: f.active, Port: f.port, OS: f.os, Stale: f.stale,
		Advisory: f.advisory, Limit: store.MaxHostsLimit}
	for _, b := range []struct {
		op store.VersionOp
		v  string
	}{{store.VersionLT, f.lt}, {store.VersionLE, f.le}, {store.VersionEQ, f.eq}} {
		if !cmd.Flags().Changed("version-" + string(b.op)) {
			continue
		}
		if q.Op != "" {
			return q, usageErr("--version-%s and --version-%s: give one version bound", q.Op, b.op)
		}
		q.Op, q.Version = b.op, b.v
	}
	if q.Op != "" {
		if q.Package == "" && q.Advisory == "" {
			return q, usageErr("--version-%s needs --package: the version of which package?", q.Op)
		}
		if err := (store.VersionBound{Op: q.Op, Version: q.Version}).Check(); err != nil {
			return q, usageErr("--version-%s %q: not a version by dpkg's or rpm's rules: %v", q.Op, q.Version, pkgver.Deb.Check(q.Version))
		}
	}
	if q.Active && q.Service == "" {
		return q, usageErr("--active needs --service: which service should be active?")
	}
	if cmd.Flags().Changed("port") && (q.Port < 1 || q.Port > 65535) {
		return q, usageErr("--port %d: expected 1 to 65535", q.Port)
	}
	if q.OS != "" {
		if _, _, err := api.ParseOS(q.OS); err != nil {
			return q, usageErr("--%s", err)
		}
	}
	return q, nil
}

// hostOS is a host's distribution and release for a table: "debian 10".
func hostOS(o hostfacts.OS) string {
	if s := strings.TrimSpace(o.ID + " " + o.VersionID); s != "" {
		return s
	}
	return "-"
}

// reported is when a host last reported, in local time, marked when stale.
func reported(h api.Host) string {
	s := localTime(h.ReportedAt)
	if h.Stale {
		s += " (stale)"
	}
	return s
}

// serviceText says the services a match shows: "dnsmasq.service active".
func serviceText(ss []hostfacts.Service) string {
	var out []string
	for _, s := range ss {
		state := s.Active
		if state == "" {
			state = s.Enabled
		}
		if state == "" {
			state = "?"
		}
		out = append(out, s.Unit+" "+state)
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ", ")
}

// portsText lists a match's sockets as udp/53,tcp/53, each once.
func portsText(ls []hostfacts.Listener) string {
	var out []string
	for _, l := range ls {
		p := strings.TrimSuffix(l.Proto, "6") + "/" + strconv.Itoa(l.Port)
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ",")
}

// advisoryText says how advisories affect a package: the ids and the
// fixed versions.
func advisoryText(fs []api.AdvisoryFinding) (ids, fixed string) {
	var a, f []string
	for _, x := range fs {
		if !slices.Contains(a, x.ID) {
			a = append(a, x.ID)
		}
		fx := x.Fixed
		if fx == "" {
			fx = "not fixed"
		}
		if !slices.Contains(f, fx) {
			f = append(f, fx)
		}
	}
	return orDash(strings.Join(a, ",")), orDash(strings.Join(f, ","))
}

// printHostMatches writes a row per host and matched package.
func printHostMatches(w io.Writer, ms []api.HostMatch, advisory bool) {
	headers := []string{"HOST", "OS", "PACKAGE", "VERSION", "SERVICE", "PORTS", "REPORTED"}
	if advisory {
		headers = []string{"HOST", "OS", "PACKAGE", "VERSION", "ADVISORY", "FIXED", "SERVICE", "PORTS", "REPORTED"}
	}
	t := newTable(w, headers...)
	for _, m := range ms {
		base := []string{m.Host.Name, hostOS(m.Host.OS)}
		rest := []string{serviceText(m.Services), portsText(m.Listeners), reported(m.Host)}
		if len(m.Packages) == 0 {
			row := append(append(base, "-", "-"), rest...)
			if advisory {
				row = append(append(base, "-", "-", "-", "-"), rest...)
			}
			t.row(row...)
			continue
		}
		for _, p := range m.Packages {
			row := append(slices.Clone(base), packageText(p), p.Version)
			if advisory {
				ids, fixed := advisoryText(p.Advisories)
				row = append(row, ids, fixed)
			}
			t.row(append(row, rest...)...)
		}
	}
	t.flush()
}

// packageText is a package's name, with its source when it has another
// name ("dnsmasq-base (dnsmasq 2.80-1)").
func packageText(p api.HostPackage) string {
	switch {
	case p.Source != p.Name && p.SourceVersion != p.Version:
		return fmt.Sprintf("%s (%s %s)", p.Name, p.Source, p.SourceVersion)
	case p.Source != p.Name:
		return fmt.Sprintf("%s (%s)", p.Name, p.Source)
	}
	return p.Name
}

// writeHostsCSV writes a row per host and matched package, with a header.
func writeHostsCSV(w io.Writer, ms []api.HostMatch, advisory bool) error {
	cw := csv.NewWriter(w)
	header := []string{"host", "machine_id", "os", "release", "package", "version", "arch", "source", "source_version",
		"services", "ports", "reported_at", "stale"}
	if advisory {
		header = append(header, "advisory", "fixed")
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	for _, m := range ms {
		pkgs := m.Packages
		if len(pkgs) == 0 {
			pkgs = []api.HostPackage{{}}
		}
		for _, p := range pkgs {
			services, ports := serviceText(m.Services), portsText(m.Listeners)
			row := []string{m.Host.Name, m.Host.MachineID, m.Host.OS.ID, m.Host.OS.VersionID, p.Name, p.Version, p.Arch,
				p.Source, p.SourceVersion, strings.TrimPrefix(services, "-"), strings.TrimPrefix(ports, "-"),
				m.Host.ReportedAt.UTC().Format(time.RFC3339), strconv.FormatBool(m.Host.Stale)}
			if advisory {
				ids, fixed := advisoryText(p.Advisories)
				row = append(row, strings.TrimPrefix(ids, "-"), strings.TrimPrefix(fixed, "-"))
			}
			if err := cw.Write(row); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

func (a *app) hostsShowCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Print one host's facts as it last reported them",
		Long: `Print the facts a host last reported to the server: operating system,
kernel, resources, disks, installed packages, services, listening sockets
and container runtimes, with when it reported (and whether that is stale)
and with which token. NAME is its hostname, or its machine id when several
hosts share the name. -o json prints the API's answer.`,
		Example: `  tasuki hosts show dns1
  tasuki hosts show 0123456789abcdef0123456789abcdef -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return usageErr("--output %q: expected text or json", output)
			}
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			d, err := c.Host(cmd.Context(), args[0])
			if err != nil {
				return remoteErr(c, err)
			}
			if output == "json" {
				return writeJSON(a.io.Out, d)
			}
			printHostReport(a.io.Out, d.Report)
			fmt.Fprintln(a.io.Out)
			t := newTable(a.io.Out, "REPORTED", reported(d.Host))
			t.row("by", orDash(d.Host.ReportedBy))
			if d.Host.CollectedAt != nil {
				t.row("collected", localTime(*d.Host.CollectedAt))
			}
			t.row("first report", localTime(d.Host.FirstReportAt))
			t.flush()
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func (a *app) hostsHistoryCmd() *cobra.Command {
	var (
		output string
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "history NAME",
		Short: "Print what changed on a host between its reports, newest first",
		Long: `Print a host's history, newest first: its first report, renames, packages
installed, removed, upgraded or downgraded, services started, stopped,
enabled or disabled, ports opened or closed, the OS upgraded or changed,
the kernel changed. The server keeps it for its host_history setting.
--limit bounds how many changes are printed (default 100).`,
		Example: `  tasuki hosts history dns1
  tasuki hosts history dns1 --limit 1000 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return usageErr("--output %q: expected table or json", output)
			}
			if limit < 1 {
				return usageErr("--limit %d: expected 1 or more", limit)
			}
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			var all []api.HostEvent
			cursor := ""
			for len(all) < limit {
				page, err := c.HostEvents(cmd.Context(), args[0], cursor, min(limit-len(all), store.MaxHostEventsLimit))
				if err != nil {
					return remoteErr(c, err)
				}
				all = append(all, page.Items...)
				if page.Next == "" {
					break
				}
				cursor = page.Next
			}
			if output == "json" {
				if all == nil {
					all = []api.HostEvent{}
				}
				return writeJSON(a.io.Out, all)
			}
			t := newTable(a.io.Out, "AT", "CHANGE", "SUBJECT", "FROM", "TO")
			for _, e := range all {
				t.row(localTime(e.At), e.Kind, e.Subject, orDash(e.From), orDash(e.To))
			}
			t.flush()
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	cmd.Flags().IntVar(&limit, "limit", store.DefaultHostEventsLimit, "print at most this many changes, the newest")
	return cmd
}

func (a *app) hostsAdvisoriesCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "advisories [ID]",
		Short: "Print the server's advisories: where from, how many, what did not load",
		Long: `Print the state of the server's security advisories (the OSV files of its
advisories setting): the directory, when it was last loaded (it is loaded
again when its files change), how many advisories it holds, and every file
that did not load with why. With ID (an advisory id, or a CVE), print the
advisories of that id: the packages they affect in each distribution and
release, and the fixed versions.`,
		Example: `  tasuki hosts advisories
  tasuki hosts advisories CVE-2020-25681`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return usageErr("--output %q: expected text or json", output)
			}
			c, err := a.needServer(cmd)
			if err != nil {
				return err
			}
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			st, err := c.Advisories(cmd.Context(), id)
			if err != nil {
				return remoteErr(c, err)
			}
			if output == "json" {
				return writeJSON(a.io.Out, st)
			}
			if st.Dir == "" {
				fmt.Fprintln(a.io.Out, "this server has no advisories (set advisories in its configuration to a directory of OSV files)")
				return nil
			}
			loaded := "never"
			if st.LoadedAt != nil {
				loaded = localTime(*st.LoadedAt)
			}
			noun := "advisories"
			if st.Advisories == 1 {
				noun = "advisory"
			}
			fmt.Fprintf(a.io.Out, "%d %s from %s, loaded %s\n", st.Advisories, noun, st.Dir, loaded)
			if st.Error != "" {
				fmt.Fprintf(a.io.Out, "error: %s\n", st.Error)
			}
			for _, e := range st.Errors {
				fmt.Fprintf(a.io.Out, "not loaded: %s: %s\n", e.Path, e.Error)
			}
			if len(st.Matches) > 0 {
				fmt.Fprintln(a.io.Out)
				t := newTable(a.io.Out, "ADVISORY", "ECOSYSTEM", "PACKAGE", "FIXED", "SUMMARY")
				for _, adv := range st.Matches {
					for _, af := range adv.Affected {
						t.row(adv.ID, af.Ecosystem, af.Package, orDash(strings.Join(af.Fixed, ",")), orDash(adv.Summary))
					}
				}
				t.flush()
			}
			if len(st.Errors) > 0 || st.Error != "" {
				return &exitError{code: exitFailed, err: fmt.Errorf("%d advisory files did not load", len(st.Errors))}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
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

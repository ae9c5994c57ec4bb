// Package hostfacts collects what a host is and runs: its name and machine
// id, operating system (os-release), kernel, architecture, CPUs, memory and
// disks, installed packages with their source packages (from dpkg's status
// database, or rpm's through the rpm command), systemd services and their
// states, listening sockets with the process and package behind each, and
// container runtimes. Workers and agents send it to the server as a Report,
// and Diff turns two reports of a host into the changes kept as its history.
//
// Everything is read through a root directory ("/" for the host itself),
// opened as an os.Root so that a host image or a test fixture is read the
// same way and nothing outside it is. Some facts exist only for the live
// host and are left out under another root: disk sizes (statfs), the
// active state of services (systemctl, which asks the running systemd), and
// the rpm database unless rpm is installed here. What could not be read is
// said in the report's warnings; collection fails only when the root cannot
// be opened or a bound is passed (MaxPackages, MaxReportBytes), so one
// unreadable file never costs the rest of the report.
//
// Parsers never panic on malformed input; the dpkg status parser is fuzzed.
package hostfacts

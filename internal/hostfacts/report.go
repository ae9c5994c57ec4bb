package hostfacts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tasuki-dev/tasuki/internal/pkgver"
)

// ReportVersion is the version of the Report format. A change that would
// make an older server misread a report raises it; adding a field does not.
const ReportVersion = 1

// Bounds of a report: a collector refuses to produce more, and a server
// refuses to read more.
const (
	// MaxReportBytes bounds a report's JSON encoding.
	MaxReportBytes = 16 << 20
	// MaxPackages bounds the installed packages of a report. A large
	// server has a few thousand.
	MaxPackages = 50_000
	// MaxServices, MaxListeners and MaxDisks bound the other lists.
	MaxServices  = 10_000
	MaxListeners = 10_000
	MaxDisks     = 1_000
	// MaxWarnings bounds the warnings; later ones are counted in the last.
	MaxWarnings = 100
)

// Report is what a host reports about itself. Field names are part of the
// protocol between workers and the server and of the API: they do not
// change once released.
type Report struct {
	Version     int       `json:"version"`
	CollectedAt time.Time `json:"collected_at"`
	Hostname    string    `json:"hostname"`
	MachineID   string    `json:"machine_id,omitempty"`
	OS          OS        `json:"os"`
	Kernel      string    `json:"kernel,omitempty"`
	Arch        string    `json:"arch,omitempty"`
	CPU         CPU       `json:"cpu"`
	Memory      Memory    `json:"memory"`
	Disks       []Disk    `json:"disks"`
	// Scheme is how this host's package versions compare: "deb" or "rpm";
	// "" when it has neither package database.
	Scheme     pkgver.Scheme `json:"scheme,omitempty"`
	Packages   []Package     `json:"packages"`
	Services   []Service     `json:"services"`
	Listeners  []Listener    `json:"listeners"`
	Containers []Runtime     `json:"container_runtimes"`
	// Warnings say what could not be collected and why.
	Warnings []string `json:"warnings,omitempty"`
}

// OS is the operating system, from os-release.
type OS struct {
	ID              string   `json:"id,omitempty"`               // debian, ubuntu, rocky
	VersionID       string   `json:"version_id,omitempty"`       // 12, 22.04, 9.4
	VersionCodename string   `json:"version_codename,omitempty"` // bookworm
	IDLike          []string `json:"id_like,omitempty"`          // rhel centos fedora
	PrettyName      string   `json:"pretty_name,omitempty"`
}

// CPU is the processors the kernel shows.
type CPU struct {
	Count int    `json:"count"`
	Model string `json:"model,omitempty"`
}

// Memory is in bytes.
type Memory struct {
	Total     uint64 `json:"total"`
	Available uint64 `json:"available"`
}

// Disk is a mounted file system. Sizes, in bytes, are known for the live
// host only.
type Disk struct {
	Mount  string `json:"mount"`
	Device string `json:"device"`
	FSType string `json:"fstype"`
	Size   uint64 `json:"size,omitempty"`
	Used   uint64 `json:"used,omitempty"`
	Free   uint64 `json:"free,omitempty"` // available to unprivileged users
}

// Package is an installed package. Source and SourceVersion are always
// set: to the source package's when the database names one, else to the
// package's own name and version. Debian advisories name source packages,
// so a search for dnsmasq finds the host that has only dnsmasq-base.
type Package struct {
	Name          string `json:"name"`
	Version       string `json:"version"` // with the epoch: 1:2.3-4 (deb), 1:2.3-4.el9 (rpm)
	Arch          string `json:"arch,omitempty"`
	Source        string `json:"source"`
	SourceVersion string `json:"source_version"`
}

// Service is a systemd service unit.
type Service struct {
	Unit string `json:"unit"` // dnsmasq.service
	// Enabled is the unit file's state: enabled, disabled, static,
	// masked, ... ("" if unknown).
	Enabled string `json:"enabled,omitempty"`
	// Active and Sub are the unit's states in the running systemd (active
	// running, inactive dead, failed failed); "" when that is not known
	// (another root, or no systemd running).
	Active string `json:"active,omitempty"`
	Sub    string `json:"sub,omitempty"`
}

// Listener is a listening TCP socket or a bound UDP socket.
type Listener struct {
	Proto   string `json:"proto"`   // tcp, tcp6, udp, udp6
	Address string `json:"address"` // 0.0.0.0, ::, 127.0.0.1
	Port    int    `json:"port"`
	PID     int    `json:"pid,omitempty"`
	Process string `json:"process,omitempty"` // the command name (comm)
	Exe     string `json:"exe,omitempty"`
	Package string `json:"package,omitempty"` // the package that installed Exe
}

// Runtime is a container runtime found on the host, with what showed it.
type Runtime struct {
	Name     string `json:"name"`     // docker, containerd, podman, cri-o
	Evidence string `json:"evidence"` // /run/docker.sock, /usr/bin/podman
}

// Encode writes r as JSON, refusing a report over MaxReportBytes.
func (r *Report) Encode() ([]byte, error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode host report: %w", err)
	}
	if len(b) > MaxReportBytes {
		return nil, fmt.Errorf("host report: %d bytes encoded, more than the %d a server takes", len(b), MaxReportBytes)
	}
	return b, nil
}

// ErrTooLarge is returned by Decode for a report over MaxReportBytes.
var ErrTooLarge = fmt.Errorf("host report: more than %d bytes", MaxReportBytes)

// Decode reads a report as a server receives it: at most MaxReportBytes,
// then Check. Unknown fields are ignored, so newer workers can report to an
// older server.
func Decode(rd io.Reader) (*Report, error) {
	b, err := io.ReadAll(io.LimitReader(rd, MaxReportBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read host report: %w", err)
	}
	if len(b) > MaxReportBytes {
		return nil, ErrTooLarge
	}
	var r Report
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("host report: %w", err)
	}
	if dec.More() {
		return nil, errors.New("host report: data after the JSON object")
	}
	if err := r.Check(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Check refuses a report a server should not store: an unknown format
// version, no hostname, a version scheme it does not know, lists over their
// bounds, or packages without a name or version.
func (r *Report) Check() error {
	switch {
	case r.Version != ReportVersion:
		return fmt.Errorf("host report: version %d, this server reads version %d", r.Version, ReportVersion)
	case r.Hostname == "":
		return errors.New("host report: no hostname")
	case r.Scheme != "" && !r.Scheme.Valid():
		return fmt.Errorf("host report: version scheme %q: expected deb or rpm", r.Scheme)
	case len(r.Packages) > MaxPackages:
		return fmt.Errorf("host report: %d packages, more than %d", len(r.Packages), MaxPackages)
	case len(r.Services) > MaxServices:
		return fmt.Errorf("host report: %d services, more than %d", len(r.Services), MaxServices)
	case len(r.Listeners) > MaxListeners:
		return fmt.Errorf("host report: %d listening sockets, more than %d", len(r.Listeners), MaxListeners)
	case len(r.Disks) > MaxDisks:
		return fmt.Errorf("host report: %d disks, more than %d", len(r.Disks), MaxDisks)
	case len(r.Warnings) > MaxWarnings:
		return fmt.Errorf("host report: %d warnings, more than %d", len(r.Warnings), MaxWarnings)
	}
	for i, p := range r.Packages {
		if p.Name == "" || p.Version == "" {
			return fmt.Errorf("host report: package %d: no name or version", i+1)
		}
	}
	return nil
}

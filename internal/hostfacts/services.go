package hostfacts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path"
	"strings"
)

// unitDirs are where unit files are, in systemd's order of precedence.
var unitDirs = []string{"etc/systemd/system", "run/systemd/system", "usr/local/lib/systemd/system", "usr/lib/systemd/system", "lib/systemd/system"}

// services lists the service units: their unit file states from systemctl
// (--root, which reads the files and needs no running systemd) or, without
// systemctl, from the unit files themselves; and for the live host the
// active states from the running systemd, when there is one.
func (c *collector) services(ctx context.Context, r *Report) {
	byUnit := map[string]*Service{}
	get := func(unit string) *Service {
		s := byUnit[unit]
		if s == nil {
			s = &Service{Unit: unit}
			byUnit[unit] = s
		}
		return s
	}
	// systemctl exits 1 when it lists nothing, after printing "[]": its
	// answer counts whenever it printed one.
	out, err := c.opts.Run(ctx, "systemctl", "--root="+c.root, "list-unit-files", "--type=service", "--output=json", "--no-pager")
	files, perr := ParseSystemctlUnitFiles(out)
	switch {
	case err == nil && perr != nil:
		c.warnf("systemctl list-unit-files: %v", perr)
		fallthrough
	case err != nil && perr != nil:
		if err != nil && !errors.Is(err, exec.ErrNotFound) {
			c.warnf("systemctl list-unit-files: %v; the unit files are read instead", err)
		}
		for unit, state := range c.unitFiles() {
			get(unit).Enabled = state
		}
	default:
		for _, f := range files {
			get(f.Unit).Enabled = f.Enabled
		}
	}
	if c.live {
		if out, ok := c.runQuiet(ctx, "systemctl", "list-units", "--all", "--type=service", "--output=json", "--no-pager"); ok {
			units, err := ParseSystemctlUnits(out)
			if err != nil {
				c.warnf("systemctl list-units: %v", err)
			}
			for _, u := range units {
				s := get(u.Unit)
				s.Active, s.Sub = u.Active, u.Sub
			}
		}
	}
	for _, unit := range sortedKeys(byUnit) {
		if len(r.Services) == MaxServices {
			c.warnf("more than %d services: the rest are left out", MaxServices)
			break
		}
		r.Services = append(r.Services, *byUnit[unit])
	}
}

// runQuiet is run for a command that fails for a reason that is no news:
// systemctl list-units where systemd does not run (a container) is said
// once, briefly.
func (c *collector) runQuiet(ctx context.Context, name string, args ...string) ([]byte, bool) {
	out, err := c.opts.Run(ctx, name, args...)
	if err != nil {
		if !errors.Is(err, exec.ErrNotFound) {
			c.warnf("services' active states unknown: %s %s: %v", name, args[0], err)
		}
		return nil, false
	}
	return out, true
}

// ParseSystemctlUnitFiles reads systemctl list-unit-files --output=json:
// [{"unit_file": "ssh.service", "state": "enabled", "preset": ...}].
func ParseSystemctlUnitFiles(out []byte) ([]Service, error) {
	var rows []struct {
		UnitFile string `json:"unit_file"`
		State    string `json:"state"`
	}
	if err := json.Unmarshal(out, &rows); err != nil {
		return nil, fmt.Errorf("read its JSON: %w", err)
	}
	var s []Service
	for _, r := range rows {
		if r.UnitFile != "" {
			s = append(s, Service{Unit: r.UnitFile, Enabled: r.State})
		}
	}
	return s, nil
}

// ParseSystemctlUnits reads systemctl list-units --output=json:
// [{"unit": "ssh.service", "load": "loaded", "active": "active",
// "sub": "running", "description": ...}].
func ParseSystemctlUnits(out []byte) ([]Service, error) {
	var rows []struct {
		Unit   string `json:"unit"`
		Active string `json:"active"`
		Sub    string `json:"sub"`
	}
	if err := json.Unmarshal(out, &rows); err != nil {
		return nil, fmt.Errorf("read its JSON: %w", err)
	}
	var s []Service
	for _, r := range rows {
		if r.Unit != "" {
			s = append(s, Service{Unit: r.Unit, Active: r.Active, Sub: r.Sub})
		}
	}
	return s, nil
}

// unitFiles reads the unit file states of the root's service units
// without systemctl, as systemctl names them: masked (linked to /dev/null
// in /etc), alias (a link under another name), enabled (linked from a
// .wants or .requires directory of /etc/systemd/system; for a template,
// its default instance), indirect (a template with another instance
// enabled), disabled (it has an [Install] section saying what wants it) or
// static.
func (c *collector) unitFiles() map[string]string {
	states := map[string]string{}
	defaults := map[string]string{} // template -> its DefaultInstance
	for _, dir := range unitDirs {
		entries, err := fs.ReadDir(c.fsys, dir)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				c.warnf("read %s: %v", c.path(dir), unwrapPath(err))
			}
			continue
		}
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || !strings.HasSuffix(name, ".service") || states[name] != "" {
				continue
			}
			p := path.Join(dir, name)
			if e.Type()&fs.ModeSymlink != 0 {
				target, err := fs.ReadLink(c.fsys, p)
				switch {
				case err != nil:
					continue
				case target == "/dev/null":
					states[name] = "masked"
					continue
				case path.Base(target) != name:
					states[name] = "alias" // another name of a unit listed under its own
					continue
				}
				// A link to the unit file elsewhere: read it there,
				// under the root (an absolute target too).
				if path.IsAbs(target) {
					p = strings.TrimPrefix(path.Clean(target), "/")
				} else {
					p = path.Join(dir, target)
				}
			}
			states[name] = "static"
			install, def := installSection(c.readSmall(p))
			if install {
				states[name] = "disabled"
			}
			defaults[name] = def
		}
	}
	wants, _ := fs.Glob(c.fsys, "etc/systemd/system/*.wants/*.service")
	requires, _ := fs.Glob(c.fsys, "etc/systemd/system/*.requires/*.service")
	for _, p := range append(wants, requires...) {
		name := path.Base(p)
		// An instance (getty@tty1.service) is listed by systemctl as its
		// template: enabled if it is the template's default instance,
		// else indirect.
		state := "enabled"
		if at := strings.IndexByte(name, '@'); at > 0 && name[at+1:] != ".service" {
			if tmpl := name[:at] + "@.service"; states[tmpl] != "" {
				if instance := strings.TrimSuffix(name[at+1:], ".service"); defaults[tmpl] != instance {
					state = "indirect"
				}
				name = tmpl
			}
		}
		if states[name] != "masked" && states[name] != "enabled" {
			states[name] = state
		}
	}
	return states
}

// installSection reads a unit file's [Install] section: whether it says
// what wants or requires the unit, or what other name it has (then the
// unit can be enabled), and its DefaultInstance (for a template).
func installSection(unit string) (install bool, defaultInstance string) {
	in := false
	for line := range strings.Lines(unit) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			in = line == "[Install]"
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !in || !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "WantedBy", "RequiredBy", "UpheldBy", "Alias", "Also":
			install = true
		case "DefaultInstance":
			defaultInstance = strings.TrimSpace(val)
		}
	}
	return install, defaultInstance
}

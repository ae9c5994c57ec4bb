package osv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Advisory is one OSV entry, with the fields tasuki reads.
type Advisory struct {
	ID        string     `json:"id"`
	Modified  time.Time  `json:"modified"`
	Published time.Time  `json:"published,omitzero"`
	Withdrawn *time.Time `json:"withdrawn,omitempty"`
	Aliases   []string   `json:"aliases,omitempty"`
	Related   []string   `json:"related,omitempty"`
	Upstream  []string   `json:"upstream,omitempty"`
	Summary   string     `json:"summary,omitempty"`
	Details   string     `json:"details,omitempty"`
	Affected  []Affected `json:"affected,omitempty"`
	// References are links for a reader (the advisory, the fix).
	References []Reference `json:"references,omitempty"`
	// Path is the file the advisory was loaded from.
	Path string `json:"-"`
}

// Affected is one package of one ecosystem the advisory concerns.
type Affected struct {
	Package  Package  `json:"package"`
	Ranges   []Range  `json:"ranges,omitempty"`
	Versions []string `json:"versions,omitempty"`
}

// Package names a package in an ecosystem ("Debian:10", "dnsmasq").
type Package struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
	PURL      string `json:"purl,omitempty"`
}

// Range is a range of affected versions: a list of events. Only ECOSYSTEM
// ranges (versions as the ecosystem writes them) are evaluated; SEMVER and
// GIT ranges describe upstream projects, not distribution packages.
type Range struct {
	Type   string  `json:"type"`
	Repo   string  `json:"repo,omitempty"`
	Events []Event `json:"events"`
}

// Event is one event of a range; exactly one field is set.
type Event struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// Reference is a link of an advisory.
type Reference struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

// MaxFileBytes bounds one advisory file. The largest published entries
// (the Linux kernel's, listing every version) are a few MiB.
const MaxFileBytes = 32 << 20

// Parse reads one OSV entry and checks what matching relies on: an id,
// every affected entry's ecosystem and name, and every event holding
// exactly one of introduced, fixed, last_affected and limit.
func Parse(data []byte) (*Advisory, error) {
	var a Advisory
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("not an OSV entry: %w", err)
	}
	if dec.More() {
		return nil, errors.New("not an OSV entry: data after the JSON object")
	}
	if strings.TrimSpace(a.ID) == "" {
		return nil, errors.New(`no "id"`)
	}
	for i, af := range a.Affected {
		if af.Package.Ecosystem == "" || af.Package.Name == "" {
			return nil, fmt.Errorf("affected[%d]: no package ecosystem or name", i)
		}
		for j, r := range af.Ranges {
			if r.Type == "" {
				return nil, fmt.Errorf("affected[%d].ranges[%d]: no type", i, j)
			}
			for k, e := range r.Events {
				n := 0
				for _, v := range []string{e.Introduced, e.Fixed, e.LastAffected, e.Limit} {
					if v != "" {
						n++
					}
				}
				if n != 1 {
					return nil, fmt.Errorf("affected[%d].ranges[%d].events[%d]: %d of introduced, fixed, last_affected and limit, want exactly one", i, j, k, n)
				}
			}
		}
	}
	return &a, nil
}

// IDs are the names Lookup finds the advisory by: its id, its aliases,
// and the upstream and related vulnerabilities it names. Distributions
// name the CVEs an advisory fixes in different fields: Debian as aliases,
// Ubuntu as related or upstream.
func (a *Advisory) IDs() []string {
	ids := append([]string{a.ID}, a.Aliases...)
	ids = append(ids, a.Upstream...)
	return append(ids, a.Related...)
}

package server

// The host inventory (package inventory): every server takes hosts'
// reports (POST /worker/hosts is not forwarded to the leader: a report
// only writes the store, which orders two reports of a host itself) and
// answers searches, with the advisories of its own copy of the
// advisories directory, loaded at start and again when the directory
// changes. The leader forgets what is older than host_history.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tasuki-dev/tasuki/internal/inventory"
)

// Defaults of the inventory's settings.
const (
	DefaultHostStaleAfter = inventory.DefaultStaleAfter
	DefaultHostHistory    = 90 * 24 * time.Hour
)

// inventoryPruneInterval is how often the leader prunes the inventory.
const inventoryPruneInterval = time.Hour

// InventoryConfig is the host inventory's settings, inline in Config.
type InventoryConfig struct {
	// Advisories is a directory of security advisories in the OSV format
	// (JSON files, in subdirectories too), which `tasuki hosts --advisory
	// ID` matches hosts against; loaded at start and again when its files
	// change. "": none.
	Advisories string `yaml:"advisories"`
	// AdvisoriesInterval is how often the advisories directory is checked
	// for changes (default 15s): a stat of each of its files.
	AdvisoriesInterval Duration `yaml:"advisories_interval"`
	// HostStaleAfter is how long after its last report a host is stale
	// (default 3h: three missed reports of a worker's hourly default).
	HostStaleAfter Duration `yaml:"host_stale_after"`
	// HostHistory is how long a host's events are kept, and how long a
	// host that stopped reporting is kept before it is forgotten (default
	// 90d; 0 keeps everything).
	HostHistory Duration `yaml:"host_history"`
}

// DefaultInventoryConfig is the inventory's settings before any file,
// variable or flag.
func DefaultInventoryConfig() InventoryConfig {
	return InventoryConfig{HostStaleAfter: Duration(DefaultHostStaleAfter), HostHistory: Duration(DefaultHostHistory),
		AdvisoriesInterval: Duration(inventory.AdvisoryPoll)}
}

// applyInventoryEnv reads TASUKI_ADVISORIES, TASUKI_ADVISORIES_INTERVAL,
// TASUKI_HOST_STALE_AFTER and TASUKI_HOST_HISTORY.
func applyInventoryEnv(c *Config, lookup func(string) (string, bool), errs *[]error) {
	if v, ok := lookup("TASUKI_ADVISORIES"); ok && v != "" {
		c.Advisories = v
	}
	for _, d := range []struct {
		key string
		dst *Duration
	}{{"TASUKI_ADVISORIES_INTERVAL", &c.AdvisoriesInterval}, {"TASUKI_HOST_STALE_AFTER", &c.HostStaleAfter},
		{"TASUKI_HOST_HISTORY", &c.HostHistory}} {
		if v, ok := lookup(d.key); ok && v != "" {
			n, err := ParseDuration(v)
			if err != nil {
				*errs = append(*errs, fmt.Errorf("%s: %w", d.key, err))
				continue
			}
			*d.dst = Duration(n)
		}
	}
}

// validateInventory checks the inventory's settings.
func (c *InventoryConfig) validateInventory() []error {
	var errs []error
	if c.Advisories != "" {
		if err := inventory.CheckDir(c.Advisories); err != nil {
			errs = append(errs, err)
		}
	}
	if c.HostStaleAfter < Duration(time.Minute) {
		errs = append(errs, fmt.Errorf("host_stale_after: must be at least 1m, got %s", c.HostStaleAfter.D()))
	}
	if c.AdvisoriesInterval < Duration(10*time.Millisecond) {
		errs = append(errs, fmt.Errorf("advisories_interval: must be at least 10ms, got %s", c.AdvisoriesInterval.D()))
	}
	if c.HostHistory < 0 {
		errs = append(errs, errors.New("host_history: must be 0 (keep everything) or more"))
	}
	return errs
}

// setupInventory makes the inventory the API serves and loads the
// advisories once; a directory that cannot be read fails the start.
func (s *Server) setupInventory(ctx context.Context) error {
	s.inventory = &inventory.Service{Store: s.store, StaleAfter: s.cfg.HostStaleAfter.D(), Now: s.now, Log: s.log}
	if s.cfg.Advisories == "" {
		return nil
	}
	adv := inventory.NewAdvisories(s.cfg.Advisories, s.log)
	if _, err := adv.Load(ctx); err != nil {
		return fmt.Errorf("advisories: %w", err)
	}
	s.inventory.AdvisoryDB = adv
	return nil
}

// watchAdvisories loads the advisories again whenever their directory
// changes, until ctx ends, and returns what stops it (and waits for it).
func (s *Server) watchAdvisories(ctx context.Context) func() {
	if s.inventory == nil || s.inventory.AdvisoryDB == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.inventory.AdvisoryDB.Watch(ctx, s.cfg.AdvisoriesInterval.D())
	}()
	return func() { cancel(); <-done }
}

// startInventoryPrune forgets what is older than host_history while this
// server leads, now and then every inventoryPruneInterval, and returns
// what stops it (and waits for it).
func (s *Server) startInventoryPrune(ctx context.Context) func() {
	if s.cfg.HostHistory <= 0 || s.inventory == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(inventoryPruneInterval)
		defer t.Stop()
		for {
			before := s.now().Add(-s.cfg.HostHistory.D())
			n, err := s.inventory.Prune(ctx, before)
			if err != nil && ctx.Err() == nil {
				s.log.Error("prune the host inventory; trying again at the next pass", "err", err)
			}
			if n.Events+n.Hosts+n.Packages > 0 {
				s.log.Info("pruned the host inventory", "events", n.Events, "hosts", n.Hosts, "package_versions", n.Packages,
					"older_than", before)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

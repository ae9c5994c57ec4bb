package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/tasuki-dev/tasuki/internal/artifact/s3store"
	"github.com/tasuki-dev/tasuki/internal/lease"
	"github.com/tasuki-dev/tasuki/internal/logs"
)

// Config is the server's configuration. It is read from a YAML file (every
// key optional), then environment variables TASUKI_<KEY> (upper case), then
// command-line flags; each later source overrides the earlier.
type Config struct {
	// Addr is the HTTP listen address.
	Addr string `yaml:"addr"`
	// Home is the data directory (store, logs, scratch files).
	Home string `yaml:"home"`
	// DB selects the store: empty for the embedded SQLite file in Home, or a
	// PostgreSQL URL (postgres://user@host:5432/db).
	DB string `yaml:"db"`
	// Pipelines is the directory of pipeline files, watched for changes.
	Pipelines string `yaml:"pipelines"`
	// Workers is the number of task attempts this server's in-process
	// executor runs at once (0: none; remote workers run everything but
	// the server-only attempts, which have ServerOnlySlots of their own).
	Workers int `yaml:"workers"`
	// Labels are the labels of the in-process executor; a task with labels
	// runs only on workers having all of them.
	Labels []string `yaml:"labels"`
	// Parallel bounds the attempts in flight across all workers, running or
	// waiting for a worker to take them.
	Parallel int `yaml:"parallel"`
	// LeaseTimeout is how long a remote worker's lease lives without a
	// heartbeat; workers send one every third of it. A worker that vanishes
	// loses its attempts after this long.
	LeaseTimeout Duration `yaml:"lease_timeout"`
	// WatchdogTimeout bounds how long the in-process executor's running
	// attempts outlive a server that stops answering (frozen: SIGSTOP, a
	// paused VM, stuck in the kernel): its watchdog process ends them this
	// long after the server's last keepalive, and they are recorded
	// preempted and run again. Zero means a third of LeaseTimeout, which
	// keeps them from running beside another server's retry of them.
	WatchdogTimeout Duration `yaml:"watchdog_timeout"`
	// LeaderTTL is how long the leadership lease of a server on PostgreSQL
	// lives without renewal: after the leader dies, another server takes
	// over within about this long.
	LeaderTTL Duration `yaml:"leader_ttl"`
	// Advertise is the URL other servers reach this one at, to forward what
	// only the leader can do (default http://ADDR).
	Advertise string `yaml:"advertise"`
	// Pools are named slot counts that tasks draw from (pool: warehouse).
	Pools map[string]int `yaml:"pools"`
	// Timezone is the IANA zone of schedules that do not name one.
	Timezone string `yaml:"timezone"`
	// Retention is how long finished runs are kept ("90d", "720h"); 0 keeps
	// everything.
	Retention Duration `yaml:"retention"`
	// DrainGrace is how long running attempts get to finish on SIGTERM
	// before they are handed back.
	DrainGrace Duration `yaml:"drain_grace"`
	// ReloadInterval is how often the pipelines directory is checked.
	ReloadInterval Duration `yaml:"reload_interval"`
	// TickInterval is how often the scheduler looks for due intervals and
	// queued runs (it also wakes at the next fire time).
	TickInterval Duration `yaml:"tick_interval"`
	// DeadlineInterval is how often the leader judges every run with a
	// deadline (it also does when a run's progress is observed).
	DeadlineInterval Duration `yaml:"deadline_interval"`
	// LogLimit bounds each attempt's log on this server's disk ("100MiB";
	// "none"; 0 is logs.DefaultLimit): past it, the first and last parts
	// are kept with a line saying what was dropped (logs.Files.Limit).
	LogLimit logs.Size `yaml:"log_limit"`
	// SecretsDir is a directory of secrets, one file each named like the
	// secret (a Kubernetes or Docker secrets mount, such as /run/secrets).
	// Attempts look a secret up in the server's TASUKI_SECRET_<NAME>
	// variables, then here, then in the secret store.
	SecretsDir string `yaml:"secrets_dir"`
	// SessionTTL is how long a web UI session lasts after its login
	// (default DefaultSessionTTL); logging out or an admin ends it sooner.
	SessionTTL Duration `yaml:"session_ttl"`
	// OIDC is single sign-on through an OpenID Connect provider (oidc.go).
	OIDC OIDCConfig `yaml:",inline"`
	// NotifyConfig is notifications: server-wide routes, SMTP and the
	// public URL links point to (notify.go).
	NotifyConfig `yaml:",inline"`
	// CacheConfig bounds the content cache (cache.go).
	CacheConfig `yaml:",inline"`
	// InventoryConfig is the host inventory: advisories, staleness and
	// history (inventory.go).
	InventoryConfig `yaml:",inline"`
	// ArtifactStore is where the output files of tasks are kept: "" for
	// the directory artifacts in Home, or the bucket of an S3-compatible
	// store, s3://BUCKET/PREFIX?endpoint=HOST:PORT, which every server of
	// a cluster must share (see artifacts.go).
	ArtifactStore string `yaml:"artifact_store"`
	// ArtifactMaxFile bounds one output file a remote worker uploads
	// ("1GiB", the default; "none" for no bound), so a worker token
	// cannot fill the store with one request.
	ArtifactMaxFile logs.Size `yaml:"artifact_max_file"`

	// Network and browser security (transport.go, docs/security.md).

	// TLSCert and TLSKey are PEM files of the server's certificate and key;
	// both or neither. Either file changing is picked up at the next
	// connection.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// ClientCA is a PEM file of the CAs whose client certificates workers
	// must present (mutual TLS); needs TLS.
	ClientCA string `yaml:"client_ca"`
	// ClientAuth says which routes need a client certificate when ClientCA
	// is set: "workers" (the worker protocol; the default) or "all".
	ClientAuth string `yaml:"client_auth"`
	// CA is a PEM file of the CAs this server trusts when it forwards to
	// the leader over TLS (default: the system's).
	CA string `yaml:"ca"`
	// AllowedHosts are the host names requests may be sent to besides
	// localhost and IP addresses (NAME or NAME:PORT): the names people and
	// workers use for this server. Other names are refused (DNS rebinding).
	AllowedHosts []string `yaml:"allowed_hosts"`
	// CORSOrigins are the web origins allowed to call the API from a
	// browser (https://ui.example.com); none by default.
	CORSOrigins []string `yaml:"cors_origins"`
	// InsecureNetwork allows listening on a non-loopback address without
	// TLS, where tokens and logs cross the network in clear.
	InsecureNetwork bool `yaml:"insecure_network"`
}

// Duration is a time.Duration in configuration: Go syntax ("90s", "1h30m")
// or a number of days ("90d").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalText reads "90d" or a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration in Go syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// ParseDuration reads a Go duration or a whole number of days ("90d").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("duration %q: expected a number of days like 90d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("duration %q: expected a duration like 30s, 5m, 1h30m or 90d", s)
	}
	return v, nil
}

// MinWatchdogTimeout is the shortest watchdog_timeout: keepalives go every
// quarter of it, and a server busy for that long must not look frozen.
const MinWatchdogTimeout = 100 * time.Millisecond

// watchdogTimeout is WatchdogTimeout, or a third of LeaseTimeout for 0: the
// attempts of a frozen server are gone long before another server, which
// holds a lost attempt of the in-process executor for LeaseTimeout after
// it takes over, may run them again.
func (c *Config) watchdogTimeout() time.Duration {
	if c.WatchdogTimeout > 0 {
		return c.WatchdogTimeout.D()
	}
	return c.LeaseTimeout.D() / 3
}

// ServerOnlySlots is how many server-only attempts (inventory tasks, which
// read this server's store) the server runs at once, besides and whatever
// its Workers: no remote worker may run them. Each is a few store reads.
const ServerOnlySlots = 4

// DefaultConfig is the configuration before any file, variable or flag.
func DefaultConfig() Config {
	return Config{
		Addr:             "127.0.0.1:8080",
		Home:             ".tasuki",
		Pipelines:        "pipelines",
		Workers:          4,
		Parallel:         64,
		LeaseTimeout:     Duration(30 * time.Second),
		LeaderTTL:        Duration(5 * time.Second),
		Timezone:         "UTC",
		Retention:        Duration(90 * 24 * time.Hour),
		DrainGrace:       Duration(30 * time.Second),
		ReloadInterval:   Duration(2 * time.Second),
		TickInterval:     Duration(time.Second),
		DeadlineInterval: Duration(DefaultDeadlineInterval),
		SessionTTL:       Duration(DefaultSessionTTL),
		CacheConfig:      DefaultCacheConfig(),
		InventoryConfig:  DefaultInventoryConfig(),
		ArtifactMaxFile:  lease.DefaultArtifactMaxFile,
	}
}

// LoadConfigFile reads a YAML configuration over c. Unknown keys are errors
// (with line and column), so a typo never silently does nothing.
func LoadConfigFile(c *Config, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read configuration: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data), yaml.DisallowUnknownField())
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("configuration %s: %s", path, yaml.FormatError(err, false, true))
	}
	return nil
}

// ApplyEnv overrides c with TASUKI_<KEY> variables from lookup (os.LookupEnv
// in production): TASUKI_ADDR, TASUKI_HOME, TASUKI_DB, TASUKI_PARALLEL,
// TASUKI_LABELS ("gpu,spot"), TASUKI_LEASE_TIMEOUT, TASUKI_WATCHDOG_TIMEOUT,
// TASUKI_LEADER_TTL,
// TASUKI_ADVERTISE, TASUKI_PIPELINES, TASUKI_WORKERS,
// TASUKI_POOLS ("warehouse=4,gpu=1"), TASUKI_TIMEZONE, TASUKI_RETENTION,
// TASUKI_DRAIN_GRACE, TASUKI_RELOAD_INTERVAL, TASUKI_TICK_INTERVAL,
// TASUKI_DEADLINE_INTERVAL,
// TASUKI_TLS_CERT, TASUKI_TLS_KEY, TASUKI_CLIENT_CA, TASUKI_CLIENT_AUTH,
// TASUKI_CA, TASUKI_ALLOWED_HOSTS and TASUKI_CORS_ORIGINS (comma-separated),
// TASUKI_INSECURE_NETWORK (true or false), TASUKI_SECRETS_DIR, and the
// notification settings applyNotifyEnv reads (TASUKI_PUBLIC_URL,
// TASUKI_NOTIFY, TASUKI_SMTP_*), the cache's bounds applyCacheEnv
// reads (TASUKI_CACHE_MAX_BYTES, TASUKI_CACHE_TTL), the inventory's
// applyInventoryEnv reads (TASUKI_ADVISORIES, TASUKI_ADVISORIES_INTERVAL,
// TASUKI_HOST_STALE_AFTER, TASUKI_HOST_HISTORY), TASUKI_ARTIFACT_STORE and
// TASUKI_ARTIFACT_MAX_FILE.
func ApplyEnv(c *Config, lookup func(string) (string, bool)) error {
	var errs []error
	str := func(key string, dst *string) {
		if v, ok := lookup(key); ok && v != "" {
			*dst = v
		}
	}
	dur := func(key string, dst *Duration) {
		if v, ok := lookup(key); ok && v != "" {
			d, err := ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
				return
			}
			*dst = Duration(d)
		}
	}
	str("TASUKI_ADDR", &c.Addr)
	str("TASUKI_HOME", &c.Home)
	str("TASUKI_DB", &c.DB)
	str("TASUKI_PIPELINES", &c.Pipelines)
	str("TASUKI_TIMEZONE", &c.Timezone)
	str("TASUKI_SECRETS_DIR", &c.SecretsDir)
	str("TASUKI_ARTIFACT_STORE", &c.ArtifactStore)
	if v, ok := lookup("TASUKI_WORKERS"); ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("TASUKI_WORKERS: expected a number, got %q", v))
		} else {
			c.Workers = n
		}
	}
	if v, ok := lookup("TASUKI_PARALLEL"); ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("TASUKI_PARALLEL: expected a number, got %q", v))
		} else {
			c.Parallel = n
		}
	}
	if v, ok := lookup("TASUKI_LABELS"); ok && v != "" {
		c.Labels = strings.Split(v, ",")
	}
	if v, ok := lookup("TASUKI_POOLS"); ok && v != "" {
		pools, err := ParsePools(strings.Split(v, ","))
		if err != nil {
			errs = append(errs, fmt.Errorf("TASUKI_POOLS: %w", err))
		} else {
			c.Pools = pools
		}
	}
	dur("TASUKI_RETENTION", &c.Retention)
	dur("TASUKI_LEASE_TIMEOUT", &c.LeaseTimeout)
	dur("TASUKI_WATCHDOG_TIMEOUT", &c.WatchdogTimeout)
	dur("TASUKI_LEADER_TTL", &c.LeaderTTL)
	str("TASUKI_ADVERTISE", &c.Advertise)
	dur("TASUKI_DRAIN_GRACE", &c.DrainGrace)
	dur("TASUKI_RELOAD_INTERVAL", &c.ReloadInterval)
	dur("TASUKI_TICK_INTERVAL", &c.TickInterval)
	dur("TASUKI_DEADLINE_INTERVAL", &c.DeadlineInterval)
	dur("TASUKI_SESSION_TTL", &c.SessionTTL)
	str("TASUKI_OIDC_ISSUER", &c.OIDC.Issuer)
	str("TASUKI_OIDC_CLIENT_ID", &c.OIDC.ClientID)
	str("TASUKI_OIDC_CLIENT_SECRET", &c.OIDC.ClientSecret)
	str("TASUKI_OIDC_CLIENT_SECRET_FILE", &c.OIDC.ClientSecretFile)
	str("TASUKI_OIDC_REDIRECT_URL", &c.OIDC.RedirectURL)
	str("TASUKI_OIDC_ROLE_CLAIM", &c.OIDC.RoleClaim)
	applyTransportEnv(c, lookup, &errs)
	applyNotifyEnv(c, lookup, &errs)
	applyCacheEnv(c, lookup, &errs)
	applyInventoryEnv(c, lookup, &errs)
	size := func(key string, dst *logs.Size) {
		if v, ok := lookup(key); ok && v != "" {
			n, err := logs.ParseSize(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
				return
			}
			*dst = n
		}
	}
	size("TASUKI_LOG_LIMIT", &c.LogLimit)
	size("TASUKI_ARTIFACT_MAX_FILE", &c.ArtifactMaxFile)
	return errors.Join(errs...)
}

// ParsePools reads pool definitions written as name=slots.
func ParsePools(defs []string) (map[string]int, error) {
	pools := map[string]int{}
	for _, d := range defs {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		name, n, ok := strings.Cut(d, "=")
		slots, err := strconv.Atoi(n)
		if !ok || name == "" || err != nil || slots < 1 {
			return nil, fmt.Errorf("pool %q: expected name=slots with slots >= 1", d)
		}
		pools[name] = slots
	}
	return pools, nil
}

// adoptionLeaseTimeout is the shortest lease_timeout with which remote
// workers keep their attempts across a failover. A worker ends its
// attempts two thirds of lease_timeout after the last heartbeat answered,
// which may be a third of it old when the leader dies; a new leader
// answers within leader_ttl and a third (its polls) plus its start:
// lease_timeout/3 > 4/3 leader_ttl + a start, so four times leader_ttl
// plus a few seconds.
func (c *Config) adoptionLeaseTimeout() time.Duration {
	return 4*c.LeaderTTL.D() + 3*time.Second
}

// Validate checks the configuration as a whole.
func (c *Config) Validate() error {
	var errs []error
	if c.Workers < 0 {
		errs = append(errs, fmt.Errorf("workers: must be 0 or more, got %d", c.Workers))
	}
	if c.Parallel < 1 {
		errs = append(errs, fmt.Errorf("parallel: must be 1 or more, got %d", c.Parallel))
	}
	if c.LeaderTTL < Duration(time.Second) {
		errs = append(errs, fmt.Errorf("leader_ttl: must be at least 1s, got %s", c.LeaderTTL.D()))
	}
	if c.LeaseTimeout < Duration(time.Second) {
		errs = append(errs, fmt.Errorf("lease_timeout: must be at least 1s, got %s", c.LeaseTimeout.D()))
	}
	if w := c.WatchdogTimeout; w != 0 && (w < Duration(MinWatchdogTimeout) || w >= c.LeaseTimeout) {
		errs = append(errs, fmt.Errorf("watchdog_timeout: must be at least %s and less than lease_timeout (%s), or 0 for a third of it; got %s",
			MinWatchdogTimeout, c.LeaseTimeout.D(), w.D()))
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		errs = append(errs, fmt.Errorf("timezone %q: not an IANA time zone (like Asia/Tokyo)", c.Timezone))
	}
	names := make([]string, 0, len(c.Pools))
	for name := range c.Pools {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if c.Pools[name] < 1 {
			errs = append(errs, fmt.Errorf("pools.%s: slots must be 1 or more", name))
		}
	}
	if c.DB != "" && !isPostgresURL(c.DB) {
		errs = append(errs, fmt.Errorf("db %q: expected a PostgreSQL URL (postgres://user@host:5432/db), or nothing for the embedded store", redactURL(c.DB)))
	}
	errs = append(errs, c.validateTransport()...)
	errs = append(errs, c.validateNotify()...)
	errs = append(errs, c.validateInventory()...)
	if c.SecretsDir != "" {
		if fi, err := os.Stat(c.SecretsDir); err != nil || !fi.IsDir() {
			errs = append(errs, fmt.Errorf("secrets_dir %q: not a directory", c.SecretsDir))
		}
	}
	if c.ReloadInterval <= 0 || c.TickInterval <= 0 {
		errs = append(errs, errors.New("reload_interval and tick_interval must be positive"))
	}
	if c.DeadlineInterval < 0 {
		errs = append(errs, errors.New("deadline_interval must be positive (0 means the default, 2s)"))
	}
	if err := checkArtifactStore(c.ArtifactStore); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkArtifactStore checks the artifact_store setting as far as it can
// without reaching the store: nothing, or an s3:// address without
// credentials in it.
func checkArtifactStore(raw string) error {
	if raw == "" {
		return nil
	}
	// Credentials in the address would be ignored (the store reads them
	// from the environment), and an address is shown in errors and logs.
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return fmt.Errorf("artifact_store %q: credentials do not go in the address: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the server's environment", u.Redacted())
	}
	if _, err := s3store.ParseURL(raw, func(string) string { return "" }); err != nil {
		return fmt.Errorf("artifact_store: %w, or nothing for the directory artifacts in home", err)
	}
	return nil
}

// artifactMaxFile is the bound the broker puts on one uploaded file
// (lease.Broker.ArtifactMaxFile, where 0 is the default): "none" is no
// bound.
func (c *Config) artifactMaxFile() int64 {
	if c.ArtifactMaxFile < 0 {
		return math.MaxInt64
	}
	return int64(c.ArtifactMaxFile)
}

func isPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// redactURL hides a password in a database URL, for messages and logs.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

package attempt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tasuki-dev/tasuki/internal/artifact"
	"github.com/tasuki-dev/tasuki/internal/engine"
	"github.com/tasuki-dev/tasuki/internal/logs"
	"github.com/tasuki-dev/tasuki/internal/shell"
	"github.com/tasuki-dev/tasuki/internal/spec"
)

// Outcome is how an attempt ended. It is stored in attempt rows, reported
// by workers and shown by the API; the engine's event is derived from it
// (Event). The string values are stable: they are in databases and on the
// wire.
type Outcome string

// Attempt outcomes. An attempt still running has the empty outcome.
const (
	Succeeded Outcome = "succeeded"
	Failed    Outcome = "failed"
	TimedOut  Outcome = "timed_out"
	// Lost: the attempt's executor vanished (a crash, an expired lease).
	// Only the server decides that an attempt is lost; no executor reports it.
	Lost Outcome = "lost"
	// Preempted: handed back by an executor that is shutting down; the
	// engine does not charge it to the retry budget.
	Preempted Outcome = "preempted"
	Cancelled Outcome = "cancelled"
)

// Outcomes lists every outcome, in the order of the constants.
func Outcomes() []Outcome {
	return []Outcome{Succeeded, Failed, TimedOut, Lost, Preempted, Cancelled}
}

// Event is the engine event that records an attempt with this outcome, or
// "" for a value that is not an outcome.
func (o Outcome) Event() engine.EventKind {
	switch o {
	case Succeeded:
		return engine.EvTaskSucceeded
	case Failed:
		return engine.EvTaskFailed
	case TimedOut:
		return engine.EvTaskTimedOut
	case Lost:
		return engine.EvTaskLost
	case Preempted:
		return engine.EvTaskPreempted
	case Cancelled:
		return engine.EvTaskCancelled
	}
	return ""
}

// Reportable reports whether an executor may end an attempt with this
// outcome: any outcome but lost, which is the server's finding.
func (o Outcome) Reportable() bool { return o != Lost && o.Event() != "" }

// Causes of stopping an attempt before it ends by itself. Executors cancel
// the context given to Kind.Run with one of them (context.WithCancelCause),
// so the kind can tell a cancelled run from an executor handing the attempt
// back.
var (
	// ErrCancelled: the run was cancelled.
	ErrCancelled = errors.New("the run was cancelled")
	// ErrPreempted: the executor is shutting down and hands the attempt back.
	// It matches shell.ErrKill: the attempt will run again, so its processes
	// end at once, with no signal they could answer by finishing their work.
	ErrPreempted error = handBack("the executor is shutting down")
	// ErrLost: the executor no longer holds the attempt (its lease is gone);
	// nothing about it will be recorded. It matches shell.ErrKill too.
	ErrLost error = handBack("the executor no longer holds the attempt")
)

// handBack is the type of the causes that hand an attempt back to run again.
type handBack string

func (e handBack) Error() string { return string(e) }

// Is makes a hand-back match shell.ErrKill.
func (e handBack) Is(target error) bool { return target == shell.ErrKill }

// Spec describes one attempt to the executor that runs it. The runner
// builds it once (Registry.Describe); it is the same for the in-process
// executor and, as JSON inside a lease, for remote workers.
type Spec struct {
	// Kind names the kind of work, the key of its Kind in a Registry.
	Kind string `json:"kind"`
	// Body is what the kind needs to run, in its own shape (the shell kind:
	// {"shell": "script"} or {"argv": [...]}).
	Body json.RawMessage `json:"body"`
	// Env are the attempt's variables (pipeline and task env, parameters,
	// interval, TASUKI_*), added to the executor's own environment.
	// Variables naming the executor's files (TASUKI_RESULT, TASUKI_NEED_*)
	// are the executor's to set and are ignored here.
	Env map[string]string `json:"env"`
	// Workdir is the task's working directory: absolute, or relative to the
	// executor's base directory (Host.Dir).
	Workdir string `json:"workdir,omitempty"`
	// Needs are the JSON results of the task's needs, by task id.
	Needs map[string]json.RawMessage `json:"needs,omitempty"`
	// Timeout bounds the attempt's wall-clock time; 0 means none.
	Timeout Duration `json:"timeout,omitempty"`
	// Secrets are the attempt's variables whose values are secrets, by
	// variable name; they override Env. The runner looks them up when it
	// describes the attempt; they live in memory and in the lease a
	// remote worker receives, and nowhere else: nothing stores a Spec, and
	// SecretEnv formats as a count, never as values.
	Secrets SecretEnv `json:"secrets,omitempty"`
	// Mask are further values the attempt's log masks: those of the
	// parameters declared secret (which are in Env).
	Mask []string `json:"mask,omitempty"`
	// Produces are the datasets the task produces: the executor gives the
	// attempt a metadata file for each (Host.DatasetFiles).
	Produces []string `json:"produces,omitempty"`
	// Outputs are the task's output paths or globs, relative to its
	// working directory: after a success the executor keeps the files
	// they match in the artifact store and reports them (Result.Outputs).
	Outputs []string `json:"outputs,omitempty"`
	// Artifacts are the output files of the task's needs, placed under
	// the attempt's artifacts directory (TASUKI_ARTIFACTS) before it starts.
	Artifacts []artifact.Need `json:"artifacts,omitempty"`
	// NeedFiles are the files holding the results of the needs that are
	// maps (each item's result as a JSON line, in item order), kept in
	// the artifact store, one per need (Need is its task id; Path only
	// names the file). An executor on another machine than the run's
	// places each and names it in TASUKI_NEED_<ID>, instead of a file of
	// Needs[id] (the map's counts); the run's own machine writes the same
	// file itself. A million items make a file far larger than a lease
	// should carry, so it travels apart, once per worker.
	NeedFiles []artifact.Need `json:"need_files,omitempty"`
	// Item is the map item the attempt runs for (nil for a task that is
	// not a map), and Items the items of a batch (batch: K), in order.
	Item  json.RawMessage   `json:"item,omitempty"`
	Items []json.RawMessage `json:"items,omitempty"`
}

// MaskValues are the values the attempt's log must mask: every secret's
// and Mask.
func (s *Spec) MaskValues() []string {
	if len(s.Secrets)+len(s.Mask) == 0 {
		return nil
	}
	out := make([]string, 0, len(s.Secrets)+len(s.Mask))
	for _, k := range slices.Sorted(maps.Keys(s.Secrets)) {
		out = append(out, s.Secrets[k])
	}
	return append(out, s.Mask...)
}

// Redact masks the values MaskValues names in what an attempt reports: its
// message and its result, which are stored and shown like its log, with the
// log's own masker (logs.Masker: each value and its encoded forms). A result
// holding one is decoded and its strings (and a number equal to one)
// masked, so it stays valid JSON. Registry.Run applies it, so no executor
// can forget to.
func (s *Spec) Redact(res Result) Result {
	values := s.MaskValues()
	if len(values) == 0 {
		return res
	}
	m := logs.NewMasker(values)
	res.Message = m.String(res.Message)
	if len(res.Result) > 0 {
		if masked := m.String(string(res.Result)); masked != string(res.Result) {
			dec := json.NewDecoder(strings.NewReader(string(res.Result)))
			dec.UseNumber()
			var v any
			if dec.Decode(&v) == nil {
				if out, err := json.Marshal(redactJSON(v, m.String)); err == nil {
					res.Result = out
				}
			}
		}
	}
	return res
}

// redactJSON applies redact to every string (keys included) and every
// number of a decoded JSON value.
func redactJSON(v any, redact func(string) string) any {
	switch x := v.(type) {
	case string:
		return redact(x)
	case json.Number:
		if r := redact(x.String()); r != x.String() {
			return r
		}
		return x
	case []any:
		for i := range x {
			x[i] = redactJSON(x[i], redact)
		}
		return x
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[redact(k)] = redactJSON(e, redact)
		}
		return out
	}
	return v
}

// SecretEnv maps variable names to secret values. It formats (with %v,
// %+v, %s, %#v and in slog) as the number of variables, so a Spec that
// ends up in a message or a log line does not carry the values with it.
type SecretEnv map[string]string

// String says how many secret variables there are, never their values.
func (e SecretEnv) String() string { return fmt.Sprintf("[%d secret variables]", len(e)) }

// GoString is String, for %#v.
func (e SecretEnv) GoString() string { return e.String() }

// LogValue is String, for log/slog.
func (e SecretEnv) LogValue() slog.Value { return slog.StringValue(e.String()) }

// SecretEnvPrefix starts the executor's own variables that hold secrets
// or the secret key (TASUKI_SECRET_*, see internal/secret); they are never
// passed on to an attempt.
const SecretEnvPrefix = "TASUKI_SECRET_"

// Result is how an attempt ended, as its kind (or the executor that could
// not run it) reports it.
type Result struct {
	Outcome  Outcome
	ExitCode *int // a process's exit status, when a process ran
	Message  string
	// Result is the small JSON value the attempt published, if any.
	Result json.RawMessage
	// Worker names the executor that ran the attempt when it was not the
	// runner's own (a remote worker); the attempt's row then names it.
	Worker string
	// Datasets is the metadata a succeeded attempt wrote for the datasets
	// its task produces (Host.DatasetFiles), by dataset name; a dataset it
	// wrote nothing for is absent. Each is a JSON object.
	Datasets map[string]json.RawMessage
	// Outputs are the files a succeeded attempt's Spec.Outputs matched,
	// kept in the artifact store.
	Outputs []artifact.File
	// Results are the per-item results of a batch attempt (Spec.Items), in
	// item order: one JSON value (or nil) per item the attempt reported.
	Results []json.RawMessage
	// CachedFrom is set when nothing ran: the result (and Outputs) are a
	// cache entry's, computed by that run.
	CachedFrom int64
	// CacheKey is the key a succeeded attempt of a cached task stores its
	// result under ("" when the task is not cached).
	CacheKey string
}

// Failedf is a failed Result with a formatted message: the attempt could
// not be run as described.
func Failedf(format string, args ...any) Result {
	return Result{Outcome: Failed, Message: fmt.Sprintf(format, args...)}
}

// Host is what the executor running an attempt provides on its machine.
type Host struct {
	// Environ is the executor's own environment (KEY=VALUE), which the
	// attempt's variables extend. Secrets of the executor are left out.
	Environ []string
	// Dir is where a relative Spec.Workdir starts, and the working
	// directory of an attempt that names none.
	Dir string
	// NeedFiles name the files holding the needs' results on this machine,
	// by task id; an attempt finds them in TASUKI_NEED_<ID>.
	NeedFiles map[string]string
	// ResultFile is where the attempt may write its JSON result
	// (TASUKI_RESULT).
	ResultFile string
	// Stdout and Stderr receive the attempt's output.
	Stdout, Stderr io.Writer
	// Grace is how long a process group has between SIGTERM and SIGKILL
	// when it is stopped; zero means the shell package's default.
	Grace time.Duration
	// DatasetFiles name, by dataset, the files where an attempt of a task
	// that produces datasets may write each one's metadata as a JSON
	// object (TASUKI_DATASET_<NAME>); the executor reads them back after
	// a success (ReadDatasets).
	DatasetFiles map[string]string
}

// needEnvPrefix starts the variables naming the files of the needs'
// results (TASUKI_NEED_<ID>), which the executor sets itself, as it does
// shell.ResultEnv.
const needEnvPrefix = "TASUKI_NEED_"

// DatasetEnvPrefix starts the variables naming the files where an attempt
// writes the metadata of the datasets its task produces
// (TASUKI_DATASET_<NAME>); the executor sets them.
const DatasetEnvPrefix = "TASUKI_DATASET_"

// MaxDatasetMetadata bounds the metadata an attempt may write for one
// dataset: it is stored with every update.
const MaxDatasetMetadata = 64 << 10

// DatasetFiles names the metadata files of the datasets an attempt
// produces, in dir, each file name starting with prefix (unique per
// attempt). The files are not created: an attempt that writes nothing
// records updates without metadata.
func DatasetFiles(dir, prefix string, names []string) map[string]string {
	if len(names) == 0 {
		return nil
	}
	files := make(map[string]string, len(names))
	for i, name := range names {
		// Numbered, never named after the dataset: a name is not a path.
		files[name] = filepath.Join(dir, prefix+".dataset."+strconv.Itoa(i)+".json")
	}
	return files
}

// ReadDatasets reads the dataset metadata files of a succeeded attempt
// (Host.DatasetFiles): each holds a JSON object, or nothing. A file that is
// missing or empty gives no entry; one that is not a JSON object, or is
// larger than MaxDatasetMetadata, is an error, which fails the attempt
// (like a malformed result).
func ReadDatasets(files map[string]string) (map[string]json.RawMessage, error) {
	var out map[string]json.RawMessage
	for _, name := range slices.Sorted(maps.Keys(files)) {
		f, err := os.Open(files[name])
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("dataset %s: %w", name, err)
		}
		data, err := io.ReadAll(io.LimitReader(f, MaxDatasetMetadata+1))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("dataset %s: read metadata: %w", name, err)
		}
		if len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		if len(data) > MaxDatasetMetadata {
			return nil, fmt.Errorf("dataset %s: metadata is larger than %d bytes", name, MaxDatasetMetadata)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(data, &obj); err != nil || obj == nil {
			return nil, fmt.Errorf("dataset %s: metadata in $%s%s must be a JSON object", name, DatasetEnvPrefix, spec.EnvSafe(name))
		}
		compact, _ := json.Marshal(obj)
		if out == nil {
			out = map[string]json.RawMessage{}
		}
		out[name] = compact
	}
	return out, nil
}

// WorkingDir is the attempt's working directory on this host.
func (h *Host) WorkingDir(s *Spec) string {
	switch {
	case s.Workdir == "":
		return h.Dir
	case filepath.IsAbs(s.Workdir):
		return s.Workdir
	}
	return filepath.Join(h.Dir, s.Workdir)
}

// Environment is the attempt's full environment on this host: the
// executor's own (less its TASUKI_SECRET_* variables), the attempt's
// variables and then its secrets (each sorted, so it is the same each
// time), then the files of this machine: the needs' results and where to
// write the attempt's result. Later entries win.
func (h *Host) Environment(s *Spec) []string {
	env := make([]string, 0, len(h.Environ)+len(s.Env)+len(s.Secrets)+len(h.NeedFiles)+1)
	for _, kv := range h.Environ {
		if !strings.HasPrefix(kv, SecretEnvPrefix) {
			env = append(env, kv)
		}
	}
	for _, vars := range []map[string]string{s.Env, s.Secrets} {
		for _, k := range slices.Sorted(maps.Keys(vars)) {
			if k == shell.ResultEnv || strings.HasPrefix(k, needEnvPrefix) || strings.HasPrefix(k, DatasetEnvPrefix) {
				continue
			}
			env = append(env, k+"="+vars[k])
		}
	}
	for _, id := range slices.Sorted(maps.Keys(h.NeedFiles)) {
		env = append(env, needEnvPrefix+spec.EnvSafe(id)+"="+h.NeedFiles[id])
	}
	for _, name := range slices.Sorted(maps.Keys(h.DatasetFiles)) {
		env = append(env, DatasetEnvPrefix+spec.EnvSafe(name)+"="+h.DatasetFiles[name])
	}
	if h.ResultFile != "" {
		env = append(env, shell.ResultEnv+"="+h.ResultFile)
	}
	return env
}

// Kind is one kind of work. Implement it once and register it; it then runs
// wherever attempts run.
type Kind interface {
	// Name is the kind's key in a Registry and in Spec.Kind; it is what
	// spec.Task.Kind returns for the tasks of this kind.
	Name() string
	// Body is the Spec.Body of an attempt of task t.
	Body(t *spec.Task) (json.RawMessage, error)
	// Run runs one attempt and reports how it ended. It returns only once
	// nothing the attempt started can still act: an attempt recorded as
	// ended must have no side effect afterwards. When ctx is done the
	// attempt is stopped; context.Cause(ctx) says why (ErrCancelled,
	// ErrPreempted, ErrLost). An attempt that ends by itself, even while
	// it is being stopped, is reported as what it was.
	Run(ctx context.Context, s *Spec, h *Host) Result
}

// ServerOnly is implemented by the kinds whose attempts read the server's
// own state (its store: the host inventory), which a remote worker does
// not have. The broker never leases their attempts to a remote worker; the
// server's in-process executor runs them (lease.Broker.RunServerOnly),
// whatever its workers setting. A kind answering false runs anywhere.
type ServerOnly interface {
	Kind
	ServerOnly() bool
}

// Registry holds the kinds of work and the wait conditions an executor
// can run, by name.
type Registry struct {
	kinds      map[string]Kind
	conditions map[string]Condition
}

// NewRegistry returns a registry of kinds and conditions (each a Kind or a
// Condition); two with one name are an error.
func NewRegistry(entries ...any) (*Registry, error) {
	r := &Registry{kinds: map[string]Kind{}, conditions: map[string]Condition{}}
	for _, e := range entries {
		if err := r.add(e); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// With returns a copy of r with further kinds or conditions, which replace
// those of the same name (a server adds the waits that read its store).
func (r *Registry) With(entries ...any) (*Registry, error) {
	out := &Registry{kinds: maps.Clone(r.kinds), conditions: maps.Clone(r.conditions)}
	for _, e := range entries {
		switch x := e.(type) {
		case Kind:
			delete(out.kinds, x.Name())
		case Condition:
			delete(out.conditions, x.Name())
		}
		if err := out.add(e); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r *Registry) add(e any) error {
	var name string
	switch x := e.(type) {
	case Kind:
		name = x.Name()
	case Condition:
		name = x.Name()
	default:
		return fmt.Errorf("attempt kinds: %T is neither a Kind nor a Condition", e)
	}
	if _, dup := r.kinds[name]; dup {
		return fmt.Errorf("attempt kinds: %q is registered twice", name)
	}
	if _, dup := r.conditions[name]; dup {
		return fmt.Errorf("attempt kinds: %q is registered twice", name)
	}
	switch x := e.(type) {
	case Kind:
		r.kinds[name] = x
	case Condition:
		r.conditions[name] = x
	}
	return nil
}

// Builtin returns a registry of the kinds this build of tasuki runs
// without a store: noop, and the shell kind, with a shell.Executor of the registry's
// own (and of the registries With derives from it), which lives as long as
// they do. Executors add the in-process kinds and the waits with With
// (package kinds assembles them).
func Builtin() *Registry {
	return &Registry{kinds: map[string]Kind{shellKind: Shell{Exec: new(shell.Executor)}, noopKind: Noop{}}, conditions: map[string]Condition{}}
}

// body returns the Spec.Body of task t from its kind or condition.
func (r *Registry) body(t *spec.Task) (string, json.RawMessage, error) {
	name := t.Kind()
	if k, ok := r.kinds[name]; ok {
		b, err := k.Body(t)
		return name, b, err
	}
	if c, ok := r.conditions[name]; ok {
		b, err := c.Body(t)
		return name, b, err
	}
	return name, nil, fmt.Errorf("no executor for kind %q", name)
}

// Describe builds the Spec of an attempt of task t, with its variables and
// its needs' results.
func (r *Registry) Describe(t *spec.Task, env map[string]string, needs map[string]json.RawMessage) (Spec, error) {
	name, body, err := r.body(t)
	if err != nil {
		return Spec{}, fmt.Errorf("task %s: describe %s attempt: %w", t.ID, name, err)
	}
	return Spec{Kind: name, Body: body, Env: env, Workdir: t.Workdir, Needs: needs, Timeout: Duration(t.Timeout.D()), Produces: t.Produces}, nil
}

// Run runs the attempt s with its kind; a kind this registry does not have
// fails the attempt (a worker older than the server, say).
func (r *Registry) Run(ctx context.Context, s *Spec, h *Host) Result {
	k, ok := r.kinds[s.Kind]
	if !ok {
		return Failedf("this executor cannot run attempts of kind %q", s.Kind)
	}
	return s.Redact(k.Run(ctx, s, h))
}

// Check checks the wait condition of s once; a condition this registry
// does not have fails the wait.
func (r *Registry) Check(ctx context.Context, s *Spec, h *Host, memo json.RawMessage) Observation {
	c, ok := r.conditions[s.Kind]
	if !ok {
		return Observation{Fail: fmt.Sprintf("this executor cannot check waits of kind %q", s.Kind)}
	}
	obs := c.Check(ctx, s, h, memo)
	// What a check saw is shown and stored like a result: mask it too.
	res := s.Redact(Result{Message: obs.Seen, Result: obs.Result})
	obs.Seen, obs.Result = res.Message, res.Result
	if obs.Fail != "" {
		obs.Fail = s.Redact(Result{Message: obs.Fail}).Message
	}
	return obs
}

// ServerOnly reports whether attempts of kind must run in the server's
// process (the kind implements ServerOnly and says so).
func (r *Registry) ServerOnly(kind string) bool {
	k, ok := r.kinds[kind].(ServerOnly)
	return ok && k.ServerOnly()
}

// IsCondition reports whether kind names a wait condition of this registry.
func (r *Registry) IsCondition(kind string) bool {
	_, ok := r.conditions[kind]
	return ok
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("30s"), as people write it.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String is the Go duration string.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: expected a string like \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

package main

// Checks of the deployment recipes in deploy/: that they name only flags
// tasuki has, give a stop the time the drain needs, and hold together (the
// Secrets and volumes they use exist, the images are the ones built). The
// systemd units are also checked by systemd-analyze where it exists.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/tasuki-dev/tasuki/internal/shell"
	"github.com/tasuki-dev/tasuki/internal/worker"
)

const deployDir = "../../deploy"

// serverDrainDefault is the server's drain_grace when nothing sets it
// (server.DefaultConfig); httpShutdown is how long a stopping server gives
// HTTP requests once the drain is over (the 5s of Server.Serve's shutdown).
const (
	serverDrainDefault = 30 * time.Second
	httpShutdown       = 5 * time.Second
)

// helpFlags returns the long flags `tasuki SUB --help` lists, its global
// flags included.
func helpFlags(t *testing.T, bin, sub string) map[string]bool {
	t.Helper()
	out, err := exec.Command(bin, sub, "--help").Output()
	if err != nil {
		t.Fatalf("tasuki %s --help: %v", sub, err)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-[a-z], )?--([a-z][a-z0-9-]*)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if !flags["help"] {
		t.Fatalf("no flags found in tasuki %s --help:\n%s", sub, out)
	}
	return flags
}

// flagValues reads the --name value and --name=value pairs of a command
// line (the words after the subcommand); a flag without a value ("--force"
// before another flag or at the end) maps to "".
func flagValues(words []string) (map[string]string, []string) {
	vals := map[string]string{}
	var order []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		if !strings.HasPrefix(w, "--") {
			continue
		}
		name, val, ok := strings.Cut(strings.TrimPrefix(w, "--"), "=")
		if !ok && i+1 < len(words) && !strings.HasPrefix(words[i+1], "--") {
			val = words[i+1]
			i++
		}
		vals[name] = val
		order = append(order, name)
	}
	return vals, order
}

// stopBudget is the time a stopping tasuki needs at most, by its command
// line (subcommand and flags) and environment: for a server its drain grace,
// the kill grace of an attempt being stopped meanwhile and the end of HTTP
// requests; for a worker its --grace and --kill-grace. A supervisor's stop
// timeout must be longer.
func stopBudget(t *testing.T, sub string, flags, env map[string]string) time.Duration {
	t.Helper()
	dur := func(s string, def time.Duration) time.Duration {
		if s == "" {
			return def
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("duration %q: %v", s, err)
		}
		return d
	}
	switch sub {
	case "server":
		grace := dur(env["TASUKI_DRAIN_GRACE"], serverDrainDefault)
		if v, ok := flags["drain-grace"]; ok {
			grace = dur(v, serverDrainDefault)
		}
		return grace + shell.DefaultGrace + httpShutdown
	case "worker":
		return dur(flags["grace"], worker.DefaultGrace) + dur(flags["kill-grace"], shell.DefaultGrace)
	}
	t.Fatalf("tasuki %s: no stop budget known", sub)
	return 0
}

// unit is a systemd unit file: each key's values, in order, by section.
type unit map[string]map[string][]string

func (u unit) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		case strings.HasSuffix(line, `\`):
			t.Fatalf("%s:%d: continued lines are not read by this test; keep each setting on one line", path, n)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a setting: %q", path, n, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// systemdSpan parses a systemd time span ("60s", "1min 30s", "90").
func systemdSpan(t *testing.T, s string) time.Duration {
	t.Helper()
	units := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "sec": time.Second,
		"m": time.Minute, "min": time.Minute, "h": time.Hour}
	var total time.Duration
	for _, part := range strings.Fields(s) {
		m := regexp.MustCompile(`^([0-9]+)([a-z]*)$`).FindStringSubmatch(part)
		if m == nil {
			t.Fatalf("time span %q: cannot read %q", s, part)
		}
		n, _ := strconv.Atoi(m[1])
		u := time.Second
		if m[2] != "" {
			var ok bool
			if u, ok = units[m[2]]; !ok {
				t.Fatalf("time span %q: unit %q", s, m[2])
			}
		}
		total += time.Duration(n) * u
	}
	return total
}

// under reports whether path is dir or inside it.
func under(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

func TestSystemdUnits(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tasuki")
	}
	bin := tasukiBinary(t)
	paths, err := filepath.Glob(filepath.Join(deployDir, "systemd", "*.service"))
	if err != nil || len(paths) != 2 {
		t.Fatalf("units in deploy/systemd: %v, %v; want the server's and the worker's", paths, err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			u := parseUnit(t, path)
			svc := func(key string) string { return u.get("Service", key) }
			words := strings.Fields(svc("ExecStart"))
			if len(words) < 2 || words[0] != "/usr/local/bin/tasuki" {
				t.Fatalf("ExecStart = %q, want /usr/local/bin/tasuki SUBCOMMAND ...", svc("ExecStart"))
			}
			sub := words[1]
			known := helpFlags(t, bin, sub)
			flags, order := flagValues(words[2:])
			for _, f := range order {
				if !known[f] {
					t.Errorf("ExecStart names --%s, which 'tasuki %s --help' does not list", f, sub)
				}
			}

			// A stop is a drain: SIGTERM to tasuki alone, and time for it.
			if svc("KillSignal") != "SIGTERM" || svc("KillMode") != "mixed" {
				t.Errorf("KillSignal=%s KillMode=%s, want SIGTERM and mixed (SIGTERM to tasuki alone, which drains; SIGKILL to the rest at the timeout)",
					svc("KillSignal"), svc("KillMode"))
			}
			budget := stopBudget(t, sub, flags, nil)
			if stop := systemdSpan(t, svc("TimeoutStopSec")); stop <= budget {
				t.Errorf("TimeoutStopSec=%s, want more than the %s a drain takes at most", svc("TimeoutStopSec"), budget)
			}
			if svc("Restart") == "" || svc("Restart") == "no" {
				t.Error("no Restart= policy")
			}

			// A user of its own, and tasks that still run: attempts' cgroups
			// need the subtree delegated and writable.
			if user := svc("User"); user == "" || user == "root" || svc("DynamicUser") == "yes" {
				t.Errorf("User=%q DynamicUser=%q, want a dedicated user", user, svc("DynamicUser"))
			}
			if svc("Delegate") != "yes" || svc("ProtectControlGroups") == "yes" {
				t.Errorf("Delegate=%q ProtectControlGroups=%q: attempts' cgroups need Delegate=yes and a writable cgroup tree", svc("Delegate"), svc("ProtectControlGroups"))
			}
			for _, key := range []string{"NoNewPrivileges", "PrivateTmp"} {
				if svc(key) != "yes" {
					t.Errorf("%s=%q, want yes", key, svc(key))
				}
			}
			if svc("ProtectSystem") != "strict" {
				t.Errorf("ProtectSystem=%q, want strict", svc("ProtectSystem"))
			}
			// Under ProtectSystem=strict, every directory tasuki writes must
			// be one the unit makes writable.
			writable := strings.Fields(strings.Join(u["Service"]["ReadWritePaths"], " "))
			for _, key := range []string{"StateDirectory", "CacheDirectory"} {
				root := map[string]string{"StateDirectory": "/var/lib/", "CacheDirectory": "/var/cache/"}[key]
				for _, d := range strings.Fields(svc(key)) {
					writable = append(writable, root+d)
				}
				if svc(key) != "" && svc(key+"Mode") != "0700" {
					t.Errorf("%sMode=%q, want 0700", key, svc(key+"Mode"))
				}
			}
			if svc("StateDirectory") == "" {
				t.Error("no StateDirectory=")
			}
			dirs := []string{svc("WorkingDirectory")}
			for _, f := range []string{"home", "dir", "artifact-cache"} {
				if v, ok := flags[f]; ok {
					dirs = append(dirs, v)
				}
			}
			for _, d := range dirs {
				if !slices.ContainsFunc(writable, func(w string) bool { return under(d, strings.TrimPrefix(w, "-")) }) {
					t.Errorf("%s is not writable under ProtectSystem=strict (writable: %v)", d, writable)
				}
			}
			if sub == "worker" {
				if !strings.HasPrefix(flags["token-file"], "%d/") || len(u["Service"]["LoadCredential"]) == 0 {
					t.Errorf("the worker's token: --token-file %q with LoadCredential %q, want a credential (%%d/NAME)", flags["token-file"], u["Service"]["LoadCredential"])
				}
			}
		})
	}

	t.Run("systemd-analyze verify", func(t *testing.T) {
		analyze, err := exec.LookPath("systemd-analyze")
		if err != nil {
			t.Skip("systemd-analyze is not installed here: the units are checked by the test above only")
		}
		// verify wants ExecStart's program to exist: point the copies at
		// the binary this test built.
		dir := t.TempDir()
		var units []string
		for _, path := range paths {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(dir, filepath.Base(path))
			if err := os.WriteFile(dst, bytes.ReplaceAll(b, []byte("/usr/local/bin/tasuki"), []byte(bin)), 0o644); err != nil {
				t.Fatal(err)
			}
			units = append(units, dst)
		}
		cmd := exec.Command(analyze, append([]string{"verify", "--man=no"}, units...)...)
		cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0")
		out, err := cmd.CombinedOutput()
		// verify exits 0 on an unknown key or a value it cannot parse, and
		// only says so: any word from it is a problem.
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})
}

// dockerfile is a Dockerfile's stages, each its instructions in order.
type stage struct {
	name, from string
	instr      [][2]string // {INSTRUCTION, arguments}
}

func (s stage) last(instr string) string {
	v := ""
	for _, i := range s.instr {
		if i[0] == instr {
			v = i[1]
		}
	}
	return v
}

func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(string(b), " ")
	var stages []stage
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		instr, args, _ := strings.Cut(line, " ")
		instr = strings.ToUpper(instr)
		args = strings.TrimSpace(args)
		if instr == "FROM" {
			f := strings.Fields(args)
			s := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			continue // ARG before the first FROM
		}
		stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, [2]string{instr, args})
	}
	return stages
}

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, filepath.Join(deployDir, "Dockerfile"))
	byName := map[string]stage{}
	for _, s := range stages {
		byName[s.name] = s
	}
	if len(stages) == 0 || stages[len(stages)-1].name != "server" || byName["worker"].name == "" || byName["build"].name == "" {
		t.Fatalf("stages %v: want build, worker, and server last (the default target)", stages)
	}
	if !slices.ContainsFunc(byName["build"].instr, func(i [2]string) bool {
		return i[0] == "RUN" && strings.Contains(i[1], "CGO_ENABLED=0 go build")
	}) {
		t.Error("the build stage does not run the release build")
	}
	for _, name := range []string{"server", "worker"} {
		s := byName[name]
		user := s.last("USER")
		uid, _, _ := strings.Cut(user, ":")
		if n, err := strconv.Atoi(uid); err != nil || n == 0 {
			t.Errorf("%s: USER %q, want a numeric non-root user (Kubernetes' runAsNonRoot checks numbers)", name, user)
		}
		if !strings.Contains(s.last("VOLUME"), "/var/lib/tasuki") {
			t.Errorf("%s: VOLUME %q, want /var/lib/tasuki", name, s.last("VOLUME"))
		}
		if s.last("STOPSIGNAL") != "SIGTERM" {
			t.Errorf("%s: STOPSIGNAL %q, want SIGTERM (it drains)", name, s.last("STOPSIGNAL"))
		}
		if !strings.Contains(s.last("ENTRYPOINT"), `"/usr/local/bin/tasuki"`) {
			t.Errorf("%s: ENTRYPOINT %q", name, s.last("ENTRYPOINT"))
		}
	}
	srv := byName["server"]
	env := srv.last("ENV")
	m := regexp.MustCompile(`TASUKI_ADDR=[0-9.]+:([0-9]+)`).FindStringSubmatch(env)
	if m == nil || srv.last("EXPOSE") != m[1] {
		t.Errorf("server: EXPOSE %q, ENV %q: want the port of TASUKI_ADDR exposed", srv.last("EXPOSE"), env)
	}
	if !strings.Contains(env, "TASUKI_HOME=/var/lib/tasuki") {
		t.Errorf("server: ENV %q, want TASUKI_HOME=/var/lib/tasuki (the volume)", env)
	}
	if srv.last("CMD") != `["server"]` {
		t.Errorf("server: CMD %q", srv.last("CMD"))
	}

	// The .dockerignore keeps what the build needs.
	ign, err := os.ReadFile("../../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, keep := range []string{"!go.mod", "!go.sum", "!cmd/", "!internal/"} {
		if !slices.Contains(strings.Split(string(ign), "\n"), keep) {
			t.Errorf(".dockerignore lacks %q, which the build needs", keep)
		}
	}

	// Building the image needs a Docker daemon and the registry; where one
	// is wanted, say so.
	if os.Getenv("TASUKI_TEST_DOCKER") != "1" {
		t.Log("the image itself is not built (set TASUKI_TEST_DOCKER=1 where a Docker daemon can pull the base images)")
		return
	}
	for _, target := range []string{"worker", "server"} {
		cmd := exec.Command("docker", "build", "-f", "deploy/Dockerfile", "--target", target, "-t", "tasuki-test:"+target, ".")
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("docker build --target %s: %v\n%s", target, err, out)
		}
		out, err := exec.Command("docker", "run", "--rm", "tasuki-test:"+target, "version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "tasuki ") {
			t.Errorf("docker run tasuki-test:%s version: %v\n%s", target, err, out)
		}
	}
}

// Kubernetes objects, as much of them as the checks read.
type (
	k8sMeta struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	}
	k8sObject struct {
		APIVersion string            `yaml:"apiVersion"`
		Kind       string            `yaml:"kind"`
		Metadata   k8sMeta           `yaml:"metadata"`
		Data       map[string]string `yaml:"data"`
		StringData map[string]string `yaml:"stringData"`
		Spec       k8sSpec           `yaml:"spec"`
	}
	k8sSpec struct {
		// Service
		ClusterIP string         `yaml:"clusterIP"`
		Selector  map[string]any `yaml:"selector"`
		Ports     []struct {
			Name       string `yaml:"name"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
		// Deployment, StatefulSet
		ServiceName string `yaml:"serviceName"`
		Template    struct {
			Metadata k8sMeta    `yaml:"metadata"`
			Spec     k8sPodSpec `yaml:"spec"`
		} `yaml:"template"`
		VolumeClaimTemplates []struct {
			Metadata k8sMeta `yaml:"metadata"`
		} `yaml:"volumeClaimTemplates"`
	}
	k8sPodSpec struct {
		TerminationGracePeriodSeconds *int `yaml:"terminationGracePeriodSeconds"`
		SecurityContext               struct {
			RunAsNonRoot bool `yaml:"runAsNonRoot"`
			RunAsUser    int  `yaml:"runAsUser"`
		} `yaml:"securityContext"`
		Containers []k8sContainer `yaml:"containers"`
		Volumes    []struct {
			Name   string `yaml:"name"`
			Secret *struct {
				SecretName string `yaml:"secretName"`
				Items      []struct {
					Key string `yaml:"key"`
				} `yaml:"items"`
			} `yaml:"secret"`
			ConfigMap *struct {
				Name string `yaml:"name"`
			} `yaml:"configMap"`
		} `yaml:"volumes"`
	}
	k8sContainer struct {
		Name  string   `yaml:"name"`
		Image string   `yaml:"image"`
		Args  []string `yaml:"args"`
		Env   []struct {
			Name      string `yaml:"name"`
			Value     string `yaml:"value"`
			ValueFrom *struct {
				SecretKeyRef *struct {
					Name string `yaml:"name"`
					Key  string `yaml:"key"`
				} `yaml:"secretKeyRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
		Ports []struct {
			Name string `yaml:"name"`
		} `yaml:"ports"`
		ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
		LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
		Lifecycle      struct {
			PreStop *struct {
				Sleep *struct {
					Seconds int `yaml:"seconds"`
				} `yaml:"sleep"`
				Exec any `yaml:"exec"`
			} `yaml:"preStop"`
		} `yaml:"lifecycle"`
		VolumeMounts []struct {
			Name string `yaml:"name"`
		} `yaml:"volumeMounts"`
	}
	k8sProbe struct {
		HTTPGet *struct {
			Path   string `yaml:"path"`
			Port   any    `yaml:"port"`
			Scheme string `yaml:"scheme"`
		} `yaml:"httpGet"`
	}
	kustomization struct {
		Namespace string   `yaml:"namespace"`
		Resources []string `yaml:"resources"`
		Images    []struct {
			Name    string `yaml:"name"`
			NewName string `yaml:"newName"`
			NewTag  string `yaml:"newTag"`
		} `yaml:"images"`
	}
)

// readObjects decodes every document of a YAML file.
func readObjects(t *testing.T, path string) []k8sObject {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var objs []k8sObject
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if o.Kind == "" || o.Metadata.Name == "" || o.APIVersion == "" {
			t.Fatalf("%s: a document without apiVersion, kind or name: %+v", path, o)
		}
		objs = append(objs, o)
	}
	return objs
}

func TestKubernetesManifests(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tasuki")
	}
	bin := tasukiBinary(t)
	dir := filepath.Join(deployDir, "kubernetes")
	kb, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var kz kustomization
	if err := yaml.Unmarshal(kb, &kz); err != nil {
		t.Fatal(err)
	}
	var objs []k8sObject
	for _, r := range kz.Resources {
		objs = append(objs, readObjects(t, filepath.Join(dir, r))...)
	}
	// The Secrets are applied apart (they hold real values), but they are
	// part of what the manifests need.
	secrets := map[string]map[string]bool{}
	for _, o := range readObjects(t, filepath.Join(dir, "secrets.example.yaml")) {
		if o.Kind != "Secret" || o.Metadata.Namespace != kz.Namespace {
			t.Errorf("secrets.example.yaml: %s %s in namespace %q, want Secrets in %q", o.Kind, o.Metadata.Name, o.Metadata.Namespace, kz.Namespace)
		}
		secrets[o.Metadata.Name] = map[string]bool{}
		for k := range o.StringData {
			secrets[o.Metadata.Name][k] = true
		}
		for k := range o.Data {
			secrets[o.Metadata.Name][k] = true
		}
	}
	configMaps, services := map[string]bool{}, map[string]k8sObject{}
	for _, o := range objs {
		switch o.Kind {
		case "ConfigMap":
			configMaps[o.Metadata.Name] = true
		case "Service":
			services[o.Metadata.Name] = o
		case "Secret":
			t.Errorf("Secret %s is among the resources: applying the manifests would overwrite its real value", o.Metadata.Name)
		}
	}
	images := map[string]string{} // name → tag, from the kustomization
	for _, im := range kz.Images {
		images[im.Name] = im.NewTag
	}

	workloads := map[string]k8sObject{} // by subcommand
	for _, o := range objs {
		if o.Kind != "Deployment" && o.Kind != "StatefulSet" {
			continue
		}
		pod := o.Spec.Template.Spec
		if len(pod.Containers) != 1 {
			t.Fatalf("%s %s: %d containers, want 1", o.Kind, o.Metadata.Name, len(pod.Containers))
		}
		c := pod.Containers[0]
		if len(c.Args) == 0 {
			t.Fatalf("%s: no args", o.Metadata.Name)
		}
		sub := c.Args[0]
		workloads[sub] = o
		t.Run(o.Metadata.Name, func(t *testing.T) {
			known := helpFlags(t, bin, sub)
			flags, order := flagValues(c.Args[1:])
			for _, f := range order {
				if !known[f] {
					t.Errorf("args name --%s, which 'tasuki %s --help' does not list", f, sub)
				}
			}
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					ref := e.ValueFrom.SecretKeyRef
					if !secrets[ref.Name][ref.Key] {
						t.Errorf("env %s reads key %q of Secret %q, which secrets.example.yaml does not define", e.Name, ref.Key, ref.Name)
					}
				}
			}
			// The stop: terminationGracePeriodSeconds counts from the
			// preStop hook, which runs before SIGTERM starts the drain.
			var preStop time.Duration
			if ps := c.Lifecycle.PreStop; ps != nil {
				if ps.Exec != nil || ps.Sleep == nil {
					t.Errorf("preStop %+v: only a sleep is expected (the image has no shell)", ps)
				} else {
					preStop = time.Duration(ps.Sleep.Seconds) * time.Second
				}
			}
			budget := preStop + stopBudget(t, sub, flags, env)
			if tg := pod.TerminationGracePeriodSeconds; tg == nil || time.Duration(*tg)*time.Second <= budget {
				t.Errorf("terminationGracePeriodSeconds %v, want more than %s (preStop %s and the drain)", tg, budget, preStop)
			}

			// Volumes: each mount has its volume, each volume its source.
			vols := map[string]bool{}
			for _, v := range pod.Volumes {
				vols[v.Name] = true
				if v.Secret != nil {
					keys, ok := secrets[v.Secret.SecretName]
					if !ok {
						t.Errorf("volume %s: Secret %q is not defined", v.Name, v.Secret.SecretName)
					}
					for _, it := range v.Secret.Items {
						if !keys[it.Key] {
							t.Errorf("volume %s: Secret %q has no key %q", v.Name, v.Secret.SecretName, it.Key)
						}
					}
				}
				if v.ConfigMap != nil && !configMaps[v.ConfigMap.Name] {
					t.Errorf("volume %s: ConfigMap %q is not defined", v.Name, v.ConfigMap.Name)
				}
			}
			for _, vc := range o.Spec.VolumeClaimTemplates {
				vols[vc.Metadata.Name] = true
			}
			for _, m := range c.VolumeMounts {
				if !vols[m.Name] {
					t.Errorf("volume mount %s has no volume", m.Name)
				}
			}
			if tf := flags["token-file"]; sub == "worker" && tf == "" {
				t.Error("the worker reads no --token-file")
			}

			// The image is one the kustomization names, built from
			// deploy/Dockerfile: the server's default target, the
			// worker's --target worker.
			name, tag, _ := strings.Cut(c.Image, ":")
			if tag != "" {
				t.Errorf("image %q: give the tag in kustomization.yaml's images", c.Image)
			}
			if _, ok := images[name]; !ok {
				t.Errorf("image %q is not in kustomization.yaml's images %v", name, images)
			}
			if !pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.RunAsUser != 65532 {
				t.Errorf("securityContext %+v, want runAsNonRoot and the images' user 65532", pod.SecurityContext)
			}
			for k, v := range o.Spec.Template.Metadata.Labels {
				if o.Metadata.Labels[k] != v {
					t.Errorf("pod label %s=%s is not on the %s", k, v, o.Kind)
				}
			}
		})
	}

	srv, wk := workloads["server"], workloads["worker"]
	if srv.Kind == "" || wk.Kind == "" {
		t.Fatalf("workloads by subcommand: %v; want a server and a worker", slices.Sorted(maps.Keys(workloads)))
	}
	srvImage, wkImage := srv.Spec.Template.Spec.Containers[0].Image, wk.Spec.Template.Spec.Containers[0].Image
	if wkImage != srvImage+"-worker" || images[srvImage] != images[wkImage] {
		t.Errorf("images %q (tag %q) and %q (tag %q): want NAME and NAME-worker with the same tag", srvImage, images[srvImage], wkImage, images[wkImage])
	}

	// The server: on PostgreSQL (more than one may run), probed on its
	// health routes, behind a Service and with names of its own.
	c := srv.Spec.Template.Spec.Containers[0]
	env := map[string]bool{}
	for _, e := range c.Env {
		env[e.Name] = true
	}
	if !env["TASUKI_DB"] || !env["TASUKI_ADVERTISE"] || !env["TASUKI_SECRET_KEY"] {
		t.Error("the server needs TASUKI_DB (PostgreSQL), TASUKI_ADVERTISE (its own URL, where the others forward) and TASUKI_SECRET_KEY (the same for all)")
	}
	ports := map[any]bool{}
	for _, p := range c.Ports {
		ports[p.Name] = true
	}
	scheme := "HTTP"
	if env["TASUKI_TLS_CERT"] {
		scheme = "HTTPS"
	}
	for name, pr := range map[string]*k8sProbe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
		want := map[string]string{"readinessProbe": "/api/v1/ready", "livenessProbe": "/api/v1/health"}[name]
		if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != want || !ports[pr.HTTPGet.Port] || pr.HTTPGet.Scheme != scheme {
			t.Errorf("%s: %+v, want GET %s on a named port over %s", name, pr, want, scheme)
		}
	}
	if srv.Kind == "StatefulSet" {
		if s, ok := services[srv.Spec.ServiceName]; !ok || s.Spec.ClusterIP != "None" {
			t.Errorf("serviceName %q: want a headless Service among the manifests", srv.Spec.ServiceName)
		}
	}
	selects := func(s k8sObject, labels map[string]string) bool {
		for k, v := range s.Spec.Selector {
			if labels[k] != v {
				return false
			}
		}
		return len(s.Spec.Selector) > 0
	}
	for name, s := range services {
		if !selects(s, srv.Spec.Template.Metadata.Labels) {
			t.Errorf("Service %s selects %v, not the server's pods", name, s.Spec.Selector)
		}
		if selects(s, wk.Spec.Template.Metadata.Labels) {
			t.Errorf("Service %s selects the workers' pods too", name)
		}
	}

	// kubectl renders the kustomization offline (apply --dry-run needs a
	// cluster to ask about its resource types).
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Log("kubectl is not installed here: the kustomization is not rendered")
		return
	}
	out, err := exec.Command(kubectl, "kustomize", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, out)
	}
	for _, want := range []string{"image: " + srvImage + ":" + images[srvImage], "image: " + wkImage + ":" + images[wkImage], "namespace: " + kz.Namespace} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kubectl kustomize: the output lacks %q", want)
		}
	}
}

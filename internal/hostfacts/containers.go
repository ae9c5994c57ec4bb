package hostfacts

import "io/fs"

// runtimeEvidence is what shows a container runtime, its socket first
// (running) then its programs (installed).
var runtimeEvidence = []struct{ name, path string }{
	{"docker", "run/docker.sock"},
	{"docker", "usr/bin/dockerd"},
	{"docker", "usr/bin/docker"},
	{"docker", "usr/local/bin/dockerd"},
	{"docker", "usr/local/bin/docker"},
	{"containerd", "run/containerd/containerd.sock"},
	{"containerd", "usr/bin/containerd"},
	{"containerd", "usr/local/bin/containerd"},
	{"podman", "run/podman/podman.sock"},
	{"podman", "usr/bin/podman"},
	{"cri-o", "run/crio/crio.sock"},
	{"cri-o", "usr/bin/crio"},
}

// containers lists the container runtimes present, each once, with the
// first evidence found.
func (c *collector) containers() []Runtime {
	out := []Runtime{}
	seen := map[string]bool{}
	for _, e := range runtimeEvidence {
		if seen[e.name] {
			continue
		}
		if _, err := fs.Lstat(c.fsys, e.path); err == nil {
			seen[e.name] = true
			out = append(out, Runtime{Name: e.name, Evidence: "/" + e.path})
		}
	}
	return out
}

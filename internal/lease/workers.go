package lease

import (
	"cmp"
	"slices"

	"github.com/tasuki-dev/tasuki/internal/api"
)

// fleet is what the broker remembers of its executors beyond when each
// remote worker last called (Broker.seen), for Workers: what a remote
// worker's last lease request said, and the in-process executor's setting.
type fleet struct {
	remote      map[string]workerSeen
	localSlots  int
	localLabels []string
}

// workerSeen is what a remote worker's last lease request said of it.
type workerSeen struct {
	labels []string
	slots  int
}

// heardLease records what a remote worker's lease request says of it: its
// labels, and its slots as the free ones it asks for plus the leases it
// holds; b.mu is held. Entries go with the worker's name in seen.
func (b *Broker) heardLease(req api.LeaseRequest) {
	if b.fleet.remote == nil {
		b.fleet.remote = map[string]workerSeen{}
	}
	held := 0
	for _, l := range b.leases {
		if l.worker == req.Worker && !l.deadline.IsZero() {
			held++
		}
	}
	b.fleet.remote[req.Worker] = workerSeen{labels: slices.Clone(req.Labels), slots: req.Free + held}
}

// runsLocal records the in-process executor's setting (RunLocal).
func (b *Broker) runsLocal(slots int, labels []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fleet.localSlots, b.fleet.localLabels = slots, slices.Clone(labels)
}

// Workers lists the executors the broker knows now: its in-process
// executor when it has slots, and the remote workers heard from within a
// lease timeout or holding a lease, each with the attempts it holds,
// oldest first. Remote workers are by name; what runs in no namespace
// filter: the API filters by the caller's namespace.
func (b *Broker) Workers() []api.WorkerInfo {
	now := b.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	byName := map[string]*api.WorkerInfo{}
	var out []*api.WorkerInfo
	add := func(w *api.WorkerInfo) {
		byName[w.Name] = w
		out = append(out, w)
	}
	if b.fleet.localSlots > 0 {
		add(&api.WorkerInfo{Name: localWorker, Local: true, Labels: slices.Clone(b.fleet.localLabels), Slots: b.fleet.localSlots})
	}
	remote := func(name string) *api.WorkerInfo {
		if w, ok := byName[name]; ok {
			return w
		}
		w := &api.WorkerInfo{Name: name}
		if s, ok := b.fleet.remote[name]; ok {
			w.Labels, w.Slots = slices.Clone(s.labels), s.slots
		}
		if at, ok := b.seen[name]; ok {
			w.LastHeartbeat = &at
		}
		add(w)
		return w
	}
	for name, at := range b.seen {
		if now.Sub(at) <= b.LeaseTimeout {
			remote(name)
		}
	}
	for name := range b.fleet.remote {
		if _, ok := b.seen[name]; !ok {
			delete(b.fleet.remote, name) // forgotten by heard or Stats
		}
	}
	for _, l := range b.leases {
		var w *api.WorkerInfo
		if l.deadline.IsZero() {
			w = byName[localWorker]
			if w == nil { // a lease of an executor RunLocal did not announce
				w = &api.WorkerInfo{Name: localWorker, Local: true}
				add(w)
			}
		} else {
			w = remote(l.worker)
		}
		a := l.o.a
		wa := api.WorkerAttempt{Run: a.RunID, Pipeline: a.Pipeline, Task: a.TaskID, Attempt: a.Number, Since: l.o.taken}
		if a.Items > 0 {
			item := a.Item
			wa.Item = &item
		}
		w.Running = append(w.Running, wa)
		w.InUse++
	}
	list := make([]api.WorkerInfo, len(out))
	for i, w := range out {
		slices.SortFunc(w.Running, func(x, y api.WorkerAttempt) int {
			return cmp.Or(x.Since.Compare(y.Since), cmp.Compare(x.Run, y.Run), cmp.Compare(x.Task, y.Task))
		})
		if w.Labels == nil {
			w.Labels = []string{}
		}
		if w.Running == nil {
			w.Running = []api.WorkerAttempt{}
		}
		list[i] = *w
	}
	slices.SortFunc(list, func(x, y api.WorkerInfo) int {
		if x.Local != y.Local {
			if x.Local {
				return -1
			}
			return 1
		}
		return cmp.Compare(x.Name, y.Name)
	})
	return list
}

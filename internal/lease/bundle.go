package lease

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"

	"github.com/tasuki-dev/tasuki/internal/api"
	"github.com/tasuki-dev/tasuki/internal/attempt"
)

// Bundles: the items of a map come by the thousand a second, and a lease
// each cost the server and the worker a full description per item (its
// encoding was a sixth of the server's CPU per item, its decoding a tenth
// of a worker's). A worker that asks for bundles (LeaseRequest.Bundle)
// gets the items of one map that wait together as one api.Bundle: the
// description once, the items' own values and variables as a list. Every
// item stays a lease of its own in the broker (a leaseState, reported,
// logged and cancelled under its id, lost and retried alone as before);
// what the bundle adds is one name for the heartbeats of them all.

// bundleState is the items handed to a worker in one bundle.
type bundleState struct {
	id     string // the first item's lease id
	worker string
	owner  string
	leases []*leaseState // every item handed out, reported ones included
	held   int           // items still held (in Broker.leases)
	// adopted: made again for leases taken over from a previous leader
	// (adopt.go); heard: its worker has named it since, which bound owner
	// to the worker's token.
	adopted, heard bool
}

// gather takes, from b.offers[i:], the offers that can join the bundle of
// the lease first (items of the same map attempt-spec that wait with the
// same priority), up to max leases in all; b.mu is held. With no offer to
// join, first stays a lease alone.
func (b *Broker) gather(first *leaseState, i, max int, take func(o *offer) *leaseState) []*leaseState {
	o := first.o
	base, err := o.a.Spec()
	if err != nil {
		return nil
	}
	var more []*leaseState
	for j := i; j < len(b.offers) && 1+len(more) < max; {
		c := b.offers[j]
		if c.priority != o.priority {
			break // the offers are in priority order: no item of the map is further
		}
		if c.a.RunID != o.a.RunID || c.a.Index != o.a.Index || c.a.Items == 0 {
			j++
			continue
		}
		if s, err := c.a.Spec(); err != nil || !bundles(base, s) {
			j++
			continue
		}
		b.offers = slices.Delete(b.offers, j, j+1)
		more = append(more, take(c))
	}
	if len(more) == 0 {
		return nil
	}
	bs := &bundleState{id: first.id, worker: first.worker, owner: first.owner, leases: append([]*leaseState{first}, more...)}
	bs.held = len(bs.leases)
	for _, l := range bs.leases {
		l.bundle = bs
	}
	if b.bundles == nil {
		b.bundles = map[string]*bundleState{}
	}
	b.bundles[bs.id] = bs
	return more
}

// bundles reports whether an attempt described by s can be sent in a
// bundle whose description is base: everything but the item and the
// values of its variables is the same. TestBundlesComparesEverySpecField
// keeps this in step with attempt.Spec.
func bundles(base, s *attempt.Spec) bool {
	if s.Kind != base.Kind || !bytes.Equal(s.Body, base.Body) || s.Workdir != base.Workdir || s.Timeout != base.Timeout ||
		(len(s.Items) > 0) != (len(base.Items) > 0) || len(s.Env) != len(base.Env) ||
		!maps.EqualFunc(s.Needs, base.Needs, func(x, y json.RawMessage) bool { return bytes.Equal(x, y) }) ||
		!maps.Equal(s.Secrets, base.Secrets) || !slices.Equal(s.Mask, base.Mask) || !slices.Equal(s.Produces, base.Produces) ||
		!slices.Equal(s.Outputs, base.Outputs) || !slices.Equal(s.Artifacts, base.Artifacts) ||
		!slices.Equal(s.NeedFiles, base.NeedFiles) {
		return false
	}
	for k := range s.Env {
		if _, ok := base.Env[k]; !ok {
			return false
		}
	}
	return true
}

// describeBundle is what a worker needs to run the leases ls of bundle
// bs (those handed out; the first may have been put back): the first's
// Spec once, and what differs for each.
func (b *Broker) describeBundle(bs *bundleState, ls []*leaseState) api.Bundle {
	first := ls[0].o.a
	base, _ := first.Spec() // described without error before it was offered (Run)
	spec := *base
	spec.Item, spec.Items = nil, nil
	out := api.Bundle{
		ID: bs.id, RunID: first.RunID, Pipeline: first.Pipeline, Task: first.TaskID, Spec: spec,
		Items:          make([]api.BundleItem, len(ls)),
		HeartbeatEvery: api.Duration(b.HeartbeatEvery), LeaseTimeout: api.Duration(b.LeaseTimeout),
		InlineLog: api.MaxInlineLog,
	}
	for k, l := range ls {
		s, _ := l.o.a.Spec()
		it := api.BundleItem{Lease: l.id, Attempt: l.o.a.Number, Item: s.Item, Items: s.Items}
		if k > 0 {
			for name, v := range s.Env {
				if base.Env[name] != v {
					if it.Env == nil {
						it.Env = make(map[string]string, 4)
					}
					it.Env[name] = v
				}
			}
		}
		out.Items[k] = it
	}
	return out
}

// drop takes a lease out of the held ones, and its bundle when it was the
// last item held; b.mu is held and b.leases[l.id] is l.
func (b *Broker) drop(l *leaseState) {
	delete(b.leases, l.id)
	if bs := l.bundle; bs != nil {
		if bs.held--; bs.held == 0 && b.bundles[bs.id] == bs {
			delete(b.bundles, bs.id)
		}
	}
}

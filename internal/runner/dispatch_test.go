package runner

import (
	"fmt"
	"strings"
	"testing"
)

func grants(in *inbox) string {
	var out []string
	for _, g := range in.take() {
		out = append(out, fmt.Sprint(g.task))
	}
	return strings.Join(out, ",")
}

func TestDispatcherPriorityAndOrder(t *testing.T) {
	d := NewDispatcher(1, nil)
	in := newInbox()
	d.enqueue(1, in, readyTask{task: 0, priority: 0, pool: ""}) // granted at once: a slot is free
	d.enqueue(1, in, readyTask{task: 1, priority: 0, pool: ""})
	d.enqueue(1, in, readyTask{task: 2, priority: 5, pool: ""})
	d.enqueue(1, in, readyTask{task: 3, priority: 0, pool: ""})
	d.enqueue(1, in, readyTask{task: 2, priority: 5, pool: ""}) // duplicate: ignored
	if got := grants(in); got != "0" {
		t.Fatalf("first grants %q", got)
	}
	var order []string
	for k := 0; k < 3; k++ {
		d.release("")
		order = append(order, grants(in))
	}
	if got := strings.Join(order, " "); got != "2 1 3" {
		t.Fatalf("grant order %q, want higher priority first, then arrival", got)
	}
}

func TestDispatcherPools(t *testing.T) {
	d := NewDispatcher(4, map[string]int{"warehouse": 1})
	in := newInbox()
	d.enqueue(1, in, readyTask{task: 0, priority: 0, pool: "warehouse"})
	d.enqueue(1, in, readyTask{task: 1, priority: 9, pool: "warehouse"})
	d.enqueue(1, in, readyTask{task: 2, priority: 0, pool: ""})
	if got := grants(in); got != "0,2" {
		t.Fatalf("grants %q: the pool of 1 must hold back task 1", got)
	}
	if w := d.Waiting(1, 1); w != "pool warehouse: 1 of 1 slots in use" {
		t.Fatalf("waiting = %q", w)
	}
	if w := d.Waiting(1, 0); w != "" {
		t.Fatalf("granted task waiting = %q", w)
	}
	d.release("warehouse")
	if got := grants(in); got != "1" {
		t.Fatalf("after release: %q", got)
	}
	failed := d.enqueue(1, in, readyTask{task: 3, pool: "nope"}, readyTask{task: 4, pool: ""})
	if len(failed) != 1 || failed[0].task != 3 || !strings.Contains(failed[0].err.Error(), `pool "nope"`) {
		t.Fatalf("unknown pool: %+v", failed)
	}
	if got := grants(in); got != "4" {
		t.Fatalf("grants %q: a task queued beside one with an unknown pool must still be queued", got)
	}
	usage := d.Pools()
	if len(usage) != 2 || usage[1].Name != "warehouse" || usage[1].Used != 1 {
		t.Fatalf("pools = %+v", usage)
	}
}

func TestDispatcherWithdrawAndPause(t *testing.T) {
	d := NewDispatcher(1, nil)
	a, b := newInbox(), newInbox()
	d.enqueue(1, a, readyTask{task: 0, priority: 0, pool: ""})
	d.enqueue(1, a, readyTask{task: 1, priority: 0, pool: ""})
	d.enqueue(2, b, readyTask{task: 0, priority: 0, pool: ""})
	grants(a)
	d.withdraw(1)
	d.setPaused(true)
	d.release("")
	if got := grants(b); got != "" {
		t.Fatalf("paused dispatcher granted %q", got)
	}
	if w := d.Waiting(2, 0); !strings.Contains(w, "draining") {
		t.Fatalf("waiting = %q", w)
	}
	d.setPaused(false)
	if got := grants(b); got != "0" {
		t.Fatalf("after unpause %q", got)
	}
	if got := grants(a); got != "" {
		t.Fatalf("withdrawn run got %q", got)
	}
}

// TestDispatcherPriorityDecidesFirstSlot checks that tasks queued together
// compete by priority for a slot that is free when they arrive: with one
// slot, c (priority 10) starts before a and b, which were ready first in
// graph order.
func TestDispatcherPriorityDecidesFirstSlot(t *testing.T) {
	for _, tt := range []struct {
		name     string
		parallel int
		pools    map[string]int
		pool     string
	}{
		{"parallelism of 1", 1, nil, ""},
		{"pool of 1", 8, map[string]int{"db": 1}, "db"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDispatcher(tt.parallel, tt.pools)
			in := newInbox()
			if failed := d.enqueue(1, in,
				readyTask{task: 0, pool: tt.pool},
				readyTask{task: 1, pool: tt.pool},
				readyTask{task: 2, priority: 10, pool: tt.pool},
			); len(failed) > 0 {
				t.Fatalf("enqueue: %+v", failed)
			}
			order := []string{grants(in)}
			for k := 0; k < 2; k++ {
				d.release(tt.pool)
				order = append(order, grants(in))
			}
			if got := strings.Join(order, " "); got != "2 0 1" {
				t.Fatalf("grant order %q, want the highest priority first, then readiness order", got)
			}
		})
	}
}

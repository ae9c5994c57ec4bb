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
	d.enqueue(1, 0, 0, "", in) // granted at once: a slot is free
	d.enqueue(1, 1, 0, "", in)
	d.enqueue(1, 2, 5, "", in)
	d.enqueue(1, 3, 0, "", in)
	d.enqueue(1, 2, 5, "", in) // duplicate: ignored
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
	d.enqueue(1, 0, 0, "warehouse", in)
	d.enqueue(1, 1, 9, "warehouse", in)
	d.enqueue(1, 2, 0, "", in)
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
	if err := d.enqueue(1, 3, 0, "nope", in); err == nil || !strings.Contains(err.Error(), `pool "nope"`) {
		t.Fatalf("unknown pool: %v", err)
	}
	usage := d.Pools()
	if len(usage) != 2 || usage[1].Name != "warehouse" || usage[1].Used != 1 {
		t.Fatalf("pools = %+v", usage)
	}
}

func TestDispatcherWithdrawAndPause(t *testing.T) {
	d := NewDispatcher(1, nil)
	a, b := newInbox(), newInbox()
	d.enqueue(1, 0, 0, "", a)
	d.enqueue(1, 1, 0, "", a)
	d.enqueue(2, 0, 0, "", b)
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

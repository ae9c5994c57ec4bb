package notify_test

import (
	"context"
	"testing"
	"time"

	"github.com/tasuki-dev/tasuki/internal/notify"
	"github.com/tasuki-dev/tasuki/internal/store"
)

// leaseSpy records the lease a Deliverer claims with, and claims nothing.
type leaseSpy struct {
	store.Notifications
	lease time.Duration
	limit int
}

func (s *leaseSpy) ClaimDeliveries(_ context.Context, _ string, _ time.Time, lease time.Duration, limit int) ([]store.Delivery, error) {
	s.lease, s.limit = lease, limit
	return nil, nil
}

// TestClaimOutlastsSends: a destination's claimed deliveries are sent one
// after another, each allowed DefaultTimeout, so the claim's lease covers
// them all: otherwise another server could claim and send one again while
// this one is still sending.
func TestClaimOutlastsSends(t *testing.T) {
	spy := &leaseSpy{}
	d := &notify.Deliverer{Store: spy, Lease: time.Minute, Now: time.Now}
	d.Pass(context.Background())
	if spy.limit == 0 || spy.lease < time.Duration(spy.limit)*notify.DefaultTimeout {
		t.Fatalf("claimed %d deliveries for %s: sending them all may take %s", spy.limit, spy.lease, time.Duration(spy.limit)*notify.DefaultTimeout)
	}
}

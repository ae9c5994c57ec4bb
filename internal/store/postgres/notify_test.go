package postgres

import (
	"context"
	"testing"

	"github.com/tasuki-dev/tasuki/internal/store/postgres/pgtest"
)

func TestListenNotify(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, err := Open(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	woken := make(chan struct{}, 16)
	done := make(chan error, 1)
	go func() { done <- db.Listen(ctx, func() { woken <- struct{}{} }) }()
	<-woken // Listen wakes once when it starts listening
	if err := db.Notify(ctx); err != nil {
		t.Fatal(err)
	}
	<-woken
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

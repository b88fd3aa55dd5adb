package proxy

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
)

// Large statements share a budget while they are judged: a second one waits
// for the first, which gives the budget back before it waits on a human or
// the server (releaseLarge), and a session that ends while waiting stops
// waiting.
func TestLargeStatementBudget(t *testing.T) {
	srv := &Server{large: newLargeBytes()}
	session := func(ctx context.Context) *session { return &session{srv: srv, ctx: ctx} }
	s1, s2 := session(context.Background()), session(context.Background())

	judging, released, finish := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go s1.large(largeBudget, func() error {
		close(judging)
		<-released
		s1.releaseLarge() // as before an approval wait or the server's run
		<-finish
		return nil
	})
	<-judging
	second := make(chan struct{})
	go s2.large(largeStatement+1, func() error { close(second); return nil })
	select {
	case <-second:
		t.Fatal("a second large statement was judged while the first held the whole budget")
	case <-time.After(50 * time.Millisecond):
	}
	close(released)
	select {
	case <-second:
	case <-time.After(5 * time.Second):
		t.Fatal("the second large statement still waits after the first gave the budget back")
	}
	close(finish)

	// The budget is whole again once both are done, and a waiting session
	// whose context ends gives up.
	testutil.Eventually(t, 5*time.Second, func() error {
		if !srv.large.sem.TryAcquire(largeBudget) {
			return errors.New("the budget is not whole after both statements ended")
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	s3 := session(ctx)
	errc := make(chan error, 1)
	go func() { errc <- s3.large(largeBudget, func() error { t.Error("ran without budget"); return nil }) }()
	cancel()
	var pe *protocolError
	if err := <-errc; !errors.As(err, &pe) {
		t.Fatalf("waiting session ended: %v, want a session error", err)
	}
	srv.large.sem.Release(largeBudget)
}

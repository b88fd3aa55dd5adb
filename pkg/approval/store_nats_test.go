package approval

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
)

func natsStore(t *testing.T, url, node string) *NATSStore {
	t.Helper()
	s, err := NewNATSStore(NATSStoreConfig{URL: url, Bucket: "TEST_APPROVALS", Node: node, TTL: time.Hour, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	waitUp(t, s)
	return s
}

func waitUp(t *testing.T, s Store) {
	t.Helper()
	testutil.Eventually(t, 15*time.Second, func() error {
		if err := s.Err(); err != nil {
			return fmt.Errorf("store not usable: %w", err)
		}
		return nil
	})
}

// TestNATSStoreSemantics: Create is once, Update and Delete are
// compare-and-set, and a watch on another connection sees every change.
func TestNATSStoreSemantics(t *testing.T) {
	ns := testutil.StartNATS(t)
	a, b := natsStore(t, ns.URL(), "a"), natsStore(t, ns.URL(), "b")
	ctx := context.Background()
	seen := make(chan StoreEntry, 16)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b.Watch(wctx, func(e StoreEntry) { seen <- e })
	// The watch is running once it delivers a marker written after it started.
	if _, err := a.Create(ctx, "k0", []byte("marker")); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-seen:
		if e.Key != "k0" {
			t.Fatalf("watch saw %+v first", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watch saw nothing")
	}

	rev, err := a.Create(ctx, "k1", []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(ctx, "k1", []byte("other")); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("second Create: %v", err)
	}
	rev2, err := b.Update(ctx, "k1", []byte("v2"), rev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Update(ctx, "k1", []byte("stale"), rev); !errors.Is(err, ErrRevision) {
		t.Fatalf("stale Update: %v", err)
	}
	if err := a.Delete(ctx, "k1", rev); !errors.Is(err, ErrRevision) {
		t.Fatalf("stale Delete: %v", err)
	}
	if err := a.Delete(ctx, "k1", rev2); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(ctx, "k1"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	// The watch delivers each change, or (after a reconnect) the latest
	// state: what it shows is in order and ends deleted.
	var got []string
	deadline := time.After(5 * time.Second)
	for len(got) == 0 || got[len(got)-1] != "deleted" {
		select {
		case e := <-seen:
			if e.Key != "k1" {
				continue
			}
			if e.Deleted {
				got = append(got, "deleted")
			} else {
				got = append(got, string(e.Value))
			}
		case <-deadline:
			t.Fatalf("watch saw %v", got)
		}
	}
	order := map[string]int{"v1": 0, "v2": 1, "deleted": 2}
	for i := 1; i < len(got); i++ {
		if order[got[i]] < order[got[i-1]] {
			t.Fatalf("watch saw %v: out of order", got)
		}
	}
}

// TestNATSBrokersShareApprovals: a request held by broker a is listed and
// decided on broker b; a's client learns of it from the watch. Racing
// decisions have one winner. With the server gone, requests are refused
// as unavailable; after it is back, approvals work again without new
// brokers.
func TestNATSBrokersShareApprovals(t *testing.T) {
	ns := testutil.StartNATS(t)
	a := NewBroker(Config{Timeout: time.Minute, Node: "a", Store: natsStore(t, ns.URL(), "a")})
	defer a.Shutdown()
	b := NewBroker(Config{Timeout: time.Minute, Node: "b", Store: natsStore(t, ns.URL(), "b")})
	defer b.Shutdown()

	ch := request(context.Background(), a, sampleRequest())
	p := waitPending(t, b, 1)
	if p[0].Node != "a" {
		t.Fatalf("b lists %+v", p[0])
	}
	var wg sync.WaitGroup
	var errs [2]error
	for i, br := range []*Broker{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = br.Decide(p[0].ID, i == 1, []string{"ann", "bo"}[i], "")
		}()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("racing decisions: %v / %v; want one winner", errs[0], errs[1])
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, ErrDecided) {
			t.Fatalf("loser got %v, want ErrDecided", err)
		}
	}
	got := wait(t, ch)
	if (got.Approved && got.Approver != "bo") || (!got.Approved && got.Approver != "ann") {
		t.Fatalf("held request ended %+v; errs %v %v", got, errs[0], errs[1])
	}

	ns.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for a.StoreErr() == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	res, err := a.Request(context.Background(), sampleRequest())
	if !errors.Is(err, ErrStoreUnavailable) || res.Approved {
		t.Fatalf("request with the server down: %+v %v", res, err)
	}
	ns.Start()
	waitUp(t, a.store)
	waitUp(t, b.store)
	ch = request(context.Background(), a, sampleRequest())
	p = waitPending(t, b, 1)
	start := time.Now()
	if _, err := b.Decide(p[0].ID, true, "bo", "after restart"); err != nil {
		t.Fatal(err)
	}
	if got := wait(t, ch); !got.Approved || got.Reason != "after restart" {
		t.Fatalf("after restart: %+v", got)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("decision reached the holder after %v", d)
	}
}

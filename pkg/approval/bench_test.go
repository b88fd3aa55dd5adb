package approval

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
)

// benchPair returns two brokers ("a" holds statements, "b" decides) on one
// store kind: memory (one broker serves both roles) or nats (a private
// nats-server, two connections, as two nodes).
func benchPair(b *testing.B, kind string) (holder, decider *Broker) {
	b.Helper()
	switch kind {
	case "memory":
		a := NewBroker(Config{Timeout: time.Hour, Node: "a"})
		b.Cleanup(a.Shutdown)
		return a, a
	default:
		ns := testutil.StartNATS(b)
		mk := func(node string) *Broker {
			s, err := NewNATSStore(NATSStoreConfig{URL: ns.URL(), Bucket: "BENCH_APPROVALS", Node: node, TTL: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			for s.Err() != nil {
				time.Sleep(10 * time.Millisecond)
			}
			a := NewBroker(Config{Timeout: time.Hour, Node: node, Store: s})
			b.Cleanup(func() { a.Shutdown(); s.Close() })
			return a
		}
		return mk("a"), mk("b")
	}
}

// waitListed waits until the decider lists n pending requests.
func waitListed(b *testing.B, d *Broker, n int) []Pending {
	deadline := time.Now().Add(30 * time.Second)
	for {
		p := d.Pending()
		if len(p) >= n {
			return p
		}
		if time.Now().After(deadline) {
			b.Fatalf("decider lists %d of %d", len(p), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkApprovalLatency: one held statement at a time; the time from an
// approval on the deciding node to the holding node's statement proceeding.
func BenchmarkApprovalLatency(b *testing.B) {
	for _, kind := range []string{"memory", "nats"} {
		b.Run(kind, func(b *testing.B) {
			holder, decider := benchPair(b, kind)
			lat := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				req := sampleRequest()
				req.SQL = fmt.Sprintf("ALTER TABLE t ADD COLUMN c%d INT", i)
				done := make(chan time.Time, 1)
				go func() {
					if res, err := holder.Request(context.Background(), req); err != nil || !res.Approved {
						b.Errorf("request: %+v %v", res, err)
					}
					done <- time.Now()
				}()
				p := waitListed(b, decider, 1)
				start := time.Now()
				if _, err := decider.Decide(p[0].ID, true, "bench", ""); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, (<-done).Sub(start))
				for len(decider.Pending()) > 0 {
					time.Sleep(100 * time.Microsecond)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkApprovalThroughput: b.N statements held at once on one node, all
// approved from another by 8 approvers; decisions per second until every
// held statement proceeded.
func BenchmarkApprovalThroughput(b *testing.B) {
	for _, kind := range []string{"memory", "nats"} {
		b.Run(kind, func(b *testing.B) {
			holder, decider := benchPair(b, kind)
			var held sync.WaitGroup
			for i := 0; i < b.N; i++ {
				req := sampleRequest()
				req.SQL = fmt.Sprintf("ALTER TABLE t ADD COLUMN c%d INT", i)
				held.Add(1)
				go func() {
					defer held.Done()
					if res, err := holder.Request(context.Background(), req); err != nil || !res.Approved {
						b.Errorf("request: %+v %v", res, err)
					}
				}()
			}
			ps := waitListed(b, decider, b.N)
			b.ResetTimer()
			start := time.Now()
			work := make(chan string)
			var approvers sync.WaitGroup
			for range 8 {
				approvers.Add(1)
				go func() {
					defer approvers.Done()
					for id := range work {
						if _, err := decider.Decide(id, true, "bench", ""); err != nil {
							b.Error(err)
						}
					}
				}()
			}
			for _, p := range ps {
				work <- p.ID
			}
			close(work)
			approvers.Wait()
			held.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "decisions/s")
		})
	}
}

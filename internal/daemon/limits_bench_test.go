package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/policy"
	"github.com/sqlwarden/sqlwarden/pkg/proxy"
	"github.com/sqlwarden/sqlwarden/pkg/proxy/proxytest"
	"github.com/sqlwarden/sqlwarden/pkg/record"
)

type nopAudit struct{}

func (nopAudit) Append(*record.Record) error      { return nil }
func (nopAudit) AppendAsync(*record.Record) error { return nil }

type allowAuth struct{}

func (allowAuth) Authenticate(context.Context, *proxy.AuthRequest) (*proxy.Identity, error) {
	return &proxy.Identity{Name: "agent", Backend: "db", Record: &record.Identity{Name: "agent", Source: "static"}}, nil
}

// BenchmarkStatementLimits measures what the read_only and
// max_affected_rows limits add to a point select, in process (the real
// policy and its judges, the proxy, an in-process backend; no journal):
// the cost of judging each statement and looking its table up in the cache.
func BenchmarkStatementLimits(b *testing.B) {
	const q = "SELECT c FROM sbtest1 WHERE id = 4711"
	for _, bc := range []struct{ name, policy string }{
		{"limits=none", "limits: []\n"},
		{"limits=read_only,max_affected_rows", "limits:\n  - name: bench\n    read_only: true\n    max_affected_rows: 1000\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			pe, err := policy.New(policy.Options{Data: []byte(policy.DefaultPolicy + bc.policy)})
			if err != nil {
				b.Fatal(err)
			}
			be := proxytest.NewBackend()
			be.Handle(q, proxytest.Rows("bench", "sbtest1", []string{"c"}, []any{"x"}))
			be.HandlePrepared("SELECT t.ENGINE, t.TABLE_TYPE, v.VIEW_DEFINITION FROM information_schema.TABLES t "+
				"LEFT JOIN information_schema.VIEWS v ON v.TABLE_SCHEMA = t.TABLE_SCHEMA AND v.TABLE_NAME = t.TABLE_NAME "+
				"WHERE t.TABLE_SCHEMA = ? AND t.TABLE_NAME = ?", 2,
				proxytest.Rows("information_schema", "TABLES", []string{"ENGINE", "TABLE_TYPE", "VIEW_DEFINITION"}, []any{"InnoDB", "BASE TABLE", nil}))
			ln := proxytest.NewListener()
			srv, err := proxy.New(proxy.Options{
				Audit: nopAudit{}, Auth: allowAuth{}, Policy: newPolicyDeps(pe), Dial: be.Dial,
				Backends: map[string]*proxy.Backend{"db": {Name: "db", Address: "backend", Credential: func() (proxy.Credential, error) {
					return proxy.Credential{User: "warden", Password: "pw"}, nil
				}}},
			})
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ln) }()
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = srv.Shutdown(ctx)
				<-done
				be.Close()
			}()
			c, err := proxytest.Connect(context.Background(), ln.Dial, "app", "secret", "bench")
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if err := c.Query(q); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := c.Query(q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

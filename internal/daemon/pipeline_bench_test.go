package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/audit"
	"github.com/sqlwarden/sqlwarden/pkg/identity"
	"github.com/sqlwarden/sqlwarden/pkg/masking"
	"github.com/sqlwarden/sqlwarden/pkg/policy"
	"github.com/sqlwarden/sqlwarden/pkg/proxy"
	"github.com/sqlwarden/sqlwarden/pkg/proxy/proxytest"
	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// The per-statement pipeline as the daemon wires it — the built-in policy
// behind the classification cache, the journal (sync: batch) in a temporary
// directory, masking, attribution — against proxytest's in-process backend.
// Client, proxy and backend talk over net.Pipe: no byte crosses the kernel
// (the -tcp variant uses loopback sockets, for comparison). allocs/op counts
// every goroutine: the client and the fake backend allocate nothing per
// statement, so what is counted is the proxy's and the journal's.

// benchAuth admits every client as one static identity, as the daemon's
// authenticator does once it has verified one.
type benchAuth struct{ id *proxy.Identity }

func (a benchAuth) Authenticate(_ context.Context, req *proxy.AuthRequest) (*proxy.Identity, error) {
	if err := wire.AcceptAny(req.Conn, req.Handshake); err != nil {
		return nil, err
	}
	return a.id, nil
}

// benchSchema is the backend's information_schema, as the masker asks it.
type benchSchema struct{}

func (benchSchema) Columns(_ context.Context, db, table string) ([]string, error) {
	switch db + "." + table {
	case "shop.sbtest1":
		return []string{"id", "k", "c", "pad"}, nil
	case "shop.users":
		return []string{"id", "email", "name"}, nil
	}
	return nil, fmt.Errorf("table %s.%s does not exist", db, table)
}

func (benchSchema) View(context.Context, string, string) (string, bool, error) { return "", false, nil }

type pipeline struct {
	be     *proxytest.Backend
	client *proxytest.Client
}

// pipeOpts vary the pipeline: tcp connects over loopback sockets instead of
// net.Pipe; mask makes the policy mask shop.users.email (otherwise the
// masker has no rules, as in a daemon whose policy has none); policy, when
// set, stands in front of the built-in policy.
type pipeOpts struct {
	tcp, mask bool
	policy    func(policyDeps) proxy.Policy
}

// fixedPolicy classifies every statement as st, made up front: a pipeline
// with it does all a statement costs except finding its classification and
// verdict.
type fixedPolicy struct {
	policyDeps
	st *statement.Statement
}

func (f fixedPolicy) Classify(string, string, sqltext.Dialect) *statement.Statement { return f.st }

func startPipeline(b *testing.B, o pipeOpts) *pipeline {
	tcp, mask := o.tcp, o.mask
	b.Helper()
	j, err := audit.Open(audit.Config{Dir: b.TempDir(), Sync: audit.SyncBatch, Node: "bench",
		CheckpointInterval: time.Hour, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	pe, err := policy.New(policy.Options{})
	if err != nil {
		b.Fatal(err)
	}
	mc := masking.Config{HashKey: []byte("0123456789abcdef0123456789abcdef")}
	if mask {
		mc.Rules = []masking.Rule{{Name: "email", Columns: []string{"shop.users.email"}, Strategy: "redact"}}
	}
	m := masking.New(mc, benchSchema{})
	be := proxytest.NewBackend()
	id := (*proxy.Identity)((&identity.Identity{Name: "agent", Source: "static", Backend: "db"}).Bind(nil))
	backend := &proxy.Backend{Name: "db", Address: "backend", Credential: func() (proxy.Credential, error) {
		return proxy.Credential{User: "warden", Password: "pw"}, nil
	}}
	var pol proxy.Policy = newPolicyDeps(pe)
	if o.policy != nil {
		pol = o.policy(pol.(policyDeps))
	}
	opts := proxy.Options{
		Audit: j, Auth: benchAuth{id}, Policy: pol,
		Masker: maskerAdapter{m}, Backends: map[string]*proxy.Backend{"db": backend}, Node: "bench",
		Log: slog.New(slog.DiscardHandler),
	}
	var ln net.Listener
	var dial func(ctx context.Context, network, addr string) (net.Conn, error)
	if tcp {
		bln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go be.Serve(bln)
		b.Cleanup(func() { bln.Close() })
		backend.Address = bln.Addr().String()
		tln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		ln = tln
		d := &net.Dialer{}
		dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", tln.Addr().String())
		}
	} else {
		opts.Dial = be.Dial
		pl := proxytest.NewListener()
		ln, dial = pl, pl.Dial
	}
	srv, err := proxy.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := proxytest.Connect(ctx, dial, "app", "", "shop")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			b.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			b.Errorf("serve: %v", err)
		}
		be.Close()
		if err := j.Close(); err != nil {
			b.Errorf("close journal: %v", err)
		}
	})
	return &pipeline{be: be, client: c}
}

var (
	pointRow  = proxytest.Rows("shop", "sbtest1", []string{"c"}, []any{"83868641912-28773972837-60736120486-75162659906-27563526494"})
	maskedRow = proxytest.Rows("shop", "users", []string{"id", "email"}, []any{"7", "ada@example.com"})
)

// run sends the statement built by next b.N times and checks each reply.
func (p *pipeline) run(b *testing.B, next func(buf []byte, i int) []byte, wantRows int) {
	buf := make([]byte, 0, 256)
	for i := range 200 { // warm the caches and buffers
		buf = next(buf[:0], i)
		if err := p.client.Roundtrip(buf, false); err != nil {
			b.Fatalf("%s: %v", buf[1:], err)
		}
	}
	b.ReportAllocs()
	cpu := cpuTime()
	b.ResetTimer()
	defer func() { reportCPU(b, cpu) }()
	for i := 0; i < b.N; i++ {
		buf = next(buf[:0], i)
		if err := p.client.Roundtrip(buf, false); err != nil {
			b.Fatalf("%s: %v", buf[1:], err)
		}
		if p.client.Rows != wantRows {
			b.Fatalf("%s: %d rows, want %d", buf[1:], p.client.Rows, wantRows)
		}
	}
}

// cpuTime is the CPU time the process has used (user and system, every
// thread): on a shared machine it moves less with other processes' load
// than the wall-clock ns/op does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per statement since start (client and
// fake backend included; they do little besides reads and writes).
func reportCPU(b *testing.B, start time.Duration) {
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// pointSelect is sysbench's point select: one shape, a new literal each time.
func pointSelect(buf []byte, i int) []byte {
	buf = append(buf, gm.COM_QUERY)
	buf = append(buf, "SELECT c FROM sbtest1 WHERE id="...)
	return strconv.AppendInt(buf, int64(i%10000+1), 10)
}

func BenchmarkPipeline(b *testing.B) {
	b.Run("point-select", func(b *testing.B) {
		p := startPipeline(b, pipeOpts{})
		p.be.Default = func([]byte) *proxytest.Result { return pointRow }
		p.run(b, pointSelect, 1)
	})
	b.Run("point-select-comment", func(b *testing.B) {
		// As agents send it: a sqlcommenter comment naming the tool call,
		// which the classification reads past and the attribution reads.
		p := startPipeline(b, pipeOpts{})
		p.be.Default = func([]byte) *proxytest.Result { return pointRow }
		p.run(b, func(buf []byte, i int) []byte {
			buf = pointSelect(buf, i)
			return append(buf, " /* tool_call='call_42',model='m1' */"...)
		}, 1)
	})
	b.Run("point-select-fixed", func(b *testing.B) {
		// The same statements with their classification handed over: as many
		// allocations as point-select means finding the classification
		// (shape, cache) and the verdict (the session's cache) allocate none.
		p := startPipeline(b, pipeOpts{policy: func(pa policyDeps) proxy.Policy {
			d := sqltext.Dialect{Server: sqltext.ParseServerVersion(proxytest.NewBackend().Version)}
			return fixedPolicy{pa, pa.Classify("SELECT c FROM sbtest1 WHERE id=1", "shop", d)}
		}})
		p.be.Default = func([]byte) *proxytest.Result { return pointRow }
		p.run(b, pointSelect, 1)
	})
	b.Run("point-select-tcp", func(b *testing.B) {
		p := startPipeline(b, pipeOpts{tcp: true})
		p.be.Default = func([]byte) *proxytest.Result { return pointRow }
		p.run(b, pointSelect, 1)
	})
	b.Run("cache-miss", func(b *testing.B) {
		// A shape never seen before every time (the alias changes the
		// normalized text): classified, decided and cached anew.
		p := startPipeline(b, pipeOpts{})
		p.be.Default = func([]byte) *proxytest.Result { return pointRow }
		p.run(b, func(buf []byte, i int) []byte {
			buf = append(buf, gm.COM_QUERY)
			buf = append(buf, "SELECT c AS c"...)
			buf = strconv.AppendInt(buf, int64(i), 10)
			buf = append(buf, " FROM sbtest1 WHERE id="...)
			return strconv.AppendInt(buf, int64(i%10000+1), 10)
		}, 1)
	})
	b.Run("masked-row", func(b *testing.B) {
		p := startPipeline(b, pipeOpts{mask: true})
		p.be.Default = func([]byte) *proxytest.Result { return maskedRow }
		p.run(b, func(buf []byte, i int) []byte {
			buf = append(buf, gm.COM_QUERY)
			buf = append(buf, "SELECT id, email FROM users WHERE id="...)
			return strconv.AppendInt(buf, int64(i%10000+1), 10)
		}, 1)
	})
	b.Run("prepared", func(b *testing.B) {
		p := startPipeline(b, pipeOpts{})
		const q = "SELECT c FROM sbtest1 WHERE id=?"
		p.be.HandlePrepared(q, 1, pointRow)
		id, err := p.client.Prepare(q)
		if err != nil {
			b.Fatal(err)
		}
		for range 200 {
			if err := p.client.Execute(id, []byte("1")); err != nil {
				b.Fatal(err)
			}
		}
		var arg [8]byte
		b.ReportAllocs()
		cpu := cpuTime()
		b.ResetTimer()
		defer func() { reportCPU(b, cpu) }()
		for i := 0; i < b.N; i++ {
			v := strconv.AppendInt(arg[:0], int64(i%10000+1), 10)
			if err := p.client.Execute(id, v); err != nil {
				b.Fatal(err)
			}
			if p.client.Rows != 1 {
				b.Fatalf("%d rows", p.client.Rows)
			}
		}
	})
}

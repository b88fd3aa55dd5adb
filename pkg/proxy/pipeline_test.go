package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/proxy"
	"github.com/sqlwarden/sqlwarden/pkg/proxy/proxytest"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
	"github.com/sqlwarden/sqlwarden/pkg/wire/rows"
)

// The pipeline tests run the proxy against proxytest's in-process backend,
// with small stand-ins for the daemon's policy, journal and masker: what
// they check is the proxy's part (forward or refuse, journal before the
// backend sees a statement, mask rows in flight), not those packages.

// memAudit keeps every record, deep-copied (the proxy lends its slices).
type memAudit struct {
	mu   sync.Mutex
	recs []record.Record
	// discard counts records without keeping them (benchmarks).
	discard bool
	n       int
	changed chan struct{} // closed and replaced on every record
	// failing makes Append (the write-ahead statement record) fail, as a
	// full disk does; AppendAsync still keeps records.
	failing atomic.Bool
}

func (a *memAudit) Append(r *record.Record) error {
	if a.failing.Load() {
		return errors.New("journal: no space left on device")
	}
	return a.keep(r)
}

func (a *memAudit) AppendAsync(r *record.Record) error { return a.keep(r) }

func (a *memAudit) keep(r *record.Record) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n++
	if a.discard {
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	var c record.Record
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	a.recs = append(a.recs, c)
	if a.changed != nil {
		close(a.changed)
		a.changed = nil
	}
	return nil
}

// wait returns the channel closed by the next record.
func (a *memAudit) wait() <-chan struct{} {
	if a.changed == nil {
		a.changed = make(chan struct{})
	}
	return a.changed
}

// statement returns the statement record with sql and its outcome, which
// the proxy journals after the client has its reply: it waits for it.
func (a *memAudit) statement(t *testing.T, sql string) (st, out record.Record) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.recs {
		if r.Event == record.EventStatement && r.SQL == sql {
			st = r
		}
	}
	if st.StatementID == 0 {
		// Written ahead of forwarding: it is there once the client has a reply.
		t.Fatalf("no statement record for %q", sql)
	}
	for {
		for _, r := range a.recs {
			if r.Event == record.EventOutcome && r.SessionID == st.SessionID && r.StatementID == st.StatementID {
				return st, r
			}
		}
		ch := a.wait()
		a.mu.Unlock()
		select {
		case <-ch:
			a.mu.Lock()
		case <-timeout:
			a.mu.Lock()
			t.Fatalf("no outcome for statement %d (%q)", st.StatementID, sql)
		}
	}
}

// acceptAuth lets anyone in as identity "agent".
type acceptAuth struct{}

func (acceptAuth) Authenticate(_ context.Context, req *proxy.AuthRequest) (*proxy.Identity, error) {
	if err := wire.AcceptAny(req.Conn, req.Handshake); err != nil {
		return nil, err
	}
	return &proxy.Identity{Name: "agent", Backend: "db", Record: &record.Identity{Name: "agent", Source: "test"}}, nil
}

// wordPolicy classifies by the first word and denies DROP.
type wordPolicy struct{}

func (wordPolicy) Classify(sql, _ string, _ sqltext.Dialect) *statement.Statement {
	kind, _, _ := strings.Cut(strings.TrimSpace(sql), " ")
	kind = strings.ToUpper(kind)
	return &statement.Statement{Classification: &record.Classification{Kind: kind, Statements: 1}, Digest: sql, Parsed: true, Cacheable: kind == "SELECT"}
}

func (wordPolicy) Decide(_ *record.Identity, st *statement.Statement, _ statement.Session) statement.Verdict {
	if st.Classification.Kind == "DROP" {
		return statement.Verdict{Rule: "no-drop", Action: record.ActionDeny, Message: "DROP is not allowed"}
	}
	return statement.Verdict{Rule: "default", Action: record.ActionAllow}
}

func (wordPolicy) Limits(string) record.Limits { return record.Limits{} }
func (wordPolicy) Version() uint64             { return 1 }

// ReadOnly and BoundWrite serve limits, which these tests do not set.
func (wordPolicy) ReadOnly(string, *statement.Statement, string, func(string) (string, bool)) (string, []statement.TableRef) {
	return "not judged by the test policy", nil
}

func (wordPolicy) BoundWrite(*statement.Statement, string) statement.BoundedWrite {
	return statement.BoundedWrite{Refuse: "not judged by the test policy"}
}

// emailMasker replaces every value of a column named email with "***".
type emailMasker struct{}

func (emailMasker) Plan(_ context.Context, _ *proxy.Identity, _, sql string, _ *statement.Statement) (proxy.MaskPlan, error) {
	if !strings.Contains(sql, "email") {
		return nil, nil
	}
	return &emailPlan{}, nil
}

type emailPlan struct{ n uint64 }

func (p *emailPlan) ResultSet(_ int, cols [][]byte) (proxy.RowMasker, error) {
	for i, def := range cols {
		if name, err := wire.ColumnName(def); err == nil && string(name) == "email" {
			return &emailRows{plan: p, col: i}, nil
		}
	}
	return nil, nil
}

func (p *emailPlan) Summary() []record.Masked {
	return []record.Masked{{Column: "email", Rule: "mask-email", Count: p.n}}
}

type emailRows struct {
	plan *emailPlan
	col  int
}

func (m *emailRows) Text(row, dst []byte) ([]byte, bool, error) {
	for i := 0; len(row) > 0; i++ {
		v, null, n, ok := wire.LenEncString(row)
		if !ok {
			return nil, false, errors.New("bad row")
		}
		switch {
		case i == m.col && !null:
			dst = wire.AppendLenEncString(dst, []byte("***"))
			m.plan.n++
		case null:
			dst = append(dst, 0xfb)
		default:
			dst = wire.AppendLenEncString(dst, v)
		}
		row = row[n:]
	}
	return dst, true, nil
}

func (m *emailRows) Binary(row, dst []byte) ([]byte, bool, error) {
	return nil, false, errors.New("binary rows are not masked by this test masker")
}

func (m *emailRows) ColumnDef(_ int, def []byte) []byte { return def }

type harness struct {
	srv   *proxy.Server
	be    *proxytest.Backend
	ln    *proxytest.Listener
	audit *memAudit
	done  chan error
}

func newHarness(t testing.TB, configure func(*proxy.Options)) *harness {
	h := &harness{be: proxytest.NewBackend(), ln: proxytest.NewListener(), audit: &memAudit{}, done: make(chan error, 1)}
	h.be.Record = true
	opts := proxy.Options{
		Audit: h.audit, Auth: acceptAuth{}, Policy: wordPolicy{}, Dial: h.be.Dial,
		Backends: map[string]*proxy.Backend{"db": {Name: "db", Address: "backend", Credential: func() (proxy.Credential, error) {
			return proxy.Credential{User: "warden", Password: "pw"}, nil
		}}},
	}
	if configure != nil {
		configure(&opts)
	}
	srv, err := proxy.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	go func() { h.done <- srv.Serve(h.ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-h.done; err != nil {
			t.Errorf("serve: %v", err)
		}
		h.be.Close()
	})
	return h
}

func (h *harness) connect(t testing.TB) *proxytest.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := proxytest.Connect(ctx, h.ln.Dial, "app", "secret", "shop")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func received(be *proxytest.Backend, sql string) bool {
	for _, q := range be.Received() {
		if q == sql {
			return true
		}
	}
	return false
}

func TestPipelineAllowed(t *testing.T) {
	h := newHarness(t, nil)
	const q = "SELECT name FROM users WHERE id = 1"
	h.be.Handle(q, proxytest.Rows("shop", "users", []string{"name"}, []any{"ada"}))
	c := h.connect(t)
	r, err := c.Conn.Execute(q)
	if err != nil {
		t.Fatal(err)
	}
	if name, _ := r.GetString(0, 0); name != "ada" || r.RowNumber() != 1 {
		t.Fatalf("got %q in %d rows, want ada in 1", name, r.RowNumber())
	}
	if !received(h.be, q) {
		t.Fatalf("the backend never saw %q", q)
	}
	st, out := h.audit.statement(t, q)
	if st.DB != "shop" || st.Statement == nil || st.Statement.Kind != "SELECT" || st.Digest != q {
		t.Errorf("statement record: db %q, classification %+v, digest %q", st.DB, st.Statement, st.Digest)
	}
	if out.Status != record.StatusSuccess || out.Rows == nil || *out.Rows != 1 || out.Policy == nil || out.Policy.Action != "allow" {
		t.Errorf("outcome: %+v", out)
	}
	if len(out.Columns) != 1 || out.Columns[0] != "name" || out.ResultDigest == "" {
		t.Errorf("outcome columns %v, result digest %q", out.Columns, out.ResultDigest)
	}

	// The same shape again (the session's verdict cache), and prepared.
	if _, err := c.Conn.Execute(q); err != nil {
		t.Fatal(err)
	}
	const pq = "SELECT name FROM users WHERE id = ?"
	h.be.HandlePrepared(pq, 1, proxytest.Rows("shop", "users", []string{"name"}, []any{"grace"}))
	stmt, err := c.Conn.Prepare(pq)
	if err != nil {
		t.Fatal(err)
	}
	r, err = stmt.Execute(2)
	if err != nil {
		t.Fatal(err)
	}
	if name, _ := r.GetString(0, 0); name != "grace" {
		t.Fatalf("execute: %q", name)
	}
	if err := stmt.Close(); err != nil {
		t.Fatal(err)
	}
	ex := findEvent(h.audit, record.EventStatement, "COM_STMT_EXECUTE")
	if ex == nil || ex.SQL != pq || len(ex.Params) != 1 || ex.Params[0].Value != float64(2) {
		t.Errorf("execute record: %+v", ex)
	}
}

func findEvent(a *memAudit, event, command string) *record.Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range a.recs {
		if a.recs[i].Event == event && a.recs[i].Command == command {
			return &a.recs[i]
		}
	}
	return nil
}

func TestPipelineBlocked(t *testing.T) {
	h := newHarness(t, nil)
	c := h.connect(t)
	const q = "DROP TABLE users"
	_, err := c.Conn.Execute(q)
	var me *gm.MyError
	if !errors.As(err, &me) || me.Code != wire.ErrCodeBlocked || me.State != "42000" ||
		me.Message != "sqlwarden: blocked by rule no-drop: DROP is not allowed" {
		t.Fatalf("got %v, want ERR 1142 (42000) from rule no-drop", err)
	}
	if received(h.be, q) {
		t.Fatal("the backend received a blocked statement")
	}
	_, out := h.audit.statement(t, q)
	if out.Status != record.StatusBlocked || out.Policy == nil || out.Policy.Rule != "no-drop" || out.Error == nil || out.Error.Code != wire.ErrCodeBlocked {
		t.Errorf("outcome: %+v", out)
	}
	// The session goes on.
	if _, err := c.Conn.Execute("SELECT 1"); err != nil {
		t.Fatalf("after a block: %v", err)
	}
}

func TestPipelineMaskedRow(t *testing.T) {
	h := newHarness(t, func(o *proxy.Options) { o.Masker = emailMasker{} })
	const q = "SELECT name, email FROM users"
	h.be.Handle(q, proxytest.Rows("shop", "users", []string{"name", "email"},
		[]any{"ada", "ada@example.com"}, []any{"bob", nil}, []any{"eve", "eve@example.com"}))
	c := h.connect(t)
	r, err := c.Conn.Execute(q)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := range r.RowNumber() {
		name, _ := r.GetString(i, 0)
		email, _ := r.GetString(i, 1)
		if null, _ := r.IsNull(i, 1); null {
			email = "NULL"
		}
		got = append(got, name+"="+email)
	}
	if want := "ada=*** bob=NULL eve=***"; strings.Join(got, " ") != want {
		t.Fatalf("rows %q, want %q", strings.Join(got, " "), want)
	}
	_, out := h.audit.statement(t, q)
	if len(out.Masked) != 1 || out.Masked[0].Count != 2 || out.Masked[0].Rule != "mask-email" {
		t.Errorf("outcome masked: %+v", out.Masked)
	}
	// The result digest is of the rows the client received, masked.
	d := record.NewRowDigest()
	for _, row := range [][]byte{
		append(wire.AppendLenEncString(nil, []byte("ada")), wire.AppendLenEncString(nil, []byte("***"))...),
		append(wire.AppendLenEncString(nil, []byte("bob")), 0xfb),
		append(wire.AppendLenEncString(nil, []byte("eve")), wire.AppendLenEncString(nil, []byte("***"))...),
	} {
		if !rows.EachText(row, d) {
			t.Fatalf("malformed row % x", row)
		}
		d.EndRow()
	}
	if want := d.Sum(); out.ResultDigest != want {
		t.Errorf("result digest %q, want %q (the masked rows')", out.ResultDigest, want)
	}
}

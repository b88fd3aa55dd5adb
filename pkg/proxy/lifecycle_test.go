package proxy_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/proxy"
	"github.com/sqlwarden/sqlwarden/pkg/proxy/proxytest"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// The statement lifecycle's contract, command by command: a statement the
// journal cannot record never reaches the backend and its client gets ERR
// 1180; a command the server never answers gets nothing from the proxy,
// whatever happens to it; PREPARE is judged by the same guard as a query.

// lastOutcome waits for the outcome of the last statement journaled for
// command and returns it.
func lastOutcome(t *testing.T, a *memAudit, command string) record.Record {
	t.Helper()
	var out record.Record
	testutil.Eventually(t, 10*time.Second, func() error {
		a.mu.Lock()
		defer a.mu.Unlock()
		var id uint64
		var session string
		// The outcome names its command only through the statement id.
		for _, r := range a.recs {
			if r.Event == record.EventStatement && r.Command == command {
				id, session = r.StatementID, r.SessionID
			}
		}
		for _, r := range a.recs {
			if id != 0 && r.Event == record.EventOutcome && r.SessionID == session && r.StatementID == id {
				out = r
				return nil
			}
		}
		return fmt.Errorf("no outcome for %s", command)
	})
	return out
}

// outcomes returns the number of outcomes journaled so far with error code
// code (any outcome for 0).
func outcomes(a *memAudit, code uint16) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, r := range a.recs {
		if r.Event == record.EventOutcome && (code == 0 || r.Error != nil && r.Error.Code == code) {
			n++
		}
	}
	return n
}

// sent sends a command without a reply and waits until the proxy has
// journaled an outcome with code (the client has no other way to know the
// command was read; 0 waits for any outcome).
func sent(t *testing.T, h *harness, c *proxytest.Client, payload []byte, code uint16) {
	t.Helper()
	n := outcomes(h.audit, code)
	if err := c.Send(payload); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if outcomes(h.audit, code) == n {
			return fmt.Errorf("no outcome for command %#x", payload[0])
		}
		return nil
	})
}

func isAuditRefusal(err error) bool {
	var se *wire.ServerError
	return errors.As(err, &se) && se.Code == wire.ErrCodeAuditFailed && se.State == "HY000" &&
		strings.HasPrefix(se.Message, "sqlwarden: audit journal unavailable")
}

func TestLifecycleJournalFailureRefusesBeforeForwarding(t *testing.T) {
	h := newHarness(t, nil)
	h.be.Handle("SELECT 1", proxytest.Rows("", "", []string{"1"}, []any{"1"}))
	h.be.HandlePrepared("SELECT ?", 1, proxytest.Rows("", "", []string{"?"}, []any{"x"}))
	c := h.connect(t)
	id, err := c.Prepare("SELECT ?")
	if err != nil {
		t.Fatal(err)
	}
	kill := binary.LittleEndian.AppendUint32([]byte{gm.COM_PROCESS_KILL}, c.Conn.GetConnectionID())
	fetch := binary.LittleEndian.AppendUint32(wire.StmtCommand(gm.COM_STMT_FETCH, id), 1)
	h.audit.failing.Store(true)
	for _, tc := range []struct {
		command string
		run     func() error
	}{
		{"COM_QUERY", func() error { return c.Query("SELECT 1") }},
		{"COM_INIT_DB", func() error { return c.Roundtrip(append([]byte{gm.COM_INIT_DB}, "shop"...), false) }},
		{"COM_FIELD_LIST", func() error { return c.Roundtrip(append([]byte{gm.COM_FIELD_LIST}, "users\x00"...), false) }},
		{"COM_STMT_PREPARE", func() error { _, err := c.Prepare("SELECT ?"); return err }},
		{"COM_STMT_EXECUTE", func() error { return c.Execute(id, []byte("a")) }},
		{"COM_STMT_RESET", func() error { return c.Roundtrip(wire.StmtCommand(gm.COM_STMT_RESET, id), false) }},
		{"COM_STATISTICS", func() error { return c.Roundtrip([]byte{gm.COM_STATISTICS}, false) }},
		{"COM_PROCESS_KILL", func() error { return c.Roundtrip(kill, false) }},
		// Refused by the proxy anyway: the journal's refusal is what the
		// client hears, as for every statement it cannot record.
		{"COM_STMT_FETCH", func() error { return c.Roundtrip(fetch, true) }},
		{"COM_CHANGE_USER", func() error { return c.Roundtrip([]byte{gm.COM_CHANGE_USER, 'x', 0}, false) }},
	} {
		before := h.be.Commands()
		if err := tc.run(); !isAuditRefusal(err) {
			t.Fatalf("%s with a failing journal: got %v, want ERR 1180 (HY000) sqlwarden: audit journal unavailable", tc.command, err)
		}
		if n := h.be.Commands() - before; n != 0 {
			t.Errorf("%s: the backend received %d commands for a statement the journal refused", tc.command, n)
		}
	}
	// Every refusal's outcome is journaled (asynchronously), blocked with 1180.
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := outcomes(h.audit, wire.ErrCodeAuditFailed); n < 10 {
			return fmt.Errorf("%d blocked outcomes with code 1180, want 10", n)
		}
		return nil
	})
	h.audit.failing.Store(false)
	// The session goes on, in sync.
	if err := c.Query("SELECT 1"); err != nil || c.Rows != 1 {
		t.Fatalf("after the journal came back: %v, %d rows", err, c.Rows)
	}
	if err := c.Execute(id, []byte("a")); err != nil || c.Rows != 1 {
		t.Fatalf("the prepared statement after the journal came back: %v, %d rows", err, c.Rows)
	}
}

func TestLifecycleNoReplyCommands(t *testing.T) {
	h := newHarness(t, nil)
	h.be.Handle("SELECT 1", proxytest.Rows("", "", []string{"1"}, []any{"1"}))
	h.be.HandlePrepared("SELECT ?", 1, proxytest.Rows("", "", []string{"?"}, []any{"x"}))
	c := h.connect(t)
	id, err := c.Prepare("SELECT ?")
	if err != nil {
		t.Fatal(err)
	}
	longData := func(id uint32) []byte {
		p := binary.LittleEndian.AppendUint32([]byte{gm.COM_STMT_SEND_LONG_DATA}, id)
		return append(binary.LittleEndian.AppendUint16(p, 0), "chunk"...)
	}
	// inSync: a stray packet written for a command without a reply would
	// be read as the reply to this query.
	inSync := func(what string) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- c.Query("SELECT 1") }()
		select {
		case err := <-done:
			if err != nil || c.Rows != 1 {
				t.Fatalf("after %s: %v, %d rows (a stray reply?)", what, err, c.Rows)
			}
		case <-time.After(5 * time.Second):
			// A stray packet's sequence id leaves the client waiting.
			t.Fatalf("after %s: no reply to the next query: the connection is out of sync", what)
		}
	}
	for _, failing := range []bool{true, false} {
		h.audit.failing.Store(failing)
		for _, tc := range []struct {
			what    string
			payload []byte
			code    uint16
		}{
			// Too short to name a statement: the server ignores them too.
			{"a malformed COM_STMT_CLOSE", []byte{gm.COM_STMT_CLOSE, 1}, wire.ErrCodeMalformed},
			{"a malformed COM_STMT_SEND_LONG_DATA", []byte{gm.COM_STMT_SEND_LONG_DATA, 1, 0}, wire.ErrCodeMalformed},
			{"COM_STMT_CLOSE of an unknown statement", wire.StmtCommand(gm.COM_STMT_CLOSE, id+100), wire.ErrCodeUnknownStmt},
			{"COM_STMT_SEND_LONG_DATA to an unknown statement", longData(id + 100), wire.ErrCodeUnknownStmt},
		} {
			code := tc.code
			if failing {
				code = wire.ErrCodeAuditFailed
			}
			sent(t, h, c, tc.payload, code)
			h.audit.failing.Store(false)
			inSync(tc.what)
			h.audit.failing.Store(failing)
		}
		if !failing {
			out := lastOutcome(t, h.audit, "COM_STMT_SEND_LONG_DATA")
			if out.Status != record.StatusBlocked || out.Error == nil || out.Error.Code != wire.ErrCodeUnknownStmt {
				t.Errorf("long data to an unknown statement: outcome %+v", out)
			}
		}
	}

	// Long data for a known statement is forwarded, and journaled with the
	// EXECUTE: no reply, and the EXECUTE carries it.
	if err := c.Send(longData(id)); err != nil {
		t.Fatal(err)
	}
	inSync("COM_STMT_SEND_LONG_DATA")

	// A close the journal refuses is not forwarded: the statement stays
	// open on the backend, as the proxy's table still says, and the client
	// hears nothing.
	h.audit.failing.Store(true)
	before := h.be.Commands()
	sent(t, h, c, wire.StmtCommand(gm.COM_STMT_CLOSE, id), wire.ErrCodeAuditFailed)
	h.audit.failing.Store(false)
	inSync("a refused COM_STMT_CLOSE")
	if n := h.be.Commands() - before; n != 1 {
		t.Errorf("the backend received %d commands, want 1 (the query, not the close)", n)
	}
	if err := c.Execute(id, []byte("a")); err != nil || c.Rows != 1 {
		t.Fatalf("the statement whose close was refused: %v, %d rows", err, c.Rows)
	}
	if out := lastOutcome(t, h.audit, "COM_STMT_EXECUTE"); out.Status != record.StatusSuccess {
		t.Errorf("execute outcome %+v", out)
	}

	// A close that is journaled is forwarded; still no reply.
	sent(t, h, c, wire.StmtCommand(gm.COM_STMT_CLOSE, id), 0)
	inSync("COM_STMT_CLOSE")
	if out := lastOutcome(t, h.audit, "COM_STMT_CLOSE"); out.Status != record.StatusSuccess {
		t.Errorf("close outcome %+v", out)
	}
	var se *wire.ServerError
	if err := c.Execute(id, []byte("a")); !errors.As(err, &se) || se.Code != wire.ErrCodeUnknownStmt {
		t.Fatalf("execute after close: got %v, want ERR %d", err, wire.ErrCodeUnknownStmt)
	}
}

// approvePolicy is wordPolicy with UPDATE needing a human, counting its
// decisions.
type approvePolicy struct {
	wordPolicy
	decided atomic.Int64
}

func (p *approvePolicy) Decide(id *record.Identity, st *statement.Statement, s statement.Session) statement.Verdict {
	p.decided.Add(1)
	if st.Classification.Kind == "UPDATE" {
		return statement.Verdict{Rule: "writes", Action: record.ActionApprove, Message: "writes need a human"}
	}
	return p.wordPolicy.Decide(id, st, s)
}

func TestLifecyclePrepareThroughGuard(t *testing.T) {
	pol := &approvePolicy{}
	h := newHarness(t, func(o *proxy.Options) { o.Policy = pol })
	const upd, sel = "UPDATE users SET name = ? WHERE id = 1", "SELECT ?"
	h.be.HandlePrepared(upd, 1, proxytest.OK(1))
	h.be.HandlePrepared(sel, 1, proxytest.Rows("", "", []string{"?"}, []any{"x"}))
	c := h.connect(t)

	// Approval is deferred to EXECUTE: the PREPARE reaches the backend.
	id, err := c.Prepare(upd)
	if err != nil {
		t.Fatalf("prepare of a statement needing approval: %v", err)
	}
	if !received(h.be, upd) {
		t.Fatal("the backend never saw the PREPARE")
	}
	out := lastOutcome(t, h.audit, "COM_STMT_PREPARE")
	if out.Status != record.StatusSuccess || out.Policy == nil || out.Policy.Action != record.ActionAllow ||
		out.Policy.Rule != "writes" || out.Policy.Message != "approval deferred to execute" {
		t.Errorf("prepare outcome: %+v (policy %+v)", out, out.Policy)
	}
	before := h.be.Commands()
	var se *wire.ServerError
	if err := c.Execute(id, []byte("ada")); !errors.As(err, &se) || se.Code != wire.ErrCodeApprovalDenied {
		t.Fatalf("execute needing approval without an approver: got %v, want ERR %d", err, wire.ErrCodeApprovalDenied)
	}
	if n := h.be.Commands() - before; n != 0 {
		t.Errorf("the backend received %d commands for an EXECUTE held for approval", n)
	}

	// The verdict cache serves PREPARE as it serves COM_QUERY.
	n := pol.decided.Load()
	for range 3 {
		if _, err := c.Prepare(sel); err != nil {
			t.Fatal(err)
		}
	}
	if d := pol.decided.Load() - n; d != 1 {
		t.Errorf("three PREPAREs of one shape asked the policy %d times, want 1", d)
	}

	// Denied at PREPARE: never reaches the backend.
	const drop = "DROP TABLE users"
	if _, err := c.Prepare(drop); !errors.As(err, &se) || se.Code != wire.ErrCodeBlocked ||
		se.Message != "sqlwarden: blocked by rule no-drop: DROP is not allowed" {
		t.Fatalf("prepare of a denied statement: got %v", err)
	}
	if received(h.be, drop) {
		t.Fatal("the backend received a denied PREPARE")
	}
}

package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/policy"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// lastID is the statement id MariaDB reads as "the statement prepared last".
const lastID = 0xFFFFFFFF

// psConn speaks the prepared-statement commands byte by byte, so a test can
// name any statement id.
type psConn struct {
	t *testing.T
	c *client.Conn
}

func dialPS(t *testing.T, addr, user, pass, db string) *psConn {
	t.Helper()
	c, err := client.Connect(addr, user, pass, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &psConn{t: t, c: c}
}

func (p *psConn) send(payload []byte) {
	p.t.Helper()
	p.c.ResetSequence()
	if err := p.c.WritePacket(append(make([]byte, 4), payload...)); err != nil {
		p.t.Fatal(err)
	}
}

func (p *psConn) read() []byte {
	p.t.Helper()
	_ = p.c.SetReadDeadline(time.Now().Add(30 * time.Second)) // a missing reply fails, never hangs
	pk, err := p.c.ReadPacket()
	if err != nil {
		p.t.Fatal(err)
	}
	return pk
}

// prepareReply reads a COM_STMT_PREPARE reply: the statement id, or the ERR.
func (p *psConn) prepareReply() (uint32, *wire.ServerError) {
	p.t.Helper()
	first := p.read()
	if first[0] == wire.ErrHeader {
		e, _ := wire.ParseErr(first)
		return 0, e
	}
	id := binary.LittleEndian.Uint32(first[1:])
	cols, params := binary.LittleEndian.Uint16(first[5:]), binary.LittleEndian.Uint16(first[7:])
	for _, n := range []uint16{params, cols} {
		if n == 0 {
			continue
		}
		for range n {
			p.read()
		}
		if !wire.IsEOF(p.read()) {
			p.t.Fatal("prepare reply: no EOF after definitions")
		}
	}
	return id, nil
}

func (p *psConn) prepare(sql string) (uint32, *wire.ServerError) {
	p.t.Helper()
	p.send(append([]byte{gm.COM_STMT_PREPARE}, sql...))
	return p.prepareReply()
}

// executePacket builds a COM_STMT_EXECUTE binding params as strings; a nil
// param is one whose value came as long data (no value in the packet).
func executePacket(id uint32, params ...*string) []byte {
	b := binary.LittleEndian.AppendUint32([]byte{gm.COM_STMT_EXECUTE}, id)
	b = append(b, 0)                           // flags: no cursor
	b = binary.LittleEndian.AppendUint32(b, 1) // iteration count
	if len(params) > 0 {
		b = append(b, make([]byte, (len(params)+7)/8)...) // NULL bitmap: none
		b = append(b, 1)                                  // new params bound
		for range params {
			b = append(b, gm.MYSQL_TYPE_VAR_STRING, 0)
		}
		for _, v := range params {
			if v != nil {
				b = wire.AppendLenEncString(b, []byte(*v))
			}
		}
	}
	return b
}

// result reads an OK, an ERR or a whole binary result set; rows are decoded
// as all-string, all-NOT NULL columns.
func (p *psConn) result() (rows [][]string, err *wire.ServerError) {
	p.t.Helper()
	first := p.read()
	switch first[0] {
	case wire.OKHeader:
		return nil, nil
	case wire.ErrHeader:
		e, _ := wire.ParseErr(first)
		return nil, e
	}
	n, _, _, _ := wire.LenEncInt(first)
	for range n {
		p.read()
	}
	p.read() // EOF after the column definitions
	for {
		pk := p.read()
		if wire.IsEOF(pk) {
			return rows, nil
		}
		if pk[0] == wire.ErrHeader {
			e, _ := wire.ParseErr(pk)
			return rows, e
		}
		vals := pk[1+(int(n)+9)/8:]
		var row []string
		for len(vals) > 0 {
			s, _, k, _ := wire.LenEncString(vals)
			row = append(row, string(s))
			vals = vals[k:]
		}
		rows = append(rows, row)
	}
}

func (p *psConn) execute(id uint32, params ...*string) ([][]string, *wire.ServerError) {
	p.t.Helper()
	p.send(executePacket(id, params...))
	return p.result()
}

func (p *psConn) longData(id uint32, param uint16, data string) {
	p.t.Helper()
	b := binary.LittleEndian.AppendUint32([]byte{gm.COM_STMT_SEND_LONG_DATA}, id)
	b = binary.LittleEndian.AppendUint16(b, param)
	p.send(append(b, data...))
}

func (p *psConn) idCommand(cmd byte, id uint32, extra ...byte) {
	p.t.Helper()
	p.send(append(binary.LittleEndian.AppendUint32([]byte{cmd}, id), extra...))
}

// ping proves the connection is in step: the next packet is PING's OK, not
// a stray reply to an earlier command.
func (p *psConn) ping() {
	p.t.Helper()
	p.send([]byte{gm.COM_PING})
	if pk := p.read(); pk[0] != wire.OKHeader {
		p.t.Fatalf("PING: got % x, want OK (a stray reply?)", pk[:min(len(pk), 32)])
	}
}

func wantServerErr(t *testing.T, what string, e *wire.ServerError, code uint16, substr string) {
	t.Helper()
	if e == nil || e.Code != code || !strings.Contains(e.Message, substr) {
		t.Fatalf("%s: got %v, want ERR %d containing %q", what, e, code, substr)
	}
}

func strp(s string) *string { return &s }

func columnExists(t *testing.T, d *harness.Daemon, db, table, col string) bool {
	t.Helper()
	var n int
	if err := d.Maria.Open(t, "").QueryRow("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=? AND TABLE_NAME=? AND COLUMN_NAME=?",
		db, table, col).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

const stmtIDPolicy = `masking:
  - name: cards
    columns: ["sid.cust.card"]
    strategy: partial
    keep: 4
`

// TestLastPreparedStatementID: MariaDB reads statement id 0xFFFFFFFF as the
// statement prepared last. Through sqlwarden that id gets exactly the
// judgement of the statement it means (approval at EXECUTE, masking, long
// data journaled as its parameter); an id sqlwarden does not know is never
// forwarded.
func TestLastPreparedStatementID(t *testing.T) {
	dir := t.TempDir()
	pf := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pf, []byte(policy.DefaultPolicy+stmtIDPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	d := harness.Start(t, harness.Options{Extra: fmt.Sprintf("admin:\n  token: %s\npolicy:\n  file: %s\n  approvals:\n    timeout: 20s\n", adminToken, pf)})
	root := d.Maria.Open(t, "")
	for _, q := range []string{
		"DROP DATABASE IF EXISTS sid", "CREATE DATABASE sid",
		"CREATE TABLE sid.t (id INT PRIMARY KEY, v VARCHAR(20))",
		"INSERT INTO sid.t VALUES (1, 'one'), (2, 'two')",
		"CREATE TABLE sid.cust (id INT PRIMARY KEY, name VARCHAR(20), card VARCHAR(19))",
		"INSERT INTO sid.cust VALUES (1, 'Alice', '4111111111111111'), (2, 'Bob', '5500005555555559')",
		"CREATE TABLE sid.blobs (id INT PRIMARY KEY, b TEXT)",
	} {
		mustExec(t, root, q)
	}
	const (
		alter   = "ALTER TABLE t ADD COLUMN extra INT"
		sel     = "SELECT name, card FROM cust ORDER BY id"
		insert  = "INSERT INTO blobs VALUES (?, ?)"
		update  = "UPDATE t SET v = 'hit' WHERE id = 1"
		missing = "SELECT * FROM no_such_table"
	)

	// Directly against MariaDB every walk-around works.
	direct := dialPS(t, d.Maria.Addr, "root", "", "sid")
	if _, e := direct.prepare(alter); e != nil {
		t.Fatal(e)
	}
	if _, e := direct.execute(lastID); e != nil || !columnExists(t, d, "sid", "t", "extra") {
		t.Fatalf("direct: EXECUTE of id 0xFFFFFFFF did not run the ALTER: %v", e)
	}
	mustExec(t, root, "ALTER TABLE sid.t DROP COLUMN extra")
	if _, e := direct.prepare(sel); e != nil {
		t.Fatal(e)
	}
	if rows, e := direct.execute(lastID); e != nil || len(rows) != 2 || rows[0][1] != "4111111111111111" {
		t.Fatalf("direct: SELECT through id 0xFFFFFFFF: %v %v", rows, e)
	}
	if _, e := direct.prepare(insert); e != nil {
		t.Fatal(e)
	}
	direct.longData(lastID, 1, "long-direct")
	if _, e := direct.execute(lastID, strp("1"), nil); e != nil {
		t.Fatalf("direct: long data EXECUTE: %v", e)
	}
	var b string
	if err := root.QueryRow("SELECT b FROM sid.blobs WHERE id = 1").Scan(&b); err != nil || b != "long-direct" {
		t.Fatalf("direct: long data to id 0xFFFFFFFF not used: %q %v", b, err)
	}
	// After a failed PREPARE there is no last statement; the one before is
	// not it.
	if _, e := direct.prepare(update); e != nil {
		t.Fatal(e)
	}
	if _, e := direct.prepare(missing); e == nil {
		t.Fatal("direct: PREPARE of a missing table succeeded")
	}
	_, e := direct.execute(lastID)
	wantServerErr(t, "direct: EXECUTE -1 after a failed PREPARE", e, wire.ErrCodeUnknownStmt, "")
	// The backend's idea of "last" is the UPDATE when a PREPARE never reached
	// it (one the proxy refused): EXECUTE -1 would run the UPDATE.
	if _, e := direct.prepare(update); e != nil {
		t.Fatal(e)
	}
	if _, e := direct.execute(lastID); e != nil {
		t.Fatal(e)
	}
	var v string
	if err := root.QueryRow("SELECT v FROM sid.t WHERE id = 1").Scan(&v); err != nil || v != "hit" {
		t.Fatalf("direct: UPDATE through id 0xFFFFFFFF: %q %v", v, err)
	}
	mustExec(t, root, "UPDATE sid.t SET v = 'one' WHERE id = 1")
	mustExec(t, root, "DELETE FROM sid.blobs")

	// Through sqlwarden.
	px := dialPS(t, d.Listen, harness.ClientUser, harness.ClientPassword, "sid")

	// 1. DDL prepared, then EXECUTE -1: held for a human like EXECUTE by id.
	if _, e := px.prepare(alter); e != nil {
		t.Fatalf("PREPARE %s: %v", alter, e)
	}
	done := make(chan *wire.ServerError, 1)
	px.send(executePacket(lastID))
	go func() { _, e := px.result(); done <- e }()
	id := waitPending(t, d, alter)
	if resp, body := adminCall(t, d, "POST", "/api/v1/approvals/"+id+"/deny", map[string]string{"approver": "bob", "reason": "no"}); resp.StatusCode != 200 {
		t.Fatalf("deny: %d %s", resp.StatusCode, body)
	}
	wantServerErr(t, "EXECUTE -1 of ALTER, denied", <-done, wire.ErrCodeApprovalDenied, "sqlwarden: statement denied by approver bob")
	if columnExists(t, d, "sid", "t", "extra") {
		t.Fatal("denied ALTER ran through id 0xFFFFFFFF")
	}
	px.send(executePacket(lastID))
	go func() { _, e := px.result(); done <- e }()
	id = waitPending(t, d, alter)
	if resp, body := adminCall(t, d, "POST", "/api/v1/approvals/"+id+"/approve", map[string]string{"approver": "alice"}); resp.StatusCode != 200 {
		t.Fatalf("approve: %d %s", resp.StatusCode, body)
	}
	if e := <-done; e != nil || !columnExists(t, d, "sid", "t", "extra") {
		t.Fatalf("approved EXECUTE -1 of ALTER: %v", e)
	}

	// 2. A masked SELECT through -1 is masked.
	if _, e := px.prepare(sel); e != nil {
		t.Fatal(e)
	}
	rows, e := px.execute(lastID)
	if e != nil || len(rows) != 2 || rows[0][1] == "4111111111111111" || !strings.HasSuffix(rows[0][1], "1111") {
		t.Fatalf("masked SELECT through id 0xFFFFFFFF: %v %v", rows, e)
	}

	// 3. Long data sent to -1 is the parameter it becomes, in the journal too.
	if _, e := px.prepare(insert); e != nil {
		t.Fatal(e)
	}
	px.longData(lastID, 1, "long-via-proxy")
	if _, e := px.execute(lastID, strp("2"), nil); e != nil {
		t.Fatalf("long data EXECUTE: %v", e)
	}
	if err := root.QueryRow("SELECT b FROM sid.blobs WHERE id = 2").Scan(&b); err != nil || b != "long-via-proxy" {
		t.Fatalf("long data through the proxy: %q %v", b, err)
	}

	// 4. After a PREPARE the server failed, and after one the proxy refused,
	// -1 means nothing: the UPDATE prepared before never runs.
	if _, e := px.prepare(update); e != nil {
		t.Fatal(e)
	}
	if _, e := px.prepare(missing); e == nil {
		t.Fatal("PREPARE of a missing table succeeded")
	}
	_, e = px.execute(lastID)
	wantServerErr(t, "EXECUTE -1 after a failed PREPARE", e, wire.ErrCodeUnknownStmt, "sqlwarden: COM_STMT_EXECUTE names the last prepared statement")
	if _, e := px.prepare(update); e != nil {
		t.Fatal(e)
	}
	if _, e := px.prepare("DELETE FROM t"); e == nil || e.Code != wire.ErrCodeBlocked {
		t.Fatalf("PREPARE DELETE without WHERE: %v, want blocked", e)
	}
	for _, cmd := range []struct {
		name  string
		cmd   byte
		extra []byte
	}{
		{"COM_STMT_EXECUTE", gm.COM_STMT_EXECUTE, []byte{0, 1, 0, 0, 0}},
		{"COM_STMT_RESET", gm.COM_STMT_RESET, nil},
		{"COM_STMT_FETCH", gm.COM_STMT_FETCH, []byte{1, 0, 0, 0}},
	} {
		px.idCommand(cmd.cmd, lastID, cmd.extra...)
		_, e := px.result()
		wantServerErr(t, cmd.name+" -1 after a refused PREPARE", e, wire.ErrCodeUnknownStmt, "sqlwarden: ")
	}
	px.longData(lastID, 0, "ignored")       // no reply, not forwarded
	px.idCommand(gm.COM_STMT_CLOSE, lastID) // no reply, not forwarded
	px.ping()
	if err := root.QueryRow("SELECT v FROM sid.t WHERE id = 1").Scan(&v); err != nil || v != "one" {
		t.Fatalf("an earlier statement ran in place of a refused one: v=%q %v", v, err)
	}

	// 5. CLOSE -1 closes the last statement; then -1 and its id are unknown.
	uid, e := px.prepare(update)
	if e != nil {
		t.Fatal(e)
	}
	px.idCommand(gm.COM_STMT_CLOSE, lastID)
	px.ping()
	_, e = px.execute(lastID)
	wantServerErr(t, "EXECUTE -1 after CLOSE -1", e, wire.ErrCodeUnknownStmt, "sqlwarden: ")
	_, e = px.execute(uid)
	wantServerErr(t, "EXECUTE of the closed id", e, wire.ErrCodeUnknownStmt, fmt.Sprintf("sqlwarden: unknown prepared statement id %d", uid))

	// 6. Ids never prepared: ERR where the command has a reply, silence
	// (and nothing forwarded) where it has none.
	const bogus = 777777
	_, e = px.execute(bogus)
	wantServerErr(t, "EXECUTE of an unknown id", e, wire.ErrCodeUnknownStmt, "sqlwarden: unknown prepared statement id 777777 given to COM_STMT_EXECUTE")
	px.idCommand(gm.COM_STMT_RESET, bogus)
	_, e = px.result()
	wantServerErr(t, "RESET of an unknown id", e, wire.ErrCodeUnknownStmt, "COM_STMT_RESET")
	px.idCommand(gm.COM_STMT_FETCH, bogus, 1, 0, 0, 0)
	_, e = px.result()
	wantServerErr(t, "FETCH of an unknown id", e, wire.ErrCodeUnknownStmt, "COM_STMT_FETCH")
	px.longData(bogus, 0, "x")
	px.idCommand(gm.COM_STMT_CLOSE, bogus)
	px.ping()
	// COM_STMT_BULK_EXECUTE (MariaDB's array binding) is refused whatever it names.
	if _, e := px.prepare(sel); e != nil {
		t.Fatal(e)
	}
	px.idCommand(0xfa, lastID, 0, 0) // COM_STMT_BULK_EXECUTE, flags
	_, e = px.result()
	wantServerErr(t, "COM_STMT_BULK_EXECUTE", e, wire.ErrCodeNotSupported, "sqlwarden: ")
	px.ping()

	// 7. Pipelined PREPARE + EXECUTE -1 in one write, as Connector/C sends
	// them to a MariaDB server.
	pipe := dialPS(t, d.Listen, harness.ClientUser, harness.ClientPassword, "sid")
	var buf []byte
	for _, pl := range [][]byte{append([]byte{gm.COM_STMT_PREPARE}, "SELECT name, card FROM cust WHERE id = 2"...), executePacket(lastID)} {
		buf = append(buf, byte(len(pl)), byte(len(pl)>>8), byte(len(pl)>>16), 0)
		buf = append(buf, pl...)
	}
	if _, err := pipe.c.Conn.Conn.Write(buf); err != nil {
		t.Fatal(err)
	}
	pipe.c.Sequence = 1
	if _, e := pipe.prepareReply(); e != nil {
		t.Fatal(e)
	}
	pipe.c.Sequence = 1 // the EXECUTE's reply
	rows, e = pipe.result()
	if e != nil || len(rows) != 1 || rows[0][0] != "Bob" || rows[0][1] == "5500005555555559" || !strings.HasSuffix(rows[0][1], "5559") {
		t.Fatalf("pipelined PREPARE + EXECUTE -1: %v %v", rows, e)
	}
	buf = buf[:0]
	for _, pl := range [][]byte{append([]byte{gm.COM_STMT_PREPARE}, "DELETE FROM t"...), executePacket(lastID)} {
		buf = append(buf, byte(len(pl)), byte(len(pl)>>8), byte(len(pl)>>16), 0)
		buf = append(buf, pl...)
	}
	if _, err := pipe.c.Conn.Conn.Write(buf); err != nil {
		t.Fatal(err)
	}
	pipe.c.Sequence = 1
	if _, e := pipe.prepareReply(); e == nil || e.Code != wire.ErrCodeBlocked {
		t.Fatalf("pipelined PREPARE DELETE: %v, want blocked", e)
	}
	pipe.c.Sequence = 1
	_, e = pipe.result()
	wantServerErr(t, "pipelined EXECUTE -1 of a refused PREPARE", e, wire.ErrCodeUnknownStmt, "sqlwarden: ")
	pipe.ping()

	// 8. MariaDB Connector/C's mariadb_stmt_execute_direct, the client that
	// sends id 0xFFFFFFFF, works through the proxy and is judged.
	host, port, _ := net.SplitHostPort(d.Listen)
	out := runConnC(t, clientEnv{host: host, port: port, user: harness.ClientUser, pass: harness.ClientPassword, db: "sid"},
		"INSERT INTO t (id, v) VALUES (5, 'five')", "DELETE FROM t")
	if !strings.HasPrefix(out[0], "ok 1") || !strings.HasPrefix(out[1], "err 1142 sqlwarden: blocked by rule no-unbounded-writes") {
		t.Fatalf("Connector/C execute_direct through the proxy: %q", out)
	}
	var n int
	if err := root.QueryRow("SELECT COUNT(*) FROM sid.t").Scan(&n); err != nil || n != 3 {
		t.Fatalf("rows in sid.t: %d %v, want 3", n, err)
	}

	px.c.Close()
	pipe.c.Close()
	recs := d.Settled(t)
	var sawMasked, sawLong, sawApproved bool
	for i, r := range recs {
		if r.Event != record.EventStatement || r.Command != "COM_STMT_EXECUTE" {
			continue
		}
		o := harness.OutcomeOf(recs[i+1:], r)
		switch r.SQL {
		case sel:
			sawMasked = r.Statement != nil && o != nil && len(o.Masked) > 0
		case insert:
			sawLong = len(r.Params) == 2 && fmt.Sprint(r.Params[1].Value) == "long-via-proxy"
		case alter:
			if o != nil && o.Status == record.StatusSuccess && o.Policy != nil && o.Policy.Action == "approve" && o.Policy.Approver == "alice" {
				sawApproved = true
			}
		case "":
			if o == nil || o.Status != record.StatusBlocked || o.Error == nil || o.Error.Code != wire.ErrCodeUnknownStmt {
				t.Errorf("an EXECUTE journaled without its SQL was not refused: %+v / %+v", r, o)
			}
		}
	}
	if !sawMasked || !sawLong || !sawApproved {
		t.Errorf("journal: masked SELECT %v, long data param %v, approved ALTER %v", sawMasked, sawLong, sawApproved)
	}
	var dropped int
	for _, r := range recs {
		if r.Event == record.EventOutcome && r.Status == record.StatusBlocked && r.Error != nil && r.Error.Code == wire.ErrCodeUnknownStmt {
			dropped++
		}
	}
	// 1 after the failed PREPARE, 5 after the refused one (3 with a reply,
	// long data and CLOSE without), 2 after CLOSE, 5 never-prepared ids,
	// 1 pipelined.
	if dropped != 14 {
		t.Errorf("journal: %d refusals of unknown statement ids, want 14", dropped)
	}
}

// runConnC runs statements with Connector/C's execute_direct; one output line each.
func runConnC(t *testing.T, e clientEnv, stmts ...string) []string {
	t.Helper()
	out := runClient(t, e, filepath.Join(clientsDir(), "connc"), "python3", append([]string{"execute_direct.py"}, stmts...)...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(stmts) {
		t.Fatalf("execute_direct.py: %q", out)
	}
	return lines
}

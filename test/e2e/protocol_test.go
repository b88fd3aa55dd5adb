package e2e

import (
	"bytes"
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gm "github.com/go-mysql-org/go-mysql/mysql"
	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// permissive writes a policy file that allows everything (no rules), for
// tests about the protocol rather than guardrails.
func permissive(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(p, []byte("default: allow\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return "policy:\n  file: " + p + "\n"
}

func randomText(n int, seed uint64) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return b
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// TestBigPackets: a 20 MiB query, a 20 MiB row (text and binary protocol)
// and a 20 MiB parameter sent as COM_STMT_SEND_LONG_DATA cross the proxy
// byte-exact. Each is more than one 16 MiB physical packet.
func TestBigPackets(t *testing.T) {
	const size = 20 << 20
	d := harness.Start(t, harness.Options{})
	root := d.Maria.Open(t, "")
	mustExec(t, root, "DROP DATABASE IF EXISTS bigp")
	mustExec(t, root, "CREATE DATABASE bigp")
	mustExec(t, root, "CREATE TABLE bigp.blobs (id INT PRIMARY KEY, b LONGBLOB)")

	db, err := sql.Open("mysql", d.DSN("bigp", "interpolateParams=false&maxAllowedPacket=67108864"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	// Client → backend: one 20 MiB COM_QUERY.
	data := randomText(size, 1)
	q := "INSERT INTO blobs VALUES (1, '" + string(data) + "')"
	if _, err := db.Exec(q); err != nil {
		t.Fatal(err)
	}
	var sum string
	var n int
	if err := root.QueryRow("SELECT MD5(b), LENGTH(b) FROM bigp.blobs WHERE id = 1").Scan(&sum, &n); err != nil {
		t.Fatal(err)
	}
	if n != size || sum != md5hex(data) {
		t.Fatalf("backend holds %d bytes md5 %s; sent %d md5 %s", n, sum, size, md5hex(data))
	}

	// Backend → client: the 20 MiB row, text protocol then binary.
	var got []byte
	if err := db.QueryRow("SELECT b FROM blobs WHERE id = 1").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("text row: %d bytes md5 %s, want %d md5 %s", len(got), md5hex(got), size, md5hex(data))
	}
	got = nil
	if err := db.QueryRow("SELECT b FROM blobs WHERE id = ?", 1).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("binary row: %d bytes, want %d", len(got), size)
	}

	// Long data: with a 1 MiB max packet the driver streams the parameter
	// with COM_STMT_SEND_LONG_DATA in chunks before the EXECUTE.
	ldb, err := sql.Open("mysql", d.DSN("bigp", "interpolateParams=false&maxAllowedPacket=1048576"))
	if err != nil {
		t.Fatal(err)
	}
	defer ldb.Close()
	long := randomText(size, 2)
	if _, err := ldb.Exec("INSERT INTO blobs VALUES (?, ?)", 2, long); err != nil {
		t.Fatal(err)
	}
	if err := root.QueryRow("SELECT MD5(b), LENGTH(b) FROM bigp.blobs WHERE id = 2").Scan(&sum, &n); err != nil {
		t.Fatal(err)
	}
	if n != size || sum != md5hex(long) {
		t.Fatalf("long data: backend holds %d bytes md5 %s; want %d md5 %s", n, sum, size, md5hex(long))
	}

	recs := d.WaitOutcomes(t)
	_, out := harness.Pair(t, recs, "SELECT b FROM blobs WHERE id = 1")
	if out.Status != record.StatusSuccess || *out.Rows != 1 {
		t.Errorf("big row outcome %+v", out)
	}
	var bigQuery bool
	for _, r := range recs {
		if r.Event == record.EventStatement && r.Command == "COM_QUERY" && len(r.SQL) == len(q) {
			bigQuery = r.SQL == q
		}
	}
	if !bigQuery {
		t.Error("the 20 MiB COM_QUERY is not journaled whole")
	}
	ex, out := harness.PairCommand(t, recs, "COM_STMT_EXECUTE", "INSERT INTO blobs VALUES (?, ?)")
	if out.Status != record.StatusSuccess || len(ex.Params) != 2 {
		t.Fatalf("long data execute: %+v / %+v", ex, out)
	}
	p := ex.Params[1]
	if !p.Truncated || p.Size != size || p.Value != string(long[:wire.MaxParamBytes]) {
		t.Errorf("long data param: truncated=%v size=%d value %d bytes", p.Truncated, p.Size, len(fmt.Sprint(p.Value)))
	}
	if fmt.Sprint(ex.Params[0].Value) != "2" {
		t.Errorf("id param %+v", ex.Params[0])
	}
}

// rawCommand sends one command payload with go-mysql's client and returns
// the first reply packet.
func rawCommand(t *testing.T, c *client.Conn, payload ...byte) []byte {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second)) // a missing reply fails, never hangs
	defer c.SetDeadline(time.Time{})
	c.ResetSequence()
	if err := c.WritePacket(append(make([]byte, 4), payload...)); err != nil {
		t.Fatal(err)
	}
	p, err := c.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func connID(t *testing.T, c *client.Conn) uint32 {
	t.Helper()
	r, err := c.Execute("SELECT CONNECTION_ID()")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := r.GetUint(0, 0)
	return uint32(v)
}

func killPacket(id uint32) []byte {
	return binary.LittleEndian.AppendUint32([]byte{gm.COM_PROCESS_KILL}, id)
}

func wantErr(t *testing.T, what string, p []byte, code uint16, substr string) {
	t.Helper()
	if len(p) == 0 || p[0] != wire.ErrHeader {
		t.Fatalf("%s: got % x, want ERR %d", what, p[:min(len(p), 32)], code)
	}
	e, _ := wire.ParseErr(p)
	if e.Code != code || !strings.Contains(e.Message, substr) {
		t.Fatalf("%s: %v, want %d containing %q", what, e, code, substr)
	}
}

// TestCommands: the commands besides queries and prepared statements, each
// handled or refused with a clear ERR, and each audited.
func TestCommands(t *testing.T) {
	ids := fmt.Sprintf("  clients:\n    - user: %s\n      password: %s\n      name: %s\n    - user: agent2\n      password: second-secret\n      name: agent-two\n",
		harness.ClientUser, harness.ClientPassword, harness.Identity)
	d := harness.Start(t, harness.Options{Identities: ids})
	multi := func(c *client.Conn) error { c.SetCapability(gm.CLIENT_MULTI_STATEMENTS); return nil }
	c1, err := client.Connect(d.Listen, harness.ClientUser, harness.ClientPassword, "test", multi)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c1b, err := client.Connect(d.Listen, harness.ClientUser, harness.ClientPassword, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer c1b.Close()
	c2, err := client.Connect(d.Listen, "agent2", "second-secret", "test")
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()

	// COM_STATISTICS: one raw string packet.
	if p := rawCommand(t, c1, gm.COM_STATISTICS); !bytes.HasPrefix(p, []byte("Uptime: ")) {
		t.Fatalf("COM_STATISTICS reply %q", p)
	}

	// COM_SET_OPTION: multi-statements off, then on again (each an EOF reply).
	if p := rawCommand(t, c1, gm.COM_SET_OPTION, 1, 0); !wire.IsEOF(p) {
		t.Fatalf("COM_SET_OPTION off: % x", p)
	}
	if _, err := c1.Execute("SELECT 1; SELECT 2"); err == nil {
		t.Fatal("multi-statement ran with MULTI_STATEMENTS_OFF")
	}
	if p := rawCommand(t, c1, gm.COM_SET_OPTION, 0, 0); !wire.IsEOF(p) {
		t.Fatalf("COM_SET_OPTION on: % x", p)
	}
	var sets int
	if _, err := c1.ExecuteMultiple("SELECT 1; SELECT 2", func(r *gm.Result, err error) {
		if err == nil {
			sets++
		}
	}); err != nil || sets != 2 {
		t.Fatalf("multi-statement after MULTI_STATEMENTS_ON: %d results, %v", sets, err)
	}

	// COM_RESET_CONNECTION: session state is gone, prepared statements too.
	if _, err := c1.Execute("SET @sw_x = 42"); err != nil {
		t.Fatal(err)
	}
	st, err := c1.Prepare("SELECT ? + 1")
	if err != nil {
		t.Fatal(err)
	}
	if p := rawCommand(t, c1, gm.COM_RESET_CONNECTION); p[0] != wire.OKHeader {
		t.Fatalf("COM_RESET_CONNECTION: % x", p)
	}
	r, err := c1.Execute("SELECT @sw_x IS NULL")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := r.GetInt(0, 0); v != 1 {
		t.Fatal("user variable survived COM_RESET_CONNECTION")
	}
	if _, err := st.Execute(1); err == nil {
		t.Fatal("prepared statement survived COM_RESET_CONNECTION")
	}

	// COM_PROCESS_KILL: never another identity's connection, its own yes.
	other, own := connID(t, c2), connID(t, c1b)
	wantErr(t, "KILL of another identity", rawCommand(t, c1, killPacket(other)...), wire.ErrCodeBlocked, "does not belong to identity "+harness.Identity)
	if _, err := c1.Execute(fmt.Sprintf("KILL %d", other)); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Fatalf("SQL KILL of another identity: %v", err)
	}
	if _, err := c2.Execute("SELECT 1"); err != nil {
		t.Fatalf("other identity's connection was harmed: %v", err)
	}
	if p := rawCommand(t, c1, killPacket(own)...); p[0] != wire.OKHeader {
		t.Fatalf("KILL of own connection: % x", p)
	}
	if _, err := c1b.Execute("SELECT 1"); err == nil {
		t.Fatal("own connection still alive after KILL")
	}

	// Clients also KILL the id the greeting gave them (the mariadb CLI's
	// Ctrl-C, Connector/J's cancel()): the proxy maps it to the backend's.
	c1c, err := client.Connect(d.Listen, harness.ClientUser, harness.ClientPassword, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer c1c.Close()
	greetID, backendID := c1c.GetConnectionID(), connID(t, c1c)
	if greetID < 1<<30 || greetID == backendID {
		t.Fatalf("greeting id %d, backend thread %d: they must not collide", greetID, backendID)
	}
	wantErr(t, "KILL of another identity's greeting id", rawCommand(t, c1, killPacket(c2.GetConnectionID())...), wire.ErrCodeBlocked, "does not belong")
	slept := make(chan error, 1)
	start := time.Now()
	go func() { _, err := c1c.Execute("SELECT SLEEP(20) AS sw_sleep"); slept <- err }()
	d.WaitFor(t, "for the sleeping statement", func(r *record.Record) bool { return r.SQL == "SELECT SLEEP(20) AS sw_sleep" })
	// The record is written before the statement goes to the backend: wait
	// until MariaDB shows it running on c1c's backend thread.
	waitRunning(t, d.Maria.Open(t, ""), backendID, "SELECT SLEEP(20) AS sw_sleep")
	if _, err := c1.Execute(fmt.Sprintf("KILL QUERY %d", greetID)); err != nil {
		t.Fatalf("KILL QUERY of own greeting id: %v", err)
	}
	select {
	case <-slept:
		if time.Since(start) > 15*time.Second {
			t.Fatal("KILL QUERY did not interrupt the sleep")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("KILL QUERY did not interrupt the sleep")
	}
	if _, err := c1c.Execute("SELECT 1"); err != nil {
		t.Fatalf("KILL QUERY ended the whole connection: %v", err)
	}
	// Forms the proxy cannot check, and KILL hidden in a multi-statement.
	if _, err := c1.Execute("KILL USER warden"); err == nil || !strings.Contains(err.Error(), "cannot check") {
		t.Fatalf("KILL USER: %v", err)
	}
	if _, err := c1.Execute(fmt.Sprintf("SELECT 1; KILL %d", other)); err == nil || !strings.Contains(err.Error(), "only statement") {
		t.Fatalf("KILL in a multi-statement: %v", err)
	}
	if _, err := c2.Execute("SELECT 1"); err != nil {
		t.Fatalf("other identity's connection was harmed: %v", err)
	}

	// Refused outright.
	changeUser := append([]byte{gm.COM_CHANGE_USER}, "root\x00\x00\x00"...)
	wantErr(t, "COM_CHANGE_USER", rawCommand(t, c1, changeUser...), wire.ErrCodeNotSupported, "COM_CHANGE_USER is not supported")
	dump := []byte{gm.COM_BINLOG_DUMP, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0}
	dump = append(dump, "mysql-bin.000001"...)
	wantErr(t, "COM_BINLOG_DUMP", rawCommand(t, c1, dump...), wire.ErrCodeNotSupported, "replication")
	wantErr(t, "COM_REGISTER_SLAVE", rawCommand(t, c1, gm.COM_REGISTER_SLAVE, 1, 0, 0, 0), wire.ErrCodeNotSupported, "replication")
	wantErr(t, "COM_SHUTDOWN", rawCommand(t, c1, gm.COM_SHUTDOWN), wire.ErrCodeNotSupported, "COM_SHUTDOWN")
	// The session still works after each refusal.
	if _, err := c1.Execute("SELECT 'still-here'"); err != nil {
		t.Fatal(err)
	}
	c1.Close()

	recs := d.WaitOutcomes(t)
	type want struct{ command, status string }
	var seen []want
	for _, p := range harness.Pairs(recs, harness.Stmt("", "")) {
		if p.Outcome != nil {
			seen = append(seen, want{p.Statement.Command, p.Outcome.Status})
		}
	}
	for _, w := range []want{
		{"COM_STATISTICS", record.StatusSuccess}, {"COM_SET_OPTION", record.StatusSuccess},
		{"COM_RESET_CONNECTION", record.StatusSuccess}, {"COM_PROCESS_KILL", record.StatusBlocked},
		{"COM_PROCESS_KILL", record.StatusSuccess}, {"COM_CHANGE_USER", record.StatusBlocked},
		{"COM_BINLOG_DUMP", record.StatusBlocked}, {"COM_REGISTER_SLAVE", record.StatusBlocked},
		{"COM_SHUTDOWN", record.StatusBlocked},
	} {
		found := false
		for _, s := range seen {
			found = found || s == w
		}
		if !found {
			t.Errorf("no %s record with outcome %s", w.command, w.status)
		}
	}
	st2, out := harness.PairCommand(t, recs, "COM_QUERY", fmt.Sprintf("KILL %d", other))
	if out.Status != record.StatusBlocked || out.Error == nil || out.Error.Code != wire.ErrCodeBlocked {
		t.Errorf("SQL KILL records %+v / %+v", st2, out)
	}
	st2, out = harness.PairCommand(t, recs, "COM_PROCESS_KILL", fmt.Sprintf("KILL %d", own))
	if out.Status != record.StatusSuccess {
		t.Errorf("own KILL records %+v / %+v", st2, out)
	}
	// The translated KILL is journaled as the database ran it.
	if _, out = harness.PairCommand(t, recs, "COM_QUERY", fmt.Sprintf("KILL QUERY %d", backendID)); out.Status != record.StatusSuccess {
		t.Errorf("translated KILL QUERY outcome %+v", out)
	}
	if _, out = harness.PairCommand(t, recs, "COM_QUERY", "KILL USER warden"); out.Status != record.StatusBlocked {
		t.Errorf("KILL USER outcome %+v", out)
	}
}

// TestLocalInfile: LOAD DATA LOCAL INFILE is refused by default and the
// table is unchanged; with allow_local_infile the rows come from the
// client's reader (a name that is no file at all on the proxy's host).
func TestLocalInfile(t *testing.T) {
	gomysql.RegisterReaderHandler("sw-rows", func() io.Reader { return strings.NewReader("10,fig,100\n11,kiwi,110\n") })
	defer gomysql.DeregisterReaderHandler("sw-rows")
	load := "LOAD DATA LOCAL INFILE 'Reader::sw-rows' INTO TABLE items FIELDS TERMINATED BY ','"
	count := func(root *sql.DB, db string) int {
		var n int
		if err := root.QueryRow("SELECT COUNT(*) FROM " + db + ".items").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	t.Run("refused", func(t *testing.T) {
		d := harness.Start(t, harness.Options{Extra: permissive(t)})
		root := setupDB(t, d.Maria, "infile_off")
		db, err := sql.Open("mysql", d.DSN("infile_off", "allowAllFiles=true"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		_, err = db.Exec(load)
		var me *gomysql.MySQLError
		if !errors.As(err, &me) || me.Number != wire.ErrCodeBlocked || !strings.Contains(me.Message, "LOCAL INFILE") {
			t.Fatalf("LOAD DATA LOCAL: %v, want ERR %d about LOCAL INFILE", err, wire.ErrCodeBlocked)
		}
		if n := count(root, "infile_off"); n != 3 {
			t.Fatalf("table has %d rows after a refused load", n)
		}
		// The mariadb CLI, asking for local-infile, gets the same answer.
		host, port := d.HostPort()
		f := filepath.Join(t.TempDir(), "rows.csv")
		if err := os.WriteFile(f, []byte("12,plum,120\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("mariadb", "-h", host, "-P", port, "-u", harness.ClientUser, "-p"+harness.ClientPassword, "--skip-ssl",
			"--local-infile=1", "-D", "infile_off", "-e", "LOAD DATA LOCAL INFILE '"+f+"' INTO TABLE items FIELDS TERMINATED BY ','").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "LOCAL INFILE") {
			t.Fatalf("mariadb LOAD DATA LOCAL: %v\n%s", err, out)
		}
		if n := count(root, "infile_off"); n != 3 {
			t.Fatalf("table has %d rows after a refused CLI load", n)
		}
		_, o := harness.Pair(t, d.WaitOutcomes(t), load)
		if o.Status != record.StatusBlocked || o.Error == nil || o.Error.Code != wire.ErrCodeBlocked {
			t.Errorf("refused load outcome %+v", o)
		}
	})

	t.Run("allowed", func(t *testing.T) {
		d := harness.Start(t, harness.Options{Extra: permissive(t) + "allow_local_infile: true\n"})
		root := setupDB(t, d.Maria, "infile_on")
		db, err := sql.Open("mysql", d.DSN("infile_on", "allowAllFiles=true"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		res, err := db.Exec(load)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 2 {
			t.Fatalf("loaded %d rows, want 2", n)
		}
		var name string
		if err := root.QueryRow("SELECT name FROM infile_on.items WHERE id = 11").Scan(&name); err != nil || name != "kiwi" {
			t.Fatalf("loaded row: %q %v", name, err)
		}
		// The session goes on normally after the upload.
		var c int
		if err := db.QueryRow("SELECT COUNT(*) FROM items").Scan(&c); err != nil || c != 5 {
			t.Fatalf("count after load: %d %v", c, err)
		}
		_, o := harness.Pair(t, d.WaitOutcomes(t), load)
		if o.Status != record.StatusSuccess || o.AffectedRows == nil || *o.AffectedRows != 2 {
			t.Errorf("allowed load outcome %+v", o)
		}
	})
}

// TestCompressionDeclined: the proxy does not advertise CLIENT_COMPRESS;
// clients that ask for compression fall back to plain packets and work.
func TestCompressionDeclined(t *testing.T) {
	d := harness.Start(t, harness.Options{})
	setupDB(t, d.Maria, "compress_db")
	nc, err := net.DialTimeout("tcp", d.Listen, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	g, _, err := wire.NewConn(nc, 0).ReadPacket()
	nc.Close()
	if err != nil {
		t.Fatal(err)
	}
	end := bytes.IndexByte(g[1:], 0) + 1
	pos := end + 1 + 4 + 8 + 1
	caps := uint32(binary.LittleEndian.Uint16(g[pos:])) | uint32(binary.LittleEndian.Uint16(g[pos+5:]))<<16
	if caps&gm.CLIENT_COMPRESS != 0 {
		t.Fatalf("greeting advertises CLIENT_COMPRESS (caps %#x)", caps)
	}
	if caps&gm.CLIENT_PROTOCOL_41 == 0 || caps&gm.CLIENT_PLUGIN_AUTH == 0 {
		t.Fatalf("greeting capabilities %#x parsed wrong", caps)
	}

	host, port := d.HostPort()
	out, err := exec.Command("mariadb", "--compress", "-h", host, "-P", port, "-u", harness.ClientUser, "-p"+harness.ClientPassword,
		"--skip-ssl", "-D", "compress_db", "--batch", "--skip-column-names", "-e", "SELECT name FROM items WHERE id = 3 AND 'cli' = 'cli'").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "plum" {
		t.Fatalf("mariadb --compress: %v\n%s", err, out)
	}
	db, err := sql.Open("mysql", d.DSN("compress_db", "compress=true"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var name string
	if err := db.QueryRowContext(context.Background(), "SELECT name FROM items WHERE id = 2 AND 'go' = 'go'").Scan(&name); err != nil || name != "pear" {
		t.Fatalf("go-sql-driver compress=true: %q %v", name, err)
	}
	recs := d.WaitOutcomes(t)
	for _, q := range []string{"SELECT name FROM items WHERE id = 3 AND 'cli' = 'cli'", "SELECT name FROM items WHERE id = 2 AND 'go' = 'go'"} {
		if _, o := harness.Pair(t, recs, q); o.Status != record.StatusSuccess || *o.Rows != 1 {
			t.Errorf("%s: outcome %+v", q, o)
		}
	}
}

// TestMultiResultsAndCursors: a stored procedure's several result sets
// (SERVER_MORE_RESULTS_EXISTS) through the text and the binary protocol, and
// a read-only cursor opened by EXECUTE and read with COM_STMT_FETCH.
func TestMultiResultsAndCursors(t *testing.T) {
	d := harness.Start(t, harness.Options{Extra: permissive(t)})
	root := setupDB(t, d.Maria, "multi")
	mustExec(t, root, `CREATE PROCEDURE multi.p(IN n INT) BEGIN
		SELECT id, name FROM items WHERE id <= n ORDER BY id;
		SELECT COUNT(*) FROM items;
		UPDATE items SET qty = qty + 1 WHERE id = n;
	END`)

	db, err := sql.Open("mysql", d.DSN("multi", "interpolateParams=false"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	read := func(rows *sql.Rows, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var got []string
		for {
			cols, _ := rows.Columns()
			for rows.Next() {
				vals := make([]sql.RawBytes, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if err := rows.Scan(ptrs...); err != nil {
					t.Fatal(err)
				}
				var parts []string
				for _, v := range vals {
					parts = append(parts, string(v))
				}
				got = append(got, strings.Join(parts, ":"))
			}
			if !rows.NextResultSet() {
				break
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := strings.Join(read(db.Query("CALL p(2)")), ","); got != "1:apple,2:pear,3" {
		t.Fatalf("CALL as text: %s", got)
	}
	if got := strings.Join(read(db.Query("CALL p(?)", 3)), ","); got != "1:apple,2:pear,3:plum,3" {
		t.Fatalf("CALL prepared: %s", got)
	}
	// The connection is still in step after both.
	var n int
	if err := db.QueryRow("SELECT qty FROM items WHERE id = 3").Scan(&n); err != nil || n != 31 {
		t.Fatalf("after CALLs: %d %v", n, err)
	}
	recs := d.WaitOutcomes(t)
	_, out := harness.Pair(t, recs, "CALL p(2)")
	if out.Status != record.StatusSuccess || *out.Rows != 3 || *out.AffectedRows != 1 {
		t.Errorf("CALL text outcome %+v rows %v affected %v", out, *out.Rows, *out.AffectedRows)
	}
	ex, out := harness.PairCommand(t, recs, "COM_STMT_EXECUTE", "CALL p(?)")
	if out.Status != record.StatusSuccess || *out.Rows != 4 || len(ex.Params) != 1 {
		t.Errorf("CALL prepared records %+v / %+v", ex, out)
	}

	// A cursor, by hand: PREPARE, EXECUTE with CURSOR_TYPE_READ_ONLY, FETCH 2, FETCH 2.
	c, err := client.Connect(d.Listen, harness.ClientUser, harness.ClientPassword, "multi")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const q = "SELECT id FROM items WHERE id < ? ORDER BY id"
	p := rawCommand(t, c, append([]byte{gm.COM_STMT_PREPARE}, q...)...)
	if p[0] != wire.OKHeader || len(p) < 12 {
		t.Fatalf("prepare: % x", p)
	}
	id := binary.LittleEndian.Uint32(p[1:])
	readUntilEOF := func(what string) (rows [][]byte, status uint16) {
		t.Helper()
		for {
			p, err := c.ReadPacket()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if st, ok := wire.ParseEOF(p); ok {
				return rows, st
			}
			if p[0] == wire.ErrHeader {
				e, _ := wire.ParseErr(p)
				t.Fatalf("%s: %v", what, e)
			}
			rows = append(rows, p)
		}
	}
	readUntilEOF("param definitions")
	readUntilEOF("column definitions")
	exec := binary.LittleEndian.AppendUint32([]byte{gm.COM_STMT_EXECUTE}, id)
	exec = append(exec,
		wire.CursorTypeReadOnly,
		1, 0, 0, 0, // iterations
		0x00,       // NULL bitmap
		0x01,       // types bound
		0x03, 0x00, // MYSQL_TYPE_LONG
		10, 0, 0, 0) // 10
	if p := rawCommand(t, c, exec...); p[0] != 1 { // column count
		t.Fatalf("execute: % x", p)
	}
	if defs, st := readUntilEOF("execute columns"); len(defs) != 1 || st&gm.SERVER_STATUS_CURSOR_EXISTS == 0 {
		t.Fatalf("execute: %d definitions, status %#x", len(defs), st)
	}
	fetch := func() ([]int32, uint16) {
		first := rawCommand(t, c, binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32([]byte{gm.COM_STMT_FETCH}, id), 2)...)
		var ids []int32
		if st, ok := wire.ParseEOF(first); ok {
			return ids, st
		}
		rows, st := readUntilEOF("fetch")
		for _, r := range append([][]byte{first}, rows...) {
			ids = append(ids, int32(binary.LittleEndian.Uint32(r[2:]))) // header, NULL bitmap, LONG
		}
		return ids, st
	}
	if ids, st := fetch(); fmt.Sprint(ids) != "[1 2]" || st&gm.SERVER_STATUS_LAST_ROW_SEND != 0 {
		t.Fatalf("first fetch %v status %#x", ids, st)
	}
	if ids, st := fetch(); fmt.Sprint(ids) != "[3]" || st&gm.SERVER_STATUS_LAST_ROW_SEND == 0 {
		t.Fatalf("second fetch %v status %#x", ids, st)
	}
	if r, err := c.Execute("SELECT 'after-cursor'"); err != nil {
		t.Fatal(err)
	} else if v, _ := r.GetString(0, 0); v != "after-cursor" {
		t.Fatalf("after cursor: %q", v)
	}
	c.Close()
	recs = d.WaitOutcomes(t)
	var fetched []uint64
	for _, o := range harness.Outcomes(recs, harness.Stmt("COM_STMT_FETCH", q)) {
		if o.Rows != nil {
			fetched = append(fetched, *o.Rows)
		}
	}
	if fmt.Sprint(fetched) != "[2 1]" {
		t.Errorf("COM_STMT_FETCH outcomes rows %v, want [2 1]", fetched)
	}
	ex, _ = harness.PairCommand(t, recs, "COM_STMT_EXECUTE", q)
	if len(ex.Params) != 1 || fmt.Sprint(ex.Params[0].Value) != "10" {
		t.Errorf("cursor execute params %+v", ex.Params)
	}
}

// waitRunning waits until MariaDB's processlist shows query running on
// thread id.
func waitRunning(t *testing.T, root *sql.DB, id uint32, query string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		err := root.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND COMMAND = 'Query' AND INFO = ?", id, query).Scan(&n)
		if err != nil {
			t.Fatalf("read processlist: %v", err)
		}
		if n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q is not running on thread %d after 10s", query, id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

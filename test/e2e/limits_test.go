package e2e

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gm "github.com/go-mysql-org/go-mysql/mysql"
	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// The per-identity limits of the policy's limits section, through the real
// daemon and the private MariaDB. The harness's explicit client is identity
// test-agent.

// bigSelect streams fifty million rows from MariaDB's SEQUENCE engine:
// reading it to the end takes far longer than the tests allow.
const bigSelect = "SELECT seq FROM seq_1_to_50000000"

// limitsPolicy writes a permissive policy with a limits section and returns
// the daemon config snippet and a function that rewrites the limits.
func limitsPolicy(t *testing.T, limits string) (string, func(string)) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.yaml")
	write := func(l string) {
		t.Helper()
		if err := os.WriteFile(p+".tmp", []byte("default: allow\nlimits:\n"+l), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			t.Fatal(err)
		}
	}
	write(limits)
	return "policy:\n  file: " + p + "\n", write
}

func limitsDaemon(t *testing.T, limits string) (*harness.Daemon, func(string)) {
	t.Helper()
	extra, write := limitsPolicy(t, limits)
	d := harness.Start(t, harness.Options{Extra: extra})
	return d, func(l string) {
		write(l)
		if err := d.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
}

// mysqlErr returns err's MySQL error, or fails.
func mysqlErr(t *testing.T, what string, err error, code uint16, prefix string) *gomysql.MySQLError {
	t.Helper()
	var me *gomysql.MySQLError
	if !errors.As(err, &me) || me.Number != code || !strings.HasPrefix(me.Message, prefix) {
		t.Fatalf("%s: got %v, want error %d starting %q", what, err, code, prefix)
	}
	return me
}

// readRows reads a result to its end (or error) and returns the rows seen.
func readRows(rows *sql.Rows, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var v sql.RawBytes
		if err := rows.Scan(&v); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

// usableWithin checks the connection answers its next statement in time.
func usableWithin(t *testing.T, conn *sql.Conn, limit time.Duration, wantID int64) {
	t.Helper()
	start := time.Now()
	var id int64
	if err := conn.QueryRowContext(context.Background(), "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatalf("next statement on the same connection: %v", err)
	}
	if el := time.Since(start); el > limit {
		t.Fatalf("next statement took %v, want under %v", el, limit)
	}
	if wantID != 0 && id != wantID {
		t.Fatalf("connection changed: backend thread %d, was %d", id, wantID)
	}
}

func connectionID(t *testing.T, conn *sql.Conn) int64 {
	t.Helper()
	var id int64
	if err := conn.QueryRowContext(context.Background(), "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// noBackendStatement checks MariaDB runs no statement containing marker.
func noBackendStatement(t *testing.T, root *sql.DB, marker string) {
	t.Helper()
	var n int
	if err := root.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND ID <> CONNECTION_ID()", "%"+marker+"%").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d backend statements containing %q still run", n, marker)
	}
}

// limitHits reads sqlwarden_limit_hits_total{limit,kind} from /metrics.
func limitHits(t *testing.T, d *harness.Daemon, limit, kind string) int {
	t.Helper()
	body := get(t, "http://"+d.Admin+"/metrics")
	want := fmt.Sprintf(`sqlwarden_limit_hits_total{kind=%q,limit=%q} `, kind, limit)
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), want); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("metric line %q: %v", sc.Text(), err)
			}
			return n
		}
	}
	return 0
}

func wantLimit(t *testing.T, what string, o *record.Record, status, name, kind string, value any) {
	t.Helper()
	if o == nil || o.Status != status || o.Limit == nil || o.Limit.Name != name || o.Limit.Kind != kind || fmt.Sprint(o.Limit.Value) != fmt.Sprint(value) {
		var l any
		if o != nil {
			l = o.Limit
		}
		t.Fatalf("%s: outcome %+v limit %+v, want status %s limit {%s %s %v}", what, o, l, status, name, kind, value)
	}
}

// limitOutcomes counts outcome records naming a limit.
func limitOutcomes(recs []*record.Record, name, kind string) int {
	n := 0
	for _, r := range recs {
		if r.Event == record.EventOutcome && r.Limit != nil && r.Limit.Name == name && r.Limit.Kind == kind {
			n++
		}
	}
	return n
}

// TestLimitsMaxRowsError: past max_rows the client gets ERR 1226, the
// backend statement is killed rather than read to its end, and the same
// connection serves its next statement within a second, in the text and
// the binary protocol.
func TestLimitsMaxRowsError(t *testing.T) {
	d, _ := limitsDaemon(t, "  - name: agents\n    identities: [\"test-*\"]\n    max_rows: 1000\n")
	root := d.Maria.Open(t, "test")
	// Directly, nothing bounds a result.
	if n, err := readRows(root.Query("SELECT seq FROM seq_1_to_5000")); err != nil || n != 5000 {
		t.Fatalf("direct select: %d rows, %v", n, err)
	}

	db := d.Open(t, "test")
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	id := connectionID(t, conn)

	// Exactly the cap passes.
	if n, err := readRows(conn.QueryContext(ctx, "SELECT seq FROM seq_1_to_1000")); err != nil || n != 1000 {
		t.Fatalf("1000 rows under max_rows 1000: %d, %v", n, err)
	}
	for _, tc := range []struct {
		name string
		args []any
		sql  string
	}{
		{"text", nil, bigSelect},
		{"binary", []any{0}, bigSelect + " WHERE seq > ?"},
	} {
		start := time.Now()
		n, err := readRows(conn.QueryContext(ctx, tc.sql, tc.args...))
		t.Logf("%s: %d rows and the error in %v", tc.name, n, time.Since(start))
		if n != 1000 {
			t.Fatalf("%s: client got %d rows, want 1000", tc.name, n)
		}
		me := mysqlErr(t, tc.name, err, 1226, "sqlwarden: limit agents: result exceeds max_rows 1000")
		if string(me.SQLState[:]) != "42000" {
			t.Fatalf("%s: SQLSTATE %s", tc.name, me.SQLState)
		}
		usableWithin(t, conn, time.Second, id)
		noBackendStatement(t, root, "seq_1_to_50000000")
	}
	conn.Close()
	db.Close()

	recs := d.Settled(t)
	_, o := harness.Pair(t, recs, bigSelect)
	wantLimit(t, "text", o, record.StatusError, "agents", "max_rows", 1000)
	if o.Error == nil || o.Error.Code != 1226 || o.Error.Message != "sqlwarden: limit agents: result exceeds max_rows 1000" {
		t.Fatalf("text outcome error %+v", o.Error)
	}
	_, o = harness.PairCommand(t, recs, "COM_STMT_EXECUTE", bigSelect+" WHERE seq > ?")
	wantLimit(t, "binary", o, record.StatusError, "agents", "max_rows", 1000)
	if _, o := harness.Pair(t, recs, "SELECT seq FROM seq_1_to_1000"); o.Status != record.StatusSuccess || o.Limit != nil || *o.Rows != 1000 {
		t.Fatalf("at the cap: %+v", o)
	}
	if n := limitHits(t, d, "agents", "max_rows"); n != 2 {
		t.Fatalf("sqlwarden_limit_hits_total{agents,max_rows} = %d, want 2", n)
	}
}

// readResults reads every result set of a multi-statement reply and
// returns the rows of each, and the error that ended it.
func readResults(rows *sql.Rows, err error) ([]int, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var counts []int
	for {
		n := 0
		for rows.Next() {
			n++
		}
		counts = append(counts, n)
		if !rows.NextResultSet() {
			break
		}
	}
	return counts, rows.Err()
}

// reloaded waits until probe reports the reloaded policy is in force.
func reloaded(t *testing.T, what string, probe func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !probe() {
		if time.Now().After(deadline) {
			t.Fatalf("policy reload (%s) not in force after 10s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLimitsTruncateAndBytes: truncate mode ends the result normally at the
// cap (and a multi-statement's later statements are reported as not run);
// max_result_bytes in both modes; each change applies by hot reload to the
// open connection.
func TestLimitsTruncateAndBytes(t *testing.T) {
	d, reload := limitsDaemon(t, "  - name: rows\n    identities: [\"test-*\"]\n    max_rows: 10\n    on_exceed: truncate\n")
	db := d.Open(t, "test")
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	id := connectionID(t, conn)

	if n, err := readRows(conn.QueryContext(ctx, bigSelect)); err != nil || n != 10 {
		t.Fatalf("truncated select: %d rows, %v", n, err)
	}
	usableWithin(t, conn, time.Second, id)
	if n, err := readRows(conn.QueryContext(ctx, bigSelect+" WHERE seq > ?", 5)); err != nil || n != 10 {
		t.Fatalf("truncated prepared select: %d rows, %v", n, err)
	}
	usableWithin(t, conn, time.Second, id)
	const multi = "SELECT seq FROM seq_1_to_100; SELECT 'second'"
	counts, err := readResults(conn.QueryContext(ctx, multi))
	if len(counts) == 0 || counts[0] != 10 {
		t.Fatalf("multi-statement: result sizes %v, %v", counts, err)
	}
	mysqlErr(t, "multi-statement", err, 1226, "sqlwarden: limit rows: result exceeds max_rows 10; the result was truncated and the statements after it were not run")
	usableWithin(t, conn, time.Second, id)

	// max_result_bytes, error mode. A row of REPEAT('x', 100) is 101 bytes:
	// ten fit in 1KiB, the eleventh does not.
	const wide = "SELECT REPEAT('x', 100) FROM seq_1_to_1000"
	reload("  - name: bytes\n    max_result_bytes: 1KiB\n")
	var n int
	reloaded(t, "max_result_bytes error", func() bool {
		n, err = readRows(conn.QueryContext(ctx, wide))
		return err != nil
	})
	if n != 10 {
		t.Fatalf("bytes error: client got %d rows, want 10", n)
	}
	mysqlErr(t, "bytes error", err, 1226, "sqlwarden: limit bytes: result exceeds max_result_bytes 1024")
	usableWithin(t, conn, time.Second, id)

	reload("  - name: bytes-t\n    max_result_bytes: 1KiB\n    on_exceed: truncate\n")
	reloaded(t, "max_result_bytes truncate", func() bool {
		_, err = readRows(conn.QueryContext(ctx, wide+" /* probe */"))
		return err == nil
	})
	if n, err = readRows(conn.QueryContext(ctx, wide+" /* t */")); err != nil || n != 10 {
		t.Fatalf("bytes truncate: client got %d rows (%v), want 10", n, err)
	}
	usableWithin(t, conn, time.Second, id)
	conn.Close()
	db.Close()

	recs := d.Settled(t)
	_, o := harness.Pair(t, recs, bigSelect)
	wantLimit(t, "truncated text", o, record.StatusSuccess, "rows", "max_rows", 10)
	if !o.Truncated || o.Rows == nil || *o.Rows != 10 || o.Error != nil {
		t.Fatalf("truncated outcome: %+v", o)
	}
	_, o = harness.PairCommand(t, recs, "COM_STMT_EXECUTE", bigSelect+" WHERE seq > ?")
	wantLimit(t, "truncated binary", o, record.StatusSuccess, "rows", "max_rows", 10)
	if !o.Truncated || *o.Rows != 10 {
		t.Fatalf("truncated binary outcome: %+v", o)
	}
	_, o = harness.Pair(t, recs, multi)
	wantLimit(t, "multi", o, record.StatusError, "rows", "max_rows", 10)
	if !o.Truncated || o.Error == nil || o.Error.Code != 1226 {
		t.Fatalf("multi outcome: %+v", o)
	}
	_, o = harness.Pair(t, recs, wide+" /* t */")
	wantLimit(t, "bytes truncate", o, record.StatusSuccess, "bytes-t", "max_result_bytes", 1024)
	if !o.Truncated || *o.Rows != 10 {
		t.Fatalf("bytes truncate outcome: %+v", o)
	}
	for _, l := range [][2]string{{"rows", "max_rows"}, {"bytes", "max_result_bytes"}, {"bytes-t", "max_result_bytes"}} {
		if n, want := limitHits(t, d, l[0], l[1]), limitOutcomes(recs, l[0], l[1]); n != want || n == 0 {
			t.Errorf("hits{%s,%s} = %d, want %d (outcome records)", l[0], l[1], n, want)
		}
	}
}

// fetchReply reads a COM_STMT_FETCH reply: its rows and the packet that
// ended it (EOF or ERR).
func fetchReply(t *testing.T, c *client.Conn, id uint32, n uint32) (int, []byte) {
	t.Helper()
	p := rawCommand(t, c, binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32([]byte{gm.COM_STMT_FETCH}, id), n)...)
	rows := 0
	for {
		if p[0] == wire.ErrHeader || wire.IsEOF(p) {
			return rows, p
		}
		rows++
		var err error
		if p, err = c.ReadPacket(); err != nil {
			t.Fatal(err)
		}
	}
}

// openCursor prepares q and executes it with a read-only cursor.
func openCursor(t *testing.T, c *client.Conn, q string) uint32 {
	t.Helper()
	p := rawCommand(t, c, append([]byte{gm.COM_STMT_PREPARE}, q...)...)
	if p[0] != wire.OKHeader || len(p) < 12 {
		t.Fatalf("prepare: % x", p)
	}
	id := binary.LittleEndian.Uint32(p[1:])
	skipToEOF := func() {
		for {
			p, err := c.ReadPacket()
			if err != nil {
				t.Fatal(err)
			}
			if wire.IsEOF(p) {
				return
			}
		}
	}
	if binary.LittleEndian.Uint16(p[5:]) > 0 {
		skipToEOF() // columns (no parameters in these queries)
	}
	exec := binary.LittleEndian.AppendUint32([]byte{gm.COM_STMT_EXECUTE}, id)
	exec = append(exec, wire.CursorTypeReadOnly, 1, 0, 0, 0)
	if p := rawCommand(t, c, exec...); p[0] != 1 {
		t.Fatalf("execute: % x", p)
	}
	skipToEOF()
	return id
}

// TestLimitsCursor: max_rows counts over a cursor's fetches (COM_STMT_FETCH);
// past it the fetch ends with ERR 1226 (or LAST_ROW_SENT in truncate mode)
// and the server cursor is closed, so no later fetch reads past the cap.
func TestLimitsCursor(t *testing.T) {
	d, reload := limitsDaemon(t, "  - name: cur\n    max_rows: 3\n")
	c, err := client.Connect(d.Listen, harness.ClientUser, harness.ClientPassword, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const q = "SELECT seq FROM seq_1_to_100"
	id := openCursor(t, c, q)
	if n, end := fetchReply(t, c, id, 2); n != 2 || !wire.IsEOF(end) {
		t.Fatalf("first fetch: %d rows, end % x", n, end)
	}
	n, end := fetchReply(t, c, id, 2)
	if n != 1 {
		t.Fatalf("second fetch: %d rows, want 1 before the cap", n)
	}
	wantErr(t, "second fetch", end, 1226, "sqlwarden: limit cur: result exceeds max_rows 3")
	// The cursor is gone: a further fetch gets no rows.
	if n, end := fetchReply(t, c, id, 10); n != 0 || end[0] != wire.ErrHeader {
		t.Fatalf("fetch after the cap: %d rows, end % x", n, end)
	}
	if r, err := c.Execute("SELECT 'after'"); err != nil {
		t.Fatal(err)
	} else if v, _ := r.GetString(0, 0); v != "after" {
		t.Fatalf("after: %q", v)
	}

	reload("  - name: cur-t\n    max_rows: 3\n    on_exceed: truncate\n")
	reloaded(t, "truncate", func() bool {
		r, err := c.Execute("SELECT seq FROM seq_1_to_10")
		return err == nil && r.RowNumber() == 3
	})
	id = openCursor(t, c, q+" /* t */")
	n, end = fetchReply(t, c, id, 5)
	st, ok := wire.ParseEOF(end)
	if n != 3 || !ok || st&gm.SERVER_STATUS_LAST_ROW_SEND == 0 {
		t.Fatalf("truncating fetch: %d rows, end % x", n, end)
	}
	if n, end := fetchReply(t, c, id, 5); n != 0 || end[0] != wire.ErrHeader {
		t.Fatalf("fetch after truncation: %d rows, end % x", n, end)
	}
	if _, err := c.Execute("SELECT 1"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	recs := d.Settled(t)
	outs := harness.Outcomes(recs, harness.Stmt("COM_STMT_FETCH", ""))
	if len(outs) < 4 {
		t.Fatalf("%d fetch outcomes", len(outs))
	}
	wantLimit(t, "error fetch", outs[1], record.StatusError, "cur", "max_rows", 3)
	wantLimit(t, "truncating fetch", outs[3], record.StatusSuccess, "cur-t", "max_rows", 3)
	if !outs[3].Truncated || *outs[3].Rows != 3 {
		t.Fatalf("truncating fetch outcome %+v", outs[3])
	}
}

// TestLimitsStatementTimeout: the server stops a statement at the limit
// (1969); a session cannot switch the limit off with SET, and when a stored
// procedure does it anyway the daemon's watchdog kills the statement at the
// limit plus its grace, again with 1969. A reload changes the session's
// limit in place.
func TestLimitsStatementTimeout(t *testing.T) {
	d, reload := limitsDaemon(t, "  - name: slow\n    identities: [\"test-agent\"]\n    statement_timeout: 1s\n")
	root := d.Maria.Open(t, "")
	mustExec(t, root, "DROP DATABASE IF EXISTS lim_timeout")
	mustExec(t, root, "CREATE DATABASE lim_timeout")
	mustExec(t, root, "CREATE PROCEDURE lim_timeout.untimed() BEGIN SET max_statement_time = 0; END")

	// Directly, both ways around a session limit work.
	direct, err := root.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mustExecConn(t, direct, "SET SESSION max_statement_time = 1")
	mustExecConn(t, direct, "SET STATEMENT max_statement_time = 0 FOR SELECT SLEEP(1.2)")
	mustExecConn(t, direct, "CALL lim_timeout.untimed()")
	mustExecConn(t, direct, "SELECT SLEEP(1.2)")
	direct.Close()

	db := d.Open(t, "lim_timeout")
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	id := connectionID(t, conn)

	start := time.Now()
	_, err = conn.ExecContext(ctx, "SELECT SLEEP(3)")
	el := time.Since(start)
	me := mysqlErr(t, "server timeout", err, 1969, "")
	if string(me.SQLState[:]) != "70100" || el < 900*time.Millisecond || el > 1400*time.Millisecond {
		t.Fatalf("server timeout: %v (%s) after %v", me, me.SQLState, el)
	}
	start = time.Now()
	_, err = conn.ExecContext(ctx, "SELECT SLEEP(?)", 3)
	mysqlErr(t, "prepared timeout", err, 1969, "")
	if el := time.Since(start); el > 1400*time.Millisecond {
		t.Fatalf("prepared timeout after %v", el)
	}
	for _, q := range []string{
		"SET max_statement_time = 0",
		"SET @@session.MAX_STATEMENT_TIME = 100",
		"SET STATEMENT max_statement_time = 0 FOR SELECT SLEEP(1.2)",
		"/*!100000 SET max_statement_time = 0 */",
		"SELECT 1; SET SESSION max_execution_time = 0",
	} {
		_, err := conn.ExecContext(ctx, q)
		mysqlErr(t, q, err, 1226, "sqlwarden: limit slow: statement_timeout 1s applies to this identity")
	}
	var mst float64
	if err := conn.QueryRowContext(ctx, "SELECT @@max_statement_time").Scan(&mst); err != nil || mst != 1 {
		t.Fatalf("session max_statement_time = %v, %v; want 1", mst, err)
	}

	// What the server no longer covers, the watchdog does.
	mustExecConn(t, conn, "CALL untimed()")
	start = time.Now()
	_, err = conn.ExecContext(ctx, "SELECT SLEEP(3) AS watched")
	el = time.Since(start)
	me = mysqlErr(t, "watchdog", err, 1969, "sqlwarden: limit slow: statement exceeded statement_timeout 1s")
	if string(me.SQLState[:]) != "70100" || el < 1400*time.Millisecond || el > 2500*time.Millisecond {
		t.Fatalf("watchdog: %v (%s) after %v", me, me.SQLState, el)
	}
	usableWithin(t, conn, time.Second, id)
	// A multi-statement is one statement to the limit: a killed SLEEP
	// returns 1 without an error and the server goes on with the next, so
	// once the watchdog fired the batch ends at the statement it was in:
	// the client gets 1969 in place of the rest, which the server is
	// stopped from running.
	const batch = "DO SLEEP(0.8); DO SLEEP(0.8); DO SLEEP(0.8); DO SLEEP(0.8); SELECT 'finished'"
	start = time.Now()
	_, err = conn.ExecContext(ctx, batch)
	mysqlErr(t, "batch under the watchdog", err, 1969, "sqlwarden: limit slow: statement exceeded statement_timeout 1s; the rest of the batch was stopped")
	if el := time.Since(start); el > 2500*time.Millisecond {
		t.Fatalf("a batch of four 0.8s sleeps under statement_timeout 1s took %v", el)
	}
	usableWithin(t, conn, time.Second, id)

	// A reload changes the limit on the open connection.
	reload("  - name: slow\n    statement_timeout: 2500ms\n")
	reloaded(t, "statement_timeout 2.5s", func() bool {
		err := conn.QueryRowContext(ctx, "SELECT @@max_statement_time").Scan(&mst)
		return err == nil && mst == 2.5
	})
	if _, err := conn.ExecContext(ctx, "SELECT SLEEP(1.2) AS longer"); err != nil {
		t.Fatalf("1.2s under a 2.5s limit: %v", err)
	}
	reload("  - name: other\n    max_rows: 1000000\n")
	reloaded(t, "no statement_timeout", func() bool {
		err := conn.QueryRowContext(ctx, "SELECT @@max_statement_time").Scan(&mst)
		return err == nil && mst == 0
	})
	if _, err := conn.ExecContext(ctx, "SET max_statement_time = 5"); err != nil {
		t.Fatalf("SET without a timeout limit: %v", err)
	}
	usableWithin(t, conn, time.Second, id)
	conn.Close()
	db.Close()

	recs := d.Settled(t)
	_, o := harness.Pair(t, recs, "SELECT SLEEP(3)")
	wantLimit(t, "server timeout", o, record.StatusError, "slow", "statement_timeout", "1s")
	if o.Error.Code != 1969 {
		t.Fatalf("server timeout outcome error %+v", o.Error)
	}
	_, o = harness.Pair(t, recs, "SELECT SLEEP(3) AS watched")
	wantLimit(t, "watchdog", o, record.StatusError, "slow", "statement_timeout", "1s")
	if o.Error.Code != 1969 || o.Error.State != "70100" {
		t.Fatalf("watchdog outcome error %+v", o.Error)
	}
	_, o = harness.Pair(t, recs, "SET max_statement_time = 0")
	wantLimit(t, "SET refused", o, record.StatusBlocked, "slow", "statement_timeout", "1s")
	_, o = harness.Pair(t, recs, batch)
	wantLimit(t, "batch", o, record.StatusError, "slow", "statement_timeout", "1s")
	if n := limitHits(t, d, "slow", "statement_timeout"); n != 9 {
		t.Errorf("hits{slow,statement_timeout} = %d, want 9", n)
	}
}

// TestLimitsAdmission: max_connections, max_concurrent_statements and
// max_statements_per_second refuse with 1226 before the backend sees
// anything; a refused login is a session.denied record.
func TestLimitsAdmission(t *testing.T) {
	d, reload := limitsDaemon(t, "  - name: conns\n    max_connections: 2\n  - name: busy\n    identities: [\"test-*\"]\n    max_concurrent_statements: 1\n")
	connect := func() (*client.Conn, error) {
		return client.Connect(d.Listen, harness.ClientUser, harness.ClientPassword, "test")
	}
	c1, err := connect()
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c2, err := connect()
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_, err = connect()
	var me *gm.MyError
	if !errors.As(err, &me) || me.Code != 1226 || me.Message != "sqlwarden: limit conns: max_connections 2 reached for identity test-agent" {
		t.Fatalf("third connection: %v", err)
	}
	denied := d.WaitFor(t, "session.denied for max_connections", func(r *record.Record) bool {
		return r.Event == record.EventSessionDenied && r.Limit != nil
	})
	if denied.Limit.Name != "conns" || denied.Limit.Kind != "max_connections" || fmt.Sprint(denied.Limit.Value) != "2" || denied.Identity == nil || denied.Identity.Name != harness.Identity {
		t.Fatalf("session.denied: %+v limit %+v", denied, denied.Limit)
	}

	// One statement at a time for the identity across its connections.
	logFrom := generalLogSize(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := c1.Execute("SELECT SLEEP(1.5) AS busy"); err != nil {
			t.Errorf("busy statement: %v", err)
		}
	}()
	d.WaitFor(t, "the busy statement", func(r *record.Record) bool { return r.SQL == "SELECT SLEEP(1.5) AS busy" })
	_, err = c2.Execute("SELECT 'concurrency-marker'")
	if !errors.As(err, &me) || me.Code != 1226 || me.Message != "sqlwarden: limit busy: max_concurrent_statements 1 reached" {
		t.Fatalf("second concurrent statement: %v", err)
	}
	wg.Wait()
	if _, err := c2.Execute("SELECT 'after-busy'"); err != nil {
		t.Fatalf("after the busy statement: %v", err)
	}
	if log := generalLogSince(t, logFrom); strings.Contains(log, "concurrency-marker") || !strings.Contains(log, "after-busy") {
		t.Fatalf("the refused statement reached MariaDB (or the log is not being written):\n%s", log)
	}

	// A closed connection frees its place.
	c1.Close()
	reloaded(t, "a freed connection", func() bool {
		c, err := connect()
		if err == nil {
			c1 = c
		}
		return err == nil
	})

	reload("  - name: rate\n    max_statements_per_second: 5\n")
	reloaded(t, "max_statements_per_second", func() bool {
		_, err := c2.Execute("SELECT 'probe'")
		return errors.As(err, &me) && me.Code == 1226
	})
	// The bucket refills at 5 per second: wait for it to be full again.
	time.Sleep(1100 * time.Millisecond)
	logFrom = generalLogSize(t)
	ok, refused := 0, 0
	for i := range 20 {
		_, err := c2.Execute(fmt.Sprintf("SELECT 'rate-%d'", i))
		switch {
		case err == nil:
			ok++
		case errors.As(err, &me) && me.Code == 1226 && me.Message == "sqlwarden: limit rate: max_statements_per_second 5 exceeded":
			refused++
		default:
			t.Fatalf("statement %d: %v", i, err)
		}
	}
	if ok < 5 || ok > 7 || refused != 20-ok {
		t.Fatalf("20 statements at once under 5/s: %d ran, %d refused", ok, refused)
	}
	if n := strings.Count(generalLogSince(t, logFrom), "'rate-"); n != ok {
		t.Fatalf("MariaDB saw %d of the statements, %d ran", n, ok)
	}
	// Each statement of a multi-statement takes its token: six never fit a
	// bucket of five, three fit once.
	multi := d.Open(t, "")
	multi.SetMaxOpenConns(1)
	if err := multi.Ping(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	var mme *gomysql.MySQLError
	if _, err := multi.Exec("DO 1; DO 2; DO 3; DO 4; DO 5; DO 6"); !errors.As(err, &mme) || mme.Number != 1226 ||
		mme.Message != "sqlwarden: limit rate: max_statements_per_second 5: a multi-statement of 6 statements never fits" {
		t.Fatalf("six statements in one query under 5/s: %v", err)
	}
	if _, err := multi.Exec("DO 1; DO 2; DO 3"); err != nil {
		t.Fatalf("three statements in one query under 5/s, the bucket full: %v", err)
	}
	if _, err := multi.Exec("DO 1; DO 2; DO 3"); !errors.As(err, &mme) || mme.Number != 1226 {
		t.Fatalf("three more with two tokens left: %v", err)
	}
	refused += 2
	reloaded(t, "a refilled bucket", func() bool {
		_, err := c2.Execute("SELECT 'refilled'")
		return err == nil
	})
	c1.Close()
	c2.Close()

	recs := d.Settled(t)
	_, o := harness.Pair(t, recs, "SELECT 'concurrency-marker'")
	wantLimit(t, "concurrency", o, record.StatusBlocked, "busy", "max_concurrent_statements", 1)
	if o.Error == nil || o.Error.Code != 1226 || o.Error.State != "42000" {
		t.Fatalf("concurrency outcome error %+v", o.Error)
	}
	blocked := 0
	for _, r := range recs {
		if r.Event == record.EventOutcome && r.Limit != nil && r.Limit.Kind == "max_statements_per_second" && r.Status == record.StatusBlocked {
			blocked++
		}
	}
	if blocked < refused {
		t.Fatalf("%d rate-limited outcomes recorded, %d refused", blocked, refused)
	}
	deniedN := 0
	for _, r := range recs {
		if r.Event == record.EventSessionDenied && r.Limit != nil && r.Limit.Kind == "max_connections" {
			deniedN++
		}
	}
	if n := limitHits(t, d, "conns", "max_connections"); n != deniedN || n < 1 {
		t.Errorf("hits{conns,max_connections} = %d, want %d (session.denied records)", n, deniedN)
	}
	if n := limitHits(t, d, "busy", "max_concurrent_statements"); n != 1 {
		t.Errorf("hits{busy,max_concurrent_statements} = %d, want 1", n)
	}
	if n := limitHits(t, d, "rate", "max_statements_per_second"); n != blocked {
		t.Errorf("hits{rate,max_statements_per_second} = %d, want %d", n, blocked)
	}
}

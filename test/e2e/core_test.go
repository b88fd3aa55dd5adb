package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// setupDB creates a fresh database with a small table, directly on MariaDB.
func setupDB(t *testing.T, m testutil.MariaDB, name string) *sql.DB {
	t.Helper()
	root := m.Open(t, "")
	mustExec(t, root, "DROP DATABASE IF EXISTS "+name)
	mustExec(t, root, "CREATE DATABASE "+name)
	mustExec(t, root, "CREATE TABLE "+name+".items (id INT PRIMARY KEY, name VARCHAR(64), qty INT)")
	mustExec(t, root, "INSERT INTO "+name+".items VALUES (1,'apple',10),(2,'pear',20),(3,'plum',30)")
	return root
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) sql.Result {
	t.Helper()
	r, err := db.Exec(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return r
}

func TestCoreGoDriver(t *testing.T) {
	d := harness.Start(t, harness.Options{})
	root := setupDB(t, d.Maria, "core_go")
	db := d.Open(t, "core_go")
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	var name string
	if err := conn.QueryRowContext(ctx, "SELECT name FROM items WHERE id = 2").Scan(&name); err != nil || name != "pear" {
		t.Fatalf("select: %q %v", name, err)
	}
	res, err := conn.ExecContext(ctx, "INSERT INTO items VALUES (4,'fig',40),(5,'kiwi',50)")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 2 {
		t.Fatalf("insert affected %d, want 2", n)
	}
	res, err = conn.ExecContext(ctx, "UPDATE items SET qty = qty + 1 WHERE id >= 4")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 2 {
		t.Fatalf("update affected %d, want 2", n)
	}
	res, err = conn.ExecContext(ctx, "DELETE FROM items WHERE id = 5")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("delete affected %d, want 1", n)
	}
	_, err = conn.ExecContext(ctx, "SELECT * FROM no_such_table")
	var me *gomysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1146 {
		t.Fatalf("unknown table: got %v, want error 1146", err)
	}
	// A multi-statement: two result sets and an OK.
	rows, err := conn.QueryContext(ctx, "SELECT id FROM items WHERE id = 1; SELECT name FROM items WHERE id = 3; UPDATE items SET qty = 0 WHERE id = 1")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			got = append(got, v)
		}
		if !rows.NextResultSet() {
			break
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if strings.Join(got, ",") != "1,plum" {
		t.Fatalf("multi-statement results %v", got)
	}
	// USE switches the database the proxy tracks.
	mustExec(t, root, "CREATE DATABASE IF NOT EXISTS core_go2")
	mustExecConn(t, conn, "USE core_go2")
	var cur string
	if err := conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&cur); err != nil || cur != "core_go2" {
		t.Fatalf("after USE: %q %v", cur, err)
	}
	conn.Close()
	db.Close()

	// The backend really holds the writes.
	var qty int
	if err := root.QueryRow("SELECT qty FROM core_go.items WHERE id = 4").Scan(&qty); err != nil || qty != 41 {
		t.Fatalf("backend qty %d %v", qty, err)
	}

	recs := d.Settled(t)
	st, out := harness.Pair(t, recs, "SELECT name FROM items WHERE id = 2")
	if st.Command != "COM_QUERY" || st.DB != "core_go" || st.Digest == "" || strings.Contains(st.Digest, "2") {
		t.Errorf("select statement record: %+v", st)
	}
	if out.Status != record.StatusSuccess || out.Rows == nil || *out.Rows != 1 || len(out.Columns) != 1 || out.Columns[0] != "name" || out.DurationUS == nil {
		t.Errorf("select outcome: %+v", out)
	}
	_, out = harness.Pair(t, recs, "INSERT INTO items VALUES (4,'fig',40),(5,'kiwi',50)")
	if out.AffectedRows == nil || *out.AffectedRows != 2 {
		t.Errorf("insert outcome: %+v", out)
	}
	_, out = harness.Pair(t, recs, "DELETE FROM items WHERE id = 5")
	if out.AffectedRows == nil || *out.AffectedRows != 1 {
		t.Errorf("delete outcome: %+v", out)
	}
	_, out = harness.Pair(t, recs, "SELECT * FROM no_such_table")
	if out.Status != record.StatusError || out.Error == nil || out.Error.Code != 1146 {
		t.Errorf("error outcome: %+v", out)
	}
	st, out = harness.Pair(t, recs, "SELECT id FROM items WHERE id = 1; SELECT name FROM items WHERE id = 3; UPDATE items SET qty = 0 WHERE id = 1")
	if st.Statement == nil || st.Statement.Statements != 3 || out.Rows == nil || *out.Rows != 2 || *out.AffectedRows != 1 {
		t.Errorf("multi-statement records: %+v / %+v", st.Statement, out)
	}
	st, _ = harness.Pair(t, recs, "SELECT DATABASE()")
	if st.DB != "core_go2" {
		t.Errorf("db after USE recorded as %q", st.DB)
	}
	var start, end *record.Record
	for _, r := range recs {
		if r.Event == record.EventSessionStart && r.SessionID == st.SessionID {
			start = r
		}
		if r.Event == record.EventSessionEnd && r.SessionID == st.SessionID {
			end = r
		}
	}
	if start == nil || start.Identity == nil || start.Identity.Name != harness.Identity || start.Client == nil || start.Client.User != harness.ClientUser ||
		start.Backend == nil || start.Backend.User != "warden" {
		t.Errorf("session.start: %+v", start)
	}
	if end == nil || end.Statements == nil || *end.Statements < 8 {
		t.Errorf("session.end: %+v", end)
	}
}

func mustExecConn(t *testing.T, c *sql.Conn, q string) {
	t.Helper()
	if _, err := c.ExecContext(context.Background(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestCoreInitDBAndPing(t *testing.T) {
	d := harness.Start(t, harness.Options{})
	setupDB(t, d.Maria, "core_init")
	c, err := client.Connect(d.Listen, harness.ClientUser, harness.ClientPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(); err != nil {
		t.Fatal(err)
	}
	if err := c.UseDB("core_init"); err != nil { // COM_INIT_DB
		t.Fatal(err)
	}
	r, err := c.Execute("SELECT COUNT(*) FROM items")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := r.GetInt(0, 0); n != 3 {
		t.Fatalf("count %d", n)
	}
	if err := c.UseDB("no_such_db"); err == nil {
		t.Fatal("COM_INIT_DB of a missing database succeeded")
	}
	c.Close()
	recs := d.Settled(t)
	_, out := harness.Pair(t, recs, "USE `core_init`")
	if out.Status != record.StatusSuccess {
		t.Errorf("init db outcome %+v", out)
	}
	st, _ := harness.Pair(t, recs, "SELECT COUNT(*) FROM items")
	if st.DB != "core_init" {
		t.Errorf("db after COM_INIT_DB = %q", st.DB)
	}
	_, out = harness.Pair(t, recs, "USE `no_such_db`")
	if out.Status != record.StatusError || out.Error.Code != 1049 {
		t.Errorf("bad init db outcome %+v", out)
	}
	for _, r := range recs {
		if r.Event == record.EventStatement && r.Command == "COM_INIT_DB" && r.SQL == "USE `no_such_db`" {
			return
		}
	}
	t.Error("COM_INIT_DB not recorded with its command name")
}

func TestCoreMariaDBCLI(t *testing.T) {
	d := harness.Start(t, harness.Options{})
	setupDB(t, d.Maria, "core_cli")
	host, port := d.HostPort()
	out, err := exec.Command("mariadb", "-h", host, "-P", port, "-u", harness.ClientUser, "-p"+harness.ClientPassword,
		"--skip-ssl", "-D", "core_cli", "--batch", "-e",
		"SELECT name FROM items ORDER BY id; UPDATE items SET qty = 11 WHERE id = 1; use mysql; SELECT COUNT(*) >= 0 FROM time_zone").CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "apple\npear\nplum") {
		t.Fatalf("mariadb output:\n%s", out)
	}
	// An error with its code, as the CLI prints it.
	out, err = exec.Command("mariadb", "-h", host, "-P", port, "-u", harness.ClientUser, "-p"+harness.ClientPassword,
		"--skip-ssl", "-D", "core_cli", "-e", "SELECT * FROM missing").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "ERROR 1146") {
		t.Fatalf("mariadb error: %v\n%s", err, out)
	}
	recs := d.Settled(t)
	_, o := harness.Pair(t, recs, "SELECT name FROM items ORDER BY id")
	if *o.Rows != 3 {
		t.Errorf("rows %d", *o.Rows)
	}
	_, o = harness.Pair(t, recs, "UPDATE items SET qty = 11 WHERE id = 1")
	if *o.AffectedRows != 1 {
		t.Errorf("affected %d", *o.AffectedRows)
	}
	// The CLI's `use` is a COM_INIT_DB.
	st, _ := harness.Pair(t, recs, "SELECT COUNT(*) >= 0 FROM time_zone")
	if st.DB != "mysql" {
		t.Errorf("db after CLI use = %q", st.DB)
	}
}

func TestCoreStreamsLargeResult(t *testing.T) {
	d := harness.Start(t, harness.Options{})
	db := d.Open(t, "test")
	const n = 100000
	rows, err := db.Query(fmt.Sprintf("SELECT seq, REPEAT('x', 100) FROM seq_1_to_%d", n))
	if err != nil {
		t.Fatal(err)
	}
	var count, last int
	for rows.Next() {
		var s string
		if err := rows.Scan(&last, &s); err != nil {
			t.Fatal(err)
		}
		count++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if count != n || last != n {
		t.Fatalf("got %d rows, last %d", count, last)
	}
	_, out := harness.Pair(t, d.Settled(t), fmt.Sprintf("SELECT seq, REPEAT('x', 100) FROM seq_1_to_%d", n))
	if *out.Rows != n {
		t.Fatalf("outcome rows %d", *out.Rows)
	}
}

// TestCoreDrainOnSIGTERM: a statement in flight completes; then the daemon exits.
func TestCoreDrainOnSIGTERM(t *testing.T) {
	d := harness.Start(t, harness.Options{})
	db := d.Open(t, "")
	db.SetMaxIdleConns(0)
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		var v int
		done <- db.QueryRow("SELECT SLEEP(1.5) + 7").Scan(&v)
	}()
	d.WaitFor(t, "for the sleeping statement", func(r *record.Record) bool { return r.SQL == "SELECT SLEEP(1.5) + 7" })
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("in-flight statement failed during drain: %v", err)
	}
	d.Stop(t)
	if _, err := net.DialTimeout("tcp", d.Listen, time.Second); err == nil {
		t.Fatal("daemon still accepts after SIGTERM")
	}
	_, out := harness.Pair(t, d.Settled(t), "SELECT SLEEP(1.5) + 7")
	if out.Status != record.StatusSuccess {
		t.Fatalf("drained statement outcome %+v", out)
	}
}

var _ = os.Getenv

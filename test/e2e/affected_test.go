package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// blastFixture (re)creates the tables the max_affected_rows tests write.
func blastFixture(t *testing.T, root *sql.DB) {
	t.Helper()
	mustExec(t, root, strings.Join([]string{
		"DROP DATABASE IF EXISTS blast",
		"CREATE DATABASE blast",
		"CREATE TABLE blast.items (id INT PRIMARY KEY, name VARCHAR(32), qty INT) ENGINE=InnoDB",
		"INSERT INTO blast.items VALUES (1,'a',10),(2,'b',20),(3,'c',30),(4,'d',40),(5,'e',50)",
		"CREATE TABLE blast.other (id INT PRIMARY KEY) ENGINE=InnoDB",
		"INSERT INTO blast.other VALUES (1),(2)",
		"CREATE TABLE blast.seq (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(32)) ENGINE=InnoDB",
		"CREATE TABLE blast.flat (id INT PRIMARY KEY, qty INT) ENGINE=MyISAM",
		"INSERT INTO blast.flat VALUES (1,1),(2,2)",
		"CREATE PROCEDURE blast.wipe() DELETE FROM blast.items",
		// A parent whose deletes cascade into a child the server does not count.
		"CREATE TABLE blast.parent (id INT PRIMARY KEY) ENGINE=InnoDB",
		"INSERT INTO blast.parent VALUES (1)",
		"CREATE TABLE blast.child (id INT PRIMARY KEY, p INT, FOREIGN KEY (p) REFERENCES blast.parent (id) ON DELETE CASCADE) ENGINE=InnoDB",
		"INSERT INTO blast.child SELECT seq, 1 FROM blast.seq_1_to_10",
		"CREATE TABLE blast.logged (id INT PRIMARY KEY) ENGINE=InnoDB",
		"CREATE TRIGGER blast.wipe_on_insert AFTER INSERT ON blast.logged FOR EACH ROW DELETE FROM blast.child",
	}, ";\n"))
}

// blastState is the content of the tables, for "unchanged" checks.
func blastState(t *testing.T, root *sql.DB) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{"SELECT id, name, qty FROM blast.items ORDER BY id", "SELECT id, qty FROM blast.flat ORDER BY id"} {
		rows, err := root.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id, qty int
			var name string
			if strings.Contains(q, "name") {
				err = rows.Scan(&id, &name, &qty)
			} else {
				err = rows.Scan(&id, &qty)
			}
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%d:%s:%d ", id, name, qty)
		}
		rows.Close()
	}
	return b.String()
}

// alwaysTrue are writes whose WHERE (or join) no parser can see through:
// each touches every row of blast.items.
var alwaysTrue = []string{
	"UPDATE items SET qty = qty + 1 WHERE id IS NOT NULL",
	"UPDATE items SET qty = 0 WHERE id = id",
	"UPDATE items i JOIN other o ON 1 = 1 SET i.qty = 0 WHERE i.id > 0",
	"DELETE FROM items WHERE id = id",
	"DELETE i FROM items i JOIN other o ON 1 = 1 WHERE i.id > 0",
	"REPLACE INTO items SELECT id, name, qty + 1 FROM items",
	"INSERT INTO items SELECT id + 100, name, qty FROM items",
}

// TestMaxAffectedRows: through the real daemon, writes that touch more rows
// than max_affected_rows are rolled back with ERR 1226 and leave the tables
// unchanged, by text and prepared statement, outside and inside a
// transaction; writes under the limit commit; the session's transaction
// state is what it would have been.
func TestMaxAffectedRows(t *testing.T) {
	m := testutil.StartMariaDB(t)
	root := m.Open(t, "")
	blastFixture(t, root)

	// Directly on MariaDB each statement touches all five rows.
	direct, err := sql.Open("mysql", m.DSN("warden", "warden-pass", "blast"))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	for _, q := range alwaysTrue {
		res, err := direct.Exec(q)
		if err != nil {
			t.Fatalf("direct %s: %v", q, err)
		}
		if n, _ := res.RowsAffected(); n < 5 {
			t.Fatalf("direct %s: %d rows affected, want every row", q, n)
		}
		blastFixture(t, root)
	}
	clean := blastState(t, root)

	dir := t.TempDir()
	pfile := filepath.Join(dir, "policy.yaml")
	writePolicy(t, pfile, "limits:\n  - name: blast\n    identities: [\""+harness.Identity+"\"]\n    max_affected_rows: 2\n")
	d := harness.Start(t, harness.Options{Extra: "policy:\n  file: " + pfile + "\n"})
	db, err := sql.Open("mysql", d.DSN("blast", "multiStatements=true&interpolateParams=false"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	inTx := func() int {
		t.Helper()
		var v int
		if err := conn.QueryRowContext(ctx, "SELECT @@in_transaction").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}

	// Over the limit: rolled back, by text and as a prepared statement.
	for _, q := range alwaysTrue {
		if _, err := conn.ExecContext(ctx, q); !isLimit(err, "max_affected_rows") || !strings.Contains(err.Error(), "rolled back") {
			t.Errorf("%s: %v, want ERR 1226 max_affected_rows", q, err)
		}
		if got := blastState(t, root); got != clean {
			t.Fatalf("%s through sqlwarden changed the table: %s", q, got)
		}
		if inTx() != 0 {
			t.Fatalf("%s left a transaction open", q)
		}
	}
	if _, err := conn.ExecContext(ctx, "UPDATE items SET qty = ? WHERE id IS NOT NULL", 7); !isLimit(err, "max_affected_rows") {
		t.Errorf("prepared always-true UPDATE: %v", err)
	}
	if got := blastState(t, root); got != clean {
		t.Fatalf("prepared UPDATE changed the table: %s", got)
	}

	// Under the limit: committed, with the statement's own OK.
	res, err := conn.ExecContext(ctx, "UPDATE items SET qty = 11 WHERE id IN (1, 2)")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 2 {
		t.Fatalf("rows affected %d", n)
	}
	res, err = conn.ExecContext(ctx, "INSERT INTO seq (name) VALUES (?)", "x")
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := res.LastInsertId(); id != 1 {
		t.Fatalf("insert id %d", id)
	}
	if inTx() != 0 {
		t.Fatal("a committed write left a transaction open")
	}
	// Whatever the session's completion_type, the proxy's COMMIT neither
	// chains a new transaction nor drops the connection.
	for _, ct := range []string{"CHAIN", "RELEASE"} {
		mustConnExec(t, conn, "SET completion_type = '"+ct+"'")
		mustConnExec(t, conn, "UPDATE items SET qty = 12 WHERE id = 1")
		if _, err := conn.ExecContext(ctx, "UPDATE items SET qty = 0 WHERE id IS NOT NULL"); !isLimit(err, "max_affected_rows") {
			t.Fatalf("completion_type %s: over-limit UPDATE: %v", ct, err)
		}
		if inTx() != 0 {
			t.Fatalf("completion_type %s: the proxy's COMMIT chained a transaction", ct)
		}
	}
	mustConnExec(t, conn, "SET completion_type = DEFAULT")
	var qty int
	if err := root.QueryRow("SELECT qty FROM blast.items WHERE id = 2").Scan(&qty); err != nil || qty != 11 {
		t.Fatalf("committed write not visible to another session: %d %v", qty, err)
	}

	// Inside an explicit transaction: the user's earlier writes survive a
	// rolled-back over-limit statement, and the transaction stays open.
	mustConnExec(t, conn, "BEGIN")
	mustConnExec(t, conn, "UPDATE items SET name = 'early' WHERE id = 3")
	if _, err := conn.ExecContext(ctx, "DELETE FROM items WHERE id = id"); !isLimit(err, "max_affected_rows") {
		t.Fatalf("over-limit DELETE in a transaction: %v", err)
	}
	if inTx() != 1 {
		t.Fatal("the client's transaction ended")
	}
	// After an error the proxy does not know the transaction state; it asks.
	if _, err := conn.ExecContext(ctx, "SELECT * FROM no_such_table"); err == nil {
		t.Fatal("select from a missing table worked")
	}
	if _, err := conn.ExecContext(ctx, "UPDATE items SET qty = 0 WHERE id IS NOT NULL"); !isLimit(err, "max_affected_rows") {
		t.Fatalf("over-limit UPDATE after an error: %v", err)
	}
	mustConnExec(t, conn, "UPDATE items SET qty = 33 WHERE id = 3")
	mustConnExec(t, conn, "COMMIT")
	var name string
	if err := root.QueryRow("SELECT name, qty FROM blast.items WHERE id = 3").Scan(&name, &qty); err != nil || name != "early" || qty != 33 {
		t.Fatalf("id 3: %q %d %v: want the transaction's own writes", name, qty, err)
	}
	var count int
	if err := root.QueryRow("SELECT COUNT(*) FROM blast.items WHERE qty > 0").Scan(&count); err != nil || count != 5 {
		t.Fatalf("%d rows with qty > 0: an over-limit write survived", count)
	}

	// autocommit off: savepoints, and ROLLBACK still undoes what the client wrote.
	mustConnExec(t, conn, "SET autocommit = 0")
	if _, err := conn.ExecContext(ctx, "UPDATE items SET qty = 1 WHERE id = id"); !isLimit(err, "max_affected_rows") {
		t.Fatalf("over-limit UPDATE with autocommit off: %v", err)
	}
	mustConnExec(t, conn, "UPDATE items SET qty = 44 WHERE id = 4")
	mustConnExec(t, conn, "ROLLBACK")
	mustConnExec(t, conn, "SET autocommit = 1")
	if err := root.QueryRow("SELECT qty FROM blast.items WHERE id = 4").Scan(&qty); err != nil || qty != 40 {
		t.Fatalf("id 4 qty %d %v: the rolled-back transaction's write survived", qty, err)
	}

	// What cannot be bounded is refused before it runs.
	before := blastState(t, root)
	for _, q := range []string{
		"UPDATE flat SET qty = 0 WHERE id = id", // MyISAM: no rollback
		"CALL wipe()",                           // writes nobody counts
		"UPDATE items SET qty = 0 WHERE id = 1; DELETE FROM items WHERE id = id", // multi-statement write
		"TRUNCATE items",
		"LOCK TABLES items WRITE",         // a bounded write's transaction would release it
		"DELETE FROM parent WHERE id = 1", // cascades into 10 child rows nobody counts
		"INSERT INTO logged VALUES (1)",   // its trigger deletes them
	} {
		if _, err := conn.ExecContext(ctx, q); !isLimit(err, "max_affected_rows") {
			t.Errorf("%s: %v, want ERR 1226", q, err)
		}
	}
	if got := blastState(t, root); got != before {
		t.Fatalf("a refused statement changed the tables: %s", got)
	}
	var children int
	if err := root.QueryRow("SELECT COUNT(*) FROM blast.child").Scan(&children); err != nil || children != 10 {
		t.Fatalf("%d child rows (%v) after the refused cascading DELETE, want 10", children, err)
	}
	var one int
	if err := conn.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("session unusable after the limit fired: %v", err)
	}

	// Journal and metrics name the limit.
	_, o := d.FindStatement(t, "DELETE FROM items WHERE id = id")
	if o == nil || o.Status != record.StatusError || o.Error == nil || o.Error.Code != 1226 || o.Limit == nil ||
		o.Limit.Name != "blast" || o.Limit.Kind != "max_affected_rows" || o.Limit.Value != float64(2) {
		t.Errorf("outcome of the over-limit DELETE: %+v (limit %+v)", o, o.Limit)
	}
	body := get(t, "http://"+d.Admin+"/metrics")
	if !strings.Contains(string(body), `sqlwarden_limit_hits_total{kind="max_affected_rows",limit="blast"}`) {
		t.Errorf("metrics lack the limit hits")
	}
}

func mustConnExec(t *testing.T, c *sql.Conn, q string, args ...any) {
	t.Helper()
	if _, err := c.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestMaxAffectedRowsLoadDataLocal: LOAD DATA LOCAL INFILE streams the
// client's file inside the bounded transaction; a file with more rows than
// the limit loads nothing.
func TestMaxAffectedRowsLoadDataLocal(t *testing.T) {
	m := testutil.StartMariaDB(t)
	root := m.Open(t, "")
	blastFixture(t, root)
	dir := t.TempDir()
	big, small := filepath.Join(dir, "big.csv"), filepath.Join(dir, "small.csv")
	if err := os.WriteFile(big, []byte("11,k,1\n12,l,2\n13,m,3\n14,n,4\n15,o,5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(small, []byte("21,p,1\n22,q,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	load := func(db *sql.DB, file string) (sql.Result, error) {
		return db.Exec(fmt.Sprintf("LOAD DATA LOCAL INFILE '%s' INTO TABLE items FIELDS TERMINATED BY ','", file))
	}
	count := func() int {
		var n int
		if err := root.QueryRow("SELECT COUNT(*) FROM blast.items").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// Directly, the big file loads all five rows.
	direct, err := sql.Open("mysql", m.DSN("warden", "warden-pass", "blast")+"&allowAllFiles=true")
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	if res, err := load(direct, big); err != nil {
		t.Fatal(err)
	} else if n, _ := res.RowsAffected(); n != 5 {
		t.Fatalf("direct load: %d rows", n)
	}
	blastFixture(t, root)

	pfile := filepath.Join(dir, "policy.yaml")
	writePolicy(t, pfile, "limits:\n  - name: blast\n    max_affected_rows: 2\n")
	d := harness.Start(t, harness.Options{Extra: "policy:\n  file: " + pfile + "\nallow_local_infile: true\n"})
	db, err := sql.Open("mysql", d.DSN("blast", "allowAllFiles=true"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := load(db, big); !isLimit(err, "max_affected_rows") {
		t.Fatalf("big load through sqlwarden: %v", err)
	}
	if n := count(); n != 5 {
		t.Fatalf("%d rows after the refused load, want the fixture's 5", n)
	}
	if res, err := load(db, small); err != nil {
		t.Fatal(err)
	} else if n, _ := res.RowsAffected(); n != 2 {
		t.Fatalf("small load: %d rows", n)
	}
	if n := count(); n != 7 {
		t.Fatalf("%d rows after the small load, want 7", n)
	}
}

// TestMaxAffectedRowsWithTimeout: a bounded write stopped by
// statement_timeout gets the timeout's 1969, leaves nothing behind, and the
// session goes on.
func TestMaxAffectedRowsWithTimeout(t *testing.T) {
	m := testutil.StartMariaDB(t)
	root := m.Open(t, "")
	blastFixture(t, root)
	clean := blastState(t, root)
	pfile := filepath.Join(t.TempDir(), "policy.yaml")
	writePolicy(t, pfile, "limits:\n  - name: blast\n    max_affected_rows: 2\n    statement_timeout: 300ms\n")
	d := harness.Start(t, harness.Options{Extra: "policy:\n  file: " + pfile + "\n"})
	db, err := sql.Open("mysql", d.DSN("blast", "interpolateParams=false"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	_, err = db.Exec("UPDATE items SET qty = qty + SLEEP(2) WHERE id = 1")
	if code, _ := errCode(err); code != 1969 {
		t.Fatalf("slow bounded write: %v, want 1969", err)
	}
	if got := blastState(t, root); got != clean {
		t.Fatalf("the stopped write changed the table: %s", got)
	}
	if _, err := db.Exec("UPDATE items SET qty = 15 WHERE id = 1"); err != nil {
		t.Fatalf("write after the timeout: %v", err)
	}
	var qty int
	if err := root.QueryRow("SELECT qty FROM blast.items WHERE id = 1").Scan(&qty); err != nil || qty != 15 {
		t.Fatalf("qty %d %v", qty, err)
	}
}

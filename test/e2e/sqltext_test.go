package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/audit"
	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// lexRows is how many rows the attack table holds; a statement whose WHERE
// matches one row but which the server runs without it touches all of them.
const lexRows = 5

// lexFixture makes swlex.t with lexRows rows, directly on MariaDB, and
// returns the root connection and the server as sqltext reads its version.
func lexFixture(t *testing.T, d *harness.Daemon) (*sql.DB, sqltext.Server) {
	t.Helper()
	root := d.Maria.Open(t, "")
	mustExec(t, root, "DROP DATABASE IF EXISTS swlex")
	mustExec(t, root, "CREATE DATABASE swlex")
	mustExec(t, root, "CREATE TABLE swlex.t (id INT PRIMARY KEY, v VARCHAR(64))")
	mustExec(t, root, "CREATE TABLE swlex.t2 (id INT PRIMARY KEY)")
	for i := 1; i <= lexRows; i++ {
		mustExec(t, root, fmt.Sprintf("INSERT INTO swlex.t VALUES (%d, 'row %d')", i, i))
	}
	var v string
	if err := root.QueryRow("SELECT VERSION()").Scan(&v); err != nil {
		t.Fatal(err)
	}
	srv := sqltext.ParseServerVersion(v)
	if srv.Flavor != sqltext.MariaDB || srv.Version == 0 {
		t.Fatalf("private server %q is not a MariaDB sqltext can read", v)
	}
	return root, srv
}

// directAffected runs statements on one direct connection inside a
// transaction that is rolled back, and returns the rows the last one touched.
func directAffected(t *testing.T, root *sql.DB, stmts ...string) int64 {
	t.Helper()
	ctx := context.Background()
	c, err := root.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "USE swlex"); err != nil {
		t.Fatal(err)
	}
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var n int64
	for _, q := range stmts {
		res, err := tx.Exec(q)
		if err != nil {
			t.Fatalf("directly: %q: %v", q, err)
		}
		n, _ = res.RowsAffected()
	}
	return n
}

// prepareFrom is PREPARE s FROM 'q'.
func prepareFrom(q string) string {
	return "PREPARE s FROM '" + strings.ReplaceAll(q, "'", "''") + "'"
}

func lexCount(t *testing.T, root *sql.DB) int {
	t.Helper()
	var n int
	if err := root.QueryRow("SELECT COUNT(*) FROM swlex.t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func errCode(err error) (uint16, string) {
	var me *gomysql.MySQLError
	if errors.As(err, &me) {
		return me.Number, me.Message
	}
	return 0, ""
}

// TestExecutableCommentsAsTheServerRunsThem: comments MariaDB ignores but a
// parser reads as SQL (MySQL 5.7+ version comments, /*M! newer than the
// server, lower-case /*m!, TiDB's /*T!) used to hide a missing WHERE; and
// executable comments MariaDB runs. Each form is first run directly on
// MariaDB (inside a rolled-back transaction) to show what it does there,
// then through the proxy with the built-in policy: by text, through PREPARE
// ... FROM and through COM_STMT_PREPARE.
func TestExecutableCommentsAsTheServerRunsThem(t *testing.T) {
	d := harness.Start(t, harness.Options{})
	root, srv := lexFixture(t, d)
	newer := fmt.Sprintf("%06d", srv.Version+1)
	ignored := []string{
		"DELETE FROM t /*!50700 WHERE id=1 */",
		"DELETE FROM t /*!99999 WHERE id=1 */",
		"DELETE FROM t /*!" + newer + " WHERE id=1 */",
		"DELETE FROM t /*M!999999 WHERE id=1 */",
		"DELETE FROM t /*M!" + newer + " WHERE id=1 */",
		"DELETE FROM t /*m! WHERE id=1 */",
		"DELETE FROM t /*m!100000 WHERE id=1 */",
		"DELETE FROM t /*T![clustered_index] WHERE id=1 */",
		"DELETE FROM t /*!50700 WHERE id=1 /* nested */ */",
		"UPDATE t SET v='x' /*!57000 WHERE id=1 */",
		"UPDATE t SET v='x' /*M!999999 WHERE id=1 */",
	}
	for _, q := range ignored {
		if n := directAffected(t, root, q); n != lexRows {
			t.Fatalf("directly, %q touched %d rows; the attack needs MariaDB to ignore the WHERE (%d rows)", q, n, lexRows)
		}
		if n := directAffected(t, root, prepareFrom(q), "EXECUTE s"); n != lexRows {
			t.Fatalf("directly, PREPARE of %q touched %d rows, want %d", q, n, lexRows)
		}
	}
	db, err := sql.Open("mysql", d.DSN("swlex", "multiStatements=true&interpolateParams=false"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range ignored {
		for _, form := range []string{q, prepareFrom(q)} {
			if _, err := db.Exec(form); !isBlocked(err) {
				t.Errorf("%q: got %v, want blocked by no-unbounded-writes", form, err)
			}
		}
		if st, err := db.Prepare(q); !isBlocked(err) {
			if st != nil {
				st.Close()
			}
			t.Errorf("COM_STMT_PREPARE %q: got %v, want blocked", q, err)
		}
	}
	if n := lexCount(t, root); n != lexRows {
		t.Fatalf("table lost rows through the proxy: %d left", n)
	}

	// What MariaDB runs is judged as SQL: a WHERE there is a WHERE, a DROP is a DROP.
	run := []string{
		"DELETE FROM t /*!50699 WHERE id=1 */",
		"DELETE FROM t /*!100000 WHERE id=1 */",
		"DELETE FROM t /*!" + fmt.Sprintf("%06d", srv.Version) + " WHERE id=1 */",
		"DELETE FROM t /*M!50700 WHERE id=1 */",
		"DELETE FROM t /*M! WHERE id=1 */",
		"DELETE FROM t /*! WHERE id=1 */",
	}
	ctx := context.Background()
	pc, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, q := range run {
		if n := directAffected(t, root, q); n != 1 {
			t.Fatalf("directly, %q touched %d rows, want 1", q, n)
		}
		tx, err := pc.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := tx.Exec(q)
		if err != nil {
			t.Errorf("%q through the proxy: %v", q, err)
		} else if n, _ := res.RowsAffected(); n != 1 {
			t.Errorf("%q through the proxy touched %d rows", q, n)
		}
		tx.Rollback()
	}
	for _, q := range []string{"SELECT 1 /*M! ; DROP TABLE t2 */", "SELECT 1 /*!50600 ; DROP TABLE t2 */"} {
		if _, err := db.Exec(q); !isBlocked(err) {
			t.Errorf("%q: got %v, want blocked", q, err)
		}
	}

	// What cannot be decided is refused, with a reason, and journaled.
	for _, q := range []string{"SELECT 1 /*!40000 + 1 /* inner */ + 2 */", "SELECT 1 /*! + 1"} {
		_, err := db.Exec(q)
		if code, msg := errCode(err); code != 1235 || !strings.HasPrefix(msg, "sqlwarden: statement refused: ") {
			t.Errorf("%q: got %v, want ERR 1235 sqlwarden: statement refused", q, err)
		}
	}
	pc.Close()
	db.Close()
	recs := d.Settled(t)
	_, o := pair(t, recs, ignored[0])
	if o.Status != audit.StatusBlocked || o.Policy == nil || o.Policy.Rule != "no-unbounded-writes" {
		t.Errorf("outcome of %q: %+v", ignored[0], o)
	}
	_, o = pair(t, recs, "SELECT 1 /*! + 1")
	if o.Status != audit.StatusBlocked || o.Policy == nil || o.Policy.Rule != "sql-text" || o.Error == nil || o.Error.Code != 1235 {
		t.Errorf("outcome of a refused text: %+v", o)
	}
	if n := lexCount(t, root); n != lexRows {
		t.Fatalf("table lost rows: %d left", n)
	}
	var t2 int
	if err := root.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='swlex' AND TABLE_NAME='t2'").Scan(&t2); err != nil || t2 != 1 {
		t.Fatalf("t2 dropped: %d %v", t2, err)
	}
}

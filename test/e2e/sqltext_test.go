package e2e

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/internal/maskfixture"
	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/record"
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
	_, o := harness.Pair(t, recs, ignored[0])
	if o.Status != record.StatusBlocked || o.Policy == nil || o.Policy.Rule != "no-unbounded-writes" {
		t.Errorf("outcome of %q: %+v", ignored[0], o)
	}
	_, o = harness.Pair(t, recs, "SELECT 1 /*! + 1")
	if o.Status != record.StatusBlocked || o.Policy == nil || o.Policy.Rule != "sql-text" || o.Error == nil || o.Error.Code != 1235 {
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

// directSession runs setup statements and then q on one direct connection
// (in a transaction rolled back) and returns the rows q touched.
func directSession(t *testing.T, root *sql.DB, setup []string, q string) int64 {
	t.Helper()
	ctx := context.Background()
	c, err := root.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer c.Raw(func(any) error { return driver.ErrBadConn }) // the session's settings stay with it
	for _, s := range append([]string{"USE swlex"}, setup...) {
		if _, err := c.ExecContext(ctx, s); err != nil {
			t.Fatalf("directly: %q: %v", s, err)
		}
	}
	if _, err := c.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	defer c.ExecContext(ctx, "ROLLBACK")
	res, err := c.ExecContext(ctx, q)
	if err != nil {
		t.Fatalf("directly: %q: %v", q, err)
	}
	n, _ := res.RowsAffected()
	return n
}

// proxySession opens one connection through the proxy.
func proxySession(t *testing.T, d *harness.Daemon, params string) (*sql.Conn, func()) {
	t.Helper()
	if params == "" {
		params = "multiStatements=true&interpolateParams=false"
	}
	db, err := sql.Open("mysql", d.DSN("swlex", params))
	if err != nil {
		t.Fatal(err)
	}
	c, err := db.Conn(context.Background())
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	return c, func() {
		c.Raw(func(any) error { return driver.ErrBadConn })
		c.Close()
		db.Close()
	}
}

// TestSQLModeAttacks: after the session's sql_mode changes how strings and
// identifiers lex (NO_BACKSLASH_ESCAPES, ANSI_QUOTES, ANSI), a statement
// with a WHERE to a parser that ignores the mode is one without a WHERE
// (or two statements) to the server. Each route to the mode is first run
// directly on MariaDB; through the proxy the statement is judged in the
// session's mode and blocked.
func TestSQLModeAttacks(t *testing.T) {
	d := harness.Start(t, harness.Options{})
	root, _ := lexFixture(t, d)
	nbe := [][]string{
		{"SET sql_mode = 'NO_BACKSLASH_ESCAPES'"},
		{"SET @@session.sql_mode = 'NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES'"},
		{"SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')"},
		{"SET @@sql_mode := 'NO_BACKSLASH_ESCAPES'"},
		{"SET @m = 'NO_BACKSLASH_ESCAPES'", "SET sql_mode = @m"},
		{"PREPARE s FROM 'SET sql_mode = ''NO_BACKSLASH_ESCAPES'''", "EXECUTE s"},
	}
	ansi := [][]string{
		{"SET sql_mode = 'ANSI_QUOTES'"},
		{"SET sql_mode = 'ANSI'"},
		{"SET @@local.sql_mode = 'STRICT_ALL_TABLES,ANSI_QUOTES'"},
	}
	attacks := []struct {
		routes [][]string
		q      string
	}{
		{nbe, `UPDATE t SET v = '1\' -- ' WHERE id = 1`},
		{nbe, `UPDATE t SET v = CONCAT('\', v) -- ', v) WHERE id = 1`},
		{ansi, `UPDATE t AS "t\" SET v = 'x' -- " WHERE id = 1`},
	}
	for _, a := range attacks {
		for _, route := range a.routes {
			if n := directSession(t, root, route, a.q); n != lexRows {
				t.Fatalf("directly after %q, %q touched %d rows, want all %d", route, a.q, n, lexRows)
			}
			c, done := proxySession(t, d, "")
			ctx := context.Background()
			for _, s := range route {
				if _, err := c.ExecContext(ctx, s); err != nil {
					t.Fatalf("through the proxy: %q: %v", s, err)
				}
			}
			if _, err := c.ExecContext(ctx, a.q); !isBlocked(err) {
				t.Errorf("after %q: %q: got %v, want blocked by no-unbounded-writes", route, a.q, err)
			}
			// The session goes on in its mode: a real WHERE still passes.
			if _, err := c.ExecContext(ctx, "DELETE FROM t WHERE id = 99"); err != nil {
				t.Errorf("after %q: a bounded DELETE: %v", route, err)
			}
			done()
		}
	}
	// One statement hidden in a string the parser would read: with
	// multi-statements, a second statement runs.
	multi := []struct {
		route []string
		q     string
	}{
		{nbe[0], `SELECT '\'; DROP TABLE t2; -- '`},
		{ansi[0], `SELECT 1 AS "\"; DROP TABLE t2; -- "`},
		{ansi[1], `SELECT 1 AS "\"; DROP TABLE t2; -- "`},
	}
	for _, m := range multi {
		c, done := proxySession(t, d, "")
		for _, s := range m.route {
			if _, err := c.ExecContext(context.Background(), s); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.ExecContext(context.Background(), m.q); !isBlocked(err) {
			t.Errorf("after %q: %q: got %v, want blocked", m.route, m.q, err)
		}
		done()
	}
	if n := lexCount(t, root); n != lexRows {
		t.Fatalf("table lost rows: %d left", n)
	}
	var t2 int
	if err := root.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='swlex' AND TABLE_NAME='t2'").Scan(&t2); err != nil || t2 != 1 {
		t.Fatalf("t2 dropped through the proxy: %d %v", t2, err)
	}
	// The multi-statement attack does drop t2 directly (last: it is gone after).
	c, err := root.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	lexExec(t, c, "USE swlex", "SET sql_mode = 'NO_BACKSLASH_ESCAPES'", multi[0].q)
	c.Raw(func(any) error { return driver.ErrBadConn })
	c.Close()
	if err := root.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='swlex' AND TABLE_NAME='t2'").Scan(&t2); err != nil || t2 != 0 {
		t.Fatalf("the multi-statement attack did not drop t2 directly: %d %v", t2, err)
	}
}

func lexExec(t *testing.T, c *sql.Conn, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := c.ExecContext(context.Background(), s); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
	}
}

// isRefused: ERR 1235 with sqlwarden's refusal of a statement or session.
func isRefused(err error, what string) bool {
	code, msg := errCode(err)
	return code == 1235 && strings.HasPrefix(msg, "sqlwarden: ") && strings.Contains(msg, what)
}

// TestSessionSettingsRefused: what the proxy could not follow is refused
// before the server sees it, with a clear error, and the session goes on.
func TestSessionSettingsRefused(t *testing.T) {
	d := harness.Start(t, harness.Options{})
	root, _ := lexFixture(t, d)
	// Directly, a SET of the mode followed by an attack in one text works.
	c, err := root.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.ExecContext(context.Background(), `USE swlex; BEGIN; SET sql_mode = 'NO_BACKSLASH_ESCAPES'; UPDATE t SET v = '1\' -- ' WHERE id = 1`)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != lexRows {
		t.Fatalf("directly, SET + UPDATE in one text touched %d rows, want %d", n, lexRows)
	}
	lexExec(t, c, "ROLLBACK")
	c.Raw(func(any) error { return driver.ErrBadConn })
	c.Close()

	pc, done := proxySession(t, d, "")
	defer done()
	for _, tt := range []struct{ q, why string }{
		{`SET sql_mode = 'NO_BACKSLASH_ESCAPES'; UPDATE t SET v = '1\' -- ' WHERE id = 1`, "must be the last statement"},
		{"SET NAMES latin1; SELECT 1", "must be the last statement"},
		{"SET session_track_system_variables = ''", "session_track_system_variables is refused"},
		{"SET @@session.session_track_schema = OFF", "session_track_schema is refused"},
		{"PREPARE s FROM 'SET session_track_system_variables = ''autocommit'''", "session_track_system_variables is refused"},
		{"SET STATEMENT sql_mode = 'NO_BACKSLASH_ESCAPES' FOR SELECT 1", "SET STATEMENT sql_mode"},
		{"SET sql_mode = 'ORACLE'", "ORACLE is not supported"},
		{"SET sql_mode = 'MSSQL'", "MSSQL is not supported"},
		{"SET character_set_client = CONCAT('g', 'bk')", "literal name"},
		{"EXECUTE s; SELECT 1", "EXECUTE must be the last"},
	} {
		if _, err := pc.ExecContext(context.Background(), tt.q); !isRefused(err, tt.why) {
			t.Errorf("%q: got %v, want ERR 1235 mentioning %q", tt.q, err, tt.why)
		}
	}
	var mode string
	if err := pc.QueryRowContext(context.Background(), "SELECT @@session.sql_mode").Scan(&mode); err != nil || strings.Contains(mode, "NO_BACKSLASH") || strings.Contains(mode, "ORACLE") {
		t.Fatalf("session after the refusals: sql_mode %q, %v", mode, err)
	}
	if n := lexCount(t, root); n != lexRows {
		t.Fatalf("table lost rows: %d left", n)
	}
	recs := d.Settled(t)
	_, o := harness.Pair(t, recs, "SET session_track_system_variables = ''")
	if o.Status != record.StatusBlocked || o.Policy == nil || o.Policy.Rule != "sql-text" || o.Error.Code != 1235 {
		t.Errorf("journal of a refused SET: %+v", o)
	}
}

// TestClientCharsetAttacks: in gbk (and big5, sjis, cp932, gb18030) 0xBF
// 0x5C is one character to the server, so the backslash a parser sees
// escaping a quote is not there: the quote ends the string. Shown directly
// on MariaDB; through the proxy every route to such a character set is
// refused: SET NAMES, SET CHARACTER SET, SET character_set_client in its
// forms, a prepared SET NAMES, and the handshake's collation.
func TestClientCharsetAttacks(t *testing.T) {
	d := harness.Start(t, harness.Options{})
	root, _ := lexFixture(t, d)
	// A lead byte of each character set, then the backslash as its second byte.
	attack := func(lead string) string { return "UPDATE t SET v = LENGTH('" + lead + "\\') -- ') WHERE id = 1" }
	for cs, lead := range map[string]string{"gbk": "\xbf", "big5": "\xbf", "sjis": "\x95", "cp932": "\x95"} {
		if n := directSession(t, root, []string{"SET NAMES " + cs}, attack(lead)); n != lexRows {
			t.Fatalf("directly in %s, %q touched %d rows, want all %d", cs, attack(lead), n, lexRows)
		}
	}
	pc, done := proxySession(t, d, "")
	defer done()
	for _, q := range []string{
		"SET NAMES gbk", "SET NAMES 'gbk' COLLATE 'gbk_bin'", "SET CHARACTER SET gbk", "SET CHARSET big5",
		"SET character_set_client = 'sjis'", "SET @@session.character_set_client = cp932", "SET SESSION character_set_client = gb18030",
		"SET NAMES big5", "SET NAMES sjis", "PREPARE s FROM 'SET NAMES gbk'",
	} {
		if _, err := pc.ExecContext(context.Background(), q); !isRefused(err, "is refused") {
			t.Errorf("%q: got %v, want ERR 1235 refusing the character set", q, err)
		}
	}
	var cs string
	if err := pc.QueryRowContext(context.Background(), "SELECT @@character_set_client").Scan(&cs); err != nil || cs != "utf8mb4" {
		t.Fatalf("character set after the refusals: %q %v", cs, err)
	}
	// In utf8mb4 the same text is a bounded UPDATE: the policy lets it through.
	if _, err := pc.ExecContext(context.Background(), "BEGIN"); err != nil {
		t.Fatal(err)
	}
	res, err := pc.ExecContext(context.Background(), attack("\xbf"))
	if err != nil {
		t.Fatalf("the attack text in utf8mb4: %v", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Errorf("the attack text in utf8mb4 touched %d rows, want 1", n)
	}
	if _, err := pc.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	// The handshake's collation: go-sql-driver sends the collation id.
	for _, coll := range []string{"gbk_chinese_ci", "big5_chinese_ci", "sjis_japanese_ci", "cp932_japanese_ci"} {
		db, err := sql.Open("mysql", d.DSN("swlex", "collation="+coll))
		if err != nil {
			t.Fatal(err)
		}
		err = db.Ping()
		db.Close()
		if !isRefused(err, "is refused") {
			t.Errorf("login with collation %s: got %v, want ERR 1235", coll, err)
		}
	}
	// go-sql-driver's charset parameter sends SET NAMES after login.
	db, err := sql.Open("mysql", d.DSN("swlex", "charset=gbk"))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Ping()
	db.Close()
	if !isRefused(err, "is refused") {
		t.Errorf("charset=gbk: got %v, want ERR 1235", err)
	}
	if n := lexCount(t, root); n != lexRows {
		t.Fatalf("table lost rows: %d left", n)
	}
	// A latin1 session is fine: nothing multi-byte there.
	lc, ldone := proxySession(t, d, "multiStatements=true&interpolateParams=false&charset=latin1")
	defer ldone()
	var v string
	if err := lc.QueryRowContext(context.Background(), "SELECT @@character_set_client").Scan(&v); err != nil || v != "latin1" {
		t.Fatalf("latin1 session: %q %v", v, err)
	}
}

// TestSessionStateAfterExecution: routes the proxy cannot see before the
// server runs them (text the parser cannot read, a procedure) are caught
// after: the client gets an ERR
// instead of the OK, the session ends, and the journal says why. A statement
// prepared from a variable is judged by the variable's text, so it is
// refused before it runs and the session goes on.
func TestSessionStateAfterExecution(t *testing.T) {
	dir := t.TempDir()
	pf := dir + "/policy.yaml"
	// Let dynamic SQL through, so the change reaches the server.
	if err := os.WriteFile(pf, []byte("default: allow\nrules: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := harness.Start(t, harness.Options{Extra: "policy:\n  file: " + pf + "\n"})
	root, _ := lexFixture(t, d)
	mustExec(t, root, "DROP PROCEDURE IF EXISTS swlex.untrack")
	mustExec(t, root, "CREATE PROCEDURE swlex.untrack() SET session_track_system_variables = ''")
	for _, tt := range []struct {
		name  string
		steps []string
		why   string
	}{
		{"EXECUTE IMMEDIATE of a character set", []string{"EXECUTE IMMEDIATE 'SET character_set_client = CONCAT(''gb'', ''k'')'"}, "gbk is refused"},
		{"EXECUTE IMMEDIATE of a sql_mode", []string{"EXECUTE IMMEDIATE 'SET sql_mode = CONCAT(''ORA'', ''CLE'')'"}, "ORACLE is not supported"},
		{"tracking turned off, then the mode", []string{"CALL untrack()", "SET sql_mode = 'NO_BACKSLASH_ESCAPES'"}, "session tracking was turned off"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, done := proxySession(t, d, "")
			defer done()
			var err error
			for _, s := range tt.steps {
				if _, err = c.ExecContext(context.Background(), s); err != nil {
					break
				}
			}
			code, msg := errCode(err)
			if tt.name == "tracking turned off, then the mode" {
				// The SET's own OK reached the client; the proxy reads the
				// session back after it and ends it: the next command fails.
				if err == nil {
					_, err = c.ExecContext(context.Background(), "SELECT 1")
				}
				if err == nil {
					t.Fatal("the session went on after tracking was turned off")
				}
				return
			}
			if code != 1235 || !strings.HasPrefix(msg, "sqlwarden: session ended: ") || !strings.Contains(msg, tt.why) {
				t.Fatalf("got %v, want ERR 1235 sqlwarden: session ended: ...%s", err, tt.why)
			}
			if _, err := c.ExecContext(context.Background(), "SELECT 1"); err == nil {
				t.Fatal("the session went on")
			}
		})
	}
	// Prepared from a variable: refused at PREPARE, by the text it holds.
	for _, tt := range []struct{ set, why string }{
		{"SET @q = 'SET NAMES gbk'", "gbk is refused"},
		{"SET @q = CONCAT('SET sql_mode = ''', 'ORA', 'CLE''')", "ORACLE is not supported"},
	} {
		c, done := proxySession(t, d, "")
		if _, err := c.ExecContext(context.Background(), tt.set); err != nil {
			t.Fatal(err)
		}
		_, err := c.ExecContext(context.Background(), "PREPARE s FROM @q")
		if code, msg := errCode(err); code != 1235 || !strings.HasPrefix(msg, "sqlwarden: statement refused: ") || !strings.Contains(msg, tt.why) {
			t.Errorf("%s; PREPARE s FROM @q: %v, want ERR 1235 sqlwarden: statement refused: ...%s", tt.set, err, tt.why)
		}
		if _, err := c.ExecContext(context.Background(), "SELECT 1"); err != nil {
			t.Errorf("the session did not go on after the refusal: %v", err)
		}
		done()
	}
	recs := d.Settled(t)
	ended := 0
	for _, r := range recs {
		if r.Event == record.EventSessionEnd && r.Reason == "session_state_error" {
			ended++
		}
	}
	if ended != 3 {
		t.Errorf("%d sessions ended for their state, want 3", ended)
	}
}

// TestMaskingSessionModeWalkArounds: a string that hides the masked column
// from a parser that ignores the session's sql_mode (NO_BACKSLASH_ESCAPES,
// ANSI_QUOTES) reads it in clear from MariaDB directly; through the proxy
// the column is masked, or the statement refused.
func TestMaskingSessionModeWalkArounds(t *testing.T) {
	d, root := startMasked(t, "")
	cases := []struct{ mode, q string }{
		{"NO_BACKSLASH_ESCAPES", `SELECT 'a\', card, '' FROM customers -- '`},
		{"NO_BACKSLASH_ESCAPES", `SELECT 'a\', CONCAT(card, ''), email FROM customers # '`},
		{"ANSI_QUOTES", `SELECT 1 AS "a\", card, 'x' FROM customers -- "`},
		{"ANSI", `SELECT 1 AS "a\", email, salary FROM customers /* " */`},
	}
	leaks := func(rows [][]string) string {
		for _, r := range rows {
			for _, v := range r {
				if s := maskfixture.Leak([]byte(v)); s != "" {
					return s
				}
			}
		}
		return ""
	}
	ctx := context.Background()
	for _, tc := range cases {
		dc, err := root.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		lexExec(t, dc, "USE "+maskDB, "SET sql_mode = '"+tc.mode+"'")
		rs, err := dc.QueryContext(ctx, tc.q)
		if err != nil {
			t.Fatalf("directly in %s: %q: %v", tc.mode, tc.q, err)
		}
		if leaks(readAllText(t, rs)) == "" {
			t.Fatalf("directly in %s, %q reads nothing secret: not an attack", tc.mode, tc.q)
		}
		dc.Raw(func(any) error { return driver.ErrBadConn })
		dc.Close()

		db, err := sql.Open("mysql", d.DSN(maskDB, "multiStatements=true&interpolateParams=false"))
		if err != nil {
			t.Fatal(err)
		}
		pc, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		lexExec(t, pc, "SET sql_mode = '"+tc.mode+"'")
		rs, err = pc.QueryContext(ctx, tc.q)
		switch {
		case err != nil && !isMaskDenied(err) && !isBlocked(err):
			t.Errorf("through the proxy in %s: %q: %v", tc.mode, tc.q, err)
		case err == nil:
			rows := readAllText(t, rs)
			if s := leaks(rows); s != "" || len(rows) == 0 {
				t.Errorf("through the proxy in %s: %q leaked %q (%d rows)", tc.mode, tc.q, s, len(rows))
			}
		}
		pc.Raw(func(any) error { return driver.ErrBadConn })
		pc.Close()
		db.Close()
	}
	checkJournalClean(t, d)
}

// TestJournalKeepsStatementBytes: in a latin1 session a statement is not
// valid UTF-8. Its statement record carries the exact bytes (sql_base64,
// with sql the display form), audit search shows it, audit verify passes,
// and replay runs the same bytes: the target holds the same value.
func TestJournalKeepsStatementBytes(t *testing.T) {
	d := harness.Start(t, harness.Options{})
	root, _ := lexFixture(t, d)
	const table = "CREATE TABLE swlex.u8 (id INT PRIMARY KEY, v VARCHAR(64) CHARACTER SET utf8mb4)"
	mustExec(t, root, table)
	insert := "INSERT INTO u8 VALUES (42, 'caf\xe9')" // é in latin1
	db, err := sql.Open("mysql", d.DSN("swlex", "charset=latin1&interpolateParams=false"))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(insert); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM u8 WHERE v = 'caf\xe9'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("latin1 read back: %d %v", n, err)
	}
	db.Close()
	var hexv string
	if err := root.QueryRow("SELECT HEX(v) FROM swlex.u8 WHERE id = 42").Scan(&hexv); err != nil || hexv != "636166C3A9" {
		t.Fatalf("stored value %s %v, want café (636166C3A9)", hexv, err)
	}
	recs := d.Settled(t)
	var st *record.Record
	for _, r := range recs {
		if r.Event == record.EventStatement && r.Text() == insert {
			st = r
		}
	}
	if st == nil {
		t.Fatal("no statement record holds the INSERT's bytes")
	}
	if st.SQLBase64 == "" || !strings.Contains(st.SQL, "\uFFFD") {
		t.Fatalf("record: sql %q, sql_base64 %q", st.SQL, st.SQLBase64)
	}
	out, err := exec.Command(harness.Binary(t), "audit", "search", "--dir", d.AuditDir, "--session", st.SessionID, "--event", "statement", "--json").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"sql_base64":"`+st.SQLBase64+`"`) {
		t.Fatalf("audit search: %v\n%s", err, out)
	}
	out, err = exec.Command(harness.Binary(t), "audit", "verify", "--dir", d.AuditDir).CombinedOutput()
	if err != nil {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}

	target := testutil.StartSecondMariaDB(t)
	troot := target.Open(t, "")
	mustExec(t, troot, "DROP DATABASE IF EXISTS swlex")
	mustExec(t, troot, "CREATE DATABASE swlex")
	mustExec(t, troot, table)
	out, err = exec.Command(harness.Binary(t), "replay", "--session", st.SessionID, "--dir", d.AuditDir, "--target", "root:@tcp("+target.Addr+")/", "-v").CombinedOutput()
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	if err := troot.QueryRow("SELECT HEX(v) FROM swlex.u8 WHERE id = 42").Scan(&hexv); err != nil || hexv != "636166C3A9" {
		t.Fatalf("replayed value %s %v, want 636166C3A9\n%s", hexv, err, out)
	}
}

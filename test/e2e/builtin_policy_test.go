package e2e

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// refusedBy reports a refusal by the named built-in rule: 1142 for a denial,
// 1227 "approval required" for a rule that asks a human (retry mode).
func refusedBy(err error, rule string) bool {
	var me *gomysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	switch me.Number {
	case 1142:
		return strings.HasPrefix(me.Message, "sqlwarden: blocked by rule "+rule+":")
	case 1227:
		return strings.HasPrefix(me.Message, "sqlwarden: approval required")
	}
	return false
}

// TestBuiltInPolicyPowerStatements: with no policy file, statements that
// run code nobody judged (routines), manage accounts, change server-wide
// settings, stop the server, touch the server's files or carry a WHERE
// that filters nothing are refused or held for a human. Each class is
// first shown to work directly against MariaDB with the daemon's own
// backend account (or root where it lacks the privilege).
func TestBuiltInPolicyPowerStatements(t *testing.T) {
	d := harness.Start(t, harness.Options{Extra: "policy:\n  approvals:\n    mode: retry\n"})
	root := d.Maria.Open(t, "")
	for _, q := range []string{
		"DROP DATABASE IF EXISTS bp", "CREATE DATABASE bp",
		"CREATE TABLE bp.t (id INT PRIMARY KEY, v VARCHAR(20))",
		"DROP USER IF EXISTS bp_u", "DROP USER IF EXISTS bp_v", "DROP ROLE IF EXISTS bp_r",
		// The account statements through the proxy aim at a stand-in, so a
		// regression cannot take the backend account from the tests after.
		"DROP USER IF EXISTS bp_victim", "CREATE USER bp_victim IDENTIFIED BY 'victim-pass'",
	} {
		mustExec(t, root, q)
	}
	t.Cleanup(func() { _, _ = root.Exec("DROP USER IF EXISTS bp_victim") })
	refill := func() { mustExec(t, root, "REPLACE INTO bp.t VALUES (1,'a'),(2,'b'),(3,'c')") }
	count := func() int {
		var n int
		if err := root.QueryRow("SELECT COUNT(*) FROM bp.t").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	refill()
	direct, err := sql.Open("mysql", fmt.Sprintf("warden:warden-pass@tcp(%s)/bp?multiStatements=true", d.Maria.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	direct.SetMaxOpenConns(1)
	outfile := filepath.Join(t.TempDir(), "out.txt")
	_ = os.Chmod(filepath.Dir(outfile), 0o777)

	// Directly: every class works for the backend account.
	for _, q := range []string{
		"CREATE PROCEDURE p_wipe() DELETE FROM t",
		"CALL p_wipe()",
	} {
		mustExec(t, direct, q)
	}
	if n := count(); n != 0 {
		t.Fatalf("direct: CALL of a procedure deleting every row left %d rows", n)
	}
	refill()
	mustExec(t, direct, "CREATE FUNCTION f_wipe() RETURNS INT BEGIN DELETE FROM t; RETURN 1; END")
	var one int
	if err := direct.QueryRow("SELECT bp.f_wipe()").Scan(&one); err != nil || count() != 0 {
		t.Fatalf("direct: stored function deleting every row: %v, %d rows left", err, count())
	}
	refill()
	for _, q := range []string{
		"CREATE USER bp_u IDENTIFIED BY 'x'", "ALTER USER bp_u IDENTIFIED BY 'y'",
		"SET PASSWORD FOR bp_u = PASSWORD('z')", "RENAME USER bp_u TO bp_v", "DROP USER bp_v",
		"SET GLOBAL max_connect_errors = 4242", "SET GLOBAL max_connect_errors = 100",
		"DELETE FROM t WHERE id = id",
	} {
		mustExec(t, direct, q)
	}
	if n := count(); n != 0 {
		t.Fatalf("direct: DELETE ... WHERE id = id left %d rows", n)
	}
	refill()
	// GRANT needs the grant option the backend account lacks: root shows it.
	mustExec(t, root, "CREATE USER bp_u")
	mustExec(t, root, "GRANT SELECT ON bp.* TO bp_u")
	mustExec(t, root, "DROP USER bp_u")
	var shutdownPriv string
	if err := root.QueryRow("SELECT Shutdown_priv FROM mysql.user WHERE User = 'warden'").Scan(&shutdownPriv); err != nil || shutdownPriv != "Y" {
		t.Fatalf("the backend account may not shut the server down (%q, %v): the test would prove nothing", shutdownPriv, err)
	}
	mustExec(t, direct, "SELECT 'secret' INTO OUTFILE '"+outfile+"'")
	if b, err := os.ReadFile(outfile); err != nil || strings.TrimSpace(string(b)) != "secret" {
		t.Fatalf("direct: INTO OUTFILE wrote %q, %v", b, err)
	}
	var host sql.NullString
	if err := direct.QueryRow("SELECT LOAD_FILE('/etc/hostname')").Scan(&host); err != nil || !host.Valid {
		t.Fatalf("direct: LOAD_FILE: %v %v", host, err)
	}
	mustExec(t, direct, "DROP PROCEDURE p_wipe")
	mustExec(t, direct, "CREATE PROCEDURE p_wipe() DELETE FROM t")

	// Through sqlwarden with the built-in policy.
	db, err := sql.Open("mysql", d.DSN("bp", "multiStatements=true&interpolateParams=false"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	outfile2 := filepath.Join(filepath.Dir(outfile), "out2.txt")
	cases := []struct{ rule, sql string }{
		{"routines-need-a-human", "CREATE PROCEDURE p_wipe2() DELETE FROM t"},
		{"routines-need-a-human", "CALL p_wipe()"},
		{"routines-need-a-human", "call bp.P_WIPE"},
		{"routines-need-a-human", "SELECT 1; CALL p_wipe()"},
		{"routines-need-a-human", "DROP PROCEDURE p_wipe"},
		{"routines-need-a-human", "SELECT bp.f_wipe()"},
		{"routines-need-a-human", "PREPARE s FROM 'CALL p_wipe()'; EXECUTE s"},
		{"unparsed", "CREATE FUNCTION f2() RETURNS INT RETURN 1"},
		{"unparsed", "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.v = 'x'"},
		{"unparsed", "CREATE EVENT ev ON SCHEDULE EVERY 1 HOUR DO DELETE FROM t"},
		{"unparsed", "DROP FUNCTION f_wipe"},
		{"unparsed", "ALTER PROCEDURE p_wipe COMMENT 'x'"},
		{"password-changes", "CREATE USER bp_u IDENTIFIED BY 'x'"},
		{"no-account-management", "create user if not exists 'bp_u'@'%'"},
		{"password-changes", "ALTER USER bp_victim IDENTIFIED BY 'stolen'"},
		{"password-changes", "SET PASSWORD FOR bp_victim = PASSWORD('stolen')"},
		{"password-changes", "SET PASSWORD FOR 'bp_victim'@'%' = '*0000000000000000000000000000000000000000'"},
		{"no-account-management", "RENAME USER bp_victim TO bp_v"},
		{"no-account-management", "DROP USER bp_victim"},
		{"no-account-management", "GRANT ALL ON *.* TO bp_victim"},
		{"no-account-management", "REVOKE ALL PRIVILEGES, GRANT OPTION FROM bp_victim"},
		{"no-account-management", "CREATE ROLE bp_r"},
		{"no-account-management", "SET ROLE NONE"},
		{"no-account-management", "SELECT 1; DROP USER bp_victim"},
		{"unparsed", "SET DEFAULT ROLE NONE"},
		{"no-global-settings", "SET GLOBAL max_connect_errors = 999"},
		{"no-global-settings", "set @@global.max_connect_errors = 999"},
		{"no-global-settings", "SET @@GLOBAL.general_log = 0"},
		{"no-global-settings", "SET SESSION sql_mode = '', GLOBAL max_connect_errors = 999"},
		{"unparsed", "SET PERSIST max_connect_errors = 999"},
		{"no-file-io", "SELECT 'secret' INTO OUTFILE '" + outfile2 + "'"},
		{"no-file-io", "SELECT v FROM t INTO OUTFILE '" + outfile2 + "'"},
		{"unparsed", "SELECT 'secret' INTO DUMPFILE '" + outfile2 + "'"},
		{"no-file-io", "SELECT LOAD_FILE('/etc/hostname')"},
		{"no-file-io", "SELECT load_file(CONCAT('/etc/', 'hostname')) AS h"},
		{"no-file-io", "INSERT INTO t VALUES (9, LOAD_FILE('/etc/hostname'))"},
		{"no-file-io", "LOAD DATA INFILE '/etc/hostname' INTO TABLE t (v)"},
		{"no-file-io", "PREPARE s FROM 'SELECT LOAD_FILE(''/etc/hostname'')'"},
		{"no-unbounded-writes", "DELETE FROM t WHERE id = id"},
		{"no-unbounded-writes", "DELETE FROM t WHERE t.id <=> id"},
		{"no-unbounded-writes", "DELETE FROM t WHERE id IS NOT NULL"},
		{"no-unbounded-writes", "DELETE FROM t WHERE 1 OR id = 1"},
		{"no-unbounded-writes", "UPDATE t SET v = 'x' WHERE id = 1 OR TRUE"},
		{"no-unbounded-writes", "INSERT INTO t SELECT id, v FROM t ON DUPLICATE KEY UPDATE v = 'pwned'"},
		{"no-unbounded-writes", "REPLACE INTO t SELECT id, 'gone' FROM t"},
	}
	for _, c := range cases {
		if _, err := db.Exec(c.sql); !refusedBy(err, c.rule) {
			t.Errorf("%q: got %v, want refused by %s", c.sql, err, c.rule)
		}
	}
	// Stopping the server last: should one get through, the database is
	// started again for the tests after this one.
	for _, q := range []string{"SHUTDOWN", "shutdown", "SELECT 1; SHUTDOWN", "RESTART"} {
		if _, err := db.Exec(q); !refusedBy(err, "no-server-admin") {
			t.Errorf("%q: got %v, want refused by no-server-admin", q, err)
			if out, err := exec.Command("bash", filepath.Join(testutil.RepoRoot(), "scripts", "mariadb.sh"), "start").CombinedOutput(); err != nil {
				t.Fatalf("restart mariadb: %v\n%s", err, out)
			}
		}
	}
	// The prepared-statement path: judged at EXECUTE like a query.
	if st, err := db.Prepare("CALL p_wipe()"); err != nil {
		t.Errorf("PREPARE CALL: %v", err)
	} else {
		if _, err := st.Exec(); !refusedBy(err, "routines-need-a-human") {
			t.Errorf("EXECUTE of a prepared CALL: got %v, want approval required", err)
		}
		st.Close()
	}
	if _, err := db.Prepare("SELECT LOAD_FILE(?)"); !refusedBy(err, "no-file-io") {
		t.Errorf("PREPARE LOAD_FILE: got %v, want refused", err)
	}

	// The parser's own names for CHAR() and INSERT(): a stored function so
	// named would pass for the built-in.
	mustExec(t, root, "CREATE FUNCTION bp.char_func(x INT) RETURNS INT BEGIN DELETE FROM bp.t; RETURN x; END")
	defer root.Exec("DROP FUNCTION IF EXISTS bp.char_func")
	for _, q := range []string{"SELECT char_func(1)", "SELECT `INSERT_FUNC`('a', 1, 1, 'b')"} {
		var me *gomysql.MySQLError
		if _, err := db.Exec(q); !errors.As(err, &me) || !strings.Contains(me.Message, "char_func, insert_func or default_func") {
			t.Errorf("%q: got %v, want refused", q, err)
		}
	}
	mustExec(t, root, "DROP FUNCTION bp.char_func")
	// A PREPARE's text is judged every time, never by the shape of another:
	// a bounded DELETE prepared first, then an unbounded one.
	if _, err := db.Exec("PREPARE pw FROM 'DELETE FROM t WHERE id = 1'"); err != nil {
		t.Errorf("PREPARE of a bounded DELETE: %v", err)
	}
	if _, err := db.Exec("PREPARE pw FROM 'DELETE FROM t'"); !refusedBy(err, "no-unbounded-writes") {
		t.Errorf("PREPARE of an unbounded DELETE after a bounded one: got %v, want refused by no-unbounded-writes", err)
	}

	// Nothing happened.
	if n := count(); n != 3 {
		t.Errorf("bp.t has %d rows, want 3", n)
	}
	var users, procs, globals int
	if err := root.QueryRow("SELECT COUNT(*) FROM mysql.user WHERE User IN ('bp_u', 'bp_v', 'bp_r')").Scan(&users); err != nil || users != 0 {
		t.Errorf("accounts created through the proxy: %d %v", users, err)
	}
	victim, err := sql.Open("mysql", fmt.Sprintf("bp_victim:victim-pass@tcp(%s)/", d.Maria.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	if err := victim.Ping(); err != nil {
		t.Errorf("the stand-in account no longer logs in with its password: %v", err)
	}
	if err := root.QueryRow("SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'bp'").Scan(&procs); err != nil || procs != 2 {
		t.Errorf("routines in bp: %d %v, want p_wipe and f_wipe only", procs, err)
	}
	if err := root.QueryRow("SELECT @@global.max_connect_errors").Scan(&globals); err != nil || globals != 100 {
		t.Errorf("max_connect_errors is %d %v, want 100", globals, err)
	}
	if _, err := os.Stat(outfile2); !os.IsNotExist(err) {
		t.Errorf("a file was written through the proxy: %v", err)
	}
	// The backend account still logs in with its own password.
	if err := direct.Ping(); err != nil {
		t.Errorf("backend account: %v", err)
	}
	// And a plain statement, a WHERE that filters, still pass.
	if _, err := db.Exec("UPDATE t SET v = 'z' WHERE id = 1 OR id = 2"); err != nil {
		t.Errorf("a bounded UPDATE: %v", err)
	}

	db.Close()
	recs := d.Settled(t)
	for _, q := range []string{"CALL p_wipe()", "SET GLOBAL max_connect_errors = 999", "DELETE FROM t WHERE id = id"} {
		_, o := harness.Pair(t, recs, q)
		if o == nil || o.Status != record.StatusBlocked || o.Policy == nil {
			t.Errorf("%q: outcome %+v, want blocked with the policy decision", q, o)
		}
	}
}

package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gm "github.com/go-mysql-org/go-mysql/mysql"
	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// The read-only corpus runs against a database account that may do
// anything (ALL PRIVILEGES WITH GRANT OPTION), so that every attempt
// changes the database when sent directly, and only sqlwarden's read_only
// limit stands in the way.
const (
	roAdmin     = "ro_admin"
	roAdminPass = "ro-admin-pass"
)

// roFixture (re)creates the database the corpus attacks: tables, a
// sequence, routines with side effects, views over them, an account.
func roFixture(t *testing.T, root *sql.DB, outdir string) {
	t.Helper()
	// One multi-statement: the corpus resets the fixture after every attempt.
	mustExec(t, root, strings.Join([]string{
		"DROP DATABASE IF EXISTS ro", "DROP DATABASE IF EXISTS ro_x",
		"DROP USER IF EXISTS 'ro_user'@'%'", "DROP USER IF EXISTS 'ro_new'@'%'",
		"CREATE USER 'ro_user'@'%' IDENTIFIED BY 'ro-user-pass'",
		"SET GLOBAL max_connect_errors = 100",
		"CREATE DATABASE ro",
		"CREATE TABLE ro.items (id INT PRIMARY KEY, name VARCHAR(32), qty INT) ENGINE=InnoDB",
		"INSERT INTO ro.items VALUES (1,'apple',10),(2,'pear',20),(3,'plum',30)",
		"CREATE TABLE ro.notes (id INT PRIMARY KEY, body TEXT) ENGINE=MyISAM",
		"INSERT INTO ro.notes VALUES (1,'hello')",
		"CREATE SEQUENCE ro.s NOCACHE",
		"CREATE PROCEDURE ro.wipe() DELETE FROM ro.items",
		"CREATE FUNCTION ro.add_item() RETURNS INT MODIFIES SQL DATA BEGIN INSERT INTO ro.items VALUES (99,'fn',0); RETURN 1; END",
		// Named like a builtin: `count (x)` with a space calls it.
		"CREATE FUNCTION ro.`count`(x INT) RETURNS INT MODIFIES SQL DATA BEGIN INSERT INTO ro.items VALUES (98,'count',0); RETURN 1; END",
		// A side effect the server's READ ONLY mode does not stop.
		"CREATE FUNCTION ro.bump() RETURNS INT BEGIN SET GLOBAL max_connect_errors = 555; RETURN 1; END",
		"CREATE VIEW ro.v_add AS SELECT ro.add_item() AS x",
		"CREATE VIEW ro.v_bump AS SELECT ro.bump() AS x",
		"CREATE VIEW ro.v_outer AS SELECT * FROM ro.v_bump",
		"CREATE VIEW ro.v_items AS SELECT id, name FROM ro.items",
	}, ";\n"))
	entries, _ := os.ReadDir(outdir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "out") {
			os.Remove(filepath.Join(outdir, e.Name()))
		}
	}
}

// roSnapshot describes everything the corpus could change: the schema and
// contents of the ro databases (tables, sequence, routines, triggers,
// events, views), the ro accounts and their grants, global variables, files
// in the output directory, named locks and table locks. probe, when set, is
// the result of a query on the attacking connection itself (what only that
// session can see: a temporary table).
func roSnapshot(t *testing.T, root *sql.DB, outdir, probe string) string {
	t.Helper()
	var b strings.Builder
	dump := func(q string, args ...any) {
		rows, err := root.Query(q, args...)
		if err != nil {
			fmt.Fprintf(&b, "%s: error %v\n", q, err)
			return
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		fmt.Fprintf(&b, "%s:\n", q)
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				fmt.Fprintf(&b, "\t%q", v)
			}
			b.WriteByte('\n')
		}
	}
	dump("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'ro%' ORDER BY 1")
	rows, err := root.Query("SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA LIKE 'ro%' ORDER BY 1, 2")
	if err != nil {
		t.Fatal(err)
	}
	type tbl struct{ schema, name, typ string }
	var tables []tbl
	for rows.Next() {
		var x tbl
		if err := rows.Scan(&x.schema, &x.name, &x.typ); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, x)
	}
	rows.Close()
	for _, x := range tables {
		q := fmt.Sprintf("`%s`.`%s`", x.schema, x.name)
		dump("SHOW CREATE TABLE " + q)
		if x.typ != "VIEW" {
			dump("SELECT * FROM " + q)
		}
	}
	dump("SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE, ROUTINE_DEFINITION FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA LIKE 'ro%' ORDER BY 1, 2, 3")
	dump("SELECT TRIGGER_SCHEMA, TRIGGER_NAME, ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA LIKE 'ro%' ORDER BY 1, 2")
	dump("SELECT EVENT_SCHEMA, EVENT_NAME, EVENT_DEFINITION FROM information_schema.EVENTS WHERE EVENT_SCHEMA LIKE 'ro%' ORDER BY 1, 2")
	dump("SELECT User, Host, Priv FROM mysql.global_priv WHERE User LIKE 'ro\\_%' ORDER BY 1, 2")
	dump("SELECT * FROM mysql.db WHERE User LIKE 'ro\\_%' ORDER BY Db, User")
	dump("SELECT * FROM mysql.tables_priv WHERE User LIKE 'ro\\_%' ORDER BY Db, User, Table_name")
	dump("SELECT @@global.max_connect_errors, @@global.tx_read_only")
	dump("SELECT IS_USED_LOCK('ro_lock') IS NOT NULL")
	dump("SHOW OPEN TABLES FROM ro WHERE In_use > 0")
	entries, _ := os.ReadDir(outdir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "out") {
			fmt.Fprintf(&b, "file %s\n", e.Name())
		}
	}
	fmt.Fprintf(&b, "probe: %s\n", probe)
	return b.String()
}

// mariadbDump is mariadb-dump of the ro database (routines, events,
// triggers, sequence state) and of the ro accounts.
func mariadbDump(t *testing.T, m testutil.MariaDB) []byte {
	t.Helper()
	args := []string{"--protocol=socket", "-S", m.Socket, "-uroot", "--skip-dump-date", "--skip-comments",
		"--routines", "--events", "--triggers"}
	out, err := exec.Command("mariadb-dump", append(args, "--databases", "ro")...).Output()
	if err != nil {
		t.Fatalf("mariadb-dump: %v", err)
	}
	users, err := exec.Command("mariadb-dump", append(args, "--no-create-info", "--where=User LIKE 'ro\\_%'", "mysql", "global_priv", "db", "tables_priv")...).Output()
	if err != nil {
		t.Fatalf("mariadb-dump mysql: %v", err)
	}
	return append(out, users...)
}

// roAttempt is one way to try to change the database: statements run in
// order on one connection (errors ignored), as text (COM_QUERY), as
// prepared statements (COM_STMT_PREPARE/EXECUTE) or through the mariadb
// command-line client. probe runs last on the same connection.
type roAttempt struct {
	name  string
	stmts []string
	path  string // "" text, "prepared", "cli"
	probe string
}

func roCorpus(outdir string) []roAttempt {
	out := func(n string) string { return filepath.Join(outdir, n) }
	data := filepath.Join(outdir, "data.csv")
	return []roAttempt{
		{name: "procedure", stmts: []string{"CALL wipe()"}},
		{name: "stored function from SELECT", stmts: []string{"SELECT add_item()"}},
		{name: "stored function in a subquery", stmts: []string{"SELECT * FROM notes WHERE id IN (SELECT add_item())"}},
		{name: "view over a writing function", stmts: []string{"SELECT * FROM v_add"}},
		{name: "view over SET GLOBAL", stmts: []string{"SELECT * FROM v_bump"}},
		{name: "view over a view", stmts: []string{"SELECT * FROM v_outer"}},
		{name: "function named like a builtin, with a space", stmts: []string{"SELECT count (1)"}},
		{name: "quoted function name", stmts: []string{"SELECT `add_item`()"}},
		{name: "sequence nextval", stmts: []string{"SELECT nextval(s)"}},
		{name: "sequence NEXT VALUE FOR", stmts: []string{"SELECT NEXT VALUE FOR s"}},
		{name: "sequence setval", stmts: []string{"SELECT setval(s, 1000)"}},
		{name: "dynamic SQL from a user variable", stmts: []string{"SET @q = 'DELETE FROM items'", "PREPARE st FROM @q", "EXECUTE st"}},
		{name: "PREPARE of a write", stmts: []string{"PREPARE st FROM 'DELETE FROM items'", "EXECUTE st"}},
		{name: "EXECUTE IMMEDIATE", stmts: []string{"EXECUTE IMMEDIATE 'DELETE FROM items'"}},
		{name: "executable comment", stmts: []string{"/*!50000 DELETE FROM items */"}},
		{name: "MariaDB executable comment", stmts: []string{"/*M!100000 DELETE FROM items */"}},
		{name: "executable comment hiding a function call", stmts: []string{"SELECT 1 /*!50000 , add_item() */"}},
		{name: "executable comment through the CLI", path: "cli", stmts: []string{"/*!50000 DELETE FROM items */"}},
		{name: "multi-statement", stmts: []string{"SELECT 1; DELETE FROM items"}},
		{name: "SET SESSION TRANSACTION READ WRITE", stmts: []string{"SET SESSION TRANSACTION READ WRITE", "DELETE FROM items"}},
		{name: "SET tx_read_only", stmts: []string{"SET @@session.tx_read_only = 0", "UPDATE items SET qty = 0"}},
		{name: "SET transaction_read_only", stmts: []string{"SET SESSION transaction_read_only = OFF", "UPDATE items SET qty = 0"}},
		{name: "START TRANSACTION READ WRITE", stmts: []string{"START TRANSACTION READ WRITE", "DELETE FROM items", "COMMIT"}},
		{name: "SET STATEMENT", stmts: []string{"SET STATEMENT tx_read_only=0 FOR DELETE FROM items"}},
		{name: "compound statement", stmts: []string{"BEGIN NOT ATOMIC DELETE FROM items; END"}},
		{name: "XA transaction", stmts: []string{"XA START 'x'", "DELETE FROM items", "XA END 'x'", "XA COMMIT 'x' ONE PHASE"}},
		{name: "REPLACE", stmts: []string{"REPLACE INTO items VALUES (1, 'replaced', 0)"}},
		{name: "INSERT ... SELECT", stmts: []string{"INSERT INTO items SELECT id + 100, name, qty FROM items"}},
		{name: "UPDATE with an always-true WHERE", stmts: []string{"UPDATE items SET qty = 0 WHERE id IS NOT NULL"}},
		{name: "DELETE through a view", stmts: []string{"DELETE FROM v_items WHERE id = id"}},
		{name: "write to MyISAM", stmts: []string{"INSERT INTO notes VALUES (2, 'x')"}},
		{name: "CREATE TABLE", stmts: []string{"CREATE TABLE t2 (a INT)"}},
		{name: "CREATE TABLE ... SELECT", stmts: []string{"CREATE TABLE t3 AS SELECT * FROM items"}},
		{name: "CREATE TEMPORARY TABLE", stmts: []string{"CREATE TEMPORARY TABLE tt (a INT)"}, probe: "SELECT COUNT(*) FROM tt"},
		{name: "ALTER TABLE", stmts: []string{"ALTER TABLE items ADD COLUMN c INT"}},
		{name: "CREATE INDEX", stmts: []string{"CREATE INDEX i_name ON items (name)"}},
		{name: "RENAME TABLE", stmts: []string{"RENAME TABLE items TO items2"}},
		{name: "TRUNCATE", stmts: []string{"TRUNCATE items"}},
		{name: "DROP TABLE", stmts: []string{"DROP TABLE items"}},
		{name: "DROP VIEW", stmts: []string{"DROP VIEW v_items"}},
		{name: "CREATE VIEW", stmts: []string{"CREATE VIEW v2 AS SELECT 1 AS one"}},
		{name: "CREATE PROCEDURE", stmts: []string{"CREATE PROCEDURE p2() SELECT 1"}},
		{name: "DROP PROCEDURE", stmts: []string{"DROP PROCEDURE wipe"}},
		{name: "DROP FUNCTION", stmts: []string{"DROP FUNCTION add_item"}},
		{name: "CREATE TRIGGER", stmts: []string{"CREATE TRIGGER tr BEFORE INSERT ON items FOR EACH ROW SET NEW.qty = 0"}},
		{name: "CREATE EVENT", stmts: []string{"CREATE EVENT ev ON SCHEDULE EVERY 1 DAY DO DELETE FROM items"}},
		{name: "CREATE SEQUENCE", stmts: []string{"CREATE SEQUENCE s2"}},
		{name: "CREATE DATABASE", stmts: []string{"CREATE DATABASE ro_x"}},
		// READ: a WRITE lock would block the snapshot's own reads.
		{name: "LOCK TABLES", stmts: []string{"LOCK TABLES items READ"}},
		{name: "SELECT INTO OUTFILE", stmts: []string{fmt.Sprintf("SELECT * FROM items INTO OUTFILE '%s'", out("out1"))}},
		{name: "SELECT INTO DUMPFILE", stmts: []string{fmt.Sprintf("SELECT name FROM items LIMIT 1 INTO DUMPFILE '%s'", out("out2"))}},
		{name: "LOAD DATA INFILE", stmts: []string{fmt.Sprintf("LOAD DATA INFILE '%s' INTO TABLE items FIELDS TERMINATED BY ','", data)}},
		{name: "SET GLOBAL", stmts: []string{"SET GLOBAL max_connect_errors = 777"}},
		{name: "SET @@global", stmts: []string{"SET @@global.max_connect_errors = 778"}},
		{name: "SET GLOBAL TRANSACTION READ ONLY", stmts: []string{"SET GLOBAL TRANSACTION READ ONLY"}},
		{name: "GRANT", stmts: []string{"GRANT SELECT ON ro.* TO 'ro_user'@'%'"}},
		{name: "CREATE USER", stmts: []string{"CREATE USER 'ro_new'@'%'"}},
		{name: "SET PASSWORD", stmts: []string{"SET PASSWORD FOR 'ro_user'@'%' = PASSWORD('changed')"}},
		{name: "named lock", stmts: []string{"SELECT GET_LOCK('ro_lock', 0)"}},
		{name: "named lock with DO", stmts: []string{"DO GET_LOCK('ro_lock', 0)"}},
		// The same through the prepared-statement protocol.
		{name: "prepared DELETE", path: "prepared", stmts: []string{"DELETE FROM items WHERE id > 0"}},
		{name: "prepared nextval", path: "prepared", stmts: []string{"SELECT nextval(s)"}},
		{name: "prepared stored function", path: "prepared", stmts: []string{"SELECT add_item()"}},
		{name: "prepared view over SET GLOBAL", path: "prepared", stmts: []string{"SELECT x FROM v_bump"}},
		{name: "prepared CALL", path: "prepared", stmts: []string{"CALL wipe()"}},
		{name: "prepared INSERT", path: "prepared", stmts: []string{"INSERT INTO items VALUES (7, 'seven', 7)"}},
		{name: "CLI DELETE", path: "cli", stmts: []string{"DELETE FROM items"}},
	}
}

// roTarget is where an attempt is sent: MariaDB itself or sqlwarden.
type roTarget struct {
	dsn, host, port, user, pass string
}

// runAttempt runs an attempt on a fresh connection and returns the errors
// its statements got and the snapshot taken while the connection is still
// open (a named lock or a table lock lives only as long as it), with the
// probe's result.
func runAttempt(t *testing.T, root *sql.DB, outdir string, to roTarget, a roAttempt) ([]error, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if a.path == "cli" {
		var errs []error
		for _, q := range a.stmts {
			out, err := exec.CommandContext(ctx, "mariadb", "-h", to.host, "-P", to.port, "-u", to.user, "-p"+to.pass,
				"--skip-ssl", "--comments", "-D", "ro", "-e", q).CombinedOutput()
			if err != nil {
				errs = append(errs, fmt.Errorf("%v: %s", err, out))
			} else {
				errs = append(errs, nil)
			}
		}
		return errs, roSnapshot(t, root, outdir, "")
	}
	db, err := sql.Open("mysql", to.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatalf("%s: connect: %v", a.name, err)
	}
	defer conn.Close()
	var errs []error
	for _, q := range a.stmts {
		var err error
		if a.path == "prepared" {
			var st *sql.Stmt
			if st, err = conn.PrepareContext(ctx, q); err == nil {
				var rows *sql.Rows
				if rows, err = st.QueryContext(ctx); err == nil {
					for rows.Next() {
					}
					err = rows.Err()
					rows.Close()
				}
				st.Close()
			}
		} else {
			var rows *sql.Rows
			if rows, err = conn.QueryContext(ctx, q); err == nil {
				for rows.Next() {
				}
				err = rows.Err()
				for rows.NextResultSet() {
					for rows.Next() {
					}
				}
				if err == nil {
					err = rows.Err()
				}
				rows.Close()
			}
		}
		errs = append(errs, err)
	}
	probe := ""
	if a.probe != "" {
		var n int
		if err := conn.QueryRowContext(ctx, a.probe).Scan(&n); err != nil {
			code, _ := errCode(err)
			probe = fmt.Sprint("error ", code)
		} else {
			probe = fmt.Sprint(n)
		}
	}
	return errs, roSnapshot(t, root, outdir, probe)
}

func isLimit(err error, kind string) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && me.Number == 1226 && string(me.SQLState[:]) == "42000" &&
		strings.HasPrefix(me.Message, "sqlwarden: limit ") && strings.Contains(me.Message, ": "+kind+": ")
}

func writePolicy(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestReadOnlyCorpus: every attempt changes the database when sent
// directly; through sqlwarden with a read_only limit the database is
// byte-identical afterwards (a snapshot after each attempt, mariadb-dump
// before and after all of them), each attempt was refused with ERR 1226
// naming the limit, and reads still work.
func TestReadOnlyCorpus(t *testing.T) {
	m := testutil.StartMariaDB(t)
	root := m.Open(t, "")
	root.SetMaxOpenConns(4)
	outdir := t.TempDir()
	if err := os.Chmod(outdir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outdir, "data.csv"), []byte("50,loaded,5\n51,loaded,5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustExec(t, root, "CREATE USER IF NOT EXISTS '"+roAdmin+"'@'%' IDENTIFIED BY '"+roAdminPass+"'")
	mustExec(t, root, "GRANT ALL PRIVILEGES ON *.* TO '"+roAdmin+"'@'%' WITH GRANT OPTION")
	roFixture(t, root, outdir)
	t.Cleanup(func() {
		mustExec(t, root, "SET GLOBAL max_connect_errors = 100")
		mustExec(t, root, "SET GLOBAL TRANSACTION READ WRITE")
	})
	corpus := roCorpus(outdir)
	if len(corpus) < 25 {
		t.Fatalf("corpus has %d attempts", len(corpus))
	}
	host, port, _ := strings.Cut(m.Addr, ":")
	direct := roTarget{dsn: fmt.Sprintf("%s:%s@tcp(%s)/ro?multiStatements=true&interpolateParams=false", roAdmin, roAdminPass, m.Addr),
		host: host, port: port, user: roAdmin, pass: roAdminPass}
	// baselines snapshots the fixture as it is, and as each probe sees it.
	baselines := func() (string, map[string]string) {
		probes := map[string]string{}
		for _, a := range corpus {
			if a.probe != "" {
				_, probes[a.name] = runAttempt(t, root, outdir, direct, roAttempt{name: a.name + " probe", probe: a.probe})
			}
		}
		return roSnapshot(t, root, outdir, ""), probes
	}

	// Directly on MariaDB, each attempt changes something.
	for _, a := range corpus {
		base, probes := baselines()
		want := base
		if a.probe != "" {
			want = probes[a.name]
		}
		if _, after := runAttempt(t, root, outdir, direct, a); after == want {
			t.Errorf("%s: sent directly, changed nothing: the attempt proves nothing", a.name)
		}
		mustExec(t, root, "SET GLOBAL TRANSACTION READ WRITE")
		roFixture(t, root, outdir)
	}
	if t.Failed() {
		return
	}
	base, probeBase := baselines()

	dir := t.TempDir()
	pfile := filepath.Join(dir, "policy.yaml")
	writePolicy(t, pfile, "limits:\n  - name: agents-ro\n    identities: [\""+harness.Identity+"\"]\n    read_only: true\n")
	d := harness.Start(t, harness.Options{
		Extra:    "policy:\n  file: " + pfile + "\n",
		Backends: fmt.Sprintf("  - name: default\n    address: %s\n    user: %s\n    password: %s\n", m.Addr, roAdmin, roAdminPass),
	})
	phost, pport := d.HostPort()
	proxied := roTarget{dsn: d.DSN("ro", "multiStatements=true&interpolateParams=false"), host: phost, port: pport,
		user: harness.ClientUser, pass: harness.ClientPassword}
	dumpBefore := mariadbDump(t, m)
	for _, a := range corpus {
		errs, after := runAttempt(t, root, outdir, proxied, a)
		want := base
		if a.probe != "" {
			want = probeBase[a.name]
		}
		if after != want {
			t.Errorf("%s: through sqlwarden the database changed:\n%s", a.name, diffLines(want, after))
		}
		refused := false
		for _, err := range errs {
			if a.path == "cli" {
				refused = refused || (err != nil && strings.Contains(err.Error(), "ERROR 1226") && strings.Contains(err.Error(), "read_only"))
				continue
			}
			refused = refused || isLimit(err, "read_only")
		}
		if !refused {
			t.Errorf("%s: no statement was refused by the read_only limit: %v", a.name, errs)
		}
	}
	if dumpAfter := mariadbDump(t, m); string(dumpAfter) != string(dumpBefore) {
		t.Errorf("mariadb-dump differs after the corpus:\n%s", diffLines(string(dumpBefore), string(dumpAfter)))
	}

	// Reads still work, by text and prepared, and the backend session is in
	// READ ONLY mode.
	db := d.Open(t, "ro")
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM items WHERE qty > ?", 0).Scan(&n); err != nil || n != 3 {
		t.Fatalf("prepared read: %d, %v", n, err)
	}
	var ro int
	if err := db.QueryRow("SELECT @@session.tx_read_only").Scan(&ro); err != nil || ro != 1 {
		t.Fatalf("backend session tx_read_only = %d, %v", ro, err)
	}
	for _, q := range []string{"SELECT name FROM items ORDER BY id", "SELECT * FROM v_items", "SHOW TABLES", "DESCRIBE items",
		"EXPLAIN SELECT * FROM items WHERE id = 1", "SELECT concat(name, '!'), now(), count(*) FROM items GROUP BY name",
		"SELECT * FROM s", "START TRANSACTION", "SELECT 1", "COMMIT", "SET @x = 1", "SET NAMES utf8mb4"} {
		rows, err := db.Query(q)
		if err != nil {
			t.Errorf("%s: %v", q, err)
			continue
		}
		rows.Close()
	}

	// Refused although they change no row: they hold handles and locks.
	for _, q := range []string{"HANDLER items OPEN", "SELECT * FROM items FOR UPDATE", "SELECT * FROM items LOCK IN SHARE MODE",
		"SELECT * FROM items WHERE id IN (SELECT id FROM items FOR UPDATE)"} {
		if _, err := db.Exec(q); !isLimit(err, "read_only") {
			t.Errorf("%s: %v, want ERR 1226 read_only", q, err)
		}
	}

	// The refusal is journaled with the limit that fired.
	_, o := d.FindStatement(t, "CALL wipe()")
	if o == nil || o.Status != record.StatusBlocked || o.Error == nil || o.Error.Code != 1226 || o.Limit == nil ||
		o.Limit.Name != "agents-ro" || o.Limit.Kind != "read_only" || o.Limit.Value != true {
		t.Errorf("outcome of CALL: %+v", o)
	}
}

// diffLines shows the lines of b that are not in a and the other way round.
func diffLines(a, b string) string {
	as, bs := strings.Split(a, "\n"), strings.Split(b, "\n")
	in := func(set []string) map[string]int {
		m := map[string]int{}
		for _, l := range set {
			m[l]++
		}
		return m
	}
	am, bm := in(as), in(bs)
	var out []string
	for l, n := range am {
		if bm[l] < n {
			out = append(out, "- "+l)
		}
	}
	for l, n := range bm {
		if am[l] < n {
			out = append(out, "+ "+l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TestReadOnlyReloadAndReset: turning read_only on by a policy reload
// applies to an open session before its next statement (the server's READ
// ONLY mode included); turning it off restores it; COM_RESET_CONNECTION
// does not shake it off.
func TestReadOnlyReloadAndReset(t *testing.T) {
	m := testutil.StartMariaDB(t)
	root := setupDB(t, m, "roreload")
	dir := t.TempDir()
	pfile := filepath.Join(dir, "policy.yaml")
	off := "rules: []\n"
	on := "limits:\n  - name: frozen\n    read_only: true\n"
	writePolicy(t, pfile, off)
	d := harness.Start(t, harness.Options{Extra: "policy:\n  file: " + pfile + "\n"})

	c, err := client.Connect(d.Listen, harness.ClientUser, harness.ClientPassword, "roreload")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	txReadOnly := func() string {
		t.Helper()
		r, err := c.Execute("SELECT @@session.tx_read_only")
		if err != nil {
			t.Fatal(err)
		}
		v, _ := r.GetString(0, 0)
		return v
	}
	if v := txReadOnly(); v != "0" {
		t.Fatalf("before: tx_read_only %s", v)
	}
	if _, err := c.Execute("UPDATE items SET qty = qty + 1 WHERE id = 1"); err != nil {
		t.Fatalf("write before read_only: %v", err)
	}

	writePolicy(t, pfile, on)
	// The daemon polls the file: wait for the reload to show on this
	// session, with a write that changes nothing.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.Execute("UPDATE items SET qty = qty WHERE id = 1")
		var me *gm.MyError
		if errors.As(err, &me) && me.Code == 1226 && strings.Contains(me.Message, "limit frozen: read_only: ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("read_only not applied after reload: last error %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v := txReadOnly(); v != "1" {
		t.Fatalf("after reload: tx_read_only %s", v)
	}

	// COM_RESET_CONNECTION resets session variables on the server; the
	// proxy puts the mode back.
	if p := rawCommand(t, c, gm.COM_RESET_CONNECTION); p[0] != wire.OKHeader {
		t.Fatalf("COM_RESET_CONNECTION: % x", p)
	}
	if v := txReadOnly(); v != "1" {
		t.Fatalf("after COM_RESET_CONNECTION: tx_read_only %s", v)
	}
	if _, err := c.Execute("USE roreload"); err != nil {
		t.Fatal(err)
	}

	writePolicy(t, pfile, off)
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, err := c.Execute("UPDATE items SET qty = qty WHERE id = 1")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("read_only still on after reload: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v := txReadOnly(); v != "0" {
		t.Fatalf("after turning read_only off: tx_read_only %s", v)
	}
	if _, err := c.Execute("UPDATE items SET qty = qty + 1 WHERE id = 1"); err != nil {
		t.Fatalf("write after read_only: %v", err)
	}
	var qty int
	if err := root.QueryRow("SELECT qty FROM roreload.items WHERE id = 1").Scan(&qty); err != nil || qty != 12 {
		t.Fatalf("qty %d, %v: want the two writes made while read_only was off", qty, err)
	}
}

// TestReadOnlyReaderAccount: with the recommended backend account (SELECT
// only) a read-only session works, and a view whose definition that
// account cannot see is refused rather than trusted.
func TestReadOnlyReaderAccount(t *testing.T) {
	m := testutil.StartMariaDB(t)
	root := setupDB(t, m, "roreader")
	mustExec(t, root, "CREATE VIEW roreader.v AS SELECT id, name FROM roreader.items")
	mustExec(t, root, "DROP USER IF EXISTS 'ro_reader'@'%'")
	mustExec(t, root, "CREATE USER 'ro_reader'@'%' IDENTIFIED BY 'reader-pass'")
	mustExec(t, root, "GRANT SELECT ON roreader.* TO 'ro_reader'@'%'")
	t.Cleanup(func() { mustExec(t, root, "DROP USER IF EXISTS 'ro_reader'@'%'") })

	pfile := filepath.Join(t.TempDir(), "policy.yaml")
	writePolicy(t, pfile, "limits:\n  - name: readers\n    read_only: true\n")
	d := harness.Start(t, harness.Options{
		Extra:    "policy:\n  file: " + pfile + "\n",
		Backends: fmt.Sprintf("  - name: default\n    address: %s\n    user: ro_reader\n    password: reader-pass\n", m.Addr),
	})
	db := d.Open(t, "roreader")
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM items").Scan(&n); err != nil || n != 3 {
		t.Fatalf("read through a SELECT-only account: %d %v", n, err)
	}
	_, err := db.Exec("SELECT * FROM v")
	if !isLimit(err, "read_only") || !strings.Contains(err.Error(), "grant it SHOW VIEW") {
		t.Fatalf("view with an invisible definition: %v", err)
	}
}

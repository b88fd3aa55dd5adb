package statement

import (
	"errors"
	"sort"
	"strings"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
)

func TestReadOnlyReason(t *testing.T) {
	prepared := map[string]string{"good": "SELECT * FROM t WHERE id = ?", "bad": "DELETE FROM t"}
	lookup := func(name string) (string, bool) { s, ok := prepared[name]; return s, ok }
	tests := []struct {
		sql    string
		reason string // "" = admitted; else a substring of the refusal
	}{
		// Reads.
		{"SELECT * FROM t WHERE id = 1", ""},
		{"select a, count(*), sum(b) over (partition by a) from t group by a order by 2 desc limit 5", ""},
		{"SELECT concat(a, 'x'), date_format(now(), '%Y'), json_extract(j, '$.a'), j->>'$.b', char(65), insert('abc', 1, 1, 'x') FROM t", ""},
		{"SELECT a FROM x UNION ALL SELECT a FROM y", ""},
		{"WITH c AS (SELECT 1 AS a) SELECT * FROM c WHERE a IN (SELECT id FROM t)", ""},
		{"SELECT CAST(a AS CHAR), CONVERT(b USING utf8mb4), COALESCE (a, b), TRIM(LEADING 'x' FROM a) FROM t", ""},
		{"SELECT sleep(0), benchmark(10, md5('a')), last_insert_id(), uuid(), rand()", ""},
		{"SELECT @a := 1", ""},
		{"SELECT * FROM `t` WHERE `a` IN (1, 2)", ""},
		{"SHOW TABLES", ""}, {"SHOW CREATE TABLE t", ""}, {"DESC t", ""}, {"DESCRIBE SELECT 1", ""},
		{"EXPLAIN SELECT * FROM t", ""}, {"EXPLAIN DELETE FROM t WHERE id = 1", ""}, {"HELP 'select'", ""},
		{"USE shop", ""}, {"DO 1 + 1", ""}, {"BEGIN", ""}, {"START TRANSACTION", ""}, {"START TRANSACTION READ ONLY", ""},
		{"COMMIT", ""}, {"ROLLBACK", ""}, {"SAVEPOINT a", ""}, {"ROLLBACK TO SAVEPOINT a", ""}, {"RELEASE SAVEPOINT a", ""},
		{"UNLOCK TABLES", ""},
		{"SET @a = 1", ""}, {"SET NAMES utf8mb4", ""}, {"SET autocommit = 0", ""}, {"SET @@session.sql_select_limit = 10", ""},
		{"SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", ""}, {"SET SESSION TRANSACTION READ ONLY", ""},
		{"SET tx_read_only = 1", ""}, {"SET @@session.transaction_read_only = ON", ""},
		{"PREPARE s FROM 'SELECT * FROM t WHERE id = ?'", ""}, {"EXECUTE good USING @a", ""}, {"DEALLOCATE PREPARE s", ""},
		{"PREPARE s FROM 'SELECT 1'; EXECUTE s", ""},
		{"SELECT 1; SELECT 2", ""},

		// Writes of every kind.
		{"INSERT INTO t VALUES (1)", "INSERT is not a read"},
		{"REPLACE INTO t VALUES (1)", "REPLACE is not a read"},
		{"INSERT INTO t SELECT * FROM u", "INSERT is not a read"},
		{"UPDATE t SET a = 1 WHERE id = 1", "UPDATE is not a read"},
		{"DELETE FROM t WHERE id IS NOT NULL", "DELETE is not a read"},
		{"SELECT 1; DELETE FROM t", "DELETE is not a read"},
		{"/*!50000 DROP TABLE t */", "DROP_TABLE"},
		{"SELECT 1 /*M! ; DROP TABLE t */", "DROP_TABLE"},
		{"CREATE TABLE n (a INT)", "not a read"}, {"CREATE TEMPORARY TABLE n (a INT)", "not a read"},
		{"ALTER TABLE t ADD c INT", "not a read"}, {"TRUNCATE t", "not a read"}, {"RENAME TABLE a TO b", "not a read"},
		{"CREATE INDEX i ON t (a)", "not a read"}, {"DROP VIEW v", "not a read"}, {"CREATE VIEW v AS SELECT 1", "not a read"},
		{"CREATE DATABASE x", "not a read"}, {"CREATE SEQUENCE s", "not a read"},
		{"CREATE PROCEDURE p() SELECT 1", ""}, // refused one way or another: asserted below
		{"GRANT ALL ON *.* TO x", "GRANT"}, {"CREATE USER x", "not a read"}, {"SET PASSWORD = 'x'", "SET_PASSWORD"},
		{"SET ROLE r", "not a read"}, {"ANALYZE TABLE t", "not a read"}, {"FLUSH TABLES", "not a read"},
		{"KILL 3", "not a read"}, {"LOAD DATA INFILE '/x' INTO TABLE t", "not a read"},
		{"CALL p()", "CALL runs a stored procedure"},
		{"LOCK TABLES t READ", "LOCK TABLES"},
		{"HANDLER t OPEN", "could not be parsed"},
		{"EXECUTE IMMEDIATE 'DELETE FROM t'", "could not be parsed"},
		{"SET STATEMENT tx_read_only=0 FOR DELETE FROM t", "could not be parsed"},
		{"SELECT 1 INTO DUMPFILE '/tmp/x'", "could not be parsed"},
		{"SELECT * FROM t INTO OUTFILE '/tmp/x'", "INTO OUTFILE"},
		{"SELECT 1 UNION SELECT 2 INTO OUTFILE '/tmp/x'", "INTO OUTFILE"},
		{"SELECT * FROM t FOR UPDATE", "locking read"},
		{"SELECT * FROM t LOCK IN SHARE MODE", "locking read"},
		{"SELECT * FROM t WHERE id IN (SELECT id FROM u FOR UPDATE)", "locking read"},
		{"EXPLAIN ANALYZE DELETE FROM t", "EXPLAIN ANALYZE"},
		// Functions.
		{"SELECT nextval(s)", "NEXTVAL advances a sequence"},
		{"SELECT NEXT VALUE FOR s", "NEXTVAL"},
		{"SELECT setval(s, 100)", "SETVAL"},
		{"SELECT get_lock('a', 1)", "GET_LOCK"}, {"DO release_lock('a')", "RELEASE_LOCK"},
		{"SELECT load_file('/etc/passwd')", "LOAD_FILE"},
		{"SELECT f(1)", "function F is not a builtin"},
		{"SELECT shop.f(1)", "stored function"},
		{"SELECT * FROM t WHERE id IN (SELECT writer())", "WRITER"},
		{"SELECT 1 /*!50000 , f() */", "function F"}, {"SELECT 1 /*M!100000 , f() */", "function F"}, {"SELECT 1 /*!99999 , f() */", ""}, // MariaDB skips MySQL 5.7+ comments
		{"SET @a = f(1)", "function F"},
		{"SHOW TABLES WHERE f(1)", "function F"},
		{"EXPLAIN SELECT f(1)", "function F"},
		{"DO f()", "function F"},
		{"SELECT count (1) FROM t", "COUNT called with a space"},
		{"SELECT NOW/**/()", "NOW called with a space|could not be parsed"},
		{"SELECT substr\n('a', 1)", "SUBSTR called with a space|could not be parsed"},
		{"SELECT max(a), group_concat -- x\n (b) FROM t", "GROUP_CONCAT called with a space|could not be parsed"},
		{"SELECT max (a) FROM t", "MAX called with a space|could not be parsed"}, {"SELECT a FROM t WHERE d < curdate  ()", "CURDATE called with a space|could not be parsed"}, {"SELECT sum (a), now () FROM t", "called with a space|could not be parsed"},
		{"SELECT `count`(1)", "quoted name `count`"},
		{"SELECT `now` ()", "quoted name `now`"},
		// Transaction-mode switches, variables that outlive the session.
		{"START TRANSACTION READ WRITE", "READ WRITE"},
		{"start transaction read /* x */ write", "READ WRITE"},
		{"SET TRANSACTION READ WRITE", "tx_read_only switches off"},
		{"SET SESSION TRANSACTION READ WRITE", "tx_read_only switches off"},
		{"SET @@tx_read_only = 0", "switches off"}, {"SET tx_read_only = OFF", "switches off"},
		{"SET @@session.transaction_read_only = DEFAULT", "switches off"},
		{"SET tx_read_only = (SELECT 1)", "switches off"},
		{"SET GLOBAL TRANSACTION READ WRITE", "SET GLOBAL"},
		{"SET GLOBAL max_connections = 10", "SET GLOBAL"},
		{"SET @@global.general_log = 0", "SET GLOBAL"},
		{"SET @a = 1, @@global.x = 2", "SET GLOBAL"},
		{"SET session_track_transaction_info = 'CHARACTERISTICS'", "session_track"},
		{"SET sql_log_bin = 0", "sql_log_bin"},
		// Dynamic SQL and prepared statements.
		{"PREPARE s FROM @q", "from a variable"},
		{"PREPARE s FROM 'DELETE FROM t'", "prepared statement s: DELETE"},
		{"PREPARE s FROM 'PREPARE u FROM ''DROP TABLE t'''", "DROP_TABLE"},
		{"PREPARE s FROM 'SELECT nextval(q)'", "NEXTVAL"},
		{"EXECUTE bad", "prepared statement bad: DELETE"},
		{"EXECUTE unknown", "not prepared in this session"},
		{"PREPARE s FROM 'SELECT 1'; EXECUTE s2", "not prepared"},
		{"EXECUTE good USING f()", "could not be parsed"},
		// Unparsed.
		{"SELEC 1", "could not be parsed"},
		{"", "could not be parsed"},
	}
	for _, tc := range tests {
		t.Run(tc.sql, func(t *testing.T) {
			got := ReadOnlyReason(tc.sql, Classify(tc.sql, "shop"), lookup)
			if strings.HasPrefix(tc.sql, "CREATE PROCEDURE") {
				if got == "" {
					t.Fatalf("admitted %q", tc.sql)
				}
				return
			}
			if tc.reason == "" && got != "" {
				t.Fatalf("refused %q: %s", tc.sql, got)
			}
			if tc.reason != "" && !containsAny(got, strings.Split(tc.reason, "|")) {
				t.Fatalf("%q: reason %q, want it to contain %q", tc.sql, got, tc.reason)
			}
		})
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// TestReadOnlyCachedClassification: the lexical checks look at the text the
// client sent, not the text a shared classification was made from.
func TestReadOnlyCachedClassification(t *testing.T) {
	st := Classify("SELECT count(1) FROM t", "shop")
	if r := ReadOnlyReason("SELECT count(1) FROM t", st, nil); r != "" {
		t.Fatalf("refused: %s", r)
	}
	if r := ReadOnlyReason("SELECT count (1) FROM t", st, nil); r == "" {
		t.Fatal("a spaced call judged by another text's classification was admitted")
	}
}

// mariaName is the name MariaDB knows a parser-reported function by.
func mariaName(n string) string {
	switch n {
	case "char_func":
		return "char"
	case "insert_func":
		return "insert"
	}
	return n
}

// doesNotExist reports MariaDB's answer to a call of a stored function that
// does not exist: the name was not resolved to a builtin.
func doesNotExist(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1305 || me.Number == 1630)
}

// TestPureFunctionsAreMariaDBBuiltins asks the server how it resolves every
// name the read-only allowlist admits: in a database with no routines, a
// call of a name that is not a builtin fails with "FUNCTION db.name does not
// exist" (so an agent could have created it). Called with a space before the
// parenthesis, only the names in spaceSensitive may fail that way.
func TestPureFunctionsAreMariaDBBuiltins(t *testing.T) {
	m := testutil.StartMariaDB(t)
	root := m.Open(t, "")
	for _, q := range []string{"DROP DATABASE IF EXISTS ro_oracle", "CREATE DATABASE ro_oracle"} {
		if _, err := root.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db := m.Open(t, "ro_oracle")
	db.SetMaxOpenConns(1)
	names := map[string]bool{}
	for _, set := range []map[string]bool{pureFunctions, pureAggregates, pureWindows} {
		for n := range set {
			names[mariaName(n)] = true
		}
	}
	spaced := setOf(spaceSensitive...)
	var sorted []string
	for n := range names {
		sorted = append(sorted, n)
	}
	for n := range spaced {
		if !names[n] {
			sorted = append(sorted, n)
		}
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		var sink any
		if names[n] {
			if err := db.QueryRow("SELECT " + n + "()").Scan(&sink); doesNotExist(err) {
				t.Errorf("%s is not a MariaDB builtin: %v", n, err)
				continue
			}
		}
		err := db.QueryRow("SELECT " + n + " ()").Scan(&sink)
		if doesNotExist(err) != spaced[n] {
			t.Errorf("%s ( with a space: %v; spaceSensitive says %v", n, err, spaced[n])
		}
	}
	// The threat is real: a stored function named like a space-sensitive
	// builtin runs when the call has a space.
	if _, err := db.Exec("CREATE FUNCTION `now`() RETURNS INT RETURN 42"); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := db.QueryRow("SELECT now ()").Scan(&v); err != nil || v != "42" {
		t.Fatalf("SELECT now () = %q, %v; want the stored function's 42", v, err)
	}
	if r := ReadOnlyReason("SELECT now ()", Classify("SELECT now ()", "ro_oracle"), nil); r == "" {
		t.Fatal("SELECT now () admitted")
	}
}

// BenchmarkReadOnlyPointSelect is the read_only judge's cost on the
// statement most agents send most.
func BenchmarkReadOnlyPointSelect(b *testing.B) {
	sql := "SELECT c FROM sbtest1 WHERE id = 4711"
	st := Classify(sql, "bench")
	b.ReportAllocs()
	for b.Loop() {
		if r, _ := ReadOnly(sql, st, "bench", nil); r != "" {
			b.Fatal(r)
		}
		if w := BoundWrite(st, "bench"); w.Refuse != "" || w.Write {
			b.Fatal(w)
		}
	}
}

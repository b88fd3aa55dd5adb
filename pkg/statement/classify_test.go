package statement

import (
	"slices"
	"strings"
	"testing"

	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name    string
		sql     string
		db      string
		kind    string
		kinds   []string
		ddl     bool
		read    []string
		written []string
		where   bool
		limit   bool
		outfile bool
		funcs   []string
		count   int
		parsed  bool
		dynamic bool
	}{
		{name: "point select", sql: "SELECT name FROM users WHERE id = 7", db: "shop", kind: "SELECT", read: []string{"shop.users"}, where: true, count: 1, parsed: true},
		{name: "drop table", sql: "DROP TABLE users", db: "shop", kind: "DROP_TABLE", ddl: true, written: []string{"shop.users"}, count: 1, parsed: true},
		{name: "drop view", sql: "drop view v1", kind: "DROP_VIEW", ddl: true, written: []string{"v1"}, count: 1, parsed: true},
		{name: "drop database", sql: "DROP DATABASE shop", kind: "DROP_DATABASE", ddl: true, count: 1, parsed: true},
		{name: "truncate", sql: "TRUNCATE TABLE shop.users", kind: "TRUNCATE", ddl: true, written: []string{"shop.users"}, count: 1, parsed: true},
		{name: "truncate no table keyword", sql: "truncate users", db: "d", kind: "TRUNCATE", ddl: true, written: []string{"d.users"}, count: 1, parsed: true},
		{name: "delete without where", sql: "DELETE FROM users", db: "shop", kind: "DELETE", written: []string{"shop.users"}, count: 1, parsed: true},
		{name: "delete with where", sql: "DELETE FROM users WHERE id = 1", db: "shop", kind: "DELETE", written: []string{"shop.users"}, where: true, count: 1, parsed: true},
		{name: "delete with constant where", sql: "DELETE FROM users WHERE 1=1", db: "shop", kind: "DELETE", written: []string{"shop.users"}, count: 1, parsed: true},
		{name: "delete where true", sql: "DELETE FROM users WHERE TRUE LIMIT 10", db: "shop", kind: "DELETE", written: []string{"shop.users"}, limit: true, count: 1, parsed: true},
		{name: "delete with comments and odd casing", sql: "/* harmless */ dElEtE -- really\n FrOm `Users`", db: "shop", kind: "DELETE", written: []string{"shop.Users"}, count: 1, parsed: true},
		{name: "executable comment", sql: "/*!50000 DROP TABLE t */", db: "x", kind: "DROP_TABLE", ddl: true, written: []string{"x.t"}, count: 1, parsed: true},
		{name: "mariadb executable comment", sql: "/*M!100000 DROP TABLE t */", db: "x", kind: "DROP_TABLE", ddl: true, written: []string{"x.t"}, count: 1, parsed: true},
		{name: "mariadb executable comment hiding a second statement", sql: "SELECT 1 /*M! ; DROP TABLE t */", db: "x", kind: "DROP_TABLE", kinds: []string{"SELECT", "DROP_TABLE"}, ddl: true, written: []string{"x.t"}, count: 2, parsed: true},
		{name: "lower-case m is a plain comment to mariadb", sql: "SELECT 1 /*m! ; DROP TABLE t */", db: "x", kind: "SELECT", count: 1, parsed: true},
		{name: "mysql 5.7 version comment is ignored by mariadb", sql: "DELETE FROM t /*!50700 WHERE id=1 */", kind: "DELETE", written: []string{"t"}, count: 1, parsed: true},
		{name: "older version comment runs", sql: "DELETE FROM t /*!50000 WHERE id=1 */", kind: "DELETE", written: []string{"t"}, where: true, count: 1, parsed: true},
		{name: "mariadb comment newer than the server is ignored", sql: "DELETE FROM t /*M!999999 WHERE id=1 */", kind: "DELETE", written: []string{"t"}, count: 1, parsed: true},
		{name: "tidb comment is ignored", sql: "DELETE FROM t /*T![clustered_index] WHERE id=1 */", kind: "DELETE", written: []string{"t"}, count: 1, parsed: true},
		{name: "prepared text judged the same way", sql: "PREPARE s FROM 'DELETE FROM t /*!50700 WHERE id=1 */'", kind: "DELETE", kinds: []string{"PREPARE"}, written: []string{"t"}, count: 1, parsed: true},
		{name: "multi-statement hides delete", sql: "SELECT 1; DELETE FROM users", db: "shop", kind: "DELETE", kinds: []string{"SELECT", "DELETE"}, written: []string{"shop.users"}, count: 2, parsed: true},
		{name: "multi-statement one delete lacks where", sql: "DELETE FROM a WHERE id=1; DELETE FROM b", kind: "DELETE", kinds: []string{"DELETE", "DELETE"}, written: []string{"a", "b"}, count: 2, parsed: true},
		{name: "multi-statement drop wins", sql: "insert into t values (1); drop table t", kind: "DROP_TABLE", kinds: []string{"INSERT", "DROP_TABLE"}, ddl: true, written: []string{"t"}, count: 2, parsed: true},
		{name: "use switches database", sql: "use other; update t set a=1 where b=2", db: "shop", kind: "UPDATE", kinds: []string{"USE", "UPDATE"}, written: []string{"other.t"}, where: true, count: 2, parsed: true},
		{name: "update subqueries read", sql: "UPDATE t SET x = (SELECT max(y) FROM u) WHERE id IN (SELECT id FROM v)", kind: "UPDATE", read: []string{"u", "v"}, written: []string{"t"}, where: true, funcs: []string{"MAX"}, count: 1, parsed: true},
		{name: "update multi-table alias", sql: "UPDATE a x JOIN b y ON x.id = y.id SET x.v = 1 WHERE y.z = 2", kind: "UPDATE", read: []string{"b"}, written: []string{"a"}, where: true, count: 1, parsed: true},
		{name: "delete multi-table", sql: "DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id WHERE t2.x = 1", kind: "DELETE", read: []string{"t2"}, written: []string{"t1"}, where: true, count: 1, parsed: true},
		{name: "insert select self", sql: "INSERT INTO t SELECT * FROM t", kind: "INSERT", read: []string{"t"}, written: []string{"t"}, count: 1, parsed: true},
		{name: "replace", sql: "REPLACE INTO s.t (a) VALUES (1)", kind: "REPLACE", written: []string{"s.t"}, count: 1, parsed: true},
		{name: "into outfile", sql: "SELECT * FROM t INTO OUTFILE '/tmp/x'", kind: "SELECT", read: []string{"t"}, outfile: true, count: 1, parsed: true},
		// The TiDB grammar lacks DUMPFILE and the leading INTO position: unparsed, which the default policy denies.
		{name: "into dumpfile", sql: "SELECT secret FROM t LIMIT 1 INTO DUMPFILE '/tmp/x'", kind: KindUnparsed, count: 1},
		{name: "into outfile before from", sql: "SELECT * INTO OUTFILE '/tmp/x' FROM t", kind: KindUnparsed, count: 1},
		{name: "dangerous functions", sql: "SELECT SLEEP(1), benchmark(1000, md5('a')), Load_File('/etc/passwd')", kind: "SELECT", funcs: []string{"BENCHMARK", "LOAD_FILE", "MD5", "SLEEP"}, count: 1, parsed: true},
		{name: "cte is not a table", sql: "WITH c AS (SELECT * FROM a) SELECT * FROM c JOIN b ON c.id = b.id", db: "d", kind: "SELECT", read: []string{"d.a", "d.b"}, count: 1, parsed: true},
		{name: "union", sql: "SELECT a FROM x UNION ALL SELECT a FROM y.z", kind: "SELECT", read: []string{"x", "y.z"}, count: 1, parsed: true},
		{name: "subquery in where", sql: "SELECT * FROM a WHERE id IN (SELECT id FROM b WHERE c > 1) LIMIT 5", kind: "SELECT", read: []string{"a", "b"}, where: true, limit: true, count: 1, parsed: true},
		{name: "create table as select", sql: "CREATE TABLE n AS SELECT * FROM o", kind: "CREATE_TABLE", ddl: true, read: []string{"o"}, written: []string{"n"}, count: 1, parsed: true},
		{name: "alter table", sql: "ALTER TABLE t ADD COLUMN c INT", kind: "ALTER_TABLE", ddl: true, written: []string{"t"}, count: 1, parsed: true},
		{name: "rename", sql: "RENAME TABLE a TO b", kind: "RENAME_TABLE", ddl: true, written: []string{"a", "b"}, count: 1, parsed: true},
		{name: "create index", sql: "CREATE INDEX i ON t (c)", kind: "CREATE_INDEX", ddl: true, written: []string{"t"}, count: 1, parsed: true},
		{name: "grant", sql: "GRANT ALL ON *.* TO 'x'@'%'", kind: "GRANT", count: 1, parsed: true},
		{name: "create user", sql: "CREATE USER 'x'@'%' IDENTIFIED BY 'p'", kind: "CREATE_USER", count: 1, parsed: true},
		{name: "set", sql: "SET NAMES utf8mb4", kind: "SET", count: 1, parsed: true},
		{name: "call", sql: "CALL purge_old(1)", kind: "CALL", funcs: []string{"PURGE_OLD"}, count: 1, parsed: true},
		{name: "load data", sql: "LOAD DATA INFILE '/tmp/x' INTO TABLE t", kind: "LOAD_DATA", written: []string{"t"}, count: 1, parsed: true},
		{name: "begin commit", sql: "BEGIN; COMMIT", kind: "BEGIN", kinds: []string{"BEGIN", "COMMIT"}, count: 2, parsed: true},
		{name: "show", sql: "SHOW TABLES", kind: "SHOW", count: 1, parsed: true},
		{name: "explain analyze runs the statement", sql: "EXPLAIN ANALYZE DELETE FROM t", kind: "DELETE", written: []string{"t"}, count: 1, parsed: true},
		{name: "prepare from text is classified", sql: "PREPARE s FROM 'DROP TABLE t'", kind: "DROP_TABLE", kinds: []string{"PREPARE"}, ddl: true, written: []string{"t"}, count: 1, parsed: true},
		{name: "prepare from variable is dynamic", sql: "PREPARE s FROM @q", kind: "PREPARE", dynamic: true, count: 1, parsed: true},
		{name: "placeholders", sql: "DELETE FROM t WHERE id = ?", kind: "DELETE", written: []string{"t"}, where: true, count: 1, parsed: true},
		{name: "garbage", sql: "this is not sql", kind: KindUnparsed, count: 1},
		{name: "truncated", sql: "DELETE FROM", kind: KindUnparsed, count: 1},
		{name: "empty", sql: "", kind: KindUnparsed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Classify(tt.sql, tt.db)
			if s.Kind != tt.kind {
				t.Errorf("Kind = %q, want %q (err %q)", s.Kind, tt.kind, s.Err)
			}
			wantKinds := tt.kinds
			if wantKinds == nil && tt.parsed {
				wantKinds = []string{tt.kind}
			}
			if !slices.Equal(s.Kinds, wantKinds) {
				t.Errorf("Kinds = %q, want %q", s.Kinds, wantKinds)
			}
			if s.IsDDL != tt.ddl {
				t.Errorf("IsDDL = %v, want %v", s.IsDDL, tt.ddl)
			}
			if !slices.Equal(s.TablesRead, tt.read) {
				t.Errorf("TablesRead = %q, want %q", s.TablesRead, tt.read)
			}
			if !slices.Equal(s.TablesWritten, tt.written) {
				t.Errorf("TablesWritten = %q, want %q", s.TablesWritten, tt.written)
			}
			if s.HasWhere != tt.where || s.HasLimit != tt.limit {
				t.Errorf("HasWhere, HasLimit = %v, %v, want %v, %v", s.HasWhere, s.HasLimit, tt.where, tt.limit)
			}
			if s.IntoOutfile != tt.outfile {
				t.Errorf("IntoOutfile = %v, want %v", s.IntoOutfile, tt.outfile)
			}
			if !slices.Equal(s.Functions, tt.funcs) {
				t.Errorf("Functions = %q, want %q", s.Functions, tt.funcs)
			}
			if s.Count != tt.count {
				t.Errorf("Count = %d, want %d", s.Count, tt.count)
			}
			if s.Parsed != tt.parsed {
				t.Errorf("Parsed = %v, want %v", s.Parsed, tt.parsed)
			}
			if s.Parsed != (s.Err == "") {
				t.Errorf("Parsed = %v but Err = %q", s.Parsed, s.Err)
			}
			if s.Parsed && len(s.Nodes) != s.Count {
				t.Errorf("len(Nodes) = %d, want %d", len(s.Nodes), s.Count)
			}
			if s.DynamicSQL != tt.dynamic {
				t.Errorf("DynamicSQL = %v, want %v", s.DynamicSQL, tt.dynamic)
			}
		})
	}
}

func TestClassifyDigest(t *testing.T) {
	a := Classify("SELECT * FROM t WHERE id = 1 AND name = 'bob'", "")
	b := Classify("select *  from t where id=42 and name='alice'", "")
	if a.Digest != b.Digest {
		t.Errorf("digests differ: %q vs %q", a.Digest, b.Digest)
	}
	if strings.Contains(a.Digest, "bob") || strings.Contains(a.Digest, "1") {
		t.Errorf("digest keeps literals: %q", a.Digest)
	}
}

func TestClassifyConcurrent(t *testing.T) {
	// Parsers are pooled; results must not share state across goroutines.
	done := make(chan bool)
	for g := range 4 {
		go func() {
			ok := true
			for i := range 200 {
				sql := "DELETE FROM t WHERE id = 1"
				want := "DELETE"
				if (i+g)%2 == 0 {
					sql, want = "SELECT a FROM b", "SELECT"
				}
				s := Classify(sql, "")
				if s.Kind != want || len(s.Nodes) != 1 {
					ok = false
				}
			}
			done <- ok
		}()
	}
	for range 4 {
		if !<-done {
			t.Error("concurrent Classify returned a wrong result")
		}
	}
}

// TestClassifyAs: the same text means different statements under different
// sql_modes and servers; the classification follows the server.
func TestClassifyAs(t *testing.T) {
	maria := sqltext.Dialect{Server: sqltext.Server{Flavor: sqltext.MariaDB, Version: 101119}}
	with := func(m sqltext.Mode) sqltext.Dialect { d := maria; d.Mode = m; return d }
	for _, tt := range []struct {
		name  string
		sql   string
		d     sqltext.Dialect
		kinds []string
		where bool
		read  []string
	}{
		{"backslash escapes: a WHERE", `UPDATE t SET v='1\' -- ' WHERE id=1`, maria, []string{"UPDATE"}, true, nil},
		{"no backslash escapes: no WHERE", `UPDATE t SET v='1\' -- ' WHERE id=1`, with(sqltext.NoBackslashEscapes), []string{"UPDATE"}, false, nil},
		{"no backslash escapes: a second statement", `SELECT '\'; DROP TABLE t2; -- '`, with(sqltext.NoBackslashEscapes), []string{"SELECT", "DROP_TABLE"}, false, nil},
		{"ansi quotes: an identifier", `SELECT "a\" -- " FROM t`, with(sqltext.ANSIQuotes), []string{"SELECT"}, false, nil},
		{"ansi quotes: the table is read", `SELECT "a\", card, "x" FROM cust -- "`, with(sqltext.ANSIQuotes), []string{"SELECT"}, false, []string{"cust"}},
		{"pipes as concat", `DELETE FROM t WHERE 'a' || 'b'`, with(sqltext.PipesAsConcat), []string{"DELETE"}, false, nil},
		{"mysql runs 5.7 comments", "DELETE FROM t /*!50700 WHERE id=1 */", sqltext.Dialect{Server: sqltext.Server{Flavor: sqltext.MySQL, Version: 80036}}, []string{"DELETE"}, true, nil},
		{"mysql ignores M comments", "DELETE FROM t /*M! WHERE id=1 */", sqltext.Dialect{Server: sqltext.Server{Flavor: sqltext.MySQL, Version: 80036}}, []string{"DELETE"}, false, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := ClassifyAs(tt.sql, "", tt.d)
			if !s.Parsed || !slices.Equal(s.Kinds, tt.kinds) || s.HasWhere != tt.where || !slices.Equal(s.TablesRead, tt.read) {
				t.Errorf("%s: parsed %v (%s), kinds %q, where %v, read %q; want kinds %q, where %v, read %q",
					tt.d, s.Parsed, s.Err, s.Kinds, s.HasWhere, s.TablesRead, tt.kinds, tt.where, tt.read)
			}
		})
	}
	for _, sql := range []string{"SELECT 1 /*! x /* y */ */", "PREPARE s FROM 'SELECT 1 /*! /* */ */'", "SELECT 'unterminated"} {
		if s := ClassifyAs(sql, "", maria); s.Refused == "" || s.Parsed || s.Kind != KindUnparsed {
			t.Errorf("ClassifyAs(%q): refused %q, parsed %v, kind %s; want a refusal", sql, s.Refused, s.Parsed, s.Kind)
		}
	}
}

func TestClassifyFacts(t *testing.T) {
	tests := []struct {
		sql      string
		routines []string
		account  bool
		global   bool
		fileIO   bool
		ddl      bool
	}{
		{sql: "CREATE PROCEDURE p() DELETE FROM t", routines: []string{"shop.p"}, ddl: true},
		{sql: "CREATE PROCEDURE Other.MyProc() SELECT 1", routines: []string{"Other.myproc"}, ddl: true},
		{sql: "DROP PROCEDURE IF EXISTS p", routines: []string{"shop.p"}, ddl: true},
		{sql: "CALL p", routines: []string{"shop.p"}},
		{sql: "CALL x.Refresh(1); CALL p()", routines: []string{"shop.p", "x.refresh"}},
		{sql: "SELECT x.f(id), CONCAT('a', 'b') FROM t", routines: []string{"x.f"}},
		{sql: "PREPARE s FROM 'CALL p()'", routines: []string{"shop.p"}},
		{sql: "CREATE USER u", account: true},
		{sql: "GRANT SELECT ON shop.* TO u", account: true},
		{sql: "REVOKE r FROM u", account: true},
		{sql: "SET PASSWORD = 'x'", account: true},
		{sql: "SET ROLE NONE", account: true},
		{sql: "SET GLOBAL general_log = 0", global: true},
		{sql: "SET @@global.x = 1", global: true},
		{sql: "SET x = 1"},
		{sql: "SET @@x = 1"},
		{sql: "SELECT * FROM t INTO OUTFILE '/tmp/x'", fileIO: true},
		{sql: "SELECT load_file('/etc/passwd')", fileIO: true},
		{sql: "LOAD DATA INFILE '/x' INTO TABLE t", fileIO: true},
		{sql: "LOAD DATA LOCAL INFILE '/x' INTO TABLE t"},
	}
	for _, tt := range tests {
		t.Run(tt.sql, func(t *testing.T) {
			s := Classify(tt.sql, "shop")
			if !s.Parsed {
				t.Fatalf("not parsed: %s", s.Err)
			}
			if !slices.Equal(s.Routines, tt.routines) || s.AccountManagement != tt.account || s.SetsGlobal != tt.global || s.FileIO != tt.fileIO || s.IsDDL != tt.ddl {
				t.Errorf("routines %v account %v global %v file_io %v ddl %v; want %v %v %v %v %v",
					s.Routines, s.AccountManagement, s.SetsGlobal, s.FileIO, s.IsDDL, tt.routines, tt.account, tt.global, tt.fileIO, tt.ddl)
			}
		})
	}
}

func TestMeaningfulWhere(t *testing.T) {
	tests := []struct {
		where string
		want  bool
	}{
		{"id = 1", true},
		{"1", false},
		{"TRUE", false},
		{"1 = 1", false},
		{"@x", false},
		{"id = id", false},
		{"(id) = (id)", false},
		{"t.id = id", false},
		{"t.id = u.id", true},
		{"id <=> id", false},
		{"id >= id", false},
		{"id <> id", true}, // matches nothing: harmless either way
		{"id BETWEEN id AND id", false},
		{"id IN (id)", false},
		{"id IN (1, id)", false},
		{"id IN (1, 2)", true},
		{"id IS NOT NULL", false},
		{"user_id IS NOT NULL", false},
		{"NOT user_id IS NULL", false},
		{"NOT (id IS NULL)", false},
		{"deleted_at IS NOT NULL", true},
		{"id IS NULL", true},
		{"1 OR id = 1", false},
		{"id = 1 OR 1", false},
		{"id = 1 OR id = id", false},
		{"(id = 1 OR TRUE) AND 1", false},
		{"id = 1 OR id = 2", true},
		{"id = id AND name = 'x'", true},
		{"id IS NOT NULL AND name = 'x'", true},
		{"id IN (SELECT id FROM u)", true},
		{"id > 0", true}, // not provable: max_affected_rows bounds it
	}
	for _, tt := range tests {
		t.Run(tt.where, func(t *testing.T) {
			s := Classify("DELETE FROM t WHERE "+tt.where, "shop")
			if !s.Parsed {
				t.Fatalf("not parsed: %s", s.Err)
			}
			if s.HasWhere != tt.want {
				t.Errorf("has_where = %v, want %v", s.HasWhere, tt.want)
			}
		})
	}
}

// TestClassifySessionSettings: statements that change how the server reads
// what follows are marked (the proxy reads the session back after them) or
// refused when the proxy could not follow them.
func TestClassifySessionSettings(t *testing.T) {
	for _, tt := range []struct {
		sql     string
		sets    bool
		refused string
	}{
		{"SELECT 1", false, ""},
		{"SET @x = 1", false, ""},
		{"SET sql_mode = 'ANSI_QUOTES'", true, ""},
		{"SET @@session.sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')", true, ""},
		{"SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'", true, ""},
		{"SET GLOBAL sql_mode = 'ANSI'", false, ""},
		{"SET NAMES utf8mb4", true, ""},
		{"SET NAMES DEFAULT", true, ""},
		{"SET CHARACTER SET latin1", true, ""},
		{"SELECT 1; SET sql_mode = ''", true, ""},
		{"SET sql_mode = 'ORACLE'", true, "ORACLE is not supported"},
		{"SET NAMES gbk", true, "gbk is refused"},
		{"SET NAMES 'big5' COLLATE big5_bin", false, "big5 is refused"}, // character sets the parser does not know: refused as text
		{"SET CHARACTER SET sjis", false, "sjis is refused"},
		{"SET CHARSET cp932", false, "cp932 is refused"},
		{"SET character_set_client = gb18030", true, "gb18030 is refused"},
		{"SET @@character_set_client = 'gbk_chinese_ci'", true, "gbk is refused"},
		{"SET character_set_client = CONCAT('g', 'bk')", true, "literal name"},
		{"SET character_set_client = @cs", true, "literal name"},
		{"SET sql_mode = 'ANSI_QUOTES'; SELECT \"a\" FROM t", true, "must be the last statement"},
		{"SET NAMES latin1; SELECT 1", true, "must be the last statement"},
		{"EXECUTE s; SELECT 1", false, "EXECUTE must be the last"},
		{"SET session_track_system_variables = ''", false, "session_track_system_variables is refused"},
		{"SET @@session.session_track_schema = OFF", false, "session_track_schema is refused"},
		{"PREPARE s FROM 'SET session_track_system_variables = \"\"'", false, "prepared text: SET of session_track_system_variables"},
		{"PREPARE s FROM 'SET NAMES gbk'", false, "prepared text: client character set gbk"},
		{"PREPARE s FROM 'SET sql_mode = \"NO_BACKSLASH_ESCAPES\"'", false, ""},
		{"SET STATEMENT sql_mode = 'NO_BACKSLASH_ESCAPES' FOR SELECT 1", false, "SET STATEMENT sql_mode"},
		{"set statement session_track_system_variables='' for select 1", false, "SET STATEMENT session_track_system_variables"},
		{"SET STATEMENT max_statement_time = 1 FOR SELECT 1", false, ""},
		// Results in a character set that does not carry ASCII unchanged
		// would pass SHOW GRANTS' password hashes by the scrubber.
		{"SET character_set_results = utf8mb4", true, ""},
		{"SET character_set_results = NULL", true, ""},
		{"SET character_set_results = latin1", true, ""},
		{"SET character_set_results = utf16", true, "character_set_results utf16 is refused"},
		{"SET @@session.character_set_results = 'utf32'", true, "character_set_results utf32 is refused"},
		{"SET character_set_results = 'ucs2_general_ci'", true, "character_set_results ucs2_general_ci is refused"},
		{"SET character_set_results = utf16le", true, "character_set_results utf16le is refused"},
		{"SET character_set_results = utf16le_general_ci", true, "character_set_results utf16le_general_ci is refused"},
		{"SET character_set_results = gbk_bin", true, ""},
		{"SET character_set_results = filename", true, "character_set_results filename is refused"},
		{"SET character_set_results = @cs", true, "literal name"},
		{"SET character_set_results = latin1; SHOW GRANTS", true, "must be the last statement"},
		{"SET STATEMENT character_set_results = utf16 FOR SHOW GRANTS", false, "SET STATEMENT character_set_results"},
	} {
		s := Classify(tt.sql, "")
		if s.SetsSession != tt.sets || (tt.refused == "") != (s.Refused == "") || !strings.Contains(s.Refused, tt.refused) {
			t.Errorf("%q: sets_session %v, refused %q; want %v, %q", tt.sql, s.SetsSession, s.Refused, tt.sets, tt.refused)
		}
	}
}

// SQL built at run time in text the parser cannot read is refused whatever
// the policy says: no check would see the statement it runs.
func TestHiddenSQLRefused(t *testing.T) {
	for sql, refused := range map[string]string{
		"EXECUTE IMMEDIATE CONCAT('SELECT Priv FROM mysql.glo', 'bal_priv')": "EXECUTE IMMEDIATE of an expression",
		"EXECUTE IMMEDIATE @q":                                          "EXECUTE IMMEDIATE of an expression",
		"EXECUTE/**/IMMEDIATE @q":                                       "EXECUTE IMMEDIATE of an expression",
		"EXECUTE IMMEDIATE 'SELECT 1 FROM mysql.glo' 'bal_priv'":        "EXECUTE IMMEDIATE of an expression",
		"EXECUTE IMMEDIATE 'SELECT Priv FROM mysql.glob\\al_priv'":      "backslash",
		"EXECUTE IMMEDIATE 'SELECT 1'; EXECUTE IMMEDIATE @q":            "EXECUTE IMMEDIATE of an expression",
		"PREPARE s FROM CONCAT('SELECT ', 1)":                           "(PREPARE)",
		"CREATE PROCEDURE p() BEGIN PREPARE s FROM @q; EXECUTE s; END":  "(PREPARE)",
		"EXECUTE IMMEDIATE 'SHOW GRANTS'":                               "",
		"EXECUTE IMMEDIATE 'SELECT ?' USING 1":                          "",
		"CREATE PROCEDURE p() BEGIN SELECT 'prepare', `immediate`; END": "",
	} {
		got := Classify(sql, "shop").Refused
		if (refused == "") != (got == "") || !strings.Contains(got, refused) {
			t.Errorf("%q: refused %q, want %q", sql, got, refused)
		}
	}
}

package sqltext

import (
	"errors"
	"strings"
	"testing"
)

var (
	maria1011 = Dialect{Server: Server{Flavor: MariaDB, Version: 101119}}
	mysql80   = Dialect{Server: Server{Flavor: MySQL, Version: 80036}}
	mysql84   = Dialect{Server: Server{Flavor: MySQL, Version: 80400}}
)

// checkExecutable compares the output's tokens (blanked comments are
// spaces) and checks that the length is kept.
func checkExecutable(t *testing.T, in string, d Dialect, want string) {
	t.Helper()
	got, err := Executable(in, d)
	if err != nil {
		t.Errorf("Executable(%q, %s): %v", in, d, err)
		return
	}
	if len(got) != len(in) {
		t.Errorf("Executable(%q, %s) = %q: length %d, want %d", in, d, got, len(got), len(in))
	}
	if g, w := strings.Join(strings.Fields(got), " "), strings.Join(strings.Fields(want), " "); g != w {
		t.Errorf("Executable(%q, %s)\n got %q\nwant %q", in, d, g, w)
	}
}

// The MariaDB rules here were checked against MariaDB 10.11.19 (see the
// end-to-end tests, which run each form on the real server).
func TestExecutableMariaDB(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"SELECT 1 /* c */ + 2", "SELECT 1         + 2"},
		{"SELECT 1 /*! + 2 */", "SELECT 1    + 2   "},
		{"SELECT 1 /*!50699 + 2 */", "SELECT 1         + 2   "},
		{"SELECT 1 /*!50700 + 2 */", "SELECT 1                "}, // MySQL 5.7+ versions: ignored
		{"SELECT 1 /*!99999 + 2 */", "SELECT 1                "},
		{"SELECT 1 /*!100000 + 2 */", "SELECT 1          + 2   "}, // six digits
		{"SELECT 1 /*!101119 + 2 */", "SELECT 1          + 2   "},
		{"SELECT 1 /*!101120 + 2 */", "SELECT 1                 "},   // newer than the server
		{"SELECT 1 /*!1000000 + 2 */", "SELECT 1          0 + 2   "}, // a seventh digit is content
		{"SELECT 1 /*!1234 + 2 */", "SELECT 1    1234 + 2   "},       // four digits are content
		{"SELECT 1 /*M! + 2 */", "SELECT 1     + 2   "},
		{"SELECT 1 /*M!50700 + 2 */", "SELECT 1          + 2   "}, // MariaDB's own form: no 5.7 gap
		{"SELECT 1 /*M!100000 + 2 */", "SELECT 1           + 2   "},
		{"SELECT 1 /*M!999999 + 2 */", "SELECT 1                  "},
		{"SELECT 1 /*m!100000 + 2 */", "SELECT 1                  "}, // lower case: a plain comment
		{"SELECT 1 /*T![x] + 2 */", "SELECT 1               "},       // TiDB's form: a plain comment
		{"SELECT /*+ hint */ 1", "SELECT            1"},
		{"SELECT 1 /*!99999 + 2 /* nested */ + 3 */ + 4", "SELECT 1                                  + 4"},
		{"SELECT 1 /*!40000 + '*/' */", "SELECT 1         + '*/'   "},
		{"SELECT 1 /*!40000 + 1 -- x */\n+ 2 */", "SELECT 1         + 1         \n+ 2   "},
		{"SELECT 1 /*!40000 + 1 # */\n*/", "SELECT 1         + 1     \n  "},
		{"SELECT 1 -- c\n+ 2", "SELECT 1     \n+ 2"},
		{"SELECT 1 --\t+ 2", "SELECT 1      "},
		{"SELECT 1 --", "SELECT 1   "},
		{"SELECT 1 --+ 2", "SELECT 1 --+ 2"},
		{"SELECT 1 --- 2", "SELECT 1 -    "},
		{"SELECT 1 # c\n", "SELECT 1    \n"},
		{"SELECT '#', \"--\", `/*`", "SELECT '#', \"--\", `/*`"},
		{"SELECT 'it''s', 'a\\'b -- ', 2", "SELECT 'it''s', 'a\\'b -- ', 2"},
		{"SELECT 1 */ 2", "SELECT 1 */ 2"},
		{"SELECT 2 /*!*/", "SELECT 2      "},
		{"SELECT 2 /*!40000 3*//*!40000*/", "SELECT 2          3                "},
	} {
		checkExecutable(t, tt.in, maria1011, tt.want)
	}
}

func TestExecutableModes(t *testing.T) {
	nbe := maria1011
	nbe.Mode = NoBackslashEscapes
	ansi := maria1011
	ansi.Mode = ANSIQuotes
	for _, tt := range []struct {
		d       Dialect
		in, out string
	}{
		// NO_BACKSLASH_ESCAPES: the backslash ends nothing; the comment is real.
		{nbe, "UPDATE t SET v='1\\' -- ' WHERE id=1", "UPDATE t SET v='1\\'            "},
		{maria1011, "UPDATE t SET v='1\\' -- ' WHERE id=1", "UPDATE t SET v='1\\' -- ' WHERE id=1"},
		// ANSI_QUOTES: "..." is an identifier, where a backslash escapes nothing.
		{ansi, `SELECT "a\" -- " FROM t`, "SELECT `a\\`"},
		{maria1011, `SELECT "a\" -- " FROM t`, `SELECT "a\" -- " FROM t`},
		{ansi, `SELECT "a""b" # x`, "SELECT `a\"b`"},
		// The empty identifier: MariaDB reads "" under ANSI_QUOTES as it reads ``.
		{ansi, `SELECT "" FROM t`, "SELECT `` FROM t"},
		{ansi, `""`, "``"},
	} {
		checkExecutable(t, tt.in, tt.d, tt.out)
	}
}

func TestExecutableMySQL(t *testing.T) {
	for _, tt := range []struct {
		d       Dialect
		in, out string
	}{
		{mysql80, "SELECT 1 /*!50700 + 2 */", "SELECT 1         + 2   "},
		{mysql80, "SELECT 1 /*!80037 + 2 */", "SELECT 1                "},
		{mysql80, "SELECT 1 /*M! + 2 */", "SELECT 1            "}, // no MariaDB form on MySQL
		{mysql84, "SELECT 1 /*!080400 + 2 */", "SELECT 1          + 2   "},
		{mysql84, "SELECT 1 /*!080401 + 2 */", "SELECT 1                 "},
	} {
		checkExecutable(t, tt.in, tt.d, tt.out)
	}
}

func TestExecutableRefuses(t *testing.T) {
	latin1 := maria1011
	latin1.Charset = CharsetOther
	unknown := Dialect{Server: Server{Flavor: MariaDB}}
	for _, tt := range []struct {
		d   Dialect
		in  string
		why string
	}{
		{maria1011, "SELECT 1 /*!40000 + 1 /* c */ + 2 */", "inside an executable comment"},
		{maria1011, "SELECT 1 /*! + 1 /*!40000 x */ */", "inside an executable comment"},
		{maria1011, "SELECT 1 /*! + 1", "unterminated executable"},
		{maria1011, "SELECT 1 /*!40000 + 1 # */", "unterminated executable"},
		{maria1011, "SELECT 1 /* x", "unterminated comment"},
		{maria1011, "SELECT 1 /*!99999 x /* y */", "unterminated comment"},
		{maria1011, "SELECT 'x", "unterminated quoted string"},
		{maria1011, "SELECT 'x\\'", "unterminated quoted string"},
		{maria1011, "SELECT `x", "unterminated quoted identifier"},
		{maria1011, "SELECT 1\x00 + 1", "NUL"},
		{maria1011, "SELECT 1 # \x00\n", "NUL"},
		{maria1011, "SELECT 1 --\xa0 x", "cannot tell"},
		{maria1011, "SELECT 1 ---- 2", "right after --"},
		{Dialect{Server: maria1011.Server, Mode: ANSIQuotes}, "SELECT \"a`b\"", "backtick inside"}, // minus minus, then a comment: a parser would see one comment
		{maria1011, "SELECT 1 --#\n 2", "right after --"},
		{maria1011, "SELECT 1 --/*!40000 1 */", "right after --"},
		{latin1, "SELECT a\xa0FROM t", "not UTF-8"},
		{unknown, "SELECT 1 /*!40000 x */", "version is unknown"},
		{mysql80, "SELECT 1 /*!080000 x */", "six-digit"},
	} {
		_, err := Executable(tt.in, tt.d)
		var re *RefusedError
		if !errors.As(err, &re) || !strings.Contains(re.Reason, tt.why) {
			t.Errorf("Executable(%q, %s) = %v; want a refusal mentioning %q", tt.in, tt.d, err, tt.why)
		}
	}
	// Bytes >= 0x80 are fine inside quotes in any character set, and outside in UTF-8.
	for _, d := range []Dialect{latin1, maria1011} {
		if _, err := Executable("SELECT 'caf\xe9'", d); err != nil {
			t.Errorf("latin1 string: %v", err)
		}
	}
	if _, err := Executable("SELECT caf\xc3\xa9 FROM t", maria1011); err != nil {
		t.Errorf("utf8 identifier: %v", err)
	}
}

func TestExecutableNoAllocation(t *testing.T) {
	q := "SELECT id, name FROM users WHERE id = 42 AND name = 'it''s \\'quoted\\'' AND `col` = \"x\""
	if n := testing.AllocsPerRun(100, func() {
		if out, err := Executable(q, maria1011); err != nil || out != q {
			t.Fatal(out, err)
		}
	}); n != 0 {
		t.Errorf("Executable allocates %v times on text without comments", n)
	}
}

func TestParseServerVersion(t *testing.T) {
	for in, want := range map[string]Server{
		"10.11.19-MariaDB-0+deb12u1-log": {MariaDB, 101119},
		"5.5.5-10.11.6-MariaDB":          {MariaDB, 101106},
		"11.4.2-MariaDB":                 {MariaDB, 110402},
		"8.0.36":                         {MySQL, 80036},
		"8.4.0-commercial":               {MySQL, 80400},
		"garbage":                        {MySQL, 0},
		"10.x-MariaDB":                   {MariaDB, 0},
	} {
		if got := ParseServerVersion(in); got != want {
			t.Errorf("ParseServerVersion(%q) = %+v, want %+v", in, got, want)
		}
	}
}

func TestParseSQLMode(t *testing.T) {
	for in, want := range map[string]Mode{
		"": 0,
		"STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION": 0,
		"NO_BACKSLASH_ESCAPES": NoBackslashEscapes,
		"REAL_AS_FLOAT,PIPES_AS_CONCAT,ANSI_QUOTES,IGNORE_SPACE,ANSI": PipesAsConcat | ANSIQuotes | IgnoreSpace,
		"high_not_precedence": HighNotPrecedence,
	} {
		got, err := ParseSQLMode(in)
		if err != nil || got != want {
			t.Errorf("ParseSQLMode(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"PIPES_AS_CONCAT,ANSI_QUOTES,IGNORE_SPACE,ORACLE,NO_KEY_OPTIONS", "MSSQL", "NO_SUCH_MODE"} {
		if _, err := ParseSQLMode(bad); err == nil {
			t.Errorf("ParseSQLMode(%q): no error", bad)
		}
	}
}

func TestClientCharset(t *testing.T) {
	for _, ok := range []string{"utf8mb4", "utf8", "utf8mb3", "latin1", "binary", "utf8mb4_general_ci", "latin1_swedish_ci", "ujis", "euckr_korean_ci"} {
		if _, err := ClientCharset(ok); err != nil {
			t.Errorf("ClientCharset(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"gbk", "GBK", "big5", "cp932", "sjis", "gb18030", "gbk_chinese_ci", "sjis_bin", "ucs2", "utf16", "klingon"} {
		if _, err := ClientCharset(bad); err == nil {
			t.Errorf("ClientCharset(%q): no error", bad)
		}
	}
}

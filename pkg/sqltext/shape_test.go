package sqltext

import (
	"strings"
	"testing"

	"github.com/pingcap/tidb/pkg/parser"
)

var maria = Dialect{Server: Server{MariaDB, 101119}}

func shapeOf(t testing.TB, sql string) string {
	t.Helper()
	text, err := Executable(sql, maria)
	if err != nil {
		t.Fatalf("executable %q: %v", sql, err)
	}
	out, ok := AppendShape(nil, text, maria)
	if !ok {
		t.Fatalf("no shape for %q", sql)
	}
	return strings.NewReplacer("\x00", "#", "\x01", "$").Replace(string(out))
}

func TestShape(t *testing.T) {
	for _, tc := range []struct{ sql, want string }{
		{"SELECT c FROM sbtest1 WHERE id=4711", "SELECT c FROM sbtest1 WHERE id=#"},
		{"SELECT * FROM t WHERE a = 'x''y' AND b = \"q\\\"\" AND c = 1.25", `SELECT * FROM t WHERE a = '' AND b = "" AND c = $`},
		{"SELECT 1.5e3, 1.e-3, .5, 0x1F, 0b01, 1e5, 1abc, x'41', _utf8mb4'a', N'b'", "SELECT #.5e3, #.e-#, .5, 0x1F, 0b01, 1e5, 1abc, x'41', _utf8mb4'', N''"},
		// Values the normalizer reads as words.
		{"SELECT '*', '\\*', 'InDex', 'x' FROM t", "SELECT '*', '\\*', 'InDex', '' FROM t"},
		// The normalizer reads 1.5ea as the name 1 and more.
		{"SELECT 1.5ea, 2.x", "SELECT 1.5ea, #.x"},
		// Names, not values: a column named 1, variables, quoted variable names.
		{"SELECT t.1, @1, @'v', @@session.x, `a 1` FROM t", "SELECT t.1, @1, @'v', @@session.x, `a 1` FROM t"},
		// ORDER BY and GROUP BY positions stay, as the normalizer keeps them.
		{"SELECT a FROM t WHERE b > 3 GROUP BY 1, (2) ORDER BY 1 DESC LIMIT 10", "SELECT a FROM t WHERE b > # GROUP BY 1, (2) ORDER BY 1 DESC LIMIT #"},
		{"SELECT a FROM t ORDER `by` 1", "SELECT a FROM t ORDER `by` 1"},
		{"SELECT a FROM t ORDER \xa0BY 1", "SELECT a FROM t ORDER \xa0BY 1"},
		{"SELECT a - 1 FROM t ORDER BY 1, -2, +3", "SELECT a - # FROM t ORDER BY 1, -2, +3"},
		{"INSERT INTO t VALUES (1, 'a'), (-2, NULL)", "INSERT INTO t VALUES (#, ''), (-#, NULL)"},
		// Comments are blanked by Executable; executable ones are SQL.
		{"SELECT 1 /* tool_call=42 */", "SELECT #                   "},
		{"SELECT 1 /*M! , 2 */", "SELECT #      , #   "},
	} {
		if got := shapeOf(t, tc.sql); got != tc.want {
			t.Errorf("shape of %q\n got %q\nwant %q", tc.sql, got, tc.want)
		}
	}
	if _, ok := AppendShape(nil, "SELECT 'a", maria); ok {
		t.Error("an unterminated string has a shape")
	}
	// A string that may be a name (an alias an outer query refers to) has
	// no shape: swapping two of them changes what the statement reads.
	for _, sql := range []string{
		"SELECT x FROM (SELECT card AS 'y', id AS 'x' FROM customers) d",
		"SELECT x FROM (SELECT card 'y', id 'x' FROM customers) d",
		"SELECT COUNT(*) 'n' FROM t",
		"SELECT 1 'x'",
		"SELECT 'a' 'b'",
	} {
		if _, ok := AppendShape(nil, sql, maria); ok {
			t.Errorf("%q has a shape: its strings may be names", sql)
		}
	}
	// Values keep theirs.
	for _, sql := range []string{
		"SELECT c FROM t WHERE a = 'x' AND b LIKE 'y%' OR c IN ('a', 'b')",
		"SELECT CASE WHEN a THEN 'x' ELSE 'y' END, DATE 'z', INTERVAL '1' DAY, _utf8mb4'q', N'r'",
		"SELECT GROUP_CONCAT(a SEPARATOR ', '), j->'$.a', CONCAT('a', 'b') FROM t",
	} {
		if _, ok := AppendShape(nil, sql, maria); !ok {
			t.Errorf("%q has no shape", sql)
		}
	}
	for _, m := range []Mode{ANSIQuotes, NoBackslashEscapes} {
		if _, ok := AppendShape(nil, "SELECT 1", Dialect{Server: maria.Server, Mode: m}); ok {
			t.Errorf("shape under %s", m)
		}
	}
}

func TestShapeAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	text := "SELECT c FROM sbtest1 WHERE id=4711 AND k IN ('a', 'b') ORDER BY 1"
	if n := testing.AllocsPerRun(100, func() { buf, _ = AppendShape(buf[:0], text, maria) }); n != 0 {
		t.Fatalf("%v allocations, want 0", n)
	}
}

// otherLiterals replaces every literal the shape erased with another of
// the same kind, choosing by seed: two texts with one shape.
func otherLiterals(text string, spans [][3]int, seed uint8) string {
	numbers := []string{"0", "7", "42", "007", "08", "18446744073709551616", "99999999999999999999999999"}
	decimals := []string{"0.0", "3.25", "007.5", "99999999999999999999999999.5"}
	strs := []string{"''", "'x'", `'a\'b'`, "'it''s'", `"q"`, `'\\'`, "'1'", "'ORDER BY 1'"}
	var b strings.Builder
	at := 0
	for i, sp := range spans {
		b.WriteString(text[at:sp[1]])
		k := int(seed) + i
		switch sp[0] {
		case spanNumber:
			b.WriteString(numbers[k%len(numbers)])
		case spanDecimal:
			b.WriteString(decimals[k%len(decimals)])
		default:
			q := text[sp[1]]
			s := strs[k%len(strs)]
			if s[0] != q { // keep the quote character: it is part of the shape
				s = string(q) + "v" + string(q)
			}
			b.WriteString(s)
		}
		at = sp[2]
	}
	b.WriteString(text[at:])
	return b.String()
}

// FuzzShape: two texts with the same shape have the same normalized digest
// (the shape is never coarser than the normalizer), and changing only the
// values of the literals the shape erased keeps the shape. No panics.
func FuzzShape(f *testing.F) {
	for _, s := range []string{
		"SELECT c FROM sbtest1 WHERE id=1", "SELECT a FROM t GROUP BY 1, 2 ORDER BY 3 LIMIT 5, 6",
		"SELECT (-1), -1, +1, 1 - 1, 1.5e3, 1e-5, .5, t.5, 0x10, 012, 1abc FROM t",
		"INSERT INTO t (a, b) VALUES (1, 'x'), (2, \"y\") ON DUPLICATE KEY UPDATE b = 'z'",
		"SELECT @a, @1, @'q', @@x, `by` FROM t ORDER `by` 1", "SELECT count(*), x'41', _latin1'a', N'n' FROM t",
		"UPDATE t SET a = a + 1 WHERE id IN (1, 2, 3) LIMIT 1", "SELECT 'a' 'b', 1 '2'", "SELECT 1.e3, 1.5ea, 9e9e",
		"SELECT * FROM t FORCE INDEX (i) WHERE a = 1 ORDER BY a, 2", "SELECT a FROM t GROUP BY (1, 2)",
		"SELECT a FROM t ORDER BY a DESC, 2", "SELECT a->'$.x' FROM t", "SELECT 1 /*M! , 2 */",
		"SELECT ''B'', X'4g', b'0' FROM t WHERE a = 1", "SELECT '*', 'in\\dEx', (\"*\") FROM t",
	} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, sql string, seed uint8) {
		text, err := Executable(sql, maria)
		if err != nil {
			return
		}
		var spans [][3]int
		sh, ok := shape(nil, text, maria, func(kind byte, i, j int) { spans = append(spans, [3]int{int(kind), i, j}) })
		if !ok {
			return
		}
		other := otherLiterals(text, spans, seed)
		sh2, ok := AppendShape(nil, other, maria)
		if !ok || string(sh2) != string(sh) {
			t.Fatalf("new literals changed the shape:\n%q -> %q\n%q -> %q", text, sh, other, sh2)
		}
		if a, b := normalize(text), normalize(other); a != b {
			t.Fatalf("one shape %q, two digests:\n%q -> %q\n%q -> %q", sh, text, a, other, b)
		}
	})
}

func normalize(s string) (out string) {
	defer func() {
		if recover() != nil {
			out = "panic"
		}
	}()
	return parser.Normalize(s, "ON")
}

func TestExecutableInto(t *testing.T) {
	buf := make([]byte, 0, 256)
	sql := "SELECT c FROM t WHERE id=1 /* tool_call='x' */ /*M! AND 1 */"
	want, err := Executable(sql, maria)
	if err != nil {
		t.Fatal(err)
	}
	got, buf, err := ExecutableInto(buf, sql, maria)
	if err != nil || got != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
	if n := testing.AllocsPerRun(100, func() { _, buf, _ = ExecutableInto(buf[:0], sql, maria) }); n != 0 {
		t.Errorf("%v allocations with room in buf", n)
	}
	if got, _, _ := ExecutableInto(buf[:0], "SELECT 1", maria); got != "SELECT 1" {
		t.Errorf("text without comments: %q", got)
	}
}

package sqltext

import (
	"errors"
	"strings"
	"testing"
)

// FuzzExecutable: never a panic; a result keeps the length, changes bytes
// only to spaces, leaves text without comment characters alone, and is a
// fixed point (no comment survives); a failure is always a refusal.
func FuzzExecutable(f *testing.F) {
	for _, s := range []string{
		"SELECT 1", "SELECT 1 /*!50700 WHERE id=1 */", "DELETE FROM t /*M!999999 WHERE id=1*/",
		"SELECT '\\'; DROP TABLE t; -- '", `SELECT "a\" -- " FROM t`, "SELECT 1 /*!40000 + '*/' */",
		"SELECT 1 /*!99999 a /* b */ c */ + 1", "SELECT 1 # x\n+ 2", "SELECT 1 --\x01 x", "SELECT `a``b` /*T![x] y */",
		"/*!*/", "/*!1*/", "'", "\"", "`", "/*", "--", "#", "*/", "/*!40000 /*", "SELECT 0x5c27",
	} {
		for mode := range uint8(4) {
			f.Add(s, mode, uint8(0))
		}
	}
	f.Add("SELECT 1 /*!080400 x */", uint8(0), uint8(2))
	f.Fuzz(func(t *testing.T, sql string, mode, srv uint8) {
		d := Dialect{Mode: Mode(mode) & (LexMode | IgnoreSpace | PipesAsConcat | HighNotPrecedence), Charset: Charset(srv>>4) & 1}
		switch srv & 3 {
		case 0:
			d.Server = Server{MariaDB, 101119}
		case 1:
			d.Server = Server{MySQL, 80036}
		case 2:
			d.Server = Server{MySQL, 80400}
		case 3:
			d.Server = Server{MariaDB, 0}
		}
		out, err := Executable(sql, d)
		if err != nil {
			var re *RefusedError
			if !errors.As(err, &re) || re.Reason == "" {
				t.Fatalf("error %v is not a refusal", err)
			}
			return
		}
		if len(out) != len(sql) {
			t.Fatalf("length %d -> %d", len(sql), len(out))
		}
		for i := range out {
			// Under ANSI_QUOTES "..." identifiers are rewritten as `...`.
			if out[i] != sql[i] && out[i] != ' ' && d.Mode&ANSIQuotes == 0 {
				t.Fatalf("byte %d changed from %q to %q", i, sql[i], out[i])
			}
		}
		// Only comments change the text, and under ANSI_QUOTES a "..."
		// identifier, written as the `...` one MariaDB reads the same way
		// ("" and `` are both the empty identifier to it).
		plain := !strings.Contains(sql, "/*") && !strings.Contains(sql, "#") && !strings.Contains(sql, "--")
		if d.Mode&ANSIQuotes != 0 && strings.Contains(sql, `"`) {
			plain = false
		}
		if plain && out != sql {
			t.Fatalf("text without comment characters changed: %q -> %q", sql, out)
		}
		into, _, ierr := ExecutableInto(make([]byte, 0, 8), sql, d)
		if ierr != nil || into != out {
			t.Fatalf("ExecutableInto %q, %v; Executable %q", into, ierr, out)
		}
		again, err := Executable(out, d)
		if err != nil || again != out {
			t.Fatalf("not a fixed point: %q -> %q -> %q, %v", sql, out, again, err)
		}
	})
}

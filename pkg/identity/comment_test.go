package identity

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseSQLComment(t *testing.T) {
	tests := []struct {
		name string
		sql  string
		want map[string]string
	}{
		{"trailing", `SELECT * FROM t /*model='claude-x',tool_call='call_1'*/`,
			map[string]string{"model": "claude-x", "tool_call": "call_1"}},
		{"traceparent and url-encoding", `UPDATE t SET a=1 WHERE id=2 /*action='%2Fparam*d',controller='index',traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01'*/`,
			map[string]string{"action": "/param*d", "controller": "index", "traceparent": "00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01"}},
		{"semicolon and spaces after", "SELECT 1 /*model='m'*/ ;\n", map[string]string{"model": "m"}},
		{"spaces inside", `SELECT 1 /* model = 'm' , tool_call='t' */`, map[string]string{"model": "m", "tool_call": "t"}},
		{"escaped quote", `SELECT 1 /*model='it\'s'*/`, map[string]string{"model": "it's"}},
		{"encoded key", `SELECT 1 /*route%20name='a%20b'*/`, map[string]string{"route name": "a b"}},
		{"leading", `/*model='m'*/ SELECT 1`, map[string]string{"model": "m"}},
		{"trailing wins", `/*model='lead'*/ SELECT 1 /*model='trail'*/`, map[string]string{"model": "trail"}},
		{"bad escape kept raw", `SELECT 1 /*model='100%'*/`, map[string]string{"model": "100%"}},
		{"stops at syntax error", `SELECT 1 /*model='m',broken,x='y'*/`, map[string]string{"model": "m"}},
		{"no comment", `SELECT 1`, nil},
		{"inside a string", `SELECT '/*model=''x''*/' FROM t`, nil},
		{"executable comment", `SELECT 1 /*!50001 model='x'*/`, nil},
		{"optimizer hint", `SELECT /*+ model='x' */ 1`, nil},
		{"unquoted value", `SELECT 1 /*model=m*/`, nil},
		{"unterminated value", `SELECT 1 /*model='m*/`, nil},
		{"empty comment", `SELECT 1 /**/`, nil},
		{"only end marker", `*/`, nil},
		{"empty", ``, nil},
		{"dash comment is not sqlcommenter", "SELECT 1 -- model='x'", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseSQLComment(tt.sql)
			if !maps.Equal(got, tt.want) {
				t.Fatalf("ParseSQLComment(%q) = %v, want %v", tt.sql, got, tt.want)
			}
		})
	}
}

// formatSQLComment is a sqlcommenter encoder: sorted keys, keys and values
// percent-encoded (all but unreserved characters, so no key can start a
// MySQL /*! or /*+ comment), values quoted.
func formatSQLComment(kv map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		parts = append(parts, escapeAll(k)+"='"+escapeAll(kv[k])+"'")
	}
	return "/*" + strings.Join(parts, ",") + "*/"
}

func escapeAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func FuzzParseSQLComment(f *testing.F) {
	for _, s := range []string{
		`SELECT 1 /*model='m',traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01'*/`,
		`/*a='b'*/`, `/**/`, `/*`, `*/`, `/*a=*/`, `/*a='\`, `SELECT 1 /* a = 'b' , c = 'd' */;`,
	} {
		f.Add(s, "model", "value")
	}
	f.Fuzz(func(t *testing.T, sql, k, v string) {
		got := ParseSQLComment(sql)
		if len(got) > maxCommentPairs {
			t.Fatalf("%d pairs", len(got))
		}
		// Round trip: whatever the encoder writes, the parser reads back.
		if k == "" || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return
		}
		want := map[string]string{k: v}
		c := formatSQLComment(want)
		if len(c) > maxCommentLen {
			return
		}
		if got := ParseSQLComment("SELECT 1 " + c); !maps.Equal(got, want) {
			t.Fatalf("round trip of %q via %q: %v", want, c, got)
		}
	})
}

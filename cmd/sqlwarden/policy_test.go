package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyTestExitCodes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(file, []byte(`
default: allow
rules:
  - name: dba-anything
    match: '"dba" in identity.groups'
    action: allow
  - name: no-unbounded-writes
    match: statement.kind in ["DELETE", "UPDATE"] && !statement.has_where
    action: deny
    message: UPDATE and DELETE need a WHERE clause
  - name: ddl-needs-a-human
    match: statement.is_ddl
    action: approve
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    policyTestOpts
		sql  string
		code int
		want []string
	}{
		{"allow", policyTestOpts{file: file, db: "shop"}, "SELECT * FROM users WHERE id = 1", exitAllow, []string{"kind:            SELECT", "tables read:     shop.users", "rule:            default", "action:          allow"}},
		{"deny", policyTestOpts{file: file}, "/* hi */ DELETE FROM users", exitDeny, []string{"rule:            no-unbounded-writes", "action:          deny", "UPDATE and DELETE need a WHERE clause"}},
		{"approve", policyTestOpts{file: file}, "ALTER TABLE t ADD c INT", exitApprove, []string{"action:          approve"}},
		{"identity groups", policyTestOpts{file: file, identity: "ops", groups: []string{"dba"}}, "DELETE FROM users", exitAllow, []string{"rule:            dba-anything"}},
		{"built-in", policyTestOpts{}, "TRUNCATE t", exitDeny, []string{"rule:            no-drop-or-truncate"}},
		{"json", policyTestOpts{json: true}, "DROP TABLE t", exitDeny, []string{`"kind": "DROP_TABLE"`, `"rule": "no-drop-or-truncate"`}},
		{"unparsed", policyTestOpts{}, "DELET FROM t", exitDeny, []string{"parse error:", "rule:            unparsed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			code, err := runPolicyTest(&out, tc.o, tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s", code, tc.code, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
	if code, err := runPolicyTest(&bytes.Buffer{}, policyTestOpts{file: filepath.Join(t.TempDir(), "missing.yaml")}, "SELECT 1"); code != exitInvalid || err == nil {
		t.Errorf("missing file: exit %d, err %v", code, err)
	}
}

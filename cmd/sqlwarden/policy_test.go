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
limits:
  - name: agents
    identities: ["agent-*"]
    max_rows: 1000
    max_result_bytes: 4MiB
    on_exceed: truncate
    statement_timeout: 5s
  - name: everyone
    max_rows: 5000
    max_connections: 16
  - name: frozen
    identities: ["reporter"]
    read_only: true
  - name: blast
    identities: ["writer"]
    max_affected_rows: 100
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
		// The rest of the built-in policy, as policy test shows it.
		{"built-in accounts", policyTestOpts{}, "CREATE USER x IDENTIFIED BY 'p'", exitDeny, []string{"account mgmt:    true", "rule:            no-account-management"}},
		{"built-in grant", policyTestOpts{}, "GRANT ALL ON *.* TO x", exitDeny, []string{"rule:            no-account-management"}},
		{"built-in set global", policyTestOpts{}, "SET GLOBAL max_connections = 10", exitDeny, []string{"sets global:     true", "rule:            no-global-settings"}},
		{"built-in shutdown", policyTestOpts{}, "SHUTDOWN", exitDeny, []string{"rule:            no-server-admin"}},
		{"built-in file i/o", policyTestOpts{}, "SELECT * FROM t INTO OUTFILE '/tmp/x'", exitDeny, []string{"rule:            no-file-io"}},
		{"built-in always-true where", policyTestOpts{}, "DELETE FROM t WHERE id IS NOT NULL", exitDeny, []string{"rule:            no-unbounded-writes"}},
		{"built-in routines", policyTestOpts{}, "CALL p_wipe()", exitApprove, []string{"routines:        p_wipe", "rule:            routines-need-a-human", "approval mode:   policy.approvals.mode"}},
		{"json", policyTestOpts{json: true}, "DROP TABLE t", exitDeny, []string{`"kind": "DROP_TABLE"`, `"rule": "no-drop-or-truncate"`}},
		{"unparsed", policyTestOpts{}, "DELET FROM t", exitDeny, []string{"parse error:", "rule:            unparsed"}},
		{"limits only", policyTestOpts{file: file, identity: "agent-7"}, "", exitAllow, []string{
			`limits:          for identity "agent-7"`,
			"max_rows:                  1000, on_exceed truncate  [agents]",
			"max_result_bytes:          4194304 (4MiB), on_exceed truncate  [agents]",
			"statement_timeout:         5s  [agents]",
			"max_connections:           16  [everyone]"}},
		{"limits with sql", policyTestOpts{file: file, identity: "human"}, "SELECT 1", exitAllow, []string{"rule:            default", "max_rows:                  5000, on_exceed error  [everyone]"}},
		{"no limits", policyTestOpts{identity: "x"}, "", exitAllow, []string{`limits:          none for identity "x"`}},
		{"read_only admits", policyTestOpts{file: file, identity: "reporter"}, "SELECT count(*) FROM t", exitAllow, []string{"read_only:       admitted", "[frozen]"}},
		{"read_only refuses", policyTestOpts{file: file, identity: "reporter"}, "SELECT nextval(s)", exitDeny, []string{"read_only:       refused: function NEXTVAL advances a sequence  [frozen]"}},
		{"max_affected_rows bounds", policyTestOpts{file: file, identity: "writer"}, "UPDATE t SET a = 1 WHERE id > 5", exitAllow, []string{"max_affected_rows: bounded", "past 100 rows", "[blast]"}},
		{"max_affected_rows refuses", policyTestOpts{file: file, identity: "writer"}, "CALL p()", exitDeny, []string{"max_affected_rows: refused: CALL"}},
		{"limit verdicts json", policyTestOpts{file: file, identity: "reporter", json: true}, "CALL p()", exitDeny, []string{`"limit_verdicts"`, `"refused": true`}},
		{"limits json", policyTestOpts{file: file, identity: "agent-7", json: true}, "", exitAllow, []string{`"kind": "statement_timeout"`, `"value": "5s"`, `"limit": "agents"`, `"on_exceed": "truncate"`}},
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

package policy

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExplainOutcomes: what `sqlwarden policy test` prints and exits with.
func TestExplainOutcomes(t *testing.T) {
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
		o    ExplainOptions
		sql  string
		code Outcome
		want []string
	}{
		{"allow", ExplainOptions{File: file, DB: "shop"}, "SELECT * FROM users WHERE id = 1", OutcomeAllow, []string{"kind:            SELECT", "tables read:     shop.users", "rule:            default", "action:          allow"}},
		{"deny", ExplainOptions{File: file}, "/* hi */ DELETE FROM users", OutcomeDeny, []string{"rule:            no-unbounded-writes", "action:          deny", "UPDATE and DELETE need a WHERE clause"}},
		{"approve", ExplainOptions{File: file}, "ALTER TABLE t ADD c INT", OutcomeApprove, []string{"action:          approve"}},
		{"identity groups", ExplainOptions{File: file, Identity: "ops", Groups: []string{"dba"}}, "DELETE FROM users", OutcomeAllow, []string{"rule:            dba-anything"}},
		{"built-in", ExplainOptions{}, "TRUNCATE t", OutcomeDeny, []string{"rule:            no-drop-or-truncate"}},
		// The rest of the built-in policy, as policy test shows it.
		{"built-in accounts", ExplainOptions{}, "CREATE USER x", OutcomeDeny, []string{"account mgmt:    true", "rule:            no-account-management"}},
		{"built-in passwords", ExplainOptions{}, "CREATE USER x IDENTIFIED BY 'p'", OutcomeDeny, []string{"sets password:   true (always refused)", "rule:            password-changes"}},
		{"built-in grant", ExplainOptions{}, "GRANT ALL ON *.* TO x", OutcomeDeny, []string{"rule:            no-account-management"}},
		{"built-in set global", ExplainOptions{}, "SET GLOBAL max_connections = 10", OutcomeDeny, []string{"sets global:     true", "rule:            no-global-settings"}},
		{"built-in shutdown", ExplainOptions{}, "SHUTDOWN", OutcomeDeny, []string{"rule:            no-server-admin"}},
		{"built-in file i/o", ExplainOptions{}, "SELECT * FROM t INTO OUTFILE '/tmp/x'", OutcomeDeny, []string{"rule:            no-file-io"}},
		{"built-in always-true where", ExplainOptions{}, "DELETE FROM t WHERE id IS NOT NULL", OutcomeDeny, []string{"rule:            no-unbounded-writes"}},
		{"built-in routines", ExplainOptions{}, "CALL p_wipe()", OutcomeApprove, []string{"routines:        p_wipe", "rule:            routines-need-a-human", "approval mode:   policy.approvals.mode"}},
		{"json", ExplainOptions{JSON: true}, "DROP TABLE t", OutcomeDeny, []string{`"kind": "DROP_TABLE"`, `"rule": "no-drop-or-truncate"`}},
		{"unparsed", ExplainOptions{}, "DELET FROM t", OutcomeDeny, []string{"parse error:", "rule:            unparsed"}},
		{"limits only", ExplainOptions{File: file, Identity: "agent-7"}, "", OutcomeAllow, []string{
			`limits:          for identity "agent-7"`,
			"max_rows:                  1000, on_exceed truncate  [agents]",
			"max_result_bytes:          4194304 (4MiB), on_exceed truncate  [agents]",
			"statement_timeout:         5s  [agents]",
			"max_connections:           16  [everyone]"}},
		{"limits with sql", ExplainOptions{File: file, Identity: "human"}, "SELECT 1", OutcomeAllow, []string{"rule:            default", "max_rows:                  5000, on_exceed error  [everyone]"}},
		{"no limits", ExplainOptions{Identity: "x"}, "", OutcomeAllow, []string{`limits:          none for identity "x"`}},
		{"read_only admits", ExplainOptions{File: file, Identity: "reporter"}, "SELECT count(*) FROM t", OutcomeAllow, []string{"read_only:       admitted", "[frozen]"}},
		{"read_only refuses", ExplainOptions{File: file, Identity: "reporter"}, "SELECT nextval(s)", OutcomeDeny, []string{"read_only:       refused: function NEXTVAL advances a sequence  [frozen]"}},
		{"max_affected_rows bounds", ExplainOptions{File: file, Identity: "writer"}, "UPDATE t SET a = 1 WHERE id > 5", OutcomeAllow, []string{"max_affected_rows: bounded", "past 100 rows", "[blast]"}},
		{"max_affected_rows refuses", ExplainOptions{File: file, Identity: "writer"}, "CALL p()", OutcomeDeny, []string{"max_affected_rows: refused: CALL"}},
		{"limit verdicts json", ExplainOptions{File: file, Identity: "reporter", JSON: true}, "CALL p()", OutcomeDeny, []string{`"limit_verdicts"`, `"refused": true`}},
		{"limits json", ExplainOptions{File: file, Identity: "agent-7", JSON: true}, "", OutcomeAllow, []string{`"kind": "statement_timeout"`, `"value": "5s"`, `"limit": "agents"`, `"on_exceed": "truncate"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			code, err := Explain(&out, tc.o, tc.sql)
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
	if code, err := Explain(&bytes.Buffer{}, ExplainOptions{File: filepath.Join(t.TempDir(), "missing.yaml")}, "SELECT 1"); code != OutcomeInvalid || err == nil {
		t.Errorf("missing file: exit %d, err %v", code, err)
	}
}

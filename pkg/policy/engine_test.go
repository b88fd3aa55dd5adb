package policy

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
)

func TestDefaultPolicy(t *testing.T) {
	e, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		sql, rule string
		action    record.Action
	}{
		{"SELECT * FROM users WHERE id = 1", RuleDefault, record.ActionAllow},
		{"DROP TABLE users", "no-drop-or-truncate", record.ActionDeny},
		{"TRUNCATE users", "no-drop-or-truncate", record.ActionDeny},
		{"DELETE FROM users", "no-unbounded-writes", record.ActionDeny},
		{"update users set a = 1", "no-unbounded-writes", record.ActionDeny},
		{"DELETE FROM users WHERE 1", "no-unbounded-writes", record.ActionDeny},
		{"SELECT 1; /* x */ delete FROM users", "no-unbounded-writes", record.ActionDeny},
		{"DELETE FROM a WHERE id = 1; INSERT INTO b VALUES (1)", RuleDefault, record.ActionAllow},
		{"DELETE FROM users WHERE id = 1", RuleDefault, record.ActionAllow},
		{"DELETE FROM users WHERE id = ?", RuleDefault, record.ActionAllow},
		{"ALTER TABLE users ADD COLUMN x INT", "ddl-needs-a-human", record.ActionApprove},
		{"CREATE TABLE t (id INT)", "ddl-needs-a-human", record.ActionApprove},
		{"PREPARE s FROM 'DELETE FROM users'", "no-unbounded-writes", record.ActionDeny},
		{"PREPARE s FROM @sql", "dynamic-sql", record.ActionDeny},
		{"DELET FROM users", "unparsed", record.ActionDeny},
		// Routines: a body nobody judged runs at CALL.
		{"CREATE PROCEDURE p() DELETE FROM users", "routines-need-a-human", record.ActionApprove},
		{"CALL p()", "routines-need-a-human", record.ActionApprove},
		{"call other.P(1, 'x')", "routines-need-a-human", record.ActionApprove},
		{"DROP PROCEDURE IF EXISTS p", "routines-need-a-human", record.ActionApprove},
		{"SELECT other.f(1)", "routines-need-a-human", record.ActionApprove},
		{"PREPARE s FROM 'CALL p()'", "routines-need-a-human", record.ActionApprove},
		{"SELECT 1; CALL p()", "routines-need-a-human", record.ActionApprove},
		// The grammar reads none of these: unparsed, denied.
		{"CREATE FUNCTION f() RETURNS INT RETURN 1", "unparsed", record.ActionDeny},
		{"CREATE TRIGGER tr BEFORE INSERT ON users FOR EACH ROW SET NEW.a = 1", "unparsed", record.ActionDeny},
		{"CREATE EVENT ev ON SCHEDULE EVERY 1 HOUR DO DELETE FROM users", "unparsed", record.ActionDeny},
		{"ALTER PROCEDURE p COMMENT 'x'", "unparsed", record.ActionDeny},
		{"DROP FUNCTION f", "unparsed", record.ActionDeny},
		{"DROP TRIGGER tr", "unparsed", record.ActionDeny},
		{"DROP EVENT ev", "unparsed", record.ActionDeny},
		{"CREATE OR REPLACE PROCEDURE p() SELECT 1", "unparsed", record.ActionDeny},
		// Accounts and privileges.
		// Overwrites from a query: bounded by the query's WHERE.
		{"REPLACE INTO t SELECT id, 'gone' FROM t", "no-unbounded-writes", record.ActionDeny},
		{"INSERT INTO t SELECT id, v FROM t ON DUPLICATE KEY UPDATE v = 'pwned'", "no-unbounded-writes", record.ActionDeny},
		{"INSERT INTO t SELECT id, v FROM u WHERE id = 3 ON DUPLICATE KEY UPDATE v = 'x'", "default", record.ActionAllow},
		{"REPLACE INTO t VALUES (1, 'x')", "default", record.ActionAllow},
		{"INSERT INTO t SELECT * FROM u", "default", record.ActionAllow},
		{"CREATE USER u IDENTIFIED BY 'x'", RulePasswords, record.ActionDeny},
		{"ALTER USER warden IDENTIFIED BY 'y'", RulePasswords, record.ActionDeny},
		{"DROP USER u", "no-account-management", record.ActionDeny},
		{"RENAME USER u TO v", "no-account-management", record.ActionDeny},
		{"GRANT ALL ON *.* TO u", "no-account-management", record.ActionDeny},
		{"REVOKE ALL ON *.* FROM u", "no-account-management", record.ActionDeny},
		{"SET PASSWORD = PASSWORD('x')", RulePasswords, record.ActionDeny},
		{"SET PASSWORD FOR u = 'x'", RulePasswords, record.ActionDeny},
		{"CREATE ROLE r", "no-account-management", record.ActionDeny},
		{"DROP ROLE r", "no-account-management", record.ActionDeny},
		{"GRANT r TO u", "no-account-management", record.ActionDeny},
		{"SET ROLE r", "no-account-management", record.ActionDeny},
		{"SET DEFAULT ROLE r FOR u", "unparsed", record.ActionDeny},
		{"SELECT 1; GRANT ALL ON *.* TO u", "no-account-management", record.ActionDeny},
		{"PREPARE s FROM 'DROP USER u'", "no-account-management", record.ActionDeny},
		// Server-wide settings and administration.
		{"SET GLOBAL max_connections = 10", "no-global-settings", record.ActionDeny},
		{"set @@global.general_log = 0", "no-global-settings", record.ActionDeny},
		{"SET @@GLOBAL.read_only = 1", "no-global-settings", record.ActionDeny},
		{"SET sql_mode = '', GLOBAL general_log = 0", "no-global-settings", record.ActionDeny},
		{"SET PERSIST max_connections = 10", "unparsed", record.ActionDeny},
		{"SET SESSION sql_mode = ''", RuleDefault, record.ActionAllow},
		{"SET @@session.sql_mode = ''", RuleDefault, record.ActionAllow},
		{"SET @a = 1", RuleDefault, record.ActionAllow},
		{"SHUTDOWN", "no-server-admin", record.ActionDeny},
		{"RESTART", "no-server-admin", record.ActionDeny},
		{"BINLOG 'AAAA'", "no-server-admin", record.ActionDeny},
		// The server's files.
		{"SELECT * FROM users INTO OUTFILE '/tmp/x'", "no-file-io", record.ActionDeny},
		{"SELECT * FROM users LIMIT 1 INTO DUMPFILE '/tmp/x'", "unparsed", record.ActionDeny},
		{"SELECT LOAD_FILE('/etc/passwd')", "no-file-io", record.ActionDeny},
		{"INSERT INTO users (a) VALUES (load_file('/etc/passwd'))", "no-file-io", record.ActionDeny},
		{"LOAD DATA INFILE '/etc/passwd' INTO TABLE users", "no-file-io", record.ActionDeny},
		{"LOAD DATA LOCAL INFILE 'x.csv' INTO TABLE users", RuleDefault, record.ActionAllow},
		{"PREPARE s FROM 'SELECT LOAD_FILE(''/etc/passwd'')'", "no-file-io", record.ActionDeny},
		// WHEREs that only look like one.
		{"DELETE FROM users WHERE id = id", "no-unbounded-writes", record.ActionDeny},
		{"DELETE FROM users WHERE id IS NOT NULL", "no-unbounded-writes", record.ActionDeny},
		{"DELETE FROM users WHERE 1 OR id = 1", "no-unbounded-writes", record.ActionDeny},
		{"UPDATE users SET a = 1 WHERE id = 1 OR TRUE", "no-unbounded-writes", record.ActionDeny},
		{"UPDATE users SET a = 1 WHERE users.id <=> id", "no-unbounded-writes", record.ActionDeny},
		{"DELETE FROM users WHERE NOT (user_id IS NULL)", "no-unbounded-writes", record.ActionDeny},
		{"DELETE FROM users WHERE deleted_at IS NOT NULL", RuleDefault, record.ActionAllow},
		{"DELETE FROM users WHERE id = 1 OR id = 2", RuleDefault, record.ActionAllow},
	}
	for _, tt := range tests {
		t.Run(tt.sql, func(t *testing.T) {
			d := decide(e, input{Statement: statement.Classify(tt.sql, "shop")})
			if d.Rule != tt.rule || d.Action != tt.action {
				t.Errorf("Decide = %+v, want rule %q action %q", d, tt.rule, tt.action)
			}
		})
	}
}

func TestRulesOverIdentityStatementSession(t *testing.T) {
	policy := `
default: deny
rules:
  - name: admins-anything
    match: '"dba" in identity.groups'
    action: allow
  - name: batch-pod
    match: identity.pod.labels["app"] == "batch" && statement.kind == "INSERT"
    action: allow
  - name: claims
    match: has(identity.claims.team) && identity.claims.team == "data" && statement.kind == "SELECT"
    action: allow
  - name: no-sleep
    match: statement.functions.exists(f, f in ["SLEEP", "BENCHMARK", "LOAD_FILE"])
    action: deny
    message: time and file functions are off limits
  - name: no-outfile
    match: statement.into_outfile
    action: deny
  - name: agent-reads-shop
    identities: ["agent-*"]
    match: statement.kind == "SELECT" && statement.tables.all(t, t.startsWith("shop."))
    action: allow
  - name: prepared-only-from-app
    match: session.command == "COM_STMT_PREPARE" && session.user == "app" && session.db == "shop"
    action: allow
  - name: big-multi
    match: statement.count > 3
    action: approve
`
	e, err := New(Options{Data: []byte(policy)})
	if err != nil {
		t.Fatal(err)
	}
	agent := &record.Identity{Name: "agent-7", Source: "oidc", Groups: []string{"agents"}}
	tests := []struct {
		name   string
		in     input
		rule   string
		action record.Action
	}{
		{"group", input{Identity: &record.Identity{Name: "x", Groups: []string{"dba"}}, Statement: statement.Classify("DROP TABLE t", "")}, "admins-anything", record.ActionAllow},
		{"pod label", input{Identity: &record.Identity{Name: "b", Pod: &record.Pod{Labels: map[string]string{"app": "batch"}}}, Statement: statement.Classify("INSERT INTO t VALUES (1)", "")}, "batch-pod", record.ActionAllow},
		{"claim", input{Identity: &record.Identity{Name: "c", Claims: map[string]any{"team": "data"}}, Statement: statement.Classify("SELECT 1", "")}, "claims", record.ActionAllow},
		{"no claim", input{Identity: &record.Identity{Name: "c"}, Statement: statement.Classify("SELECT 1", "")}, RuleDefault, record.ActionDeny},
		{"sleep", input{Identity: agent, Statement: statement.Classify("SELECT SLEEP(10) FROM shop.t", "")}, "no-sleep", record.ActionDeny},
		{"outfile", input{Identity: agent, Statement: statement.Classify("SELECT * FROM shop.t INTO OUTFILE '/tmp/x'", "")}, "no-outfile", record.ActionDeny},
		{"identity pattern", input{Identity: agent, Statement: statement.Classify("SELECT * FROM t", "shop")}, "agent-reads-shop", record.ActionAllow},
		{"identity pattern other db", input{Identity: agent, Statement: statement.Classify("SELECT * FROM t", "hr")}, RuleDefault, record.ActionDeny},
		{"identity pattern no match", input{Identity: &record.Identity{Name: "other"}, Statement: statement.Classify("SELECT * FROM t", "shop")}, RuleDefault, record.ActionDeny},
		{"nil identity", input{Statement: statement.Classify("SELECT * FROM t", "shop")}, RuleDefault, record.ActionDeny},
		{"session", input{Statement: statement.Classify("UPDATE t SET a = ? WHERE id = ?", "shop"), Session: statement.Session{Command: "COM_STMT_PREPARE", User: "app", DB: "shop"}}, "prepared-only-from-app", record.ActionAllow},
		{"count", input{Statement: statement.Classify("SELECT 1; SELECT 2; SELECT 3; SELECT 4", "")}, "big-multi", record.ActionApprove},
		{"nil statement", input{}, RuleDefault, record.ActionDeny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decide(e, tt.in)
			if d.Rule != tt.rule || d.Action != tt.action {
				t.Errorf("Decide = %+v, want rule %q action %q", d, tt.rule, tt.action)
			}
		})
	}
}

func TestEvaluationErrorFailsClosed(t *testing.T) {
	e, err := New(Options{Data: []byte(`
rules:
  - name: skip-me
    match: identity.claims.missing == "x"
    on_error: skip
    action: allow
  - name: strict
    match: identity.claims.tier == "gold"
    action: allow
`)})
	if err != nil {
		t.Fatal(err)
	}
	d := decide(e, input{Identity: &record.Identity{Name: "a"}, Statement: statement.Classify("SELECT 1", "")})
	if d.Rule != "strict" || d.Action != record.ActionDeny || !strings.Contains(d.Message, "could not be evaluated") {
		t.Errorf("Decide = %+v, want a deny by strict", d)
	}
	if got := d.ClientMessage(); !strings.HasPrefix(got, "sqlwarden: blocked by rule strict: ") {
		t.Errorf("ClientMessage = %q", got)
	}
}

func TestInvalidPolicies(t *testing.T) {
	bad := map[string]string{
		"syntax":          "rules: [",
		"unknown key":     "rulez: []",
		"bad action":      "rules:\n  - name: a\n    action: maybe\n",
		"bad default":     "default: perhaps\n",
		"no name":         "rules:\n  - action: deny\n",
		"duplicate":       "rules:\n  - {name: a, action: deny}\n  - {name: a, action: deny}\n",
		"cel syntax":      "rules:\n  - {name: a, action: deny, match: 'statement.kind =='}\n",
		"cel unknown var": "rules:\n  - {name: a, action: deny, match: 'stmt.kind == \"X\"'}\n",
		"cel typo field":  "rules:\n  - {name: a, action: deny, match: 'statement.has_wher'}\n",
		"cel not bool":    "rules:\n  - {name: a, action: deny, match: 'statement.kind'}\n",
		"bad on_error":    "rules:\n  - {name: a, action: deny, on_error: maybe}\n",
		"bad glob":        "rules:\n  - {name: a, action: deny, identities: ['[']}\n",
		"mask no strat":   "masking:\n  - {name: m, columns: [a.b.c]}\n",
		"mask no cols":    "masking:\n  - {name: m, strategy: redact}\n",
	}
	for name, data := range bad {
		t.Run(name, func(t *testing.T) {
			if err := Check([]byte(data)); err == nil {
				t.Errorf("Check accepted %q", data)
			}
		})
	}
	if err := Check([]byte(DefaultPolicy)); err != nil {
		t.Errorf("default policy: %v", err)
	}
	if err := Check(nil); err != nil {
		t.Errorf("empty policy: %v", err)
	}
}

func TestMaskingSection(t *testing.T) {
	e, err := New(Options{Data: []byte(`
masking:
  - name: cards
    columns: ["shop.customers.card_number"]
    strategy: partial
    keep: 4
    identities: ["*"]
    fill: "#"
`)})
	if err != nil {
		t.Fatal(err)
	}
	m := e.Masking()
	if len(m) != 1 || m[0].Name != "cards" || m[0].Strategy != "partial" || m[0].Keep != 4 || m[0].Columns[0] != "shop.customers.card_number" || m[0].Extra["fill"] != "#" {
		t.Errorf("Masking = %+v", m)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, "default: allow\n")
	var logs bytes.Buffer
	e, err := New(Options{Path: path, Interval: 20 * time.Millisecond, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var notified atomic.Uint64
	e.OnReload(func(v uint64) { notified.Store(v) })
	drop := input{Statement: statement.Classify("DROP TABLE t", "")}
	if d := decide(e, drop); d.Action != record.ActionAllow {
		t.Fatalf("before reload: %+v", d)
	}

	// Valid change via Reload (SIGHUP).
	writeFile(t, path, "rules:\n  - {name: no-drop, match: 'statement.kind == \"DROP_TABLE\"', action: deny}\n")
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if d := decide(e, drop); d.Rule != "no-drop" || d.Action != record.ActionDeny {
		t.Fatalf("after reload: %+v", d)
	}
	if e.Version() != 2 || notified.Load() != 2 {
		t.Errorf("version %d, notified %d, want 2", e.Version(), notified.Load())
	}

	// Invalid change keeps the old policy.
	writeFile(t, path, "rules:\n  - {name: broken, match: 'statement.kind ==', action: deny}\n")
	if err := e.Reload(); err == nil {
		t.Fatal("Reload accepted an invalid policy")
	}
	if d := decide(e, drop); d.Rule != "no-drop" {
		t.Fatalf("invalid reload replaced the policy: %+v", d)
	}
	if !strings.Contains(logs.String(), "policy reload failed") {
		t.Errorf("invalid reload not logged: %s", logs.String())
	}

	// Watch picks up a valid change on its own.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.Watch(ctx)
	writeFile(t, path, "rules:\n  - {name: approve-drop, match: 'statement.kind == \"DROP_TABLE\"', action: approve}\n")
	testutil.Eventually(t, 5*time.Second, func() error {
		if d := decide(e, drop); d.Rule != "approve-drop" {
			return fmt.Errorf("watch did not reload; decision %+v", d)
		}
		return nil
	})
	if got := e.Version(); got != 3 {
		t.Errorf("version = %d, want 3", got)
	}
	// A removed file keeps the policy too.
	os.Remove(path)
	time.Sleep(100 * time.Millisecond)
	if d := decide(e, drop); d.Rule != "approve-drop" {
		t.Errorf("removed file changed the policy: %+v", d)
	}
}

func BenchmarkClassifyDecide(b *testing.B) {
	e, err := Load("")
	if err != nil {
		b.Fatal(err)
	}
	id := &record.Identity{Name: "agent-1", Source: "static"}
	b.ReportAllocs()
	for b.Loop() {
		st := statement.Classify("SELECT c FROM sbtest1 WHERE id = 4242", "sbtest")
		d := decide(e, input{Identity: id, Statement: st, Session: statement.Session{ID: "s1", DB: "sbtest", Command: "COM_QUERY"}})
		if d.Action != record.ActionAllow {
			b.Fatal(d)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	e, err := Load("")
	if err != nil {
		b.Fatal(err)
	}
	st := statement.Classify("SELECT c FROM sbtest1 WHERE id = 4242", "sbtest")
	id := &record.Identity{Name: "agent-1", Source: "static"}
	b.ReportAllocs()
	for b.Loop() {
		decide(e, input{Identity: id, Statement: st})
	}
}

// TestDefaultPolicyDocumented: the README lists the built-in policy in full.
func TestDefaultPolicyDocumented(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```yaml\n"+DefaultPolicy+"```\n") {
		t.Error("README.md does not list the built-in policy (DefaultPolicy) verbatim in a yaml block")
	}
}

// TestCredentialTablesRefusedWhateverThePolicy: a policy that allows
// everything, unparsed statements included, still refuses every statement
// naming a table that holds credentials.
func TestCredentialTablesRefusedWhateverThePolicy(t *testing.T) {
	e, err := New(Options{Data: []byte("default: allow\nrules:\n  - {name: everything, action: allow}\n")})
	if err != nil {
		t.Fatal(err)
	}
	refused := []struct{ sql, db string }{
		{"SELECT User, authentication_string FROM mysql.user", ""},
		{"select * from MYSQL.USER", ""},
		{"SELECT * FROM `mysql`.`global_priv`", "shop"},
		{"SELECT Password FROM mysql.servers", ""},
		{"SELECT * FROM user", "mysql"},
		{"SELECT 1 FROM dual WHERE EXISTS (SELECT 1 FROM mysql.user WHERE User = 'warden')", "shop"},
		{"SELECT (SELECT Priv FROM mysql.global_priv LIMIT 1) AS p", ""},
		{"SELECT a FROM t UNION SELECT authentication_string FROM mysql.user", "shop"},
		{"WITH c AS (SELECT * FROM mysql.user) SELECT * FROM c", ""},
		{"TABLE mysql.user", ""},
		{"CREATE VIEW v AS SELECT * FROM mysql.user", "shop"},
		{"CREATE TABLE x AS SELECT * FROM mysql.global_priv", "shop"},
		{"INSERT INTO t SELECT Password FROM mysql.servers", "shop"},
		{"UPDATE mysql.global_priv SET Priv = '{}' WHERE User = 'x'", ""},
		{"SHOW COLUMNS FROM `user`", "mysql"},
		{"PREPARE s FROM 'SELECT * FROM mysql.user'", ""},
		{"SELECT 1; SELECT * FROM mysql.password_reuse_check_history", ""},
		{"SELECT * FROM mysql.password_history", ""},
		{"SELECT * FROM mysql.slave_master_info", ""},
		// Unreadable text: a word-level check.
		{"HANDLER mysql.user OPEN", ""},
		{"HANDLER `mysql` . `global_priv` OPEN AS h", "shop"},
		{"HANDLER user OPEN", "mysql"},
		{"PREPARE s FROM 'HANDLER mysql.user OPEN'", ""},
	}
	for _, tt := range refused {
		d := decide(e, input{Statement: statement.Classify(tt.sql, tt.db)})
		if d.Rule != RuleCredentials || d.Action != record.ActionDeny {
			t.Errorf("%q (db %q): %+v, want %s deny", tt.sql, tt.db, d, RuleCredentials)
		}
	}
	allowed := []struct{ sql, db string }{
		{"SELECT * FROM shop.user", ""},
		{"SELECT * FROM user", "shop"},
		{"SELECT user FROM mysql.db", ""},
		{"SELECT CURRENT_USER(), USER()", "mysql"},
		{"SHOW GRANTS", ""},
		{"SELECT * FROM mysql.user_stats", ""},
	}
	for _, tt := range allowed {
		if d := decide(e, input{Statement: statement.Classify(tt.sql, tt.db)}); d.Action != record.ActionAllow {
			t.Errorf("%q (db %q): %+v, want allow", tt.sql, tt.db, d)
		}
	}
}

// input is what one decision looks at.
type input struct {
	Identity  *record.Identity
	Statement *statement.Statement
	Session   statement.Session
}

func decide(e *Engine, in input) statement.Verdict {
	return e.Decide(in.Identity, in.Statement, in.Session)
}

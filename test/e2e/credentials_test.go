package e2e

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// queryStrings runs q and returns every value of every row as text.
func queryStrings(ctx context.Context, q func(context.Context, string, ...any) (*sql.Rows, error), query string, args ...any) ([]string, error) {
	rs, err := q(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	var out []string
	for rs.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			return nil, err
		}
		for _, v := range vals {
			out = append(out, v.String)
		}
	}
	return out, rs.Err()
}

func isCredentialRefusal(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && me.Number == 1142 && strings.HasPrefix(me.Message, "sqlwarden: blocked by rule credential-tables:")
}

// TestCredentialsStayWithTheDaemon: the backend account may read every
// password hash on the server (it has ALL on *.*), and directly it does.
// Through sqlwarden, under a policy that allows everything, no hash or
// authentication string reaches the client: statements naming credential
// tables are refused by any route, SHOW GRANTS and SHOW CREATE USER rows are
// scrubbed in text and binary protocol, and the journal holds none either.
func TestCredentialsStayWithTheDaemon(t *testing.T) {
	pf := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(pf, []byte("default: allow\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := harness.Start(t, harness.Options{Extra: "policy:\n  file: " + pf + "\n"})
	ctx := context.Background()
	root := d.Maria.Open(t, "")
	root.SetMaxOpenConns(1)
	if _, err := root.Exec("INSTALL SONAME 'auth_ed25519'"); err != nil && !strings.Contains(err.Error(), "already installed") {
		t.Fatalf("install ed25519: %v", err)
	}
	for _, q := range []string{
		"DROP USER IF EXISTS cs_multi", "DROP USER IF EXISTS cs_ed", "DROP SERVER IF EXISTS cs_srv",
		"CREATE USER cs_multi IDENTIFIED VIA mysql_native_password USING PASSWORD('cs-pass-1') OR unix_socket",
		"CREATE USER cs_ed IDENTIFIED VIA ed25519 USING PASSWORD('cs-pass-2')",
		"CREATE SERVER cs_srv FOREIGN DATA WRAPPER mysql OPTIONS (HOST '127.0.0.1', USER 'fed', PASSWORD 'fed-secret-3')",
		"DROP DATABASE IF EXISTS cs", "CREATE DATABASE cs",
		"CREATE PROCEDURE cs.grants() SHOW GRANTS FOR warden",
	} {
		mustExec(t, root, q)
	}
	t.Cleanup(func() {
		for _, q := range []string{"DROP USER IF EXISTS cs_multi", "DROP USER IF EXISTS cs_ed", "DROP SERVER IF EXISTS cs_srv"} {
			_, _ = root.Exec(q)
		}
	})
	// The secrets, as root reads them.
	secrets := map[string]string{"fed": "fed-secret-3"}
	for _, u := range []string{"warden", "cs_multi", "cs_ed"} {
		var h string
		if err := root.QueryRow("SELECT JSON_VALUE(Priv, '$.authentication_string') FROM mysql.global_priv WHERE User = ?", u).Scan(&h); err != nil || len(h) < 20 {
			t.Fatalf("hash of %s: %q %v", u, h, err)
		}
		secrets[u] = h
	}
	leaks := func(vals []string) string {
		for _, v := range vals {
			for who, s := range secrets {
				if strings.Contains(v, s) {
					return who
				}
			}
		}
		return ""
	}

	// Directly, the backend account reads them all.
	direct, err := sql.Open("mysql", fmt.Sprintf("warden:warden-pass@tcp(%s)/cs?interpolateParams=false", d.Maria.Addr))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	for q, who := range map[string]string{
		"SHOW GRANTS":              "warden",
		"SHOW GRANTS FOR cs_multi": "cs_multi",
		"SHOW CREATE USER cs_ed":   "cs_ed",
		"SELECT authentication_string FROM mysql.user WHERE User = 'warden'": "warden",
		"SELECT Priv FROM mysql.global_priv WHERE User = 'cs_ed'":            "cs_ed",
		"SELECT Password FROM mysql.servers":                                 "fed",
	} {
		vals, err := queryStrings(ctx, direct.QueryContext, q)
		if err != nil || leaks(vals) != who {
			t.Fatalf("direct %q: %v %q: the test would prove nothing", q, err, vals)
		}
	}

	// Through sqlwarden: SHOW GRANTS / SHOW CREATE USER are scrubbed.
	db, err := sql.Open("mysql", d.DSN("cs", "interpolateParams=false&multiStatements=true"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	shows := []string{
		"SHOW GRANTS", "show grants for current_user", "SHOW GRANTS FOR CURRENT_USER()", "SHOW GRANTS FOR warden",
		"SHOW GRANTS FOR 'cs_multi'@'%'", "SHOW GRANTS FOR cs_ed",
		"SHOW CREATE USER warden", "SHOW CREATE USER cs_multi", "show create user `cs_ed`@`%`",
		"CALL cs.grants()", "EXECUTE IMMEDIATE 'SHOW GRANTS'",
	}
	for _, q := range shows {
		vals, err := queryStrings(ctx, conn.QueryContext, q)
		if err != nil {
			t.Errorf("%q: %v", q, err)
			continue
		}
		if who := leaks(vals); who != "" || len(vals) == 0 || !strings.Contains(strings.Join(vals, "\n"), "'<secret>'") {
			t.Errorf("%q leaked %q's secret or was not scrubbed: %q", q, who, vals)
		}
	}
	// Text-protocol SQL PREPARE/EXECUTE, and the binary protocol.
	if _, err := conn.ExecContext(ctx, "PREPARE s FROM 'SHOW GRANTS FOR cs_multi'"); err != nil {
		t.Fatal(err)
	}
	if vals, err := queryStrings(ctx, conn.QueryContext, "EXECUTE s"); err != nil || leaks(vals) != "" || len(vals) == 0 {
		t.Errorf("EXECUTE of a prepared SHOW GRANTS: %v %q", err, vals)
	}
	for _, q := range []string{"SHOW GRANTS", "SHOW CREATE USER cs_ed", "CALL cs.grants()"} {
		st, err := conn.PrepareContext(ctx, q)
		if err != nil {
			t.Errorf("prepare %q: %v", q, err)
			continue
		}
		vals, err := queryStrings(ctx, func(ctx context.Context, _ string, args ...any) (*sql.Rows, error) {
			return st.QueryContext(ctx, args...)
		}, q)
		st.Close()
		if err != nil || leaks(vals) != "" || len(vals) == 0 || !strings.Contains(strings.Join(vals, "\n"), "'<secret>'") {
			t.Errorf("binary %q: %v %q", q, err, vals)
		}
	}

	// Results in a character set that does not carry ASCII unchanged (the
	// hash would pass the scrubber as UTF-16) are refused, and a procedure
	// that switches to one ends the session before anything else runs.
	for _, q := range []string{
		"SET character_set_results = utf16", "SET @@session.character_set_results = 'utf32'",
		"SET character_set_results = utf16le; SHOW GRANTS", "PREPARE s3 FROM 'SET character_set_results = ucs2'",
	} {
		if _, err := conn.ExecContext(ctx, q); err == nil || !strings.Contains(err.Error(), "sqlwarden: statement refused") {
			t.Errorf("%q: %v, want refused", q, err)
		}
	}
	mustExec(t, root, "CREATE PROCEDURE cs.to_utf16() SET character_set_results = utf16")
	other, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.ExecContext(ctx, "CALL cs.to_utf16()"); err == nil || !strings.Contains(err.Error(), "sqlwarden: session ended") {
		t.Errorf("CALL of a procedure setting character_set_results = utf16: %v, want the session ended", err)
	}
	other.Raw(func(any) error { return driver.ErrBadConn })
	other.Close()
	if vals, err := queryStrings(ctx, conn.QueryContext, "SHOW GRANTS"); err != nil || leaks(vals) != "" {
		t.Errorf("SHOW GRANTS after the refusals: %v %q", err, vals)
	}

	// SQL built at run time: PREPARE from a variable is judged by the text
	// the variable holds (read before the PREPARE runs), so it still works
	// for what is allowed; what no check could see is refused.
	mustExecConn := func(q string) {
		t.Helper()
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustExecConn("SET @q = 'SELECT Priv FROM mysql.global_priv'")
	if _, err := conn.ExecContext(ctx, "PREPARE s4 FROM @q"); !isCredentialRefusal(err) {
		t.Errorf("PREPARE from a variable holding a credential-table query: %v, want refused by credential-tables", err)
	}
	mustExecConn("SET @q = 'SELECT 42'")
	mustExecConn("PREPARE s5 FROM @q")
	// The journal says what the server prepared.
	d.WaitFor(t, "the PREPARE from @q journaled with its text", func(r *record.Record) bool {
		return r.Event == record.EventStatement && r.SQL == "PREPARE `s5` FROM 'SELECT 42'"
	})
	if vals, err := queryStrings(ctx, conn.QueryContext, "EXECUTE s5"); err != nil || len(vals) != 1 || vals[0] != "42" {
		t.Errorf("EXECUTE of a statement prepared from a variable: %v %q, want 42", err, vals)
	}
	mustExecConn("SET @q = 'KILL 1'")
	if _, err := conn.ExecContext(ctx, "PREPARE k FROM @q"); err == nil || !strings.Contains(err.Error(), "prepared KILL") {
		t.Errorf("PREPARE of a KILL from a variable: %v, want refused", err)
	}
	for _, q := range []string{
		"EXECUTE IMMEDIATE CONCAT('SELECT Priv FROM mysql.glo', 'bal_priv')",
		"SET @q = 'SELECT 1'; PREPARE s6 FROM @q",
	} {
		if _, err := conn.ExecContext(ctx, q); err == nil || !strings.Contains(err.Error(), "sqlwarden: statement refused") {
			t.Errorf("%q: %v, want refused", q, err)
		}
	}

	// Statements naming a credential table are refused, by every route.
	refused := []string{
		"SELECT authentication_string FROM mysql.user WHERE User = 'warden'",
		"select `Password` from `mysql`.`user`",
		"SELECT Priv FROM mysql.global_priv",
		"SELECT Password FROM mysql.servers",
		"SELECT 1 FROM DUAL WHERE EXISTS (SELECT 1 FROM mysql.global_priv WHERE Priv LIKE '%*%')",
		"SELECT (SELECT authentication_string FROM mysql.user LIMIT 1) AS x",
		"SELECT 'x' UNION ALL SELECT Priv FROM mysql.global_priv",
		"WITH c AS (SELECT * FROM mysql.global_priv) SELECT * FROM c",
		"TABLE mysql.global_priv",
		"CREATE VIEW cs.v AS SELECT Priv FROM mysql.global_priv",
		"CREATE TABLE cs.copy AS SELECT * FROM mysql.global_priv",
		"HANDLER mysql.global_priv OPEN",
		"PREPARE s2 FROM 'SELECT Priv FROM mysql.global_priv'",
		"SELECT 1; SELECT Password FROM mysql.servers",
	}
	for _, q := range refused {
		if _, err := queryStrings(ctx, conn.QueryContext, q); !isCredentialRefusal(err) {
			t.Errorf("%q: got %v, want refused by credential-tables", q, err)
		}
	}
	if _, err := conn.PrepareContext(ctx, "SELECT authentication_string FROM mysql.user WHERE User = ?"); !isCredentialRefusal(err) {
		t.Errorf("COM_STMT_PREPARE over mysql.user: got %v, want refused", err)
	}
	// Setting a password — the daemon's own account's first — is refused
	// whatever the policy says, and journaled without its literals.
	for _, q := range []string{
		"SET PASSWORD = PASSWORD('owned-by-agent')",
		"ALTER USER CURRENT_USER() IDENTIFIED BY 'owned-by-agent'",
		"SET PASSWORD FOR cs_multi = PASSWORD('owned-by-agent')",
		"CREATE USER cs_new IDENTIFIED BY 'owned-by-agent'",
		"GRANT SELECT ON cs.* TO cs_multi IDENTIFIED BY 'owned-by-agent'",
		"PREPARE s3 FROM 'SET PASSWORD = PASSWORD(''owned-by-agent'')'",
		"CREATE USER cs_new IDENTIFIED VIA ed25519 USING PASSWORD('owned-by-agent')",
		"SELECT 1; SET PASSWORD = PASSWORD('owned-by-agent')",
	} {
		_, err := conn.ExecContext(ctx, q)
		var me *gomysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1142 || !strings.HasPrefix(me.Message, "sqlwarden: blocked by rule password-changes:") {
			t.Errorf("%q: got %v, want refused by password-changes", q, err)
		}
	}
	var h string
	if err := root.QueryRow("SELECT JSON_VALUE(Priv, '$.authentication_string') FROM mysql.global_priv WHERE User = 'warden'").Scan(&h); err != nil || h != secrets["warden"] {
		t.Errorf("the daemon's account's password changed: %q %v", h, err)
	}
	secrets["a password an agent chose"] = "owned-by-agent"
	// A password in a statement that runs: journaled as its shape.
	for _, q := range []string{"DO PASSWORD('owned-by-agent')", "SELECT PASSWORD('owned-by-agent') AS h"} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Errorf("%q: %v", q, err)
		}
	}
	// USE mysql, then unqualified names.
	if _, err := conn.ExecContext(ctx, "USE mysql"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"SELECT * FROM user", "SELECT Priv FROM global_priv", "HANDLER global_priv OPEN"} {
		if _, err := queryStrings(ctx, conn.QueryContext, q); !isCredentialRefusal(err) {
			t.Errorf("in mysql: %q: got %v, want refused", q, err)
		}
	}
	if vals, err := queryStrings(ctx, conn.QueryContext, "SELECT COUNT(*) FROM db"); err != nil || len(vals) != 1 {
		t.Errorf("an ordinary mysql table: %v %v", vals, err)
	}
	// COM_FIELD_LIST of mysql.user.
	gc, err := client.Connect(d.Listen, harness.ClientUser, harness.ClientPassword, "mysql")
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	if _, err := gc.FieldList("global_priv", ""); err == nil || !strings.Contains(err.Error(), "credential-tables") {
		t.Errorf("COM_FIELD_LIST global_priv: got %v, want refused", err)
	}
	if _, err := gc.FieldList("db", ""); err != nil {
		t.Errorf("COM_FIELD_LIST db: %v", err)
	}
	var views int
	if err := root.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'cs'").Scan(&views); err != nil || views != 0 {
		t.Errorf("objects created in cs from credential tables: %d %v", views, err)
	}

	conn.Close()
	db.Close()
	gc.Close()
	recs := d.Settled(t)
	// The journal holds no secret either, and says what happened.
	files, _ := filepath.Glob(filepath.Join(d.AuditDir, "*.jsonl"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if who := leaks([]string{string(b)}); who != "" {
			t.Errorf("journal %s holds %s's secret", f, who)
		}
	}
	var scrubbed, blocked int
	for _, r := range recs {
		if r.Event != record.EventOutcome {
			continue
		}
		for _, m := range r.Masked {
			if m.Rule == "credentials" && m.Count > 0 {
				scrubbed++
			}
		}
		if r.Status == record.StatusBlocked && r.Policy != nil && r.Policy.Rule == "credential-tables" {
			blocked++
		}
	}
	if scrubbed < len(shows) || blocked < len(refused)+5 {
		t.Errorf("journal: %d scrubbed outcomes (want >= %d), %d credential refusals (want >= %d)", scrubbed, len(shows), blocked, len(refused)+5)
	}
}

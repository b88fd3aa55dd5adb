package e2e

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// bindingPolicy holds every write to a table of the aretry database for a
// human, in retry mode; writes elsewhere run.
const bindingPolicy = `default: allow
rules:
  - name: aretry-writes-need-a-human
    match: statement.tables_written.exists(t, t.startsWith("aretry."))
    action: approve
    approval_mode: retry
`

// agentConn opens one connection of the agent to db (DSN params as given)
// and returns it with a function that runs a statement on it.
func agentConn(t *testing.T, d *harness.Daemon, db, params string) (*sql.Conn, func(q string, args ...any) error) {
	t.Helper()
	agent, err := sql.Open("mysql", d.DSN(db, params))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Close() })
	conn, err := agent.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, func(q string, args ...any) error {
		_, err := conn.ExecContext(context.Background(), q, args...)
		return err
	}
}

// mustRun is exec for statements that must succeed.
func mustRun(t *testing.T, exec func(q string, args ...any) error) func(q string) {
	return func(q string) {
		t.Helper()
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestApprovalBindsWhatRuns: a decision — cached or a human's — holds for
// the statement that runs and for nothing else. A prepared statement's
// names are bound in the database it was prepared in, so USE before its
// EXECUTE neither reuses a verdict cached for the same text elsewhere nor
// an approval given for another database; the same bytes under another
// sql_mode, and a long parameter that differs only past the part the
// journal keeps, are new requests.
func TestApprovalBindsWhatRuns(t *testing.T) {
	d := policyDaemon(t, bindingPolicy, "2m", "10m")
	root := setupCounter(t, d)
	mustExec(t, root, "DROP DATABASE IF EXISTS aretry_other")
	mustExec(t, root, "CREATE DATABASE aretry_other")
	mustExec(t, root, "CREATE TABLE aretry_other.counter (id INT PRIMARY KEY, n INT NOT NULL)")
	mustExec(t, root, "INSERT INTO aretry_other.counter VALUES (1, 0)")
	t.Cleanup(func() { root.Exec("DROP DATABASE IF EXISTS aretry_other") })

	ctx := context.Background()
	conn, exec := agentConn(t, d, "aretry_other", "interpolateParams=false")
	prepare := func(q string) *sql.Stmt {
		st, err := conn.PrepareContext(ctx, q)
		if err != nil {
			t.Fatalf("PREPARE %s: %v", q, err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	const inc = "UPDATE counter SET n = n + 1 WHERE id = ?"

	// The same text, run where no human is needed: its verdict is cached.
	if _, err := prepare(inc).Exec(1); err != nil {
		t.Fatalf("a write to aretry_other: %v", err)
	}
	// Prepared in aretry, executed after USE aretry_other: aretry.counter.
	if err := exec("USE aretry"); err != nil {
		t.Fatal(err)
	}
	bound := prepare(inc)
	if err := exec("USE aretry_other"); err != nil {
		t.Fatal(err)
	}
	_, err := bound.Exec(1)
	id := pendID(t, err, "EXECUTE of a statement prepared in aretry, after USE aretry_other", "10m")
	if n := counter(t, root, 1); n != 0 {
		t.Fatalf("aretry.counter moved to %d without approval", n)
	}
	var req *record.Record
	for _, r := range d.Records(t) {
		if r.Event == record.EventStatement && r.Command == "COM_STMT_EXECUTE" && r.DB == "aretry" {
			req = r
		}
	}
	if req == nil {
		t.Fatal("no COM_STMT_EXECUTE record with db aretry (the database its statement was prepared in)")
	}

	// Approved for aretry: a statement prepared in aretry_other with the
	// same text and parameters is another request, and runs nothing there.
	cli(t, d, "approvals", "approve", id, "--approver", "alice")
	other := prepare(inc) // prepared in aretry_other (the current database)
	if _, err := other.Exec(1); err != nil {
		t.Fatalf("a write to aretry_other: %v", err)
	}
	if err := exec("USE aretry"); err != nil {
		t.Fatal(err)
	}
	if _, err := bound.Exec(1); err != nil {
		t.Fatalf("the approved EXECUTE: %v", err)
	}
	if n := counter(t, root, 1); n != 1 {
		t.Fatalf("aretry.counter = %d after the approved EXECUTE, want 1", n)
	}

	// The same bytes under ANSI_QUOTES: "id" is then a column, and every
	// row matches. An approval of the text under the default sql_mode
	// does not carry over.
	const quoted = `UPDATE aretry.counter SET n = n + 10 WHERE id IN (1, "id" + 0)`
	id = pendID(t, exec(quoted), "the quoted text", "10m")
	cli(t, d, "approvals", "approve", id, "--approver", "alice")
	if err := exec("SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')"); err != nil {
		t.Fatal(err)
	}
	if again := pendID(t, exec(quoted), "the quoted text under ANSI_QUOTES", "10m"); again == id {
		t.Fatal("an approval under the default sql_mode ran the same bytes under ANSI_QUOTES")
	}
	if n := counter(t, root, 2); n != 0 {
		t.Fatalf("aretry.counter id 2 = %d: the ANSI_QUOTES reading ran", n)
	}
	if err := exec("SET SESSION sql_mode = DEFAULT"); err != nil {
		t.Fatal(err)
	}

	// Long parameters: the same first 1 KiB (all the journal keeps) and
	// length, another tail.
	find := prepare("UPDATE aretry.counter SET n = n + 100 WHERE FIND_IN_SET(id, ?)")
	pad := strings.Repeat("9,", 600)
	_, err = find.Exec(pad + "1,9")
	id = pendID(t, err, "a long parameter", "10m")
	cli(t, d, "approvals", "approve", id, "--approver", "alice")
	_, err = find.Exec(pad + "1,2")
	if again := pendID(t, err, "the long parameter with another tail", "10m"); again == id {
		t.Fatal("an approval of one long parameter ran another with the same first 1 KiB")
	}
	if n := counter(t, root, 2); n != 0 {
		t.Fatalf("aretry.counter id 2 = %d: the other long parameter ran", n)
	}
	sums := map[string]bool{}
	for _, r := range d.Records(t) {
		if r.Event == record.EventStatement && strings.Contains(r.SQL, "FIND_IN_SET") && len(r.Params) == 1 {
			p := r.Params[0]
			if !p.Truncated || p.Size != len(pad)+3 || len(p.SHA256) != 64 {
				t.Fatalf("journaled long parameter %+v, want truncated with its size and SHA-256", p)
			}
			sums[p.SHA256] = true
		}
	}
	if len(sums) != 2 {
		t.Fatalf("the journal tells %d long parameters apart, want 2", len(sums))
	}
}

// TestSQLExecuteJudgedByWhatItRuns: an EXECUTE of a statement prepared
// with SQL PREPARE is judged as the statement it runs. PREPARE of an UPDATE
// that needs a human is allowed (it runs nothing); each EXECUTE is held,
// with its USING values as parameters, and an approval runs it once, for
// those values and that prepared text only; the journal names the table it
// writes. An EXECUTE whose text the session does not know, and EXECUTE ...
// USING inside a multi-statement, are refused.
func TestSQLExecuteJudgedByWhatItRuns(t *testing.T) {
	d := policyDaemon(t, bindingPolicy, "2m", "10m")
	root := setupCounter(t, d)
	_, exec := agentConn(t, d, "aretry", "multiStatements=true")
	must := mustRun(t, exec)
	must("PREPARE p FROM 'UPDATE counter SET n = n + 1 WHERE id = ?'")
	must("SET @a = 1")
	id := pendID(t, exec("EXECUTE p USING @a"), "EXECUTE of a prepared UPDATE", "10m")
	if n := counter(t, root, 1); n != 0 {
		t.Fatalf("counter moved to %d before approval", n)
	}
	cli(t, d, "approvals", "approve", id, "--approver", "alice")
	must("EXECUTE p USING @a")
	if n := counter(t, root, 1); n != 1 {
		t.Fatalf("counter = %d after the approved EXECUTE, want 1", n)
	}
	// Once: the same EXECUTE again is a new request.
	if again := pendID(t, exec("EXECUTE p USING @a"), "the approved EXECUTE again", "10m"); again == id {
		t.Fatal("an approval ran twice")
	}
	// Other values are another statement.
	must("SET @a = 3")
	id3 := pendID(t, exec("EXECUTE p USING @a"), "EXECUTE with @a = 3", "10m")
	cli(t, d, "approvals", "approve", id3, "--approver", "alice")
	// The same name prepared again with another text: the approval was
	// for the first one.
	must("PREPARE p FROM 'UPDATE counter SET n = n + 100 WHERE id >= ?'")
	if other := pendID(t, exec("EXECUTE p USING @a"), "EXECUTE of another text under the same name", "10m"); other == id3 {
		t.Fatal("an approval of one prepared text ran another")
	}
	if n := counter(t, root, 3); n != 0 {
		t.Fatalf("counter 3 = %d: the re-prepared text ran", n)
	}
	for _, q := range []string{"SET @a = 2; EXECUTE p USING @a", "EXECUTE nope"} {
		var me *gomysql.MySQLError
		if err := exec(q); !errors.As(err, &me) || !strings.HasPrefix(me.Message, "sqlwarden: statement refused") {
			t.Errorf("%q: got %v, want refused", q, err)
		}
	}
	var rec *record.Record
	for _, r := range d.Records(t) {
		if r.Event == record.EventStatement && r.SQL == "EXECUTE p USING @a" && r.Statement != nil && len(r.Params) == 1 && r.Params[0].Value == "1" {
			rec = r
		}
	}
	if rec == nil || !slices.Contains(rec.Statement.TablesWrite, "aretry.counter") || rec.Statement.Kind != "UPDATE" || rec.Params[0].Type != "@a" {
		t.Fatalf("journaled EXECUTE: %+v, want kind UPDATE writing aretry.counter with @a = 1", rec)
	}
}

// counterPolicy holds every statement that reads or writes aretry.counter
// for a human, in retry mode.
const counterPolicy = `default: allow
rules:
  - name: counter-needs-a-human
    match: statement.tables.exists(t, t == "aretry.counter")
    action: approve
    approval_mode: retry
`

// TestPreparedTextReadAsTheServerReadsIt: what a SQL-level prepared
// statement runs is read as the server reads it. An EXECUTE is judged under
// the sql_mode of its PREPARE (under NO_BACKSLASH_ESCAPES 'a\' ends where the
// default mode reads on); PREPARE FROM @var and EXECUTE ... USING read the
// variables' bytes, not their rendering in the client's
// character_set_results (in gbk, 乗 ends in a backslash); names the server
// folds differently from ASCII (σ, ς) are refused.
func TestPreparedTextReadAsTheServerReadsIt(t *testing.T) {
	d := policyDaemon(t, counterPolicy, "2m", "10m")
	root := setupCounter(t, d)
	_, exec := agentConn(t, d, "aretry", "multiStatements=true")
	must := mustRun(t, exec)
	// Prepared under NO_BACKSLASH_ESCAPES, executed under the default mode.
	must("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
	must(`PREPARE nb FROM 'UPDATE aretry.counter SET n = n + 1 WHERE id = 1 AND ''a\'' <> ''b'' -- '''`)
	must("SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')")
	pendID(t, exec("EXECUTE nb"), "EXECUTE of a text prepared under NO_BACKSLASH_ESCAPES", "10m")
	if n := counter(t, root, 1); n != 0 {
		t.Fatalf("counter = %d: the EXECUTE ran without approval", n)
	}

	// Variables in gbk results.
	must("SET character_set_results = gbk")
	must("SET @w = 'SELECT ''乗'' AS k'")
	must("PREPARE g FROM @w")
	must("SET @u = '乗乗'")
	must("PREPARE q FROM 'SELECT ? AS k'")
	must("EXECUTE q USING @u")
	must("SET character_set_results = utf8mb4")

	// Names folded unlike ASCII.
	for _, q := range []string{"PREPARE `dσ` FROM 'SELECT 1'", "EXECUTE `dς`", "DEALLOCATE PREPARE `dσ`"} {
		var me *gomysql.MySQLError
		if err := exec(q); !errors.As(err, &me) || !strings.Contains(me.Message, "ASCII letters, digits, _ and $") {
			t.Errorf("%q: got %v, want refused for its name", q, err)
		}
	}

	var prepared, using bool
	for _, r := range d.Records(t) {
		if r.Event != record.EventStatement {
			continue
		}
		if r.SQL == "PREPARE `g` FROM 'SELECT ''乗'' AS k'" {
			prepared = true
		}
		if r.SQL == "EXECUTE q USING @u" && len(r.Params) == 1 && r.Params[0].Value == "乗乗" {
			using = true
		}
	}
	if !prepared || !using {
		t.Errorf("journal: PREPARE FROM @w recorded as its text %v, EXECUTE USING @u recorded with its value %v; want both", prepared, using)
	}
}

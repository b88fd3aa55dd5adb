package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

const adminToken = "e2e-approver-token"

func isBlocked(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && me.Number == 1142 && strings.HasPrefix(me.Message, "sqlwarden: blocked by rule ")
}

// TestGuardrailsBuiltInPolicy runs destructive statements in every disguise
// through the proxy with the built-in default policy: each is blocked and
// the table is intact; a DELETE with a WHERE passes.
func TestGuardrailsBuiltInPolicy(t *testing.T) {
	d := harness.Start(t, harness.Options{})
	root := d.Maria.Open(t, "")
	mustExec(t, root, "DROP DATABASE IF EXISTS guard")
	mustExec(t, root, "CREATE DATABASE guard")
	mustExec(t, root, "CREATE TABLE guard.users (id INT PRIMARY KEY, name VARCHAR(20))")
	mustExec(t, root, "INSERT INTO guard.users VALUES (1,'a'),(2,'b'),(3,'c')")

	db, err := sql.Open("mysql", d.DSN("guard", "multiStatements=true&interpolateParams=false"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	blocked := []string{
		"DROP TABLE users",
		"drop   table guard.users",
		"TRUNCATE TABLE users",
		"truncate users",
		"DELETE FROM users",
		"/* tidy up */ dElEtE\n FROM `users` -- everything",
		"DELETE FROM users WHERE 1",
		"UPDATE users SET name = 'x'",
		"SELECT 1; DELETE FROM users",
		"SELECT 1; DROP TABLE users; SELECT 2",
		// MariaDB runs /*M! ... */ as SQL; a cached "select ?" must not vouch for it.
		"SELECT 1 /*M! ; DROP TABLE users */",
		"SELECT 1 /*M!100000 ; DELETE FROM users */",
	}
	if _, err := db.Exec("SELECT 1"); err != nil {
		t.Fatal(err)
	}
	for _, q := range blocked {
		if _, err := db.Exec(q); !isBlocked(err) {
			t.Errorf("%q: got %v, want blocked", q, err)
		}
	}
	// A server-side prepared statement is classified at PREPARE.
	if _, err := db.Prepare("DELETE FROM users"); !isBlocked(err) {
		t.Errorf("prepared DELETE without WHERE: got %v, want blocked", err)
	}
	// The mariadb CLI sees the same refusal.
	host, port := d.HostPort()
	out, err := exec.Command("mariadb", "-h", host, "-P", port, "-u", harness.ClientUser, "-p"+harness.ClientPassword,
		"--skip-ssl", "-D", "guard", "-e", "DELETE FROM users").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "ERROR 1142") || !strings.Contains(string(out), "sqlwarden: blocked by rule no-unbounded-writes") {
		t.Errorf("mariadb CLI DELETE: %v\n%s", err, out)
	}
	var n int
	if err := root.QueryRow("SELECT COUNT(*) FROM guard.users").Scan(&n); err != nil || n != 3 {
		t.Fatalf("table not intact after blocked statements: %d rows, %v", n, err)
	}
	res, err := db.Exec("DELETE FROM users WHERE id = ?", 3)
	if err != nil {
		t.Fatalf("DELETE with WHERE: %v", err)
	}
	if a, _ := res.RowsAffected(); a != 1 {
		t.Fatalf("DELETE with WHERE affected %d", a)
	}
	db.Close()
	recs := d.Settled(t)
	_, o := harness.Pair(t, recs, "DELETE FROM users")
	if o.Status != record.StatusBlocked || o.Policy == nil || o.Policy.Rule != "no-unbounded-writes" || o.Policy.Action != "deny" {
		t.Errorf("blocked outcome: %+v / %+v", o, o.Policy)
	}
	_, o = harness.Pair(t, recs, "TRUNCATE TABLE users")
	if o.Status != record.StatusBlocked || o.Policy.Rule != "no-drop-or-truncate" {
		t.Errorf("truncate outcome: %+v", o.Policy)
	}
}

type pendingEntry struct {
	ID       string `json:"id"`
	SQL      string `json:"sql"`
	Identity string `json:"identity"`
	Status   string `json:"status"`
	Mode     string `json:"mode"`
	Node     string `json:"node"`
	Approver string `json:"approver"`
}

type pendingList struct {
	Approvals []pendingEntry `json:"approvals"`
	Recent    []pendingEntry `json:"recent"`
}

func adminCall(t *testing.T, d *harness.Daemon, method, path string, body any) (*http.Response, []byte) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, "http://"+d.Admin+path, rd)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp, buf.Bytes()
}

func waitPending(t *testing.T, d *harness.Daemon, sqlText string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, body := adminCall(t, d, "GET", "/api/v1/approvals", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("GET approvals: %d %s", resp.StatusCode, body)
		}
		var pl pendingList
		if err := json.Unmarshal(body, &pl); err != nil {
			t.Fatal(err)
		}
		for _, p := range pl.Approvals {
			if p.SQL == sqlText {
				return p.ID
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no pending approval for %q", sqlText)
	return ""
}

func approvalsDaemon(t *testing.T, timeout string) *harness.Daemon {
	return harness.Start(t, harness.Options{Extra: fmt.Sprintf("admin:\n  token: %s\npolicy:\n  approvals:\n    timeout: %s\n", adminToken, timeout)})
}

func TestApprovalsEndToEnd(t *testing.T) {
	d := approvalsDaemon(t, "3s")
	root := d.Maria.Open(t, "")
	mustExec(t, root, "DROP DATABASE IF EXISTS appr")
	mustExec(t, root, "CREATE DATABASE appr")
	mustExec(t, root, "CREATE TABLE appr.t (id INT PRIMARY KEY)")
	db := d.Open(t, "appr")

	// Unauthenticated callers get nothing.
	resp, err := http.Get("http://" + d.Admin + "/api/v1/approvals")
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET approvals without a token: %v %v", resp.StatusCode, err)
	}

	// 1. Approved through the API: the waiting client gets its result.
	q1 := "ALTER TABLE t ADD COLUMN note VARCHAR(20)"
	done := make(chan error, 1)
	go func() { _, err := db.Exec(q1); done <- err }()
	id := waitPending(t, d, q1)
	select {
	case err := <-done:
		t.Fatalf("client returned before the decision: %v", err)
	default:
	}
	resp, body := adminCall(t, d, "POST", "/api/v1/approvals/"+id+"/approve", map[string]string{"approver": "alice", "reason": "planned migration"})
	if resp.StatusCode != 200 {
		t.Fatalf("approve: %d %s", resp.StatusCode, body)
	}
	if err := <-done; err != nil {
		t.Fatalf("approved statement failed: %v", err)
	}
	var col int
	if err := root.QueryRow("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='appr' AND TABLE_NAME='t' AND COLUMN_NAME='note'").Scan(&col); err != nil || col != 1 {
		t.Fatalf("approved ALTER did not run: %d %v", col, err)
	}

	// 2. Denied through the CLI.
	q2 := "CREATE INDEX idx_id ON t (id)"
	go func() { _, err := db.Exec(q2); done <- err }()
	id = waitPending(t, d, q2)
	out, err := exec.Command(harness.Binary(t), "approvals", "deny", id, "--admin", "http://"+d.Admin,
		"--token", adminToken, "--reason", "not now").CombinedOutput()
	if err != nil {
		t.Fatalf("sqlwarden approvals deny: %v\n%s", err, out)
	}
	err = <-done
	var me *gomysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1227 || !strings.Contains(me.Message, "not now") {
		t.Fatalf("denied statement: got %v, want ERR 1227 with the reason", err)
	}

	// 3. Nobody answers: it times out.
	q3 := "ALTER TABLE t ADD COLUMN never INT"
	start := time.Now()
	_, err = db.Exec(q3)
	if !errors.As(err, &me) || me.Number != 1227 || !strings.Contains(me.Message, "timed out") {
		t.Fatalf("unanswered approval: got %v, want a timeout ERR 1227", err)
	}
	if time.Since(start) < 2*time.Second {
		t.Fatalf("timed out after %v, configured 3s", time.Since(start))
	}
	if err := root.QueryRow("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='appr' AND TABLE_NAME='t' AND COLUMN_NAME='never'").Scan(&col); err != nil || col != 0 {
		t.Fatalf("timed-out ALTER ran: %d %v", col, err)
	}
	// The expiry is visible: the API's recent list and `approvals list
	// --all` show it, and the journal has an approval record of it.
	_, body = adminCall(t, d, "GET", "/api/v1/approvals", nil)
	var pl pendingList
	if err := json.Unmarshal(body, &pl); err != nil {
		t.Fatal(err)
	}
	var expired string
	for _, p := range pl.Recent {
		if p.SQL == q3 && p.Status == "timeout" && p.Mode == "hold" {
			expired = p.ID
		}
	}
	if expired == "" {
		t.Fatalf("the API does not list the timed-out hold request as timeout: %s", body)
	}
	if all := cli(t, d, "approvals", "list", "--all"); !strings.Contains(all, expired) || !strings.Contains(all, "timeout") {
		t.Fatalf("approvals list --all does not show the expiry of %s:\n%s", expired, all)
	}
	// The connection survived all three.
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}
	db.Close()

	recs := d.Settled(t)
	_, o := harness.Pair(t, recs, q1)
	if o.Status != record.StatusSuccess || o.Policy == nil || o.Policy.Action != "approve" || o.Policy.Approver != "alice" || o.Policy.Reason != "planned migration" {
		t.Errorf("approved outcome: %+v %+v", o, o.Policy)
	}
	_, o = harness.Pair(t, recs, q2)
	if o.Status != record.StatusBlocked || o.Policy == nil || o.Policy.Reason != "not now" {
		t.Errorf("denied outcome: %+v %+v", o, o.Policy)
	}
	_, o = harness.Pair(t, recs, q3)
	if o.Status != record.StatusBlocked || o.Error == nil || !strings.Contains(o.Error.Message, "timed out") {
		t.Errorf("timeout outcome: %+v", o)
	}
	if ev := approvalEvents(recs, expired); len(ev) != 1 || ev[0] != "timeout" {
		t.Errorf("approval records of the timed-out hold request %s: %v", expired, ev)
	}
}

// TestApprovalWithdrawnAndRestart: a client that hangs up withdraws its
// request; a daemon restart ends pending requests as denied, audited.
func TestApprovalWithdrawnAndRestart(t *testing.T) {
	d := approvalsDaemon(t, "1m")
	root := d.Maria.Open(t, "")
	mustExec(t, root, "DROP DATABASE IF EXISTS appr2")
	mustExec(t, root, "CREATE DATABASE appr2")
	mustExec(t, root, "CREATE TABLE appr2.t (id INT PRIMARY KEY)")

	c, raw := rawSession(t, d)
	_ = c
	q := "ALTER TABLE appr2.t ADD COLUMN gone INT"
	raw.Write(append([]byte{byte(len(q) + 1), 0, 0, 0, 0x03}, q...))
	waitPending(t, d, q)
	raw.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body := adminCall(t, d, "GET", "/api/v1/approvals", nil)
		var pl pendingList
		if err := json.Unmarshal(body, &pl); err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(pl.Approvals, func(p pendingEntry) bool { return p.SQL == q }) &&
			slices.ContainsFunc(pl.Recent, func(p pendingEntry) bool { return p.SQL == q && p.Status == "withdrawn" }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the disconnected client's request is still pending, or not listed as withdrawn")
		}
		time.Sleep(50 * time.Millisecond)
	}

	db := d.Open(t, "appr2")
	q2 := "ALTER TABLE t ADD COLUMN restart INT"
	done := make(chan error, 1)
	go func() { _, err := db.Exec(q2); done <- err }()
	waitPending(t, d, q2)
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var me *gomysql.MySQLError
	if err := <-done; !errors.As(err, &me) || me.Number != 1227 {
		t.Fatalf("pending approval at shutdown: got %v, want ERR 1227", err)
	}
	d.Stop(t)
	recs := d.Records(t)
	_, o := harness.Pair(t, recs, q)
	if o.Status != record.StatusBlocked || !strings.Contains(o.Error.Message, "withdrawn") {
		t.Errorf("withdrawn outcome: %+v", o.Error)
	}
	_, o = harness.Pair(t, recs, q2)
	if o.Status != record.StatusBlocked {
		t.Errorf("shutdown outcome: %+v", o)
	}
}

// TestPolicyReloadLive changes the policy file under a live connection: the
// next statement gets the new decision, the connection stays.
func TestPolicyReloadLive(t *testing.T) {
	dir := t.TempDir()
	pfile := filepath.Join(dir, "policy.yaml")
	write := func(s string) {
		if err := os.WriteFile(pfile+".tmp", []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(pfile+".tmp", pfile); err != nil {
			t.Fatal(err)
		}
	}
	write("default: allow\nrules: []\n")
	d := harness.Start(t, harness.Options{Extra: "policy:\n  file: " + pfile + "\n"})
	db := d.Open(t, "test")
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var id1, id2 int64
	if err := conn.QueryRowContext(context.Background(), "SELECT CONNECTION_ID()").Scan(&id1); err != nil {
		t.Fatal(err)
	}
	write("default: allow\nrules:\n  - name: no-sleep\n    match: '\"SLEEP\" in statement.functions'\n    action: deny\n    message: no sleeping on the job\n")
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := conn.ExecContext(context.Background(), "SELECT SLEEP(0)")
		if isBlocked(err) && strings.Contains(err.Error(), "no-sleep") {
			break
		}
		if err != nil && !isBlocked(err) {
			t.Fatalf("unexpected error: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("policy change not applied within 10s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// An invalid file keeps the current policy; SIGHUP reloads too.
	write("default: allow\nrules:\n  - name: broken\n    match: 'statement.kind =='\n    action: deny\n")
	if err := d.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := conn.ExecContext(context.Background(), "SELECT SLEEP(0)"); !isBlocked(err) {
		t.Fatalf("after an invalid policy the old one must hold: %v", err)
	}
	if err := conn.QueryRowContext(context.Background(), "SELECT CONNECTION_ID()").Scan(&id2); err != nil || id1 != id2 {
		t.Fatalf("connection changed across reloads: %d → %d (%v)", id1, id2, err)
	}
}

package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// pendID wants err to be the retry-mode refusal and returns its request id.
func pendID(t *testing.T, err error, what, ttl string) string {
	t.Helper()
	var me *gomysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1227 {
		t.Fatalf("%s: got %v, want ERR 1227 approval required", what, err)
	}
	m := pendingRE.FindStringSubmatch(me.Message)
	if m == nil || m[2] != ttl {
		t.Fatalf("%s: message %q, want the approval-required text with valid %s", what, me.Message, ttl)
	}
	return m[1]
}

// TestApprovalRetryModePrepared: retry mode through the binary protocol.
// COM_STMT_PREPARE of an UPDATE that needs a human succeeds (nothing runs);
// its COM_STMT_EXECUTE is refused with a request id; once approved, the
// identical EXECUTE (same SQL, same parameters, same database) runs exactly
// once — five connections preparing and executing it at once move the
// counter by one — and other parameters are a request of their own.
func TestApprovalRetryModePrepared(t *testing.T) {
	d := retryDaemon(t, "2m", "10m")
	root := setupCounter(t, d)
	agent, err := sql.Open("mysql", d.DSN("aretry", "interpolateParams=false"))
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()

	const q = "UPDATE counter SET n = n + ? WHERE id = ?"
	stmt, err := agent.Prepare(q)
	if err != nil {
		t.Fatalf("PREPARE of a statement that needs approval at EXECUTE: %v", err)
	}
	defer stmt.Close()
	_, err = stmt.Exec(1, 1)
	id := pendID(t, err, "EXECUTE (1, 1)", "10m")
	_, err = stmt.Exec(1, 1)
	if again := pendID(t, err, "EXECUTE (1, 1) again", "10m"); again != id {
		t.Fatalf("the identical EXECUTE before the decision opened request %s, want the pending %s", again, id)
	}
	_, err = stmt.Exec(5, 1)
	if other := pendID(t, err, "EXECUTE (5, 1)", "10m"); other == id {
		t.Fatal("an EXECUTE with other parameters reused the request")
	}
	if n := counter(t, root, 1); n != 0 {
		t.Fatalf("counter moved to %d before approval", n)
	}
	cli(t, d, "approvals", "approve", id, "--approver", "alice", "--reason", "prepared increment")

	// Five connections of the same identity prepare and execute it at once:
	// one runs it.
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		c, err := agent.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := c.PrepareContext(context.Background(), q)
			if err != nil {
				errs[i] = err
				return
			}
			defer s.Close()
			_, errs[i] = s.Exec(1, 1)
		}()
	}
	wg.Wait()
	ran := 0
	for _, err := range errs {
		var me *gomysql.MySQLError
		switch {
		case err == nil:
			ran++
		case errors.As(err, &me) && me.Number == 1227 && pendingRE.MatchString(me.Message):
		default:
			t.Errorf("prepared retry: %v", err)
		}
	}
	if n := counter(t, root, 1); ran != 1 || n != 1 {
		t.Fatalf("%d prepared retries ran, counter %d: want exactly one", ran, n)
	}
	// Used: the next identical EXECUTE asks anew.
	_, err = stmt.Exec(1, 1)
	if next := pendID(t, err, "EXECUTE (1, 1) after use", "10m"); next == id {
		t.Fatal("the used approval still answers")
	}
	agent.Close()

	recs := d.Settled(t)
	var used []*record.Record
	for _, o := range harness.Outcomes(recs, harness.Stmt("COM_STMT_EXECUTE", q)) {
		if o.Status == record.StatusSuccess {
			used = append(used, o)
		}
	}
	if len(used) != 1 || used[0].Policy == nil || used[0].Policy.ApprovalID != id || used[0].Policy.Approver != "alice" {
		t.Fatalf("executed COM_STMT_EXECUTE outcome(s): %+v", used)
	}
	if ev := approvalEvents(recs, id); len(ev) != 2 || ev[0] != "approved" || ev[1] != "used" {
		t.Errorf("approval records of %s: %v", id, ev)
	}
}

// TestApprovalWebhookPayload: a request (retry mode and hold mode) is posted
// to approvals.webhook_url, a receiver the test runs, with the request id,
// its mode, identity, rule and node, and the approver page's URL — which
// serves the page.
func TestApprovalWebhookPayload(t *testing.T) {
	type payload struct {
		Text     string `json:"text"`
		Approval struct {
			ID       string `json:"id"`
			Mode     string `json:"mode"`
			Node     string `json:"node"`
			Identity string `json:"identity"`
			Rule     string `json:"rule"`
			PageURL  string `json:"page_url"`
		} `json:"approval"`
	}
	got := make(chan payload, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p payload
		if r.Method != "POST" || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &p) != nil {
			t.Errorf("webhook: %s %s %q", r.Method, r.Header.Get("Content-Type"), body)
		}
		got <- p
	}))
	defer hook.Close()

	pfile := filepath.Join(t.TempDir(), "policy.yaml")
	pol := retryPolicy + `  - name: ddl-is-held
    match: statement.is_ddl
    action: approve
    approval_mode: hold
`
	if err := os.WriteFile(pfile, []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	d := harness.Start(t, harness.Options{Extra: fmt.Sprintf(
		"admin:\n  token: %s\npolicy:\n  file: %s\n  approvals:\n    timeout: 1m\n    webhook_url: %s\n", adminToken, pfile, hook.URL)})
	setupCounter(t, d)
	agent := d.Open(t, "aretry")
	wantPage := "http://" + d.Admin + "/approvals"
	wait := func(id string) payload {
		t.Helper()
		for {
			select {
			case p := <-got:
				if p.Approval.ID == id {
					return p
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no webhook for request %s", id)
			}
		}
	}

	_, err := agent.Exec("UPDATE counter SET n = n + 1 WHERE id = 1")
	id := pendID(t, err, "UPDATE", "15m")
	p := wait(id)
	if p.Approval.Mode != "retry" || p.Approval.Identity != harness.Identity || p.Approval.Rule != "updates-need-a-human" ||
		p.Approval.Node != "test-node" || p.Approval.PageURL != wantPage || !strings.Contains(p.Text, id) {
		t.Fatalf("retry-mode webhook %+v, want id %s, mode retry, page_url %s", p, id, wantPage)
	}

	// Hold mode: the webhook arrives while the client waits.
	done := make(chan error, 1)
	go func() { _, err := agent.Exec("ALTER TABLE counter ADD COLUMN hooked INT"); done <- err }()
	pe := waitPendingOn(t, d, "ALTER TABLE counter ADD COLUMN hooked INT")
	p = wait(pe.ID)
	if p.Approval.Mode != "hold" || p.Approval.PageURL != wantPage || p.Approval.Rule != "ddl-is-held" {
		t.Fatalf("hold-mode webhook %+v, want id %s, mode hold, page_url %s", p, pe.ID, wantPage)
	}
	cli(t, d, "approvals", "deny", pe.ID, "--approver", "bob")
	if err := <-done; err == nil {
		t.Fatal("the denied DDL ran")
	}

	// The page_url is the approver page.
	resp, err := http.Get(p.Approval.PageURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(strings.ToLower(resp.Header.Get("Content-Type")), "text/html") || len(page) == 0 {
		t.Fatalf("GET page_url %s: %s %s", p.Approval.PageURL, resp.Status, resp.Header.Get("Content-Type"))
	}
}

// TestPolicyTestShowsApprovalMode: `sqlwarden policy test` prints the
// approval mode of an approve decision — the rule's approval_mode, or that
// policy.approvals.mode decides — in text and JSON.
func TestPolicyTestShowsApprovalMode(t *testing.T) {
	pfile := filepath.Join(t.TempDir(), "policy.yaml")
	pol := `default: allow
rules:
  - name: updates-retry
    match: statement.kind == "UPDATE"
    action: approve
    approval_mode: retry
  - name: ddl-hold
    match: statement.kind == "ALTER_TABLE"
    action: approve
    approval_mode: hold
  - name: drops-default-mode
    match: statement.kind == "DROP_TABLE"
    action: approve
`
	if err := os.WriteFile(pfile, []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(harness.Binary(t), append([]string{"policy", "test", "--policy", pfile}, args...)...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Fatalf("policy test %v: %v (want exit 2, approve)\n%s", args, err, out)
		}
		return string(out)
	}
	for sql, want := range map[string]string{
		"UPDATE t SET a = 1 WHERE id = 1": "approval mode:   retry (rule updates-retry)",
		"ALTER TABLE t ADD COLUMN c INT":  "approval mode:   hold (rule ddl-hold)",
		"DROP TABLE t":                    "approval mode:   policy.approvals.mode of the daemon (hold unless set)",
	} {
		if out := run(sql); !strings.Contains(out, want) {
			t.Errorf("policy test %q:\n%s\nwant %q", sql, out, want)
		}
	}
	var js struct {
		Decision struct {
			Action       string `json:"action"`
			ApprovalMode string `json:"approval_mode"`
		} `json:"decision"`
	}
	if err := json.Unmarshal([]byte(run("--json", "UPDATE t SET a = 1 WHERE id = 1")), &js); err != nil {
		t.Fatal(err)
	}
	if js.Decision.Action != "approve" || js.Decision.ApprovalMode != "retry" {
		t.Errorf("policy test --json decision %+v, want approve with approval_mode retry", js.Decision)
	}
}

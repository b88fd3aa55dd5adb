package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// retryPolicy holds every UPDATE for a human in retry mode; the rest of the
// built-in rules do not matter here.
const retryPolicy = `default: allow
rules:
  - name: updates-need-a-human
    match: statement.kind == "UPDATE"
    action: approve
    approval_mode: retry
    message: agents' updates are reviewed
`

// retryDaemon starts a daemon whose UPDATEs need approval in retry mode.
func retryDaemon(t *testing.T, timeout, retryTTL string) *harness.Daemon {
	t.Helper()
	return policyDaemon(t, retryPolicy, timeout, retryTTL)
}

// policyDaemon starts a daemon with the policy text and the approval
// timeouts.
func policyDaemon(t *testing.T, policy, timeout, retryTTL string) *harness.Daemon {
	t.Helper()
	pfile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(pfile, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	return harness.Start(t, harness.Options{Extra: fmt.Sprintf(
		"admin:\n  token: %s\npolicy:\n  file: %s\n  approvals:\n    timeout: %s\n    retry_ttl: %s\n", adminToken, pfile, timeout, retryTTL)})
}

var pendingRE = regexp.MustCompile(`^sqlwarden: approval required: request ([0-9a-f]{16}) pending; re-run the identical statement once approved \(valid ([0-9a-z]+)\)$`)

// mustPend runs q and wants the retry-mode refusal; it returns the request id.
func mustPend(t *testing.T, db interface {
	Exec(string, ...any) (sql.Result, error)
}, q, ttl string) string {
	t.Helper()
	_, err := db.Exec(q)
	var me *gomysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1227 || me.SQLState != [5]byte{'4', '2', '0', '0', '0'} {
		t.Fatalf("%s: got %v, want ERR 1227 (42000) approval required", q, err)
	}
	m := pendingRE.FindStringSubmatch(me.Message)
	if m == nil || m[2] != ttl {
		t.Fatalf("%s: message %q, want the approval-required text with valid %s", q, me.Message, ttl)
	}
	return m[1]
}

func counter(t *testing.T, root *sql.DB, id int) int {
	t.Helper()
	var n int
	if err := root.QueryRow("SELECT n FROM aretry.counter WHERE id = ?", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func cli(t *testing.T, d *harness.Daemon, args ...string) string {
	t.Helper()
	args = append(args, "--admin", "http://"+d.Admin, "--token", adminToken)
	out, err := exec.Command(harness.Binary(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlwarden %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func setupCounter(t *testing.T, d *harness.Daemon) *sql.DB {
	t.Helper()
	root := d.Maria.Open(t, "")
	mustExec(t, root, "DROP DATABASE IF EXISTS aretry")
	mustExec(t, root, "CREATE DATABASE aretry")
	mustExec(t, root, "CREATE TABLE aretry.counter (id INT PRIMARY KEY, n INT NOT NULL)")
	mustExec(t, root, "INSERT INTO aretry.counter VALUES (1, 0), (2, 0), (3, 0)")
	return root
}

func approvalEvents(recs []*record.Record, id string) []string {
	var out []string
	for _, r := range recs {
		if r.Event == record.EventApproval && r.Approval != nil && r.Approval.ID == id {
			out = append(out, r.Approval.Status)
		}
	}
	return out
}

// TestApprovalRetryModeCLI: an agent's UPDATE is refused at once with a
// request id; an approver approves it with the CLI; the agent's identical
// retry runs exactly once — five concurrent retries move the counter by
// one — and the outcome names the approval and the approver. A denied
// request's retry is refused with the denial.
func TestApprovalRetryModeCLI(t *testing.T) {
	d := retryDaemon(t, "2m", "10m")
	root := setupCounter(t, d)
	agent := d.Open(t, "aretry")

	q := "UPDATE counter SET n = n + 1 WHERE id = 1"
	start := time.Now()
	id := mustPend(t, agent, q, "10m")
	if time.Since(start) > 2*time.Second {
		t.Fatalf("retry-mode refusal took %v: it must not hold the client", time.Since(start))
	}
	// Retrying before anyone decided: the same request, nothing runs.
	if again := mustPend(t, agent, q, "10m"); again != id {
		t.Fatalf("retry before the decision opened request %s, want the pending %s", again, id)
	}
	// Another statement of the same agent is its own request.
	if other := mustPend(t, agent, "UPDATE counter SET n = n + 1 WHERE id = 3", "10m"); other == id {
		t.Fatal("a different statement reused the request")
	}
	if n := counter(t, root, 1); n != 0 {
		t.Fatalf("counter moved to %d before approval", n)
	}

	list := cli(t, d, "approvals", "list")
	if !strings.Contains(list, id) || !strings.Contains(list, "retry") || !strings.Contains(list, q) {
		t.Fatalf("approvals list does not show the request:\n%s", list)
	}
	out := cli(t, d, "approvals", "approve", id, "--approver", "alice", "--reason", "one increment")
	if !strings.Contains(out, id+" approved by alice") || !strings.Contains(out, "runs once") {
		t.Fatalf("approve output:\n%s", out)
	}

	// Five connections of the same identity retry at once: one runs it.
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
			_, errs[i] = c.ExecContext(context.Background(), q)
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
			if strings.Contains(me.Message, id) {
				t.Errorf("a retry after the approval was used still points at %s: %s", id, me.Message)
			}
		default:
			t.Errorf("retry: %v", err)
		}
	}
	if ran != 1 || counter(t, root, 1) != 1 {
		t.Fatalf("%d retries ran, counter %d: want exactly one", ran, counter(t, root, 1))
	}
	// Once used, the approval is gone: the next identical statement asks anew.
	next := mustPend(t, agent, q, "10m")
	if next == id {
		t.Fatal("the used approval still answers")
	}

	// Denied: the retry is refused with who denied and why.
	q2 := "UPDATE counter SET n = n + 1 WHERE id = 2"
	id2 := mustPend(t, agent, q2, "10m")
	cli(t, d, "approvals", "deny", id2, "--approver", "bob", "--reason", "not on a Friday")
	_, err := agent.Exec(q2)
	var me *gomysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1227 || !strings.Contains(me.Message, "denied by bob: not on a Friday") || !strings.Contains(me.Message, id2) {
		t.Fatalf("retry of a denied request: got %v", err)
	}
	if n := counter(t, root, 2); n != 0 {
		t.Fatalf("denied statement ran: counter %d", n)
	}
	// A decision on a decided request is a conflict naming the first.
	outb, err := exec.Command(harness.Binary(t), "approvals", "approve", id2, "--admin", "http://"+d.Admin, "--token", adminToken).CombinedOutput()
	if err == nil || !strings.Contains(string(outb), "409") || !strings.Contains(string(outb), "denied by bob") {
		t.Fatalf("second decision: %v\n%s", err, outb)
	}
	all := cli(t, d, "approvals", "list", "--all")
	if !strings.Contains(all, id2) || !strings.Contains(all, "denied by bob") || !strings.Contains(all, "used") {
		t.Fatalf("approvals list --all:\n%s", all)
	}
	agent.Close()

	recs := d.Settled(t)
	os := harness.Outcomes(recs, harness.Stmt("", q))
	var used []*record.Record
	for _, o := range os {
		if o.Status == record.StatusSuccess {
			used = append(used, o)
		}
	}
	if len(used) != 1 || used[0].Policy == nil || used[0].Policy.ApprovalID != id || used[0].Policy.Approver != "alice" || used[0].Policy.Reason != "one increment" {
		t.Fatalf("executed outcome(s): %+v", used)
	}
	if first := os[0]; first.Status != record.StatusBlocked || first.Policy == nil || first.Policy.ApprovalID != id || first.Error.Code != 1227 {
		t.Errorf("refused outcome: %+v %+v", first, first.Policy)
	}
	if ev := approvalEvents(recs, id); !slices.Equal(ev, []string{"approved", "used"}) {
		t.Errorf("approval records of %s: %v", id, ev)
	}
	if ev := approvalEvents(recs, id2); !slices.Equal(ev, []string{"denied"}) {
		t.Errorf("approval records of %s: %v", id2, ev)
	}
}

// TestApprovalRetryModeExpiry: a request nobody decides expires after
// approvals.timeout (listed, recorded, and the retry asks anew), and an
// approval nobody uses expires after retry_ttl without running anything.
func TestApprovalRetryModeExpiry(t *testing.T) {
	d := retryDaemon(t, "2s", "2s")
	root := setupCounter(t, d)
	agent := d.Open(t, "aretry")

	q := "UPDATE counter SET n = n + 1 WHERE id = 1"
	id := mustPend(t, agent, q, "2s")
	waitRecent(t, d, id, "timeout")
	all := cli(t, d, "approvals", "list", "--all")
	if !strings.Contains(all, id) || !strings.Contains(all, "timeout") {
		t.Fatalf("list --all does not show the expiry:\n%s", all)
	}
	// Deciding an expired request is refused.
	outb, err := exec.Command(harness.Binary(t), "approvals", "approve", id, "--admin", "http://"+d.Admin, "--token", adminToken).CombinedOutput()
	if err == nil || !strings.Contains(string(outb), "404") {
		t.Fatalf("approving an expired request: %v\n%s", err, outb)
	}
	fresh := mustPend(t, agent, q, "2s")
	if fresh == id {
		t.Fatal("the retry after expiry reused the expired request")
	}

	// Approved but never used within retry_ttl: it expires; nothing runs.
	cli(t, d, "approvals", "approve", fresh, "--approver", "alice")
	waitRecent(t, d, fresh, "expired")
	if again := mustPend(t, agent, q, "2s"); again == fresh {
		t.Fatal("an expired approval still answers")
	}
	if n := counter(t, root, 1); n != 0 {
		t.Fatalf("counter %d: an expired request ran", n)
	}
	agent.Close()
	recs := d.Settled(t)
	if ev := approvalEvents(recs, id); !slices.Equal(ev, []string{"timeout"}) {
		t.Errorf("approval records of the unanswered request: %v", ev)
	}
	if ev := approvalEvents(recs, fresh); !slices.Equal(ev, []string{"approved", "expired"}) {
		t.Errorf("approval records of the unused approval: %v", ev)
	}
}

// waitRecent waits until the API lists request id as ended with status.
func waitRecent(t *testing.T, d *harness.Daemon, id, status string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		_, body := adminCall(t, d, "GET", "/api/v1/approvals", nil)
		var pl pendingList
		if err := json.Unmarshal(body, &pl); err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(pl.Recent, func(p pendingEntry) bool { return p.ID == id && p.Status == status }) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("request %s not listed as %s", id, status)
}

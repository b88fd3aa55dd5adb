package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/record"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// chromiumPath finds Debian's chromium; without it the test fails in CI or
// when SQLWARDEN_REQUIRE_BROWSER is set, and skips otherwise.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("SQLWARDEN_CHROMIUM"), "/usr/bin/chromium"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	if os.Getenv("SQLWARDEN_REQUIRE_BROWSER") != "" {
		t.Fatal("chromium not found (scripts/install-deps.sh test installs it)")
	}
	return testutil.RequireTool(t, "chromium", "/usr/bin/chromium-browser")
}

// TestApproverPageReleasesWaitingClient: a MySQL client blocks on a DDL
// statement; in a real headless Chromium the approver signs in to the
// daemon's page, sees the statement with its identity, and clicks Approve:
// the client gets its result and the audit names the approver and reason.
func TestApproverPageReleasesWaitingClient(t *testing.T) {
	browserPath := chromiumPath(t)
	d := approvalsDaemon(t, "2m")
	root := d.Maria.Open(t, "")
	mustExec(t, root, "DROP DATABASE IF EXISTS apage")
	mustExec(t, root, "CREATE DATABASE apage")
	mustExec(t, root, "CREATE TABLE apage.t (id INT PRIMARY KEY)")
	db := d.Open(t, "apage")

	q := "ALTER TABLE t ADD COLUMN approved_in_browser INT"
	done := make(chan error, 1)
	go func() { _, err := db.Exec(q); done <- err }()
	id := waitPending(t, d, q)

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(browserPath), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()))
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	defer cancelT()

	row := `tr[data-id="` + id + `"]`
	C := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	err := chromedp.Do(ctx,
		chromedp.Navigate("http://"+d.Admin+"/approvals"),
		chromedp.WaitVisible(C(`#token`)),
		chromedp.SendKeys(C(`#token`), adminToken),
		chromedp.SendKeys(C(`#approver`), "dana"),
		chromedp.Click(C(`#signin`)),
		chromedp.WaitVisible(C(row)),
	)
	if err != nil {
		t.Fatal(err)
	}
	sqlText, err := chromedp.Run(ctx, chromedp.Text(C(row+` pre.sql`)))
	if err != nil {
		t.Fatal(err)
	}
	identity, err := chromedp.Run(ctx, chromedp.Text(C(row+` td:nth-child(2)`)))
	if err != nil {
		t.Fatal(err)
	}
	if sqlText != q || !strings.Contains(identity, "test-agent") {
		t.Fatalf("page shows SQL %q identity %q", sqlText, identity)
	}
	select {
	case err := <-done:
		t.Fatalf("client returned before anyone decided: %v", err)
	default:
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(C(row+` input.reason`), "reviewed in the browser"),
		chromedp.Click(C(row+` button.approve`)),
	); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("approved statement failed: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the click on Approve did not release the waiting client")
	}
	db.Close()
	_, o := harness.Pair(t, d.Settled(t), q)
	if o.Status != record.StatusSuccess || o.Policy == nil || o.Policy.Approver != "dana" || o.Policy.Reason != "reviewed in the browser" {
		t.Fatalf("outcome %+v policy %+v", o, o.Policy)
	}
}

// newBrowser starts headless Chromium for one test.
func newBrowser(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	browserPath := chromiumPath(t)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(browserPath), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()))
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancelT)
	return ctx
}

// signIn opens a daemon's approver page and signs in as approver.
func signIn(t *testing.T, ctx context.Context, admin, approver string) {
	t.Helper()
	C := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	if err := chromedp.Do(ctx,
		chromedp.Navigate("http://"+admin+"/approvals"),
		chromedp.WaitVisible(C(`#token`)),
		chromedp.SendKeys(C(`#token`), adminToken),
		chromedp.SendKeys(C(`#approver`), approver),
		chromedp.Click(C(`#signin`)),
		chromedp.WaitVisible(C(`#main`)),
	); err != nil {
		t.Fatal(err)
	}
}

// textOf waits for sel and returns its text.
func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		t.Fatalf("%s: %v", sel, err)
	}
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("%s: %v", sel, err)
	}
	return s
}

// waitText polls sel's text until it contains want (the page refreshes
// every 2 s).
func waitText(t *testing.T, ctx context.Context, sel, want string) string {
	t.Helper()
	var s string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		s, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`(function(){const e=document.querySelector(`+strconv.Quote(sel)+`);return e?e.textContent:""})()`))
		if strings.Contains(s, want) {
			return s
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s shows %q, want %q", sel, s, want)
	return s
}

// TestApproverPageRetryMode: the retry flow through the approver page in
// headless Chromium. The agent is refused at once; the approver sees the
// request (retry mode, with its node) and approves it; the agent's
// identical retry runs once (the counter moves by one, a second retry asks
// anew) and the page lists the approval as used. A denial clicked on the
// page refuses the retry with the reason; a request nobody decides is
// shown expired.
func TestApproverPageRetryMode(t *testing.T) {
	d := retryDaemon(t, "2m", "10m")
	root := setupCounter(t, d)
	agent := d.Open(t, "aretry")
	ctx := newBrowser(t, 90*time.Second)

	q := "UPDATE counter SET n = n + 1 WHERE id = 1"
	id := mustPend(t, agent, q, "10m")
	signIn(t, ctx, d.Admin, "dana")
	row := `tr[data-id="` + id + `"]`
	if s := textOf(t, ctx, row+` pre.sql`); s != q {
		t.Fatalf("page shows %q", s)
	}
	if s := textOf(t, ctx, row+` .mode`); !strings.Contains(s, "retry mode") {
		t.Fatalf("mode shown: %q", s)
	}
	if s := textOf(t, ctx, row+` td:nth-child(2)`); !strings.Contains(s, "test-agent") || !strings.Contains(s, "node test-node") {
		t.Fatalf("identity cell: %q", s)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(row+` input.reason`), "ok once"),
		chromedp.Click(chromedp.CSS(row+` button.approve`)),
	); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, `#status`, "retry runs once until")
	if n := counter(t, root, 1); n != 0 {
		t.Fatalf("counter %d before the agent retried", n)
	}
	if _, err := agent.Exec(q); err != nil {
		t.Fatalf("retry after approval: %v", err)
	}
	if again := mustPend(t, agent, q, "10m"); again == id {
		t.Fatal("the approval answered twice")
	}
	if n := counter(t, root, 1); n != 1 {
		t.Fatalf("counter %d, want exactly 1", n)
	}
	waitText(t, ctx, `tr[data-recent-id="`+id+`"] td.status`, "approved by dana; used by session")

	// Denied on the page.
	q2 := "UPDATE counter SET n = n + 1 WHERE id = 2"
	id2 := mustPend(t, agent, q2, "10m")
	row2 := `tr[data-id="` + id2 + `"]`
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(row2)),
		chromedp.SendKeys(chromedp.CSS(row2+` input.reason`), "wrong row"),
		chromedp.Click(chromedp.CSS(row2+` button.deny`)),
	); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, `tr[data-recent-id="`+id2+`"] td.status`, "denied by dana: wrong row")
	_, err := agent.Exec(q2)
	var me *gomysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1227 || !strings.Contains(me.Message, "denied by dana: wrong row") {
		t.Fatalf("retry of the denied request: %v", err)
	}

	// Expiry, shown on a second daemon whose requests expire in 2 s.
	d2 := retryDaemon(t, "2s", "10m")
	agent2 := d2.Open(t, "aretry")
	id3 := mustPend(t, agent2, "UPDATE counter SET n = n + 1 WHERE id = 3", "10m")
	signIn(t, ctx, d2.Admin, "dana")
	waitText(t, ctx, `tr[data-recent-id="`+id3+`"] td.status`, "expired: nobody decided in time")
	if n := counter(t, root, 3); n != 0 {
		t.Fatalf("the expired request ran: counter %d", n)
	}

	agent.Close()
	recs := d.Settled(t)
	var ran []*record.Record
	for _, o := range harness.Outcomes(recs, harness.Stmt("", q)) {
		if o.Status == record.StatusSuccess {
			ran = append(ran, o)
		}
	}
	if len(ran) != 1 || ran[0].Policy.ApprovalID != id || ran[0].Policy.Approver != "dana" || ran[0].Policy.Reason != "ok once" {
		t.Fatalf("executed outcomes: %+v", ran)
	}
}

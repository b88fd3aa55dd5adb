package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sqlwarden/sqlwarden/pkg/audit"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
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
	_, o := pair(t, d.Settled(t), q)
	if o.Status != audit.StatusSuccess || o.Policy == nil || o.Policy.Approver != "dana" || o.Policy.Reason != "reviewed in the browser" {
		t.Fatalf("outcome %+v policy %+v", o, o.Policy)
	}
}

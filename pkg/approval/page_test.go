package approval

import (
	"context"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
)

// chromium returns the browser for page tests; without one the test fails in
// CI or when SQLWARDEN_REQUIRE_BROWSER is set, and skips elsewhere.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("SQLWARDEN_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	if os.Getenv("SQLWARDEN_REQUIRE_BROWSER") != "" {
		t.Fatal("chromium not found and SQLWARDEN_REQUIRE_BROWSER is set (run scripts/install-deps.sh test)")
	}
	return testutil.RequireTool(t, "chromium", "/usr/bin/chromium-browser")
}

// browser starts a fresh headless Chromium for t.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancel()
		cancelAlloc()
	})
	return ctx
}

func TestApproverPageInChromium(t *testing.T) {
	ctx := browser(t)
	a := NewBroker(Config{Timeout: 2 * time.Minute})
	srv := httptest.NewServer(a.Handler(StaticToken(testToken)))
	defer srv.Close()
	defer a.Shutdown()

	// The SQL carries markup: the page must show it as text.
	req := sampleRequest()
	req.SQL = "ALTER TABLE shop.users ADD COLUMN note TEXT /* <img src=x onerror=alert(1)> */"
	ch := request(context.Background(), a, req)
	// What the server runs besides what a human reads, and how it reads it.
	otherReq := Request{SessionID: "s2", Identity: "agent-2", Rule: "ddl-needs-a-human",
		SQL:      "ALTER TABLE shop.orders COMMENT ? /*M!100000 , DROP COLUMN note */",
		Executes: "ALTER TABLE shop.orders COMMENT ?            , DROP COLUMN note   ",
		Command:  "COM_STMT_EXECUTE", SQLMode: "ANSI_QUOTES",
		Params: []record.Param{{Type: "VARCHAR", Value: "abc", Truncated: true, Size: 5000, SHA256: "5eed"}}}
	other := request(context.Background(), a, otherReq)
	pending := waitPending(t, a, 2)
	var id, otherID string
	for _, p := range pending {
		if p.Identity == "agent-1" {
			id = p.ID
		} else {
			otherID = p.ID
		}
	}
	row := `tr[data-id="` + id + `"]`
	otherRow := `tr[data-id="` + otherID + `"]`

	C := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(C(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return v
	}
	err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/approvals"),
		// A wrong token is refused and the sign-in form comes back.
		chromedp.WaitVisible(C(`#token`)),
		chromedp.SendKeys(C(`#token`), "not-the-token"),
		chromedp.Click(C(`#signin`)),
		func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := chromedp.Poll[bool](`document.getElementById("login-error").textContent.length > 0`)(ctx, tg)
			return chromedp.Void{}, err
		},
	)
	if err != nil {
		t.Fatal(err)
	}
	if errText := text(`#login-error`); !strings.Contains(errText, "not accepted") {
		t.Errorf("login error = %q", errText)
	}
	// The right token lists both pending statements.
	err = chromedp.Do(ctx,
		chromedp.WaitVisible(C(`#token`)),
		chromedp.SendKeys(C(`#token`), testToken),
		chromedp.SendKeys(C(`#approver`), "carol"),
		chromedp.Click(C(`#signin`)),
		chromedp.WaitVisible(C(row)),
		chromedp.WaitVisible(C(otherRow)),
	)
	if err != nil {
		t.Fatal(err)
	}
	if sqlText := text(row + ` pre.sql`); sqlText != req.SQL {
		t.Errorf("page shows SQL %q, want %q", sqlText, req.SQL)
	}
	if identity, tables := text(row+` td:nth-child(2)`), text(row+` td:nth-child(4)`); !strings.Contains(identity, "agent-1") || !strings.Contains(tables, "shop.users") {
		t.Errorf("page shows identity %q, tables %q", identity, tables)
	}
	if run := text(otherRow + ` pre.executes`); run != otherReq.Executes {
		t.Errorf("page shows the server's reading %q, want %q", run, otherReq.Executes)
	}
	if warn, ps, how := text(otherRow+` .warn`), text(otherRow+` .params`), text(otherRow+` .reading`); !strings.Contains(warn, "server runs") ||
		!strings.Contains(ps, `"abc" (the first part of 5000 bytes; sha256 5eed)`) || !strings.Contains(how, "COM_STMT_EXECUTE · sql_mode ANSI_QUOTES") {
		t.Errorf("page shows warning %q, parameters %q, reading %q", warn, ps, how)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('tr[data-id="`+id+`"] .warn, tr[data-id="`+id+`"] .params, tr[data-id="`+id+`"] .reading').length`)); err != nil || n != 0 {
		t.Errorf("a plain statement's row shows %d reading notes (%v), want none", n, err)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(C(row+` input.reason`), "planned migration"),
		chromedp.Click(C(row+` button.approve`)),
	)
	if err != nil {
		t.Fatal(err)
	}

	got := wait(t, ch)
	if !got.Approved || got.Status != StatusApproved || got.Approver != "carol" || got.Reason != "planned migration" {
		t.Errorf("Request result = %+v", got)
	}

	// The approved row goes away; Deny on the other releases it denied.
	err = chromedp.Do(ctx,
		chromedp.WaitNotPresent(C(row)),
		chromedp.Click(C(otherRow+` button.deny`)),
		chromedp.WaitNotPresent(C(otherRow)),
		chromedp.WaitVisible(C(`#empty`)),
	)
	if err != nil {
		t.Fatal(err)
	}
	if o := wait(t, other); o.Approved || o.Status != StatusDenied || o.Approver != "carol" {
		t.Errorf("other result = %+v", o)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#rows tr").length`))
	if err != nil || rows != 0 {
		t.Errorf("%d rows left (%v)", rows, err)
	}

	// A request arriving while the page is open shows up by itself.
	late := request(context.Background(), a, Request{SessionID: "s3", Identity: "agent-3", SQL: "CREATE TABLE t (id INT)", Rule: "ddl-needs-a-human"})
	lateID := waitPending(t, a, 1)[0].ID
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(C(`tr[data-id="`+lateID+`"]`)),
		chromedp.Click(C(`tr[data-id="`+lateID+`"] button.approve`)),
	); err != nil {
		t.Fatal(err)
	}
	if r := wait(t, late); !r.Approved {
		t.Errorf("late result = %+v", r)
	}
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/approval"
)

func TestApprovalsCLI(t *testing.T) {
	a := approval.NewBroker(approval.Config{Timeout: time.Minute})
	srv := httptest.NewServer(a.Handler(approval.StaticToken("tok")))
	defer srv.Close()
	defer a.Shutdown()

	start := func(sql string) <-chan approval.Result {
		ch := make(chan approval.Result, 1)
		go func() {
			res, _ := a.Request(context.Background(), approval.Request{SessionID: "s", Identity: "agent-1", SQL: sql, Rule: "ddl-needs-a-human", Tables: []string{"shop.t"}})
			ch <- res
		}()
		return ch
	}
	first, second := start("ALTER TABLE shop.t ADD c INT"), start("DROP INDEX i ON shop.t")
	var ps []approval.Pending
	testutil.Eventually(t, 5*time.Second, func() error {
		if ps = a.Pending(); len(ps) < 2 {
			return fmt.Errorf("requests not pending: %d of 2", len(ps))
		}
		return nil
	})

	run := func(env map[string]string, args ...string) (string, error) {
		for k, v := range env {
			t.Setenv(k, v)
		}
		cmd := newApprovalsCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(args)
		err := cmd.Execute()
		return out.String(), err
	}

	if _, err := run(map[string]string{"SQLWARDEN_ADMIN_TOKEN": ""}, "list", "--admin", srv.URL, "--token", "wrong"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong token: %v", err)
	}
	out, err := run(nil, "list", "--admin", srv.URL, "--token", "tok")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, ps[0].ID) || !strings.Contains(out, ps[1].ID) || !strings.Contains(out, "agent-1") {
		t.Errorf("list output:\n%s", out)
	}
	// The token from the environment, approve one and deny the other.
	env := map[string]string{"SQLWARDEN_ADMIN_TOKEN": "tok", "SQLWARDEN_ADMIN_URL": srv.URL}
	ids := map[string]string{}
	for _, p := range ps {
		ids[p.SQL] = p.ID
	}
	if out, err := run(env, "approve", ids["ALTER TABLE shop.t ADD c INT"], "--reason", "ok by me", "--approver", "dave"); err != nil || !strings.Contains(out, "approved by dave") {
		t.Fatalf("approve: %v\n%s", err, out)
	}
	if out, err := run(env, "deny", ids["DROP INDEX i ON shop.t"], "--reason", "no"); err != nil || !strings.Contains(out, "denied") {
		t.Fatalf("deny: %v\n%s", err, out)
	}
	if r := <-first; !r.Approved || r.Approver != "dave" || r.Reason != "ok by me" {
		t.Errorf("first = %+v", r)
	}
	if r := <-second; r.Approved || r.Status != approval.StatusDenied || r.Reason != "no" {
		t.Errorf("second = %+v", r)
	}
	if out, err := run(env, "list"); err != nil || !strings.Contains(out, "no pending approvals") {
		t.Errorf("list after: %v\n%s", err, out)
	}
	if _, err := run(env, "approve", "nope"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("approve unknown: %v", err)
	}
}

package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/sqlwarden/sqlwarden/pkg/policy"
	"github.com/sqlwarden/sqlwarden/pkg/proxy"
)

// approverAdapter lets the proxy hold statements with the policy package's broker.
type approverAdapter struct{ a *policy.Approvals }

func (ad approverAdapter) Request(ctx context.Context, id *proxy.Identity, sessionID string, st *proxy.Statement, sql, db string, v proxy.Verdict) (proxy.Approval, error) {
	req := policy.ApprovalRequest{SessionID: sessionID, SQL: sql, DB: db, Rule: v.Rule, Message: v.Message}
	if id != nil {
		req.Identity = id.Name
	}
	if c := st.Classification; c != nil {
		req.Kind = c.Kind
		req.Tables = append(append([]string(nil), c.TablesWrite...), c.TablesRead...)
	}
	res, err := ad.a.Request(ctx, req)
	return proxy.Approval{Approved: res.Approved, Status: res.Status, Approver: res.Approver, Reason: res.Reason}, err
}

// setupApprovals starts the approval broker and mounts its API and page on
// the admin server, behind a bearer token (admin.token / admin.token_file)
// and/or OIDC for approvers (admin.oidc).
func (d *daemon) setupApprovals(ctx context.Context, opts *proxy.Options) error {
	cfg := d.cfg
	a := policy.NewApprovals(policy.ApprovalConfig{
		Timeout:    cfg.Policy.Approvals.Timeout,
		WebhookURL: cfg.Policy.Approvals.WebhookURL,
		PageURL:    "http://" + cfg.AdminListen + "/approvals",
		Log:        d.log.With("component", "approvals"),
	})
	// A restart ends pending approvals as denied, audited by their sessions.
	d.beforeDrain = append(d.beforeDrain, a.Shutdown)
	opts.Approver = approverAdapter{a}
	setPendingApprovals(func() int { return len(a.Pending()) })

	var auths []policy.Authenticator
	token := cfg.Admin.Token
	if cfg.Admin.TokenFile != "" {
		b, err := os.ReadFile(cfg.Admin.TokenFile)
		if err != nil {
			return fmt.Errorf("read admin.token_file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token != "" {
		auths = append(auths, policy.StaticToken(token))
	}
	if o := cfg.Admin.OIDC; o != nil && o.Issuer != "" {
		v, err := policy.NewOIDCVerifier(ctx, policy.OIDCConfig{Issuer: o.Issuer, ClientID: o.ClientID, NameClaim: o.NameClaim, Approvers: o.Approvers, Groups: o.Groups})
		if err != nil {
			return err
		}
		auths = append(auths, v)
	}
	if len(auths) == 0 {
		d.log.Warn("no admin.token or admin.oidc configured: the approvals API refuses every request")
	}
	h := a.Handler(policy.AnyOf(auths...))
	d.adminHandlers = append(d.adminHandlers, adminHandler{"/api/v1/approvals", h}, adminHandler{"/api/v1/approvals/", h}, adminHandler{"/approvals", h})
	return nil
}

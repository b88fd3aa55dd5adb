package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/approval"
	"github.com/sqlwarden/sqlwarden/pkg/audit"
	"github.com/sqlwarden/sqlwarden/pkg/proxy"
	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// approverAdapter lets the proxy ask for approvals with the approval broker.
type approverAdapter struct{ a *approval.Broker }

func (ad approverAdapter) Request(ctx context.Context, ask *proxy.ApprovalAsk) (proxy.Approval, error) {
	v, st := ask.Verdict, ask.Statement
	mode := v.ApprovalMode
	if mode == "" {
		mode = ad.a.Mode()
	}
	req := approval.Request{SessionID: ask.SessionID, SQL: ask.SQL, DB: ask.DB, Command: ask.Command,
		SQLMode: ask.Dialect.Mode.String(), Rule: v.Rule, Message: v.Message, Mode: mode,
		Params: append([]record.Param(nil), ask.Params...)}
	switch {
	case ask.Executes != "":
		req.Executes = ask.Executes
	case st.Text != "" && executableComment(ask.SQL):
		// What a human reads as a comment the server runs as SQL.
		req.Executes = st.Text
	}
	if ask.Identity != nil {
		req.Identity = ask.Identity.Name
	}
	if c := st.Classification; c != nil {
		req.Kind = c.Kind
		req.Tables = append(append([]string(nil), c.TablesWrite...), c.TablesRead...)
	}
	res, err := ad.a.Request(ctx, req)
	return proxy.Approval{ID: res.ID, Mode: mode, Approved: res.Approved, Status: res.Status, Approver: res.Approver,
		Reason: res.Reason, RetryValid: approval.ShortDuration(res.RetryTTL)}, err
}

// executableComment reports a comment the server may run (/*! ... */,
// MariaDB's /*M! ... */).
func executableComment(sql string) bool {
	return strings.Contains(sql, "/*!") || strings.Contains(sql, "/*M!") || strings.Contains(sql, "/*m!")
}

// setupApprovals starts the approval broker and mounts its API and page on
// the admin server, behind a bearer token (admin.token / admin.token_file)
// and/or OIDC for approvers (admin.oidc).
func (d *Daemon) setupApprovals(ctx context.Context, opts *proxy.Options) error {
	cfg := d.cfg
	ac := cfg.Policy.Approvals
	log := d.log.With("component", "approvals")
	store, err := d.approvalStore(log)
	if err != nil {
		return err
	}
	a := approval.NewBroker(approval.Config{
		Timeout:    ac.Timeout,
		Mode:       ac.Mode,
		RetryTTL:   ac.RetryTTL,
		Node:       cfg.Node,
		Store:      store,
		WebhookURL: ac.WebhookURL,
		PageURL:    cfg.ApproverPageURL(),
		Log:        log,
		Journal: func(r *record.Record) {
			if err := d.journal.AppendAsync(r); err != nil {
				log.Error("audit approval", "err", err)
			}
		},
	})
	// A restart ends pending approvals as denied, audited by their sessions.
	d.beforeDrain = append(d.beforeDrain, a.Shutdown)
	opts.Approver = approverAdapter{a}
	d.metrics.SetPendingApprovals(func() int { return len(a.Pending()) })
	if err := d.metrics.RegisterApprovalStore(ac.Store, func() bool { return a.StoreErr() == nil }); err != nil {
		log.Warn("register approval store metric", "err", err)
	}
	d.readyChecks = append(d.readyChecks, func() error {
		if err := a.StoreErr(); err != nil {
			return fmt.Errorf("approval store: %w", err)
		}
		return nil
	})

	var auths []approval.Authenticator
	token := cfg.Admin.Token
	if cfg.Admin.TokenFile != "" {
		b, err := os.ReadFile(cfg.Admin.TokenFile)
		if err != nil {
			return fmt.Errorf("read admin.token_file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token != "" {
		auths = append(auths, approval.StaticToken(token))
	}
	if o := cfg.Admin.OIDC; o != nil && o.Issuer != "" {
		v, err := approval.NewOIDCVerifier(ctx, approval.OIDCConfig{Issuer: o.Issuer, ClientID: o.ClientID, NameClaim: o.NameClaim, Approvers: o.Approvers, Groups: o.Groups})
		if err != nil {
			return err
		}
		auths = append(auths, v)
	}
	if len(auths) == 0 {
		d.log.Warn("no admin.token or admin.oidc configured: the approvals API refuses every request")
	}
	d.adminAuth = approval.AnyOf(auths...)
	h := a.Handler(d.adminAuth)
	d.adminHandlers = append(d.adminHandlers, adminHandler{"/api/v1/approvals", h}, adminHandler{"/api/v1/approvals/", h}, adminHandler{"/approvals", h})
	return nil
}

// approvalStore opens the configured store: memory, or the fleet's NATS
// JetStream bucket (connected in the background: until it is reachable,
// statements that need an approval are refused, others are not).
func (d *Daemon) approvalStore(log *slog.Logger) (approval.Store, error) {
	ac := d.cfg.Policy.Approvals
	if ac.Store != "nats" {
		return approval.NewMemoryStore(), nil
	}
	t := ac.NATS.TLS
	tc, err := audit.TLSConfig{Enabled: t.Enabled, CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
		ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}.Build()
	if err != nil {
		return nil, fmt.Errorf("config policy.approvals.nats.tls: %w", err)
	}
	s, err := approval.NewNATSStore(approval.NATSStoreConfig{URL: ac.NATS.URL, Bucket: ac.NATS.Bucket, CredsFile: ac.NATS.CredsFile,
		TLS: tc, Node: d.cfg.Node, TTL: ac.Timeout + ac.RetryTTL + 24*time.Hour, Log: log})
	if err != nil {
		return nil, err
	}
	d.closers = append(d.closers, s.Close)
	return s, nil
}

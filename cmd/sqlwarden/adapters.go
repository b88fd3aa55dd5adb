package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/pingcap/tidb/pkg/parser/ast"

	"github.com/sqlwarden/sqlwarden/pkg/audit"
	"github.com/sqlwarden/sqlwarden/pkg/identity"
	"github.com/sqlwarden/sqlwarden/pkg/masking"
	"github.com/sqlwarden/sqlwarden/pkg/policy"
	"github.com/sqlwarden/sqlwarden/pkg/proxy"
)

// The adapters below connect the packages to the small interfaces the proxy
// declares, so the proxy never imports policy, masking or identity.

type policyAdapter struct{ engine *policy.Engine }

func (p policyAdapter) Classify(sql, db string) *proxy.Statement {
	st := policy.Classify(sql, db)
	out := &proxy.Statement{
		Classification: &audit.Classification{Kind: st.Kind, TablesRead: st.TablesRead, TablesWrite: st.TablesWritten, Statements: st.Count},
		Digest:         st.Digest,
		Parsed:         st.Parsed,
		Opaque:         st,
	}
	if len(st.Kinds) > 1 {
		out.Classification.Kinds = st.Kinds
	}
	for _, n := range st.Nodes {
		switch n := n.(type) {
		case *ast.UseStmt:
			out.UseDB = n.DBName
		case *ast.KillStmt:
			out.KillTarget = n.ConnectionID
		case *ast.LoadDataStmt:
			if n.FileLocRef == ast.FileLocClient {
				out.LocalInfile = true
			}
		}
	}
	return out
}

func (p policyAdapter) Decide(id *proxy.Identity, st *proxy.Statement, s proxy.Session) proxy.Verdict {
	pst, _ := st.Opaque.(*policy.Statement)
	if pst == nil {
		pst = &policy.Statement{Kind: policy.KindUnparsed, Count: 1}
	}
	var rec *audit.Identity
	if id != nil {
		rec = id.Record
	}
	d := p.engine.Decide(policy.Input{Identity: rec, Statement: pst, Session: policy.Session{
		ID: s.ID, DB: s.DB, User: s.User, ClientAddr: s.ClientAddr, Command: s.Command}})
	return proxy.Verdict{Rule: d.Rule, Action: d.Action, Message: d.Message}
}

type maskerAdapter struct{ m *masking.Masker }

func (a maskerAdapter) Plan(ctx context.Context, id *proxy.Identity, db, sql string, st *proxy.Statement) (proxy.MaskPlan, error) {
	var nodes []ast.StmtNode
	if pst, ok := st.Opaque.(*policy.Statement); ok {
		nodes = pst.Nodes
	}
	plan, err := a.m.Plan(ctx, id.Name, db, sql, nodes)
	if err != nil {
		var de *masking.DeniedError
		if errors.As(err, &de) {
			return nil, &proxy.MaskDenied{Rule: orDefault(de.Rule, "masking"), Message: de.Message}
		}
		return nil, &proxy.MaskDenied{Rule: "masking", Message: fmt.Sprintf("cannot plan masking: %v", err)}
	}
	if plan == nil {
		return nil, nil
	}
	return planAdapter{plan}, nil
}

type planAdapter struct{ p *masking.Plan }

func (a planAdapter) ResultSet(i int, cols [][]byte) (proxy.RowMasker, error) {
	rm, err := a.p.ResultSet(i, cols)
	if err != nil || rm == nil {
		return nil, err
	}
	return rm, nil
}

func (a planAdapter) Summary() []audit.Masked { return a.p.Summary() }

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// toProxyIdentity turns a verified identity into what the proxy carries.
func toProxyIdentity(id *identity.Identity, podLabels map[string]string) *proxy.Identity {
	return &proxy.Identity{
		Name:    id.Name,
		Backend: id.Backend,
		Record:  id.Audit(),
		Attribute: func(sql string) *audit.Attribution {
			return identity.Attribute(id, podLabels, identity.ParseSQLComment(sql))
		},
	}
}

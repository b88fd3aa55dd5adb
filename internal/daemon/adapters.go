package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/sqlwarden/sqlwarden/pkg/masking"
	"github.com/sqlwarden/sqlwarden/pkg/policy"
	"github.com/sqlwarden/sqlwarden/pkg/proxy"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
)

// The types below connect the packages to the small interfaces the proxy
// declares, so the proxy never imports policy, masking or identity. They do
// not convert statements or verdicts: pkg/statement's types are shared.

// policyDeps is the proxy's Policy: pkg/statement classifies (through its
// shape-keyed cache) and judges statements for the limits, the policy
// engine decides and resolves limits.
type policyDeps struct {
	*statement.Cache
	*policy.Engine
}

func newPolicyDeps(pe *policy.Engine) policyDeps {
	return policyDeps{Cache: statement.NewCache(), Engine: pe}
}

// Limits resolves an identity's limits: one record.Limits for the policy
// that resolves them and the proxy that enforces them.
func (p policyDeps) Limits(identity string) record.Limits { return p.LimitsFor(identity) }

type maskerAdapter struct{ m *masking.Masker }

func (a maskerAdapter) Plan(ctx context.Context, id *proxy.Identity, db, sql string, st *statement.Statement) (proxy.MaskPlan, error) {
	p, err := a.m.PlanStatement(ctx, id.Name, db, sql, st)
	if err != nil {
		var de *masking.DeniedError
		if errors.As(err, &de) {
			return nil, &proxy.MaskDenied{Rule: orDefault(de.Rule, "masking"), Message: de.Message}
		}
		return nil, &proxy.MaskDenied{Rule: "masking", Message: fmt.Sprintf("cannot plan masking: %v", err)}
	}
	if p == nil {
		return nil, nil
	}
	return planAdapter{p}, nil
}

// SchemaChange lets masking follow tables and views changed through the proxy.
func (a maskerAdapter) SchemaChange() (done func()) { return a.m.SchemaChange() }

type planAdapter struct{ p *masking.Plan }

// Stale reports a plan made against tables or views changed since.
func (a planAdapter) Stale() bool { return a.p.Stale() }

// RedactErrors: errors and warnings of statements over masked data stay
// with the proxy.
func (a planAdapter) RedactErrors() bool { return a.p.RedactErrors() }

func (a planAdapter) ResultSet(i int, cols [][]byte) (proxy.RowMasker, error) {
	rm, err := a.p.ResultSet(i, cols)
	if err != nil || rm == nil {
		return nil, err
	}
	return rm, nil
}

func (a planAdapter) Summary() []record.Masked { return a.p.Summary() }

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

package proxy

import (
	"github.com/sqlwarden/sqlwarden/pkg/credscrub"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
	"github.com/sqlwarden/sqlwarden/pkg/wire/rows"
)

// credentialPlan removes password hashes and authentication strings from
// result sets shaped like SHOW GRANTS or SHOW CREATE USER output (one
// column named "Grants for ..." or "CREATE USER for ..."), in text and
// binary rows; other result sets go to the column-masking plan, if any.
type credentialPlan struct {
	inner  MaskPlan
	editor credscrub.Editor
	column string
}

// RuleCredentialScrub names the scrubbing in outcome records (masked[].rule).
const RuleCredentialScrub = "credentials"

func (p *credentialPlan) ResultSet(i int, cols [][]byte) (RowMasker, error) {
	if len(cols) == 1 {
		if c, err := wire.ParseColumn(cols[0]); err == nil && credscrub.IsCredentialColumn(c.Name) {
			p.column = string(c.Name)
			return &credentialMasker{rw: rows.NewRewriter([]byte{c.Type}, []bool{true}, &p.editor)}, nil
		}
	}
	if p.inner == nil {
		return nil, nil
	}
	return p.inner.ResultSet(i, cols)
}

func (p *credentialPlan) Summary() []record.Masked {
	var out []record.Masked
	if p.inner != nil {
		out = p.inner.Summary()
	}
	if p.editor.Count > 0 {
		out = append(out, record.Masked{Column: p.column, Rule: RuleCredentialScrub, Count: p.editor.Count})
	}
	return out
}

// RedactErrors: server errors are only redacted when columns are masked too.
func (p *credentialPlan) RedactErrors() bool { return p.inner != nil && redactsErrors(p.inner) }

// Stale reports whether the plan it wraps was made against tables or views
// changed since.
func (p *credentialPlan) Stale() bool { return isStale(p.inner) }

type credentialMasker struct{ rw *rows.Rewriter }

func (m *credentialMasker) Text(row, dst []byte) ([]byte, bool, error) { return m.rw.Text(row, dst) }
func (m *credentialMasker) Binary(row, dst []byte) ([]byte, bool, error) {
	return m.rw.Binary(row, dst)
}
func (m *credentialMasker) ColumnDef(_ int, def []byte) []byte { return def }

// redactsErrors reports whether a plan wants quoted values removed from
// server errors: every column-masking plan does.
func redactsErrors(p MaskPlan) bool {
	if r, ok := p.(interface{ RedactErrors() bool }); ok {
		return r.RedactErrors()
	}
	return true
}

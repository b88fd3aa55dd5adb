package proxy

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/pingcap/tidb/pkg/parser/ast"

	"github.com/sqlwarden/sqlwarden/pkg/statement"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// executing judges a text with EXECUTE of SQL-level prepared statements by
// what it runs: each EXECUTE is classified as the text the session
// prepared under that name (read in the database it was prepared in), so
// policy, approvals, limits and the journal see the DELETE an EXECUTE runs,
// not an EXECUTE. An EXECUTE whose text the session does not know (prepared
// from a variable, in a procedure, by a PREPARE that failed) is refused
// whatever the policy says. A single EXECUTE ... USING has its variables
// read on the backend leg (the session is serial: what they hold now is what
// it runs with) and recorded as its parameters; in a multi-statement an
// earlier statement could change them after they are read: refused.
func (s *session) executing(st *stmtLife) error {
	resolved := statement.ClassifyPrepared(st.sql, st.db, st.dialect, s.preparedStatement)
	st.st = resolved
	st.runs = strings.Join(resolved.Runs, ";\n")
	refuse := func(why string) {
		if resolved.Refused == "" {
			resolved.Refused = why
		}
	}
	if len(resolved.Executes) > 0 {
		refuse(fmt.Sprintf("EXECUTE of %s, which this session did not prepare from a literal text: what it runs cannot be judged", resolved.Executes[0]))
		return nil
	}
	var ex *ast.ExecuteStmt
	using := 0
	for _, n := range resolved.Nodes {
		if e, ok := n.(*ast.ExecuteStmt); ok {
			ex = e
			using += len(e.UsingVars)
		}
	}
	if ex == nil || using == 0 {
		if resolved.Count == 1 && ex != nil {
			st.db = s.sqlPrep[statement.FoldName(ex.Name)].DB
		}
		return nil
	}
	if resolved.Count != 1 {
		refuse("EXECUTE ... USING must be a statement of its own: sqlwarden reads the variables to record what the statement runs with")
		return nil
	}
	st.db = s.sqlPrep[statement.FoldName(ex.Name)].DB
	names := make([]string, len(ex.UsingVars))
	for i, u := range ex.UsingVars {
		v, ok := u.(*ast.VariableExpr)
		if !ok || v.IsSystem || v.Name == "" {
			refuse("EXECUTE ... USING takes user variables")
			return nil
		}
		// In hex: the bytes the server binds, whatever the client's
		// character_set_results would make of them; 'v' tells NULL (no
		// 'v') from the empty string.
		// (CONCAT(@x): a number's digits as text; HEX of a number would be
		// the number in hexadecimal.)
		names[i] = "CONCAT('v', HEX(CONCAT(@" + quoteIdent(v.Name) + ")))"
	}
	rows, failed, err := s.backendQuery("SELECT " + strings.Join(names, ", "))
	if err != nil {
		return err
	}
	if failed != "" {
		refuse("the variables of EXECUTE ... USING could not be read: " + failed)
		return nil
	}
	if len(rows) != 1 || len(rows[0]) != len(names) {
		refuse("the variables of EXECUTE ... USING could not be read")
		return nil
	}
	params := make([]wire.Param, len(rows[0]))
	for i, v := range rows[0] {
		params[i].Type = "@" + ex.UsingVars[i].(*ast.VariableExpr).Name
		if strings.HasPrefix(v, "v") {
			b, err := hex.DecodeString(v[1:])
			if err != nil {
				refuse("the variables of EXECUTE ... USING could not be read")
				return nil
			}
			params[i].Keep(string(b))
		}
	}
	st.params = auditParams(params)
	return nil
}

// backendQuery runs q on the session's backend leg (between two client
// commands: the session is serial). failed is the server's refusal; err a
// broken leg, which ends the session.
func (s *session) backendQuery(q string) (rows [][]string, failed string, err error) {
	rows, err = wire.SimpleQuery(s.backend, q)
	if err != nil {
		var se *wire.ServerError
		if errors.As(err, &se) {
			return nil, se.Message, nil
		}
		return nil, "", &protocolError{side: "backend", err: err}
	}
	return rows, "", nil
}

// allPrepares reports a text of SQL-level PREPAREs only.
func allPrepares(kinds []string) bool {
	for _, k := range kinds {
		if k != "PREPARE" {
			return false
		}
	}
	return len(kinds) > 0
}

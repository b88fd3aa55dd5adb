package statement

import (
	"fmt"
	"slices"

	"github.com/pingcap/tidb/pkg/parser/ast"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
)

// settle derives the facts the proxy reads (see Statement) from a finished
// classification, and returns st.
func (st *Statement) settle() *Statement {
	st.Classification = &record.Classification{Kind: st.Kind, TablesRead: st.TablesRead, TablesWrite: st.TablesWritten, Statements: st.Count}
	if len(st.Kinds) > 1 {
		st.Classification.Kinds = st.Kinds
	}
	// Under ANSI_QUOTES or NO_BACKSLASH_ESCAPES the digest's normalizer reads
	// strings differently from the server: nothing is shared there.
	// Only the plain statement itself: a PREPARE's kind is its text's, whose
	// literal (all of it, as one string) the shape erases.
	st.Cacheable = st.Count == 1 && len(st.Kinds) == 1 && st.Kinds[0] == st.Kind && cacheableKind(st.Kind) &&
		!st.DynamicSQL && st.Dialect.Mode&sqltext.LexMode == 0
	st.Reread = st.SetsSession || !st.Parsed || slices.Contains(st.Kinds, "EXECUTE")
	st.ChangesSchema = !st.Cacheable && (!st.Parsed || st.IsDDL || st.DynamicSQL || len(st.Routines) > 0 ||
		slices.Contains(st.Kinds, "CALL") || slices.Contains(st.Kinds, "EXECUTE"))
	for _, n := range st.Nodes {
		switch n := n.(type) {
		case *ast.UseStmt:
			st.UseDB = n.DBName
		case *ast.KillStmt:
			st.KillTarget = n.ConnectionID
		case *ast.LoadDataStmt:
			if n.FileLocRef == ast.FileLocClient {
				st.LocalInfile = true
			}
		case *ast.DeallocateStmt:
			if !StatementNameOK(n.Name) && st.Refused == "" {
				st.Refused = fmt.Sprintf("prepared statement name %q: sqlwarden takes names of ASCII letters, digits, _ and $ only (the server folds others differently)", n.Name)
			}
			st.Deallocates = append(st.Deallocates, FoldName(n.Name))
		}
	}
	return st
}

// cacheableKind: statement kinds whose classification depends only on the
// text's shape (literal values erased) and the current database: plain
// reads and writes, the bulk of what agents send. KILL, USE, PREPARE and
// the rest carry meaning in their literals or identifiers and are parsed
// every time.
func cacheableKind(kind string) bool {
	switch kind {
	case "SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE":
		return true
	}
	return false
}

package statement

import (
	"github.com/pingcap/tidb/pkg/parser/ast"
)

// TableRef is a table a statement names: Schema is empty when the statement
// left it unqualified and no database was current.
type TableRef struct {
	Schema, Name string
}

// BoundedWrite is how a max_affected_rows limit sees a statement.
type BoundedWrite struct {
	// Write is a single INSERT, REPLACE, UPDATE, DELETE or LOAD DATA, whose
	// changed rows the server counts: it runs in a transaction or savepoint
	// that is rolled back past the limit.
	Write bool
	// Tables are the tables a Write changes.
	Tables []TableRef
	// Execute names the SQL-level prepared statement an EXECUTE runs; its
	// text must be judged in its place.
	Execute string
	// Refuse says why the rows the statement changes cannot be bounded.
	Refuse string
}

// BoundWrite judges a statement for max_affected_rows. db is the current
// database, for unqualified table names.
func BoundWrite(st *Statement, db string) BoundedWrite {
	if st == nil || !st.Parsed || len(st.Nodes) == 0 {
		return BoundedWrite{Refuse: "the statement could not be parsed, so the rows it changes cannot be counted"}
	}
	var out BoundedWrite
	writes := 0
	for _, n := range st.Nodes {
		switch x := n.(type) {
		case *ast.UseStmt:
			db = x.DBName
			continue
		case *ast.InsertStmt, *ast.UpdateStmt, *ast.DeleteStmt, *ast.LoadDataStmt:
			writes++
			out.Tables = append(out.Tables, writtenTables(n, db)...)
		case *ast.ExplainStmt:
			if x.Analyze && x.Stmt != nil {
				switch x.Stmt.(type) {
				case *ast.InsertStmt, *ast.UpdateStmt, *ast.DeleteStmt:
					return BoundedWrite{Refuse: "EXPLAIN ANALYZE of a write cannot be bounded"}
				}
			}
		case *ast.CallStmt:
			return BoundedWrite{Refuse: "CALL runs a procedure whose writes cannot be counted"}
		case *ast.LockTablesStmt:
			return BoundedWrite{Refuse: "LOCK TABLES: the transaction a bounded write runs in would release the locks"}
		case *ast.TruncateTableStmt:
			return BoundedWrite{Refuse: "TRUNCATE removes every row and cannot be rolled back"}
		case *ast.DropTableStmt:
			if !x.IsView {
				return BoundedWrite{Refuse: "DROP TABLE removes every row and cannot be rolled back"}
			}
		case *ast.DropDatabaseStmt:
			return BoundedWrite{Refuse: "DROP DATABASE removes every row and cannot be rolled back"}
		case *ast.ExecuteStmt:
			if len(st.Nodes) > 1 {
				return BoundedWrite{Refuse: "EXECUTE in a multi-statement cannot be bounded"}
			}
			out.Execute = x.Name
		}
		if r := storedCall(n); r != "" {
			return BoundedWrite{Refuse: r}
		}
	}
	if writes > 0 && len(st.Nodes) > 1 {
		return BoundedWrite{Refuse: "a multi-statement that writes cannot be bounded statement by statement"}
	}
	out.Write = writes == 1
	return out
}

// storedCall finds a call of a function that is not a known builtin: a
// stored function's writes are not counted in the statement's affected rows.
func storedCall(n ast.Node) string {
	v := &storedVisitor{}
	n.Accept(v)
	return v.reason
}

type storedVisitor struct{ reason string }

func (v *storedVisitor) Enter(n ast.Node) (ast.Node, bool) {
	if x, ok := n.(*ast.FuncCallExpr); ok {
		_, builtin := sideEffects[x.FnName.L]
		if x.Schema.L != "" || (!pureFunctions[x.FnName.L] && !builtin) {
			v.reason = "function " + x.FnName.O + " may be a stored function, whose writes cannot be counted"
		}
	}
	return n, v.reason != ""
}

func (v *storedVisitor) Leave(n ast.Node) (ast.Node, bool) { return n, true }

// writtenTables lists the tables one statement writes.
func writtenTables(n ast.StmtNode, db string) []TableRef {
	c := classifier{db: db, st: &Statement{}}
	w := &walker{ctes: map[string]bool{}, aliases: map[string]*ast.TableName{}, targets: map[*ast.TableName]bool{}}
	n.Accept(w)
	c.markTargets(n, w)
	if d, ok := n.(*ast.DeleteStmt); ok && d.IsMultiTable && d.Tables != nil {
		// DELETE x FROM a x ...: the names listed are aliases of the tables
		// deleted from, not tables of their own.
		for _, t := range d.Tables.Tables {
			if t.Schema.L == "" && w.aliases[t.Name.L] != nil && w.aliases[t.Name.L] != t {
				delete(w.targets, t)
			}
		}
	}
	var out []TableRef
	seen := map[TableRef]bool{}
	for _, t := range w.names {
		if !w.targets[t] || (t.Schema.L == "" && w.ctes[t.Name.L]) {
			continue
		}
		r := TableRef{Schema: t.Schema.O, Name: t.Name.O}
		if r.Schema == "" {
			r.Schema = db
		}
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

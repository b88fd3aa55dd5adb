package masking

import (
	"context"
	"fmt"
	"strings"

	"github.com/pingcap/tidb/pkg/parser/ast"
	"github.com/pingcap/tidb/pkg/parser/opcode"

	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
)

// lineage is what feeds one result column (or one expression): the strictest
// masked source, whether the value is that source passed through unchanged,
// and whether some input could not be resolved.
//
// Aggregates: COUNT(...) reveals no value and contributes nothing; every other
// aggregate (MIN, MAX, SUM, AVG, GROUP_CONCAT, JSON_ARRAYAGG, ANY_VALUE, ...)
// and every function propagates its arguments' lineage. A value computed from
// a masked column (not a bare reference) is always redacted, whatever the
// rule says: partial or hash of SUBSTR(card, 5, 4) would leak digits.
type lineage struct {
	rule    *rule
	source  string
	direct  bool
	unknown bool
	why     string // for unknown lineage
}

var strictness = map[string]int{StrategyPartial: 1, StrategyHash: 2, StrategyRedact: 3, StrategyNull: 4}

// derive folds b into a as inputs of one computed value.
func (a lineage) derive(b lineage) lineage {
	out := a.union(b)
	out.direct = false
	return out
}

// union folds b into a as alternative sources of one column (UNION, CTE recursion).
func (a lineage) union(b lineage) lineage {
	out := a
	if b.rule != nil && (a.rule == nil || strictness[b.rule.Strategy] > strictness[a.rule.Strategy]) {
		out.rule, out.source = b.rule, b.source
	}
	out.direct = (a.rule == nil || a.direct) && (b.rule == nil || b.direct)
	if b.unknown && !a.unknown {
		out.unknown, out.why = true, b.why
	}
	return out
}

// final applies the derived-value rule.
func (l lineage) final() lineage {
	if l.rule != nil && !l.direct && (l.rule.Strategy == StrategyPartial || l.rule.Strategy == StrategyHash) {
		r := *l.rule
		r.Strategy = StrategyRedact
		l.rule = &r
	}
	return l
}

type column struct {
	name string
	lin  lineage
}

type relation struct {
	db, name string
	cols     []column
	known    bool // cols is complete
	// system names the system catalog behind the relation (under an alias
	// too): its columns are unknown, and matched against the rules by name.
	system *systemTable
}

type systemTable struct{ db, name string }

type scope struct {
	parent *scope
	rels   []*relation
	ctes   map[string]*relation
	fields []column // select list, for aliases in ORDER BY / HAVING / GROUP BY
}

func (s *scope) cte(name string) *relation {
	for ; s != nil; s = s.parent {
		if r, ok := s.ctes[name]; ok {
			return r
		}
	}
	return nil
}

// analyzer walks one statement.
type analyzer struct {
	ctx     context.Context
	m       *Masker
	st      *state
	rules   []*rule
	epoch   uint64 // the masker's schema epoch when the analysis began
	db      string
	dialect sqltext.Dialect // how the server reads the statement and PREPARE texts
	touched bool            // a table with masked columns is read
	unknown string          // first reason lineage could not be determined
	denied  *DeniedError
	depth   int
}

func (a *analyzer) deny(r *rule, format string, args ...any) {
	if a.denied == nil {
		name := ""
		if r != nil {
			name = r.Name
		}
		a.denied = &DeniedError{Rule: name, Message: fmt.Sprintf(format, args...)}
	}
}

func (a *analyzer) noteUnknown(why string) lineage {
	if a.unknown == "" {
		a.unknown = why
	}
	return lineage{unknown: true, why: why}
}

func (a *analyzer) ruleFor(db, table, col string) *rule {
	for _, r := range a.rules {
		if r.matches(db, table, col) {
			return r
		}
	}
	return nil
}

func (m *Masker) plan(ctx context.Context, st *state, rs []*rule, epoch uint64, db string, d sqltext.Dialect, stmts []ast.StmtNode) (*Plan, error) {
	p := &Plan{st: st, rules: rs, variable: -1, m: m, epoch: epoch}
	a := &analyzer{ctx: ctx, m: m, st: st, rules: rs, epoch: epoch, db: strings.ToLower(db), dialect: d}
	for _, s := range stmts {
		a.statement(p, s)
		if a.denied != nil {
			return nil, a.denied
		}
	}
	if a.unknown != "" && a.touched && st.cfg.Unknown != Allow {
		return nil, &DeniedError{Message: "cannot tell which columns feed the result (" + a.unknown + ") of a statement reading masked columns"}
	}
	for _, r := range p.results {
		for i := range r.cols {
			r.cols[i] = r.cols[i].final()
		}
	}
	p.touched = a.touched
	return p, nil
}

func (a *analyzer) statement(p *Plan, s ast.StmtNode) {
	result := func(cols []column, known bool) {
		rp := &resultPlan{unknown: !known}
		for _, c := range cols {
			rp.cols = append(rp.cols, c.lin)
		}
		p.results = append(p.results, rp)
	}
	switch s := s.(type) {
	case *ast.SelectStmt, *ast.SetOprStmt:
		cols, known := a.query(s.(ast.ResultSetNode), nil)
		result(cols, known)
	case *ast.InsertStmt:
		sc := &scope{}
		if s.Table != nil {
			sc.rels, _ = a.from(s.Table.TableRefs, sc)
		}
		if s.Select != nil {
			cols, known := a.query(s.Select, sc)
			a.copyCheck(cols, known, "INSERT … SELECT")
		}
		for _, row := range s.Lists {
			for _, e := range row {
				a.copyCheck([]column{{lin: a.expr(e, sc)}}, true, "INSERT")
			}
		}
		for _, as := range s.OnDuplicate {
			a.copyCheck([]column{{lin: a.expr(as.Expr, sc)}}, true, "INSERT … SET")
		}
	case *ast.UpdateStmt:
		sc := &scope{}
		a.with(s.With, sc)
		if s.TableRefs != nil {
			sc.rels, _ = a.from(s.TableRefs.TableRefs, sc)
		}
		for _, as := range s.List {
			a.copyCheck([]column{{lin: a.expr(as.Expr, sc)}}, true, "UPDATE … SET")
		}
		a.probe(s.Where, sc, "WHERE")
		a.probeOrder(s.Order, sc, "ORDER BY")
	case *ast.DeleteStmt:
		sc := &scope{}
		a.with(s.With, sc)
		if s.TableRefs != nil {
			sc.rels, _ = a.from(s.TableRefs.TableRefs, sc)
		}
		a.probe(s.Where, sc, "WHERE")
		a.probeOrder(s.Order, sc, "ORDER BY")
	case *ast.CreateTableStmt:
		if s.Select != nil {
			cols, known := a.query(s.Select, nil)
			a.copyCheck(cols, known, "CREATE TABLE … SELECT")
		}
	case *ast.CreateViewStmt:
		// Reading the view later is analysed through its definition.
	case *ast.AlterTableStmt:
		// A generated column over a masked one, a renamed column or table:
		// the rules name columns, and the data would move out from under
		// the names.
		a.schemaChange(s.Table, "ALTER TABLE")
	case *ast.RenameTableStmt:
		for _, t := range s.TableToTables {
			a.schemaChange(t.OldTable, "RENAME TABLE")
		}
	case *ast.SetStmt:
		for _, v := range s.Variables {
			if v.Value != nil {
				a.varCheck(a.expr(v.Value, &scope{}), v.Name)
			}
		}
	case *ast.DoStmt:
		for _, e := range s.Exprs {
			a.expr(e, &scope{})
		}
	case *ast.PrepareStmt:
		if s.SQLVar != nil {
			if len(a.rules) > 0 {
				a.deny(nil, "PREPARE from a variable cannot be checked for masked columns")
			}
			return
		}
		// The server reads the prepared text as it reads a statement.
		text, err := sqltext.Executable(s.SQLText, a.dialect)
		var stmts []ast.StmtNode
		if err == nil {
			stmts, err = a.m.parse(text, a.dialect.Mode)
		}
		if err != nil {
			a.touched = true
			a.noteUnknown("PREPARE text does not parse")
			return
		}
		inner := &Plan{variable: -1}
		for _, st := range stmts {
			a.statement(inner, st)
		}
		for _, r := range inner.results {
			for _, l := range r.cols {
				if l.rule != nil {
					a.deny(l.rule, "SQL-level PREPARE of a statement reading masked column %s; use protocol prepared statements", l.source)
				}
			}
		}
	case *ast.ExecuteStmt:
		// The statement was checked at PREPARE; its columns are unknown here.
		p.results = append(p.results, &resultPlan{unknown: true})
	case *ast.CallStmt:
		if len(a.rules) > 0 && a.st.cfg.Unknown != Allow {
			a.deny(nil, "CALL runs a stored procedure whose results cannot be checked for masked columns")
		}
		if p.variable < 0 {
			p.variable = len(p.results)
		}
	case *ast.ShowStmt:
		if (s.Tp == ast.ShowWarnings || s.Tp == ast.ShowErrors) && len(a.rules) > 0 {
			// Warning texts can quote values ("Truncated incorrect INTEGER value: '...'").
			msg := &rule{Rule: Rule{Name: "warnings", Strategy: StrategyRedact}}
			p.results = append(p.results, &resultPlan{cols: []lineage{{}, {}, {rule: msg, source: "warnings.message", direct: true}}})
			return
		}
		if s.Tp == ast.ShowProcessList && len(a.rules) > 0 {
			// Info is information_schema.processlist.info, one of the
			// server's copies: the literals of other sessions on the same
			// account (an application's INSERT of a card number). MariaDB's
			// nine columns; a server that sends another number gets every
			// column masked (a lineage mismatch).
			cols := make([]lineage, 9) // Id User Host db Command Time State Info Progress
			cols[7] = lineage{rule: serverCopies, source: "information_schema.processlist.info", direct: true}
			p.results = append(p.results, &resultPlan{cols: cols})
			return
		}
		p.results = append(p.results, &resultPlan{noData: true})
	case *ast.ExplainStmt:
		// EXPLAIN returns no column values, but its row estimates answer
		// questions about the rows a WHERE selects (with an index or a
		// histogram, how many rows hold values in a range): the explained
		// statement is checked as if it ran, and its results dropped.
		if s.Stmt != nil {
			a.statement(&Plan{variable: -1}, s.Stmt)
		}
		p.results = append(p.results, &resultPlan{noData: true})
	case *ast.LoadDataStmt, *ast.UseStmt, *ast.BeginStmt, *ast.CommitStmt, *ast.RollbackStmt,
		*ast.DeallocateStmt, *ast.SetDefaultRoleStmt:
	default:
		if _, ok := s.(ast.DDLNode); ok {
			return
		}
		// Unknown statement kind: it may or may not return rows.
		if p.variable < 0 {
			p.variable = len(p.results)
		}
	}
}

// copyCheck refuses copying masked values into tables, files or variables.
func (a *analyzer) copyCheck(cols []column, known bool, what string) {
	for _, c := range cols {
		if c.lin.rule != nil {
			a.deny(c.lin.rule, "%s copies masked column %s", what, c.lin.source)
			return
		}
		if c.lin.unknown {
			a.noteUnknown(c.lin.why)
		}
	}
	if !known {
		a.noteUnknown(what + " of unknown columns")
	}
}

func (a *analyzer) varCheck(l lineage, name string) {
	if l.rule != nil {
		a.deny(l.rule, "assigning masked column %s to variable @%s", l.source, name)
	}
}

func (a *analyzer) probe(e ast.ExprNode, sc *scope, clause string) {
	if e == nil {
		return
	}
	l := a.expr(e, sc)
	if l.rule != nil && a.st.cfg.Probing != Allow {
		a.deny(l.rule, "%s reads masked column %s", clause, l.source)
	}
}

// probeColumns refuses a clause that compares result columns derived from
// masked ones (DISTINCT, UNION): the rows that survive are the answer.
func (a *analyzer) probeColumns(cols []column, clause string) {
	for _, c := range cols {
		if c.lin.rule != nil && a.st.cfg.Probing != Allow {
			a.deny(c.lin.rule, "%s compares masked column %s", clause, c.lin.source)
			return
		}
	}
}

func (a *analyzer) probeOrder(o *ast.OrderByClause, sc *scope, clause string) {
	if o == nil {
		return
	}
	for _, it := range o.Items {
		a.probe(it.Expr, sc, clause)
	}
}

func (a *analyzer) with(w *ast.WithClause, sc *scope) {
	if w == nil {
		return
	}
	if sc.ctes == nil {
		sc.ctes = map[string]*relation{}
	}
	for _, cte := range w.CTEs {
		name := strings.ToLower(cte.Name.L)
		rel := &relation{name: name}
		if w.IsRecursive {
			// Recursive parts see the CTE itself: iterate until its lineage settles.
			seed := &relation{name: name, known: true}
			if so, ok := cte.Query.Query.(*ast.SetOprStmt); ok && so.SelectList != nil && len(so.SelectList.Selects) > 0 {
				cols, known := a.query(so.SelectList.Selects[0], sc)
				seed.cols, seed.known = renamed(cols, cte.ColNameList), known
			}
			sc.ctes[name] = seed
			for i := 0; i < 4; i++ {
				cols, known := a.query(cte.Query.Query, sc)
				rel = &relation{name: name, cols: renamed(cols, cte.ColNameList), known: known}
				prev := sc.ctes[name]
				sc.ctes[name] = rel
				if sameLineage(prev, rel) {
					break
				}
			}
		} else {
			cols, known := a.query(cte.Query.Query, sc)
			rel.cols, rel.known = renamed(cols, cte.ColNameList), known
		}
		sc.ctes[name] = rel
	}
}

func sameLineage(a, b *relation) bool {
	if len(a.cols) != len(b.cols) || a.known != b.known {
		return false
	}
	for i := range a.cols {
		if a.cols[i].lin.rule != b.cols[i].lin.rule || a.cols[i].lin.unknown != b.cols[i].lin.unknown ||
			a.cols[i].lin.direct != b.cols[i].lin.direct {
			return false
		}
	}
	return true
}

func renamed(cols []column, names []ast.CIStr) []column {
	if len(names) == 0 {
		return cols
	}
	out := make([]column, len(cols))
	copy(out, cols)
	for i := range out {
		if i < len(names) {
			out[i].name = names[i].L
		}
	}
	return out
}

// query returns the result columns of a SELECT, UNION or other result set
// node; known is false when their number could not be determined.
func (a *analyzer) query(n ast.Node, outer *scope) ([]column, bool) {
	a.depth++
	defer func() { a.depth-- }()
	if a.depth > 64 {
		a.noteUnknown("nesting too deep")
		return nil, false
	}
	switch n := n.(type) {
	case *ast.SelectStmt:
		return a.selectStmt(n, outer)
	case *ast.SetOprStmt:
		sc := &scope{parent: outer}
		a.with(n.With, sc)
		cols, known := a.query(n.SelectList, sc)
		a.probeOrderNames(n.OrderBy, cols, sc)
		return cols, known
	case *ast.SetOprSelectList:
		sc := &scope{parent: outer}
		a.with(n.With, sc)
		var cols []column
		known, compares := true, false
		for i, s := range n.Selects {
			var op *ast.SetOprType
			switch s := s.(type) {
			case *ast.SelectStmt:
				op = s.AfterSetOperator
			case *ast.SetOprSelectList:
				op = s.AfterSetOperator
			}
			if op != nil && *op != ast.UnionAll {
				compares = true
			}
			c, k := a.query(s, sc)
			known = known && k
			if i == 0 {
				cols = append([]column(nil), c...)
				continue
			}
			if len(c) != len(cols) {
				known = false
				continue
			}
			for j := range cols {
				cols[j].lin = cols[j].lin.union(c[j].lin)
			}
		}
		if compares {
			// UNION (DISTINCT), INTERSECT and EXCEPT compare rows: how many
			// come back says whether a masked value equals a constant in
			// another branch.
			a.probeColumns(cols, "UNION, INTERSECT or EXCEPT")
		}
		a.probeOrderNames(n.OrderBy, cols, sc)
		return cols, known
	case *ast.SubqueryExpr:
		return a.query(n.Query, outer)
	}
	a.touched = true
	return nil, false
}

// probeOrderNames checks ORDER BY of a UNION, which names result columns.
func (a *analyzer) probeOrderNames(o *ast.OrderByClause, cols []column, sc *scope) {
	if o == nil {
		return
	}
	s := &scope{parent: sc, fields: cols}
	a.probeOrder(o, s, "ORDER BY")
}

func (a *analyzer) selectStmt(s *ast.SelectStmt, outer *scope) ([]column, bool) {
	sc := &scope{parent: outer}
	a.with(s.With, sc)
	known := true
	if s.From != nil {
		var k bool
		sc.rels, k = a.from(s.From.TableRefs, sc)
		known = known && k
	}
	var cols []column
	if s.Fields != nil {
		for _, f := range s.Fields.Fields {
			if f.WildCard != nil {
				c, k := a.wildcard(f.WildCard, sc)
				cols = append(cols, c...)
				known = known && k
				continue
			}
			l := a.expr(f.Expr, sc)
			name := f.AsName.L
			if name == "" {
				if cn, ok := f.Expr.(*ast.ColumnNameExpr); ok {
					name = cn.Name.Name.L
				} else {
					name = strings.ToLower(strings.TrimSpace(f.Text()))
				}
			}
			cols = append(cols, column{name: name, lin: l})
		}
	}
	for _, row := range s.Lists { // VALUES ROW(...)
		for _, e := range row.Values {
			a.expr(e, sc)
		}
	}
	sc.fields = cols
	if s.Distinct {
		a.probeColumns(cols, "SELECT DISTINCT")
	}
	a.probe(s.Where, sc, "WHERE")
	if s.GroupBy != nil {
		for _, it := range s.GroupBy.Items {
			a.probe(it.Expr, sc, "GROUP BY")
		}
	}
	if s.Having != nil {
		a.probe(s.Having.Expr, sc, "HAVING")
	}
	a.probeOrder(s.OrderBy, sc, "ORDER BY")
	for i := range s.WindowSpecs {
		a.windowSpec(&s.WindowSpecs[i], sc)
	}
	if s.SelectIntoOpt != nil {
		a.copyCheck(cols, known, "SELECT … INTO")
	}
	return cols, known
}

func (a *analyzer) windowSpec(w *ast.WindowSpec, sc *scope) {
	if w.PartitionBy != nil {
		for _, it := range w.PartitionBy.Items {
			a.probe(it.Expr, sc, "PARTITION BY")
		}
	}
	a.probeOrder(w.OrderBy, sc, "window ORDER BY")
}

func (a *analyzer) wildcard(w *ast.WildCardField, sc *scope) ([]column, bool) {
	var cols []column
	known := true
	matched := false
	for _, r := range sc.rels {
		if w.Table.L != "" && (r.name != w.Table.L || (w.Schema.L != "" && r.db != w.Schema.L)) {
			continue
		}
		matched = true
		cols = append(cols, r.cols...)
		known = known && r.known
	}
	if !matched {
		a.noteUnknown("* over an unknown table")
		known = false
	}
	if !known {
		a.noteUnknown("* over a table whose columns are unknown")
	}
	return cols, known
}

// from builds the relations of a FROM clause and checks join conditions.
func (a *analyzer) from(n ast.ResultSetNode, sc *scope) ([]*relation, bool) {
	switch n := n.(type) {
	case nil:
		return nil, true
	case *ast.Join:
		left, k1 := a.from(n.Left, sc)
		right, k2 := a.from(n.Right, sc)
		rels := append(left, right...)
		js := &scope{parent: sc.parent, rels: rels, ctes: sc.ctes}
		if n.On != nil {
			a.probe(n.On.Expr, js, "JOIN … ON")
		}
		for _, u := range n.Using {
			a.probe(&ast.ColumnNameExpr{Name: u}, js, "JOIN … USING")
		}
		if n.NaturalJoin {
			for _, l := range left {
				for _, c := range l.cols {
					for _, r := range right {
						for _, rc := range r.cols {
							if rc.name == c.name && (c.lin.rule != nil || rc.lin.rule != nil) && a.st.cfg.Probing != Allow {
								rr := c.lin.rule
								if rr == nil {
									rr = rc.lin.rule
								}
								a.deny(rr, "NATURAL JOIN compares masked column %s", c.name)
							}
						}
					}
				}
			}
		}
		return rels, k1 && k2
	case *ast.TableSource:
		alias := n.AsName.L
		switch src := n.Source.(type) {
		case *ast.TableName:
			r := a.table(src, sc)
			if alias != "" {
				cp := *r
				cp.name, cp.db = alias, ""
				r = &cp
			}
			// A system catalog's columns are resolved by name, so a select
			// list naming them is known column by column.
			return []*relation{r}, r.known || r.system != nil
		case *ast.SelectStmt, *ast.SetOprStmt:
			cols, known := a.query(src, sc.parent)
			return []*relation{{name: alias, cols: cols, known: known}}, known
		}
		a.touched = true
		a.noteUnknown("unsupported table source")
		return []*relation{{name: alias}}, false
	case *ast.SelectStmt, *ast.SetOprStmt:
		cols, known := a.query(n, sc.parent)
		return []*relation{{cols: cols, known: known}}, known
	}
	a.touched = true
	a.noteUnknown(fmt.Sprintf("unsupported FROM element %T", n))
	return nil, false
}

// table resolves a table name to a CTE, a view or a base table.
func (a *analyzer) table(t *ast.TableName, sc *scope) *relation {
	name := t.Name.L
	if t.Schema.L == "" {
		if c := sc.cte(name); c != nil {
			return c
		}
	}
	db := t.Schema.L
	if db == "" {
		db = a.db
	}
	rel := &relation{db: db, name: name}
	if db == "" {
		a.touched = true
		a.noteUnknown("no database selected")
		return rel
	}
	if db == "information_schema" || db == "performance_schema" || db == "mysql" || db == "sys" {
		// System catalogs: metadata, resolved by name only (resolve
		// matches their columns against the rules by name: some hold
		// copies of column values).
		rel.known, rel.system = false, &systemTable{db: db, name: name}
		return rel
	}
	v := a.m.view(a.ctx, a.epoch, db, name)
	if v.err != nil {
		a.touched = true
		a.noteUnknown(v.err.Error())
		return rel
	}
	if v.ok {
		if a.depth > 32 {
			a.touched = true
			a.noteUnknown("views nested too deep")
			return rel
		}
		// A view's definition is analysed in its own database.
		saved := a.db
		a.db = db
		cols, known := a.query(v.stmt, nil)
		a.db = saved
		names, err := a.m.columns(a.ctx, a.epoch, db, name)
		if err == nil && len(names) == len(cols) {
			for i := range cols {
				cols[i].name = names[i]
			}
		}
		rel.cols, rel.known = cols, known
		return rel
	}
	names, err := a.m.columns(a.ctx, a.epoch, db, name)
	if err != nil || len(names) == 0 {
		a.touched = true
		if err == nil {
			err = fmt.Errorf("table %s.%s has no columns", db, name)
		}
		a.noteUnknown(err.Error())
		return rel
	}
	rel.known = true
	rel.cols = make([]column, len(names))
	for i, c := range names {
		r := a.ruleFor(db, name, c)
		if r != nil {
			a.touched = true
		}
		rel.cols[i] = column{name: c, lin: lineage{rule: r, source: db + "." + name + "." + c, direct: true}}
	}
	return rel
}

// schemaChange refuses a change to a table with masked columns (for this
// identity's rules).
func (a *analyzer) schemaChange(t *ast.TableName, what string) {
	if t == nil || len(a.rules) == 0 {
		return
	}
	db := t.Schema.L
	if db == "" {
		db = a.db
	}
	names, err := a.m.columns(a.ctx, a.epoch, db, t.Name.L)
	if err != nil {
		return // no such table: the server refuses the change
	}
	for _, c := range names {
		if r := a.ruleFor(db, t.Name.L, c); r != nil {
			a.deny(r, "%s of %s.%s, which has masked column %s: a changed table could take masked data out from under the rules' names", what, db, t.Name.L, c)
			return
		}
	}
}

// resolve finds the lineage of a column reference in sc and its parents.
func (a *analyzer) resolve(cn *ast.ColumnName, sc *scope) lineage {
	name := cn.Name.L
	for s := sc; s != nil; s = s.parent {
		var out lineage
		found, uncertain, system := false, false, false
		for _, r := range s.rels {
			if cn.Table.L != "" && (r.name != cn.Table.L || (cn.Schema.L != "" && r.db != "" && r.db != cn.Schema.L)) {
				continue
			}
			if r.system != nil {
				if rr := a.ruleFor(r.system.db, r.system.name, name); rr != nil {
					a.touched = true
					return lineage{rule: rr, source: r.system.db + "." + r.system.name + "." + name, direct: true}
				}
				system = true
				continue
			}
			if !r.known {
				uncertain = true
			}
			for _, c := range r.cols {
				if c.name == name {
					if found {
						out = out.union(c.lin)
					} else {
						out, found = c.lin, true
					}
				}
			}
		}
		if cn.Table.L == "" {
			// Where the select list's aliases are in scope (HAVING, ORDER
			// BY), an alias may shadow a column of the same name — the server
			// prefers the alias there — so a name both could mean carries
			// both lineages: `card AS name ... HAVING name LIKE '4%'` is a
			// probe of card.
			for _, f := range s.fields {
				if f.name == name {
					if found {
						return out.union(f.lin)
					}
					return f.lin
				}
			}
		}
		if found {
			return out
		}
		if uncertain {
			return a.noteUnknown("column " + name + " of a table whose columns are unknown")
		}
		if system {
			// Metadata (no rule names it): unknown to the value detectors,
			// not a reason to refuse the statement.
			return lineage{unknown: true, why: "column " + name + " of a system catalog"}
		}
	}
	return a.noteUnknown("unresolved column " + name)
}

// expr returns the lineage of an expression, checking the subqueries and
// variable assignments inside it.
func (a *analyzer) expr(e ast.ExprNode, sc *scope) lineage {
	if e == nil {
		return lineage{}
	}
	v := &exprVisitor{a: a, sc: sc}
	e.Accept(v)
	if v.channel != "" && v.out.rule != nil {
		a.deny(v.out.rule, "%s would carry masked column %s out of the result set", v.channel, v.out.source)
	}
	if v.n == 1 && v.single {
		return v.out
	}
	v.out.direct = false
	return v.out
}

type exprVisitor struct {
	a      *analyzer
	sc     *scope
	out    lineage
	n      int  // inputs seen
	single bool // the whole expression is one column reference
	top    bool
	// channel names a function that leaks its input through errors or time.
	channel string
}

func (v *exprVisitor) add(l lineage) {
	if v.n == 0 {
		v.out = l
	} else {
		v.out = v.out.derive(l)
	}
	v.n++
}

func (v *exprVisitor) Enter(n ast.Node) (ast.Node, bool) {
	first := !v.top
	v.top = true
	switch n := n.(type) {
	case *ast.ColumnNameExpr:
		v.add(v.a.resolve(n.Name, v.sc))
		v.single = first
		return n, true
	case *ast.SubqueryExpr:
		cols, known := v.a.query(n.Query, v.sc)
		if n.Exists {
			// EXISTS yields a boolean; the subquery's own filters were checked.
			return n, true
		}
		for _, c := range cols {
			l := c.lin
			l.direct = false
			v.add(l)
		}
		if !known {
			v.add(v.a.noteUnknown("subquery of unknown shape"))
		}
		return n, true
	case *ast.AggregateFuncExpr:
		if strings.EqualFold(n.F, ast.AggFuncCount) {
			for _, arg := range n.Args {
				// Still check nested subqueries and assignments. COUNT
				// answers in clear: COUNT(DISTINCT) compares what it
				// counts, and COUNT of an expression counts where it is
				// NULL, which a function of a masked value can decide
				// (COUNT(STR_TO_DATE(SUBSTR(card, 1, 1), '4'))).
				l := v.a.expr(arg, v.sc)
				switch {
				case l.rule == nil || v.a.st.cfg.Probing == Allow:
				case n.Distinct:
					v.a.deny(l.rule, "COUNT(DISTINCT) compares masked column %s", l.source)
				case !l.direct:
					v.a.deny(l.rule, "COUNT of an expression of masked column %s counts where it is NULL", l.source)
				}
			}
			if n.Order != nil {
				v.a.probeOrder(n.Order, v.sc, "aggregate ORDER BY")
			}
			return n, true
		}
	case *ast.VariableExpr:
		if n.Value != nil {
			l := v.a.expr(n.Value, v.sc)
			if !n.IsSystem {
				v.a.varCheck(l, n.Name)
			}
			v.add(l)
			return n, true
		}
		if !n.IsSystem {
			v.add(lineage{}) // user variables hold no masked value: assignments are refused
		}
		return n, true
	case *ast.PositionExpr:
		if n.N >= 1 && n.N <= len(v.sc.fields) {
			v.add(v.sc.fields[n.N-1].lin)
		} else {
			v.add(v.a.noteUnknown("position out of range"))
		}
		return n, true
	case *ast.FuncCallExpr:
		if n.Schema.L != "" || !isBuiltin(n.FnName.L) {
			// A stored function can read any table.
			v.a.touched = true
			v.add(v.a.noteUnknown("stored function " + n.FnName.O))
		}
		switch n.FnName.L {
		case "extractvalue", "updatexml",
			// Dynamic columns fail on a blob they cannot read: which blob
			// a masked value makes decides whether the statement fails.
			"column_get", "column_json", "column_list", "column_exists", "column_add", "column_delete":
			v.channel = "error message of " + n.FnName.L
		case "sleep", "benchmark", "get_lock", "release_lock", "is_free_lock", "is_used_lock", "master_pos_wait":
			v.channel = "timing of " + n.FnName.L
		case "exp", "pow", "power", "cot", "degrees":
			v.channel = overflowChannel
		case "last_insert_id":
			// LAST_INSERT_ID(x) keeps x for the session: the next
			// LAST_INSERT_ID() returns it, out of any masking's reach.
			if len(n.Args) > 0 {
				if l := v.a.expr(n.Args[0], v.sc); l.rule != nil {
					v.a.deny(l.rule, "LAST_INSERT_ID(%s) keeps a masked value for the session", l.source)
				}
			}
		case "repeat", "lpad", "rpad", "space":
			// How much they make, and so how long what reads it takes
			// (MD5(REPEAT('a', digit * 1000000))), is a masked value's.
			v.sizeArg(n.FnName.L, n.Args, map[string]int{"repeat": 1, "lpad": 1, "rpad": 1, "space": 0}[n.FnName.L])
		case "regexp_like", "regexp_substr", "regexp_instr", "regexp_replace":
			v.channel = regexpChannel
		case "if", "elt", "nvl2", "field", "make_set", "decode_oracle":
			// Which of the other arguments run (or, for FIELD, how many)
			// depends on the first.
			k := min(1, len(n.Args))
			return v.branch(n, n.FnName.L, n.Args[:k], n.Args[k:])
		case "nullif":
			return v.branch(n, n.FnName.L, n.Args, nil)
		case "ifnull", "nvl", "coalesce":
			k := max(0, len(n.Args)-1)
			return v.branch(n, n.FnName.L, n.Args[:k], n.Args[k:])
		}
	case *ast.CaseExpr:
		var conds, results []ast.ExprNode
		if n.Value != nil {
			conds = append(conds, n.Value)
		}
		for _, w := range n.WhenClauses {
			conds = append(conds, w.Expr)
			results = append(results, w.Result)
		}
		if n.ElseClause != nil {
			results = append(results, n.ElseClause)
		}
		return v.branch(n, "CASE", conds, results)
	case *ast.BinaryOperationExpr:
		switch n.Op {
		case opcode.Plus, opcode.Minus, opcode.Mul, opcode.Div, opcode.IntDiv, opcode.Mod:
			v.channel = overflowChannel
		case opcode.LogicAnd, opcode.LogicOr:
			// The right side runs only when the left does not decide.
			return v.branch(n, strings.ToUpper(n.Op.String()), []ast.ExprNode{n.L, n.R}, nil)
		}
	case *ast.UnaryOperationExpr:
		if n.Op == opcode.Minus {
			v.channel = overflowChannel
		}
	case *ast.PatternInExpr:
		// x IN (a, b, …) stops at the first match: what follows it runs
		// only when x differs.
		if n.Sel == nil {
			return v.branch(n, "IN", []ast.ExprNode{n.Expr}, n.List)
		}
	case *ast.PatternRegexpExpr:
		v.channel = regexpChannel
	case *ast.MatchAgainst:
		// MATCH (cols) AGAINST (...) reads its columns through the full-text
		// index: its score, or the rows a WHERE MATCH keeps, answer for the
		// value as a comparison would.
		for _, c := range n.ColumnNames {
			v.add(v.a.resolve(c, v.sc))
		}
	case *ast.WindowFuncExpr:
		v.a.windowSpec(&n.Spec, v.sc)
		// NTILE(n) and NTH_VALUE(x, n) fail for n <= 0: whether the
		// statement fails answers for a masked n.
		switch strings.ToLower(n.Name) {
		case ast.WindowFuncNtile:
			v.sizeArg(n.Name, n.Args, 0)
		case ast.WindowFuncNthValue:
			v.sizeArg(n.Name, n.Args, 1)
		}
	}
	return n, false
}

// sizeArg refuses a masked value as argument i of fn, a count that decides
// whether fn fails or how long it runs.
func (v *exprVisitor) sizeArg(fn string, args []ast.ExprNode, i int) {
	if i >= len(args) {
		return
	}
	if l := v.a.expr(args[i], v.sc); l.rule != nil {
		v.a.deny(l.rule, "%s counted by masked column %s (an error or the time it takes would answer for it)", strings.ToUpper(fn), l.source)
	}
}

func (v *exprVisitor) Leave(n ast.Node) (ast.Node, bool) { return n, true }

// overflowChannel: arithmetic on a masked value fails with an out-of-range
// error for some values and not others (EXP(ASCII(SUBSTR(card, 1, 1)) * 10)
// fails exactly when the first digit is past 7), so whether the statement
// fails answers a question about the value however its result is masked.
const overflowChannel = "an out-of-range error of arithmetic"

// regexpChannel: a pattern that backtracks catastrophically on some values
// ((4|a+)+$ against a card number) takes seconds where others take
// microseconds, so the statement's time answers for the value.
const regexpChannel = "timing of a regular expression"

// branch refuses a choice made on a masked value: which branch of IF, CASE,
// NULLIF, COALESCE or a short-circuit AND/OR runs depends on the value, and a
// branch that fails (a subquery of two rows, EXP(1000)) or waits turns that
// choice into an answer, one bit a statement, masked result or not. It
// takes the place of walking n's children: every argument, conds (what the
// choice is made on) and the rest, is analysed once and added here, so that
// nested choices (a chain of ANDs) cost what their size does, not twice
// that per level.
func (v *exprVisitor) branch(n ast.Node, what string, conds, rest []ast.ExprNode) (ast.Node, bool) {
	for _, c := range conds {
		l := v.a.expr(c, v.sc)
		if l.rule != nil && v.a.st.cfg.Probing != Allow {
			// probing: allow lets a WHERE ask, so a branch has nothing
			// left to hide.
			v.a.deny(l.rule, "%s chooses on masked column %s (an error or a delay in one branch would answer for it)", what, l.source)
		}
		v.add(l)
	}
	for _, e := range rest {
		v.add(v.a.expr(e, v.sc))
	}
	return n, true
}

package masking

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/wire"
	"github.com/sqlwarden/sqlwarden/pkg/wire/rows"
)

// FuzzLineage drives the lineage analyser with SQL generated from the fuzz
// input (joins, derived tables, views, CTEs, unions, scalar subqueries and
// nested expressions over the test schema) and checks it against the
// generator's own account of where each result column comes from: a column
// computed from a masked column is masked (or its lineage is unknown, which
// masks it while streaming), a computed one is never masked with a
// reversible-looking strategy (partial or hash), and the result has the
// generated number of columns. Refusals are allowed (they leak nothing).
// The input is also planned as raw SQL, which must only not panic.
func FuzzLineage(f *testing.F) {
	for _, s := range [][]byte{
		{}, {0}, {1, 2, 3, 4, 5, 6, 7, 8}, {3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3},
		{2, 1, 0, 4, 2, 9, 9, 1, 3, 0, 5, 7, 2, 2, 8, 1}, {7, 0, 6, 1, 5, 2, 4, 3, 3, 4, 2, 5, 1, 6, 0, 7},
		[]byte("SELECT card FROM customers"), []byte("WITH t AS (SELECT email FROM customers) SELECT * FROM t"),
	} {
		f.Add(s)
	}
	m := New(Config{Rules: testRules, HashKey: []byte("k")}, testSchema)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		g := &sqlGen{b: data}
		sql, cols := g.query(0, 0)
		p, err := m.Plan(ctx, "agent", "shop", sql, testDialect, nil)
		var d *DeniedError
		switch {
		case errors.As(err, &d):
		case err != nil:
			t.Fatalf("Plan(%q): %v", sql, err)
		default:
			checkGenerated(t, sql, cols, p)
		}
		if len(data) < 4096 {
			_, _ = m.Plan(ctx, "agent", "shop", string(data), testDialect, nil)
		}
	})
}

func checkGenerated(t *testing.T, sql string, want []gcol, p *Plan) {
	t.Helper()
	tainted := false
	for _, c := range want {
		tainted = tainted || c.taint
	}
	if p == nil {
		if tainted {
			t.Fatalf("%s\nno masking plan, but columns come from masked ones: %+v", sql, want)
		}
		return
	}
	if len(p.results) == 0 || p.variable == 0 {
		if tainted {
			t.Fatalf("%s\nplan has no result set", sql)
		}
		return
	}
	rp := p.results[0]
	if rp.unknown {
		return // every column is masked as it streams
	}
	if len(rp.cols) != len(want) {
		t.Fatalf("%s\nplanned %d columns, the statement returns %d", sql, len(rp.cols), len(want))
	}
	for i, c := range want {
		l := rp.cols[i]
		if !c.taint || l.unknown {
			continue
		}
		if l.rule == nil {
			t.Fatalf("%s\ncolumn %d (%s) comes from a masked column but is not masked", sql, i, c.name)
		}
		if c.derived && (l.rule.Strategy == StrategyPartial || l.rule.Strategy == StrategyHash) {
			t.Fatalf("%s\ncolumn %d (%s) is computed from a masked column but masked with %s", sql, i, c.name, l.rule.Strategy)
		}
	}
}

// gcol is a generated column: whether its value comes from a masked column,
// and whether it may have been computed from it (not a bare reference).
type gcol struct {
	name    string
	taint   bool
	derived bool
}

type grel struct {
	alias string
	cols  []gcol
}

// sqlGen turns bytes into SQL over testSchema, knowing each column's origin.
type sqlGen struct {
	b   []byte
	i   int
	seq int
}

func (g *sqlGen) pick(n int) int {
	if g.i >= len(g.b) || n <= 1 {
		return 0
	}
	v := int(g.b[g.i]) % n
	g.i++
	return v
}

func (g *sqlGen) name(prefix string) string {
	g.seq++
	return fmt.Sprintf("%s%d", prefix, g.seq)
}

var baseTables = []struct {
	name string
	cols []gcol
}{
	{"customers", []gcol{{"id", false, false}, {"name", false, false}, {"card", true, false}, {"email", true, false},
		{"salary", true, false}, {"birth", true, false}, {"profile", true, false}}},
	{"orders", []gcol{{"id", false, false}, {"customer_id", false, false}, {"total", false, false}}},
	{"v_cards", []gcol{{"cid", false, false}, {"c", true, false}}},
}

// query returns a SELECT (with width columns, or 1-4 when width is 0).
func (g *sqlGen) query(depth, width int) (string, []gcol) {
	if depth < 2 && g.pick(6) == 0 {
		// WITH t AS (...) SELECT ... FROM t
		inner, cols := g.selectStmt(depth+1, width)
		cte := g.name("t")
		rel := grel{cte, cols}
		outer, out := g.selectFrom(depth, width, []grel{rel}, cte)
		return "WITH " + cte + " AS (" + inner + ") " + outer, out
	}
	s, cols := g.selectStmt(depth, width)
	if depth < 2 && g.pick(5) == 0 {
		s2, cols2 := g.selectStmt(depth+1, len(cols))
		for i := range cols {
			cols[i].taint = cols[i].taint || cols2[i].taint
			cols[i].derived = cols[i].derived || cols2[i].derived
		}
		s = s + " UNION ALL " + s2
	}
	return s, cols
}

func (g *sqlGen) selectStmt(depth, width int) (string, []gcol) {
	var rels []grel
	var from []string
	n := 1 + g.pick(2)
	for k := 0; k < n; k++ {
		alias := g.name("r")
		if depth < 2 && g.pick(4) == 0 {
			inner, cols := g.query(depth+1, 0)
			rels = append(rels, grel{alias, cols})
			from = append(from, "("+inner+") AS "+alias)
			continue
		}
		bt := baseTables[g.pick(len(baseTables))]
		rels = append(rels, grel{alias, bt.cols})
		from = append(from, bt.name+" AS "+alias)
	}
	return g.selectFrom(depth, width, rels, strings.Join(from, " CROSS JOIN "))
}

func (g *sqlGen) selectFrom(depth, width int, rels []grel, from string) (string, []gcol) {
	if width == 0 {
		width = 1 + g.pick(4)
	}
	var sel []string
	var out []gcol
	for k := 0; k < width; k++ {
		e, c := g.expr(depth, rels, 0)
		c.name = fmt.Sprintf("a%d", k)
		sel = append(sel, e+" AS "+c.name)
		out = append(out, c)
	}
	s := "SELECT " + strings.Join(sel, ", ") + " FROM " + from
	// filters only on columns that are not masked: a masked column in WHERE
	// is a probe, refused, which would make the check vacuous
	if r := rels[g.pick(len(rels))]; g.pick(3) == 0 {
		for _, c := range r.cols {
			if !c.taint {
				s += " WHERE " + r.alias + "." + c.name + " IS NOT NULL"
				break
			}
		}
	}
	return s, out
}

func (g *sqlGen) expr(depth int, rels []grel, level int) (string, gcol) {
	choice := g.pick(12)
	if level >= 3 {
		choice %= 3
	}
	switch choice {
	case 0, 1: // a column reference
		r := rels[g.pick(len(rels))]
		c := r.cols[g.pick(len(r.cols))]
		return r.alias + "." + c.name, gcol{taint: c.taint, derived: c.derived}
	case 2: // a literal
		return []string{"'x'", "42", "NULL", "3.5"}[g.pick(4)], gcol{}
	case 3, 4: // a function of one argument
		fn := []string{"UPPER", "LOWER", "HEX", "REVERSE", "TRIM", "LENGTH", "MD5", "TO_BASE64"}[g.pick(8)]
		e, c := g.expr(depth, rels, level+1)
		return fn + "(" + e + ")", derive(c)
	case 5, 6: // a function of two
		fn := []string{"CONCAT", "COALESCE", "IFNULL", "CONCAT_WS"}[g.pick(4)]
		a, ca := g.expr(depth, rels, level+1)
		b, cb := g.expr(depth, rels, level+1)
		return fn + "(" + a + ", " + b + ")", derive(join(ca, cb))
	case 7: // arithmetic
		a, ca := g.expr(depth, rels, level+1)
		b, cb := g.expr(depth, rels, level+1)
		return "(" + a + " + " + b + ")", derive(join(ca, cb))
	case 8: // CASE with a condition on nothing masked
		a, ca := g.expr(depth, rels, level+1)
		b, cb := g.expr(depth, rels, level+1)
		return "CASE WHEN 1 = 1 THEN " + a + " ELSE " + b + " END", derive(join(ca, cb))
	case 9: // CAST
		e, c := g.expr(depth, rels, level+1)
		return "CAST(" + e + " AS CHAR)", derive(c)
	case 10: // SUBSTR
		e, c := g.expr(depth, rels, level+1)
		return "SUBSTR(" + e + ", 2, 3)", derive(c)
	default: // a scalar subquery
		if depth >= 2 {
			return "7", gcol{}
		}
		q, cols := g.query(depth+1, 1)
		// a bare column through a subquery may stay "direct"; only its
		// masking is checked, not the strategy
		c := cols[0]
		return "(" + q + " LIMIT 1)", gcol{taint: c.taint}
	}
}

func derive(c gcol) gcol { return gcol{taint: c.taint, derived: c.taint} }

func join(a, b gcol) gcol { return gcol{taint: a.taint || b.taint, derived: a.derived || b.derived} }

// maskTypes are the column types FuzzRowMasker gives the masked columns.
var maskTypes = []byte{gm.MYSQL_TYPE_VAR_STRING, gm.MYSQL_TYPE_BLOB, gm.MYSQL_TYPE_LONG, gm.MYSQL_TYPE_LONGLONG,
	gm.MYSQL_TYPE_NEWDECIMAL, gm.MYSQL_TYPE_DOUBLE, gm.MYSQL_TYPE_FLOAT, gm.MYSQL_TYPE_DATE, gm.MYSQL_TYPE_DATETIME,
	gm.MYSQL_TYPE_TIMESTAMP, gm.MYSQL_TYPE_TIME, gm.MYSQL_TYPE_JSON, gm.MYSQL_TYPE_TINY, gm.MYSQL_TYPE_SHORT,
	gm.MYSQL_TYPE_YEAR, gm.MYSQL_TYPE_BIT, gm.MYSQL_TYPE_ENUM, gm.MYSQL_TYPE_STRING, gm.MYSQL_TYPE_NULL}

// FuzzRowMasker feeds rows as a backend could send them (text and binary,
// any column types the definitions claim) through the masker of a plan with
// every strategy: no panic, and a row the masker accepts comes out as a
// well-formed row of the same width whose rewritten column definitions
// still parse.
func FuzzRowMasker(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0}, []byte{0x10, '4', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', '1', 0x03, 'a', '@', 'b', 0x01, '5', 0xfb, 0x02, '{', '}', 0x01, '1'}, false)
	f.Add([]byte{2, 3, 4, 8, 11, 2}, []byte{0, 0x08, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0x04, '1', '.', '2', '5', 0x02, '{', '}', 9, 0, 0, 0}, true)
	f.Add([]byte{7, 9, 10, 5, 6, 14}, []byte{0, 0, 4, 0xe8, 0x07, 5, 6, 7, 0xe8, 0x07, 5, 6, 7, 8, 9, 8, 0, 1, 0, 0, 0, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0x40, 0xd0, 0x07}, true)
	m := New(Config{Rules: append(append([]Rule(nil), testRules...),
		Rule{Name: "names", Columns: []string{"shop.customers.name"}, Strategy: StrategyNull}), HashKey: []byte("k")}, testSchema)
	p, err := m.Plan(context.Background(), "agent", "shop", "SELECT card, email, salary, birth, name, id FROM customers", testDialect, nil)
	if err != nil || p == nil {
		f.Fatalf("plan: %v %v", p, err)
	}
	names := []string{"card", "email", "salary", "birth", "name", "id"}
	f.Fuzz(func(t *testing.T, types, row []byte, binary bool) {
		defs := make([][]byte, len(names))
		cols := make([]wire.Column, len(names))
		for i, n := range names {
			typ := gm.MYSQL_TYPE_VAR_STRING
			var flags uint16
			if i < len(types) {
				typ = maskTypes[int(types[i])%len(maskTypes)]
				if types[i]&0x80 != 0 {
					flags |= gm.UNSIGNED_FLAG
				}
			}
			defs[i] = wire.AppendColumn(nil, "shop", "customers", "customers", n, n, 45, 255, typ, flags, 0)
		}
		rm, err := p.ResultSet(0, defs)
		if err != nil {
			t.Fatalf("ResultSet: %v", err)
		}
		if rm == nil {
			t.Fatal("no row masker for masked columns")
		}
		for i := range defs {
			def := rm.ColumnDef(i, defs[i])
			if cols[i], err = wire.ParseColumn(def); err != nil {
				t.Fatalf("rewritten definition %d does not parse: %v", i, err)
			}
		}
		var out []byte
		if binary {
			out, _, err = rm.Binary(row, nil)
		} else {
			out, _, err = rm.Text(row, nil)
		}
		if err != nil {
			return // refused as malformed: the proxy ends the statement
		}
		if err := wellFormed(out, binary, cols); err != nil {
			t.Fatalf("masked row %x (from %x) is malformed: %v", out, row, err)
		}
	})
}

// wellFormed checks that row holds exactly one value per column.
func wellFormed(row []byte, binary bool, cols []wire.Column) error {
	if !binary {
		pos := 0
		for range cols {
			_, _, n, ok := wire.LenEncString(row[pos:])
			if !ok {
				return fmt.Errorf("value at %d: %w", pos, wire.ErrMalformed)
			}
			pos += n
		}
		if pos != len(row) {
			return fmt.Errorf("%d trailing bytes", len(row)-pos)
		}
		return nil
	}
	pos := 1 + rows.BitmapLen(len(cols))
	if len(row) < pos || row[0] != 0 {
		return errors.New("bad binary row header")
	}
	for i := range cols {
		bit := i + 2
		if row[1+bit/8]&(1<<(bit%8)) != 0 {
			continue
		}
		next, err := wire.BinaryValueEnd(row, pos, cols[i].Type)
		if err != nil {
			return fmt.Errorf("column %d: %w", i, err)
		}
		pos = next
	}
	if pos != len(row) {
		return fmt.Errorf("%d trailing bytes", len(row)-pos)
	}
	return nil
}

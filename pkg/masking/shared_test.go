package masking

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/pingcap/tidb/pkg/parser/ast"

	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// countingSchema counts the questions asked of testSchema; fail makes them fail.
type countingSchema struct {
	asked atomic.Int64
	fail  atomic.Bool
}

func (c *countingSchema) Columns(ctx context.Context, db, table string) ([]string, error) {
	c.asked.Add(1)
	if c.fail.Load() {
		return nil, errors.New("backend unreachable")
	}
	return testSchema.Columns(ctx, db, table)
}

func (c *countingSchema) View(ctx context.Context, db, view string) (string, bool, error) {
	c.asked.Add(1)
	if c.fail.Load() {
		return "", false, errors.New("backend unreachable")
	}
	return testSchema.View(ctx, db, view)
}

func mustParse(t *testing.T, m *Masker, sql string) []ast.StmtNode {
	t.Helper()
	stmts, err := m.parse(sql, 0)
	if err != nil {
		t.Fatal(err)
	}
	return stmts
}

// maskedCount masks one text row through the plan and returns its summary count.
func maskedCount(t *testing.T, p *Plan, cols ...string) uint64 {
	t.Helper()
	var defs [][]byte
	row := []byte{}
	for _, c := range cols {
		defs = append(defs, wire.AppendColumn(nil, "shop", "customers", "customers", c, c, 45, 100, 253, 0, 0))
		row = wire.AppendLenEncString(row, []byte("4111111111111111"))
	}
	rm, err := p.ResultSet(0, defs)
	if err != nil || rm == nil {
		t.Fatalf("result set masker: %v, %v", rm, err)
	}
	if _, changed, err := rm.Text(row, nil); err != nil || !changed {
		t.Fatalf("row not masked: %v", err)
	}
	var n uint64
	for _, s := range p.Summary() {
		n += s.Count
	}
	return n
}

// TestPlanShared: the analysis of a shared parse tree is made once and
// reused — each Plan with its own counts — until the rules or the schema
// change; a statement needing no masking is remembered as such; an analysis
// that met a failed schema lookup is not kept.
func TestPlanShared(t *testing.T) {
	schema := &countingSchema{}
	m := New(Config{Rules: testRules, HashKey: []byte("k")}, schema)
	ctx := context.Background()
	const q = "SELECT * FROM customers WHERE id = 1"
	stmts := mustParse(t, m, q)

	p1, err := m.PlanShared(ctx, "agent", "shop", q, testDialect, stmts)
	if err != nil || p1 == nil {
		t.Fatalf("first plan: %v, %v", p1, err)
	}
	asked := schema.asked.Load()
	if asked == 0 {
		t.Fatal("SELECT * was planned without asking the schema")
	}
	// The schema's answers are cached anyway: drop them to see whether the
	// second plan analyses again.
	m.mu.Lock()
	m.cols, m.views = map[string][]string{}, map[string]*viewEntry{}
	m.mu.Unlock()
	p2, err := m.PlanShared(ctx, "agent", "shop", q, testDialect, stmts)
	if err != nil || p2 == nil || p2 == p1 {
		t.Fatalf("second plan: %p (first %p), %v", p2, p1, err)
	}
	if schema.asked.Load() != asked {
		t.Fatal("the second plan analysed the statement again")
	}
	fresh, err := m.Plan(ctx, "agent", "shop", q, testDialect, stmts)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range fresh.results[0].cols {
		if got := p2.results[0].cols[i]; got.rule != want.rule || got.unknown != want.unknown {
			t.Fatalf("column %d: shared plan %+v, fresh %+v", i, got, want)
		}
	}
	cols := []string{"id", "name", "card", "email", "salary", "birth", "profile"}
	if n := maskedCount(t, p1, cols...); n != 5 {
		t.Fatalf("first plan masked %d values, want 5", n)
	}
	if n := maskedCount(t, p2, cols...); n != 5 {
		t.Fatalf("second plan counted %d, want its own 5", n)
	}

	// Another database is an analysis of its own (one with no such table).
	var de *DeniedError
	if _, err := m.PlanShared(ctx, "agent", "other", q, testDialect, stmts); !errors.As(err, &de) {
		t.Fatalf("other database: %v, want a denial", err)
	}
	if schema.asked.Load() == asked {
		t.Fatal("another database reused shop's analysis")
	}

	// Nothing to mask is remembered too (with rules on named columns only):
	// a guard that masks nothing unless the schema changes under it.
	m2 := New(Config{HashKey: []byte("k"), Rules: []Rule{{Name: "cards", Columns: []string{"shop.customers.card"}, Strategy: StrategyRedact}}}, schema)
	const clear = "SELECT id, total FROM orders"
	cs := mustParse(t, m2, clear)
	if p, err := m2.Plan(ctx, "agent", "shop", clear, testDialect, cs); p == nil || !p.guard || err != nil {
		t.Fatalf("%s: %v, %v; want a guard plan", clear, p, err)
	}
	for range 2 {
		if p, err := m2.PlanShared(ctx, "agent", "shop", clear, testDialect, cs); p == nil || !p.guard || err != nil {
			t.Fatalf("%s: %v, %v; want a guard plan", clear, p, err)
		}
	}
	if len(m2.plans) != 1 {
		t.Fatalf("%d analyses kept, want 1", len(m2.plans))
	}

	// New rules: analysed again, under them.
	asked = schema.asked.Load()
	if err := m.SetRules(Config{HashKey: []byte("k"), Rules: []Rule{{Name: "names", Columns: []string{"shop.customers.name"}, Strategy: StrategyRedact}}}); err != nil {
		t.Fatal(err)
	}
	p3, err := m.PlanShared(ctx, "agent", "shop", q, testDialect, stmts)
	if err != nil || p3 == nil || schema.asked.Load() == asked {
		t.Fatalf("after new rules: %v, %v, asked again: %v", p3, err, schema.asked.Load() != asked)
	}
	if r := p3.results[0].cols[1].rule; r == nil || r.Name != "names" || p3.results[0].cols[2].rule != nil {
		t.Fatalf("after new rules the plan masks %+v", p3.results[0].cols)
	}

	// A failed schema lookup is not remembered.
	m.InvalidateSchema()
	schema.fail.Store(true)
	if _, err := m.PlanShared(ctx, "agent", "shop", q, testDialect, stmts); err == nil {
		t.Fatal("SELECT * planned without a schema")
	}
	schema.fail.Store(false)
	asked = schema.asked.Load()
	if p, err := m.PlanShared(ctx, "agent", "shop", q, testDialect, stmts); err != nil || p == nil || schema.asked.Load() == asked {
		t.Fatalf("after the schema came back: %v, %v", p, err)
	}
}

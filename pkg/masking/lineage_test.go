package masking

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/sqltext"
	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// fakeSchema is an in-memory SchemaSource.
type fakeSchema struct {
	tables map[string][]string
	views  map[string]string
}

func (f fakeSchema) Columns(_ context.Context, db, table string) ([]string, error) {
	if c, ok := f.tables[db+"."+table]; ok {
		return c, nil
	}
	return nil, errors.New("no such table")
}

func (f fakeSchema) View(_ context.Context, db, view string) (string, bool, error) {
	d, ok := f.views[db+"."+view]
	return d, ok, nil
}

var testSchema = fakeSchema{
	tables: map[string][]string{
		"shop.customers": {"id", "name", "card", "email", "salary", "birth", "profile"},
		"shop.orders":    {"id", "customer_id", "total"},
		"shop.v_cards":   {"cid", "c"},
	},
	views: map[string]string{
		"shop.v_cards": "select `shop`.`customers`.`id` AS `cid`,`shop`.`customers`.`card` AS `c` from `shop`.`customers`",
	},
}

var testRules = []Rule{
	{Name: "cards", Columns: []string{"shop.customers.card"}, Strategy: StrategyPartial, Keep: 4},
	{Name: "emails", ColumnPatterns: []string{"email"}, Strategy: StrategyHash},
	{Name: "pay", Columns: []string{"shop.*.salary", "shop.customers.birth", "shop.customers.profile"}, Strategy: StrategyRedact},
}

func TestLineage(t *testing.T) {
	m := New(Config{Rules: testRules, HashKey: []byte("k")}, testSchema)
	tests := []struct {
		sql    string
		want   []string // rule and strategy per result column of the first result set, "" = clear
		denied string   // substring of the denial
	}{
		{sql: "SELECT id, name FROM orders", want: nil},
		{sql: "SELECT id, card FROM customers", want: []string{"", "cards/partial"}},
		{sql: "SELECT c.card AS x, email FROM shop.customers c", want: []string{"cards/partial", "emails/hash"}},
		{sql: "SELECT CONCAT('x', card) FROM customers", want: []string{"cards/redact"}},
		{sql: "SELECT * FROM customers", want: []string{"", "", "cards/partial", "emails/hash", "pay/redact", "pay/redact", "pay/redact"}},
		{sql: "SELECT o.*, c.name FROM orders o JOIN customers c ON c.id = o.customer_id", want: []string{"", "", "", ""}},
		{sql: "SELECT x FROM (SELECT card AS x FROM customers) d", want: []string{"cards/partial"}},
		{sql: "WITH t AS (SELECT email e FROM customers) SELECT e FROM t", want: []string{"emails/hash"}},
		{sql: "SELECT id FROM orders UNION ALL SELECT card FROM customers", want: []string{"cards/partial"}},
		{sql: "SELECT id FROM orders UNION SELECT card FROM customers", denied: "UNION, INTERSECT or EXCEPT compares masked column"},
		{sql: "SELECT DISTINCT LEFT(card, 1) FROM customers", denied: "SELECT DISTINCT compares"},
		{sql: "SELECT COUNT(DISTINCT card) FROM customers", denied: "COUNT(DISTINCT) compares"},
		{sql: "SELECT COUNT(STR_TO_DATE(SUBSTR(card, 1, 1), '4')) FROM customers", denied: "counts where it is NULL"},
		{sql: "SELECT COLUMN_JSON(REPLACE(card, '4', 'x')) FROM customers", denied: "error message of column_json"},
		{sql: "SELECT c FROM v_cards", want: []string{"cards/partial"}},
		{sql: "SELECT (SELECT MAX(salary) FROM customers) AS s", want: []string{"pay/redact"}},
		{sql: "SELECT COUNT(card) FROM customers", want: []string{""}},
		{sql: "WITH RECURSIVE r(n, v) AS (SELECT 1, '' UNION ALL SELECT n+1, (SELECT card FROM customers LIMIT 1) FROM r WHERE n < 3) SELECT v FROM r", want: []string{"cards/redact"}},
		{sql: "SELECT id FROM customers WHERE card LIKE '4%'", denied: "WHERE reads masked column"},
		// The server's own copies of column values.
		{sql: "SELECT column_name, min_value, max_value FROM mysql.column_stats", want: []string{"", "server-copies/redact", "server-copies/redact"}},
		{sql: "SELECT db_name FROM mysql.column_stats WHERE max_value LIKE '5%'", denied: "WHERE reads masked column mysql.column_stats.max_value"},
		{sql: "SELECT id, INFO FROM information_schema.PROCESSLIST", want: []string{"", "server-copies/redact"}},
		{sql: "SELECT HEX(max_value) FROM mysql.column_stats", want: []string{"server-copies/redact"}},
		{sql: "SELECT x FROM (SELECT max_value AS x FROM mysql.column_stats) d", want: []string{"server-copies/redact"}},
		{sql: "SELECT HEX(s.max_value), s.db_name FROM mysql.column_stats AS s", want: []string{"server-copies/redact", ""}},
		{sql: "SELECT CONCAT(info, '') FROM information_schema.processlist p", want: []string{"server-copies/redact"}},
		{sql: "SHOW FULL PROCESSLIST", want: []string{"", "", "", "", "", "", "", "server-copies/redact", ""}},
		// EXPLAIN's row estimates answer what a WHERE selects.
		{sql: "EXPLAIN SELECT id FROM customers WHERE card LIKE '4%'", denied: "WHERE reads masked column"},
		{sql: "EXPLAIN SELECT card FROM customers", want: nil},
		{sql: "SELECT id FROM customers ORDER BY salary", denied: "ORDER BY"},
		{sql: "SELECT card FROM customers INTO OUTFILE '/tmp/x'", denied: "INTO"},
		{sql: "SELECT card INTO OUTFILE '/tmp/x' FROM customers", denied: "masking"},
		{sql: "SELECT @v := card FROM customers", denied: "variable"},
		{sql: "INSERT INTO orders (total) SELECT salary FROM customers", denied: "INSERT"},
		{sql: "CREATE TABLE leak AS SELECT email FROM customers", denied: "CREATE TABLE"},
		{sql: "UPDATE orders SET total = (SELECT salary FROM customers LIMIT 1)", denied: "UPDATE"},
		{sql: "SELECT leakfn(id) FROM customers", denied: "cannot tell"},
		{sql: "SELECT id FROM customers c JOIN orders o USING (id) WHERE o.total > 1", want: []string{""}},
		// MATCH reads its columns through the full-text index.
		{sql: "SELECT id, MATCH(card) AGAINST('4111*' IN BOOLEAN MODE) FROM customers", want: []string{"", "cards/redact"}},
		{sql: "SELECT id FROM customers WHERE MATCH(name, email) AGAINST('alice')", denied: "WHERE reads masked column shop.customers.email"},
		{sql: "SELECT id, MATCH(name) AGAINST('alice') FROM customers", want: nil},
		// A backtracking pattern's time answers for the value.
		{sql: "SELECT card REGEXP '^(4|a+)+$' FROM customers", denied: "timing of a regular expression"},
		{sql: "SELECT REGEXP_SUBSTR(email, '(a|a)+@') FROM customers", denied: "timing of a regular expression"},
		{sql: "SELECT name REGEXP '^A' FROM customers", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.sql, func(t *testing.T) {
			p, err := m.Plan(context.Background(), "agent", "shop", tt.sql, testDialect, nil)
			if tt.denied != "" {
				var d *DeniedError
				if !errors.As(err, &d) || !strings.Contains(err.Error(), tt.denied) {
					t.Fatalf("Plan() = %v, want denial containing %q", err, tt.denied)
				}
				return
			}
			if err != nil {
				t.Fatalf("Plan(): %v", err)
			}
			var got []string
			if p != nil && len(p.results) > 0 {
				for _, l := range p.results[0].cols {
					s := ""
					if l.rule != nil {
						s = l.rule.Name + "/" + l.rule.Strategy
					}
					got = append(got, s)
				}
			}
			if tt.want == nil || strings.Join(tt.want, "") == "" {
				if p != nil && got != nil && strings.Join(got, "") != "" {
					t.Fatalf("got %q, want nothing masked", got)
				}
				return
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

var testDialect = sqltext.Dialect{Server: sqltext.DefaultServer}

// TestBranchesFollowProbing: a configuration that lets a WHERE ask about a
// masked column (probing: allow) does not refuse a choice made on one
// either; the result stays masked.
func TestBranchesFollowProbing(t *testing.T) {
	for _, probing := range []string{Deny, Allow} {
		m := New(Config{Rules: testRules, HashKey: []byte("k"), Probing: probing}, testSchema)
		p, err := m.Plan(context.Background(), "agent", "shop", "SELECT IF(card LIKE '4%', 1, 2) AS v FROM customers", testDialect, nil)
		var d *DeniedError
		switch {
		case probing == Deny && !errors.As(err, &d):
			t.Errorf("probing %s: Plan() = %v, want a denial", probing, err)
		case probing == Allow && (err != nil || p == nil || len(p.results) != 1 || p.results[0].cols[0].rule == nil):
			t.Errorf("probing %s: Plan() = %+v, %v; want the column masked", probing, p, err)
		}
	}
}

// TestNestedChoicesPlanInLinearTime: every argument of a choice (AND, OR,
// IF, CASE, IN) is analysed once. Analysing the condition of each level
// again under the level above doubled the work per level: a WHERE of 30
// ANDs held a session's goroutine for minutes.
func TestNestedChoicesPlanInLinearTime(t *testing.T) {
	m := New(Config{Rules: testRules, HashKey: []byte("k")}, testSchema)
	queries := []string{
		"SELECT id FROM orders WHERE " + strings.Repeat("id = 1 AND ", 200) + "1",
		"SELECT id FROM orders WHERE " + strings.Repeat("(id = 1 OR ", 60) + "1" + strings.Repeat(")", 60),
		"SELECT " + strings.Repeat("IF(", 60) + "id" + strings.Repeat(", 1, 2)", 60) + " FROM orders",
		"SELECT " + strings.Repeat("CASE WHEN ", 60) + "id = 1" + strings.Repeat(" THEN 1 ELSE 2 END = 1", 60) + " FROM orders",
		"SELECT " + strings.Repeat("(", 60) + "id" + strings.Repeat(" IN (1, 2))", 60) + " FROM orders",
	}
	done := make(chan error, 1)
	go func() {
		for _, q := range queries {
			if _, err := m.Plan(context.Background(), "agent", "shop", q, testDialect, nil); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("planning nested choices did not finish in 20s (work that doubles per level)")
	}
}

// A view redefined through the proxy (SchemaChange) or around it (after
// SchemaTTL) is analysed as it now reads; a plan made before the change
// masks its results whole, including a guard plan that had nothing to mask.
func TestSchemaChangesAreFollowed(t *testing.T) {
	schema := fakeSchema{
		tables: map[string][]string{"shop.customers": {"id", "name", "card"}, "shop.orders": {"id", "total"}, "shop.v": {"note"}},
		views:  map[string]string{"shop.v": "select `shop`.`orders`.`total` AS `note` from `shop`.`orders`"},
	}
	m := New(Config{Rules: testRules, HashKey: []byte("k")}, schema)
	ctx := context.Background()
	const q = "SELECT note FROM v"
	cols := [][]byte{wire.AppendColumn(nil, "shop", "v", "v", "note", "note", 45, 100, 253, 0, 0)}
	before, err := m.Plan(ctx, "agent", "shop", q, testDialect, nil)
	if err != nil || before == nil || !before.guard {
		t.Fatalf("before: %v, %v; want a guard plan (nothing masked)", before, err)
	}
	if rm, err := before.ResultSet(0, cols); rm != nil || err != nil {
		t.Fatalf("before the change: masker %v, %v; want none", rm, err)
	}

	done := m.SchemaChange()
	schema.views["shop.v"] = "select `shop`.`customers`.`card` AS `note` from `shop`.`customers`"
	if !before.Stale() {
		t.Fatal("a plan made before a change under way is not stale")
	}
	if rm, err := before.ResultSet(0, cols); rm == nil || err != nil {
		t.Fatalf("during the change: masker %v, %v; want every column masked", rm, err)
	}
	done()
	if rm, _ := before.ResultSet(0, cols); rm == nil || !before.Stale() {
		t.Fatal("after the change: the old plan passes its result unmasked")
	}
	after, err := m.Plan(ctx, "agent", "shop", q, testDialect, nil)
	if err != nil || after == nil || after.guard || after.Stale() || after.results[0].cols[0].rule == nil {
		t.Fatalf("after: %+v, %v; want the card's rule on note", after, err)
	}

	// Around the proxy: the cached definition is trusted for SchemaTTL.
	schema.views["shop.v"] = "select `shop`.`orders`.`total` AS `note` from `shop`.`orders`"
	if p, _ := m.Plan(ctx, "agent", "shop", q, testDialect, nil); p == nil || p.guard {
		t.Fatal("the cached definition was not used within SchemaTTL")
	}
	m.flushed.Store(time.Now().Add(-SchemaTTL - time.Millisecond).UnixNano())
	if p, _ := m.Plan(ctx, "agent", "shop", q, testDialect, nil); p == nil || !p.guard {
		t.Fatal("the definition was not read again after SchemaTTL")
	}
}

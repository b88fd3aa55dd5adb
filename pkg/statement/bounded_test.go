package statement

import (
	"slices"
	"strings"
	"testing"
)

func TestBoundWrite(t *testing.T) {
	tests := []struct {
		sql     string
		write   bool
		tables  []TableRef
		execute string
		refuse  string
	}{
		{sql: "SELECT * FROM t WHERE id = 1"},
		{sql: "SHOW TABLES"},
		{sql: "UPDATE t SET a = 1 WHERE id IS NOT NULL", write: true, tables: []TableRef{{"shop", "t"}}},
		{sql: "DELETE FROM other.t WHERE id = id", write: true, tables: []TableRef{{"other", "t"}}},
		{sql: "UPDATE a JOIN b ON 1 = 1 SET a.v = 0 WHERE a.id > 0", write: true, tables: []TableRef{{"shop", "a"}}},
		{sql: "DELETE x FROM a x JOIN b ON 1 = 1", write: true, tables: []TableRef{{"shop", "a"}}},
		{sql: "INSERT INTO t SELECT * FROM u", write: true, tables: []TableRef{{"shop", "t"}}},
		{sql: "REPLACE INTO t VALUES (1)", write: true, tables: []TableRef{{"shop", "t"}}},
		{sql: "LOAD DATA LOCAL INFILE 'x' INTO TABLE t", write: true, tables: []TableRef{{"shop", "t"}}},
		{sql: "USE other; SELECT 1"},
		{sql: "UPDATE t SET a = now() WHERE id = 1", write: true, tables: []TableRef{{"shop", "t"}}},
		{sql: "INSERT INTO t VALUES (nextval(s))", write: true, tables: []TableRef{{"shop", "t"}}},
		{sql: "EXECUTE s", execute: "s"},
		{sql: "UPDATE t SET a = f(1) WHERE id = 1", refuse: "function f may be a stored function"},
		{sql: "SELECT shop.purge()", refuse: "function purge"},
		{sql: "CALL p()", refuse: "CALL"},
		{sql: "LOCK TABLES t WRITE", refuse: "LOCK TABLES"},
		{sql: "TRUNCATE t", refuse: "TRUNCATE"},
		{sql: "DROP TABLE t", refuse: "DROP TABLE"},
		{sql: "DROP DATABASE shop", refuse: "DROP DATABASE"},
		{sql: "UPDATE t SET a = 1 WHERE id = 1; DELETE FROM t", refuse: "multi-statement"},
		{sql: "SELECT 1; EXECUTE s", refuse: "EXECUTE in a multi-statement"},
		{sql: "EXPLAIN ANALYZE DELETE FROM t", refuse: "EXPLAIN ANALYZE"},
		{sql: "SELEC 1", refuse: "could not be parsed"},
	}
	for _, tc := range tests {
		t.Run(tc.sql, func(t *testing.T) {
			b := BoundWrite(Classify(tc.sql, "shop"), "shop")
			if tc.refuse != "" {
				if !strings.Contains(b.Refuse, tc.refuse) {
					t.Fatalf("refuse %q, want %q", b.Refuse, tc.refuse)
				}
				return
			}
			if b.Refuse != "" || b.Write != tc.write || b.Execute != tc.execute || !slices.Equal(b.Tables, tc.tables) {
				t.Fatalf("got %+v", b)
			}
		})
	}
}

package e2e

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// rawResult is a result set as a client library saw it: column names and
// types, and every value's bytes (nil for NULL).
type rawResult struct {
	names, types []string
	rows         [][][]byte
}

func readRaw(t *testing.T, db *sql.DB, q string, args ...any) rawResult {
	t.Helper()
	rs, err := db.Query(q, args...)
	if err != nil {
		t.Fatalf("%.80s...: %v", q, err)
	}
	defer rs.Close()
	var r rawResult
	if r.names, err = rs.Columns(); err != nil {
		t.Fatal(err)
	}
	cts, err := rs.ColumnTypes()
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range cts {
		r.types = append(r.types, ct.DatabaseTypeName())
	}
	vals := make([]sql.RawBytes, len(r.names))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rs.Next() {
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([][]byte, len(vals))
		for i, v := range vals {
			if v != nil {
				row[i] = append([]byte{}, v...)
			}
		}
		r.rows = append(r.rows, row)
	}
	if err := rs.Err(); err != nil {
		t.Fatalf("%.80s...: %v", q, err)
	}
	return r
}

func sameResult(t *testing.T, what string, got, want rawResult) {
	t.Helper()
	if strings.Join(got.names, ",") != strings.Join(want.names, ",") {
		t.Fatalf("%s: %d column names differ from the direct read's %d", what, len(got.names), len(want.names))
	}
	if strings.Join(got.types, ",") != strings.Join(want.types, ",") {
		t.Fatalf("%s: column types differ from the direct read's", what)
	}
	if len(got.rows) != len(want.rows) {
		t.Fatalf("%s: %d rows, direct %d", what, len(got.rows), len(want.rows))
	}
	for i := range got.rows {
		for j := range got.rows[i] {
			g, w := got.rows[i][j], want.rows[i][j]
			if (g == nil) != (w == nil) || !bytes.Equal(g, w) {
				t.Fatalf("%s: row %d column %d = %q (null %v), direct %q (null %v)", what, i, j, g, g == nil, w, w == nil)
			}
		}
	}
}

// TestWideResults: result sets whose column count needs the 0xFC and 0xFD
// length-encoded forms (300, 4,096 and 65,535 columns) and a prepared
// statement with 65,535 parameters cross the proxy exactly as a direct read
// sees them, with go-sql-driver's text protocol, server-side prepares and
// interpolated parameters.
func TestWideResults(t *testing.T) {
	// One column of the 300-column table is masked: the masker plans every
	// statement and rewrites rows of that table in both protocols.
	pf := filepath.Join(t.TempDir(), "policy.yaml")
	masking := "default: allow\nmasking:\n  - name: wide\n    columns: [\"widedb.w300.c5\"]\n    strategy: redact\n"
	if err := os.WriteFile(pf, []byte(masking), 0o600); err != nil {
		t.Fatal(err)
	}
	d := harness.Start(t, harness.Options{Extra: "policy:\n  file: " + pf + "\n"})
	root := d.Maria.Open(t, "")
	mustExec(t, root, "DROP DATABASE IF EXISTS widedb")
	mustExec(t, root, "CREATE DATABASE widedb")
	var cols, vals []string
	for i := 0; i < 300; i++ {
		if i%2 == 0 {
			cols = append(cols, fmt.Sprintf("c%d INT", i))
			vals = append(vals, fmt.Sprint(i*7))
		} else {
			cols = append(cols, fmt.Sprintf("c%d VARCHAR(16)", i))
			vals = append(vals, fmt.Sprintf("'v%d'", i))
		}
	}
	mustExec(t, root, "CREATE TABLE widedb.w300 (id INT PRIMARY KEY, "+strings.Join(cols, ", ")+")")
	mustExec(t, root, "INSERT INTO widedb.w300 VALUES (1, "+strings.Join(vals, ", ")+"), (2, "+strings.Join(vals, ", ")+")")
	mustExec(t, root, "UPDATE widedb.w300 SET c1 = NULL, c2 = NULL, c299 = '' WHERE id = 2")

	open := func(dsn string) *sql.DB {
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	direct := open(fmt.Sprintf("%s:%s@tcp(%s)/widedb?interpolateParams=false", "root", "", d.Maria.Addr))
	directInterp := open(fmt.Sprintf("%s:%s@tcp(%s)/widedb?interpolateParams=true", "root", "", d.Maria.Addr))
	proxied := open(d.DSN("widedb", "interpolateParams=false"))
	proxiedInterp := open(d.DSN("widedb", "interpolateParams=true"))

	// 4,096 literal columns: numbers, strings, NULLs and empty strings.
	var lits []string
	for i := 0; i < 4096; i++ {
		switch i % 4 {
		case 0:
			lits = append(lits, fmt.Sprint(i))
		case 1:
			lits = append(lits, fmt.Sprintf("'s%d'", i))
		case 2:
			lits = append(lits, "NULL")
		default:
			lits = append(lits, "''")
		}
	}
	wide4096 := "SELECT " + strings.Join(lits, ", ")

	// 65,535 parameters, alternately NULL and the empty string.
	const maxParams = 65535
	marks := "SELECT " + strings.TrimSuffix(strings.Repeat("?,", maxParams), ",")
	args := make([]any, maxParams)
	for i := range args {
		if i%2 == 1 {
			args[i] = ""
		}
	}

	const masked = 6 // c5, after id
	cases := []struct {
		name  string
		q     string
		args  []any
		cols  int
		proxy *sql.DB
		dir   *sql.DB
		mask  bool
	}{
		{"300 columns, text", "SELECT * FROM w300 ORDER BY id", nil, 301, proxied, direct, true},
		{"300 columns, prepared", "SELECT * FROM w300 WHERE id >= ? ORDER BY id", []any{1}, 301, proxied, direct, true},
		{"300 columns, interpolated", "SELECT * FROM w300 WHERE id >= ? ORDER BY id", []any{1}, 301, proxiedInterp, directInterp, true},
		{"4096 columns, text", wide4096, nil, 4096, proxied, direct, false},
		{"4096 columns, prepared", wide4096 + " FROM w300 WHERE id = ?", []any{2}, 4096, proxied, direct, false},
		{"65535 parameters, prepared", marks, args, maxParams, proxied, direct, false},
		{"65535 parameters, interpolated", marks, args, maxParams, proxiedInterp, directInterp, false},
	}
	for _, c := range cases {
		want := readRaw(t, c.dir, c.q, c.args...)
		if len(want.names) != c.cols || len(want.rows) == 0 {
			t.Fatalf("%s: the direct read has %d columns and %d rows", c.name, len(want.names), len(want.rows))
		}
		got := readRaw(t, c.proxy, c.q, c.args...)
		if c.mask {
			// The masked column reads "****"; every other byte is the server's.
			for i, row := range got.rows {
				if string(row[masked]) != "****" || string(want.rows[i][masked]) != "v5" {
					t.Fatalf("%s: row %d masked column %q, direct %q", c.name, i, row[masked], want.rows[i][masked])
				}
				row[masked] = want.rows[i][masked]
			}
		}
		sameResult(t, c.name, got, want)
	}

	proxied.Close()
	proxiedInterp.Close()
	recs := d.Settled(t)
	_, out := harness.PairCommand(t, recs, "COM_STMT_EXECUTE", marks)
	if out.Status != record.StatusSuccess || out.Rows == nil || *out.Rows != 1 || len(out.Columns) == 0 {
		t.Errorf("65535-parameter execute outcome: status %s rows %v columns %d", out.Status, out.Rows, len(out.Columns))
	}
	ex, _ := harness.PairCommand(t, recs, "COM_STMT_EXECUTE", marks)
	if len(ex.Params) != maxParams || ex.Params[0].Value != nil || ex.Params[1].Value != "" {
		t.Errorf("65535-parameter execute record: %d params", len(ex.Params))
	}
	_, out = harness.Pair(t, recs, wide4096)
	if out.Status != record.StatusSuccess || len(out.Columns) == 0 || len(out.Columns) > 512 {
		t.Errorf("4096-column outcome keeps %d column names", len(out.Columns))
	}
}

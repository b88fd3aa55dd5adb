package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sqlwarden/sqlwarden/test/harness"
)

// TestResultRetentionKeepsMaskedRows: with audit.results on, an outcome
// keeps the first rows as the client received them — masked — within the
// configured limits, and never the clear values.
func TestResultRetentionKeepsMaskedRows(t *testing.T) {
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(pol, []byte(`default: allow
masking:
  - name: cards
    columns: ["keep.people.card"]
    strategy: partial
    keep: 4
`), 0o644); err != nil {
		t.Fatal(err)
	}
	d := harness.Start(t, harness.Options{
		Audit: "results:\n  enabled: true\n  max_rows: 2\n",
		Extra: "policy:\n  file: " + pol + "\n",
	})
	root := d.Maria.Open(t, "")
	mustExec(t, root, "DROP DATABASE IF EXISTS keep")
	mustExec(t, root, "CREATE DATABASE keep")
	mustExec(t, root, "CREATE TABLE keep.people (id INT PRIMARY KEY, name VARCHAR(20), card VARCHAR(19))")
	mustExec(t, root, "INSERT INTO keep.people VALUES (1,'ann','4111111111111111'),(2,'bob',NULL),(3,'cy','5500005555555559')")
	db := d.Open(t, "keep")
	rows, err := db.Query("SELECT id, name, card FROM people ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
	}
	rows.Close()
	db.Close()
	_, o := harness.Pair(t, d.Settled(t), "SELECT id, name, card FROM people ORDER BY id")
	if len(o.Results) != 2 {
		t.Fatalf("retained %d rows, want 2 (max_rows): %v", len(o.Results), o.Results)
	}
	if o.Results[0][1] != "ann" || o.Results[1][2] != nil || !strings.HasSuffix(o.Results[0][2].(string), "1111") || strings.Contains(o.Results[0][2].(string), "41111111") {
		t.Fatalf("retained rows %v: want masked values as the client saw them", o.Results)
	}
	files, _ := filepath.Glob(filepath.Join(d.AuditDir, "*.jsonl"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), "4111111111111111") || strings.Contains(string(b), "5500005555555559") {
			t.Fatalf("a clear card number is in the journal %s", f)
		}
	}
}

package maskfixture

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
)

// DB is the fixture's database.
const DB = "sw_mask"

// DDL creates the fixture from scratch (run as root on MariaDB, one statement at a time).
var DDL = []string{
	"DROP DATABASE IF EXISTS sw_mask",
	"CREATE DATABASE sw_mask",
	"USE sw_mask",
	`CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, card VARCHAR(19), email VARCHAR(100),
	  salary DECIMAL(10,2), birth DATE, profile JSON, pin INT NOT NULL, last_login DATETIME NOT NULL)`,
	`INSERT INTO customers VALUES
	  (1, 'Alice Smith', '4111111111111111', 'alice@example.com', 98765.43, '1984-03-07', '{"ssn":"078-05-1120","secret":"top-secret-json"}', 73914, '2024-05-06 07:08:09'),
	  (2, 'Bob Jones', '5500005555555559', 'bob@example.org', 12345.67, '1990-11-23', '{"secret":"top-secret-json"}', 88231, '2024-05-06 07:08:09')`,
	// The server's own statistics hold each column's lowest and highest
	// value and a histogram (mysql.column_stats), as after a DBA's ANALYZE.
	"ANALYZE TABLE customers PERSISTENT FOR ALL",
	"CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT, total DECIMAL(10,2))",
	"INSERT INTO orders VALUES (10, 1, 5.00), (11, 2, 7.50)",
	"CREATE TABLE scratch (v VARCHAR(200))",
	"CREATE VIEW v_cards AS SELECT id AS cid, card AS c FROM customers",
	"CREATE VIEW v_v_cards AS SELECT c AS cc, cid FROM v_cards",
	"CREATE FUNCTION leakfn(i INT) RETURNS VARCHAR(19) READS SQL DATA RETURN (SELECT card FROM customers WHERE id = i)",
	"CREATE PROCEDURE leakproc() SELECT card FROM customers",
}

// PolicyMasking is the rule set the corpus runs under, as the `masking:`
// section of a policy file; it matches the masking package's corpusRules.
const PolicyMasking = `masking:
  - name: cards
    columns: ["sw_mask.customers.card"]
    strategy: partial
    keep: 4
  - name: emails
    column_patterns: ["email"]
    strategy: hash
  - name: pay
    columns: ["sw_mask.customers.salary", "sw_mask.customers.birth", "sw_mask.customers.profile"]
    strategy: redact
  - name: pins
    columns: ["sw_mask.*.pin"]
    strategy: hash
  - name: logins
    columns: ["sw_mask.customers.last_login"]
    strategy: "null"
`

// Secrets must never reach a masked client, in any encoding.
var Secrets = []string{
	"411111111111", "550000555555", // card digits other than the last four
	"alice@example.com", "bob@example.org",
	"98765.43", "12345.67", "1984-03-07", "19840307", "1990-11-23",
	"top-secret-json", "078-05-1120", "73914", "88231", "2024-05-06 07:08:09",
}

// Leak returns the secret v contains in clear, reversed or hex, or "".
func Leak(v []byte) string {
	low := bytes.ToLower(v)
	for _, s := range Secrets {
		for _, form := range []string{s, Reverse(s), hex.EncodeToString([]byte(s))} {
			if bytes.Contains(low, []byte(strings.ToLower(form))) {
				return s
			}
		}
	}
	return ""
}

// Reverse reverses the bytes of s.
func Reverse(s string) string {
	b := []byte(s)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

// Entry is one evasion attempt of pkg/masking/testdata/evasion.yaml.
type Entry struct {
	Name     string   `yaml:"name"`
	SQL      string   `yaml:"sql"`
	Steps    []string `yaml:"steps"`
	Expect   string   `yaml:"expect"`   // mask | deny | any
	Protocol string   `yaml:"protocol"` // text | binary | both
}

// Statements returns the entry's statements in order.
func (e Entry) Statements() []string {
	if e.SQL != "" {
		return []string{e.SQL}
	}
	return e.Steps
}

// Protocols returns the protocols the entry runs with: text, binary or both.
func (e Entry) Protocols() []string {
	switch e.Protocol {
	case "binary":
		return []string{"binary"}
	case "both":
		return []string{"text", "binary"}
	}
	return []string{"text"}
}

// CorpusPath is where the evasion corpus lives.
func CorpusPath() string {
	return filepath.Join(testutil.RepoRoot(), "pkg", "masking", "testdata", "evasion.yaml")
}

// LoadCorpus reads the evasion corpus.
func LoadCorpus() ([]Entry, error) {
	b, err := os.ReadFile(CorpusPath())
	if err != nil {
		return nil, err
	}
	var c []Entry
	if err := yaml.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("decode corpus: %w", err)
	}
	return c, nil
}

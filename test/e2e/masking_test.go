package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"go.yaml.in/yaml/v3"

	"github.com/sqlwarden/sqlwarden/internal/maskfixture"
	"github.com/sqlwarden/sqlwarden/pkg/masking"
	"github.com/sqlwarden/sqlwarden/pkg/policy"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// maskDB is the e2e copy of the masking fixture, apart from the masking
// package's own (the two test binaries may run at the same time).
const maskDB = "sw_mask_e2e"

// maskPolicy is the policy the masking tests run under: the built-in
// guardrails minus the approval for DDL (so masking itself must refuse
// CREATE TABLE ... AS SELECT); the fixture's masking rules are appended.
var maskPolicy = func() string {
	var f policy.File
	if err := yaml.Unmarshal([]byte(policy.DefaultPolicy), &f); err != nil {
		panic(err)
	}
	f.Rules = slices.DeleteFunc(f.Rules, func(r policy.Rule) bool { return r.Action == record.ActionApprove })
	f.Masking = nil
	b, err := yaml.Marshal(f)
	if err != nil {
		panic(err)
	}
	return strings.Replace(string(b), "masking: []\n", "", 1)
}()

func forMaskDB(s string) string { return strings.ReplaceAll(s, maskfixture.DB, maskDB) }

// startMasked sets up the fixture and a daemon whose policy masks it.
func startMasked(t testing.TB, extraPolicy string) (*harness.Daemon, *sql.DB) {
	t.Helper()
	dir := t.TempDir()
	pf := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pf, []byte(maskPolicy+forMaskDB(maskfixture.PolicyMasking)+extraPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	d := harness.Start(t, harness.Options{Extra: fmt.Sprintf("policy:\n  file: %s\n", pf)})
	root := d.Maria.Open(t, "")
	root.SetMaxOpenConns(1) // USE must stick
	for _, q := range maskfixture.DDL {
		if _, err := root.Exec(forMaskDB(q)); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return d, root
}

// maskQuery is the acceptance query: every fixture column, masked or not.
const maskQuery = "SELECT id, name, card, email, salary, birth, profile, pin, last_login FROM customers ORDER BY id"

var maskCols = []string{"id", "name", "card", "email", "salary", "birth", "profile", "pin", "last_login"}

// readAllText reads every row as strings ("NULL" for NULL).
func readAllText(t *testing.T, rs *sql.Rows) [][]string {
	t.Helper()
	defer rs.Close()
	cols, err := rs.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for rs.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			if v == nil {
				row[i] = "NULL"
			} else {
				row[i] = string(v)
			}
		}
		out = append(out, row)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

// checkMaskedRows asserts the acceptance rows are masked per rule and the
// unmasked columns equal the direct read.
func checkMaskedRows(t *testing.T, client string, got, direct [][]string) {
	t.Helper()
	if len(got) != len(direct) || len(got) != 2 {
		t.Fatalf("%s: %d rows through the proxy, %d direct", client, len(got), len(direct))
	}
	for i, row := range got {
		for j, v := range row {
			if s := maskfixture.Leak([]byte(v)); s != "" {
				t.Errorf("%s: row %d column %s leaked %q: %q", client, i, maskCols[j], s, v)
			}
		}
		for _, j := range []int{0, 1} { // id, name
			if row[j] != direct[i][j] {
				t.Errorf("%s: unmasked column %s: %q through the proxy, %q direct", client, maskCols[j], row[j], direct[i][j])
			}
		}
		last4 := direct[i][2][len(direct[i][2])-4:]
		if want := strings.Repeat("*", 12) + last4; row[2] != want {
			t.Errorf("%s: card %q, want %q", client, row[2], want)
		}
		for _, j := range []int{3, 7} { // email, pin: hash
			if !hex32.MatchString(row[j]) {
				t.Errorf("%s: %s %q is not a 32-hex-digit hash", client, maskCols[j], row[j])
			}
		}
		if !strings.HasPrefix(row[4], "0.00") && row[4] != "0" && row[4] != "Decimal('0.00')" {
			t.Errorf("%s: salary %q, want the redacted 0.00", client, row[4])
		}
		if !strings.Contains(row[5], "1970-01-01") && !strings.Contains(row[5], "1970, 1, 1") {
			t.Errorf("%s: birth %q, want the redacted 1970-01-01", client, row[5])
		}
		if row[6] != "NULL" && !json.Valid([]byte(row[6])) && client != "pymysql" {
			t.Errorf("%s: profile %q is not valid JSON", client, row[6])
		}
		if row[8] != "NULL" && row[8] != "None" {
			t.Errorf("%s: last_login %q, want NULL", client, row[8])
		}
	}
	// Hashes are deterministic: the same e-mail hashes the same everywhere.
	if got[0][3] == got[1][3] {
		t.Errorf("%s: two different e-mails hash alike: %q", client, got[0][3])
	}
}

// checkMaskedOutcome asserts an outcome lists every masked column, its rule and the count.
func checkMaskedOutcome(t *testing.T, client string, o *record.Record) {
	t.Helper()
	want := map[string]string{
		"card": "cards", "email": "emails", "salary": "pay", "birth": "pay", "profile": "pay", "pin": "pins", "last_login": "logins",
	}
	got := map[string]record.Masked{}
	for _, m := range o.Masked {
		got[m.Column] = m
	}
	for col, rule := range want {
		m, ok := got[maskDB+".customers."+col]
		if !ok {
			t.Errorf("%s: outcome does not list %s as masked: %+v", client, col, o.Masked)
			continue
		}
		if m.Rule != rule || m.Count != 2 {
			t.Errorf("%s: outcome for %s: rule %q count %d, want %q and 2", client, col, m.Rule, m.Count, rule)
		}
	}
	if len(o.Masked) != len(want) {
		t.Errorf("%s: outcome masked %+v, want exactly %d columns", client, o.Masked, len(want))
	}
}

// TestMaskingClients reads the fixture through the proxy with the mariadb
// CLI, go-sql-driver (text and prepared) and PyMySQL: no clear value arrives,
// unmasked columns equal a direct read, outcomes list what was masked, and
// the journal holds no original value.
func TestMaskingClients(t *testing.T) {
	d, root := startMasked(t, "")
	host, port := d.HostPort()
	mhost, mport, _ := strings.Cut(d.Maria.Addr, ":")

	// go-sql-driver, text protocol (interpolateParams=true) and binary (prepared).
	for _, c := range []struct {
		name, params string
		prepared     bool
	}{
		{"go-text", "interpolateParams=true", false},
		{"go-prepared", "interpolateParams=false", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			direct, err := sql.Open("mysql", fmt.Sprintf("root:@tcp(%s)/%s?%s", d.Maria.Addr, maskDB, c.params))
			if err != nil {
				t.Fatal(err)
			}
			defer direct.Close()
			proxied, err := sql.Open("mysql", d.DSN(maskDB, c.params))
			if err != nil {
				t.Fatal(err)
			}
			defer proxied.Close()
			run := func(db *sql.DB) [][]string {
				if c.prepared {
					st, err := db.Prepare(maskQuery)
					if err != nil {
						t.Fatal(err)
					}
					defer st.Close()
					rs, err := st.Query()
					if err != nil {
						t.Fatal(err)
					}
					return readAllText(t, rs)
				}
				rs, err := db.Query(maskQuery)
				if err != nil {
					t.Fatal(err)
				}
				return readAllText(t, rs)
			}
			checkMaskedRows(t, c.name, run(proxied), run(direct))
		})
	}

	// The mariadb CLI, batch mode: tab-separated, NULL as "NULL".
	t.Run("mariadb-cli", func(t *testing.T) {
		cli := func(h, p, user, pass string) [][]string {
			args := []string{"-h", h, "-P", p, "-u", user, "--skip-ssl", "-B", "-N", "-D", maskDB, "-e", maskQuery}
			if pass != "" {
				args = append(args, "-p"+pass)
			}
			out, err := exec.Command("mariadb", args...).CombinedOutput()
			if err != nil {
				t.Fatalf("mariadb: %v\n%s", err, out)
			}
			var rows [][]string
			for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
				rows = append(rows, strings.Split(line, "\t"))
			}
			return rows
		}
		got := cli(host, port, harness.ClientUser, harness.ClientPassword)
		direct := cli(mhost, mport, "root", "")
		for _, r := range got {
			if len(r) != len(maskCols) {
				t.Fatalf("mariadb CLI row %q", r)
			}
		}
		checkMaskedRows(t, "mariadb-cli", got, direct)
	})

	// PyMySQL: values as the library decodes them (repr), one JSON array per row.
	t.Run("pymysql", func(t *testing.T) {
		const script = `
import json, os, pymysql
c = pymysql.connect(host=os.environ["H"], port=int(os.environ["P"]), user=os.environ["U"], password=os.environ["PW"], database=os.environ["D"])
cur = c.cursor()
cur.execute(os.environ["Q"])
for row in cur.fetchall():
    print(json.dumps(["NULL" if v is None else (v if isinstance(v, str) else repr(v)) for v in row]))
c.close()
`
		py := func(h, p, user, pass string) [][]string {
			cmd := exec.Command("/usr/bin/python3", "-c", script)
			cmd.Env = append(os.Environ(), "H="+h, "P="+p, "U="+user, "PW="+pass, "D="+maskDB, "Q="+maskQuery)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("pymysql: %v\n%s", err, out)
			}
			var rows [][]string
			for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
				var r []string
				if err := json.Unmarshal([]byte(line), &r); err != nil {
					t.Fatalf("pymysql output %q: %v", line, err)
				}
				rows = append(rows, r)
			}
			return rows
		}
		got := py(host, port, harness.ClientUser, harness.ClientPassword)
		direct := py(mhost, mport, "root", "")
		checkMaskedRows(t, "pymysql", got, direct)
		for i, r := range got {
			if !json.Valid([]byte(r[6])) {
				t.Errorf("pymysql: row %d profile %q is not valid JSON", i, r[6])
			}
		}
	})

	recs := d.Settled(t)
	for _, c := range []struct{ client, command string }{
		{"go-text, cli, pymysql", "COM_QUERY"},
		{"go-prepared", "COM_STMT_EXECUTE"},
	} {
		outs := harness.Outcomes(recs, harness.Stmt(c.command, maskQuery))
		want := 1
		if c.command == "COM_QUERY" {
			want = 3
		}
		if len(outs) != want {
			t.Errorf("%s: %d outcomes of %s, want %d", c.client, len(outs), c.command, want)
		}
		for _, o := range outs {
			if o.Status != record.StatusSuccess || o.Rows == nil || *o.Rows != 2 {
				t.Errorf("%s: outcome %+v", c.client, o)
			}
			checkMaskedOutcome(t, c.client, o)
		}
	}
	checkJournalClean(t, d)
	_ = root
}

// checkJournalClean greps the raw journal bytes for the original values.
func checkJournalClean(t *testing.T, d *harness.Daemon) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(d.AuditDir, "*.jsonl"))
	if len(files) == 0 {
		t.Fatal("no journal files")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range maskfixture.Secrets {
			if len(s) < 8 {
				// Five-digit PINs occur by chance in hex hashes; check them as JSON values only.
				for _, form := range []string{`:` + s + `,`, `"` + s + `"`, `'` + s + `'`} {
					if bytes.Contains(b, []byte(form)) {
						t.Errorf("journal %s holds %q", filepath.Base(f), form)
					}
				}
				continue
			}
			if i := bytes.Index(b, []byte(s)); i >= 0 {
				lo, hi := max(0, i-200), min(len(b), i+200)
				t.Errorf("journal %s holds the secret %q: ...%s...", filepath.Base(f), s, b[lo:hi])
			}
		}
	}
}

// isMaskDenied reports a refusal by sqlwarden (policy or masking).
func isMaskDenied(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && me.Number == 1142 && strings.HasPrefix(me.Message, "sqlwarden:")
}

// TestMaskingEvasionCorpus runs every query of the evasion corpus through the
// daemon with go-sql-driver, text and (where the corpus says so) prepared:
// each is refused by sqlwarden or returns only masked values; nothing leaks
// in rows or error messages.
func TestMaskingEvasionCorpus(t *testing.T) {
	d, root := startMasked(t, "")
	corpus, err := maskfixture.LoadCorpus()
	if err != nil {
		t.Fatal(err)
	}
	if len(corpus) < 40 {
		t.Fatalf("corpus has %d entries, want at least 40", len(corpus))
	}
	dbs := map[string]*sql.DB{}
	for proto, params := range map[string]string{"text": "multiStatements=true&interpolateParams=true", "binary": "multiStatements=true&interpolateParams=false"} {
		db, err := sql.Open("mysql", d.DSN(maskDB, params))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs[proto] = db
	}
	ctx := context.Background()
	for _, e := range corpus {
		for _, proto := range e.Protocols() {
			t.Run(e.Name+"/"+proto, func(t *testing.T) {
				root.Exec("DELETE FROM " + maskDB + ".scratch")
				root.Exec("DROP TABLE IF EXISTS " + maskDB + ".leak")
				ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				defer cancel()
				conn, err := dbs[proto].Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				defer conn.Raw(func(any) error { return driver.ErrBadConn }) // session state stays with the entry
				denied, served := false, 0
				var dbErr error
				for _, step := range e.Statements() {
					step = strings.ReplaceAll(step, maskfixture.DB+".", maskDB+".")
					n, err := corpusStep(ctx, t, conn, proto, step)
					served += n
					if err != nil {
						if s := maskfixture.Leak([]byte(err.Error())); s != "" {
							t.Errorf("%q: error leaked %q: %v", step, s, err)
						}
						if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, driver.ErrBadConn) {
							t.Fatalf("%q: no reply: %v", step, err)
						}
						if isMaskDenied(err) {
							t.Logf("denied: %v", err)
							denied = true
							break
						}
						t.Logf("%q: database error: %v", step, err)
						if dbErr == nil {
							dbErr = err
						}
					}
				}
				switch e.Expect {
				case "deny":
					if !denied {
						t.Errorf("expected sqlwarden to refuse a step (%d rows served)", served)
					}
				case "mask":
					// Masking is only exercised when the server ran every
					// step and rows came back through the proxy.
					if denied {
						t.Errorf("expected masked results, got a refusal")
					}
					if dbErr != nil {
						t.Errorf("expected masked results, the database refused: %v", dbErr)
					}
					if served == 0 {
						t.Errorf("expected masked results, no rows were served")
					}
				}
			})
		}
	}
	// Nothing reached a table or a file behind the proxy's back.
	var n int
	if err := root.QueryRow("SELECT COUNT(*) FROM " + maskDB + ".scratch").Scan(&n); err != nil {
		t.Fatal(err)
	}
	checkJournalClean(t, d)
}

// corpusStep runs one statement and checks every value of every result set.
func corpusStep(ctx context.Context, t *testing.T, conn *sql.Conn, proto, q string) (int, error) {
	var rs *sql.Rows
	var err error
	if proto == "binary" {
		var st *sql.Stmt
		st, err = conn.PrepareContext(ctx, q)
		if err != nil {
			return 0, err
		}
		defer st.Close()
		rs, err = st.QueryContext(ctx)
	} else {
		rs, err = conn.QueryContext(ctx, q)
	}
	if err != nil {
		return 0, err
	}
	defer rs.Close()
	n := 0
	for {
		cols, err := rs.Columns()
		if err != nil {
			return n, err
		}
		for rs.Next() {
			vals := make([]sql.RawBytes, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rs.Scan(ptrs...); err != nil {
				return n, err
			}
			n++
			for i, v := range vals {
				if s := maskfixture.Leak(v); s != "" {
					t.Errorf("%q: column %s leaked %q: %q", q, cols[i], s, v)
				}
			}
		}
		if err := rs.Err(); err != nil {
			return n, err
		}
		if !rs.NextResultSet() {
			return n, rs.Err()
		}
	}
}

// TestMaskingUnchangedRowThenMasked is a regression test: a result whose last
// row needs no change (a NULL) followed, on the same connection, by masked
// rows once made the proxy mask into its backend read buffer, corrupting the
// stream (the client hung).
func TestMaskingUnchangedRowThenMasked(t *testing.T) {
	d, _ := startMasked(t, "")
	db := d.Open(t, maskDB)
	db.SetMaxOpenConns(1)
	// A masked column read as it is keeps its NULLs (a value computed from
	// one is redacted, NULL or not).
	const q = "SELECT card AS c, name FROM customers WHERE id = 1 UNION ALL SELECT NULL, name FROM customers WHERE id = 2"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; i < 20; i++ {
		rs, err := db.QueryContext(ctx, q)
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		got := readAllText(t, rs)
		if len(got) != 2 || got[0][0] == "NULL" || maskfixture.Leak([]byte(got[0][0])) != "" || got[0][1] != "Alice Smith" || got[1][0] != "NULL" || got[1][1] != "Bob Jones" {
			t.Fatalf("round %d: %q", i, got)
		}
	}
}

// TestMaskingFollowsViewChanges: a view redefined after masking read it —
// through the proxy, or around it by the DBA — is masked as it now reads;
// a plan made before the change never passes a result of the new one.
func TestMaskingFollowsViewChanges(t *testing.T) {
	d, root := startMasked(t, "")
	db := d.Open(t, maskDB)
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := root.Exec("CREATE VIEW " + maskDB + ".v_swap AS SELECT id, name AS note FROM " + maskDB + ".customers"); err != nil {
		t.Fatal(err)
	}
	notes := func() []string {
		t.Helper()
		rs, err := db.QueryContext(ctx, "SELECT note FROM v_swap ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range readAllText(t, rs) {
			out = append(out, r[0])
		}
		return out
	}
	if got := notes(); len(got) != 2 || got[0] != "Alice Smith" {
		t.Fatalf("before the change: %q, want the names in clear", got)
	}
	// Through the proxy: followed at once.
	if _, err := db.ExecContext(ctx, "CREATE OR REPLACE VIEW v_swap AS SELECT id, card AS note FROM customers"); err != nil {
		t.Fatal(err)
	}
	for _, n := range notes() {
		if maskfixture.Leak([]byte(n)) != "" {
			t.Fatalf("after CREATE OR REPLACE VIEW through the proxy: %q in clear", n)
		}
	}
	// Around the proxy: followed within masking.SchemaTTL.
	if _, err := root.Exec("CREATE OR REPLACE VIEW " + maskDB + ".v_swap AS SELECT id, name AS note FROM " + maskDB + ".customers"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(masking.SchemaTTL + 200*time.Millisecond)
	notes() // read the view as it is now: names
	if _, err := root.Exec("CREATE OR REPLACE VIEW " + maskDB + ".v_swap AS SELECT id, email AS note FROM " + maskDB + ".customers"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(masking.SchemaTTL + 200*time.Millisecond)
	for _, n := range notes() {
		if maskfixture.Leak([]byte(n)) != "" {
			t.Fatalf("after the DBA's CREATE OR REPLACE VIEW: %q in clear", n)
		}
	}
}

// TestMaskingRefusesMovingMaskedData: the rules name columns, so a change
// that would take masked data out from under the names — a generated
// column over a masked one, a renamed column, a renamed or moved table —
// is refused for a masked identity even where policy allows DDL, and the
// masked column reads masked after.
func TestMaskingRefusesMovingMaskedData(t *testing.T) {
	d, _ := startMasked(t, "")
	db := d.Open(t, maskDB)
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		"ALTER TABLE customers ADD COLUMN cn VARCHAR(19) AS (card) VIRTUAL",
		"ALTER TABLE customers RENAME COLUMN card TO plain",
		"ALTER TABLE customers CHANGE card plain VARCHAR(19)",
		"RENAME TABLE customers TO customers_copy",
		"ALTER TABLE customers RENAME TO people",
	} {
		if _, err := db.Exec(q); !isMaskDenied(err) {
			t.Errorf("%q: got %v, want refused by masking", q, err)
		}
	}
	// A table without masked columns changes as policy allows.
	if _, err := db.Exec("ALTER TABLE orders ADD COLUMN note VARCHAR(10)"); err != nil {
		t.Errorf("ALTER of a table without masked columns: %v", err)
	}
	var card string
	if err := db.QueryRow("SELECT card FROM customers WHERE id = 1").Scan(&card); err != nil || maskfixture.Leak([]byte(card)) != "" {
		t.Fatalf("card after the refused changes: %q %v", card, err)
	}
}

// TestMaskingHidesWarningCounts: how many warnings a function of a masked
// value raised is an answer — CAST(REPLACE(SUBSTR(card, 1, 1), '4', 'x') AS
// UNSIGNED) warns exactly when the first digit is 4 — so after a reply over
// masked data no count of warnings reaches the client, in the reply or from
// the session afterwards; a statement over nothing masked keeps its own.
func TestMaskingHidesWarningCounts(t *testing.T) {
	d, _ := startMasked(t, "")
	db := d.Open(t, maskDB)
	db.SetMaxOpenConns(1) // @@warning_count is the session's
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	warnings := func(q string) (count, shown int) {
		t.Helper()
		rs, err := db.QueryContext(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		readAllText(t, rs)
		if err := db.QueryRowContext(ctx, "SELECT @@warning_count").Scan(&count); err != nil {
			t.Fatal(err)
		}
		rs, err = db.QueryContext(ctx, "SHOW WARNINGS")
		if err != nil {
			t.Fatal(err)
		}
		return count, len(readAllText(t, rs))
	}
	for _, digit := range []string{"4", "5"} {
		q := "SELECT CAST(REPLACE(SUBSTR(card, 1, 1), '" + digit + "', 'x') AS UNSIGNED) AS v FROM customers WHERE id = 1"
		if c, n := warnings(q); c != 0 || n != 0 {
			t.Errorf("digit %s: @@warning_count %d, SHOW WARNINGS %d rows after a reply over masked data; want 0 and 0", digit, c, n)
		}
	}
	if c, n := warnings("SELECT CAST('x' AS UNSIGNED) AS v"); c != 1 || n != 1 {
		t.Errorf("a statement over nothing masked: @@warning_count %d, SHOW WARNINGS %d rows; want 1 and 1", c, n)
	}
}

// maskScanFixture makes a 10,000-row table with masked columns.
func maskScanFixture(t testing.TB, root *sql.DB) {
	t.Helper()
	for _, q := range []string{
		"DROP TABLE IF EXISTS " + maskDB + ".scan",
		"CREATE TABLE " + maskDB + ".scan (id INT PRIMARY KEY, card VARCHAR(19), email VARCHAR(100), salary DECIMAL(10,2), note VARCHAR(40))",
		"INSERT INTO " + maskDB + ".scan SELECT seq, CONCAT('4', LPAD(seq, 15, '0')), CONCAT('user', seq, '@example.com'), seq * 1.5, CONCAT('note ', seq) FROM seq_1_to_10000",
	} {
		if _, err := root.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

const maskScanQuery = "SELECT id, card, email, salary, note FROM scan"

func scanAll(tb testing.TB, db *sql.DB, mask bool) int {
	rs, err := db.Query(maskScanQuery)
	if err != nil {
		tb.Fatal(err)
	}
	defer rs.Close()
	n := 0
	var id int
	var card, email, salary, note sql.RawBytes
	for rs.Next() {
		if err := rs.Scan(&id, &card, &email, &salary, &note); err != nil {
			tb.Fatal(err)
		}
		if n == 0 && mask && (!bytes.HasPrefix(card, []byte("****")) || !hex32.Match(email)) {
			tb.Fatalf("scan not masked: %q %q", card, email)
		}
		n++
	}
	if err := rs.Err(); err != nil {
		tb.Fatal(err)
	}
	return n
}

// BenchmarkMaskedScan reads 10,000 rows with three masked columns directly
// and through the proxy; it reports both and their ratio.
func BenchmarkMaskedScan(b *testing.B) {
	d, root := startMasked(b, `  - name: scan-cards
    columns: ["sw_mask_e2e.scan.card"]
    strategy: partial
    keep: 4
  - name: scan-salary
    columns: ["sw_mask_e2e.scan.salary"]
    strategy: redact
`)
	maskScanFixture(b, root)
	direct, err := sql.Open("mysql", fmt.Sprintf("root:@tcp(%s)/%s", d.Maria.Addr, maskDB))
	if err != nil {
		b.Fatal(err)
	}
	defer direct.Close()
	proxied := d.Open(b, maskDB)
	var dt, pt time.Duration
	scanAll(b, direct, false)
	scanAll(b, proxied, true)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if n := scanAll(b, direct, false); n != 10000 {
			b.Fatalf("direct: %d rows", n)
		}
		dt += time.Since(start)
		start = time.Now()
		if n := scanAll(b, proxied, true); n != 10000 {
			b.Fatalf("proxy: %d rows", n)
		}
		pt += time.Since(start)
	}
	b.ReportMetric(float64(dt.Microseconds())/float64(b.N)/1000, "direct-ms/scan")
	b.ReportMetric(float64(pt.Microseconds())/float64(b.N)/1000, "proxy-ms/scan")
	b.ReportMetric(float64(pt)/float64(dt), "proxy/direct")
}

// TestMaskedScanBenchmark runs BenchmarkMaskedScan in make test, reports
// the numbers and checks the proxy masks every row of the scan.
func TestMaskedScanBenchmark(t *testing.T) {
	r := testing.Benchmark(BenchmarkMaskedScan)
	if r.N == 0 {
		t.Fatal("benchmark did not run")
	}
	t.Logf("10,000-row masked scan: direct %.2f ms, through sqlwarden %.2f ms, ratio %.2f (%d rounds)",
		r.Extra["direct-ms/scan"], r.Extra["proxy-ms/scan"], r.Extra["proxy/direct"], r.N)
	if ratio := r.Extra["proxy/direct"]; ratio > 25 {
		t.Errorf("masked scan through the proxy is %.1fx the direct scan", ratio)
	}
}

// TestMaskingMemoryFlat streams about 1 GB of card-like rows, masked,
// through the proxy to a client that discards them, sampling the daemon's
// resident memory: it must stay flat (well under 200 MB).
func TestMaskingMemoryFlat(t *testing.T) {
	d, root := startMasked(t, `  - name: big-cards
    columns: ["sw_mask_e2e.big.card", "sw_mask_e2e.big.note"]
    strategy: partial
    keep: 4
`)
	for _, q := range []string{
		"DROP TABLE IF EXISTS " + maskDB + ".big",
		"CREATE TABLE " + maskDB + ".big (id INT PRIMARY KEY, card VARCHAR(19), note VARCHAR(1000))",
		"INSERT INTO " + maskDB + ".big SELECT seq, CONCAT('4', LPAD(seq, 15, '7')), REPEAT(CONCAT('4111-', LPAD(seq, 4, '0'), ' '), 100) FROM seq_1_to_1000",
	} {
		if _, err := root.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	const rowsWanted = 1_000_000 // 1,000 x 1,000 rows of ~1,040 bytes: about 1 GB
	const q = "SELECT b.id, b.card, b.note FROM big b, seq_1_to_1000 s"
	db := d.Open(t, maskDB)
	base := procRSS(t, d.PID())
	stop := make(chan struct{})
	peak := make(chan int, 1)
	go func() {
		max := 0
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				peak <- max
				return
			case <-tick.C:
				if kb := procRSS(t, d.PID()); kb > max {
					max = kb
				}
			}
		}
	}()
	start := time.Now()
	rs, err := db.Query(q)
	if err != nil {
		close(stop)
		t.Fatal(err)
	}
	n, bytesIn := 0, 0
	var id int
	var card, note sql.RawBytes
	for rs.Next() {
		if err := rs.Scan(&id, &card, &note); err != nil {
			t.Fatal(err)
		}
		if s := maskfixture.Leak(card); s != "" || !bytes.HasPrefix(card, []byte("************")) || !bytes.HasPrefix(note, []byte("*****")) {
			t.Fatalf("row %d not masked: %q %q", n, card, note[:min(len(note), 40)])
		}
		n++
		bytesIn += len(card) + len(note) + 4
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	rs.Close()
	db.Close()
	close(stop)
	maxKB := <-peak
	t.Logf("streamed %d masked rows (%d MB of values) in %s; daemon RSS %d MB before, peak %d MB",
		n, bytesIn>>20, time.Since(start).Round(time.Millisecond), base>>10, maxKB>>10)
	if n != rowsWanted {
		t.Fatalf("got %d rows, want %d", n, rowsWanted)
	}
	if maxKB > 200<<10 {
		t.Errorf("daemon RSS peaked at %d MB while streaming 1 GB masked, want under 200 MB", maxKB>>10)
	}
	_, out := harness.Pair(t, d.Settled(t), q)
	if out.Rows == nil || *out.Rows != rowsWanted || len(out.Masked) != 2 {
		t.Fatalf("outcome %+v", out)
	}
	for _, m := range out.Masked {
		if m.Rule != "big-cards" || m.Count != rowsWanted {
			t.Errorf("outcome masked %+v", m)
		}
	}
}

func procRSS(t testing.TB, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var kb int
			fmt.Sscan(strings.Fields(line)[1], &kb)
			return kb
		}
	}
	return 0
}

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/audit"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// The per-identity limits of the policy's limits section, through the real
// daemon and the private MariaDB. The harness's explicit client is identity
// test-agent.

// bigSelect streams fifty million rows from MariaDB's SEQUENCE engine:
// reading it to the end takes far longer than the tests allow.
const bigSelect = "SELECT seq FROM seq_1_to_50000000"

// limitsPolicy writes a permissive policy with a limits section and returns
// the daemon config snippet and a function that rewrites the limits.
func limitsPolicy(t *testing.T, limits string) (string, func(string)) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "policy.yaml")
	write := func(l string) {
		t.Helper()
		if err := os.WriteFile(p+".tmp", []byte("default: allow\nlimits:\n"+l), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			t.Fatal(err)
		}
	}
	write(limits)
	return "policy:\n  file: " + p + "\n", write
}

func limitsDaemon(t *testing.T, limits string) (*harness.Daemon, func(string)) {
	t.Helper()
	extra, write := limitsPolicy(t, limits)
	d := harness.Start(t, harness.Options{Extra: extra})
	return d, func(l string) {
		write(l)
		if err := d.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
}

// mysqlErr returns err's MySQL error, or fails.
func mysqlErr(t *testing.T, what string, err error, code uint16, prefix string) *gomysql.MySQLError {
	t.Helper()
	var me *gomysql.MySQLError
	if !errors.As(err, &me) || me.Number != code || !strings.HasPrefix(me.Message, prefix) {
		t.Fatalf("%s: got %v, want error %d starting %q", what, err, code, prefix)
	}
	return me
}

// readRows reads a result to its end (or error) and returns the rows seen.
func readRows(rows *sql.Rows, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var v sql.RawBytes
		if err := rows.Scan(&v); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

// usableWithin checks the connection answers its next statement in time.
func usableWithin(t *testing.T, conn *sql.Conn, limit time.Duration, wantID int64) {
	t.Helper()
	start := time.Now()
	var id int64
	if err := conn.QueryRowContext(context.Background(), "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatalf("next statement on the same connection: %v", err)
	}
	if el := time.Since(start); el > limit {
		t.Fatalf("next statement took %v, want under %v", el, limit)
	}
	if wantID != 0 && id != wantID {
		t.Fatalf("connection changed: backend thread %d, was %d", id, wantID)
	}
}

func connectionID(t *testing.T, conn *sql.Conn) int64 {
	t.Helper()
	var id int64
	if err := conn.QueryRowContext(context.Background(), "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// noBackendStatement checks MariaDB runs no statement containing marker.
func noBackendStatement(t *testing.T, root *sql.DB, marker string) {
	t.Helper()
	var n int
	if err := root.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND ID <> CONNECTION_ID()", "%"+marker+"%").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d backend statements containing %q still run", n, marker)
	}
}

// limitHits reads sqlwarden_limit_hits_total{limit,kind} from /metrics.
func limitHits(t *testing.T, d *harness.Daemon, limit, kind string) int {
	t.Helper()
	body := get(t, "http://"+d.Admin+"/metrics")
	want := fmt.Sprintf(`sqlwarden_limit_hits_total{kind=%q,limit=%q} `, kind, limit)
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), want); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("metric line %q: %v", sc.Text(), err)
			}
			return n
		}
	}
	return 0
}

func wantLimit(t *testing.T, what string, o *audit.Record, status, name, kind string, value any) {
	t.Helper()
	if o == nil || o.Status != status || o.Limit == nil || o.Limit.Name != name || o.Limit.Kind != kind || fmt.Sprint(o.Limit.Value) != fmt.Sprint(value) {
		var l any
		if o != nil {
			l = o.Limit
		}
		t.Fatalf("%s: outcome %+v limit %+v, want status %s limit {%s %s %v}", what, o, l, status, name, kind, value)
	}
}

// TestLimitsMaxRowsError: past max_rows the client gets ERR 1226, the
// backend statement is killed rather than read to its end, and the same
// connection serves its next statement within a second, in the text and
// the binary protocol.
func TestLimitsMaxRowsError(t *testing.T) {
	d, _ := limitsDaemon(t, "  - name: agents\n    identities: [\"test-*\"]\n    max_rows: 1000\n")
	root := d.Maria.Open(t, "test")
	// Directly, nothing bounds a result.
	if n, err := readRows(root.Query("SELECT seq FROM seq_1_to_5000")); err != nil || n != 5000 {
		t.Fatalf("direct select: %d rows, %v", n, err)
	}

	db := d.Open(t, "test")
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	id := connectionID(t, conn)

	// Exactly the cap passes.
	if n, err := readRows(conn.QueryContext(ctx, "SELECT seq FROM seq_1_to_1000")); err != nil || n != 1000 {
		t.Fatalf("1000 rows under max_rows 1000: %d, %v", n, err)
	}
	for _, tc := range []struct {
		name string
		args []any
		sql  string
	}{
		{"text", nil, bigSelect},
		{"binary", []any{0}, bigSelect + " WHERE seq > ?"},
	} {
		start := time.Now()
		n, err := readRows(conn.QueryContext(ctx, tc.sql, tc.args...))
		t.Logf("%s: %d rows and the error in %v", tc.name, n, time.Since(start))
		if n != 1000 {
			t.Fatalf("%s: client got %d rows, want 1000", tc.name, n)
		}
		me := mysqlErr(t, tc.name, err, 1226, "sqlwarden: limit agents: result exceeds max_rows 1000")
		if string(me.SQLState[:]) != "42000" {
			t.Fatalf("%s: SQLSTATE %s", tc.name, me.SQLState)
		}
		usableWithin(t, conn, time.Second, id)
		noBackendStatement(t, root, "seq_1_to_50000000")
	}
	conn.Close()
	db.Close()

	recs := d.Settled(t)
	_, o := pair(t, recs, bigSelect)
	wantLimit(t, "text", o, audit.StatusError, "agents", "max_rows", 1000)
	if o.Error == nil || o.Error.Code != 1226 || o.Error.Message != "sqlwarden: limit agents: result exceeds max_rows 1000" {
		t.Fatalf("text outcome error %+v", o.Error)
	}
	_, o = pairCommand(t, recs, "COM_STMT_EXECUTE", bigSelect+" WHERE seq > ?")
	wantLimit(t, "binary", o, audit.StatusError, "agents", "max_rows", 1000)
	if _, o := pair(t, recs, "SELECT seq FROM seq_1_to_1000"); o.Status != audit.StatusSuccess || o.Limit != nil || *o.Rows != 1000 {
		t.Fatalf("at the cap: %+v", o)
	}
	if n := limitHits(t, d, "agents", "max_rows"); n != 2 {
		t.Fatalf("sqlwarden_limit_hits_total{agents,max_rows} = %d, want 2", n)
	}
}

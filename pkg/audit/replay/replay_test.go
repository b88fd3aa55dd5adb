package replay

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/audit"
	"github.com/sqlwarden/sqlwarden/pkg/record"
)

type step struct {
	command string
	sql     string
	db      string
	params  []record.Param
}

// recordSteps runs steps directly on conn the way the proxy would see them and
// writes statement/outcome records like the proxy does.
func recordSteps(t *testing.T, j *audit.Journal, conn *sql.Conn, backend string, steps []step) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(j.Append(&record.Record{Event: record.EventSessionStart, SessionID: "sess-1",
		Identity: &record.Identity{Name: "agent-1", Source: "static"}, Backend: &record.BackendInfo{Address: backend, User: "root"}}))
	for i, s := range steps {
		id := uint64(i + 1)
		must(j.Append(&record.Record{Event: record.EventStatement, SessionID: "sess-1", StatementID: id,
			Command: s.command, SQL: s.sql, DB: s.db, Params: s.params}))
		out := &record.Record{Event: record.EventOutcome, SessionID: "sess-1", StatementID: id, Status: record.StatusSuccess}
		args := make([]any, len(s.params))
		for k, p := range s.params {
			args[k] = p.Value
		}
		var err error
		if s.command == "COM_INIT_DB" {
			_, err = conn.ExecContext(ctx, "USE "+s.db)
			out.AffectedRows = record.U64(0)
		} else if isSelect(s.sql) {
			var n uint64
			var dg string
			n, dg, _, err = query(ctx, conn, s.sql, argsOrNil(s.command, args), 0)
			if err == nil {
				out.Rows, out.ResultDigest, out.Columns = record.U64(n), dg, []string{"c"}
			}
		} else {
			var n uint64
			n, err = exec(ctx, conn, s.sql, argsOrNil(s.command, args))
			out.AffectedRows = record.U64(n)
		}
		var me *mysql.MySQLError
		if errors.As(err, &me) {
			out.Status, out.Error, out.AffectedRows = record.StatusError, &record.ErrorInfo{Code: me.Number, Message: me.Message}, nil
		} else if err != nil {
			t.Fatal(err)
		}
		must(j.Append(out))
	}
	must(j.Append(&record.Record{Event: record.EventSessionEnd, SessionID: "sess-1", Statements: record.U64(uint64(len(steps)))}))
}

func argsOrNil(cmd string, args []any) []any {
	if cmd == "COM_STMT_EXECUTE" {
		return args
	}
	return nil
}

func isSelect(s string) bool { return len(s) > 6 && (s[:6] == "SELECT" || s[:6] == "select") }

func TestReplaySession(t *testing.T) {
	m := testutil.StartMariaDB(t)
	admin := m.Open(t, "")
	for _, q := range []string{
		"DROP DATABASE IF EXISTS rp_shop", "CREATE DATABASE rp_shop",
		"CREATE TABLE rp_shop.items (id INT PRIMARY KEY, name VARCHAR(20), qty INT)",
		"INSERT INTO rp_shop.items VALUES (1,'apple',5),(2,'pear',7),(3,'plum',9)",
	} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS rp_shop") })

	dir := t.TempDir()
	j, err := audit.Open(audit.Config{Dir: dir, Node: "n1", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	db := m.Open(t, "")
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	steps := []step{
		{command: "COM_QUERY", sql: "USE rp_shop"},
		{command: "COM_QUERY", sql: "SET @lim := 2", db: "rp_shop"},
		{command: "COM_QUERY", sql: "SELECT id, name FROM items WHERE id <= @lim ORDER BY id", db: "rp_shop"},
		{command: "COM_STMT_EXECUTE", sql: "SELECT name FROM items WHERE id = ?", db: "rp_shop",
			params: []record.Param{{Type: "MYSQL_TYPE_LONGLONG", Value: int64(3)}}},
		{command: "COM_STMT_EXECUTE", sql: "UPDATE items SET qty = ? WHERE id = ?", db: "rp_shop",
			params: []record.Param{{Type: "MYSQL_TYPE_LONGLONG", Value: int64(11)}, {Type: "MYSQL_TYPE_LONGLONG", Value: int64(2)}}},
		{command: "COM_QUERY", sql: "SELECT * FROM no_such_table", db: "rp_shop"},
		{command: "COM_INIT_DB", db: "rp_shop"},
		{command: "COM_QUERY", sql: "SELECT qty FROM items ORDER BY id", db: "rp_shop"},
	}
	// recorded against "the production backend", which is not the target
	recordSteps(t, j, conn, "db.prod.internal:3306", steps)
	conn.Close()
	j.Close()
	// make the replay's UPDATE change a row again (qty was set to 11)
	admin.Exec("UPDATE rp_shop.items SET qty = 7 WHERE id = 2")

	target := m.DSN(m.Root, "", "")
	rep, err := Run(context.Background(), Options{Dir: dir, Session: "sess-1", Target: target})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Matched != len(steps) {
		for _, r := range rep.Results {
			t.Logf("%d %s %s %v", r.StatementID, r.Verdict, r.SQL, r.Reasons)
		}
		t.Fatalf("replay of an unchanged database: %d matched, %d diverged, %d skipped", rep.Matched, rep.Diverged, rep.Skipped)
	}

	// a changed row in the target is a divergence
	admin.Exec("UPDATE rp_shop.items SET name = 'APPLE' WHERE id = 1")
	admin.Exec("UPDATE rp_shop.items SET qty = 7 WHERE id = 2")
	rep, err = Run(context.Background(), Options{Dir: dir, Session: "sess-1", Target: target})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Results[2].Verdict != Diverged {
		t.Fatalf("changed row not reported: %+v", rep.Results[2])
	}

	// the recorded backend is refused unless forced
	j2dir := t.TempDir()
	j2, _ := audit.Open(audit.Config{Dir: j2dir, Node: "n1", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	db2 := m.Open(t, "rp_shop")
	c2, _ := db2.Conn(context.Background())
	recordSteps(t, j2, c2, m.Addr, steps[:1])
	c2.Close()
	j2.Close()
	if _, err := Run(context.Background(), Options{Dir: j2dir, Session: "sess-1", Target: target}); !errors.Is(err, ErrRecordedBackend) {
		t.Fatalf("replay against the recorded backend: %v", err)
	}
	if _, err := Run(context.Background(), Options{Dir: j2dir, Session: "sess-1", Target: target, Force: true}); err != nil {
		t.Fatalf("forced replay: %v", err)
	}
}

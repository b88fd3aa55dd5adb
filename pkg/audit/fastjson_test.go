package audit

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sqlwarden/sqlwarden/pkg/record"
)

func stdEncode(t testing.TB, r *record.Record) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func fastRecords() []*record.Record {
	ts := time.Date(2026, 11, 26, 1, 2, 3, 456789000, time.UTC)
	latin1 := &record.Record{TS: ts, Event: record.EventStatement, SessionID: "abc", StatementID: 9, Command: "COM_QUERY"}
	latin1.SetSQL("SELECT 'caf\xe9'")
	return []*record.Record{
		latin1,
		{TS: ts, Event: record.EventStatement, SessionID: "abc", Node: "n1", StatementID: 7, Command: "COM_QUERY",
			SQL: "SELECT '\"x\"\\\n\t\r\b\f\x01<>&\u2028\u2029 é 😀 \xff'", Digest: "select ?", DB: "shop",
			Statement:   &record.Classification{Kind: "SELECT", Kinds: []string{"SELECT", "DELETE"}, TablesRead: []string{"shop.a"}, TablesWrite: []string{"shop.b"}, Statements: 2},
			Attribution: &record.Attribution{Model: &record.Attributed{Value: "m", Source: "claim"}, TraceID: &record.Attributed{Value: "t", Source: "comment"}}},
		{TS: ts, Event: record.EventStatement, SessionID: "abc", StatementID: 8, Command: "COM_STMT_EXECUTE", SQL: "SELECT ?",
			Params: []record.Param{{Type: "BIGINT", Value: int64(-5)}, {Type: "BIGINT UNSIGNED", Value: uint64(5)}, {Type: "NULL"}, {Type: "BLOB", Value: "xx", Truncated: true, Size: 9000, SHA256: "ab12"}}},
		{TS: ts, Event: record.EventOutcome, SessionID: "abc", StatementID: 7, Status: record.StatusSuccess, Rows: record.U64(3), AffectedRows: record.U64(0),
			DurationUS: record.I64(120), Columns: []string{"a", "b"}, Masked: []record.Masked{{Column: "card", Rule: "cards", Count: 3}},
			Policy: &record.Decision{Rule: "default", Action: "allow"}, ResultDigest: "ff00"},
		{TS: ts, Event: record.EventOutcome, Status: record.StatusBlocked, Error: &record.ErrorInfo{Code: 1142, State: "42000", Message: "sqlwarden: blocked"},
			Policy: &record.Decision{Action: "approve", Message: "m", Approver: "alice", Reason: "ok", ApprovalID: "0123abcd"}},
		{TS: ts, Event: record.EventOutcome, Status: record.StatusError, Error: &record.ErrorInfo{Code: 1226, State: "42000", Message: "sqlwarden: limit agents: result exceeds max_rows 10"},
			Limit: &record.LimitHit{Name: "agents", Kind: "max_rows", Value: uint64(10)}},
		{TS: ts, Event: record.EventOutcome, Status: record.StatusSuccess, Rows: record.U64(10), Truncated: true, Limit: &record.LimitHit{Name: "a\"b", Kind: "statement_timeout", Value: "1.5s"}},
		{TS: ts, Event: record.EventOutcome, Status: record.StatusBlocked, Limit: &record.LimitHit{Name: "x", Kind: "max_connections", Value: 3}},
		{TS: ts, Event: record.EventOutcome, Status: record.StatusBlocked, Limit: &record.LimitHit{Name: "x", Kind: "read_only", Value: true}},
		{TS: ts, Event: record.EventSessionEnd, SessionID: "abc", Reason: "quit", Statements: record.U64(0)},
		{TS: ts, Event: record.EventSessionDenied, Reason: "token expired", Destination: "127.0.0.1:3306"},
		{TS: ts.In(time.FixedZone("x", 3600)), Event: record.EventOutcome, Attribution: &record.Attribution{}},
	}
}

func TestFastJSONMatchesEncodingJSON(t *testing.T) {
	for i, r := range fastRecords() {
		got, ok := appendRecordJSON(nil, r)
		if !ok {
			t.Fatalf("record %d: fast path refused", i)
		}
		if want := stdEncode(t, r); !bytes.Equal(got, want) {
			t.Errorf("record %d:\n fast %s\n json %s", i, got, want)
		}
	}
	// Fields the fast path leaves to encoding/json.
	for _, r := range []*record.Record{
		{Event: record.EventSessionStart, Identity: &record.Identity{Name: "x"}},
		{Event: record.EventStatement, Params: []record.Param{{Type: "DOUBLE", Value: 1.5}}},
	} {
		if _, ok := appendRecordJSON(nil, r); ok {
			t.Errorf("fast path took %+v", r)
		}
	}
}

func FuzzFastJSON(f *testing.F) {
	f.Add("SELECT 1", "db", "kind", "msg", uint64(1), int64(2))
	f.Add("\xff\x00\u2028\"\\", "", "", "", uint64(0), int64(-1))
	f.Fuzz(func(t *testing.T, sql, db, kind, msg string, n uint64, d int64) {
		r := &record.Record{TS: time.Unix(0, d).UTC(), Event: record.EventOutcome, SQL: sql, SQLBase64: msg, DB: db, Rows: &n, DurationUS: &d,
			Statement: &record.Classification{Kind: kind, TablesRead: []string{db, sql}},
			Error:     &record.ErrorInfo{Code: uint16(n), Message: msg}, Columns: []string{msg},
			Params: []record.Param{{Type: kind, Value: sql}, {Type: "INT", Value: d}}}
		got, ok := appendRecordJSON(nil, r)
		if !ok {
			return
		}
		if want := stdEncode(t, r); !bytes.Equal(got, want) {
			t.Fatalf("\n fast %s\n json %s", got, want)
		}
	})
}

// TestSQLBytesExact: a statement that is not valid UTF-8 keeps its bytes in
// sql_base64 (sql shows U+FFFD); valid text has no copy.
func TestSQLBytesExact(t *testing.T) {
	for _, sql := range []string{"SELECT 1", "SELECT 'é'", "SELECT 'caf\xe9'", "UPDATE t SET v = '\xbf\\' -- '", "\xff"} {
		r := &record.Record{Event: record.EventStatement}
		r.SetSQL(sql)
		if (r.SQLBase64 != "") == utf8.ValidString(sql) {
			t.Errorf("%q: sql_base64 %q", sql, r.SQLBase64)
		}
		line, ok := appendRecordJSON(nil, r)
		if !ok || !bytes.Equal(line, stdEncode(t, r)) {
			t.Fatalf("%q: fast %s, json %s", sql, line, stdEncode(t, r))
		}
		got, err := DecodeLine(line)
		if err != nil {
			t.Fatal(err)
		}
		if got.Text() != sql {
			t.Errorf("%q: journal gives back %q (%s)", sql, got.Text(), line)
		}
	}
}

package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/audit"
	"github.com/sqlwarden/sqlwarden/pkg/record"
)

func runAuditCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newAuditCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestAuditCLI(t *testing.T) {
	dir := t.TempDir()
	j, err := audit.Open(audit.Config{Dir: dir, Node: "n1", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	j.Append(&record.Record{Event: record.EventSessionStart, SessionID: "s1", Identity: &record.Identity{Name: "agent-1", Source: "static"},
		Backend: &record.BackendInfo{Address: "127.0.0.1:3306", User: "warden"}})
	j.Append(&record.Record{Event: record.EventStatement, SessionID: "s1", StatementID: 1, Command: "COM_QUERY", SQL: "SELECT * FROM t", DB: "shop",
		Statement: &record.Classification{Kind: "SELECT", TablesRead: []string{"shop.t"}}})
	j.Append(&record.Record{Event: record.EventOutcome, SessionID: "s1", StatementID: 1, Status: record.StatusSuccess, Rows: record.U64(3)})
	j.Append(&record.Record{Event: record.EventStatement, SessionID: "s1", StatementID: 2, Command: "COM_QUERY", SQL: "DROP TABLE u", DB: "shop"})
	j.Append(&record.Record{Event: record.EventOutcome, SessionID: "s1", StatementID: 2, Status: record.StatusBlocked})
	j.Close()

	out, err := runAuditCLI(t, "verify", "--dir", dir)
	if err != nil || !strings.Contains(out, ": OK") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	out, err = runAuditCLI(t, "tail", "--dir", dir, "-n", "3")
	if err != nil || strings.Count(out, "\n") != 3 || !strings.Contains(out, "blocked") {
		t.Fatalf("tail: %v\n%s", err, out)
	}
	out, err = runAuditCLI(t, "tail", "--dir", dir, "--json", "-n", "1")
	if err != nil || !strings.HasPrefix(out, `{"ts":`) {
		t.Fatalf("tail --json: %v\n%s", err, out)
	}
	out, err = runAuditCLI(t, "search", "--dir", dir, "--identity", "agent-1", "--table", "t")
	if err != nil || strings.Count(out, "\n") != 2 || !strings.Contains(out, "SELECT * FROM t") {
		t.Fatalf("search --table: %v\n%s", err, out)
	}
	out, err = runAuditCLI(t, "search", "--dir", dir, "--status", "blocked", "--since", "1h")
	if err != nil || !strings.Contains(out, "DROP TABLE u") || strings.Contains(out, "SELECT") {
		t.Fatalf("search --status: %v\n%s", err, out)
	}
	out, _ = runAuditCLI(t, "search", "--dir", dir, "--until", time.Now().Add(-time.Hour).Format(time.RFC3339))
	if out != "" {
		t.Fatalf("search --until: %s", out)
	}

	// tamper: verify exits 1 and names the first bad record
	segs, _ := filepath.Glob(filepath.Join(dir, "journal-*.jsonl"))
	b, _ := os.ReadFile(segs[0])
	os.WriteFile(segs[0], bytes.Replace(b, []byte("SELECT * FROM t"), []byte("SELECT * FROM x"), 1), 0o600)
	out, err = runAuditCLI(t, "verify", "--dir", dir)
	var ec exitCode
	if !errors.As(err, &ec) || ec != 1 || !strings.Contains(out, "first bad record: edited") {
		t.Fatalf("verify after tampering: %v\n%s", err, out)
	}
}

package policy

import (
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"strings"
	"testing"
	"time"
)

func TestParseByteSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want uint64
	}{
		{"4MiB", 4 << 20}, {"512KB", 512000}, {"1000", 1000}, {"7k", 7 << 10}, {"2 GiB", 2 << 30},
		{"3MB", 3000000}, {"10B", 10}, {"1M", 1 << 20}, {"1kib", 1 << 10},
	} {
		got, err := ParseByteSize(tt.in)
		if err != nil || uint64(got) != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "1.5MB", "4 parsecs", "17179869184GiB"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", bad)
		}
	}
}

func TestLimitsParseAndResolve(t *testing.T) {
	e, err := New(Options{Data: []byte(`
limits:
  - name: agents
    identities: ["agent-*"]
    max_rows: 1000
    max_result_bytes: 4MiB
    on_exceed: truncate
    statement_timeout: 5s
    max_statements_per_second: 20
    max_concurrent_statements: 4
    max_connections: 16
  - name: everyone
    max_rows: 5000
    statement_timeout: 2s
    max_result_bytes: 4194304
  - name: reporting
    identities: ["agent-report"]
    max_rows: 1000
    max_connections: 2
    read_only: true
    max_affected_rows: 0
`)})
	if err != nil {
		t.Fatal(err)
	}
	l := e.LimitsFor("agent-report")
	want := record.Limits{
		MaxRows: 1000, MaxResultBytes: 4 << 20, TruncateRows: false, TruncateBytes: false,
		StatementTimeout: 2 * time.Second, MaxStatementsPerSecond: 20, MaxConcurrentStatements: 4,
		MaxConnections: 2, ReadOnly: true, MaxAffectedRows: 0,
	}
	want.By = [record.NumLimitKinds]string{
		record.LimitMaxRows:                 "reporting", // same cap as agents: error beats truncate
		record.LimitMaxResultBytes:          "everyone",  // same size as agents: error beats truncate
		record.LimitStatementTimeout:        "everyone",
		record.LimitMaxStatementsPerSecond:  "agents",
		record.LimitMaxConcurrentStatements: "agents",
		record.LimitMaxConnections:          "reporting",
		record.LimitReadOnly:                "reporting",
		record.LimitMaxAffectedRows:         "reporting",
	}
	if l != want {
		t.Errorf("LimitsFor(agent-report) =\n%+v\nwant\n%+v", l, want)
	}
	if v := l.Value(record.LimitMaxAffectedRows); v != uint64(0) {
		t.Errorf("max_affected_rows 0 is a set limit: Value = %v", v)
	}
	if v := l.Value(record.LimitStatementTimeout); v != "2s" {
		t.Errorf("timeout value = %v", v)
	}

	a := e.LimitsFor("agent-1")
	if a.MaxRows != 1000 || !a.TruncateRows || a.By[record.LimitMaxRows] != "agents" || a.TruncateBytes || a.IsSet(record.LimitReadOnly) || a.IsSet(record.LimitMaxAffectedRows) {
		t.Errorf("LimitsFor(agent-1) = %+v", a)
	}
	h := e.LimitsFor("human")
	if h.MaxRows != 5000 || h.IsSet(record.LimitMaxConnections) || !h.Any() {
		t.Errorf("LimitsFor(human) = %+v", h)
	}
	n, _ := New(Options{Data: []byte("default: allow\n")})
	if l := n.LimitsFor("x"); l.Any() {
		t.Error("a policy without limits sets some")
	}
}

func TestLimitsStrict(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"limits: [{name: a, max_rowz: 1}]", "max_rowz"},
		{"limits: [{max_rows: 1}]", "name is required"},
		{"limits: [{name: a, max_rows: 1}, {name: a, max_rows: 2}]", "duplicate"},
		{"limits: [{name: a, max_rows: 0}]", "max_rows must be at least 1"},
		{"limits: [{name: a, max_rows: -1}]", "decode policy"},
		{"limits: [{name: a, max_result_bytes: 4 lightyears}]", "parse size"},
		{"limits: [{name: a, max_rows: 1, on_exceed: drop}]", "on_exceed"},
		{"limits: [{name: a, on_exceed: truncate, max_connections: 1}]", "neither is set"},
		{"limits: [{name: a, statement_timeout: 5}]", "Go duration"},
		{"limits: [{name: a, statement_timeout: -1s}]", "positive"},
		{"limits: [{name: a, max_connections: 0}]", "max_connections must be at least 1"},
		{"limits: [{name: a, max_statements_per_second: 0}]", "max_statements_per_second"},
		{"limits: [{name: a, identities: ['[']}]", "identity pattern"},
		{"limits: [{name: a}]", "sets no limit"},
		{"limits: [{name: a, read_only: false}]", "sets no limit"},
	} {
		err := Check([]byte(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Check(%s) = %v, want an error containing %q", tt.yaml, err, tt.want)
		}
	}
}

func TestLimitsHotReload(t *testing.T) {
	path := t.TempDir() + "/policy.yaml"
	write := func(s string) { writeFile(t, path, s) }
	write("limits: [{name: a, max_rows: 10}]\n")
	e, err := New(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if l := e.LimitsFor("x"); l.MaxRows != 10 {
		t.Fatalf("MaxRows = %d", l.MaxRows)
	}
	v := e.Version()
	write("limits: [{name: b, max_rows: 20, statement_timeout: 1s}]\n")
	if err := e.Reload(); err != nil {
		t.Fatal(err)
	}
	if l := e.LimitsFor("x"); l.MaxRows != 20 || l.By[record.LimitMaxRows] != "b" || l.StatementTimeout != time.Second || e.Version() == v {
		t.Fatalf("after reload: %+v version %d", l, e.Version())
	}
	write("limits: [{name: b, max_rows: 0}]\n")
	if err := e.Reload(); err == nil {
		t.Fatal("an invalid limit was installed")
	}
	if l := e.LimitsFor("x"); l.MaxRows != 20 {
		t.Fatalf("an invalid reload changed the limits: %+v", l)
	}
}

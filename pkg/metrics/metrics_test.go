package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	itestutil "github.com/sqlwarden/sqlwarden/internal/testutil"

	"github.com/sqlwarden/sqlwarden/pkg/audit"
	"github.com/sqlwarden/sqlwarden/pkg/proxy"
	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// The proxy's Observer interface is what the daemon hands Metrics to.
var _ proxy.Observer = (*Metrics)(nil)

func TestObserverSeries(t *testing.T) {
	m := New(Options{NoRuntime: true, Version: "v1.2.3"})
	m.ConnOpened()
	m.ConnOpened()
	m.ConnOpened()
	m.ConnOpened()
	m.ConnClosed("closed")
	m.ConnClosed("denied")
	m.ConnClosed("backend_closed")
	m.Statement("SELECT", "success", 2*time.Millisecond, 30*time.Microsecond)
	m.Statement("SELECT", "success", 3*time.Millisecond, 40*time.Microsecond)
	m.Statement("DELETE", "blocked", time.Millisecond, 0)
	m.Statement("unparsed", "error", time.Millisecond, 0)
	m.Statement("FLASH_BACK_TABLE", "success", time.Millisecond, 0) // not in the fixed set
	m.Statement("COM_PING", "success", time.Millisecond, 0)
	m.Bytes(100, 0)
	m.Bytes(0, 20)
	m.Bytes(5, 7)
	m.Decision("default", "allow")
	m.Decision("no-unbounded-writes", "deny")
	m.Masked(3)
	m.Masked(0)
	m.IdentityFailure("token expired")
	m.IdentityFailure(`password for explicit client "mallory" does not match`)
	m.IdentityFailure("something nobody planned for")
	m.LimitHit("agents", "max_rows")
	m.LimitHit("agents", "max_rows")
	m.LimitHit("agents", "no_such_kind")

	want := `
# HELP sqlwarden_proxy_connections_active Client connections open on the proxy.
# TYPE sqlwarden_proxy_connections_active gauge
sqlwarden_proxy_connections_active 1
# HELP sqlwarden_proxy_connections_total Client connections closed, by how they ended (closed, denied, handshake_error, login_limit, backend_error, backend_closed, audit_error, panic).
# TYPE sqlwarden_proxy_connections_total counter
sqlwarden_proxy_connections_total{outcome="backend_closed"} 1
sqlwarden_proxy_connections_total{outcome="closed"} 1
sqlwarden_proxy_connections_total{outcome="denied"} 1
# HELP sqlwarden_proxy_statements_total Statements and commands completed, by kind and audit status (success, error, blocked).
# TYPE sqlwarden_proxy_statements_total counter
sqlwarden_proxy_statements_total{kind="COM_PING",status="success"} 1
sqlwarden_proxy_statements_total{kind="DELETE",status="blocked"} 1
sqlwarden_proxy_statements_total{kind="OTHER",status="success"} 1
sqlwarden_proxy_statements_total{kind="SELECT",status="success"} 2
sqlwarden_proxy_statements_total{kind="UNPARSED",status="error"} 1
# HELP sqlwarden_proxy_bytes_total Bytes forwarded, by direction (to_client, to_backend).
# TYPE sqlwarden_proxy_bytes_total counter
sqlwarden_proxy_bytes_total{direction="to_backend"} 27
sqlwarden_proxy_bytes_total{direction="to_client"} 105
# HELP sqlwarden_masking_values_masked_total Column values rewritten by masking rules in result rows.
# TYPE sqlwarden_masking_values_masked_total counter
sqlwarden_masking_values_masked_total 3
# HELP sqlwarden_policy_decisions_total Policy decisions, by rule name and action (allow, deny, approve).
# TYPE sqlwarden_policy_decisions_total counter
sqlwarden_policy_decisions_total{action="allow",rule="default"} 1
sqlwarden_policy_decisions_total{action="deny",rule="no-unbounded-writes"} 1
# HELP sqlwarden_identity_failures_total Connections refused for want of a verified workload identity, by reason.
# TYPE sqlwarden_identity_failures_total counter
sqlwarden_identity_failures_total{reason="other"} 1
sqlwarden_identity_failures_total{reason="password_mismatch"} 1
sqlwarden_identity_failures_total{reason="token_expired"} 1
# HELP sqlwarden_limit_hits_total Per-identity limits that refused, stopped or truncated a statement or refused a connection, by limits entry and limit.
# TYPE sqlwarden_limit_hits_total counter
sqlwarden_limit_hits_total{kind="max_rows",limit="agents"} 2
sqlwarden_limit_hits_total{kind="other",limit="agents"} 1
# HELP sqlwarden_build_info Always 1; the version label names the running build.
# TYPE sqlwarden_build_info gauge
sqlwarden_build_info{version="v1.2.3"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"sqlwarden_proxy_connections_active", "sqlwarden_proxy_connections_total", "sqlwarden_proxy_statements_total",
		"sqlwarden_proxy_bytes_total", "sqlwarden_masking_values_masked_total", "sqlwarden_policy_decisions_total",
		"sqlwarden_identity_failures_total", "sqlwarden_limit_hits_total", "sqlwarden_build_info"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m.duration); n != 5 {
		t.Errorf("statement_duration_seconds series = %d, want 5 (one per kind)", n)
	}
	// Only forwarded statements observe added latency.
	if got := histCount(t, m, "sqlwarden_proxy_added_latency_seconds"); got != 2 {
		t.Errorf("added latency observations = %d, want 2", got)
	}
}

func histCount(t *testing.T, m *Metrics, name string) uint64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var n uint64
			for _, mm := range mf.GetMetric() {
				n += mm.GetHistogram().GetSampleCount()
			}
			return n
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestLabelCardinalityIsBounded(t *testing.T) {
	m := New(Options{NoRuntime: true, MaxRules: 10})
	for i := range 1000 {
		m.Statement(fmt.Sprintf("KIND_%d", i), fmt.Sprintf("status%d", i), time.Millisecond, time.Microsecond)
		m.Decision(fmt.Sprintf("rule-%d", i), record.Action(fmt.Sprintf("action%d", i)))
		m.IdentityFailure(fmt.Sprintf("connection was not redirected and no explicit client matches user %q", fmt.Sprint("u", i)))
		m.IdentityFailure(fmt.Sprintf("pid %d reused", i))
		m.ConnClosed(fmt.Sprintf("outcome-%d", i))
	}
	m.Decision(strings.Repeat("x", 200), "allow")
	m.Decision("bad\nname", "allow")
	if n := testutil.CollectAndCount(m.statements); n != 1 {
		t.Errorf("statements series = %d, want 1 (OTHER/other)", n)
	}
	// 10 admitted rule names plus OTHER, each with action "other", plus the
	// two rejected names as OTHER/allow.
	if n := testutil.CollectAndCount(m.decisions); n != 12 {
		t.Errorf("decision series = %d, want 12", n)
	}
	if n := testutil.CollectAndCount(m.identity); n != 2 {
		t.Errorf("identity failure series = %d, want 2 (unknown_client, other)", n)
	}
	if n := testutil.CollectAndCount(m.conns); n != 1 {
		t.Errorf("connection series = %d, want 1", n)
	}
	// The rule names behind OTHER are remembered only up to the cache's
	// bound: 1,000 made-up names do not grow it past 2×MaxRules.
	if n := len(m.ruleSeries.m); n != 20 {
		t.Errorf("rule series cached = %d, want 20", n)
	}
}

// The series a statement counts are reached without asking the vectors
// again: no allocation.
func TestStatementSeriesAllocateNothing(t *testing.T) {
	m := New(Options{NoRuntime: true})
	for _, c := range []struct{ kind, status, rule, action string }{
		{"SELECT", "success", "default", "allow"},
		{"COM_STMT_EXECUTE", "blocked", "no-writes", "deny"},
		{"FLASH_BACK_TABLE", "weird", "bad\nname", "nonsense"},
	} {
		m.Statement(c.kind, c.status, time.Millisecond, time.Microsecond)
		m.Decision(c.rule, record.Action(c.action))
		if a := testing.AllocsPerRun(100, func() {
			m.Statement(c.kind, c.status, time.Millisecond, time.Microsecond)
			m.Decision(c.rule, record.Action(c.action))
		}); a != 0 {
			t.Errorf("%s/%s: %.1f allocations per statement, want 0", c.kind, c.status, a)
		}
	}
	if got := testutil.ToFloat64(m.statements.WithLabelValues("COM_STMT_EXECUTE", "blocked")); got != 102 {
		t.Errorf("COM_STMT_EXECUTE/blocked = %v, want 102", got)
	}
	if got := testutil.ToFloat64(m.decisions.WithLabelValues("OTHER", "other")); got != 102 {
		t.Errorf("OTHER/other decisions = %v, want 102", got)
	}
}

// BenchmarkStatement: what a statement's metrics cost (Statement and
// Decision), against asking the vectors for the same series each time.
func BenchmarkStatement(b *testing.B) {
	m := New(Options{NoRuntime: true})
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.Statement("SELECT", "success", time.Millisecond, 30*time.Microsecond)
			m.Decision("default", record.ActionAllow)
		}
	})
	b.Run("vector", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			k := StatementKind("SELECT")
			m.statements.WithLabelValues(k, "success").Inc()
			m.duration.WithLabelValues(k).Observe(0.001)
			m.added.Observe(0.00003)
			m.decisions.WithLabelValues(m.rules.value("default"), "allow").Inc()
		}
	})
}

func TestIdentityReasons(t *testing.T) {
	for reason, want := range map[string]string{
		"token expired":                              "token_expired",
		"token belongs to another pod":               "other_pod",
		"unsupported algorithm none":                 "unsupported_algorithm",
		"a token presented as password requires TLS": "token_needs_tls",
		"no identity configured for this workload":   "no_identity",
		"TLS is required":                            "tls_required",
		"":                                           "other",
		"select * from secrets":                      "other",
	} {
		if got := IdentityReason(reason); got != want {
			t.Errorf("IdentityReason(%q) = %q, want %q", reason, got, want)
		}
	}
}

func TestJournalAndRedirectCollectors(t *testing.T) {
	m := New(Options{NoRuntime: true})
	last := time.Unix(1700000000, 500000000)
	stats := audit.Stats{Records: 42, Bytes: 4096, Writes: 10, Syncs: 5, Checkpoints: 2, LastSeq: 42, UnsyncedBytes: 100,
		Sinks: []audit.SinkStats{{Name: "fleet", Type: "nats", Lag: 7, Shipped: 35, Batches: 3, Errors: 1, LastShipAt: last}}}
	if err := m.RegisterJournal(func() audit.Stats { return stats }); err != nil {
		t.Fatal(err)
	}
	fail := false
	if err := m.RegisterRedirect(func() (RedirectCounters, error) {
		if fail {
			return RedirectCounters{}, errors.New("map gone")
		}
		return RedirectCounters{Redirected: 9, SkippedPort: 2, Denied: 1, Published: 9, LookupHits: 8, LookupMisses: 1}, nil
	}); err != nil {
		t.Fatal(err)
	}
	m.ObserveSync(300 * time.Microsecond)
	m.SetPendingApprovals(func() int { return 2 })

	want := `
# HELP sqlwarden_audit_records_total Records appended to the journal, checkpoints included.
# TYPE sqlwarden_audit_records_total counter
sqlwarden_audit_records_total 42
# HELP sqlwarden_audit_unsynced_bytes Bytes written but not yet fsynced (the power-loss window).
# TYPE sqlwarden_audit_unsynced_bytes gauge
sqlwarden_audit_unsynced_bytes 100
# HELP sqlwarden_audit_sink_lag_records Records in the journal that the sink has not durably accepted yet.
# TYPE sqlwarden_audit_sink_lag_records gauge
sqlwarden_audit_sink_lag_records{sink="fleet",type="nats"} 7
# HELP sqlwarden_audit_sink_errors_total Failed attempts to ship to the sink.
# TYPE sqlwarden_audit_sink_errors_total counter
sqlwarden_audit_sink_errors_total{sink="fleet",type="nats"} 1
# HELP sqlwarden_audit_sink_last_ship_timestamp_seconds Unix time of the sink's last successful shipment (0: none yet).
# TYPE sqlwarden_audit_sink_last_ship_timestamp_seconds gauge
sqlwarden_audit_sink_last_ship_timestamp_seconds{sink="fleet",type="nats"} 1.7000000005e+09
# HELP sqlwarden_redirect_connects_total connect() calls seen by the BPF program, by result (redirected, skipped_excluded, skipped_port, skipped_proxy_dest, skipped_fail_open, denied).
# TYPE sqlwarden_redirect_connects_total counter
sqlwarden_redirect_connects_total{result="denied"} 1
sqlwarden_redirect_connects_total{result="redirected"} 9
sqlwarden_redirect_connects_total{result="skipped_excluded"} 0
sqlwarden_redirect_connects_total{result="skipped_fail_open"} 0
sqlwarden_redirect_connects_total{result="skipped_port"} 2
sqlwarden_redirect_connects_total{result="skipped_proxy_dest"} 0
# HELP sqlwarden_redirect_lookups_total Origin lookups by the proxy for accepted connections, by result (hit, miss).
# TYPE sqlwarden_redirect_lookups_total counter
sqlwarden_redirect_lookups_total{result="hit"} 8
sqlwarden_redirect_lookups_total{result="miss"} 1
# HELP sqlwarden_policy_approvals_pending Statements held waiting for a human approval.
# TYPE sqlwarden_policy_approvals_pending gauge
sqlwarden_policy_approvals_pending 2
`
	names := []string{"sqlwarden_audit_records_total", "sqlwarden_audit_unsynced_bytes", "sqlwarden_audit_sink_lag_records",
		"sqlwarden_audit_sink_errors_total", "sqlwarden_audit_sink_last_ship_timestamp_seconds",
		"sqlwarden_redirect_connects_total", "sqlwarden_redirect_lookups_total", "sqlwarden_policy_approvals_pending"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	if got := histCount(t, m, "sqlwarden_audit_sync_duration_seconds"); got != 1 {
		t.Errorf("sync observations = %d, want 1", got)
	}

	// A failed BPF read drops the redirect series from that scrape only.
	fail = true
	if n, err := testutil.GatherAndCount(m.Registry(), "sqlwarden_redirect_connects_total"); err != nil || n != 0 {
		t.Errorf("redirect series with a failing read = %d (%v), want 0", n, err)
	}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(`
# HELP sqlwarden_redirect_bpf_read_errors_total Scrapes that could not read the BPF counters.
# TYPE sqlwarden_redirect_bpf_read_errors_total counter
sqlwarden_redirect_bpf_read_errors_total 2
`), "sqlwarden_redirect_bpf_read_errors_total"); err != nil {
		t.Error(err) // two scrapes with fail set: GatherAndCount's and this one
	}
}

// TestLint runs promlint (what `promtool check metrics` runs) over every
// metric, with all label sets populated and the runtime collectors on.
func TestLint(t *testing.T) {
	m := New(Options{})
	populate(t, m)
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
}

func populate(t *testing.T, m *Metrics) {
	t.Helper()
	m.ConnOpened()
	m.ConnClosed("closed")
	m.Statement("SELECT", "success", time.Millisecond, time.Microsecond)
	m.Bytes(1, 1)
	m.Decision("default", "allow")
	m.Masked(1)
	m.IdentityFailure("token expired")
	m.ObserveSync(time.Millisecond)
	if err := m.RegisterJournal(func() audit.Stats {
		return audit.Stats{Sinks: []audit.SinkStats{{Name: "s", Type: "webhook"}}}
	}); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterRedirect(func() (RedirectCounters, error) { return RedirectCounters{}, nil }); err != nil {
		t.Fatal(err)
	}
}

func TestHandler(t *testing.T) {
	m := New(Options{})
	populate(t, m)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	for _, want := range []string{
		`sqlwarden_proxy_statements_total{kind="SELECT",status="success"} 1`,
		`sqlwarden_redirect_connects_total{result="redirected"} 0`,
		`sqlwarden_audit_sink_lag_records{sink="s",type="webhook"} 0`,
		"go_goroutines", "process_cpu_seconds_total",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	promtool := itestutil.RequireTool(t, "promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

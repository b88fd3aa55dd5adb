package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/test/harness"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
)

// TestMetricsPrometheus runs statements through the real daemon, has a real
// Prometheus (Debian package) scrape its admin endpoint, reads the series
// back through Prometheus' HTTP API and checks the exposition with promtool.
func TestMetricsPrometheus(t *testing.T) {
	promBin := testutil.RequireTool(t, "prometheus")
	promtool := testutil.RequireTool(t, "promtool")
	d := harness.Start(t, harness.Options{})
	root := d.Maria.Open(t, "")
	for _, q := range []string{
		"DROP DATABASE IF EXISTS metrics_e2e", "CREATE DATABASE metrics_e2e",
		"CREATE TABLE metrics_e2e.t (id INT PRIMARY KEY, v VARCHAR(16))",
		"INSERT INTO metrics_e2e.t VALUES (1,'a'),(2,'b')",
	} {
		if _, err := root.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	const selects = 25
	db := d.Open(t, "metrics_e2e")
	for i := range selects {
		var v string
		if err := db.QueryRow("SELECT v FROM t WHERE id = 1 /* " + strconv.Itoa(i) + " */").Scan(&v); err != nil {
			t.Fatalf("select %d: %v", i, err)
		}
	}
	if _, err := db.Exec("INSERT INTO t VALUES (3,'c')"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("SELECT * FROM no_such_table"); err == nil {
		t.Fatal("select from a missing table succeeded")
	}
	db.Close()

	// The exposition itself: promtool's linter must be silent.
	body := get(t, "http://"+d.Admin+"/metrics")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
	for _, want := range []string{"sqlwarden_proxy_statements_total", "sqlwarden_audit_records_total", "sqlwarden_audit_sync_duration_seconds_bucket"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	prom := startPrometheus(t, promBin, d.Admin)

	// Prometheus scrapes every second; wait for a scrape after the statements.
	waitQuery(t, prom, `up{job="sqlwarden"}`, func(v float64) bool { return v == 1 })
	waitQuery(t, prom, `sqlwarden_proxy_statements_total{kind="SELECT",status="success"}`, func(v float64) bool { return v >= selects })
	waitQuery(t, prom, `sqlwarden_proxy_statements_total{kind="INSERT",status="success"}`, func(v float64) bool { return v >= 1 })
	waitQuery(t, prom, `sum(sqlwarden_proxy_statements_total{status="error"})`, func(v float64) bool { return v >= 1 })
	waitQuery(t, prom, `sqlwarden_policy_decisions_total{rule="default",action="allow"}`, func(v float64) bool { return v >= selects })
	waitQuery(t, prom, `sum(sqlwarden_proxy_connections_total)`, func(v float64) bool { return v >= 1 })
	waitQuery(t, prom, `sqlwarden_proxy_bytes_total{direction="to_client"}`, func(v float64) bool { return v > 0 })
	waitQuery(t, prom, `sqlwarden_proxy_statement_duration_seconds_count{kind="SELECT"}`, func(v float64) bool { return v >= selects })
	// Every statement has a write-ahead and an outcome record.
	waitQuery(t, prom, `sqlwarden_audit_records_total`, func(v float64) bool { return v >= 2*selects })
	waitQuery(t, prom, `sqlwarden_build_info`, func(v float64) bool { return v == 1 })
}

func get(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s\n%s", u, resp.Status, b)
	}
	return b
}

// startPrometheus runs a private Prometheus on a free loopback port that
// scrapes target every second, with its own storage in a temp dir.
func startPrometheus(t *testing.T, bin, target string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: sqlwarden
    metrics_path: /metrics
    static_configs:
      - targets: [%q]
`, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	var log bytes.Buffer
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--web.console.templates="+filepath.Join(dir, "none"),
		"--web.console.libraries="+filepath.Join(dir, "none"),
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", log.String())
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			t.Fatalf("prometheus exited: %v\n%s", cmd.ProcessState, log.String())
		default:
		}
		if resp, err := http.Get(base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("prometheus not ready after 30s:\n%s", log.String())
	return ""
}

// waitQuery polls an instant query until it returns one sample that ok
// accepts (30s at most).
func waitQuery(t *testing.T, prom, query string, ok func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := "no answer"
	for time.Now().Before(deadline) {
		v, desc, err := instantQuery(prom, query)
		if err == nil && ok(v) {
			return v
		}
		if err != nil {
			last = err.Error()
		} else {
			last = desc
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("query %s: not satisfied within 30s (last: %s)", query, last)
	return 0
}

func instantQuery(prom, query string) (float64, string, error) {
	resp, err := http.Get(prom + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, "", fmt.Errorf("decode query response: %w", err)
	}
	if r.Status != "success" {
		return 0, "", fmt.Errorf("query %s: %s", r.Status, r.Error)
	}
	if len(r.Data.Result) != 1 {
		return 0, fmt.Sprintf("%d series", len(r.Data.Result)), nil
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, "", fmt.Errorf("parse sample %q: %w", s, err)
	}
	return v, fmt.Sprintf("value %v", v), nil
}

// TestPprofNeedsTheAdminToken: with admin.pprof on, /debug/pprof answers
// only requests carrying the admin credential.
func TestPprofNeedsTheAdminToken(t *testing.T) {
	d := harness.Start(t, harness.Options{Extra: "admin:\n  pprof: true\n  token: " + adminToken + "\n"})
	get := func(token string) int {
		t.Helper()
		req, err := http.NewRequest("GET", "http://"+d.Admin+"/debug/pprof/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(""); code != http.StatusUnauthorized {
		t.Errorf("pprof without a token: HTTP %d, want 401", code)
	}
	if code := get("not-the-token"); code != http.StatusUnauthorized {
		t.Errorf("pprof with a wrong token: HTTP %d, want 401", code)
	}
	if code := get(adminToken); code != http.StatusOK {
		t.Errorf("pprof with the admin token: HTTP %d, want 200", code)
	}
}

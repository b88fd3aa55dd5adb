package e2e

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/policy"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// runPointSelects runs n point selects over workers connections and returns
// the elapsed time.
func runPointSelects(b *testing.B, db *sql.DB, n, workers int) time.Duration {
	b.Helper()
	db.SetMaxOpenConns(workers)
	db.SetMaxIdleConns(workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var v string
			for next.Add(1) <= int64(n) {
				id := next.Load()%1000 + 1
				if err := db.QueryRow("SELECT c FROM bench.sbtest WHERE id = ?", id).Scan(&v); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

func benchFixture(b *testing.B) (direct, proxied *sql.DB) {
	direct = benchTable(b)
	d := harness.Start(b, harness.Options{})
	var err error
	proxied, err = sql.Open("mysql", d.DSN("bench", "interpolateParams=true"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { proxied.Close() })
	return direct, proxied
}

// benchTable creates bench.sbtest and returns a direct connection pool.
func benchTable(b *testing.B) *sql.DB {
	m := testutil.StartMariaDB(b)
	root := m.Open(b, "")
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS bench",
		"CREATE TABLE IF NOT EXISTS bench.sbtest (id INT PRIMARY KEY, c CHAR(120))",
		"INSERT IGNORE INTO bench.sbtest SELECT seq, REPEAT('c', 120) FROM test.seq_1_to_1000",
	} {
		if _, err := root.Exec(q); err != nil {
			b.Fatal(err)
		}
	}
	direct, err := sql.Open("mysql", m.DSN("warden", "warden-pass", "bench")+"&interpolateParams=true")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { direct.Close() })
	return direct
}

// benchLimitsOn sets every per-identity limit, high enough never to fire.
const benchLimitsOn = `limits:
  - name: bench
    max_rows: 1000000
    max_result_bytes: 1GiB
    statement_timeout: 60s
    max_statements_per_second: 1000000
    max_concurrent_statements: 1024
    max_connections: 1024
    read_only: true
    max_affected_rows: 1000000
`

// BenchmarkPointSelectLimits compares point selects through sqlwarden with
// the built-in policy (the baseline), the same policy with an empty limits
// section (limits-off) and with every limit set (limits-on), at 1 and 8
// client threads, and reports each one's QPS relative to the baseline.
func BenchmarkPointSelectLimits(b *testing.B) {
	benchTable(b)
	open := func(extraPolicy string) *sql.DB {
		o := harness.Options{}
		if extraPolicy != "" {
			p := filepath.Join(b.TempDir(), "policy.yaml")
			if err := os.WriteFile(p, []byte(policy.DefaultPolicy+extraPolicy), 0o644); err != nil {
				b.Fatal(err)
			}
			o.Extra = "policy:\n  file: " + p + "\n"
		}
		d := harness.Start(b, o)
		db, err := sql.Open("mysql", d.DSN("bench", "interpolateParams=true"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		return db
	}
	base, off, on := open(""), open("limits: []\n"), open(benchLimitsOn)
	for _, workers := range []int{1, 8} {
		b.Run(map[int]string{1: "threads=1", 8: "threads=8"}[workers], func(b *testing.B) {
			n := max(b.N, 200)
			for _, db := range []*sql.DB{base, off, on} {
				runPointSelects(b, db, 200, workers) // warm the pools
			}
			b.ResetTimer()
			bd := runPointSelects(b, base, n, workers)
			od := runPointSelects(b, off, n, workers)
			nd := runPointSelects(b, on, n, workers)
			b.StopTimer()
			b.ReportMetric(float64(n)/bd.Seconds(), "proxy_qps")
			b.ReportMetric(float64(n)/od.Seconds(), "limits_off_qps")
			b.ReportMetric(float64(n)/nd.Seconds(), "limits_on_qps")
			b.ReportMetric(bd.Seconds()/od.Seconds(), "limits_off/proxy")
			b.ReportMetric(bd.Seconds()/nd.Seconds(), "limits_on/proxy")
		})
	}
}

// BenchmarkPointSelect compares point selects (text protocol) directly
// against MariaDB and through sqlwarden (audit with the default batch sync,
// the built-in policy), at 1 and 8 client threads. It reports each path's
// QPS and the proxy/direct ratio; `make bench` has the sysbench comparison
// with HAProxy.
func BenchmarkPointSelect(b *testing.B) {
	direct, proxied := benchFixture(b)
	for _, workers := range []int{1, 8} {
		b.Run(map[int]string{1: "threads=1", 8: "threads=8"}[workers], func(b *testing.B) {
			n := b.N
			if n < 200 {
				n = 200
			}
			runPointSelects(b, direct, 200, workers) // warm both pools
			runPointSelects(b, proxied, 200, workers)
			b.ResetTimer()
			dd := runPointSelects(b, direct, n, workers)
			pd := runPointSelects(b, proxied, n, workers)
			b.StopTimer()
			dq := float64(n) / dd.Seconds()
			pq := float64(n) / pd.Seconds()
			b.ReportMetric(dq, "direct_qps")
			b.ReportMetric(pq, "proxy_qps")
			b.ReportMetric(pq/dq, "proxy/direct")
			b.ReportMetric(float64(pd-dd)/float64(n)*float64(workers)/1e3, "added_us/query")
		})
	}
}

// rssKB reads a process's resident set size.
func rssKB(b *testing.B, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			return kb
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// BenchmarkIdleConnections opens 1,000 connections through sqlwarden, each
// with its backend connection, and reports the daemon's resident memory per
// idle connection; then closes them and opens 1,000 again (rss_MB_reopened):
// memory a session held must serve the next ones, not add to it.
func BenchmarkIdleConnections(b *testing.B) {
	const n = 1000
	d := harness.Start(b, harness.Options{})
	open := func() []*client.Conn {
		conns := make([]*client.Conn, 0, n)
		for j := 0; j < n; j++ {
			c, err := client.Connect(d.Listen, harness.ClientUser, harness.ClientPassword, "")
			if err != nil {
				b.Fatalf("connection %d: %v", j, err)
			}
			conns = append(conns, c)
		}
		time.Sleep(500 * time.Millisecond)
		return conns
	}
	closeAll := func(conns []*client.Conn) {
		for _, c := range conns {
			c.Close()
		}
		time.Sleep(500 * time.Millisecond)
	}
	for i := 0; i < b.N; i++ {
		before := rssKB(b, d.PID())
		conns := open()
		after := rssKB(b, d.PID())
		b.ReportMetric(float64(after)/1024, "rss_MB")
		b.ReportMetric(float64(after-before)/n, "KB/conn")
		closeAll(conns)
		conns = open()
		b.ReportMetric(float64(rssKB(b, d.PID()))/1024, "rss_MB_reopened")
		closeAll(conns)
	}
}

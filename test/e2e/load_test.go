package e2e

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/sqlwarden/sqlwarden/test/harness"
)

// raiseNoFile makes sure this process (and the daemon it starts, which
// inherits the hard limit and raises its soft limit to it, as Go programs do)
// may open n files.
func raiseNoFile(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= n && lim.Max >= n {
		return
	}
	want := syscall.Rlimit{Cur: max(lim.Cur, n), Max: max(lim.Max, n)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		t.Fatalf("raise RLIMIT_NOFILE from %d/%d to %d: %v (the load test needs root or a higher hard limit)", lim.Cur, lim.Max, n, err)
	}
}

// scrape reads the named gauges from the daemon's /metrics.
func scrape(t *testing.T, d *harness.Daemon, names ...string) map[string]float64 {
	t.Helper()
	got, err := d.Gauges(names...)
	if err != nil {
		t.Fatalf("scrape /metrics: %v", err)
	}
	for _, n := range names {
		if _, ok := got[n]; !ok {
			t.Fatalf("/metrics does not export %s", n)
		}
	}
	return got
}

// rssMB is the resident memory of process pid.
func rssMB(t *testing.T, pid int) float64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			return float64(kb) / 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestLoad2000Connections: 2,000 clients logged in through the daemon at
// once, each with its own backend connection, all run a statement at the
// same moment and get their own answer; the daemon stays under 400 MB RSS;
// after they close, its goroutines and open files (read from /metrics)
// return to within 2% of where they started.
func TestLoad2000Connections(t *testing.T) {
	const n = 2000
	raiseNoFile(t, 3*n+1024)
	d := harness.Start(t, harness.Options{})
	root := d.Maria.Open(t, "")
	// The private MariaDB must take 2,000 more connections than the other
	// tests hold (scripts/mariadb.sh starts it with 3000).
	var maxConns int
	if err := root.QueryRow("SELECT @@max_connections").Scan(&maxConns); err != nil {
		t.Fatal(err)
	}
	if maxConns < n+500 {
		if _, err := root.Exec(fmt.Sprintf("SET GLOBAL max_connections = %d", n+1000)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { root.Exec(fmt.Sprintf("SET GLOBAL max_connections = %d", maxConns)) })
	}

	// Warm up (the lazily started parts: version probe, pools), then the baseline.
	for i := 0; i < 5; i++ {
		c, err := client.Connect(d.Listen, harness.ClientUser, harness.ClientPassword, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Execute("SELECT 1"); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	const gor, fds = "go_goroutines", "process_open_fds"
	var base map[string]float64
	settle := func(what string, ref map[string]float64) map[string]float64 {
		// Sessions end asynchronously after the client's COM_QUIT: wait
		// until the numbers are back (or, for the baseline, stable).
		deadline := time.Now().Add(30 * time.Second)
		prev := scrape(t, d, gor, fds)
		for {
			time.Sleep(100 * time.Millisecond)
			cur := scrape(t, d, gor, fds)
			if ref == nil && cur[gor] == prev[gor] && cur[fds] == prev[fds] {
				return cur
			}
			if ref != nil && within2(cur[gor], ref[gor]) && within2(cur[fds], ref[fds]) {
				return cur
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: goroutines %v, open fds %v after 30s; started at %v", what, cur[gor], cur[fds], ref)
			}
			prev = cur
		}
	}
	base = settle("baseline", nil)
	rssBefore := rssMB(t, d.PID())

	// 2,000 logins; at most 48 at once, as the daemon caps the logins in
	// progress per source address (max_unauthenticated_per_source 64).
	conns := make([]*client.Conn, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 48)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := client.Connect(d.Listen, harness.ClientUser, harness.ClientPassword, "")
			if err != nil {
				errs <- fmt.Errorf("login %d: %w", i, err)
				return
			}
			conns[i] = c
		}(i)
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d logins in %v", n, time.Since(start))

	// All open at once: every one runs a statement at the same moment and
	// must get its own backend's answer.
	open := scrape(t, d, gor, fds)
	if open[fds] < base[fds]+2*n {
		t.Fatalf("open fds %v with %d sessions: not one client and one backend socket each (baseline %v)", open[fds], n, base[fds])
	}
	release := make(chan struct{})
	errs = make(chan error, n)
	for i, c := range conns {
		wg.Add(1)
		go func(i int, c *client.Conn) {
			defer wg.Done()
			<-release
			r, err := c.Execute(fmt.Sprintf("SELECT %d AS i, CONNECTION_ID()", i))
			if err != nil {
				errs <- fmt.Errorf("statement on connection %d: %w", i, err)
				return
			}
			if v, _ := r.GetInt(0, 0); v != int64(i) {
				errs <- fmt.Errorf("connection %d got the answer %d", i, v)
			}
		}(i, c)
	}
	start = time.Now()
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	rss := rssMB(t, d.PID())
	t.Logf("%d concurrent statements in %v; daemon RSS %.0f MB (%.0f MB before the logins); goroutines %v, open fds %v",
		n, time.Since(start), rss, rssBefore, open[gor], open[fds])
	if rss >= 400 {
		t.Errorf("daemon RSS %.0f MB with %d sessions, want under 400 MB", rss, n)
	}

	for i, c := range conns {
		c.Close()
		conns[i] = nil
	}
	after := settle("after the clients closed", base)
	t.Logf("after close: goroutines %v (baseline %v), open fds %v (baseline %v)", after[gor], base[gor], after[fds], base[fds])
}

// within2 reports whether v is within 2% of ref (at least one unit).
func within2(v, ref float64) bool {
	return math.Abs(v-ref) <= math.Max(1, math.Ceil(ref*0.02))
}
